"""`mvcdb tag REF NAME` points a tag at a version (creating or moving it); `--delete NAME` removes it.

Moving `production` back to an older version is the rollback; every move is kept in the tag's
history (`mvcdb tags --history production`).
"""

from __future__ import annotations

import click

from .context import complete_ref, complete_tag, json_option, open_db
from .output import emit_json


@click.command("tag")
@click.argument("ref", metavar="REF", required=False, shell_complete=complete_ref)
@click.argument("name", metavar="NAME", required=False, shell_complete=complete_tag)
@click.option(
    "--delete",
    "-d",
    "delete",
    metavar="NAME",
    shell_complete=complete_tag,
    help="Delete this tag (its history stays).",
)
@json_option
@click.pass_context
def command(ctx: click.Context, ref: str | None, name: str | None, delete: str | None, as_json: bool) -> None:
    """Point tag NAME at version REF (creating or moving it), or delete a tag with --delete NAME.

    Prints the move as `NAME: FROM -> TO`; moving `production` back to an older version is
    how you roll back. With --json: {"name", "from", "to"} (full ids; null when created/deleted).

    \b
    Examples:
      mvcdb tag linreg@latest production
      mvcdb tag production~1 production     # roll back one version
      mvcdb tag --delete staging
    """
    if delete is not None:
        if ref is not None:
            raise click.UsageError("--delete takes only the tag's name: mvcdb tag --delete NAME")
        _delete(ctx, delete, as_json)
        return
    if ref is None or name is None:
        raise click.UsageError("give a version and a tag name: mvcdb tag REF NAME (or --delete NAME)")
    db = open_db(ctx)
    before = db.tags().get(name)
    version = db.tag(ref, name)
    move = {"name": name, "from": before, "to": version.id}
    if as_json:
        emit_json(move)
    elif before == version.id:
        click.echo(f"{name} already points at {version.short_id} ({version.model}); nothing changed.")
    elif before is None:
        click.echo(f"{name}: (new) -> {version.short_id} ({version.model})")
    else:
        click.echo(f"{name}: {before[:12]} -> {version.short_id} ({version.model})")


def _delete(ctx: click.Context, name: str, as_json: bool) -> None:
    db = open_db(ctx)
    before = db.tags().get(name)
    db.untag(name)  # raises RefError for an unknown tag
    if as_json:
        emit_json({"name": name, "from": before, "to": None})
    else:
        click.echo(f"{name}: {(before or '')[:12]} -> (deleted)")
