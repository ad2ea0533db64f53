"""`mvcdb gc`: delete chunks no version uses (after `rm`), then compact the file."""

from __future__ import annotations

import click

from .context import json_option, open_db
from .output import emit_json, progress


@click.command("gc")
@json_option
@click.pass_context
def command(ctx: click.Context, as_json: bool) -> None:
    """Reclaim chunks no version references (after `mvcdb rm`), then compact the file.

    \b
    --json shape:
      {"path", "chunks_deleted", "stored_bytes_deleted", "file_bytes_before",
       "file_bytes_after", "reclaimed_bytes"}
    """
    db = open_db(ctx)
    with progress("Collecting garbage", unit="items") as cb:
        report = db.gc(progress=cb)
    if as_json:
        emit_json(report.to_dict())
    else:
        click.echo(str(report))
