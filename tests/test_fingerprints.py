"""mvcdb.fingerprint and `mvcdb record --dataset`: which data trained a version, by content."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_error, run

import mvcdb


def test_a_file_is_its_sha256_and_size(tmp_path: Path) -> None:
    data = tmp_path / "train.csv"
    data.write_bytes(b"x,y\n" + b"1,2\n" * 300_000)  # more than one read
    fp = mvcdb.fingerprint(data)
    assert fp == {
        "kind": "file",
        "path": str(data),
        "bytes": data.stat().st_size,
        "sha256": hashlib.sha256(data.read_bytes()).hexdigest(),
    }
    assert json.loads(json.dumps(fp)) == fp  # metadata is JSON


def test_a_directory_depends_on_its_files_not_on_how_they_were_made(tmp_path: Path) -> None:
    def tree(root: Path, order: list[str], last: bytes = b"c") -> dict[str, object]:
        for name in order:
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes({"a.txt": b"a", "sub/b.bin": b"bb", "sub/deeper/c": last}[name])
        return mvcdb.fingerprint(root)

    one = tree(tmp_path / "one", ["a.txt", "sub/b.bin", "sub/deeper/c"])
    two = tree(tmp_path / "two", ["sub/deeper/c", "a.txt", "sub/b.bin"])
    assert one["sha256"] == two["sha256"] and one["files"] == 3 and one["bytes"] == 4
    changed = tree(tmp_path / "three", ["a.txt", "sub/b.bin", "sub/deeper/c"], last=b"C")
    assert changed["sha256"] != one["sha256"]
    (tmp_path / "two" / "sub" / "deeper" / "c").rename(tmp_path / "two" / "sub" / "c")  # moved
    assert mvcdb.fingerprint(tmp_path / "two")["sha256"] != one["sha256"]


def test_arrays_are_hashed_as_stored_values_with_dtype_and_shape() -> None:
    a = np.arange(12, dtype="<i4").reshape(3, 4)
    base = mvcdb.fingerprint(a)
    assert base["dtype"] == "<i4" and base["shape"] == [3, 4] and base["bytes"] == 48
    assert mvcdb.fingerprint(a.astype(">i4"))["sha256"] == base["sha256"]  # same values
    assert mvcdb.fingerprint(np.asfortranarray(a))["sha256"] == base["sha256"]  # same values
    assert mvcdb.fingerprint(a.reshape(4, 3))["sha256"] != base["sha256"]  # same bytes, not shape
    assert mvcdb.fingerprint(a.view("<f4"))["sha256"] != base["sha256"]  # same bytes, not dtype
    assert mvcdb.fingerprint(np.float64(2.5))["shape"] == []
    assert mvcdb.fingerprint(np.zeros((0, 3)))["bytes"] == 0
    torch = pytest.importorskip("torch")
    assert mvcdb.fingerprint(torch.arange(12, dtype=torch.int32).reshape(3, 4))["sha256"] == base["sha256"]


def test_a_mapping_combines_its_items_whatever_their_order(tmp_path: Path) -> None:
    x, y = np.linspace(0, 1, 50), np.linspace(1, 2, 50)
    (tmp_path / "labels.txt").write_text("a\nb\n")
    first = mvcdb.fingerprint({"x": x, "y": y, "labels": tmp_path / "labels.txt"})
    second = mvcdb.fingerprint({"labels": str(tmp_path / "labels.txt"), "y": y, "x": x})
    assert first["sha256"] == second["sha256"] and first["bytes"] == 800 + 4
    assert set(first["items"]) == {"x", "y", "labels"}
    assert mvcdb.fingerprint({"x": y, "y": x})["sha256"] != first["sha256"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("/no/such/file.csv", "no file or directory /no/such/file.csv"),
        (np.array(["a", "b"]), "dataset 'data' has dtype"),
        (b"raw", "not raw bytes"),
        ({1: np.zeros(2)}, "names of a dataset mapping must be strings"),
        (object(), "a dataset is a path, an array or a mapping of them, got object"),
    ],
)
def test_what_cannot_be_fingerprinted_is_a_clear_error(value: object, message: str) -> None:
    with pytest.raises(mvcdb.MvcdbError, match=message):
        mvcdb.fingerprint(value)


def test_record_dataset_on_the_command_line_then_find_and_diff_by_it(tmp_path: Path) -> None:
    db, params = tmp_path / "d.db", tmp_path / "p.npz"
    np.savez(params, w=np.ones(3))
    train = tmp_path / "train.csv"
    train.write_text("x,y\n1,2\n")
    first = run(
        db, ["record", "m", "-p", str(params), "--dataset", f"train={train}", "--meta", "datasets.note=v1"]
    )
    assert first.exit_code == 0, first.output
    train.write_text("x,y\n1,2\n3,4\n")
    second = run(
        db,
        ["record", "m", "-p", str(params), "--dataset", f"train={train}", "--parent", first.stdout.strip()],
    )
    assert second.exit_code == 0, second.output
    with mvcdb.open(db, readonly=True) as opened:
        v1, v2 = opened.get(first.stdout.strip()), opened.get(second.stdout.strip())
        assert v1.metadata["datasets"]["note"] == "v1"  # --meta datasets.* and --dataset combine
        sha = v1.metadata["datasets"]["train"]["sha256"]
        assert sha == hashlib.sha256(b"x,y\n1,2\n").hexdigest()
        assert [v.id for v in opened.versions(where=f"metadata.datasets.train.sha256 = {sha}")] == [v1.id]
        assert "datasets.train.sha256" in str(opened.diff(v1, v2))
    assert_error(run(db, ["record", "m", "-p", str(params), "--dataset", "train=/nope.csv"]), 1, "/nope.csv")
    assert_error(run(db, ["record", "m", "-p", str(params), "--dataset", "train"]), 2, "--dataset")


def test_what_is_no_file_or_directory_is_refused_without_reading_it(tmp_path: Path) -> None:
    """A FIFO (or a device) was read until it ended, i.e. forever; an empty path hashed the
    current directory; an empty file, directory and mapping shared one hash."""
    import os

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(mvcdb.MvcdbError, match="neither a regular file nor a directory"):
        mvcdb.fingerprint(fifo)
    for empty in ("", "  "):
        with pytest.raises(mvcdb.MvcdbError, match="dataset path is empty"):
            mvcdb.fingerprint(empty)
    loop = tmp_path / "loop"
    os.symlink(loop.name, loop)
    with pytest.raises(mvcdb.MvcdbError, match=f"cannot read {loop}: Too many levels"):
        mvcdb.fingerprint(loop)
    (tmp_path / "empty.txt").touch()
    (tmp_path / "empty_dir").mkdir()
    hashes = {
        mvcdb.fingerprint(tmp_path / "empty.txt")["sha256"],
        mvcdb.fingerprint(tmp_path / "empty_dir")["sha256"],
    }
    hashes.add(mvcdb.fingerprint({})["sha256"])
    assert len(hashes) == 3
    with pytest.raises(mvcdb.MvcdbError, match="got NoneType"):
        mvcdb.fingerprint(None)


def test_record_dataset_refuses_what_a_filter_could_not_find(tmp_path: Path) -> None:
    db, params = tmp_path / "d.db", tmp_path / "p.npz"
    np.savez(params, w=np.ones(3))
    (tmp_path / "t.csv").write_text("x\n")
    base = ["record", "m", "-p", str(params)]
    assert_error(run(db, [*base, "--dataset", f"a.b={tmp_path / 't.csv'}"]), 2, "contains '.'")
    assert_error(run(db, [*base, "--dataset", "train="]), 2, "empty path")
    both = [*base, "--dataset", f"train={tmp_path / 't.csv'}", "--meta", "datasets.train=1"]
    assert_error(run(db, both), 2, "datasets.train is given by both")
