"""Helpers every verb shares: opening the --db database, and the common options."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from mvcdb.database import Database

F = TypeVar("F", bound=Callable[..., Any])


def db_path(ctx: click.Context) -> Path:
    """The --db path given to the group (or its default)."""
    root = ctx.find_root()
    return Path(root.obj["db_path"] if root.obj else "mvcdb.db")


def open_db(ctx: click.Context, *, readonly: bool = False, create: bool = False) -> Database:
    """Open the --db database; without create=True a missing file is an error, not a new file."""
    from mvcdb.database import Database
    from mvcdb.errors import MvcdbError

    path = db_path(ctx)
    if not create and not path.exists():
        raise MvcdbError(f"{path} does not exist (create it with `mvcdb --db {path} init`)")
    db = Database(path, readonly=readonly)
    ctx.call_on_close(db.close)
    return db


def json_option(fn: F) -> F:
    """--json: print data as JSON (a stable, documented shape) instead of a table."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(fn)
