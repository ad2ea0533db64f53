"""The TUI's data layer without a screen: filter parsing, ordering, lineage layout, series."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

import mvcdb
from mvcdb.errors import MvcdbError
from mvcdb.models import Version
from mvcdb.tui.data import (
    build_lineage,
    counted,
    export_format,
    export_params,
    key_metrics,
    metric_columns,
    order_key,
    parse_filter,
    plot_series,
    sparkline,
)


def test_parse_filter_terms() -> None:
    assert parse_filter("val_loss<0.2  model=linreg, tag=production author = bob") == [
        "val_loss<0.2",
        "model=linreg",
        "tag=production",
        "author = bob",
    ]
    assert parse_filter("metadata.hyper.lr>=0.01 message~'warm up'") == [
        "metadata.hyper.lr>=0.01",
        "message~'warm up'",
    ]
    # bare words: a model name when one exists, else a search of the messages
    assert parse_filter("linreg soup", models=["linreg"]) == ["model = 'linreg'", "message ~ 'soup'"]
    assert parse_filter('"two words"') == ["message ~ 'two words'"]
    assert parse_filter("   ") == []


def test_filters_reach_the_api(tmp_path: Path) -> None:
    with mvcdb.open(tmp_path / "f.db") as db:
        a = db.record("m", metrics={"loss": 0.1}, message="warm up run")
        db.record("m", metrics={"loss": 0.5}, message="cold")
        for text, expected in [("loss<0.2", [a.id]), ("warm", [a.id]), ("message~'up r'", [a.id])]:
            assert [v.id for v in db.versions(where=parse_filter(text, db.models()))] == expected
        with pytest.raises(MvcdbError):
            db.versions(where=parse_filter("loss<abc"))


def test_order_keys() -> None:
    assert order_key("when", True) == "-created_at"
    assert order_key("metric:val_loss", False) == "metrics.val_loss"
    assert order_key("message", False) == "message"
    assert order_key("tags", False) is None


def _v(ident: str, parents: tuple[str, ...] = (), metrics: dict[str, float] | None = None) -> Version:
    return Version(
        id=ident * 64,
        model="m",
        parents=tuple(p * 64 for p in parents),
        metrics=metrics or {},
        metadata={},
        message="",
        author="",
        created_at=datetime(2026, 1, 1, tzinfo=timezone.utc),
    )


def test_lineage_layout_keeps_chains_flat_and_notes_merges() -> None:
    # a -> b -> c, a -> d (branch), e = merge(c, d); x is a parent outside the drawn set
    versions = [
        _v("a"),
        _v("b", ("a",)),
        _v("c", ("b",)),
        _v("d", ("a",)),
        _v("e", ("c", "d")),
        _v("f", ("x",)),
    ]
    lineage = build_lineage("m", versions)
    assert lineage.roots == ["a" * 64, "f" * 64]
    assert lineage.nodes["a" * 64].children == ["b" * 64, "d" * 64]
    assert lineage.nodes["c" * 64].children == ["e" * 64]
    assert lineage.merge_links == {"d" * 64: ["e" * 64]}


def test_key_metrics_most_common_first() -> None:
    versions = [
        _v("a", metrics={"loss": 1, "acc": 1}),
        _v("b", metrics={"loss": 1}),
        _v("c", metrics={"z": 1}),
    ]
    assert key_metrics(versions, limit=2) == ["loss", "acc"]


def test_metric_columns_keep_their_places() -> None:
    """A re-sort keeps every shown column in place (`o` then visits each column in turn); a new
    filter keeps the order of the columns it keeps."""
    both = [_v("a", metrics={"acc": 0.5, "loss": 0.1})] * 3
    only_loss = [_v("b", metrics={"loss": 0.2})] * 4
    assert metric_columns([], both + only_loss, keep=False) == ["loss", "acc"]
    assert metric_columns(["loss", "acc"], both, keep=True) == ["loss", "acc"]  # a tie: acc first afresh
    assert metric_columns(["acc", "loss"], only_loss, keep=True) == ["acc", "loss"]
    assert metric_columns(["acc", "loss"], only_loss, keep=False) == ["loss"]
    assert metric_columns(["acc"], [*only_loss, _v("c", metrics={"f1": 1})], keep=True) == [
        "acc",
        "loss",
        "f1",
    ]
    assert metric_columns(["acc", "loss"], [], keep=False) == ["acc", "loss"]  # no rows: columns stay


def test_export_format_follows_a_known_extension() -> None:
    """As `mvcdb restore -o`: the extension decides; the chosen format only for other names."""
    assert export_format("out/model.SafeTensors", "npz") == "safetensors"
    assert export_format(" model.npz ", "safetensors") == "npz"
    assert export_format("model.bin", "safetensors") == "safetensors"


def test_counted_is_singular_for_one() -> None:
    assert [counted(1, "tensor"), counted(2, "tensor"), counted(1_200, "version", True)] == [
        "1 tensor",
        "2 tensors",
        "1,200+ versions",
    ]


def test_plot_series_thins_and_norms() -> None:
    n = 5000
    steps, series = plot_series(
        {
            "step": np.arange(n),
            "loss": np.linspace(1, 0, n),
            "w": np.ones((n, 2, 2)),
            "flag": np.ones(n, bool),
        }
    )
    assert steps is not None and len(steps) == 2000 and steps[0] == 0 and steps[-1] == n - 1
    assert set(series) == {"loss", "‖w‖", "flag"}
    assert np.allclose(series["‖w‖"], 2.0)
    assert plot_series({}) == (None, {})
    assert sparkline(np.array([0.0, 1.0, np.nan, 2.0]), 8) == "▁▅█"
    assert sparkline(np.array([np.nan])) == ""


def test_export_refuses_to_overwrite_and_unknown_formats(tmp_path: Path) -> None:
    path = tmp_path / "e.db"
    with mvcdb.open(path) as db:
        v = db.record("m", params={"w": np.arange(6, dtype=">i4").reshape(2, 3)})
    out = tmp_path / "w.npz"
    export_params(path, v.id, out, "npz", overwrite=False)
    with np.load(out) as got:
        assert got["w"].dtype == np.dtype(">i4") and got["w"].tolist() == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(MvcdbError, match="exists"):
        export_params(path, v.id, out, "npz", overwrite=False)
    with pytest.raises(MvcdbError, match="format"):
        export_params(path, v.id, tmp_path / "w.bin", "pickle", overwrite=False)
    assert not list(tmp_path.glob("*.part"))


def test_the_diff_tables_changed_cell_names_one_sided_nans() -> None:
    from mvcdb.tui.components.diff_screen import changed_cell

    assert changed_cell({"frac_changed": 0.5, "nan_changed": 0}) == changed_cell({"frac_changed": 0.5})
    assert changed_cell({"frac_changed": 0.5, "nan_changed": 1234}).endswith(" (1,234 NaN)")
