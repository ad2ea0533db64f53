"""The diff screen: db.diff(a, b) — metadata, metrics, per-tensor changes — and both runs' curves."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label, Select, Static

from ..data import in_thread, load_diff, metric_text, short
from .chart import TrajectoryChart

PlotData = tuple[np.ndarray | None, dict[str, np.ndarray]]


class DiffScreen(Screen[None]):
    """Compares version a (older side) with version b."""

    BINDINGS = [Binding("escape,q", "close", "Back")]

    def __init__(self, db_path: str | Path, a: str, b: str) -> None:
        super().__init__()
        self.db_path = db_path
        self.a = a
        self.b = b
        self.report: dict[str, Any] | None = None
        self.curves: dict[str, PlotData] = {}

    def compose(self) -> ComposeResult:
        yield Static(Text(f"diff {short(self.a)} → {short(self.b)}  (loading …)"), id="diff-title")
        with VerticalScroll(id="diff-body"):
            yield Static("", id="diff-summary")
            yield Label("parameters", classes="section")
            params: DataTable[str | Text] = DataTable(id="diff-params", cursor_type="row", zebra_stripes=True)
            yield params
            yield Static("", id="diff-trajectory")
            with Horizontal(id="diff-series-bar"):
                yield Label("trajectories ", classes="section")
                yield Select[str]([], prompt="series", id="diff-series")
            yield TrajectoryChart(id="diff-chart")
        yield Footer()

    def on_mount(self) -> None:
        self._load()

    @work(exclusive=True, group="diff", exit_on_error=False)
    async def _load(self) -> None:
        """The diff in a daemon thread: `q` used to wait for it to end (seconds a GB of tensors);
        leaving the screen cancels this worker, and the thread's result is then dropped."""
        diffing = in_thread(lambda: load_diff(self.db_path, self.a, self.b), name="mvcdb-diff")
        try:
            report, curves = await asyncio.wrap_future(diffing)
        except Exception as exc:  # noqa: BLE001 - shown as a notification, the screen stays
            self._failed(str(exc))
            return
        self._show(report, curves)

    def _failed(self, message: str) -> None:
        self.query_one("#diff-title", Static).update(Text(f"diff failed: {message}", style="bold red"))
        self.notify(message, title="diff", severity="error", markup=False)

    def _show(self, report: dict[str, Any], curves: dict[str, PlotData]) -> None:
        self.report = report
        self.curves = curves
        a, b = _side(report.get("a")), _side(report.get("b"))
        self.query_one("#diff-title", Static).update(
            Text.assemble(("diff  ", "bold"), (a, "cyan"), ("  →  ", "bold"), (b, "magenta"))
        )
        self.query_one("#diff-summary", Static).update(self._summary(report))
        self._fill_params(report.get("params") or [])
        self.query_one("#diff-trajectory", Static).update(_trajectory_table(report.get("trajectory") or []))
        names = sorted(set(curves["a"][1]) | set(curves["b"][1]))
        select: Select[str] = self.query_one("#diff-series", Select)
        select.set_options([(Text(n), n) for n in names])  # Text: "loss[val]" is no markup
        if names:
            chosen = next((n for n in names if "loss" in n), names[0])
            select.value = chosen
            self.plot(chosen)
        else:
            self.query_one(TrajectoryChart).blank("neither version has a trajectory")

    def plot(self, series: str) -> None:
        """Overlay series of a and b on one chart."""
        lines = []
        for side, ref in (("a", self.a), ("b", self.b)):
            steps, values = self.curves.get(side, (None, {}))
            if steps is not None and series in values:
                lines.append((f"{side} {short(ref)}", steps, values[series]))
        chart = self.query_one(TrajectoryChart)
        if lines:
            chart.plot(series, lines)
        else:
            chart.blank(f"{series}: not logged")

    @on(Select.Changed, "#diff-series")
    def _series_changed(self, event: Select.Changed) -> None:
        if isinstance(event.value, str):
            self.plot(event.value)

    def _summary(self, report: dict[str, Any]) -> RenderableType:
        parts: list[RenderableType] = []
        meta = report.get("metadata") or {}
        table = Table(title="metadata", title_justify="left", expand=False, show_edge=False)
        table.add_column("change")
        table.add_column("field")
        table.add_column("a")
        table.add_column("b")
        for kind, style in (("added", "green"), ("removed", "red"), ("changed", "yellow")):
            for field, va, vb in _entries(meta.get(kind), kind):
                table.add_row(Text(kind, style=style), Text(field), Text(va), Text(vb))
        parts.append(table if table.row_count else Text("metadata: identical", style="dim"))
        metrics = report.get("metrics") or []
        mt = Table(title="metrics", title_justify="left", show_edge=False)
        for col in ("name", "a", "b", "change", "relative"):
            mt.add_column(col, justify="left" if col == "name" else "right")
        for m in metrics:
            change = _num(m.get("abs_change"))
            style = "" if change in ("", "0") else "bold"
            mt.add_row(
                Text(str(m.get("name"))),
                _num(m.get("a")),
                _num(m.get("b")),
                Text(change, style=style),
                _pct(m.get("rel_change")),
            )
        parts.append(mt if metrics else Text("metrics: none", style="dim"))
        return Group(*parts)

    def _fill_params(self, params: list[dict[str, Any]]) -> None:
        table = self.query_one("#diff-params", DataTable)
        table.clear(columns=True)
        for col in ("name", "status", "dtype", "shape", "l2", "max |Δ|", "rel", "cosine", "changed"):
            table.add_column(col, key=col)
        styles = {"added": "green", "removed": "red", "changed": "yellow", "unchanged": "dim"}
        for p in params:
            status = str(p.get("status", ""))
            table.add_row(
                Text(str(p.get("name"))),
                Text(status, style=styles.get(status, "")),
                Text(_pair(p.get("dtype_a"), p.get("dtype_b"))),
                Text(_pair(_shape(p.get("shape_a")), _shape(p.get("shape_b")))),
                Text(_num(p.get("l2")), justify="right"),
                Text(_num(p.get("max_abs")), justify="right"),
                Text(_pct(p.get("rel_change")), justify="right"),
                Text(_num(p.get("cosine")), justify="right"),
                Text(changed_cell(p), justify="right"),
            )

    def action_close(self) -> None:
        self.dismiss(None)


def changed_cell(param: dict[str, Any]) -> str:
    """The share of elements that changed, and how many became (or stopped being) NaN: those are
    left out of l2/max/rel/cosine, so the table says they exist."""
    nan = param.get("nan_changed") or 0
    return _pct(param.get("frac_changed")) + (f" ({nan:,} NaN)" if nan else "")


def _side(info: Any) -> str:
    if isinstance(info, dict):
        ident = str(info.get("id") or info.get("short_id") or "")
        label = short(ident) if ident else "?"
        if info.get("model"):
            label += f" ({info['model']})"
        return label
    return short(str(info)) if info else "?"


def _entries(obj: Any, kind: str) -> list[tuple[str, str, str]]:
    """Metadata changes in any reasonable shape -> (field, a, b) rows."""
    rows: list[tuple[str, str, str]] = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            if kind == "changed" and isinstance(value, (list, tuple)) and len(value) == 2:
                rows.append((str(key), _json(value[0]), _json(value[1])))
            elif kind == "changed" and isinstance(value, dict) and {"a", "b"} <= set(value):
                rows.append((str(key), _json(value["a"]), _json(value["b"])))
            elif kind == "removed":
                rows.append((str(key), _json(value), ""))
            else:
                rows.append((str(key), "", _json(value)))
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, dict):
                name = str(item.get("name") or item.get("path") or item.get("key") or "")
                rows.append((name, _json(item.get("a", "")), _json(item.get("b", ""))))
            else:
                rows.append((str(item), "", ""))
    return rows


def _json(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:59] + "…"


def _num(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (int, float)):
        return metric_text(float(value))
    return str(value)


def _count(value: Any) -> str:
    """A number of steps: 1,000,000 (as a metric it read 1.000e+06)."""
    return f"{value:,}" if isinstance(value, int) else _num(value)


def _pct(value: Any) -> str:
    if isinstance(value, (int, float)) and value == value:
        return f"{value * 100:.3g}%"
    return "" if value is None else str(value)


def _shape(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return "×".join(str(d) for d in value) or "scalar"
    return str(value)


def _pair(a: Any, b: Any) -> str:
    a_text, b_text = ("" if a is None else str(a)), ("" if b is None else str(b))
    if a_text == b_text or not a_text or not b_text:
        return a_text or b_text
    return f"{a_text} → {b_text}"


def _trajectory_table(rows: list[dict[str, Any]]) -> RenderableType:
    if not rows:
        return Text("trajectory: none on either side", style="dim")
    table = Table(title="trajectory", title_justify="left", show_edge=False)
    for col in ("series", "steps a", "steps b", "last a", "last b", "min a", "min b"):
        table.add_column(col, justify="left" if col == "series" else "right")
    for r in rows:
        a, b = r.get("a") or {}, r.get("b") or {}
        table.add_row(
            Text(str(r.get("name"))),
            _count(r.get("len_a")),
            _count(r.get("len_b")),
            _num(a.get("last")),
            _num(b.get("last")),
            _num(a.get("min")),
            _num(b.get("min")),
        )
    return table
