"""The remote's public Python API (mvcdb.clone, Database.remotes/add_remote/remove_remote/fetch),
`mvcdb fetch`, and lazy clones made whole offline: by fetching, or by merging a full file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import remote_helpers
from click.testing import CliRunner
from remote_helpers import without_password

import mvcdb
from mvcdb.cli.app import cli

pg_server = remote_helpers.pg_server
pg_url = remote_helpers.pg_url
pg_env = remote_helpers.pg_env

#: Nothing listens here: a lazy clone pointed at it must manage without its server.
NOWHERE = "postgresql://nobody@127.0.0.1:1/gone"
STUB = 15


def _two_versions(path: Path) -> tuple[list[str], dict[str, dict[str, np.ndarray]]]:
    """Two versions with chunked parameters of their own (and one shared frozen tensor)."""
    rng = np.random.default_rng(7)
    frozen = rng.standard_normal((200, 100)).astype(np.float32)
    with mvcdb.open(path) as db:
        v1 = db.record("net", params={"frozen": frozen, "head": rng.standard_normal(4000)})
        v2 = db.record("net", params={"frozen": frozen, "head": rng.standard_normal(4000)}, parent=v1)
        return [v1.id, v2.id], {v: db.restore(v) for v in (v1.id, v2.id)}


def _stubs(db: mvcdb.Database) -> int:
    return int(db.conn.execute(f"SELECT count(*) FROM chunks WHERE codec = {STUB}").fetchone()[0])


def _offline(db: mvcdb.Database) -> None:
    """Point the clone's remote at a server that is not there."""
    db.remove_remote("origin")
    db.add_remote("origin", NOWHERE)


def _assert_restores(db: mvcdb.Database, want: dict[str, dict[str, np.ndarray]]) -> None:
    for vid, params in want.items():
        got = db.restore(vid)
        assert got.keys() == params.keys()
        for k, want_k in params.items():
            assert got[k].dtype == want_k.dtype and got[k].tobytes() == want_k.tobytes()


def test_remotes_are_managed_from_python(tmp_path: Path, pg_url: str, pg_env: dict[str, str]) -> None:
    with mvcdb.open(tmp_path / "a.db") as db:
        assert db.remotes() == []
        added = db.add_remote("origin", pg_url)
        assert isinstance(added, mvcdb.Remote) and added.url == without_password(pg_url)  # never stored
        with pytest.raises(mvcdb.MvcdbError, match="already exists"):
            db.add_remote("origin", pg_url)
        with pytest.raises(mvcdb.MvcdbError, match="invalid remote name"):
            db.add_remote("has space", pg_url)
        with pytest.raises(mvcdb.MvcdbError, match="not a PostgreSQL URL"):
            db.add_remote("web", "https://example.org/x")
        assert [r.name for r in db.remotes()] == ["origin"]
    with mvcdb.open(tmp_path / "a.db", readonly=True) as ro:
        assert [r.to_dict()["name"] for r in ro.remotes()] == ["origin"]
        with pytest.raises(mvcdb.ReadOnlyError):
            ro.add_remote("other", pg_url)
        with pytest.raises(mvcdb.ReadOnlyError):
            ro.remove_remote("origin")
    with mvcdb.open(tmp_path / "a.db") as db:
        db.remove_remote("origin")
        with pytest.raises(mvcdb.MvcdbError, match="no remote named 'origin'"):
            db.remove_remote("origin")
        assert db.remotes() == []
    # the CLI goes through the same calls
    runner, path = CliRunner(), str(tmp_path / "a.db")
    assert runner.invoke(cli, ["--db", path, "remote", "add", "team", pg_url]).exit_code == 0
    listed = runner.invoke(cli, ["--db", path, "remote", "list", "--json"])
    assert [r["name"] for r in json.loads(listed.output)] == ["team"]


def test_mvcdb_clone_copies_everything(tmp_path: Path, pg_url: str, pg_env: dict[str, str]) -> None:
    ids, want = _two_versions(tmp_path / "a.db")
    with mvcdb.open(tmp_path / "a.db") as a:
        a.push(pg_url)
    report = mvcdb.clone(pg_url, tmp_path / "b.db")
    assert isinstance(report, mvcdb.TransferReport)
    assert report.versions == 2 and report.stubs == 0 and report.remote == "origin"
    with mvcdb.open(tmp_path / "b.db") as b:
        assert [r.name for r in b.remotes()] == ["origin"]
        _offline(b)
        _assert_restores(b, want)
        assert b.fetch().chunks == 0  # not a lazy clone: nothing to fetch
    with pytest.raises(mvcdb.MvcdbError, match="already exists"):
        mvcdb.clone(pg_url, tmp_path / "b.db")
    with pytest.raises(mvcdb.MvcdbError, match="must be a file path"):
        mvcdb.clone(pg_url, 42)  # type: ignore[arg-type]


def test_fetch_makes_a_lazy_clone_restorable_offline(
    tmp_path: Path, pg_url: str, pg_env: dict[str, str]
) -> None:
    ids, want = _two_versions(tmp_path / "a.db")
    with mvcdb.open(tmp_path / "a.db") as a:
        a.push(pg_url)
    assert mvcdb.clone(pg_url, tmp_path / "lazy.db", lazy=True).stubs > 0
    runner = CliRunner()
    lazy = str(tmp_path / "lazy.db")
    first = runner.invoke(cli, ["--db", lazy, "fetch", ids[0][:12], "--json"])
    assert first.exit_code == 0, first.output
    fetched = json.loads(first.output)
    assert fetched["remote"] == "origin" and fetched["chunks"] > 0 and fetched["bytes"] > 0
    with mvcdb.open(lazy) as lz:
        left = _stubs(lz)
        assert left > 0  # only v1's chunks came: v2's own head is still on the server
        _offline(lz)
        _assert_restores(lz, {ids[0]: want[ids[0]]})
        with pytest.raises(mvcdb.MvcdbError, match="127.0.0.1"):
            lz.restore(ids[1])  # v2 still needs the server, which is gone
        lz.remove_remote("origin")
        lz.add_remote("origin", pg_url)
        progress: list[tuple[int, int, str]] = []
        report = lz.fetch(progress=lambda done, total, what: progress.append((done, total, what)))
        assert report.chunks == left and _stubs(lz) == 0
        assert progress and progress[-1][0] == progress[-1][1] > 0 and progress[-1][2] == "chunks"
        _offline(lz)
        _assert_restores(lz, want)
    again = runner.invoke(cli, ["--db", lazy, "fetch"])
    assert again.exit_code == 0 and "Nothing to fetch" in again.output
    unknown = runner.invoke(cli, ["--db", lazy, "fetch", "no-such-tag"])
    assert unknown.exit_code != 0 and "no-such-tag" in unknown.output and "Traceback" not in unknown.output


def test_merging_a_full_file_fills_a_lazy_clones_stubs(
    tmp_path: Path, pg_url: str, pg_env: dict[str, str]
) -> None:
    """A teammate's full file holds the bytes a lazy clone lacks: merging it makes every version
    restorable without the server (it used to leave the stubs as they were)."""
    ids, want = _two_versions(tmp_path / "a.db")
    with mvcdb.open(tmp_path / "a.db") as a:
        a.push(pg_url)
    mvcdb.clone(pg_url, tmp_path / "lazy.db", lazy=True)
    with mvcdb.open(tmp_path / "lazy.db") as lz:
        stubs = _stubs(lz)
        assert stubs > 0
        report = lz.merge(tmp_path / "a.db")
        assert report.versions_added == [] and report.chunks_added == stubs and _stubs(lz) == 0
        _offline(lz)
        _assert_restores(lz, want)
        assert lz.verify().ok
    with mvcdb.open(tmp_path / "lazy.db") as lz:  # filled for good
        _assert_restores(lz, want)
