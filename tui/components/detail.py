"""The detail pane: one version's metadata, metrics, family, tags, parameters and trajectory."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widget import Widget
from textual.widgets import DataTable, Label, Select, Static

from ..data import Detail, counted, metric_text, short, size_text, sparkline
from .versions_table import QuickTable

if TYPE_CHECKING:
    from .chart import TrajectoryChart

#: Metadata longer than this (as indented JSON) is cut, with a note.
MAX_METADATA_LINES = 40
#: Metric and series names are aligned up to this width; a longer name pushes only its own value
#: (aligning to a 110-character name wrapped every value onto a line of its own).
NAME_ALIGN = 24


class DetailPane(VerticalScroll):
    """Shows a Detail; the parameter norms and the chart's series arrive separately.

    Only the facts are there for the first paint: the parameters table, the series chooser and the
    chart (~50 ms of Textual's mounting and styling at start-up, and ~40 ms to import plotext) are
    mounted right after it, before the first version's detail can have loaded; one that loads
    sooner is filled in then.
    """

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(id=id)
        self.detail: Detail | None = None
        self._series_names: list[str] = []
        self._chart: TrajectoryChart | None = None
        #: The parameter norms of the shown version, once they are known.
        self._norms: dict[str, float] | None = None
        self._body_mounted = False
        self.border_title = "detail"

    def compose(self) -> ComposeResult:
        yield Static("Select a version.", id="info")

    def on_mount(self) -> None:
        """Leave the rest of the pane until the first paint is done."""
        self.call_after_refresh(self._mount_body)

    async def _mount_body(self) -> None:
        """Mount the parts below the facts (after the first paint), then show the detail in them
        (not when the app is closing: its new widgets would never be composed)."""
        if not self.app.is_running:
            return
        await self.mount_all(self._body())
        self._body_mounted = True
        if self.detail is not None and self.app.is_running:
            self._fill_body(self.detail)

    def _body(self) -> list[Widget]:
        """The parameters table, the series chooser and the chart (plotext is imported here)."""
        from .chart import TrajectoryChart

        params = QuickTable(id="params", cursor_type="row", show_cursor=False)
        params.add_column("name", key="name")
        params.add_column("dtype", key="dtype")
        params.add_column("shape", key="shape")
        params.add_column("size", key="size")
        params.add_column("norm", key="norm")
        series_bar = Horizontal(
            Label("trajectory ", classes="section"),
            Select[str]([], prompt="series", id="series", allow_blank=True),
            id="series-bar",
        )
        self._chart = TrajectoryChart(id="chart")
        return [Label("parameters", classes="section"), params, series_bar, self._chart]

    def show_loading(self, version_id: str) -> None:
        """Say which version is loading, in the border only (no relayout while the cursor moves)."""
        self.border_subtitle = f"loading {short(version_id)} …"

    def clear(self) -> None:
        """Show no version: no facts, parameters, series or chart of the one shown before."""
        self.detail = None
        self._norms = None
        self.border_title = "detail"
        self.border_subtitle = ""
        self.query_one("#info", Static).update("No version selected.")
        if not self._body_mounted:
            return
        self.query_one("#params", DataTable).clear()
        self._series_names = []
        self.query_one("#series", Select).set_options([])
        if self._chart is not None:
            self._chart.blank("")

    def show(self, detail: Detail) -> None:
        """Fill every part of the pane from a freshly loaded Detail."""
        self.detail = detail
        self._norms = None
        self.border_title = f"detail · {detail.version.short_id}"
        self.border_subtitle = ""
        self.query_one("#info", Static).update(self._info(detail))
        if self._body_mounted:
            self._fill_body(detail)

    def _fill_body(self, detail: Detail) -> None:
        """The parameters (norms to come, unless known), the series chooser and the chart."""
        params = self.query_one("#params", QuickTable)
        params.clear()
        for t in detail.tensors:
            shape = "×".join(str(d) for d in t.shape) if t.shape else "scalar"
            params.add_row(
                Text(t.name),
                Text(t.dtype),
                Text(shape),
                Text(size_text(t.nbytes), justify="right"),  # the element count: see the shape
                Text("…", justify="right", style="dim"),
                key=t.name,
            )
        params.measure_new_rows()  # 1,000 parameters took ~0.3 s more measured the usual way
        if self._norms is not None:
            self._show_norms(self._norms)
        select: Select[str] = self.query_one("#series", Select)
        names = list(detail.series)
        if names != self._series_names:
            self._series_names = names
            select.set_options([(Text(n), n) for n in names])  # Text: "loss[val]" is no markup
        if names:
            preferred = next((n for n in names if "loss" in n), names[0])
            select.value = preferred
            self.plot(preferred)
        elif self._chart is not None:
            self._chart.blank("no trajectory recorded")

    def set_norms(self, version_id: str, norms: dict[str, float]) -> None:
        """Fill the norm column (computed in a worker, as it reads every tensor's bytes)."""
        if self.detail is None or self.detail.version.id != version_id:
            return
        self._norms = norms
        if self._body_mounted:
            self._show_norms(norms)

    def _show_norms(self, norms: dict[str, float]) -> None:
        """Put the norms in the parameters table ('—' where none was computed: too big in all)."""
        params = self.query_one("#params", DataTable)
        for name in [str(k.value) for k in params.rows]:
            text = metric_text(norms[name]) if name in norms else "—"
            # update_width: the column was as wide as its header, which cut 0.17321 to "0.17"
            # and 1.235e+05 to "1.23" (a narrow pane scrolls the table sideways instead)
            params.update_cell(name, "norm", Text(text, justify="right"), update_width=True)

    def plot(self, series: str) -> None:
        """Draw the chosen series of the shown version."""
        chart, detail = self._chart, self.detail
        if chart is None or detail is None or detail.steps is None or series not in detail.series:
            return
        chart.plot(
            f"{series} · {detail.version.short_id}",
            [(detail.version.short_id, detail.steps, detail.series[series])],
        )

    def on_select_changed(self, event: Select.Changed) -> None:
        """The user chose another series to plot."""
        event.stop()
        if isinstance(event.value, str):
            self.plot(event.value)

    def _info(self, detail: Detail) -> Text:
        """The facts as plain aligned text (cheap to lay out: it changes with every selection)."""
        v = detail.version
        out = Text()

        def row(label: str, value: str | Text) -> None:
            out.append(f"{label:<9}", style="bold")
            out.append(value if isinstance(value, Text) else Text(value))
            out.append("\n")

        row("id", v.id)
        row("model", v.model)
        row("when", v.created_at.strftime("%Y-%m-%d %H:%M:%S UTC"))
        row("author", v.author or "—")
        row("message", v.message or "—")
        row("tags", Text(", ".join(v.tags), style="bold green") if v.tags else "—")
        parents = ", ".join(short(p) for p in v.parents) or "— (a root)"
        if len(v.parents) > 1:
            parents += f"  ({len(v.parents)} parents: a merge)"
        row("parents", parents)
        kids = ", ".join(short(c) for c in detail.children[:8])
        if len(detail.children) > 8:
            kids += f" … ({len(detail.children)} in all)"
        row("children", kids or "—")
        row("params", f"{counted(len(detail.tensors), 'tensor')}, {size_text(v.params_bytes)}")
        if not v.metrics:
            row("metrics", "—")
        width = min(NAME_ALIGN, max((len(n) for n in v.metrics), default=0))
        for i, (name, value) in enumerate(v.metrics.items()):
            line = Text(f"{name:<{width}}  ", style="cyan")
            line.append(metric_text(value))
            row("metrics" if i == 0 else "", line)
        for i, line_text in enumerate(_metadata_lines(v.metadata)):
            row("metadata" if i == 0 else "", line_text)
        width = min(NAME_ALIGN, max((len(n) for n in detail.series), default=0))
        for i, (name, values) in enumerate(detail.series.items()):
            finite = values[np.isfinite(values)]
            last = metric_text(float(finite[-1])) if len(finite) else "nan"
            line = Text(f"{name:<{width}} ", style="cyan")
            line.append(sparkline(values, 16))
            line.append(f" {last}", style="dim")
            row("series" if i == 0 else "", line)
        out.rstrip()
        return out


def _metadata_lines(metadata: dict[str, object]) -> list[str]:
    if not metadata:
        return ["—"]
    lines = json.dumps(metadata, indent=2, ensure_ascii=False, default=str).splitlines()
    if len(lines) > MAX_METADATA_LINES:
        lines = [*lines[:MAX_METADATA_LINES], f"… ({len(lines) - MAX_METADATA_LINES} more lines)"]
    return lines
