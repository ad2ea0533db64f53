"""`mvcdb init`: create the database file (idempotent) and say what happened."""

from __future__ import annotations

import click

from .context import db_path, json_option, open_db
from .output import emit_json


@click.command("init")
@json_option
@click.pass_context
def command(ctx: click.Context, as_json: bool) -> None:
    """Create the database (idempotent: an existing mvcdb file is left as it is)."""
    path = db_path(ctx)
    existed = path.exists() and path.stat().st_size > 0
    db = open_db(ctx, create=True)
    count = db.conn.execute("SELECT count(*) FROM versions").fetchone()[0]
    if as_json:
        emit_json({"path": str(path), "created": not existed, "versions": count})
    elif existed:
        click.echo(f"{path} is already an mvcdb database ({count} versions); nothing changed.")
    else:
        click.echo(f"Created an empty mvcdb database at {path}.")
