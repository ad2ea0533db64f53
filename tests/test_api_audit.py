"""Regression tests for what an audit of the Python API (issues 2, 3 and 7) found: wrong-typed
arguments that raised raw TypeErrors or were read character by character, ndarray subclasses,
text that is not Unicode, and documents recorded but then unreadable."""

from __future__ import annotations

import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import mvcdb
from mvcdb import serial


@pytest.mark.parametrize("n", [2, 100_000], ids=["in-row", "chunked"])
def test_a_masked_array_is_refused_not_stored_with_its_fill_values(db: mvcdb.Database, n: int) -> None:
    masked = np.ma.array(np.arange(float(n)), mask=np.arange(n) % 2 == 1)
    with pytest.raises(mvcdb.MvcdbError, match="masked array"):
        db.record("m", params={"w": masked})
    assert len(db.versions()) == 0


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # np.matrix, on purpose
def test_ndarray_subclasses_store_their_data(db: mvcdb.Database, tmp_path: Path) -> None:
    mapped = np.memmap(tmp_path / "w.bin", dtype=">f4", mode="w+", shape=(300_000,))
    mapped[:] = np.arange(300_000)
    matrix = np.matrix(np.arange(300_000.0).reshape(1000, 300))
    v = db.record("m", params={"mapped": mapped, "matrix": matrix})
    back = db.restore(v)
    assert type(back["matrix"]) is np.ndarray and back["matrix"].shape == (1000, 300)
    assert back["mapped"].dtype == np.dtype(">f4")
    assert np.array_equal(back["mapped"], mapped) and np.array_equal(back["matrix"], matrix)
    assert db.verify().ok


def test_run_takes_one_parent_id_as_parents_like_record(db: mvcdb.Database) -> None:
    v1 = db.record("m", metrics={"a": 1.0})
    with db.run("m", parents=v1.id) as run:  # one ref, not its 64 characters
        run.log(0, loss=1.0)
    assert run.version is not None and run.version.parents == (v1.id,)
    with pytest.raises(mvcdb.MvcdbError, match="parents must be a ref or a list of refs"):
        db.run("m", parents=5)  # type: ignore[arg-type]
    with pytest.raises(mvcdb.MvcdbError, match="not both"):
        db.run("m", parent=v1, parents=[v1])


def test_restore_names_one_name_is_not_its_characters(db: mvcdb.Database) -> None:
    v = db.record("m", params={"ab": np.ones(2), "a": np.zeros(1), "b": np.zeros(1)})
    assert list(db.restore(v, names="ab")) == ["ab"]  # type: ignore[arg-type]
    for bad in (5, [["a"]], [5]):
        with pytest.raises(mvcdb.MvcdbError, match="names"):
            db.restore(v, names=bad)  # type: ignore[arg-type]


def test_compare_refuses_wrong_types_clearly(db: mvcdb.Database) -> None:
    v = db.record("m", metrics={"a": 1.0})
    with pytest.raises(mvcdb.MvcdbError, match="refs must be a ref or a list"):
        db.compare(5)  # type: ignore[arg-type]
    with pytest.raises(mvcdb.MvcdbError, match="metric names are non-empty strings"):
        db.compare([v], metrics=[5])  # type: ignore[list-item]
    with pytest.raises(mvcdb.MvcdbError, match="fields must be a list of names"):
        db.compare([v], fields=3)  # type: ignore[arg-type]
    assert db.compare(v.id, metrics=("a",)).rows == ((1.0,),)


def test_diff_of_values_whose_difference_overflows_prints_no_warning(db: mvcdb.Database) -> None:
    a = db.record("m", params={"w": np.full(4, 1e308)})
    b = db.record("m", params={"w": np.full(4, -1e308)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (entry,) = db.diff(a, b).to_dict()["params"]
    assert entry["max_abs"] == "inf" and entry["frac_changed"] == 1.0


@pytest.mark.parametrize(
    ("blob", "says"),
    [(b"\x91" * 100_000 + b"\xc0", "nested too deeply"), (b"\xc1", "no msgpack type")],
    ids=["deep", "reserved-byte"],
)
def test_msgpack_errors_say_what_is_wrong(blob: bytes, says: str) -> None:
    with pytest.raises(mvcdb.DecodeError, match=says):
        serial.unpack(blob)


@pytest.mark.parametrize("metadata", [{"a": "\ud800"}, {"\udc80": 1}, {"a": ["\ud83d\ude00"]}])
def test_metadata_with_lone_surrogates_is_refused(db: mvcdb.Database, metadata: dict[str, object]) -> None:
    with pytest.raises(mvcdb.MvcdbError, match="not valid Unicode"):
        db.record("m", metadata=metadata)
    assert len(db.versions()) == 0


def test_metadata_with_characters_past_the_bmp_reads_back(db: mvcdb.Database) -> None:
    v = db.record("m", metadata={"a": "😀", "b": "back\\ud"})
    assert db.get(v.id).metadata == {"a": "😀", "b": "back\\ud"}
    assert db.sql("SELECT json_extract(metadata, '$.a') AS a FROM versions") == [{"a": "😀"}]


def test_a_string_past_16_mib_unpacks() -> None:
    text = "x" * (17 << 20)  # msgpack's string cap was 16 MiB: record() wrote what no read could
    assert serial.unpack(serial.pack({"metadata": text})) == {"metadata": text}


@pytest.mark.slow
def test_metadata_past_16_mib_reads_back(db: mvcdb.Database) -> None:
    v = db.record("m", params={"w": np.ones(3)}, metadata={"notes": "x" * (17 << 20)})
    assert len(db.get(v.id).metadata["notes"]) == 17 << 20
    assert np.array_equal(db.restore(v)["w"], np.ones(3))  # its manifest decodes
    assert db.verify().ok


def test_a_document_past_the_decoders_caps_is_refused_when_written() -> None:
    items = serial.MAX_ITEMS + 1
    too_many = b"\xdd" + items.to_bytes(4, "big") + b"\xc0" * items
    with pytest.raises(mvcdb.MvcdbError, match="too large to store"):
        serial.check_readable(too_many, "this version")
    serial.check_readable(serial.pack({"a": "x" * (serial.MAX_ITEMS + 1)}), "this version")


def test_an_author_given_in_bytes_that_are_not_utf8_is_stored(
    db: mvcdb.Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MVCDB_AUTHOR", "Jos\udce9")  # what Python makes of MVCDB_AUTHOR=$'Jos\xe9'
    v = db.record("m")
    db.tag(v, "t")
    assert db.get(v.id).author == "Jos\ufffd" and db.tag_history("t")[0].author == "Jos\ufffd"


def test_order_by_a_metric_without_a_name_is_refused(db: mvcdb.Database) -> None:
    db.record("m", metrics={"a": 1.0})
    for limit in (None, 5):
        with pytest.raises(mvcdb.MvcdbError, match="needs the metric's name"):
            db.versions(order_by="-metrics.", limit=limit)


@pytest.mark.slow  # a stress test; the deterministic case is the next test
def test_threads_sharing_one_database_record_whole_versions(db_path: Path) -> None:
    """One connection has one transaction: a second thread's record used to join the first's
    (committing or rolling back its half-written rows), leaving versions whose chunks were not
    their manifest's."""
    errors: list[BaseException] = []
    recorded: dict[str, np.ndarray] = {}
    with mvcdb.open(db_path, chunk_size=65536) as shared:

        def work(seed: int) -> None:
            rng = np.random.default_rng(seed)
            try:
                for i in range(8):
                    w = rng.standard_normal(140_000 if i % 2 else 8)  # chunked (>1 MiB) or in-row
                    recorded[shared.record(f"m{seed}", params={"w": w}, tags=[f"t{seed}"]).id] = w
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(seed,)) for seed in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert shared.verify().ok
        assert all(np.array_equal(shared.restore(vid)["w"], w) for vid, w in recorded.items())
        assert len(shared.versions()) == 24


def test_a_threads_record_never_joins_another_threads_batch(db: mvcdb.Database) -> None:
    """A record from a second thread while a db.batch() block is open waits for the block; it used
    to join the block's transaction and vanish when the block raised, after returning its Version."""
    inside, recorded = threading.Event(), []

    def other() -> None:
        inside.wait()
        recorded.append(db.record("other", metrics={"a": 1.0}))

    thread = threading.Thread(target=other)
    thread.start()
    with pytest.raises(RuntimeError), db.batch():
        db.record("batched")
        inside.set()
        time.sleep(0.2)  # the other record runs now, or waits for the block (not a timing check)
        raise RuntimeError("the block fails: its versions are rolled back")
    thread.join()
    assert [v.model for v in db.versions()] == ["other"]
    assert db.get(recorded[0].id).model == "other"


def test_traj_value_takes_whole_steps_only(db: mvcdb.Database) -> None:
    v = db.record("m", trajectory={"step": [0, 1, 2], "loss": [3.0, 2.0, 1.0]})
    assert db.sql("SELECT traj_value(?, 'loss', 2.0) AS v", (v.id,)) == [{"v": 1.0}]
    for step in ("1.5", "'x'"):  # 1.5 used to be read as step 1
        with pytest.raises(mvcdb.MvcdbError, match="a step must be an integer"):
            db.sql(f"SELECT traj_value(?, 'loss', {step}) AS v", (v.id,))


def test_tensors_refuses_an_unknown_kind(db: mvcdb.Database) -> None:
    v = db.record("m", params={"w": np.ones(2)})
    assert [t.name for t in db.tensors(v)] == ["w"]
    with pytest.raises(mvcdb.MvcdbError, match="kind must be one of"):
        db.tensors(v, kind="params")  # used to list nothing, as if the version had no tensors
