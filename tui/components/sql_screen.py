"""The SQL console: a read-only query box, the schema's views and tables, a results table."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from ..data import SqlQuery, SqlResult, SqlStopped, counted, schema_views

#: Rows read and shown at most (the status line says when there were more).
MAX_ROWS = 1000
#: Seconds a query may run before it is stopped with an error.
QUERY_SECONDS = 60.0


class SqlScreen(Screen[None]):
    """Run read-only SQL through db.sql; writes are refused there and shown as errors."""

    BINDINGS = [
        Binding("escape", "close", "Back"),
        Binding("ctrl+l", "focus_query", "Query box"),
    ]

    def __init__(self, db_path: str | Path) -> None:
        super().__init__()
        self.db_path = db_path
        self.last_rows: list[dict[str, Any]] = []
        #: The query running now, to stop when another starts or the screen closes.
        self._query_running: SqlQuery | None = None

    def compose(self) -> ComposeResult:
        with Horizontal():
            with Vertical(id="sql-side"):
                yield Label("views and tables", classes="section")
                yield OptionList(id="sql-views")
            with Vertical(id="sql-main"):
                yield Input(placeholder="SELECT … (read-only; enter runs it)", id="sql-query")
                yield Static("", id="sql-status")
                yield DataTable(id="sql-results", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#sql-query", Input).focus()
        self._load_views()

    @work(thread=True, exclusive=True, group="sql-views", exit_on_error=False)
    def _load_views(self) -> None:
        try:
            names = schema_views(self.db_path)
        except Exception as exc:  # noqa: BLE001 - shown, never fatal
            self.app.call_from_thread(self.notify, str(exc), severity="error", markup=False)
            return
        self.app.call_from_thread(self._show_views, names)

    def _show_views(self, names: list[tuple[str, str]]) -> None:
        views = self.query_one("#sql-views", OptionList)
        views.clear_options()
        for name, kind in names:
            label = Text(name, style="bold cyan" if kind == "view" else "")
            label.append(f"  {kind}", style="dim")
            views.add_option(Option(label, id=name))

    @on(OptionList.OptionSelected, "#sql-views")
    def _view_chosen(self, event: OptionList.OptionSelected) -> None:
        query = f"SELECT * FROM {event.option.id} LIMIT 100"
        box = self.query_one("#sql-query", Input)
        box.value = query
        self.run_query(query)

    @on(Input.Submitted, "#sql-query")
    def _submitted(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.run_query(event.value)

    def run_query(self, query: str) -> None:
        """Run a query in a worker (stopping one still running); results or error come back."""
        self.query_one("#sql-status", Static).update(Text("running …", style="dim"))
        self._stop_running()
        self._query_running = SqlQuery(self.db_path, query, MAX_ROWS, QUERY_SECONDS)
        self._run(self._query_running)

    def _stop_running(self) -> None:
        if self._query_running is not None:
            self._query_running.stop()
            self._query_running = None

    def on_unmount(self) -> None:
        """A query still running stops with the screen (else quitting waited for its end)."""
        self._stop_running()

    @work(thread=True, exclusive=True, group="sql", exit_on_error=False)
    def _run(self, sql: SqlQuery) -> None:
        start = time.perf_counter()
        try:
            result = sql.run()
        except SqlStopped:
            return
        except Exception as exc:  # noqa: BLE001 - a refused write or bad SQL is a notification
            self.app.call_from_thread(self._failed, sql, str(exc))
            return
        self.app.call_from_thread(self._show_rows, sql, result, time.perf_counter() - start)

    def _failed(self, sql: SqlQuery, message: str) -> None:
        if sql is not self._query_running or not self.is_attached:
            return
        self.query_one("#sql-status", Static).update(Text(message, style="bold red"))
        self.notify(message, title="SQL refused", severity="error", markup=False)

    def _show_rows(self, sql: SqlQuery, result: SqlResult, seconds: float) -> None:
        if sql is not self._query_running or not self.is_attached:
            return  # a newer query has started, or the screen is gone
        self.last_rows = [dict(zip(result.columns, row, strict=False)) for row in result.rows]
        table = self.query_one("#sql-results", DataTable)
        table.clear(columns=True)
        for col in result.columns:
            table.add_column(Text(col))  # Text: a column named "[b]x[/b]" keeps its brackets
        for row in result.rows:
            table.add_row(*(_cell(value) for value in row))
        shown = counted(len(result.rows), "row", result.more)
        more = f" (only the first {MAX_ROWS:,} read)" if result.more else ""
        self.query_one("#sql-status", Static).update(f"{shown} in {seconds * 1000:.0f} ms{more}")

    def action_focus_query(self) -> None:
        self.query_one("#sql-query", Input).focus()

    def action_close(self) -> None:
        self.dismiss(None)


def _cell(value: Any) -> Text:
    if value is None:
        return Text("NULL", style="dim")
    if isinstance(value, bytes):
        return Text(f"<{len(value)} bytes>", style="dim")
    text = str(value)
    return Text(text if len(text) <= 80 else text[:79] + "…")
