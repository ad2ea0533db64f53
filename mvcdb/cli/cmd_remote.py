"""`mvcdb remote add|list|remove`: the PostgreSQL remotes this file pushes to and pulls from."""

from __future__ import annotations

import click

from .context import json_option, open_db
from .output import emit_json, emit_table


@click.group("remote")
def command() -> None:
    """Manage team remotes (PostgreSQL URLs, stored without passwords).

    Credentials come from libpq's usual sources when connecting: PGPASSWORD, ~/.pgpass or a
    service file (PGSERVICE). A password written in the URL is removed before it is stored.
    """


@command.command("add")
@click.argument("name")
@click.argument("url")
@click.pass_context
def add(ctx: click.Context, name: str, url: str) -> None:
    """Add remote NAME at URL (postgresql://[user@]host[:port]/dbname)."""
    remote = open_db(ctx).add_remote(name, url)
    note = " (password removed: use PGPASSWORD or ~/.pgpass)" if remote.url != url.strip() else ""
    click.echo(f"Added remote {remote.name}: {remote.url}{note}")


@command.command("list")
@json_option
@click.pass_context
def list_(ctx: click.Context, as_json: bool) -> None:
    """List the remotes. --json prints [{"name", "url", "created_at"}]."""
    remotes = open_db(ctx, readonly=True).remotes()
    if as_json:
        emit_json([r.to_dict() for r in remotes])
    elif remotes:
        emit_table(["name", "url", "added"], [(r.name, r.url, r.created_at[:19]) for r in remotes])
    else:
        click.echo("No remotes (add one with `mvcdb remote add origin postgresql://host/dbname`).")


@command.command("remove")
@click.argument("name")
@click.pass_context
def remove(ctx: click.Context, name: str) -> None:
    """Forget remote NAME (nothing on the server is changed)."""
    open_db(ctx).remove_remote(name)
    click.echo(f"Removed remote {name}.")
