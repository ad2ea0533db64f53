"""MvcdbApp: browse, compare, tag and export the versions of one mvcdb file (`mvcdb tui`).

The UI thread never touches SQLite except for one cheap `PRAGMA data_version` poll; every query
runs in a thread worker with its own read-only connection and posts its result back (the first
rows in a plain thread begun in compose, so that they can be in the first paint).
"""

from __future__ import annotations

import sqlite3
from concurrent.futures import Future, wait
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import events, on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.timer import Timer
from textual.widgets import DataTable, Header, Input, Static, Tree
from textual.worker import get_current_worker

import mvcdb
from mvcdb.errors import MvcdbError

from .components.commands import MvcdbCommands
from .components.detail import DetailPane
from .components.keybar import KeyBar
from .components.lineage import LineagePane
from .components.versions_table import NEAR_END_ROWS, VersionsTable
from .data import (
    PAGE_SIZE,
    Detail,
    Lineage,
    counted,
    export_params,
    first_page_size,
    in_thread,
    load_detail,
    load_lineage,
    load_page,
    metric_columns,
    missing_ids,
    model_names,
    order_key,
    param_norms,
    parse_filter,
    set_tag,
    short,
    tag_state,
)
from .keys import MAIN_KEYS, main_bindings

if TYPE_CHECKING:
    from mvcdb.database import Database
    from mvcdb.models import Version

#: Rows reloaded at most when the file changes under us (the rest load again on scroll).
MAX_RELOAD_ROWS = 20 * PAGE_SIZE
#: The table's sort at start-up: (column, descending).
INITIAL_SORT = ("when", True)
#: Columns that sort newest/largest first on the first press.
DESCENDING_FIRST = {"when"}
#: Below this many terminal rows the trajectory chart is hidden (sparklines remain).
COMPACT_HEIGHT = 30
#: Actions bound on the main screen only (help works everywhere; escape also clears the filter).
MAIN_ACTIONS = {action for _, action, _, _, _ in MAIN_KEYS if action != "help"} | {"clear_filter"}
FILTER_HINT = "filter: val_loss<0.2 model=linreg tag=production author=bob words (enter applies, esc clears)"


class FilterInput(Input):
    """The `/` filter box: enter applies, escape clears and hides it."""

    BINDINGS = [Binding("escape", "app.clear_filter", "Clear filter", show=False)]

    def allow_focus(self) -> bool:
        """Only while shown: Textual's start-up focus goes to the first focusable widget before CSS
        hides this one, and moving it on to the table restyled the screen twice (~10 ms)."""
        return self.has_class("shown") and super().allow_focus()


class MvcdbApp(App[None]):
    """The mvcdb terminal UI over one database file."""

    CSS_PATH = Path(__file__).with_name("mvcdb.tcss")
    TITLE = "mvcdb"
    BINDINGS: ClassVar[list[Binding | tuple[str, str] | tuple[str, str, str]]] = [
        *main_bindings(),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]
    COMMANDS = App.COMMANDS | {MvcdbCommands}
    #: Seconds between checks for versions recorded by other processes.
    POLL_SECONDS = 0.5
    #: Seconds the cursor must rest on a row before its detail loads (keeps fast scrolling cheap).
    DETAIL_DELAY = 0.12
    #: Seconds the first paint waits at most for the first rows (a slow file paints "loading" first).
    FIRST_ROWS_WAIT = 0.1

    table: VersionsTable
    lineage: LineagePane
    detail: DetailPane

    def __init__(self, db_path: str | Path) -> None:
        super().__init__()
        self.db_path = Path(db_path)
        self.sub_title = self.db_path.name
        self.where: list[str] = []
        self.filter_text = ""
        #: A filter asked for whose rows have not arrived yet (where, text): adopted once they do.
        self._pending_filter: tuple[list[str], str] | None = None
        #: The filter the metric columns were chosen for (None: none chosen yet).
        self._columns_where: list[str] | None = None
        self.models: list[str] = []
        self.more = False
        self.loading = False
        self.current_id: str | None = None
        self.current_version: Version | None = None
        self._generation = 0
        self._watch: Database | None = None
        self._data_version: int | None = None
        self._detail_timer: Timer | None = None
        self._file_changed = False
        #: The first rows, read in a thread from compose on, and how many were asked for.
        self._first_page: tuple[Future[list[Version]], int] | None = None
        self._watch_error: str | None = None

    # -- layout --------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        self._start_reading()
        yield Header(icon="◆")
        yield FilterInput(
            placeholder="filter: val_loss<0.2 model=linreg tag=production author=bob words", id="filter"
        )
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield VersionsTable(id="versions")
                yield LineagePane(id="lineage")
            yield DetailPane(id="detail")
        yield Static("", id="status")
        yield KeyBar(id="keys")

    def _start_reading(self) -> None:
        """Before the screen is built: watch the file (its data_version read before any rows, so no
        change is missed) and read the first rows in a thread meanwhile, for the first paint."""
        if self._first_page is not None or self._generation:
            return  # composed again: the file is watched and read already
        try:
            self._watch = mvcdb.open(self.db_path, readonly=True)
            self._data_version = self._read_data_version()
        except (MvcdbError, sqlite3.Error) as exc:
            self._watch_error = str(exc)
        limit = first_page_size(self.size.height)
        order = order_key(*INITIAL_SORT) or "-created_at"
        self._first_page = (
            in_thread(lambda: load_page(self.db_path, [], order, 0, limit), name="mvcdb-first-rows"),
            limit,
        )

    def on_mount(self) -> None:
        # The main screen's panes, kept: they are reached whatever screen is on top (and at exit).
        self.table = self.query_one("#versions", VersionsTable)
        self.lineage = self.query_one("#lineage", LineagePane)
        self.detail = self.query_one("#detail", DetailPane)
        table = self.table
        table.sort_column, table.sort_desc = INITIAL_SORT
        table.set_columns([])
        table.focus()
        self._show_first_rows()
        if self._watch_error is not None:
            self.notify(self._watch_error, title="cannot watch the file", severity="error", markup=False)
        self.set_interval(self.POLL_SECONDS, self._poll)

    def on_resize(self, event: events.Resize) -> None:
        """On a short terminal the chart gives way; the detail's sparklines still show every series."""
        self.set_class(event.size.height < COMPACT_HEIGHT, "compact")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The main screen's keys act only there (a diff or SQL screen has keys of its own)."""
        if action in MAIN_ACTIONS and len(self.screen_stack) > 1:
            return False
        if action == "clear_filter":
            return self._filter_shown()  # else escape does what it would without the binding
        return True

    def on_unmount(self) -> None:
        if self._watch is not None:
            self._watch.close()
            self._watch = None

    # -- loading the versions table ------------------------------------------------------------

    def order_by(self) -> str | None:
        """The db.versions order_by for the table's sort column (None: a local-only sort)."""
        table = self.table
        return order_key(table.sort_column or "when", table.sort_desc)

    def _show_first_rows(self) -> None:
        """The rows read since compose, in the first paint: nothing is on screen yet, so waiting a
        moment for them (the UI thread idle, the reading thread has the GIL to itself) beats painting
        an empty table, then the rows. A slow file gets its rows shown by a worker when they come."""
        if self._first_page is None:
            self.reload()
            return
        (page, limit), self._first_page = self._first_page, None
        self._generation += 1
        self.loading = True
        wait([page], timeout=self.FIRST_ROWS_WAIT)
        if page.done() and page.exception() is None:
            self._apply_rows(self._generation, [], 0, limit, page.result())
        else:
            self._load_rows(self._generation, [], self.order_by() or "-created_at", 0, limit, page)
            self._update_status()

    def reload(self, keep_rows: int = PAGE_SIZE, *, changed: bool = False) -> None:
        """Fetch the first rows again (new filter or sort; changed: the file changed too)."""
        self._generation += 1
        self._file_changed = self._file_changed or changed
        self.loading = True
        order = self.order_by() or "-created_at"
        limit = max(PAGE_SIZE, min(keep_rows, MAX_RELOAD_ROWS))
        where = self._pending_filter[0] if self._pending_filter else self.where
        self._load_rows(self._generation, list(where), order, 0, limit)
        self._update_status()

    def load_more(self) -> None:
        """Fetch the next page when the user nears the end of what is loaded."""
        if not self.more or self.loading:
            return
        self.loading = True
        order = self.order_by() or "-created_at"
        self._load_rows(self._generation, list(self.where), order, self.table.row_count, PAGE_SIZE)
        self._update_status()

    @work(thread=True, group="rows", exit_on_error=False)
    def _load_rows(
        self,
        generation: int,
        where: list[str],
        order: str,
        offset: int,
        limit: int,
        pending: Future[list[Version]] | None = None,
    ) -> None:
        """Read rows (or wait for a read already begun: pending) and show them from the UI thread."""
        try:
            if pending is not None:
                versions = pending.result()
            else:
                versions = load_page(self.db_path, where, order, offset, limit)
        except Exception as exc:  # noqa: BLE001 - a bad filter or an unreadable file: say so
            self.call_from_thread(self._rows_failed, generation, str(exc))
            return
        self.call_from_thread(self._apply_rows, generation, where, offset, limit, versions)

    def _after_paint(self, generation: int, rest: bool) -> None:
        """Right after new rows are painted: read the model names (for the filter) and, after the
        short first page (rest), the rest of that page (PAGE_SIZE rows in all, as one page has);
        neither once a newer filter, sort or refresh has begun, or the app is closing."""
        if generation != self._generation or not self.is_running:
            return
        self._load_models()
        if rest:
            shown = self.table.row_count
            order = self.order_by() or "-created_at"
            self._load_rows(generation, list(self.where), order, shown, PAGE_SIZE - shown)

    @work(thread=True, exclusive=True, group="models", exit_on_error=False)
    def _load_models(self) -> None:
        """The model names, to read bare words in the filter (after the rows' paint: they wait)."""
        try:
            names = model_names(self.db_path)
        except Exception:  # noqa: BLE001 - only used to read bare words in the filter
            return
        self.call_from_thread(setattr, self, "models", names)

    def _rows_failed(self, generation: int, message: str) -> None:
        """Say why; a new filter that failed is not adopted (the rows, status and filter stay)."""
        if generation == self._generation:
            self.loading = False
            if self._pending_filter is not None:
                self._pending_filter = None
                box = self.query_one("#filter", FilterInput)
                box.add_class("shown")
                box.focus()  # its text, to correct
        self.notify(message, title="cannot list versions", severity="error", markup=False)
        self._update_status()

    def _apply_rows(
        self, generation: int, where: list[str], offset: int, limit: int, versions: list[Version]
    ) -> None:
        if generation != self._generation:
            return  # an older query: a newer filter or sort has been asked for since
        table = self.table
        self.more = len(versions) == limit
        self.loading = False
        if offset == 0:
            if self._pending_filter is not None:
                self.where, self.filter_text = self._pending_filter
                self._pending_filter = None
            keep = self.current_id
            metrics = metric_columns(table.metric_names, versions, keep=where == self._columns_where)
            self._columns_where = where
            if metrics != table.metric_names:
                table.set_columns(metrics)
            else:
                table.clear()
            table.add_versions(versions)
            if self.order_by() is None:
                self._sort_locally()
            row = table.row_of(keep) if keep else None
            if table.row_count:
                table.move_cursor(row=row if row is not None else 0, scroll=True)
                selected = table.id_at_cursor()
                if selected is not None:
                    self.select_version(selected, source="table", force=self._file_changed)
                self._file_changed = False
            else:
                self._clear_selection()
            rest = self.more and len(versions) < PAGE_SIZE  # the short first page
            self.loading = rest  # until the rest has come
            self.call_after_refresh(self._after_paint, generation, rest)
        else:
            table.add_versions(versions)
        self._update_status()

    def _update_status(self) -> None:
        table = self.table
        parts = [counted(table.row_count, "version", self.more)]
        if self.filter_text:
            parts.append(f"filter: {self.filter_text}")
        label = table.sort_column or "when"
        parts.append(f"sort: {label.removeprefix('metric:')} {'▼' if table.sort_desc else '▲'}")
        if table.marks:
            parts.append("marked: " + ", ".join(short(m) for m in table.marks))
        if self.loading:
            parts.append("loading …")
        # results(): the status line is gone while the app shuts down and a last poll reloads
        for status in self.query("#status").results(Static):
            status.update(Text(" · ".join(parts)))

    @on(VersionsTable.NearEnd)
    def _near_end(self) -> None:
        self.load_more()

    # -- selection and the panes that follow it ------------------------------------------------

    @on(DataTable.RowHighlighted, "#versions")
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        # The cursor's row now, not the event's: events queued during a reload may be stale.
        key = self.table.id_at_cursor()
        if key is not None:
            self.select_version(key, source="table")
        if event.cursor_row >= self.table.row_count - NEAR_END_ROWS:
            self.load_more()

    @on(Tree.NodeHighlighted, "#lineage")
    def _node_highlighted(self, event: Tree.NodeHighlighted[str]) -> None:
        # Only the user's own moves in the tree lead; rebuilding the tree also moves its cursor.
        if event.node.data and self.lineage.has_focus:
            self.select_version(event.node.data, source="tree")

    def _clear_selection(self) -> None:
        """No row is shown: no version is selected (e and t refuse), the detail and lineage panes are empty.
        A row shown again is then a new selection, so its detail loads even with the same id."""
        self.current_id = None
        self.current_version = None
        if self._detail_timer is not None:
            self._detail_timer.stop()
        self.detail.clear()
        self.lineage.show_nothing()

    def select_version(self, version_id: str, *, source: str, force: bool = False) -> None:
        """Show a version in every pane; the pane it came from is already there."""
        if version_id == self.current_id and not force:
            return
        self.current_id = version_id
        table = self.table
        if source == "tree":
            row = table.row_of(version_id)
            if row is not None and row != table.cursor_row:
                table.move_cursor(row=row)
        else:
            # Same model: just move the tree's cursor. Another model: its tree loads with the detail.
            self.lineage.reveal(version_id)
        if self.current_version is None or self.current_version.id != version_id:
            self.detail.show_loading(version_id)
        if self._detail_timer is not None:
            self._detail_timer.stop()
        self._detail_timer = self.set_timer(self.DETAIL_DELAY, lambda: self._load_detail(version_id))

    @work(thread=True, exclusive=True, group="detail", exit_on_error=False)
    def _load_detail(self, version_id: str) -> None:
        worker = get_current_worker()
        try:
            detail = load_detail(self.db_path, version_id)
        except Exception as exc:  # noqa: BLE001 - e.g. the version was deleted meanwhile
            self.call_from_thread(self.notify, str(exc), title="detail", severity="error", markup=False)
            return
        if worker.is_cancelled:
            return
        self.call_from_thread(self._show_detail, detail)
        try:
            norms, damaged = param_norms(
                self.db_path, version_id, detail.tensors, lambda: worker.is_cancelled
            )
        except Exception as exc:  # noqa: BLE001 - e.g. the file went away: the norms stay unknown
            self.call_from_thread(self.notify, str(exc), title="norms", severity="error", markup=False)
            return
        for why in damaged.values():  # a damaged tensor's norm stays unknown, the others show
            self.call_from_thread(self.notify, why, title="norms", severity="error", markup=False)
        if not worker.is_cancelled:
            self.call_from_thread(self.detail.set_norms, version_id, norms)

    def _show_detail(self, detail: Detail) -> None:
        if detail.version.id != self.current_id:
            return
        self.current_version = detail.version
        self.detail.show(detail)
        if self.lineage.model != detail.version.model:
            self._load_lineage(detail.version.model)

    @work(thread=True, exclusive=True, group="lineage", exit_on_error=False)
    def _load_lineage(self, model: str) -> None:
        try:
            lineage = load_lineage(self.db_path, model)
        except Exception as exc:  # noqa: BLE001 - shown, the rest of the app goes on
            self.call_from_thread(self.notify, str(exc), title="lineage", severity="error", markup=False)
            return
        if not get_current_worker().is_cancelled:
            self.call_from_thread(self._show_lineage, lineage)

    def _show_lineage(self, lineage: Lineage) -> None:
        self.lineage.show_lineage(lineage)
        if self.current_id:
            self.lineage.reveal(self.current_id)

    # -- live refresh --------------------------------------------------------------------------

    def _read_data_version(self) -> int | None:
        if self._watch is None:
            return None
        return int(self._watch.conn.execute("PRAGMA data_version").fetchone()[0])

    def _poll(self) -> None:
        """Reload when another connection has committed to the file since the last look."""
        if self._exit or not self.is_running:
            return
        try:
            version = self._read_data_version()
        except sqlite3.Error:
            return  # busy or being replaced; look again at the next tick
        if version is not None and version != self._data_version:
            self._data_version = version
            self.refresh_data()

    def refresh_data(self) -> None:
        """Reload the table (cursor kept on the same version), the lineage and the detail; drop
        marks on versions another process removed."""
        self.reload(keep_rows=self.table.row_count, changed=True)
        if self.lineage.model:
            self._load_lineage(self.lineage.model)
        if self.table.marks:
            self._check_marks(list(self.table.marks))

    @work(thread=True, exclusive=True, group="marks", exit_on_error=False)
    def _check_marks(self, marks: list[str]) -> None:
        try:
            gone = missing_ids(self.db_path, marks)
        except (MvcdbError, sqlite3.Error):
            return  # busy or being replaced: the next refresh looks again
        if gone:
            self.call_from_thread(self._unmark_removed, gone)

    def _unmark_removed(self, gone: list[str]) -> None:
        for version_id in gone:
            if version_id in self.table.marks:
                self.table.toggle_mark(version_id)
                self.notify(f"{short(version_id)} was removed: no longer marked", severity="warning")
        self._update_status()

    # -- actions -------------------------------------------------------------------------------

    def action_filter(self) -> None:
        """Show and focus the filter box."""
        box = self.query_one("#filter", FilterInput)
        box.add_class("shown")
        box.focus()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        self.apply_filter(event.value)

    def apply_filter(self, text: str) -> None:
        """Filter the table by the filter box's language (see data.parse_filter).

        The filter becomes the table's (status line, refreshes, sorts) only once its rows arrive:
        one the query refuses (`val_mse<abc`) is reported once and the previous filter stays.
        """
        try:
            where = parse_filter(text, self.models)
        except MvcdbError as exc:
            self.notify(str(exc), title="filter", severity="error", markup=False)
            return
        self._pending_filter = (where, text.strip())
        box = self.query_one("#filter", FilterInput)
        box.value = text.strip()
        box.set_class(bool(box.value), "shown")
        self.table.focus()
        self.reload()

    def _filter_shown(self) -> bool:
        """Whether a filter is applied, asked for or open in its box: escape has one to clear."""
        return bool(self.filter_text or self._pending_filter or self.query("#filter.shown"))

    def action_clear_filter(self) -> None:
        """Clear the filter (escape, in the filter box or anywhere on the main screen)."""
        self.apply_filter("")

    def action_sort_next(self) -> None:
        """Sort by the column right of the current sort column."""
        table = self.table
        keys = [str(k.value) for k in table.columns if k.value != "mark"]
        current = table.sort_column or "when"
        following = keys[(keys.index(current) + 1) % len(keys)] if current in keys else keys[0]
        self.sort_by(following, following in DESCENDING_FIRST)

    def action_sort_reverse(self) -> None:
        table = self.table
        self.sort_by(table.sort_column or "when", not table.sort_desc)

    @on(DataTable.HeaderSelected, "#versions")
    def _header_clicked(self, event: DataTable.HeaderSelected) -> None:
        column = str(event.column_key.value)
        if column == "mark":
            return
        table = self.table
        descending = not table.sort_desc if column == table.sort_column else column in DESCENDING_FIRST
        self.sort_by(column, descending)

    def sort_by(self, column: str, descending: bool) -> None:
        """Sort the table by a column: in SQL when the API can order by it, else the loaded rows."""
        table = self.table
        table.sort_column, table.sort_desc = column, descending
        table.relabel()
        if order_key(column, descending) is None:
            self._sort_locally()
            self._update_status()
        else:
            self.reload()

    def _sort_locally(self) -> None:
        table = self.table
        column = table.sort_column or "tags"
        if column in table.columns:
            table.sort(column, key=lambda cell: str(cell).lower(), reverse=table.sort_desc)

    def action_mark(self) -> None:
        """Mark or unmark the highlighted version for a diff."""
        version_id = self.table.id_at_cursor()
        if version_id is None:
            return
        self.table.toggle_mark(version_id)
        self._update_status()

    def action_clear_marks(self) -> None:
        table = self.table
        for version_id in list(table.marks):
            table.toggle_mark(version_id)
        self._update_status()

    def action_diff(self) -> None:
        """Diff the two marked versions (or mark vs cursor, or parent vs cursor)."""
        marks = list(self.table.marks)
        current = self.table.id_at_cursor()
        if len(marks) == 2:
            a, b = marks
        elif len(marks) == 1 and current and current != marks[0]:
            a, b = marks[0], current
        elif not marks and self.current_version is not None and self.current_version.parents:
            a, b = self.current_version.parents[0], self.current_version.id
        else:
            self.notify("Mark two versions with space, then press d.", severity="warning")
            return
        from .components.diff_screen import DiffScreen

        self.push_screen(DiffScreen(self.db_path, a, b))

    def _highlighted(self) -> str | None:
        """The highlighted version's id; None, said in a warning, when no row is shown."""
        version_id = self.table.id_at_cursor()
        if version_id is None:
            self.notify("No version selected.", severity="warning")
        return version_id

    def _need_version(self) -> Version | None:
        """The highlighted version once its detail has loaded (what t and e act on), else None."""
        if self._highlighted() is None:
            return None
        version = self.current_version
        if version is None or version.id != self.current_id:
            self.notify("No version selected yet.", severity="warning")
            return None
        return version

    def action_tag(self) -> None:
        """Create or move a tag to the highlighted version (production asks first)."""
        from .components.dialogs import TagScreen

        version = self._need_version()
        if version is None:
            return

        def chosen(name: str | None) -> None:
            if name:
                self._check_tag(version.id, name)

        self.push_screen(TagScreen(self.db_path, version), chosen)

    @work(thread=True, group="tag", exit_on_error=False)
    def _check_tag(self, version_id: str, name: str) -> None:
        try:
            target, _ = tag_state(self.db_path, name)
        except Exception as exc:  # noqa: BLE001
            self.call_from_thread(self.notify, str(exc), title="tag", severity="error", markup=False)
            return
        self.call_from_thread(self._confirm_tag, version_id, name, target)

    def _confirm_tag(self, version_id: str, name: str, target: str | None) -> None:
        if target == version_id:
            self.notify(f"{name} already points at {short(version_id)}.")
            return
        if target is not None and name == "production":
            from .components.dialogs import ConfirmScreen

            def answered(yes: bool | None) -> None:
                if yes:
                    self._do_tag(version_id, name)
                else:
                    self.notify("production was not moved.")

            question = f"Move production from {short(target)} to {short(version_id)}?"
            self.push_screen(ConfirmScreen(question, yes="Move"), answered)
            return
        self._do_tag(version_id, name)

    @work(thread=True, group="tag", exit_on_error=False)
    def _do_tag(self, version_id: str, name: str) -> None:
        try:
            set_tag(self.db_path, version_id, name)
        except Exception as exc:  # noqa: BLE001 - e.g. an invalid name or a read-only file
            self.call_from_thread(self.notify, str(exc), title="tag", severity="error", markup=False)
            return
        self.call_from_thread(self.notify, f"{name} → {short(version_id)}", title="tagged")
        self.call_from_thread(self.refresh_data)

    def action_export(self) -> None:
        """Export the highlighted version's parameters to .npz or .safetensors."""
        from .components.dialogs import ConfirmScreen, ExportScreen

        version = self._need_version()
        if version is None:
            return

        def chosen(answer: tuple[str, str] | None) -> None:
            if not answer:
                return
            dest, fmt = answer
            target = Path(dest).expanduser()
            if target.is_dir():  # not a file to confirm replacing
                message = f"{target} is a directory: type a file name"
                self.notify(message, title="export", severity="error", markup=False)
            elif target.exists():

                def answered(yes: bool | None) -> None:
                    if yes:
                        self._do_export(version.id, dest, fmt, True)
                    else:
                        self.notify(f"{target} was left as it was.", markup=False)

                self.push_screen(ConfirmScreen(f"{target} exists. Overwrite it?", yes="Overwrite"), answered)
            else:
                self._do_export(version.id, dest, fmt, False)

        self.push_screen(ExportScreen(version), chosen)

    @work(thread=True, group="export", exit_on_error=False)
    def _do_export(self, version_id: str, dest: str, fmt: str, overwrite: bool) -> None:
        try:
            written = export_params(self.db_path, version_id, dest, fmt, overwrite=overwrite)
        except Exception as exc:  # noqa: BLE001 - refused overwrite, bad dtype, disk full...
            self.call_from_thread(self.notify, str(exc), title="export", severity="error", markup=False)
            return
        self.call_from_thread(self.notify, f"{short(version_id)} → {written}", title="exported", markup=False)

    def action_copy_id(self) -> None:
        """Copy the highlighted version's full id."""
        version_id = self._highlighted()
        if version_id is None:
            return
        self.copy_to_clipboard(version_id)
        self.notify(version_id, title="copied id", markup=False)

    def action_sql(self) -> None:
        """Open the read-only SQL console."""
        from .components.sql_screen import SqlScreen

        self.push_screen(SqlScreen(self.db_path))

    def action_help(self) -> None:
        """Show the key table and a short guide."""
        from .components.help_screen import HelpScreen

        self.push_screen(HelpScreen(self.POLL_SECONDS))

    def action_refresh(self) -> None:
        self.refresh_data()

    def action_focus_lineage(self) -> None:
        self.lineage.focus()

    def action_focus_versions(self) -> None:
        self.table.focus()

    def action_focus_detail(self) -> None:
        self.detail.focus()


def run(db_path: str | Path) -> None:
    """Start the app on a database file (what `mvcdb tui` calls)."""
    MvcdbApp(db_path).run()


__all__ = ["MvcdbApp", "run"]
