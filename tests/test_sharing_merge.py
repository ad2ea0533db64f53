"""Merging teammates' files and handing over bundles: idempotent, commutative, tamper-proof."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_error, run
from reliability_helpers import content, digest, flip_chunk_byte, tamper

import mvcdb


def params(seed: int, n: int = 5_000) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"w": rng.standard_normal(n).astype(np.float32), "frozen": np.ones(1000), "b": np.int64(seed)}


@pytest.fixture
def teammates(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    """Two files with a shared root, each with versions of its own and a tag on each side."""
    a, b = tmp_path / "alice.db", tmp_path / "bob.db"
    ids: dict[str, str] = {}
    with mvcdb.open(a) as db:
        root = db.record(
            "net", params(0), metrics={"loss": 1.0}, metadata={"by": "both"}, tags=["production"]
        )
        ids["root"] = root.id
    b.write_bytes(a.read_bytes())  # bob starts from a copy of alice's file
    with mvcdb.open(a) as db:
        with db.run("net", parent=root.id, metadata={"lr": 0.1}) as run:
            for step in range(20):
                run.log(step, loss=1.0 / (step + 1))
            ids["alice"] = run.commit(params=params(1), metrics={"loss": 0.5, "nan": float("nan")}).id
        db.tag(ids["alice"], "best")
        db.tag(ids["alice"], "production")
    with mvcdb.open(b) as db:
        ids["bob"] = db.record("net", params(2), metrics={"loss": 0.4}, parent=root.id, tags=["bob"]).id
        ids["bob2"] = db.record("net", params(3), parents=[ids["bob"], root.id], message="soup").id
        db.tag(ids["bob2"], "production")
    return a, b, ids


def test_merge_copies_everything_and_twice_changes_nothing(
    teammates: tuple[Path, Path, dict[str, str]],
) -> None:
    a, b, ids = teammates
    before_b = digest(b)
    with mvcdb.open(a) as db:
        report = db.merge(b)
        assert sorted(report.versions_added) == sorted([ids["bob"], ids["bob2"]])
        assert report.versions_present == 1 and report.chunks_added > 0
        assert report.tags_set == ["bob"]
        assert [(c.name, c.ours, c.theirs, c.took_theirs) for c in report.conflicts] == [
            ("production", ids["alice"], ids["bob2"], False)
        ]
        assert db.tags()["production"] == ids["alice"]  # kept local
        # bob's moves are copied in, and the history still ends where the tag is: one move
        # stamped by whoever merged records keeping it (it used to end at bob's version)
        last = db.tag_history("production")[-1]
        assert (last.from_id, last.to_id, last.author) == (ids["bob2"], ids["alice"], "tester")
        assert any(m.to_id == ids["bob2"] for m in db.tag_history("production"))
        once = content(db)
        again = db.merge(b)
        assert not again.changed and again.versions_present == 3
        assert content(db) == once
        for ref in ("bob", ids["bob2"]):
            got = db.restore(ref)
            assert got["w"].tobytes() == params(3 if ref != "bob" else 2)["w"].tobytes()
        assert db.get(ids["bob2"]).parents == (ids["bob"], ids["root"])
        assert db.verify().ok
    assert digest(b) == before_b  # the other file is only read


def test_merge_is_commutative_in_content(
    teammates: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    a, b, _ = teammates
    a2, b2 = tmp_path / "a2.db", tmp_path / "b2.db"
    a2.write_bytes(a.read_bytes())
    b2.write_bytes(b.read_bytes())
    with mvcdb.open(a2) as x, mvcdb.open(b2) as y:
        x.merge(b)
        y.merge(a)
        cx, cy = content(x), content(y)
        assert cx.pop("tags") != cy.pop("tags")  # production: each kept its own
        # ... and where the copied moves ended elsewhere, recorded that decision as one move,
        # so that each history ends where its tag is: the histories differ by that move alone
        hx, hy = set(cx.pop("tag_history")), set(cy.pop("tag_history"))
        assert len(hx ^ hy) == 1
        for db in (x, y):
            assert db.tag_history("production")[-1].to_id == db.tags()["production"]
        assert cx == cy


def test_theirs_takes_the_other_files_tags_and_records_the_move(
    teammates: tuple[Path, Path, dict[str, str]],
) -> None:
    a, b, ids = teammates
    with mvcdb.open(a) as db:
        report = db.merge(b, theirs=True)
        assert report.conflicts[0].took_theirs and "production" in report.tags_set
        assert db.tags()["production"] == ids["bob2"]
        last = db.tag_history("production")[-1]
        assert (last.from_id, last.to_id) == (ids["alice"], ids["bob2"])
        assert not db.merge(b, theirs=True).changed


def test_a_tag_deleted_here_is_not_resurrected_silently(tmp_path: Path) -> None:
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    with mvcdb.open(a) as db:
        v = db.record("m", {"w": np.ones(3)}, tags=["old"])
    b.write_bytes(a.read_bytes())
    with mvcdb.open(a) as db:
        db.untag("old")
        report = db.merge(b)
        assert [(c.name, c.ours) for c in report.conflicts] == [("old", None)]
        assert "old" not in db.tags()
        assert db.merge(b, theirs=True).tags_set == ["old"] and db.tags()["old"] == v.id


def test_export_bundle_reproduces_versions_exactly(
    teammates: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    a, b, ids = teammates
    bundle = tmp_path / "bundle.db"
    with mvcdb.open(b) as db:
        report = db.export([ids["bob2"]], bundle)
        assert sorted(report.versions_added) == sorted([ids["root"], ids["bob"], ids["bob2"]])
        expected = {ref: db.restore(ref) for ref in (ids["bob"], ids["bob2"])}
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("bundle")) == ["bundle.db"]
    with mvcdb.open(bundle, readonly=True) as db:
        assert set(db.tags()) == {"production", "bob"}
        assert db.verify().ok
    with mvcdb.open(a) as db:
        merged = db.merge(bundle)
        assert sorted(merged.versions_added) == sorted([ids["bob"], ids["bob2"]])
        for ref, want in expected.items():
            got = db.restore(ref)
            assert {k: (v.dtype, v.shape, v.tobytes()) for k, v in got.items()} == {
                k: (v.dtype, v.shape, v.tobytes()) for k, v in want.items()
            }
        assert db.get(ids["bob2"]).parents == (ids["bob"], ids["root"])


def test_export_contains_only_the_chosen_history(
    teammates: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    a, _, ids = teammates
    bundle = tmp_path / "small.db"
    with mvcdb.open(a) as db:
        db.export(["net@latest"], bundle)
        with pytest.raises(mvcdb.MvcdbError, match="already exists"):
            db.export([ids["root"]], bundle)
        with pytest.raises(mvcdb.RefError):
            db.export(["nope"], tmp_path / "never.db")
    assert not (tmp_path / "never.db").exists()
    with mvcdb.open(bundle) as db:
        assert sorted(v.id for v in db.versions()) == sorted([ids["root"], ids["alice"]])
        assert len(db.trajectory(ids["alice"])["loss"]) == 20


def test_rm_force_then_export_and_merge_keep_the_dangling_parent_noted(tmp_path: Path) -> None:
    src, dst = tmp_path / "src.db", tmp_path / "dst.db"
    with mvcdb.open(src) as db:
        root = db.record("m", {"w": np.ones(3)})
        child = db.record("m", {"w": np.zeros(3)}, parent=root)
        db.rm(root, force=True)
    with mvcdb.open(dst) as db:
        report = db.merge(src)
        assert report.versions_added == [child.id]
        assert any("in neither file" in n for n in report.notes)
        assert db.get(child.id).parents == ()
        assert db.verify().ok


# -- hostile sources ----------------------------------------------------------------------------


def refused(local: Path, other: Path, match: str) -> None:
    """Merging `other` is refused with `match`, and the local file's content is unchanged."""
    with mvcdb.open(local) as db:
        before = content(db)
        rows = db.conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
        with pytest.raises(mvcdb.MvcdbError, match=match):
            db.merge(other)
        assert content(db) == before
        assert db.conn.execute("SELECT count(*) FROM chunks").fetchone()[0] == rows  # no orphans left


def test_tampered_chunk_in_a_bundle_is_refused(
    teammates: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    a, b, ids = teammates
    bundle = tmp_path / "bundle.db"
    with mvcdb.open(b) as db:
        db.export([ids["bob2"]], bundle)
    flip_chunk_byte(
        bundle,
        "SELECT tc.cid FROM tensor_chunks tc JOIN versions v ON v.vid = tc.vid"
        " WHERE v.id = ? AND tc.name = 'w'",
        ids["bob2"],
    )
    refused(a, bundle, r"chunk [0-9a-f]{12} of param 'w' of version " + ids["bob2"][:12])


def test_export_of_a_damaged_chunk_says_export_and_leaves_no_bundle(
    teammates: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    _, b, ids = teammates
    flip_chunk_byte(
        b,
        "SELECT tc.cid FROM tensor_chunks tc JOIN versions v ON v.vid = tc.vid"
        " WHERE v.id = ? AND tc.name = 'w'",
        ids["bob2"],
    )
    bundle = tmp_path / "bundle.db"
    with mvcdb.open(b) as db, pytest.raises(mvcdb.MvcdbError) as refused_export:
        db.export([ids["bob2"]], bundle)
    message = str(refused_export.value)
    assert message.startswith(f"cannot export from {b}: chunk ") and message.endswith("no bundle was written")
    assert not bundle.exists()


def test_tampered_manifest_is_refused(teammates: tuple[Path, Path, dict[str, str]]) -> None:
    a, b, ids = teammates
    tamper(b, "UPDATE versions SET manifest = CAST(manifest || x'00' AS BLOB) WHERE id = ?", ids["bob"])
    refused(a, b, f"version {ids['bob'][:12]} does not match its id")


def test_forged_manifest_with_matching_id_but_lying_sizes_is_refused(
    teammates: tuple[Path, Path, dict[str, str]],
) -> None:
    """Someone rewrote a version coherently (new manifest, new id) but its chunks do not fit."""
    from mvcdb import manifest as mf

    a, b, ids = teammates
    with mvcdb.open(b) as db:
        blob = db.conn.execute("SELECT manifest FROM versions WHERE id = ?", (ids["bob"],)).fetchone()[0]
    m = mf.decode(blob)
    lying = [
        mf.ManifestTensor(
            t.kind,
            t.name,
            t.dtype,
            (t.shape[0] * 2,) if t.name == "w" else t.shape,
            t.nbytes * 2 if t.name == "w" else t.nbytes,
            t.hashes,
        )
        for t in m.tensors
    ]
    forged = mf.encode(
        model=m.model,
        parents=m.parents,
        message=m.message,
        author=m.author,
        created_at=m.created_at,
        metadata=m.metadata,
        metrics=dict(m.metrics),
        tensors=lying,
    )
    tamper(
        b, "UPDATE versions SET manifest = ?, id = ? WHERE id = ?", forged, mf.version_id(forged), ids["bob"]
    )
    refused(a, b, "hold .* bytes, not")


def test_missing_chunk_in_the_source_is_refused(teammates: tuple[Path, Path, dict[str, str]]) -> None:
    a, b, ids = teammates
    tamper(
        b,
        "DELETE FROM chunks WHERE cid IN (SELECT tc.cid FROM tensor_chunks tc"
        " JOIN versions v ON v.vid = tc.vid WHERE v.id = ? AND tc.name = 'w')",
        ids["bob"],
    )
    refused(a, b, "is missing from it")


def test_bad_tag_names_and_history_in_the_source_are_refused(
    teammates: tuple[Path, Path, dict[str, str]],
) -> None:
    a, b, _ = teammates
    tamper(b, "UPDATE tags SET name = '../../etc' WHERE name = 'bob'")
    refused(a, b, "invalid tag name")
    tamper(b, "UPDATE tags SET name = 'bob' WHERE name = '../../etc'")
    tamper(b, "UPDATE tag_history SET at = 'yesterday' WHERE name = 'bob'")
    refused(a, b, "invalid timestamp")


@pytest.mark.parametrize("kind", ["text", "foreign", "newer", "missing", "self"])
def test_merge_refuses_files_that_are_not_mergeable(tmp_path: Path, kind: str) -> None:
    local = tmp_path / "local.db"
    with mvcdb.open(local) as db:
        db.record("m", {"w": np.ones(3)})
    other = tmp_path / "other.db"
    if kind == "text":
        other.write_text("hello\n" * 100)
    elif kind == "foreign":
        conn = sqlite3.connect(other)
        conn.execute("CREATE TABLE notes (x TEXT)")
        conn.commit()
        conn.close()
    elif kind == "newer":
        other.write_bytes(local.read_bytes())
        conn = sqlite3.connect(other)
        conn.execute("PRAGMA user_version = 999")
        conn.close()
    elif kind == "self":
        other = local
    before = digest(other) if other.exists() else None
    with mvcdb.open(local) as db, pytest.raises(mvcdb.MvcdbError):
        db.merge(other)
    assert (digest(other) if other.exists() else None) == before


def test_path_like_tensor_names_are_only_data(tmp_path: Path) -> None:
    """Names that look like paths travel through export and merge as names; no file is created."""
    src = tmp_path / "src.db"
    odd = {
        "../../etc/passwd": np.ones(2),
        "/abs/path": np.zeros(2),
        "a\\b..\\c": np.arange(3),
        "ünï/cødé": np.ones(1),
    }
    (tmp_path / "out").mkdir()
    with mvcdb.open(src) as db:
        v = db.record("m", odd)
        db.export([v.id], tmp_path / "out" / "b.db")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["b.db"]
    with mvcdb.open(tmp_path / "dst.db") as db:
        db.merge(tmp_path / "out" / "b.db")
        assert sorted(db.restore(v.id)) == sorted(odd)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dst.db", "out", "src.db"]


# -- CLI ----------------------------------------------------------------------------------------


def test_cli_merge_and_export(teammates: tuple[Path, Path, dict[str, str]], tmp_path: Path) -> None:
    a, b, ids = teammates
    bundle = tmp_path / "cli-bundle.db"
    result = run(b, ["export", "bob", ids["bob2"][:8], "-o", str(bundle), "--json"])
    assert result.exit_code == 0, result.output
    exported = json.loads(result.stdout)
    assert exported["target"] == str(bundle) and len(exported["versions_added"]) == 3
    result = run(a, ["merge", str(bundle), "--json"])
    assert result.exit_code == 0, result.output
    merged = json.loads(result.stdout)
    assert sorted(merged["versions_added"]) == sorted([ids["bob"], ids["bob2"]])
    assert merged["conflicts"] == [
        {"name": "production", "ours": ids["alice"], "theirs": ids["bob2"], "resolution": "ours"}
    ]
    result = run(a, ["merge", str(bundle), "--theirs"])
    assert result.exit_code == 0 and "moved to theirs" in result.stdout
    assert_error(run(b, ["export", "bob", "-o", str(bundle)]), 1, "already exists")
    assert_error(run(a, ["merge", str(tmp_path / "nope.db")]), 1, "does not exist")
    assert_error(run(a, ["export", "-o", str(tmp_path / "x.db")]), 2)
