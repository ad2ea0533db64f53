"""What the everyday-command speed-ups changed: `mvcdb show`'s sparkline is computed on arrays
(a million-point series took a second of Python loops), with the same cells as the loop."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from cli_helpers import run

import mvcdb
from mvcdb.cli import output


def _loop_sparkline(values: Sequence[float], width: int = 40) -> str:
    """The sparkline as `mvcdb show` computed it before (a Python loop over floats)."""
    n = len(values)
    if n == 0:
        return ""
    m = min(n, max(width, 1))
    cells = []
    for i in range(m):
        part = [v for v in values[i * n // m : (i + 1) * n // m] if math.isfinite(v)]
        cells.append(sum(part) / len(part) if part else math.nan)
    finite = [c for c in cells if math.isfinite(c)]
    if not finite:
        return " " * len(cells)
    low, span = min(finite), max(finite) - min(finite)
    sparks = output._SPARKS
    return "".join(
        " "
        if not math.isfinite(c)
        else sparks[len(sparks) // 2]
        if span == 0
        else sparks[min(len(sparks) - 1, int((c - low) / span * len(sparks)))]
        for c in cells
    )


def test_sparkline_of_an_array_matches_the_loop() -> None:
    rng = np.random.default_rng(7)
    for n, width in [(0, 40), (1, 40), (7, 40), (1000, 40), (12_345, 13), (50, 1)]:
        values = np.cumsum(rng.standard_normal(n))
        if n > 10:
            values[::7] = np.nan
            values[3] = np.inf
        as_floats = [float(v) for v in values]
        expected = _loop_sparkline(as_floats, width)
        assert output.sparkline(values, width) == expected
        assert output.sparkline(as_floats, width) == expected
    assert output.sparkline(np.full(5, np.nan)) == "     "


def test_show_sparkline_of_a_long_series(tmp_path: Path) -> None:
    db_path = tmp_path / "m.db"
    loss = np.exp(-np.linspace(0, 5, 200_000)) + np.sin(np.arange(200_000) / 500.0) * 0.01
    loss[::1000] = np.nan
    with mvcdb.open(db_path) as db:
        db.record("m", {"w": np.zeros(3)}, trajectory={"loss": loss})
    result = run(db_path, ["show", "m@latest", "--json"])
    assert result.exit_code == 0, result.output
    (series,) = json.loads(result.stdout)["trajectory"]["series"]
    assert series["sparkline"] == _loop_sparkline([float(v) for v in loss])
    assert series["sparkline"][0] == "█" and series["sparkline"][-1] == "▁"
