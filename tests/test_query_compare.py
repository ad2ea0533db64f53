"""Searching (db.versions filters and ordering) and comparing (db.compare leaderboards)."""

from __future__ import annotations

import json

import pytest

import mvcdb
from mvcdb.models import Version


@pytest.fixture
def runs(db: mvcdb.Database) -> list[Version]:
    """Four versions of 'clf' with different metrics and metadata, one of 'other'."""
    out = []
    for i, (loss, acc, lr, data) in enumerate(
        [
            (0.5, 0.7, 0.1, "a.csv"),
            (0.3, 0.8, 0.01, "a.csv"),
            (0.4, 0.9, 0.01, "b.csv"),
            (0.2, None, 0.001, "b.csv"),
        ]
    ):
        metrics = {"val_loss": loss} | ({"acc": acc} if acc is not None else {})
        out.append(
            db.record(
                "clf", metrics=metrics, metadata={"hyper": {"lr": lr}, "train_set": data}, message=f"run {i}"
            )
        )
    db.record("other", metrics={"val_loss": 0.01})
    return out


def test_versions_filter_on_metrics_and_metadata(db: mvcdb.Database, runs: list[Version]) -> None:
    ids = lambda vs: [v.id for v in vs]  # noqa: E731
    assert ids(db.versions(model="clf", where="metrics.val_loss < 0.35", order_by="metrics.val_loss")) == [
        runs[3].id,
        runs[1].id,
    ]
    assert ids(db.versions(where=["metadata.train_set = 'b.csv'", "val_loss >= 0.3"])) == [runs[2].id]
    assert ids(db.versions(model="clf", where="metadata.hyper.lr = 0.01", order_by="-metrics.val_loss")) == [
        runs[2].id,
        runs[1].id,
    ]
    # missing metric values sort last whichever the direction
    assert ids(db.versions(model="clf", order_by="-metrics.acc"))[-1] == runs[3].id
    assert ids(db.versions(model="clf", order_by="metrics.acc"))[-1] == runs[3].id
    assert ids(db.versions(model="clf", order_by="metadata.hyper.lr", limit=1)) == [runs[3].id]
    assert ids(db.versions(model="clf", where="message ~ RUN 2")) == [runs[2].id]
    assert len(db.versions(model="clf", limit=2)) == 2
    with pytest.raises(mvcdb.MvcdbError, match="cannot read condition"):
        db.versions(where="val_loss")
    with pytest.raises(mvcdb.MvcdbError, match="cannot order by"):
        db.versions(order_by="bogus")


def test_compare_leaderboard(db: mvcdb.Database, runs: list[Version]) -> None:
    board = db.compare(runs, fields=["hyper.lr", "metadata.train_set", "message"])
    assert board.columns == ("acc", "val_loss", "hyper.lr", "metadata.train_set", "message")
    assert board.kinds == ("metric", "metric", "field", "field", "field")
    assert [v.id for v in board.versions] == [v.id for v in runs]
    assert board.rows[0] == (0.7, 0.5, 0.1, "a.csv", "run 0")
    assert board.rows[3][0] is None  # no acc: missing, not zero
    best = board.sorted_by("val_loss")
    assert [v.id for v in best.versions] == [runs[3].id, runs[1].id, runs[2].id, runs[0].id]
    by_acc = board.sorted_by("acc", descending=True)
    assert [v.id for v in by_acc.versions] == [runs[2].id, runs[1].id, runs[0].id, runs[3].id]
    text = str(board)
    assert text.splitlines()[0].split() == ["version", "model", "acc", "val_loss", "hyper.lr",
                                            "metadata.train_set", "message"]  # fmt: skip
    assert runs[0].short_id in text and "-" in text.splitlines()[4]
    data = json.loads(json.dumps(board.to_dict(), allow_nan=False))
    assert data["columns"][0] == {"name": "acc", "kind": "metric"}
    assert data["rows"][0]["values"]["hyper.lr"] == 0.1 and data["rows"][0]["id"] == runs[0].id


def test_compare_chosen_metrics_refs_and_errors(db: mvcdb.Database, runs: list[Version]) -> None:
    board = db.compare([runs[0].id[:8], "clf@latest", runs[0]], metrics=["val_loss"])
    assert board.columns == ("val_loss",) and len(board.rows) == 2  # duplicates dropped
    assert board.column("val_loss") == [0.5, 0.2]
    nan = db.record("clf", metrics={"val_loss": float("nan")})
    assert json.loads(json.dumps(db.compare([nan]).to_dict(), allow_nan=False))["rows"][0]["values"] == {
        "val_loss": "nan"
    }
    with pytest.raises(mvcdb.MvcdbError, match="no column"):
        board.column("acc")
    with pytest.raises(mvcdb.MvcdbError, match="at least one"):
        db.compare([])
    with pytest.raises(mvcdb.errors.RefError):
        db.compare(["nope"])
