"""Helpers every verb shares: opening the --db database, and the common options and arguments."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from click.shell_completion import CompletionItem

if TYPE_CHECKING:
    from mvcdb.database import Database

F = TypeVar("F", bound=Callable[..., Any])


def db_path(ctx: click.Context) -> Path:
    """The --db path given to the group (or its default)."""
    root = ctx.find_root()
    if root.obj and "db_path" in root.obj:
        return Path(root.obj["db_path"])
    # during shell completion the group callback has not run: read the parsed option instead
    return Path(root.params.get("db_path") or "mvcdb.db")


def open_db(ctx: click.Context, *, readonly: bool = False, create: bool = False) -> Database:
    """Open the --db database; without create=True a missing file is an error, not a new file.

    Read-only verbs pass readonly=True: they never write a byte, not even to a foreign file
    (which gets a one-line error and is left as it was). The database closes with the command.
    """
    from mvcdb.connection import sniff, wait_interruptibly
    from mvcdb.database import Database
    from mvcdb.errors import MvcdbError

    path = db_path(ctx)
    kind = None  # an existing file is sniffed once, by Database()
    if not create:
        if not path.exists():
            kind = sniff(path)  # "missing", or an error naming a symlink loop or unreadable path
        elif path.is_file() and path.stat().st_size == 0:
            kind = "empty"
    if kind in ("missing", "empty"):
        hint = "`mvcdb init`"
        source = ctx.find_root().get_parameter_source("db_path")
        if source is click.core.ParameterSource.COMMANDLINE:
            hint += f" (here: `mvcdb --db {path} init`)"
        state = "is an empty file" if kind == "empty" else "does not exist"  # only init & co. fill one
        raise MvcdbError(f"{path} {state}; create a database with {hint}")
    db = Database(path, readonly=readonly)
    ctx.call_on_close(db.close)
    if not readonly:
        wait_interruptibly(db.conn)  # Ctrl-C ends a wait for another writer's lock
    return db


def json_option(fn: F) -> F:
    """--json: print data as JSON (a stable, documented shape) instead of a table."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(fn)


def complete_ref(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Shell completion for a REF: tag names and MODEL@latest (ids are too long to be useful)."""
    path = db_path(ctx)
    if not path.exists():
        return []
    try:
        from mvcdb.database import Database

        with Database(path, readonly=True) as db:
            words = [*db.tags(), *(f"{m}@latest" for m in db.models())]
    except Exception:  # noqa: BLE001 - completion must never print a traceback into a shell
        return []
    return [CompletionItem(w) for w in words if w.startswith(incomplete)]


def complete_tag(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Shell completion for a tag name."""
    return [c for c in complete_ref(ctx, param, incomplete) if "@" not in c.value]


def complete_model(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Shell completion for a model name."""
    return [
        CompletionItem(c.value[: -len("@latest")])
        for c in complete_ref(ctx, param, incomplete)
        if c.value.endswith("@latest")
    ]


def ref_argument(name: str = "ref", *, required: bool = True) -> Callable[[F], F]:
    """A REF argument (id, unique prefix, tag, MODEL@latest, REF~N) with shell completion."""
    return click.argument(name, metavar="REF", required=required, shell_complete=complete_ref)
