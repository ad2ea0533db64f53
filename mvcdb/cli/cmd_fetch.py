"""`mvcdb fetch [REF...]`: fetch the parameters a lazy clone has not fetched yet, for offline use."""

from __future__ import annotations

import click

from .context import json_option, open_db
from .output import emit_json, format_bytes, progress


@click.command("fetch")
@click.argument("refs", nargs=-1, metavar="[REF]...")
@json_option
@click.pass_context
def command(ctx: click.Context, refs: tuple[str, ...], as_json: bool) -> None:
    """In a lazy clone, fetch the parameters of REFs (default: every version) from its remote.

    Restores of those versions then need no server. A file that is not a lazy clone, or has
    everything already, has nothing to fetch.

    \b
    Examples:
      mvcdb fetch                  # everything, before going offline
      mvcdb fetch production       # just what `restore production` needs

    --json prints {"remote", "chunks", "bytes"} (what was fetched; remote null when the file is
    no lazy clone).
    """
    db = open_db(ctx)
    with progress("Fetching") as cb:
        report = db.fetch(list(refs) or None, progress=cb)
    if as_json:
        emit_json({"remote": report.remote or None, "chunks": report.chunks, "bytes": report.bytes})
    elif report.chunks:
        click.echo(f"Fetched {report.chunks} chunks ({format_bytes(report.bytes)}) from {report.remote}.")
    else:
        click.echo("Nothing to fetch: every parameter of these versions is in the file.")
