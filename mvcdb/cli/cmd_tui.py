"""`mvcdb tui [PATH]`: the terminal UI (textual is imported only when this verb runs)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .context import db_path


@click.command("tui")
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@click.pass_context
def command(ctx: click.Context, path: str | None) -> None:
    """Browse, compare, tag and export versions in the terminal UI.

    PATH is the database file (default: the global --db). Keys: / filter, o sort, space mark,
    d diff, t tag, e export, c copy id, s SQL, ? help, q quit.
    """
    from mvcdb.errors import MvcdbError

    target = Path(path) if path else db_path(ctx)
    if not target.exists():
        raise MvcdbError(
            f"{target} does not exist; create a database with `mvcdb init` (here: `mvcdb --db {target} init`)"
        )
    import gc

    # The imports below create ~10^5 objects that live as long as the UI: collecting between them
    # finds nothing and costs ~35 ms of start-up (measured), and freezing them afterwards keeps the
    # UI's own collections from walking them again.
    gc.disable()
    try:
        import mvcdb

        mvcdb.open(target, readonly=True).close()  # a foreign or newer file is refused before the UI
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            # without a terminal the UI would wait for keys that never come, drawing escape codes
            # into a pipe or file: say so instead (after the file checks, so those errors come first)
            raise MvcdbError("mvcdb tui needs a terminal (stdin and stdout must not be redirected)")
        from mvcdb.tui.app import MvcdbApp
    finally:
        gc.enable()
    gc.freeze()
    MvcdbApp(target).run()
