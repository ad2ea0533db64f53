"""The versions table: one row a version, filled a page at a time (the rest loads on scroll)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderableType
from rich.protocol import rich_cast
from rich.text import Text
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist, RowKey

from mvcdb.models import Version

from ..data import FIXED_COLUMNS, MESSAGE_COLUMN, metric_text, when_text

MARK = "●"
#: Cells and headers are cut to this many characters (a 200-character model name, allowed, took
#: the whole table's width and pushed every other column off screen); the detail pane shows all.
MAX_CELL = 32
#: The message column, the last one, may be wider.
MAX_MESSAGE = 80
#: Ask for the next page when the cursor or the viewport comes this close to the last row.
NEAR_END_ROWS = 40


class QuickTable(DataTable[str | Text]):
    """A DataTable that measures new rows with one ConsoleOptions for all their cells (Textual
    builds one a cell: most of the time adding rows takes) and right away, not when idle."""

    def measure_new_rows(self) -> None:
        """Fit the columns to the new rows now. DataTable defers this to its next idle moment, and
        a loaded machine was once seen showing every column cut to its header's width (tmux test);
        measuring here makes the widths part of loading, whatever the event loop does next.
        (Textual 8.2's own idle step, the same three lines: pinned in pyproject.)"""
        if self._require_update_dimensions:
            self._require_update_dimensions = False
            new_rows = self._new_rows.copy()
            self._new_rows.clear()
            self._update_dimensions(new_rows)

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        """DataTable's, with one ConsoleOptions for every cell: Textual's measure() builds one a
        cell, ~80 % of the time adding a page takes. Rows with a label or an automatic height
        (mvcdb's tables have neither) are left to DataTable."""
        keys = list(new_rows)
        indexes = [index for index in map(self._row_locations.get, keys) if index is not None]
        if any(row.label is not None or row.auto_height for row in map(self.rows.get, keys) if row):
            super()._update_dimensions(keys)
            return
        console = self.app.console
        options = console.options
        columns = self.ordered_columns
        for index in indexes:
            _, cells = self._get_row_renderables(index)
            for column, cell in zip(columns, cells, strict=False):  # as DataTable pairs them
                column.content_width = max(column.content_width, cell_width(console, options, cell))
        super()._update_dimensions(())  # the virtual size, as DataTable sets it


class VersionsTable(QuickTable):
    """A DataTable keyed by full version id, with a mark column and one column per key metric."""

    class NearEnd(Message):
        """The user scrolled near the last loaded row: time to load the next page."""

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.metric_names: list[str] = []
        self.marks: list[str] = []
        self.sort_column: str | None = None
        self.sort_desc = False

    def set_columns(self, metric_names: Sequence[str]) -> None:
        """Rebuild the columns (and drop all rows) for a new set of metric columns."""
        self.clear(columns=True)
        self.metric_names = list(metric_names)
        # Text, not str: DataTable reads a str label as markup (a metric `acc[top1]` lost its
        # brackets), and Rich's markup loads its emoji table (~4 ms) before the first paint.
        self.add_column(Text(" "), key="mark", width=1)
        for key, (label, _) in FIXED_COLUMNS.items():
            self.add_column(Text(self._label(key, label)), key=key)
        for name in self.metric_names:
            self.add_column(Text(self._label(f"metric:{name}", clip(name))), key=f"metric:{name}")
        self.add_column(Text(self._label(*MESSAGE_COLUMN)), key=MESSAGE_COLUMN[0])

    def _label(self, key: str, label: str) -> str:
        if key != self.sort_column:
            return label
        return f"{label} {'▼' if self.sort_desc else '▲'}"

    def relabel(self) -> None:
        """Show the sort arrow on the sorted column's header."""
        for key, column in self.columns.items():
            name = str(key.value)
            if name == "mark":
                continue
            base = FIXED_COLUMNS[name][0] if name in FIXED_COLUMNS else clip(name.removeprefix("metric:"))
            column.label = Text(self._label(name, base))
        self.refresh()

    def row_cells(self, v: Version) -> list[str | Text]:
        """The cells of one version's row."""
        # Text, not str: DataTable would parse a str as markup ("[x]" in a message must stay text).
        cells: list[str | Text] = [
            Text(MARK if v.id in self.marks else ""),
            Text(clip(v.model)),
            Text(v.short_id),
            Text(when_text(v.created_at)),
            Text(clip(v.author)),
            Text(clip(", ".join(v.tags)), style="bold green"),
        ]
        for name in self.metric_names:
            cells.append(Text(metric_text(v.metrics.get(name)), justify="right"))
        first_line = next((line for line in v.message.splitlines() if line.strip()), "")
        cells.append(Text(clip(first_line, MAX_MESSAGE)))
        return cells

    def add_versions(self, versions: Sequence[Version]) -> None:
        """Append rows (ids already shown are skipped: pages can overlap after live updates)."""
        for v in versions:
            if v.id in self.rows:
                continue
            self.add_row(*self.row_cells(v), key=v.id)
        self.measure_new_rows()

    def id_at_cursor(self) -> str | None:
        """The full id of the highlighted row, if any."""
        if self.row_count == 0:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except Exception:  # noqa: BLE001 - an empty or shrinking table has no cursor cell
            return None
        return None if key.value is None else str(key.value)

    def row_of(self, version_id: str) -> int | None:
        """The row index of a version, or None when it is not loaded."""
        try:
            return self.get_row_index(version_id)
        except RowDoesNotExist:
            return None

    def toggle_mark(self, version_id: str) -> None:
        """Mark or unmark a version; a third mark replaces the oldest."""
        if version_id in self.marks:
            self.marks.remove(version_id)
        else:
            self.marks.append(version_id)
            if len(self.marks) > 2:
                dropped = self.marks.pop(0)
                self._show_mark(dropped)
        self._show_mark(version_id)

    def _show_mark(self, version_id: str) -> None:
        if version_id in self.rows:
            self.update_cell(version_id, "mark", Text(MARK if version_id in self.marks else ""))

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if self.row_count and new_value + self.size.height >= self.row_count - NEAR_END_ROWS:
            self.post_message(self.NearEnd())


def clip(text: str, width: int = MAX_CELL) -> str:
    """text cut to width characters, the last one an ellipsis when it was longer."""
    return text if len(text) <= width else text[: width - 1] + "…"


def cell_width(console: Console, options: ConsoleOptions, cell: RenderableType) -> int:
    """A cell's width as textual.render.measure gives it (default 1), with options made once."""
    if isinstance(cell, str):
        return cell_len(cell)
    renderable = rich_cast(cell)
    get_width = getattr(renderable, "__rich_measure__", None)
    if get_width is None:
        return 1
    return max(0, int(get_width(console, options).maximum))
