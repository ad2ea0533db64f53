"""Python API edge cases a reviewer reproduced: each is a clear MvcdbError (never a raw
TypeError, OverflowError, UnicodeEncodeError or sqlite3 error from deep inside), or the value
the user meant, and nothing stored is lost."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import mvcdb


@pytest.fixture
def db(tmp_path: Path) -> Iterator[mvcdb.Database]:
    database = mvcdb.open(tmp_path / "api.db")
    yield database
    database.close()


def _count(db: mvcdb.Database) -> int:
    return len(db.versions())


def test_negative_zero_metric_is_stored_as_get_loads_it(db: mvcdb.Database) -> None:
    v = db.record("m", {"a": 1.0}, metrics={"x": -0.0, "y": np.float32(-0.0)})
    assert v.metrics == db.get(v.id).metrics == {"x": 0.0, "y": 0.0}
    assert all(np.copysign(1.0, value) == 1.0 for value in db.get(v.id).metrics.values())
    assert db.verify().ok


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"params": {"a\ud800": 1.0}}, "tensor name 'a\\ud800' is not valid Unicode"),
        ({"message": "x\udc80"}, "message 'x\\udc80' is not valid Unicode"),
        ({"metrics": {"x\ud800": 1.0}}, "metric name 'x\\ud800' is not valid Unicode"),
        ({"metrics": {"x": 10**400}}, "metric 'x' is too large for a float (401 digits)"),
        ({"message": 5}, "message must be a string"),
        ({"tags": 5}, "tags must be a tag name or a list of names, got int"),
        ({"parents": 5}, "parents must be a ref or a list of refs, got int"),
    ],
)
def test_bad_record_arguments_are_refused_before_anything_is_written(
    db: mvcdb.Database, kwargs: dict[str, Any], needle: str
) -> None:
    before = _count(db)
    params = kwargs.pop("params", {"a": 2.0})
    with pytest.raises(mvcdb.MvcdbError) as refused:
        db.record("m", params, **kwargs)
    assert needle in str(refused.value)
    assert _count(db) == before


def test_a_zero_dim_tensor_metric_is_a_number(db: mvcdb.Database) -> None:
    torch = pytest.importorskip("torch")
    v = db.record("m", {"a": 1.0}, metrics={"loss": torch.tensor(0.25), "np": np.array(0.5)})
    assert db.get(v.id).metrics == {"loss": 0.25, "np": 0.5}


def test_one_ref_string_is_one_ref_not_its_characters(db: mvcdb.Database, tmp_path: Path) -> None:
    root = db.record("m", {"a": 1.0}, tags="best")
    child = db.record("m", {"a": 2.0}, parents=root.id)
    assert child.parents == (root.id,) and root.tags == ("best",)
    report = db.export("best", tmp_path / "bundle.db")
    with mvcdb.open(tmp_path / "bundle.db", readonly=True) as bundle:
        assert [v.id for v in bundle.versions()] == [root.id]
    assert "1 version" in str(report)


def test_gc_inside_a_batch_is_refused_and_deletes_nothing(db: mvcdb.Database) -> None:
    v = db.record("m", {"w": np.arange(10_000.0)})
    db.rm(v, force=True)  # its chunks are garbage now
    chunks = db.conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
    with pytest.raises(mvcdb.MvcdbError, match="gc cannot run inside db.batch"), db.batch():
        db.gc()
    assert db.conn.execute("SELECT count(*) FROM chunks").fetchone()[0] == chunks
    assert db.gc().chunks_deleted >= 1


def test_filter_numbers_past_sqlite_integers_compare_as_floats(db: mvcdb.Database) -> None:
    db.record("m", {"a": 1.0}, metrics={"loss": 0.5}, metadata={"n": 3})
    huge = "99999999999999999999999"
    for where in (f"metrics.loss < {huge}", f"metadata.n < {huge}", f"metrics.loss < 1{'0' * 400}"):
        assert len(db.versions(where=where)) == 1
        assert len(db.versions(where=where, order_by="metrics.loss", limit=3)) == 1
    assert db.versions(where=f"metrics.loss > -{huge}0") and not db.versions(where=f"metrics.loss > {huge}")


def test_a_metric_with_any_characters_is_filtered_by_its_quoted_name(db: mvcdb.Database) -> None:
    """`acc[top1]` and `f1 score ✓` are valid metric names that the bare-name grammar cannot read."""
    a = db.record("m", {"a": 1.0}, metrics={"acc[top1]": 0.9, "f1 score ✓": 0.5})
    b = db.record("m", {"a": 2.0}, metrics={"acc[top1]": 0.7, "f1 score ✓": 0.8})
    assert [v.id for v in db.versions(where='metrics."acc[top1]" > 0.8')] == [a.id]
    assert [v.id for v in db.versions(where="'acc[top1]' < 0.8")] == [b.id]  # bare, quoted: a metric
    assert [
        v.id for v in db.versions(where="metrics.'f1 score ✓' >= 0.6", order_by="-metrics.f1 score ✓")
    ] == [b.id]
    assert [v.id for v in db.versions(where='"metadata.x" > 0')] == []  # a metric of that name, none
    with pytest.raises(mvcdb.MvcdbError, match=r"'~' \(contains\) does not apply to metric 'acc\[top1\]'"):
        db.versions(where='"acc[top1]" ~ 1')


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda db: db.versions(where=5), "where must be a condition string or a list of them"),
        (lambda db: db.sql("SELECT '\udcfe'"), "the query is not valid UTF-8 text"),
        (lambda db: db.versions(where=[None]), "where must be a condition string or a list of them"),
        (lambda db: db.versions(order_by=5), "order_by must be a string"),
        (lambda db: db.versions(since="yesterday"), "since 'yesterday' is not a date"),
        (lambda db: db.versions(since="0000-01-01"), "since '0000-01-01' is not a date"),
        (lambda db: db.versions(until="99999999d"), "until '99999999d' is out of range"),
        (lambda db: db.versions(since=5), "since must be a datetime or a string, got int"),
        (lambda db: db.sql("SELECT ?", [2**70]), "integers must fit 64 bits"),
        (lambda db: db.sql("SELECT ?", [object()]), "type 'object' is not supported"),
        (lambda db: db.merge(None), "the file to merge must be a file path, got NoneType"),
        (lambda db: mvcdb.open(5), "path must be a file path, got int"),  # type: ignore[arg-type]
    ],
)
def test_wrong_arguments_are_one_clear_error(
    db: mvcdb.Database, call: Callable[[mvcdb.Database], object], needle: str
) -> None:
    with pytest.raises(mvcdb.MvcdbError) as refused:
        call(db)
    assert needle in str(refused.value)


def test_since_and_until_take_what_the_cli_takes(db: mvcdb.Database) -> None:
    v = db.record("m", {"a": 1.0})
    assert [x.id for x in db.versions(since="7d")] == [v.id]
    assert db.versions(until="7d") == []
    assert [x.id for x in db.versions(since=datetime.now(timezone.utc) - timedelta(minutes=5))] == [v.id]
    assert [x.id for x in db.versions(where=(c for c in ["model = m"]))] == [v.id]  # any iterable


def test_a_bytes_path_opens_the_same_file(tmp_path: Path) -> None:
    with mvcdb.open(str(tmp_path / "b.db").encode()) as db:
        v = db.record("m", {"a": 1.0})
    with mvcdb.open(tmp_path / "b.db", readonly=True) as again:
        assert again.get(v.id).id == v.id


def test_a_closed_database_says_so_on_every_use(tmp_path: Path) -> None:
    db = mvcdb.open(tmp_path / "c.db")
    v = db.record("m", {"w": np.arange(3.0)})
    db.close()
    db.close()  # twice is fine
    for use in (
        db.versions,
        lambda: db.restore(v.id),
        lambda: db.get(v.id),
        lambda: db.record("m", {"a": 1.0}),
    ):
        with pytest.raises(mvcdb.MvcdbError, match="the database is closed"):
            use()


def test_print_of_a_version_is_one_line(tmp_path: Path) -> None:
    """print(v) gave the whole dataclass repr (64-hex id, author, metadata...) on one huge line."""
    with mvcdb.open(tmp_path / "s.db") as db:
        v = db.record("linreg", {"m": 1.0}, metrics={"val_mse": 0.2345678912}, message="first fit\nmore")
        db.tag(v, "production")
        for shown in (db.get(v.id), db.versions()[0]):
            text = str(shown)
            assert "\n" not in text and v.id not in text
            assert text.startswith(f"{v.short_id} linreg ")
            assert text.endswith("val_mse=0.234568 [production] 'first fit' …")
        assert repr(v).startswith("Version(id=")  # repr keeps everything


def test_bidirectional_overrides_are_refused_in_names_and_flattened_in_tables(db: mvcdb.Database) -> None:
    """U+202E made a name display as another (and `mvcdb log` printed it raw)."""
    from mvcdb.cli.output import table_cell

    v = db.record("m", {"a": 1.0}, message="abc\u202edef")
    with pytest.raises(mvcdb.MvcdbError, match="tensor name 'w\\\\u202e' contains control characters"):
        db.record("m", {"w\u202e": 1.0})
    with pytest.raises(mvcdb.MvcdbError, match="control characters"):
        db.record("m", {"a": 1.0}, metrics={"x\u202e": 1.0})
    assert table_cell(v.message) == "abc def" and table_cell("x\x9b31my") == "x 31my"
