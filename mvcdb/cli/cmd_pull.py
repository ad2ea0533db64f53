"""`mvcdb pull [NAME] [REF...]`: copy in what a PostgreSQL remote has and this file lacks."""

from __future__ import annotations

import click

from .context import json_option, open_db
from .output import emit_json, format_bytes, progress


@click.command("pull")
@click.argument("remote", required=False, metavar="[NAME]")
@click.argument("refs", nargs=-1, metavar="[REF]...")
@json_option
@click.pass_context
def command(ctx: click.Context, remote: str | None, refs: tuple[str, ...], as_json: bool) -> None:
    """Pull versions, chunks, tags and tag history from remote NAME (default: origin).

    NAME may also be a postgresql:// URL. With REFs (remote tags, ids, MODEL@latest), pull those
    versions and their ancestors; without, everything. Local tags follow the remote's when that
    is a fast-forward; a tag moved elsewhere locally is kept and reported. In a lazy clone,
    parameter chunks are fetched only when restored.

    --json prints {"remote", "versions", "chunks", "bytes", "tags_moved": [name],
    "tags_rejected": [], "tags_kept": [name], "chunks_not_fetched"} (what was copied in).
    """
    db = open_db(ctx)
    from mvcdb.remote.urls import label

    with progress(f"Pulling from {label(remote)}") as cb:
        report = db.pull(remote, list(refs) or None, progress=cb)
    if as_json:
        emit_json(report)
        return
    if not (report.versions or report.chunks or report.tags_moved or report.tags_kept):
        click.echo(f"Already up to date with {report.remote}.")
        return
    line = f"Pulled {report.versions} versions, {report.chunks} chunks ({format_bytes(report.bytes)})"
    if report.stubs:
        line += f", {report.stubs} parameter chunks left on the remote (lazy)"
    if report.tags_moved:
        line += f"; moved tags: {', '.join(report.tags_moved)}"
    click.echo(f"{line} from {report.remote}.")
    if report.tags_kept:
        click.echo(
            f"Kept local tags that moved elsewhere or were deleted here: {', '.join(report.tags_kept)} "
            "(move them with `mvcdb tag` if the remote's position is right)",
            err=True,
        )
