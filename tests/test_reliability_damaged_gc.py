"""Upkeep of damaged files: gc never deletes a chunk a manifest names, verify and reads refuse
impossible chunk rows (stubs outside a lazy clone, sizes past any chunk's) and report damaged
`meta`, and gc on a full disk keeps its deletion. Damage is made with raw sqlite3 (`tamper`)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_error, run
from reliability_helpers import flip_chunk_byte, tamper

import mvcdb
from mvcdb import maintenance
from mvcdb.errors import IntegrityError

MB3 = 750_000  # float32 elements: a 3 MB tensor, one chunk at the default chunk size


def _chunk_of(path: Path, vid_hex: str, name: str = "w") -> int:
    conn = sqlite3.connect(path)
    row = conn.execute(
        "SELECT tc.cid FROM tensor_chunks tc JOIN versions v ON v.vid = tc.vid"
        " WHERE v.id = ? AND tc.name = ? AND tc.seq = 0",
        (vid_hex, name),
    ).fetchone()
    conn.close()
    return int(row[0])


def _cids(path: Path) -> set[int]:
    conn = sqlite3.connect(path)
    cids = {int(r[0]) for r in conn.execute("SELECT cid FROM chunks")}
    conn.close()
    return cids


@pytest.fixture
def two_versions(tmp_path: Path) -> tuple[Path, list[str], dict[str, np.ndarray]]:
    """Three versions of 3 MB 'w' (no shared chunks); the third is removed: ids[2] is the cid of
    its chunk, now an orphan."""
    path = tmp_path / "d.db"
    rng = np.random.default_rng(7)
    arrays = {f"v{i}": rng.standard_normal(MB3).astype(np.float32) for i in range(3)}
    with mvcdb.open(path) as db:
        ids = [db.record("net", {"w": arrays[f"v{i}"]}).id for i in range(3)]
    orphan = _chunk_of(path, ids[2])
    with mvcdb.open(path) as db:
        db.rm(ids[2])
    return path, [*ids[:2], str(orphan)], arrays


@pytest.mark.parametrize(
    "damage",
    [
        "UPDATE tensor_chunks SET cid = ? WHERE vid = (SELECT vid FROM versions WHERE id = ?)"
        " AND name = 'w' AND seq = 0",
        "DELETE FROM tensor_chunks WHERE ? > 0 AND vid = (SELECT vid FROM versions WHERE id = ?)"
        " AND name = 'w' AND seq = 0",
    ],
    ids=["row-points-elsewhere", "row-deleted"],
)
def test_gc_keeps_chunks_a_manifest_still_names(
    two_versions: tuple[Path, list[str], dict[str, np.ndarray]], damage: str, tmp_path: Path
) -> None:
    """Damaged tensor_chunks rows make a version's only chunk look unreferenced: gc must keep it
    (its manifest names its hash), still delete the true orphan, and say the file needs verify."""
    path, ids, arrays = two_versions
    victim, orphan = _chunk_of(path, ids[1]), int(ids[2])
    assert orphan in _cids(path)
    tamper(path, damage, _chunk_of(path, ids[0]), ids[1])
    with mvcdb.open(path) as db:
        report = db.gc()
    assert report.chunks_deleted == 1 and report.chunks_kept == 1
    assert victim in _cids(path) and orphan not in _cids(path)
    assert any("manifest names" in n and "mvcdb verify" in n for n in report.notes)
    assert "note: kept 1 chunk(s)" in str(report) and report.to_dict()["chunks_kept"] == 1
    # the bytes are still there: export copies from the manifest and gets the version back whole
    with mvcdb.open(path, readonly=True) as db:
        db.export([ids[1]], tmp_path / "rescued.db")
    with mvcdb.open(tmp_path / "rescued.db", readonly=True) as db:
        assert db.restore(ids[1])["w"].tobytes() == arrays["v1"].tobytes()
    result = run(path, ["gc"])  # nothing more to delete, and the note again
    assert result.exit_code == 0 and "deleted 0" in result.stdout and "note: kept 1" in result.stdout


def test_gc_keeps_delta_bases_of_chunks_only_a_manifest_names(tmp_path: Path) -> None:
    """A kept chunk stored as a delta needs its base: with the parent removed and the child's row
    damaged, both look unreferenced, and both must stay."""
    rng = np.random.default_rng(5)
    base = rng.standard_normal(300_000).astype(np.float32)
    tuned = base + (rng.standard_normal(300_000) * 1e-4).astype(np.float32)
    path = tmp_path / "delta.db"
    with mvcdb.open(path) as db:
        parent = db.record("net", {"w": base})
        child = db.record("net", {"w": tuned}, parent=parent)
        db.rm(parent, force=True)
        deltas = db.conn.execute("SELECT cid, base FROM chunks WHERE base IS NOT NULL").fetchall()
    if not deltas:
        pytest.skip("the encoder stored the child in full: no delta bases to keep")
    tamper(path, "DELETE FROM tensor_chunks WHERE vid = (SELECT vid FROM versions WHERE id = ?)", child.id)
    with mvcdb.open(path) as db:
        report = db.gc()
    assert report.chunks_deleted == 0 and report.chunks_kept >= 1
    assert {c for pair in deltas for c in pair} <= _cids(path)
    assert any("delta base" in n for n in report.notes)
    with mvcdb.open(path, readonly=True) as db:
        db.export([child.id], tmp_path / "rescued.db")
    with mvcdb.open(tmp_path / "rescued.db", readonly=True) as db:
        assert db.restore(child.id)["w"].tobytes() == tuned.tobytes()


def test_gc_deletes_nothing_while_a_manifest_cannot_be_decoded(
    two_versions: tuple[Path, list[str], dict[str, np.ndarray]],
) -> None:
    """Which chunks an undecodable manifest needs is unknown: gc keeps every candidate and says so."""
    path, ids, _ = two_versions
    before = _cids(path)
    tamper(path, "UPDATE versions SET manifest = x'c1' WHERE id = ?", ids[1])
    tamper(path, "DELETE FROM tensor_chunks WHERE vid = (SELECT vid FROM versions WHERE id = ?)", ids[1])
    with mvcdb.open(path) as db:
        report = db.gc()
    assert report.chunks_deleted == 0 and _cids(path) == before
    assert any(ids[1][:12] in n and "cannot be decoded" in n for n in report.notes)


def test_stub_chunk_outside_a_lazy_clone_is_damage(
    two_versions: tuple[Path, list[str], dict[str, np.ndarray]],
) -> None:
    """codec 15 (a lazy clone's "not fetched yet") on a real chunk of an ordinary file: verify
    reports it corrupt, reads say the file is damaged instead of asking to fetch."""
    path, ids, _ = two_versions
    cid = _chunk_of(path, ids[1])
    tamper(path, "UPDATE chunks SET codec = 15 WHERE cid = ?", cid)
    with mvcdb.open(path, readonly=True) as db:
        report = db.verify()
        with pytest.raises(IntegrityError, match="no lazy clone: the file is damaged"):
            db.restore(ids[1])
    assert not report.ok
    assert [p.kind for p in report.problems] == ["chunk-corrupt"]
    assert f"chunk {cid}" in report.problems[0].subject and "no lazy clone" in report.problems[0].detail
    assert not any("not fetched yet" in n for n in report.notes)
    assert run(path, ["verify"]).exit_code == 1
    assert_error(run(path, ["restore", ids[1], "-o", str(path.parent / "o.npz")]), 1, "damaged")


def test_stub_chunk_of_a_lazy_clone_must_be_empty(
    two_versions: tuple[Path, list[str], dict[str, np.ndarray]],
) -> None:
    """In a lazy clone an empty stub is a note (not fetched yet); a stub holding bytes is damage."""
    path, ids, _ = two_versions
    empty, full = _chunk_of(path, ids[0]), _chunk_of(path, ids[1])
    tamper(path, "INSERT INTO meta (key, value) VALUES ('lazy_remote', 'origin')")
    tamper(path, "UPDATE chunks SET codec = 15, data = x'' WHERE cid = ?", empty)
    tamper(path, "UPDATE chunks SET codec = 15 WHERE cid = ?", full)
    with mvcdb.open(path, readonly=True) as db:
        report = db.verify()
        with pytest.raises(IntegrityError, match="holds .* bytes: the file is damaged"):
            db.restore(ids[1])
    assert [(p.kind, f"chunk {full}" in p.subject) for p in report.problems] == [("chunk-corrupt", True)]
    assert any("1 chunk(s) not fetched yet" in n for n in report.notes)


def test_chunk_sizes_past_any_chunk_are_refused_before_allocating(
    two_versions: tuple[Path, list[str], dict[str, np.ndarray]],
) -> None:
    """A size of 1 TB in a chunk row: verify names that chunk and goes on checking the others;
    reads raise IntegrityError instead of trying to allocate it."""
    path, ids, _ = two_versions
    huge, other = _chunk_of(path, ids[1]), _chunk_of(path, ids[0])
    tamper(path, "UPDATE chunks SET size = 1000000000000 WHERE cid = ?", huge)
    flip_chunk_byte(path, "?", other, offset=5000)
    with mvcdb.open(path, readonly=True) as db:
        report = db.verify()
        with pytest.raises(IntegrityError, match="more than a chunk may hold"):
            db.store.read_chunk(huge)
        with pytest.raises(IntegrityError):
            db.restore(ids[1])
    corrupt = {p.subject.split(" (")[0] for p in report.problems if p.kind == "chunk-corrupt"}
    assert corrupt == {f"chunk {huge}", f"chunk {other}"}
    result = run(path, ["verify"])
    assert result.exit_code == 1 and "internal error" not in result.stderr


def test_delta_base_of_another_size_is_refused_before_allocating(tmp_path: Path) -> None:
    """A delta chunk decodes against a base of its own size: a base row claiming 1 TB is damage."""
    rng = np.random.default_rng(5)
    base = rng.standard_normal(300_000).astype(np.float32)
    tuned = base + (rng.standard_normal(300_000) * 1e-4).astype(np.float32)
    path = tmp_path / "delta.db"
    with mvcdb.open(path) as db:
        child = db.record("net", {"w": tuned}, parent=db.record("net", {"w": base}))
        row = db.conn.execute("SELECT base FROM chunks WHERE base IS NOT NULL LIMIT 1").fetchone()
    if row is None:
        pytest.skip("the encoder stored the child in full: no delta base")
    tamper(path, "UPDATE chunks SET size = 1000000000000 WHERE cid = ?", row[0])
    with mvcdb.open(path, readonly=True) as db:
        with pytest.raises(IntegrityError, match="damaged"):
            db.restore(child.id)
        assert not db.verify().ok


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        ("DELETE FROM meta", "meta 'format': is missing"),
        ("UPDATE meta SET value = '0' WHERE key = 'chunk_size'", "meta 'chunk_size': is '0'"),
        ("UPDATE meta SET value = 'lots' WHERE key = 'chunk_size'", "meta 'chunk_size': is 'lots'"),
        ("UPDATE meta SET value = 'sqlite' WHERE key = 'format'", "meta 'format': is 'sqlite'"),
    ],
)
def test_verify_reports_damaged_meta(
    two_versions: tuple[Path, list[str], dict[str, np.ndarray]], damage: str, needle: str
) -> None:
    path, _, _ = two_versions
    tamper(path, damage)
    # an explicit chunk size opens the file whatever meta says (see the report: Database.__init__)
    with mvcdb.open(path, readonly=True, chunk_size=4 * 1024 * 1024) as db:
        report = db.verify()
    assert not report.ok and {p.kind for p in report.problems} == {"meta"}
    assert any(needle in str(p) for p in report.problems), report.problems


def test_gc_keeps_its_deletion_when_compaction_lacks_space(
    two_versions: tuple[Path, list[str], dict[str, np.ndarray]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """VACUUM failing with SQLITE_FULL (simulated here; see the tmpfs test for a real disk): the
    orphans are deleted all the same, and one clear error says compaction needs free space."""
    path, _, _ = two_versions

    def full(conn: sqlite3.Connection) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(maintenance, "_compact", full)
    with mvcdb.open(path) as db:
        with pytest.raises(maintenance.GcCompactionError, match="too full to compact") as caught:
            db.gc()
        assert caught.value.report.chunks_deleted == 1
        assert db.stats().orphan_chunks == 0 and db.verify().ok
    assert_error(run(path, ["gc"]), 1, "no unreferenced chunk to delete", "free some disk space")


_FULL_DISK_SCRIPT = """
import json, sys, numpy as np, mvcdb
from pathlib import Path
from mvcdb.maintenance import GcCompactionError
d = Path(sys.argv[1]); path = d / "f.db"
rng = np.random.default_rng(3)
with mvcdb.open(path) as db:
    db.record("net", {"w": rng.standard_normal(500_000).astype(np.float32)})
    gone = db.record("net", {"w": rng.standard_normal(1_500_000).astype(np.float32)})
    db.rm(gone)
import os
st = os.statvfs(d)
with open(d / "filler", "wb") as f:  # leave 256 KiB free
    f.write(b"\\0" * (st.f_bavail * st.f_frsize - 256 * 1024))
out = {}
with mvcdb.open(path) as db:
    try:
        db.gc()
        out["error"] = None
    except GcCompactionError as exc:
        out["error"], out["deleted"] = str(exc), exc.report.chunks_deleted
    out["orphans"] = db.stats().orphan_chunks
    out["ok"] = db.verify().ok
print(json.dumps(out))
"""


def test_gc_on_a_real_full_disk_deletes_then_reports(tmp_path: Path) -> None:
    """A 16 MB tmpfs with 256 KiB free: deleting 6 MB of orphans commits (even where SQLite zeroes
    freed pages: SECURE_DELETE builds), and only compaction is reported as needing space."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare to mount a small tmpfs")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    script = tmp_path / "full.py"
    script.write_text(textwrap.dedent(_FULL_DISK_SCRIPT))
    shell = f"mount -t tmpfs -o size=16m tmpfs {mnt} || exit 77; {sys.executable} {script} {mnt}"
    proc = subprocess.run(
        ["unshare", "-m", "sh", "-c", shell], capture_output=True, text=True, timeout=120, check=False
    )
    if proc.returncode == 77:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["deleted"] == 2 and "too full to compact" in out["error"]  # 6 MB: two chunks
    assert out["orphans"] == 0 and out["ok"] is True


@pytest.mark.parametrize("meanwhile", ["chunk-unreferenced-since", "version-recorded-since"])
def test_gc_rechecks_under_the_lock_what_changed_after_its_manifest_scan(
    two_versions: tuple[Path, list[str], dict[str, np.ndarray]],
    monkeypatch: pytest.MonkeyPatch,
    meanwhile: str,
) -> None:
    """Manifests are decoded before gc takes the write lock: a chunk unreferenced after that scan,
    or a version recorded after it, is checked again inside the lock (and still kept)."""
    path, ids, _ = two_versions
    victim = _chunk_of(path, ids[1])
    tamper(path, "DELETE FROM tensor_chunks WHERE vid = (SELECT vid FROM versions WHERE id = ?)", ids[1])
    first = maintenance._scan_manifests
    calls: list[int] = []

    def scan(conn: sqlite3.Connection, hashes: set[bytes], only: list[str] | None = None) -> object:
        calls.append(len(hashes))
        if len(calls) > 1:
            return first(conn, hashes, only)
        if meanwhile == "chunk-unreferenced-since":
            return first(conn, set(), only)  # the scan saw no unreferenced chunk yet
        return first(conn, hashes, [ids[0]])  # the scan saw only the other version

    monkeypatch.setattr(maintenance, "_scan_manifests", scan)
    with mvcdb.open(path) as db:
        report = db.gc()
    assert len(calls) == 3 and report.chunks_kept == 1 and report.chunks_deleted == 1
    assert victim in _cids(path)
