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
from textual.worker import get_current_worker

from ..data import run_sql, schema_views

#: Rows shown at most (the status line says when there were more).
MAX_ROWS = 1000


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
        """Run a query in a worker; the results or the error arrive on the UI thread."""
        self.query_one("#sql-status", Static).update(Text("running …", style="dim"))
        self._run(query)

    @work(thread=True, exclusive=True, group="sql", exit_on_error=False)
    def _run(self, query: str) -> None:
        start = time.perf_counter()
        try:
            rows = run_sql(self.db_path, query)
        except Exception as exc:  # noqa: BLE001 - a refused write or bad SQL is a notification
            self.app.call_from_thread(self._failed, str(exc))
            return
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show_rows, rows, time.perf_counter() - start)

    def _failed(self, message: str) -> None:
        self.query_one("#sql-status", Static).update(Text(message, style="bold red"))
        self.notify(message, title="SQL refused", severity="error", markup=False)

    def _show_rows(self, rows: list[dict[str, Any]], seconds: float) -> None:
        self.last_rows = rows
        table = self.query_one("#sql-results", DataTable)
        table.clear(columns=True)
        columns = list(rows[0]) if rows else []
        for col in columns:
            table.add_column(col, key=col)
        for row in rows[:MAX_ROWS]:
            table.add_row(*(_cell(row.get(c)) for c in columns))
        more = f", showing the first {MAX_ROWS}" if len(rows) > MAX_ROWS else ""
        self.query_one("#sql-status", Static).update(f"{len(rows)} rows in {seconds * 1000:.0f} ms{more}")

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
