"""Damaged or tampered rows of an otherwise healthy file: every read checks what it uses against
the version's manifest (the bytes its id hashes), so such rows give a clear IntegrityError naming
the version and what is wrong (CLI: one line, exit 1), never wrong data or an internal error."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_error, run
from reliability_helpers import digest, tamper

import mvcdb
from mvcdb import schema

W1 = np.random.default_rng(1).standard_normal(300_000)
W2 = np.random.default_rng(2).standard_normal(300_000)
LOSS = np.arange(10.0)


@pytest.fixture(scope="module")
def good_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """v1 -> v2 of model `net`: a chunked `w`, a tiny `b` kept in its row, v2 with a trajectory."""
    path = tmp_path_factory.mktemp("rows") / "good.db"
    with mvcdb.open(path) as db:
        v1 = db.record("net", {"w": W1, "b": np.ones(3)}, metadata={"lr": 0.1}, tags=["production"])
        db.record("net", {"w": W2, "b": np.zeros(3)}, parent=v1, trajectory={"loss": LOSS})
    return path


def damaged_copy(good_file: Path, tmp_path: Path, *statements: str) -> tuple[Path, str, str]:
    """A copy of the good file with the statements run on it raw; (path, v1 id, v2 id)."""
    path = tmp_path / "bad.db"
    shutil.copyfile(good_file, path)
    with mvcdb.open(good_file, readonly=True) as db:
        v1, v2 = (v.id for v in db.versions(order_by="created_at"))
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute("PRAGMA ignore_check_constraints = ON")  # a forger is not bound by our CHECKs
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()
    return path, v1, v2


V2_W = "vid = 2 AND kind = 'param' AND name = 'w'"
V2_B = "vid = 2 AND kind = 'param' AND name = 'b'"

#: Rows of v2 that no longer match its manifest, each chunk itself intact (each passes its own check).
PARAM_DAMAGE = {
    "another-versions-chunk": [f"UPDATE tensor_chunks SET cid = (SELECT min(cid) FROM chunks) WHERE {V2_W}"],
    "dtype-and-shape": [f"UPDATE tensors SET dtype = '<f4', shape = '[600000]' WHERE {V2_W}"],
    "wider-dtype": [f"UPDATE tensors SET dtype = '<f8', shape = '[150000]', nbytes = 1200000 WHERE {V2_W}"],
    "negative-shape": [f"UPDATE tensors SET shape = '[-1]' WHERE {V2_W}"],
    "unknown-dtype": [f"UPDATE tensors SET dtype = 'zz9' WHERE {V2_W}"],
    "object-dtype": [f"UPDATE tensors SET dtype = '|O' WHERE {V2_W}"],
    "row-deleted": [f"DELETE FROM tensors WHERE {V2_B}"],
    "in-row-bytes-and-digest-of-v1": [
        "UPDATE tensors SET (data, digest) = (SELECT data, digest FROM tensors WHERE vid = 1 AND name = 'b')"
        f" WHERE {V2_B}"
    ],
    "extra-row": [
        "INSERT INTO tensors (vid, kind, name, dtype, shape, nbytes, digest, data)"
        " SELECT 2, kind, 'extra', dtype, shape, nbytes, digest, data FROM tensors"
        " WHERE vid = 1 AND name = 'b'"
    ],
}


@pytest.mark.parametrize("damage", list(PARAM_DAMAGE))
def test_parameter_rows_that_contradict_the_manifest_never_read_as_data(
    good_file: Path, tmp_path: Path, damage: str
) -> None:
    path, v1, v2 = damaged_copy(good_file, tmp_path, *PARAM_DAMAGE[damage])
    with mvcdb.open(path, readonly=True) as db:
        with pytest.raises(mvcdb.IntegrityError, match=f"version {v2[:12]}.*mvcdb verify") as caught:
            db.restore(v2)
        assert "param '" in str(caught.value)
        with pytest.raises(mvcdb.IntegrityError, match=v2[:12]):
            db.diff(v1, v2)
        assert np.array_equal(db.restore(v1)["w"], W1)  # the other version still reads
        assert not db.verify().ok
    out = tmp_path / "out.npz"
    assert_error(run(path, ["restore", v2, "-o", str(out)]), 1, v2[:12], "mvcdb verify")
    assert not out.exists()
    assert_error(run(path, ["diff", v1, v2]), 1, v2[:12])
    assert_error(run(path, ["show", v2]), 1, v2[:12])


@pytest.mark.parametrize("damage", ["dtype-and-shape", "row-deleted", "extra-row", "digest-of-v1"])
def test_listing_a_versions_tensors_checks_its_rows(good_file: Path, tmp_path: Path, damage: str) -> None:
    """tensors() (show's table, diff's "identical" by digest) reads no bytes, but its rows are the
    manifest's: a digest copied from another version must not make a diff call them identical."""
    statements = PARAM_DAMAGE.get(damage) or [
        f"UPDATE tensors SET digest = (SELECT digest FROM tensors WHERE vid = 1 AND name = 'w') WHERE {V2_W}"
    ]
    path, v1, v2 = damaged_copy(good_file, tmp_path, *statements)
    with mvcdb.open(path, readonly=True) as db:
        with pytest.raises(mvcdb.IntegrityError, match=f"version {v2[:12]}: param '.*mvcdb verify"):
            db.tensors(v2)
        with pytest.raises(mvcdb.IntegrityError, match=v2[:12]):
            db.diff(v1, v2)
        if damage == "digest-of-v1":  # the digest is not what restore reads: its bytes are right
            assert np.array_equal(db.restore(v2)["w"], W2)
    assert_error(run(path, ["diff", v1, v2]), 1, v2[:12])


def test_one_named_parameter_is_checked_too(good_file: Path, tmp_path: Path) -> None:
    path, _, v2 = damaged_copy(good_file, tmp_path, *PARAM_DAMAGE["another-versions-chunk"])
    with mvcdb.open(path, readonly=True) as db:
        assert np.array_equal(db.restore(v2, ["b"])["b"], np.zeros(3))
        with pytest.raises(mvcdb.IntegrityError, match="'w'.*hashes are not the ones its manifest names"):
            db.restore(v2, ["w"])
        with pytest.raises(mvcdb.MvcdbError, match="no parameter named 'nope'"):
            db.restore(v2, ["nope"])


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE tensors SET shape = '[5]', nbytes = 40 WHERE vid = 2 AND kind = 'traj' AND name = 'loss'",
        "UPDATE tensors SET (data, digest) = (SELECT data, digest FROM tensors"
        " WHERE vid = 2 AND kind = 'traj' AND name = 'step')"
        " WHERE vid = 2 AND kind = 'traj' AND name = 'loss'",
    ],
    ids=["shape", "bytes-of-another-series"],
)
def test_trajectory_rows_that_contradict_the_manifest_never_read_as_data(
    good_file: Path, tmp_path: Path, statement: str
) -> None:
    path, v1, v2 = damaged_copy(good_file, tmp_path, statement)
    with mvcdb.open(path, readonly=True) as db:
        for read in (lambda: db.trajectory(v2), lambda: db.series(v2, "loss"), lambda: db.diff(v1, v2)):
            with pytest.raises(mvcdb.IntegrityError, match=f"version {v2[:12]}: traj 'loss'"):
                read()
    assert_error(run(path, ["show", v2]), 1, v2[:12])


def test_a_manifest_that_does_not_hash_to_its_id_is_refused(good_file: Path, tmp_path: Path) -> None:
    path, _, v2 = damaged_copy(
        good_file,
        tmp_path,
        "UPDATE versions SET manifest = (SELECT manifest FROM versions WHERE vid = 1) WHERE vid = 2",
    )
    with mvcdb.open(path, readonly=True) as db, pytest.raises(mvcdb.IntegrityError, match="hash to its id"):
        db.restore(v2)


# -- damaged version, tag and tag history rows ------------------------------------------------------


def test_unreadable_created_at_is_a_clear_error(good_file: Path, tmp_path: Path) -> None:
    path, _, v2 = damaged_copy(good_file, tmp_path, "UPDATE versions SET created_at = 'garbage'")
    with mvcdb.open(path, readonly=True) as db:
        version = db.get(v2)
        assert version.model == "net"  # fields that are fine still read
        with pytest.raises(mvcdb.IntegrityError, match=f"version {v2[:12]}: its stored created_at 'garbage'"):
            _ = version.created_at
    for verb in (["log"], ["show", v2], ["tree", "--model", "net"], ["tags"]):
        assert_error(run(path, verb), 1, "created_at", "mvcdb verify")


@pytest.mark.parametrize("metadata", ["{not json", "[1, 2]"], ids=["invalid", "not-an-object"])
def test_unreadable_metadata_is_a_clear_error(good_file: Path, tmp_path: Path, metadata: str) -> None:
    path, v1, v2 = damaged_copy(
        good_file, tmp_path, f"UPDATE versions SET metadata = '{metadata}' WHERE vid = 2"
    )
    with mvcdb.open(path, readonly=True) as db:
        with pytest.raises(mvcdb.IntegrityError, match=f"version {v2[:12]}: its stored metadata"):
            _ = db.get(v2).metadata
        assert db.get(v1).metadata == {"lr": 0.1}
    assert_error(run(path, ["show", v2]), 1, "metadata", "mvcdb verify")
    assert_error(run(path, ["diff", v1, v2]), 1, "metadata", "mvcdb verify")


def test_a_tag_at_a_missing_version_is_a_clear_error(good_file: Path, tmp_path: Path) -> None:
    path, _, v2 = damaged_copy(good_file, tmp_path, "UPDATE tags SET vid = 999")
    with mvcdb.open(path, readonly=True) as db:
        for read in (lambda: db.get("production"), lambda: db.restore("production")):
            with pytest.raises(mvcdb.IntegrityError, match="tag 'production'.*999"):
                read()
    assert_error(run(path, ["show", "production"]), 1, "tag 'production'", "mvcdb verify")
    assert_error(run(path, ["diff", "production", v2]), 1, "tag 'production'")


def test_a_parent_edge_to_a_missing_version_is_a_clear_error(good_file: Path, tmp_path: Path) -> None:
    path, _, v2 = damaged_copy(good_file, tmp_path, "UPDATE lineage SET parent = 999")
    with mvcdb.open(path, readonly=True) as db, pytest.raises(mvcdb.IntegrityError, match="999"):
        db.get(f"{v2}~1")


def test_an_unreadable_tag_move_time_is_a_clear_error(good_file: Path, tmp_path: Path) -> None:
    path, _, _ = damaged_copy(good_file, tmp_path, "UPDATE tag_history SET at = 'garbage'")
    with mvcdb.open(path, readonly=True) as db, pytest.raises(mvcdb.IntegrityError, match="tag 'production'"):
        db.tag_history("production")


# -- damaged header and meta --------------------------------------------------------------------


@pytest.mark.parametrize("version", [0, -1, -(2**31)])
def test_a_zero_or_negative_schema_version_is_refused_and_left_alone(
    good_file: Path, tmp_path: Path, version: int
) -> None:
    path = tmp_path / "uv.db"
    shutil.copyfile(good_file, path)
    tamper(path, f"PRAGMA user_version = {version}")
    before = digest(path)
    for readonly in (True, False):
        with pytest.raises(mvcdb.NotAnMvcdbFileError, match=f"user_version\\) {version} "):
            mvcdb.open(path, readonly=readonly)
    np.savez(tmp_path / "p.npz", w=np.ones(3))
    for verb in (["init"], ["log"], ["record", "net", "-p", str(tmp_path / "p.npz")]):
        assert_error(run(path, verb), 1, f"user_version) {version} ")
    assert digest(path) == before


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE meta SET value = '0' WHERE key = 'chunk_size'",
        "UPDATE meta SET value = '-5' WHERE key = 'chunk_size'",
        "UPDATE meta SET value = 'lots' WHERE key = 'chunk_size'",
        "UPDATE meta SET value = '99999999999999' WHERE key = 'chunk_size'",
        "DELETE FROM meta WHERE key = 'chunk_size'",
    ],
    ids=["zero", "negative", "text", "huge", "missing"],
)
def test_a_damaged_chunk_size_falls_back_to_the_default(
    good_file: Path, tmp_path: Path, statement: str
) -> None:
    path, _, v2 = damaged_copy(good_file, tmp_path, statement)
    with mvcdb.open(path) as db:
        assert db.chunk_size == schema.DEFAULT_CHUNK_SIZE
        assert np.array_equal(db.restore(v2)["w"], W2)
        v3 = db.record("net", {"w": W1 * 2}, parent=v2)
        assert np.array_equal(db.restore(v3.id)["w"], W1 * 2)
        db.verify()  # runs (reporting the bad value is verify's business)
    with mvcdb.open(path, chunk_size=65536) as db:
        assert db.chunk_size == 65536
    assert run(path, ["log"]).exit_code == 0


@pytest.mark.parametrize("bad", [0, 100, 2**40, -4096, 1.5, "65536", True])
def test_an_invalid_chunk_size_argument_is_refused_before_any_file_is_made(
    tmp_path: Path, bad: object
) -> None:
    with pytest.raises(mvcdb.MvcdbError, match="chunk_size must be"):
        mvcdb.open(tmp_path / "new.db", chunk_size=bad)  # type: ignore[arg-type]
    assert not (tmp_path / "new.db").exists()


# -- symlink loops --------------------------------------------------------------------------------


def test_a_symlink_loop_is_named_by_the_api(tmp_path: Path) -> None:
    loop = tmp_path / "a.db"
    os.symlink(loop.name, loop)
    for readonly in (True, False):
        with pytest.raises(mvcdb.MvcdbError, match="cannot read .*a.db: Too many levels of symbolic links"):
            mvcdb.open(loop, readonly=readonly)
    assert_error(run(loop, ["init"]), 1, "Too many levels of symbolic links")


def test_a_symlink_loop_is_named_by_reading_verbs(tmp_path: Path) -> None:
    loop = tmp_path / "a.db"
    os.symlink(loop.name, loop)
    assert_error(run(loop, ["log"]), 1, "Too many levels of symbolic links")
