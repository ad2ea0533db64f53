"""stats, verify (catching each kind of damage made on purpose), gc and rm, from Python and the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_error, run
from reliability_helpers import flip_chunk_byte, tamper

import mvcdb


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    path = tmp_path_factory.mktemp("maint") / "t.db"
    rng = np.random.default_rng(1)
    frozen = rng.standard_normal(200_000).astype(np.float32)
    with mvcdb.open(path) as db:
        root = db.record("net", {"frozen": frozen, "w": rng.standard_normal(1000)}, metrics={"loss": 1.0})
        child = db.record(
            "net",
            {"frozen": frozen, "w": rng.standard_normal(1000)},
            parent=root,
            metrics={"loss": 0.5, "nan": float("nan")},
            metadata={"lr": 0.1},
            trajectory={"loss": np.linspace(1, 0, 50)},
            tags=["production"],
        )
        leaf = db.record("net", {"w": rng.standard_normal(1000)}, parent=child, tags=["candidate"])
    return path, {"root": root.id, "child": child.id, "leaf": leaf.id}


@pytest.fixture
def fx(template: tuple[Path, dict[str, str]], tmp_path: Path) -> tuple[Path, dict[str, str]]:
    path = tmp_path / "db.db"
    shutil.copyfile(template[0], path)
    return path, template[1]


def test_stats_counts_and_ratios(fx: tuple[Path, dict[str, str]]) -> None:
    path, _ = fx
    with mvcdb.open(path, readonly=True) as db:
        s = db.stats()
    assert (s.versions, s.models, s.tags, s.tag_moves) == (3, 1, 2, 2)
    assert s.tensors == 5 and s.series == 2  # 'loss' and the step axis
    assert s.param_bytes == 2 * 800_000 + 3 * 8000
    assert s.dedup_ratio > 1.9  # the frozen tensor is stored once for two versions
    assert s.stored_bytes < s.chunk_raw_bytes and s.compression_ratio > 1
    assert s.orphan_chunks == 0 and s.file_bytes >= path.stat().st_size
    assert "dedup" in str(s)
    result = run(path, ["stats", "--json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["versions"] == 3 and data["logical_bytes"] == s.logical_bytes
    assert set(data) >= {"dedup_ratio", "compression_ratio", "total_ratio", "file_bytes", "stored_bytes"}


def test_verify_passes_a_healthy_file(fx: tuple[Path, dict[str, str]]) -> None:
    path, _ = fx
    calls: list[tuple[int, int, str]] = []
    with mvcdb.open(path) as db:
        report = db.verify(progress=lambda d, t, w: calls.append((d, t, w)))
    assert report.ok and report.problems == [] and report.versions == 3 and report.tags == 2
    assert calls and calls[-1][0] == calls[-1][1]
    result = run(path, ["verify", "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["ok"] is True
    assert run(path, ["verify"]).stdout.startswith(f"{path}: OK")


DAMAGE = {
    "chunk-corrupt": None,  # flip a byte: done with flip_chunk_byte below
    "chunk-missing": "DELETE FROM chunks WHERE cid = (SELECT min(cid) FROM tensor_chunks WHERE name = 'w')",
    "manifest-hash": "UPDATE versions SET id = '{fake}' WHERE id = '{child}'",
    "manifest-decode": "UPDATE versions SET manifest = x'c1' WHERE id = '{child}'",
    "manifest-mismatch": "UPDATE versions SET metadata = '{{\"lr\": 0.2}}' WHERE id = '{child}'",
    "metric-changed": "UPDATE metrics SET value = 0.25 WHERE name = 'loss' AND value = 0.5",
    "metric-nan-changed": "UPDATE metrics SET value = 1 WHERE name = 'nan'",
    "tensor-missing": "DELETE FROM tensors WHERE name = 'w'"
    " AND vid = (SELECT vid FROM versions WHERE id = '{leaf}')",
    "tensor-shape": "UPDATE tensors SET shape = '[10, 100]' WHERE name = 'w'",
    "chunk-swapped": "UPDATE tensor_chunks SET cid = (SELECT min(cid) FROM tensor_chunks WHERE name = 'w')"
    " WHERE name = 'w' AND vid = (SELECT vid FROM versions WHERE id = '{leaf}')",
    "lineage-missing": "DELETE FROM lineage WHERE child = (SELECT vid FROM versions WHERE id = '{leaf}')",
    "lineage-wrong": "UPDATE lineage SET parent = (SELECT vid FROM versions WHERE id = '{root}')"
    " WHERE child = (SELECT vid FROM versions WHERE id = '{leaf}')",
    "tag-dangling": "UPDATE tags SET vid = 999 WHERE name = 'production'",
    "tag-name": "UPDATE tags SET name = 'ev' || char(27) || '[2J' || char(10) || 'x'"
    " WHERE name = 'production'",
    "params-bytes": "UPDATE versions SET params_bytes = 1 WHERE id = '{root}'",
}
EXPECTED = {
    "chunk-corrupt": {"chunk-corrupt"},
    "chunk-missing": {"foreign-key", "chunk-missing", "chunk-corrupt"},
    "manifest-hash": {"manifest-hash", "lineage"},  # its child's manifest names the old id
    "manifest-decode": {"manifest-hash", "manifest-decode"},
    "manifest-mismatch": {"manifest-mismatch"},
    "metric-changed": {"manifest-mismatch"},
    "metric-nan-changed": {"manifest-mismatch"},
    "tensor-missing": {"foreign-key", "manifest-incomplete"},
    "tensor-shape": {"manifest-mismatch"},
    "chunk-swapped": {"manifest-mismatch"},
    "lineage-missing": {"lineage"},
    "lineage-wrong": {"lineage"},
    "tag-dangling": {"foreign-key", "tag"},
    "tag-name": {"tag"},
    "params-bytes": {"manifest-mismatch"},
}


def test_verify_notes_a_tag_that_looks_like_an_id_prefix(fx: tuple[Path, dict[str, str]]) -> None:
    """Such a tag (allowed before names were checked ignoring case) hides versions: a note, not damage."""
    path, _ = fx
    tamper(path, "UPDATE tags SET name = 'BEEF' WHERE name = 'production'")
    with mvcdb.open(path, readonly=True) as db:
        report = db.verify()
    assert report.ok and any("'BEEF' looks like a version id prefix" in note for note in report.notes)


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_verify_names_each_kind_of_damage(fx: tuple[Path, dict[str, str]], damage: str) -> None:
    path, ids = fx
    sql = DAMAGE[damage]
    if sql is None:
        flip_chunk_byte(path, "SELECT min(cid) FROM tensor_chunks WHERE name = 'frozen'")
    else:
        tamper(path, sql.format(fake="f" * 64, **ids))
    with mvcdb.open(path, readonly=True) as db:
        report = db.verify()
    kinds = {p.kind for p in report.problems}
    assert not report.ok
    assert kinds & EXPECTED[damage] and kinds <= EXPECTED[damage] | {"foreign-key"}, str(report)
    result = run(path, ["verify"])
    assert result.exit_code == 1
    assert any(kind in result.stdout for kind in EXPECTED[damage])
    parsed = json.loads(run(path, ["verify", "--json"]).stdout)
    assert parsed["ok"] is False and {p["kind"] for p in parsed["problems"]} == kinds


def test_verify_reports_page_level_damage(fx: tuple[Path, dict[str, str]]) -> None:
    """Garbage over pages in the middle of the file: SQLite's own check names it, nothing crashes."""
    path, _ = fx
    data = bytearray(path.read_bytes())
    middle = len(data) // 2 // 65536 * 65536
    data[middle : middle + 3 * 65536] = b"\xa5" * (3 * 65536)
    path.write_bytes(bytes(data))
    with mvcdb.open(path, readonly=True) as db:
        report = db.verify()
    assert not report.ok
    assert run(path, ["verify"]).exit_code == 1


# -- rm and gc -----------------------------------------------------------------------------------


def test_rm_refuses_a_parent_without_force(fx: tuple[Path, dict[str, str]]) -> None:
    path, ids = fx
    with mvcdb.open(path) as db:
        with pytest.raises(mvcdb.MvcdbError, match="1 child.*force"):
            db.rm(ids["child"])
        assert len(db.versions()) == 3
    assert_error(run(path, ["rm", "production"]), 1, "--force")


def test_rm_leaf_then_gc_reclaims_its_space(fx: tuple[Path, dict[str, str]]) -> None:
    path, ids = fx
    with mvcdb.open(path) as db:
        assert db.rm("candidate") == ids["leaf"]
        assert [m.to_id for m in db.tag_history("candidate")] == [ids["leaf"], None]
        assert "candidate" not in db.tags()
        assert db.stats().orphan_chunks > 0
        calls: list[tuple[int, int, str]] = []
        report = db.gc(progress=lambda d, t, w: calls.append((d, t, w)))
        assert report.chunks_deleted > 0 and calls[-1][0] == calls[-1][1]
        assert db.stats().orphan_chunks == 0
        assert db.verify().ok
        assert db.restore(ids["child"])["frozen"].shape == (200_000,)
        assert not db.gc().chunks_deleted  # nothing left to do
        with pytest.raises(mvcdb.RefError):
            db.get(ids["leaf"])


def test_rm_force_keeps_children_whole(fx: tuple[Path, dict[str, str]]) -> None:
    path, ids = fx
    with mvcdb.open(path) as db:
        before = db.restore(ids["child"])
        db.tag(ids["root"], "old")
        assert db.rm(ids["root"], force=True) == ids["root"]
        child = db.get(ids["child"])
        assert child.parents == ()  # nothing re-parented
        assert child.metrics["loss"] == 0.5 and child.metadata == {"lr": 0.1}
        db.gc()
        after = db.restore(ids["child"])
        assert {k: v.tobytes() for k, v in after.items()} == {k: v.tobytes() for k, v in before.items()}
        assert db.get(ids["leaf"]).parents == (ids["child"],)
        assert db.tag_history("old")[-1].to_id is None
        report = db.verify()
        assert report.ok and any("not in this file" in n for n in report.notes)


def test_gc_keeps_delta_bases_of_kept_chunks(tmp_path: Path) -> None:
    """A fine-tuned child may be stored as deltas against its parent's chunks: removing the
    parent must not remove the chunks the child is decoded against."""
    rng = np.random.default_rng(5)
    base = rng.standard_normal(300_000).astype(np.float32)
    tuned = base + (rng.standard_normal(300_000) * 1e-4).astype(np.float32)
    with mvcdb.open(tmp_path / "delta.db") as db:
        parent = db.record("net", {"w": base})
        child = db.record("net", {"w": tuned}, parent=parent)
        db.rm(parent, force=True)
        db.gc()
        assert db.restore(child.id)["w"].tobytes() == tuned.tobytes()
        assert db.verify().ok
        deltas = db.conn.execute("SELECT count(*) FROM chunks WHERE base IS NOT NULL").fetchone()[0]
        if not deltas:
            pytest.skip("the encoder stored the child in full: no delta bases to keep")
        orphan_bases = db.conn.execute(
            "SELECT count(*) FROM chunks WHERE cid NOT IN (SELECT cid FROM tensor_chunks)"
        ).fetchone()[0]
        assert orphan_bases >= 1  # the parent's chunk survived gc: the child is decoded against it


def test_cli_rm_and_gc(fx: tuple[Path, dict[str, str]]) -> None:
    path, ids = fx
    result = run(path, ["rm", "candidate", "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout) == {"removed": ids["leaf"]}
    result = run(path, ["gc", "--json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["chunks_deleted"] > 0 and data["reclaimed_bytes"] >= 0
    result = run(path, ["rm", ids["root"], "--force"])
    assert result.exit_code == 0 and ids["root"][:12] in result.stdout
    assert "reclaimed" in run(path, ["gc"]).stdout
    assert run(path, ["verify"]).exit_code == 0
    assert_error(run(path, ["rm", ids["root"]]), 1, "no version")
