"""The main screen's footer: every shown binding, clickable, drawn as one line of text.

Textual's Footer rebuilds a widget per key on every focus change; on a large screen that costs
more than the rest of a cursor move, so the main screen draws its (fixed) key list itself.
"""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static

from ..keys import MAIN_KEYS, key_label

#: Drawn first: a narrow terminal (80 columns) cuts the bar at its end, and how to quit and where
#: the help is must stay in sight.
FIRST = ("q", "question_mark")


def keybar_content() -> Content:
    """'q Quit  ? Help  / Filter  o Sort ...' with each key clickable (runs the same action as the key)."""
    parts: list[Content] = []
    for key, action, label, show, _ in sorted(MAIN_KEYS, key=lambda entry: entry[0] not in FIRST):
        if show:
            parts.append(
                Content.from_markup(
                    f"[@click=app.{action}][b $accent]{key_label(key)}[/] {label}[/]",
                )
            )
    parts.append(Content.from_markup("[@click=app.command_palette][b $accent]^p[/] palette[/]"))
    return Content("  ").join(parts)


class KeyBar(Static):
    """A one-line footer listing the main screen's keys."""

    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: 1;
        background: $footer-background;
        color: $footer-foreground;
        padding: 0 1;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(keybar_content(), id=id)
