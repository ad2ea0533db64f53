"""The `?` help screen: every key, the filter language, what each pane shows."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

from ..keys import MAIN_KEYS, key_label

_ABOUT = """
## Panes
- **versions** — one row a version, newest first; more rows load as you scroll. Click a header to sort.
- **lineage** — the selected model's DAG: first-parent chains run down one level, side branches are
  indented, `⑂` marks a merge (several parents) and `↘` rows lead to it from its other parents.
- **detail** — metadata, metrics, parents/children, tags, the parameter table (norms fill in
  shortly) and the trajectory chart (choose the series); sparklines summarise every series.

## Filter (`/`)
Space-separated terms, all must hold: `val_loss<0.2` (a metric), `model=linreg`, `tag=production`,
`author=bob`, `metadata.hyper.lr>=0.01`, `message~warmup`; a bare word is a model name or searches
the messages. `escape` clears the filter.

## Elsewhere
`escape` closes a screen or dialog; `ctrl+p` opens the command palette with every action.
Versions recorded by other processes appear by themselves: the file is checked for commits every
{poll} s and the table reloads when there are new ones.
"""


class HelpScreen(ModalScreen[None]):
    """Key table and a short guide, closed with escape, q or ?."""

    BINDINGS = [Binding("escape,q,question_mark", "close", "Close")]

    def __init__(self, poll_seconds: float) -> None:
        """poll_seconds: how often the app looks for changes (MvcdbApp.POLL_SECONDS), said in the guide."""
        super().__init__()
        self.poll_seconds = poll_seconds

    def compose(self) -> ComposeResult:
        rows = "\n".join(f"| `{key_label(k)}` | {help_text} |" for k, _, _, _, help_text in MAIN_KEYS)
        text = (
            "# mvcdb tui — keys\n\n| key | does |\n|---|---|\n"
            + rows
            + "\n"
            + _ABOUT.format(poll=f"{self.poll_seconds:g}")
        )
        with VerticalScroll(id="help-box"):
            yield Markdown(text, id="help-text")

    def action_close(self) -> None:
        self.dismiss(None)
