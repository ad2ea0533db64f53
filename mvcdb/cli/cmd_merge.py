"""`mvcdb merge OTHER.db`: copy in every version, chunk and tag move another file has."""

from __future__ import annotations

import click

from .context import json_option, open_db
from .output import emit_json, progress


@click.command("merge")
@click.argument("other", metavar="OTHER.db", type=click.Path(dir_okay=False))
@click.option("--theirs", is_flag=True, help="On a tag conflict, take the other file's tag.")
@json_option
@click.pass_context
def command(ctx: click.Context, other: str, theirs: bool, as_json: bool) -> None:
    """Copy every version, lineage edge, chunk and tag move of OTHER.db that this file lacks.

    OTHER.db is only read. Every incoming version and chunk is verified against its hash: a
    damaged or tampered file is refused, naming the bad part. Merging twice changes nothing.
    A tag pointing at different versions in the two files is reported and kept as it is here,
    unless --theirs.

    \b
    --json shape:
      {"source", "target", "versions_added": [ID], "versions_present", "chunks_added",
       "bytes_added", "tag_moves_added", "tags_set": [NAME],
       "conflicts": [{"name", "ours", "theirs", "resolution"}], "notes": [...]}
    """
    db = open_db(ctx)
    with progress("Merging", unit="items") as cb:
        report = db.merge(other, theirs=theirs, progress=cb)
    if as_json:
        emit_json(report.to_dict())
    else:
        click.echo(str(report))
