"""`mvcdb rm REF`: delete one version (one with children only with --force)."""

from __future__ import annotations

import click

from .context import json_option, open_db, ref_argument
from .output import emit_json


@click.command("rm")
@ref_argument()
@click.option("--force", is_flag=True, help="Delete it even if other versions descend from it.")
@json_option
@click.pass_context
def command(ctx: click.Context, ref: str, force: bool, as_json: bool) -> None:
    """Delete the version REF (refused if it has children, unless --force).

    With --force its children keep all their own data and only lose their lineage edge to it
    (nothing is re-parented). Tags pointing at it are deleted (the deletion is kept in the tag
    history). Its bytes stay in the file until `mvcdb gc`.

    \b
    --json shape: {"removed": ID}
    """
    db = open_db(ctx)
    removed = db.rm(ref, force=force)
    if as_json:
        emit_json({"removed": removed})
    else:
        click.echo(f"removed {removed[:12]} (run `mvcdb gc` to reclaim its space)")
