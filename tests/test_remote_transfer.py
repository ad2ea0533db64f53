"""Team remotes on a real PostgreSQL: push, pull and clone round trips, tags as refs, lazy clones,
credentials, and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import remote_helpers
from click.testing import CliRunner
from remote_helpers import PgServer, without_password

import mvcdb
from mvcdb.cli.app import cli
from mvcdb.remote import transfer, urls
from mvcdb.remote.transfer import PushRejectedError

# the PostgreSQL fixtures (a session server, a fresh database per test, PGPASSWORD)
pg_server = remote_helpers.pg_server
pg_url = remote_helpers.pg_url
pg_env = remote_helpers.pg_env


def _history(db: mvcdb.Database, n: int = 4, *, seed: int = 0, model: str = "net") -> list[mvcdb.Version]:
    """A chain of n versions sharing a frozen layer, with metrics, metadata and a trajectory."""
    rng = np.random.default_rng(seed)
    frozen = rng.standard_normal((300, 200)).astype(np.float32)
    head = rng.standard_normal(500).astype(np.float64)
    out: list[mvcdb.Version] = []
    for i in range(n):
        head = head + rng.standard_normal(500) * 1e-3
        out.append(
            db.record(
                model,
                params={"frozen": frozen, "head": head, "step": np.int64(i), "c": np.array([1 + 2j])},
                metrics={"loss": 1.0 / (i + 1), "odd": float("nan") if i % 2 else 0.5},
                metadata={"train_set": f"part-{i}.csv", "lr": 0.1},
                trajectory={"step": np.arange(20), "loss": np.linspace(1, 0, 20) + i},
                parent=out[-1] if out else None,
                message=f"version {i}",
            )
        )
    return out


def _assert_same(a: mvcdb.Database, b: mvcdb.Database, ids: list[str]) -> None:
    for vid in ids:
        assert a.get(vid).to_dict() == b.get(vid).to_dict()  # to_dict: NaN metrics compare equal
        pa, pb = a.restore(vid), b.restore(vid)
        assert pa.keys() == pb.keys()
        for k in pa:
            assert pa[k].dtype == pb[k].dtype and pa[k].shape == pb[k].shape
            assert pa[k].tobytes() == pb[k].tobytes()
        ta, tb = a.trajectory(vid), b.trajectory(vid)
        assert all(ta[k].tobytes() == tb[k].tobytes() for k in ta)
        assert a.tensors(vid) == b.tensors(vid)


def _remote_counts(url: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(url) as conn:
        return {
            t: int(conn.execute(f"SELECT count(*) FROM mvcdb.{t}").fetchone()[0])  # type: ignore[index]
            for t in ("versions", "chunks", "lineage", "tensors", "tensor_chunks", "tags", "tag_history")
        }


def test_push_pull_round_trip_is_bit_identical_and_idempotent(tmp_path: Path, pg_url: str) -> None:
    with mvcdb.open(tmp_path / "a.db") as a, mvcdb.open(tmp_path / "b.db") as b:
        vs = _history(a)
        a.tag(vs[-1], "production")
        first = a.push(pg_url)
        assert first.versions == 4 and first.chunks > 0 and first.tags_moved == ["production"]
        counts = _remote_counts(pg_url)
        second = a.push(pg_url)
        assert (second.versions, second.chunks, second.bytes, second.tags_moved) == (0, 0, 0, [])
        assert _remote_counts(pg_url) == counts
        got = b.pull(pg_url)
        assert got.versions == 4 and got.chunks == first.chunks
        assert b.tags() == a.tags()
        assert [m.to_id for m in b.tag_history("production")] == [vs[-1].id]
        _assert_same(a, b, [v.id for v in vs])
        again = b.pull(pg_url)
        assert (again.versions, again.chunks, again.tags_moved) == (0, 0, [])
        # pulled chunks carry the seeded XXH3 check again (the remote keeps codecs 0-2): restores
        # check it instead of re-hashing, and it catches damage
        codecs = {c for (c,) in b.conn.execute("SELECT DISTINCT codec FROM chunks")}
        assert codecs and codecs <= {5, 6, 7}
        biggest = "SELECT cid, length(data) FROM chunks ORDER BY length(data) DESC"
        cid, size = b.conn.execute(biggest).fetchone()
        with b.conn.blobopen("chunks", "data", cid) as blob:
            blob.seek(size - 1)
            last = blob.read(1)
            blob.seek(size - 1)
            blob.write(bytes([last[0] ^ 0xFF]))
        with pytest.raises(mvcdb.IntegrityError):
            for v in vs:
                b.restore(v.id)
        # the remote's rows describe the same versions
        import psycopg

        with psycopg.connect(pg_url) as conn:
            row = conn.execute(
                "SELECT v.model, m.value FROM mvcdb.versions v JOIN mvcdb.metrics m ON m.version_id = v.id"
                " WHERE v.id = %s AND m.name = 'loss'",
                (vs[1].id,),
            ).fetchone()
        assert row == ("net", 0.5)


def test_pull_only_what_is_missing_and_refs_with_ancestors(tmp_path: Path, pg_url: str) -> None:
    with mvcdb.open(tmp_path / "a.db") as a:
        vs = _history(a, 3)
        other = _history(a, 2, seed=5, model="other")
        a.tag(vs[1], "candidate")
        a.push(pg_url, [vs[1].id[:8]])  # a prefix pushes that version and its ancestors only
        assert _remote_counts(pg_url)["versions"] == 2
        a.push(pg_url, "candidate")  # naming a tag pushes the tag too (one ref may be a plain string)
        assert _remote_counts(pg_url)["tags"] == 1
        a.push(pg_url)
        with mvcdb.open(tmp_path / "b.db") as b:
            got = b.pull(pg_url, ["other@latest"])
            assert got.versions == 2 and b.tags() == {}
            assert {v.id for v in b.versions()} == {v.id for v in other}
            got = b.pull(pg_url, ["candidate~1"])
            assert got.versions == 1
            got = b.pull(pg_url)
            assert got.versions == 2 and b.tags() == {"candidate": vs[1].id}
            _assert_same(a, b, [v.id for v in vs + other])


def test_clone_via_cli_round_trip(tmp_path: Path, pg_url: str, pg_env: dict[str, str]) -> None:
    with mvcdb.open(tmp_path / "a.db") as a:
        vs = _history(a, 3)
        a.tag(vs[-1], "best")
    runner = CliRunner()
    res = runner.invoke(cli, ["--db", str(tmp_path / "a.db"), "remote", "add", "origin", pg_url])
    assert res.exit_code == 0, res.output
    assert "password removed" in res.output
    res = runner.invoke(cli, ["--db", str(tmp_path / "a.db"), "push"])
    assert res.exit_code == 0, res.output
    assert "Pushed 3 versions" in res.output
    res = runner.invoke(cli, ["--db", str(tmp_path / "a.db"), "push", "origin"])
    assert res.exit_code == 0 and "up to date" in res.output
    res = runner.invoke(cli, ["clone", without_password(pg_url), str(tmp_path / "c.db")])
    assert res.exit_code == 0, res.output
    assert "Cloned 3 versions" in res.output
    with mvcdb.open(tmp_path / "a.db") as a, mvcdb.open(tmp_path / "c.db") as c:
        _assert_same(a, c, [v.id for v in vs])
        assert c.tags() == {"best": vs[-1].id}
        assert [r.name for r in urls.list_remotes(c.conn)] == ["origin"]
    res = runner.invoke(cli, ["--db", str(tmp_path / "c.db"), "pull", "--json"])
    assert res.exit_code == 0 and '"versions": 0' in res.output
    res = runner.invoke(cli, ["clone", pg_url, str(tmp_path / "c.db")])
    assert res.exit_code == 1 and "already exists" in res.output


def test_tags_move_only_forward_unless_forced(tmp_path: Path, pg_url: str) -> None:
    with mvcdb.open(tmp_path / "a.db") as a:
        vs = _history(a, 3)
        a.tag(vs[1], "production")
        a.push(pg_url)
        a.tag(vs[2], "production")  # a descendant: fast-forward
        assert a.push(pg_url).tags_moved == ["production"]
        a.tag(vs[0], "production")  # backwards: refused
        with pytest.raises(PushRejectedError, match="production"):
            a.push(pg_url)
        branch = a.record("net", params={"x": np.zeros(3)}, parent=vs[0])
        a.tag(branch, "production")  # a sibling branch: refused, but the version itself is pushed
        with pytest.raises(PushRejectedError, match="not a fast-forward"):
            a.push(pg_url)
        assert _remote_counts(pg_url)["versions"] == 4
        with mvcdb.open(tmp_path / "b.db") as b:
            b.pull(pg_url)
            assert b.tags()["production"] == vs[2].id
        report = a.push(pg_url, force=True)
        assert report.tags_moved == ["production"]
    import psycopg

    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT from_id, to_id, forced FROM mvcdb.tag_history WHERE name = 'production' ORDER BY seq"
        ).fetchall()
    assert rows == [(None, vs[1].id, False), (vs[1].id, vs[2].id, False), (vs[2].id, branch.id, True)]
    runner = CliRunner()
    with mvcdb.open(tmp_path / "a.db") as a:
        a.tag(vs[0], "production")
    urls_db = str(tmp_path / "a.db")
    res = runner.invoke(cli, ["--db", urls_db, "push", pg_url])
    assert res.exit_code == 1
    # --json still prints what was (not) done: the refusal is exactly what a script needs to see
    res = runner.invoke(cli, ["--db", urls_db, "push", pg_url, "--json"])
    assert res.exit_code == 1 and "not a fast-forward" in res.stderr
    shown = json.loads(res.stdout)
    assert shown["versions"] == 0 and len(shown["tags_rejected"]) == 1
    assert "production" in shown["tags_rejected"][0]
    res = runner.invoke(cli, ["--db", urls_db, "push", pg_url, "production", "--force"])
    assert res.exit_code == 0, res.output


def test_pull_fast_forwards_local_tags_and_keeps_diverged_ones(tmp_path: Path, pg_url: str) -> None:
    with mvcdb.open(tmp_path / "a.db") as a:
        vs = _history(a, 3)
        a.tag(vs[0], "production")
        a.tag(vs[0], "best")
        a.push(pg_url)
        with mvcdb.open(tmp_path / "b.db") as b:
            b.pull(pg_url)
            mine = b.record("net", params={"x": np.ones(2)}, parent=vs[0])
            b.tag(mine, "best")  # moved elsewhere locally
            a.tag(vs[2], "production")
            a.tag(vs[2], "best")
            a.push(pg_url)
            report = b.pull(pg_url)
            assert report.tags_moved == ["production"] and report.tags_kept == ["best"]
            assert b.tags() == {"production": vs[2].id, "best": mine.id}
            kept = b.tag_history("best")  # the remote's moves came in; the history ends at mine
            assert any(m.to_id == vs[2].id for m in kept) and kept[-1].to_id == mine.id
            moves = [(m.from_id, m.to_id, m.author) for m in b.tag_history("production")]
            assert (vs[0].id, vs[2].id, "tester") in moves


def test_lazy_clone_fetches_parameters_on_restore(
    tmp_path: Path, pg_url: str, pg_env: dict[str, str]
) -> None:
    with mvcdb.open(tmp_path / "a.db") as a:
        vs = _history(a, 3)
        a.push(pg_url)
    report = transfer.clone(pg_url, tmp_path / "lazy.db", lazy=True)
    assert report.versions == 3 and report.stubs > 0
    with mvcdb.open(tmp_path / "a.db") as a, mvcdb.open(tmp_path / "lazy.db") as lz:
        stubs_before = lz.conn.execute("SELECT count(*) FROM chunks WHERE codec = 15").fetchone()[0]
        assert stubs_before == report.stubs
        stats = lz.stats()  # unfetched chunks are no "compression" (this said ~7,500x)
        assert stats.unfetched_chunks == stubs_before and stats.compression_ratio < 3
        assert f"{stubs_before} not fetched yet" in str(stats)
        # metadata, metrics, lineage and trajectories are all there without fetching
        assert lz.get(vs[2].id).to_dict() == a.get(vs[2].id).to_dict()
        assert lz.trajectory(vs[1].id)["loss"].tobytes() == a.trajectory(vs[1].id)["loss"].tobytes()
        size_lazy = (tmp_path / "lazy.db").stat().st_size
        got = lz.restore(vs[1].id)
        want = a.restore(vs[1].id)
        assert all(got[k].tobytes() == want[k].tobytes() for k in want)
        stubs_after = lz.conn.execute("SELECT count(*) FROM chunks WHERE codec = 15").fetchone()[0]
        assert 0 < stubs_after < stubs_before  # fetched only what v1 needs, and kept it
    with mvcdb.open(tmp_path / "lazy.db") as lz:  # kept: a reopened file needs no server for v1
        assert lz.restore(vs[1].id)["head"].tobytes() == want["head"].tobytes()
        _assert_same(a_db := mvcdb.open(tmp_path / "a.db"), lz, [v.id for v in vs])
        a_db.close()
        assert lz.conn.execute("SELECT count(*) FROM chunks WHERE codec = 15").fetchone()[0] == 0
    assert size_lazy < (tmp_path / "a.db").stat().st_size


def test_a_lazy_clone_whose_remote_is_removed_and_added_again_still_fetches(
    tmp_path: Path, pg_url: str, pg_env: dict[str, str]
) -> None:
    """The server moved: remote remove + remote add under the same name. The stubs still to fetch
    come from the name added again (removing the remote dropped the link for good)."""
    with mvcdb.open(tmp_path / "a.db") as a:
        vs = _history(a, 2)
        a.push(pg_url)
        want = a.restore(vs[1].id)
    transfer.clone(pg_url, tmp_path / "lazy.db", lazy=True)
    with mvcdb.open(tmp_path / "lazy.db") as lz:
        urls.remove(lz.conn, "origin")
    with mvcdb.open(tmp_path / "lazy.db") as lz:  # reopened: the link is read from the file
        with pytest.raises(mvcdb.MvcdbError, match="no remote named 'origin'"):
            lz.restore(vs[1].id)
        urls.add(lz.conn, "origin", pg_url)
    with mvcdb.open(tmp_path / "lazy.db") as lz:
        got = lz.restore(vs[1].id)
        assert lz.pull().versions == 0 and lz.push().versions == 0  # no name: origin, as in the CLI
    assert all(got[k].tobytes() == want[k].tobytes() for k in want)


def test_pull_keeps_a_tag_deleted_here_deleted(tmp_path: Path, pg_url: str) -> None:
    """A tag deleted locally is not brought back by the next pull (as merge keeps ours, deleted)."""
    with mvcdb.open(tmp_path / "a.db") as a:
        v = a.record("m", {"w": np.ones(2)}, tags=["t", "u"])
        a.push(pg_url)
        a.untag("t")
        report = a.pull(pg_url)
        assert report.tags_kept == ["t"] and a.tags() == {"u": v.id}
        a.tag(v, "t")  # tagging again is the way back
        assert a.pull(pg_url).tags_kept == [] and a.tags() == {"t": v.id, "u": v.id}


def test_push_after_rm_force_of_a_parent(tmp_path: Path, pg_url: str, pg_env: dict[str, str]) -> None:
    """A child whose parent was removed here with rm --force: pushed when the remote has the parent
    (the local lineage cannot see it any more); else a plain push sends everything else and says
    what it left out, and a push naming it says why it cannot."""
    with mvcdb.open(tmp_path / "a.db") as a:
        on_remote = a.record("m", {"w": np.ones(3)}, tags="staging")
        a.push(pg_url, ["staging"])
        child = a.record("m", {"w": np.ones(3) * 2}, parent=on_remote)
        never_pushed = a.record("m", {"w": np.ones(3) * 3})
        orphan = a.record("m", {"w": np.ones(3) * 4}, parent=never_pushed, tags="mine")
        grandchild = a.record("m", {"w": np.ones(3) * 5}, parent=orphan)
        unrelated = a.record("u", {"w": np.zeros(2)}, tags="other")
        a.rm(on_remote, force=True)
        a.rm(never_pushed, force=True)
        assert a.push(pg_url, [child.id]).versions == 1  # its parent is on the remote
        with pytest.raises(mvcdb.MvcdbError, match=f"cannot push version {orphan.id[:12]}: its parent"):
            a.push(pg_url, ["mine"])
        report = a.push(pg_url)
        assert report.versions == 1 and report.tags_moved == ["other"]  # unrelated, and its tag
        assert sorted(s.split()[0] for s in report.skipped) == sorted([orphan.id[:12], grandchild.id[:12]])
    transfer.clone(pg_url, tmp_path / "b.db")
    with mvcdb.open(tmp_path / "b.db") as b:
        assert {v.id for v in b.versions()} == {on_remote.id, child.id, unrelated.id}
        assert b.get(child.id).parents == (on_remote.id,) and b.verify().ok


def test_lazy_clone_opened_read_only_still_fetches_and_keeps(
    tmp_path: Path, pg_url: str, pg_env: dict[str, str]
) -> None:
    with mvcdb.open(tmp_path / "a.db") as a:
        vs = _history(a, 2)
        a.push(pg_url)
        want = a.restore(vs[0].id)
    transfer.clone(pg_url, tmp_path / "lazy.db", lazy=True)
    with mvcdb.open(tmp_path / "lazy.db", readonly=True) as lz:  # e.g. the TUI browsing
        got = lz.restore(vs[0].id)
        assert all(got[k].tobytes() == want[k].tobytes() for k in want)
    os.environ.pop("PGPASSWORD")  # kept: no server needed any more
    with mvcdb.open(tmp_path / "lazy.db", readonly=True) as lz:
        assert lz.restore(vs[0].id)["head"].tobytes() == want["head"].tobytes()
        with pytest.raises(mvcdb.MvcdbError, match="no password supplied"):
            lz.restore(vs[1].id)


def test_remote_schema_is_versioned(tmp_path: Path, pg_url: str) -> None:
    import psycopg

    with mvcdb.open(tmp_path / "a.db") as a:
        _history(a, 1)
        a.push(pg_url)
        with psycopg.connect(pg_url) as conn:
            assert conn.execute("SELECT version FROM mvcdb.schema_version").fetchall() == [(1,)]
            conn.execute("INSERT INTO mvcdb.schema_version (version, name) VALUES (99, 'future')")
        with pytest.raises(mvcdb.SchemaVersionError, match="upgrade mvcdb"):
            a.push(pg_url)
        with mvcdb.open(tmp_path / "b.db") as b, pytest.raises(mvcdb.SchemaVersionError):
            b.pull(pg_url)


def test_credentials_are_never_written_into_the_file(
    tmp_path: Path, pg_url: str, pg_server: PgServer
) -> None:
    secret = pg_server.password
    assert secret and secret in pg_url
    path = tmp_path / "a.db"
    with mvcdb.open(path) as a:
        _history(a, 2)
        urls.add(a.conn, "origin", pg_url)
        urls.add(a.conn, "other", without_password(pg_url) + f"?password={secret}&sslmode=prefer")
        a.push(pg_url)  # a URL given directly is used, not stored
        stored = {r.name: r.url for r in urls.list_remotes(a.conn)}
    assert stored["origin"] == without_password(pg_url)
    assert stored["other"] == without_password(pg_url) + "?sslmode=prefer"
    transfer.clone(pg_url, tmp_path / "c.db")
    runner = CliRunner()
    for args in (["push", pg_url], ["pull", pg_url], ["remote", "list"], ["push", pg_url, "nosuchref"]):
        res = runner.invoke(cli, ["--db", str(path), *args])
        assert secret not in res.output and secret not in res.stderr, (args, res.output)
    res = runner.invoke(cli, ["clone", "--lazy", pg_url, str(tmp_path / "lazy.db")])
    assert res.exit_code == 0 and secret not in res.output
    for f in tmp_path.iterdir():
        assert secret.encode() not in f.read_bytes(), f


def test_bad_urls_and_unreachable_server_give_one_line_errors(
    tmp_path: Path, pg_url: str, pg_server: PgServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = str(tmp_path / "a.db")
    with mvcdb.open(db) as a:
        _history(a, 1)
    monkeypatch.delenv("PGPASSWORD", raising=False)
    runner = CliRunner()

    def check(args: tuple[str, ...], expected: str, code: int = 1) -> None:
        res = runner.invoke(cli, ["--db", db, *args])
        assert res.exit_code == code, (args, res.output)
        assert expected in res.stderr, (args, res.stderr)
        assert len(res.stderr.strip().splitlines()) == (1 if code else 0), res.stderr
        assert "Traceback" not in res.stderr and ":pw@" not in res.stderr

    check(("remote", "add", "x", "mysql://host/db"), "not a PostgreSQL URL")
    check(("remote", "add", "x", "postgresql://host:99999/db"), "bad port")
    check(("remote", "add", "bad name", "postgresql://host/db"), "invalid remote name")
    check(("push", "nosuch"), "no remote named 'nosuch'")
    check(("push",), "no remote configured")
    check(("push", "postgresql://mvcdb:pw@127.0.0.1:1/db"), "cannot connect to remote")
    check(("pull", "postgresql://127.0.0.1:1/db?connect_timeout=2"), "cannot connect to remote")
    check(("clone", "postgresql://127.0.0.1:1/db", str(tmp_path / "new.db")), "cannot connect to remote")
    check(("push", "postgresql://127.0.0.1/db?bogus_option=1"), "invalid remote URL")
    assert not (tmp_path / "new.db").exists()
    check(("remote", "add", "origin", pg_url), "", 0)
    res = runner.invoke(cli, ["--db", db, "remote", "list"])
    assert "origin" in res.output and pg_server.password not in res.output
    check(("pull", "origin"), "no password supplied")  # stored without one, none in the environment
    monkeypatch.setenv("PGPASSWORD", pg_server.password)
    check(("pull", "origin"), "holds no mvcdb data yet")  # an empty remote: nothing to pull yet
    check(("remote", "remove", "origin"), "", 0)
    check(("remote", "remove", "origin"), "no remote named")
    # the real command line: one line on stderr, exit status 1
    env = {**os.environ, "PGPASSWORD": "wrong"}
    res = subprocess.run(
        [sys.executable, "-m", "mvcdb", "--db", db, "push", without_password(pg_url)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert res.returncode == 1 and "password authentication failed" in res.stderr
    assert res.stderr.startswith("mvcdb: error: ") and len(res.stderr.strip().splitlines()) == 1


def test_push_from_lazy_clone_to_another_remote_needs_the_chunks(
    tmp_path: Path, pg_url: str, pg_server: PgServer, pg_env: dict[str, str]
) -> None:
    import psycopg

    with mvcdb.open(tmp_path / "a.db") as a:
        vs = _history(a, 2)
        a.push(pg_url)
    transfer.clone(pg_url, tmp_path / "lazy.db", lazy=True)
    second = pg_url.rsplit("/", 1)[0] + "/" + pg_url.rsplit("/", 1)[1] + "_b"
    with psycopg.connect(pg_server.admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{second.rsplit("/", 1)[1]}"')
    try:
        with mvcdb.open(tmp_path / "lazy.db") as lz:
            with pytest.raises(mvcdb.MvcdbError, match="never fetched"):
                lz.push(second)
            lz.push("origin")  # to its own remote: nothing missing, nothing to send
            lz.restore(vs[0].id)
            lz.push(second, [vs[0].id])
    finally:
        with psycopg.connect(pg_server.admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{second.rsplit("/", 1)[1]}" WITH (FORCE)')


def test_corrupt_chunk_on_the_remote_is_refused_on_pull(tmp_path: Path, pg_url: str) -> None:
    import psycopg

    with mvcdb.open(tmp_path / "a.db") as a:
        _history(a, 1)
        a.push(pg_url)
    with psycopg.connect(pg_url) as conn:
        conn.execute(
            "UPDATE mvcdb.chunks SET data = set_byte(data, length(data) / 2,"
            " (get_byte(data, length(data) / 2) + 1) % 256)"
            " WHERE hash = (SELECT hash FROM mvcdb.chunks ORDER BY size DESC LIMIT 1)"
        )
    with mvcdb.open(tmp_path / "b.db") as b:
        with pytest.raises(mvcdb.IntegrityError, match="does not match its hash|is corrupt"):
            b.pull(pg_url)
        assert b.versions() == []


def test_hostile_manifest_on_the_remote_is_refused_on_pull(tmp_path: Path, pg_url: str) -> None:
    import psycopg

    from mvcdb.manifest import encode, version_id

    with mvcdb.open(tmp_path / "a.db") as a:
        _history(a, 1)
        a.push(pg_url)  # creates the schema
    blob = encode(
        model="net",
        parents=[],
        message="",
        author="mallory",
        created_at="2026-01-01T00:00:00.000000Z",
        metadata="not json",
        metrics={},
        tensors=[],
    )
    with psycopg.connect(pg_url) as conn:
        conn.execute(
            "INSERT INTO mvcdb.versions (id, model, created_at, manifest) VALUES (%s, 'net', '', %s)",
            (version_id(blob), blob),
        )
    with mvcdb.open(tmp_path / "b.db") as b:
        with pytest.raises(mvcdb.IntegrityError, match="invalid created_at or metadata"):
            b.pull(pg_url)
        assert b.versions() == []


def test_pulling_twice_does_not_duplicate_tag_history(tmp_path: Path, pg_url: str) -> None:
    """Tag creations have a NULL from_id: UNIQUE treats NULLs as distinct, so inserts must not rely on it."""
    with mvcdb.open(tmp_path / "a.db") as a:
        v = a.record("m", {"w": np.ones(3)})
        a.tag(v.id, "prod")
        a.push(pg_url)
    with mvcdb.open(tmp_path / "b.db") as b:
        b.pull(pg_url)
        first = b.conn.execute("SELECT count(*) FROM tag_history").fetchone()[0]
        b.pull(pg_url)
        assert b.conn.execute("SELECT count(*) FROM tag_history").fetchone()[0] == first == 1
