"""Fixtures for the remote tests: a real PostgreSQL server, a fresh database on it per test.

$MVCDB_TEST_PG_URL names an existing server (a URL whose user may CREATE DATABASE); otherwise a
throwaway cluster is started on loopback for the session (mvcdb.remote.localpg). In CI (CI=true,
or MVCDB_REQUIRE_PG=1 as .ci/run sets) a missing driver or server fails the tests, never skips.
"""

from __future__ import annotations

import atexit
import functools
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import pytest

if TYPE_CHECKING:
    from mvcdb.remote.localpg import LocalCluster


@dataclass(frozen=True)
class PgServer:
    """Where the test server is: an admin URL (with password) and the password alone."""

    admin_url: str
    password: str

    def url_for(self, dbname: str, *, with_password: bool = True) -> str:
        parts = urlsplit(self.admin_url)
        netloc = parts.netloc
        if not with_password and "@" in netloc:
            userinfo, _, host = netloc.rpartition("@")
            netloc = f"{userinfo.partition(':')[0]}@{host}"
        return urlunsplit((parts.scheme, netloc, f"/{dbname}", parts.query, ""))


def _unavailable(reason: str) -> None:
    if any(os.environ.get(k, "").lower() in ("1", "true", "yes") for k in ("CI", "MVCDB_REQUIRE_PG")):
        pytest.fail(f"PostgreSQL is required in CI: {reason}")
    pytest.skip(f"PostgreSQL not available: {reason}")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A running PostgreSQL server for the whole session."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable("psycopg is not installed (pip install 'mvcdb[postgres]')")
    given = os.environ.get("MVCDB_TEST_PG_URL")
    if given:
        yield PgServer(given, urlsplit(given).password or os.environ.get("PGPASSWORD", ""))
        return
    from mvcdb.errors import MvcdbError

    try:
        cluster = _shared_cluster()
    except (MvcdbError, OSError) as exc:
        _unavailable(str(exc))
        raise  # unreachable: _unavailable raises
    yield PgServer(cluster.url(), cluster.password)


@functools.lru_cache(maxsize=1)
def _shared_cluster() -> LocalCluster:
    """One throwaway cluster for every test module (each imports these fixtures), stopped at exit."""
    from mvcdb.remote.localpg import start_cluster

    cluster = start_cluster()
    atexit.register(cluster.stop)
    return cluster


@functools.cache
def _scratch_database(server: PgServer) -> str:
    """One scratch database per server for the session (creating one per test costs ~0.5 s)."""
    import psycopg

    name = f"mvcdb_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(server.admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    atexit.register(drop)  # runs before the cluster's own stop (registered earlier)
    return server.url_for(name)


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """A URL (password included) of a database with no mvcdb schema in it: a fresh remote."""
    import psycopg

    url = _scratch_database(pg_server)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS mvcdb CASCADE")
    return url


@pytest.fixture
def pg_env(pg_server: PgServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """PGPASSWORD set (for remotes stored without a password); returns the env for subprocesses."""
    monkeypatch.setenv("PGPASSWORD", pg_server.password)
    return {**os.environ, "PGPASSWORD": pg_server.password}


def without_password(url: str) -> str:
    parts = urlsplit(url)
    userinfo, _, host = parts.netloc.rpartition("@")
    return urlunsplit((parts.scheme, f"{userinfo.partition(':')[0]}@{host}", parts.path, parts.query, ""))
