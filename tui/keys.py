"""Every binding of the main screen in one place, with ids so users can remap them.

The footer, the `?` help screen and the command palette are all built from this table.
"""

from __future__ import annotations

from textual.binding import Binding

#: (key, action, footer label, shown in the footer, longer help)
MAIN_KEYS: list[tuple[str, str, str, bool, str]] = [
    ("slash", "filter", "Filter", True, "Filter versions: val_loss<0.2  model=linreg  tag=production  words"),
    ("o", "sort_next", "Sort", True, "Sort by the next column (clicking a header sorts by it too)"),
    ("O", "sort_reverse", "Reverse", False, "Reverse the sort order"),
    ("space", "mark", "Mark", True, "Mark or unmark the highlighted version (two marks make a diff)"),
    ("d", "diff", "Diff", True, "Diff the two marked versions (one mark: mark vs highlighted; none: parent)"),
    ("t", "tag", "Tag", True, "Create or move a tag to the highlighted version (shows its history)"),
    ("e", "export", "Export", True, "Export the highlighted version's parameters (.npz or .safetensors)"),
    ("c", "copy_id", "Copy id", True, "Copy the highlighted version's full id to the clipboard"),
    ("s", "sql", "SQL", True, "Open the read-only SQL console"),
    ("l", "focus_lineage", "Lineage", False, "Move the focus to the lineage tree (tab cycles panes)"),
    ("v", "focus_versions", "Versions", False, "Move the focus to the versions table"),
    ("r", "refresh", "Refresh", False, "Reload everything now (changes also appear by themselves)"),
    ("question_mark", "help", "Help", True, "Show this help"),
    ("q", "quit", "Quit", True, "Quit"),
]


def main_bindings() -> list[Binding]:
    """Bindings for MvcdbApp, each with an id (`mvcdb.<action>`) for keymaps."""
    return [
        Binding(key, action, label, show=show, id=f"mvcdb.{action}", tooltip=help_text)
        for key, action, label, show, help_text in MAIN_KEYS
    ]


def key_label(key: str) -> str:
    """How a key is written for people: 'slash' -> '/'."""
    return {"slash": "/", "question_mark": "?", "space": "space"}.get(key, key)
