"""`mvcdb stats`: counts, file size, logical vs stored bytes."""

from __future__ import annotations

import click

from .context import json_option, open_db
from .output import emit_json


@click.command("stats")
@json_option
@click.pass_context
def command(ctx: click.Context, as_json: bool) -> None:
    """Counts, file size, and logical vs stored bytes (dedup and compression ratios).

    \b
    --json shape:
      {"path", "file_bytes", "versions", "models", "tensors", "series", "chunks",
       "orphan_chunks", "tags", "tag_moves", "param_bytes", "trajectory_bytes",
       "logical_bytes", "chunk_raw_bytes", "stored_bytes", "dedup_ratio",
       "compression_ratio", "total_ratio", "chunks_not_fetched"}
    """
    report = open_db(ctx, readonly=True).stats()
    if as_json:
        emit_json(report.to_dict())
    else:
        click.echo(str(report))
