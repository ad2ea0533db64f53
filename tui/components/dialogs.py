"""Modal dialogs: confirm, tag (with the tag's history) and export (path and format)."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Input, Label, Select, Static
from textual.worker import get_current_worker

from mvcdb.models import TagMove, Version
from mvcdb.refs import check_tag_name

from ..data import EXPORT_FORMATS, export_format, short, tag_state, when_text


class ConfirmScreen(ModalScreen[bool]):
    """Ask a yes/no question; dismisses with True only on an explicit yes."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str, *, yes: str = "Yes") -> None:
        super().__init__(classes="dialog")
        self.question = question
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box"):
            yield Static(Text(self.question), id="question")
            with Horizontal(classes="buttons"):
                yield Button(self.yes, variant="warning", id="yes")
                yield Button("No", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)


class TagScreen(ModalScreen[str | None]):
    """Choose a tag name for a version; shows where the tag points now and its history."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, db_path: str | Path, version: Version, default: str = "production") -> None:
        super().__init__(classes="dialog")
        self.db_path = db_path
        self.version = version
        self.default = default
        self.current_target: str | None = None

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box", id="tag-box"):
            yield Label(f"Tag {self.version.short_id} ({self.version.model}) as:")
            yield Input(value=self.default, placeholder="tag name, e.g. production", id="tag-name")
            yield Static("", id="tag-state")
            yield Label("history of this tag", classes="section")
            history: DataTable[Text] = DataTable(id="tag-history", show_cursor=False)
            history.add_columns("when (UTC)", "author", "from", "to")
            yield history
            with Horizontal(classes="buttons"):
                yield Button("Tag", variant="primary", id="ok")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#tag-name", Input).focus()
        self._lookup(self.default)

    @on(Input.Changed, "#tag-name")
    def _name_changed(self, event: Input.Changed) -> None:
        self._lookup(event.value.strip())

    @work(thread=True, exclusive=True, group="tag-lookup", exit_on_error=False)
    def _lookup(self, name: str) -> None:
        """Load where the typed tag points and its moves (in a thread: it reads the file)."""
        problem = None
        try:
            if name:
                check_tag_name(name)
            target, history = tag_state(self.db_path, name) if name else (None, [])
        except Exception as exc:  # noqa: BLE001 - an invalid name has no state: say why instead
            target, history, problem = None, [], str(exc)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._show_state, name, target, history, problem)

    def _show_state(
        self, name: str, target: str | None, history: list[TagMove], problem: str | None = None
    ) -> None:
        self.current_target = target
        state = self.query_one("#tag-state", Static)
        if not name:
            state.update("")
        elif problem is not None:  # was "'bad name' is a new tag.", refused only on Tag
            state.update(Text(problem, style="bold red"))
        elif target is None:
            state.update(Text(f"'{name}' is a new tag.", style="green"))
        elif target == self.version.id:
            state.update(Text(f"'{name}' already points at {short(target)}.", style="dim"))
        else:
            note = " (you will be asked to confirm)" if name == "production" else ""
            state.update(
                Text(f"'{name}' moves from {short(target)} to {self.version.short_id}{note}.", style="yellow")
            )
        table = self.query_one("#tag-history", DataTable)
        table.clear()
        for move in reversed(history[-50:]):
            cells = (when_text(move.at), move.author, short(move.from_id), short(move.to_id))
            table.add_row(*(Text(c) for c in cells))

    @on(Input.Submitted, "#tag-name")
    @on(Button.Pressed, "#ok")
    def _submit(self) -> None:
        name = self.query_one("#tag-name", Input).value.strip()
        if not name:
            self.notify("Type a tag name.", severity="warning")
            return
        self.dismiss(name)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class ExportScreen(ModalScreen[tuple[str, str] | None]):
    """Choose where and in which format to write a version's parameters."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, version: Version, directory: Path | None = None) -> None:
        super().__init__(classes="dialog")
        self.version = version
        # model names may be 200 characters: past ~255 bytes a file name cannot be created
        base = f"{version.model.replace('/', '_')[:64]}-{version.short_id}.npz"
        # absolute, so the dialog says where the file goes (the directory mvcdb tui started in)
        self.default_path = str((directory or Path.cwd()).absolute() / base)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box", id="export-box"):
            yield Label(f"Export the parameters of {self.version.short_id} ({self.version.model})")
            yield Input(value=self.default_path, id="export-path")
            yield Select[str](
                [(f, f) for f in EXPORT_FORMATS], value="npz", allow_blank=False, id="export-format"
            )
            yield Static("An existing file is only replaced after you confirm.", classes="hint")
            with Horizontal(classes="buttons"):
                yield Button("Export", variant="primary", id="ok")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#export-path", Input).focus()

    @on(Select.Changed, "#export-format")
    def _format_changed(self, event: Select.Changed) -> None:
        """Keep the file's suffix in step with the chosen format."""
        path_input = self.query_one("#export-path", Input)
        if isinstance(event.value, str) and export_format(path_input.value, event.value) != event.value:
            path_input.value = str(Path(path_input.value).with_suffix("." + event.value))

    @on(Input.Changed, "#export-path")
    def _path_changed(self, event: Input.Changed) -> None:
        """And the format in step with a typed .npz or .safetensors name (as `mvcdb restore -o`)."""
        select: Select[str] = self.query_one("#export-format", Select)
        select.value = export_format(event.value, str(select.value))

    @on(Input.Submitted, "#export-path")
    @on(Button.Pressed, "#ok")
    def _submit(self) -> None:
        path = self.query_one("#export-path", Input).value.strip()
        fmt = self.query_one("#export-format", Select).value
        if not path:
            self.notify("Type a file name.", severity="warning")
            return
        self.dismiss((path, export_format(path, str(fmt))))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
