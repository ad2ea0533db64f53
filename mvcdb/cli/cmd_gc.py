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

    A chunk a version's manifest names is kept even when no tensor row points at it any more
    (damaged rows: a note says to run `mvcdb verify`). The deletion commits first: when the disk
    is too full to compact the file afterwards, gc says so and exits 1, and the freed space is
    reused by new records inside the file all the same.

    \b
    --json shape:
      {"path", "chunks_deleted", "stored_bytes_deleted", "file_bytes_before",
       "file_bytes_after", "reclaimed_bytes", "chunks_kept", "notes"}
    """
    db = open_db(ctx)
    with progress("Collecting garbage", unit="items") as cb:
        report = db.gc(progress=cb)
    if as_json:
        emit_json(report.to_dict())
    else:
        click.echo(str(report))
