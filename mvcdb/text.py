"""Control characters in text from users and files: found (names refuse them) or flattened (author
stamps and printed table cells, where a tab or newline would split a row)."""

from __future__ import annotations

import re

#: ASCII control characters, tab and newline included.
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]+")


def without_controls(text: str) -> str:
    """text with each run of control characters replaced by one space."""
    return CONTROL_RE.sub(" ", text) if not text.isprintable() else text
