"""Who is recording: $MVCDB_AUTHOR, else git's user.name, else the OS user."""

from __future__ import annotations

import functools
import getpass
import os
import subprocess

from .text import without_controls


@functools.lru_cache(maxsize=1)
def _git_user_name() -> str:
    try:
        result = subprocess.run(
            ["git", "config", "user.name"], capture_output=True, text=True, errors="replace", timeout=2
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


@functools.lru_cache(maxsize=1)
def _fallback_name() -> str:
    """git's user.name, else the OS user: asked once a process (every record() stamps a name)."""
    git = _git_user_name()
    if git:
        return git
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def current_author() -> str:
    """The author name stamped on versions and tag moves (on one line: control characters such as
    a tab or newline become spaces, so tables of versions keep one row a version)."""
    return _one_line(os.environ.get("MVCDB_AUTHOR", "")) or _one_line(_fallback_name()) or "unknown"


@functools.lru_cache(maxsize=8)
def _one_line(name: str) -> str:
    """name on one line, trimmed, as valid Unicode (cached: every record() stamps the same one or
    two names). An environment variable holding bytes that are not UTF-8 (MVCDB_AUTHOR="Jos\xe9"
    in Latin-1) reaches Python as lone surrogates, which SQLite cannot store: they become U+FFFD."""
    if not name.isprintable():  # the fast common case: no control characters, no surrogates
        try:
            raw = name.encode("utf-8", "surrogateescape")  # the bytes the OS gave, as they were
        except UnicodeEncodeError:  # a surrogate that did not come from undecodable bytes
            raw = name.encode("utf-8", "replace")
        name = raw.decode("utf-8", "replace")
    return without_controls(name).strip()
