"""The `mvcdb` command line: a thin click layer over the public API (one verb a module).

Verbs are loaded lazily (see app.py), so `mvcdb --help` imports neither numpy nor textual.
"""

from __future__ import annotations

from .app import main

__all__ = ["main"]
