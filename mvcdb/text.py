"""Text from users and files: control characters found (names refuse them) or flattened (author
stamps and printed table cells, where a tab or newline would split a row), and lone surrogates
(not Unicode text at all: SQLite and msgpack cannot store them) refused."""

from __future__ import annotations

import re

from .errors import MvcdbError

#: Control characters: ASCII's (tab and newline included), C1's (\x9b starts a terminal escape as
#: ESC [ does), and Unicode's bidirectional overrides and isolates, which make text display in
#: another order than it is stored (a name that reads as another).
CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]+")
#: Lone UTF-16 surrogates: what Python decodes undecodable bytes to (surrogateescape).
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def without_controls(text: str) -> str:
    """text with each run of control characters replaced by one space."""
    return CONTROL_RE.sub(" ", text) if not text.isprintable() else text


def has_lone_surrogate(text: str) -> bool:
    """Whether text holds a lone surrogate (bytes a UTF-8 locale could not decode): it cannot be
    encoded as UTF-8, so SQLite cannot take it."""
    return not text.isprintable() and _SURROGATE_RE.search(text) is not None  # isprintable: fast


def check_unicode(text: str, what: str) -> str:
    """text, or MvcdbError if it holds a lone surrogate (it cannot be encoded as UTF-8)."""
    if has_lone_surrogate(text):
        raise MvcdbError(f"{what} {text!r} is not valid Unicode text (a lone surrogate)")
    return text
