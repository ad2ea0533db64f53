"""`mvcdb clone URL PATH.db [--lazy]`: a new local file holding everything a remote has."""

from __future__ import annotations

import click

from .context import json_option
from .output import emit_json, format_bytes, progress


@click.command("clone")
@click.argument("url")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option(
    "--lazy",
    is_flag=True,
    help="Fetch metadata, lineage, metrics and trajectories but no parameters (fetched on restore).",
)
@json_option
def command(url: str, path: str, lazy: bool, as_json: bool) -> None:
    """Clone the PostgreSQL remote URL into a new database file PATH (remote 'origin').

    The URL is stored without its password; later pushes and pulls take credentials from
    PGPASSWORD, ~/.pgpass or a service file.

    --json prints {"path", "remote", "versions", "chunks", "bytes", "tags_moved": [name],
    "tags_rejected": [], "tags_kept": [], "chunks_not_fetched"}.
    """
    import mvcdb

    with progress("Cloning") as cb:
        report = mvcdb.clone(url, path, lazy=lazy, progress=cb)
    if as_json:
        emit_json({"path": path, **report.to_dict()})
        return
    extra = f"; {report.stubs} parameter chunks fetched on demand" if report.stubs else ""
    click.echo(
        f"Cloned {report.versions} versions, {report.chunks} chunks ({format_bytes(report.bytes)}) "
        f"into {path}{extra}."
    )
