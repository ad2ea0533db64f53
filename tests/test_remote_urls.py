"""Remote URLs (no server needed): validation, password stripping, redaction, the remotes table,
and that `import mvcdb` never loads the PostgreSQL driver."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import mvcdb
from mvcdb.remote import urls


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        (
            "postgresql://alice:s3cret@db.example.org:5432/models",
            "postgresql://alice@db.example.org:5432/models",
        ),
        ("postgres://alice@db/models", "postgres://alice@db/models"),
        ("postgresql://:onlypw@db/models", "postgresql://db/models"),
        ("postgresql://a:p%40ss@[::1]:5433/m?sslmode=require", "postgresql://a@[::1]:5433/m?sslmode=require"),
        ("postgresql://u:pw@h1:5432,h2:5433/m", "postgresql://u@h1:5432,h2:5433/m"),
        ("postgresql://u@h/m?password=pw&application_name=x", "postgresql://u@h/m?application_name=x"),
        ("postgresql:///models?service=team", "postgresql:///models?service=team"),
        # the passphrase of the client certificate's key is a credential too
        ("postgresql://u@h/m?sslpassword=pw&sslmode=verify-full", "postgresql://u@h/m?sslmode=verify-full"),
    ],
)
def test_passwords_are_stripped(given: str, stored: str) -> None:
    assert urls.strip_password(urls.check_url(given)) == stored
    shown = urls.redact(given)
    assert ":pw@" not in shown and "password=pw" not in shown and "s3cret" not in shown
    assert urls.strip_password(stored) == stored


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("", "empty remote URL"),
        ("mysql://h/db", "not a PostgreSQL URL"),
        ("/path/to/file.db", "not a PostgreSQL URL"),
        ("postgresql://h:70000/db", "bad port"),
        ("postgresql://h:abc/db", "bad port"),
        ("postgresql://h/db\n", "control characters"),
        ("postgresql://", "no host and no database"),
    ],
)
def test_bad_urls_are_refused_with_a_reason(bad: str, why: str) -> None:
    with pytest.raises(mvcdb.MvcdbError, match=why):
        urls.check_url(bad)


def test_remotes_table_round_trip(tmp_path: Path) -> None:
    with mvcdb.open(tmp_path / "a.db") as db:
        assert urls.list_remotes(db.conn) == []
        with pytest.raises(mvcdb.MvcdbError, match="no remote configured"):
            urls.resolve(db.conn, None)
        urls.add(db.conn, "origin", "postgresql://u:pw@h/m")
        assert urls.resolve(db.conn, None) == ("origin", "postgresql://u@h/m")
        with pytest.raises(mvcdb.MvcdbError, match="already exists"):
            urls.add(db.conn, "origin", "postgresql://h/other")
        urls.add(db.conn, "backup", "postgresql://h/backup")
        assert urls.resolve(db.conn, None)[0] == "origin"
        assert urls.resolve(db.conn, "postgresql://x/y") == (None, "postgresql://x/y")
        urls.remove(db.conn, "origin")
        assert urls.resolve(db.conn, None)[0] == "backup"  # the only one left
        urls.add(db.conn, "third", "postgresql://h/3")
        with pytest.raises(mvcdb.MvcdbError, match="several remotes"):
            urls.resolve(db.conn, None)
        with pytest.raises(mvcdb.MvcdbError, match="invalid remote name"):
            urls.add(db.conn, "a b", "postgresql://h/m")


def test_import_mvcdb_never_imports_the_driver() -> None:
    code = (
        "import sys, mvcdb, mvcdb.database, mvcdb.remote, mvcdb.remote.transfer, mvcdb.cli.app; "
        "print('psycopg' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
