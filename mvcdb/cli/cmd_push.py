"""`mvcdb push [NAME] [REF...]`: send a PostgreSQL remote what it lacks."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from .context import json_option, open_db
from .output import emit_json, format_bytes, progress

if TYPE_CHECKING:
    from mvcdb.remote.transfer import TransferReport


@click.command("push")
@click.argument("remote", required=False, metavar="[NAME]")
@click.argument("refs", nargs=-1, metavar="[REF]...")
@click.option("--force", "-f", is_flag=True, help="Move remote tags even when it is not a fast-forward.")
@json_option
@click.pass_context
def command(
    ctx: click.Context, remote: str | None, refs: tuple[str, ...], force: bool, as_json: bool
) -> None:
    """Push versions, chunks and tags to remote NAME (default: origin, or the only remote).

    NAME may also be a postgresql:// URL. With REFs, push those versions (with all their
    ancestors) and the tags among them; without, push everything. A remote tag moves only forward
    along the lineage unless --force.

    --json prints {"remote", "versions", "chunks", "bytes", "tags_moved": [name],
    "tags_rejected": [text], "tags_kept": [name], "chunks_not_fetched", "skipped": [text]} (what
    was sent; skipped: versions left out because their parent was removed here and is not on the
    remote).
    """
    db = open_db(ctx, readonly=True)
    from mvcdb.remote.transfer import PushRejectedError
    from mvcdb.remote.urls import label

    rejected: PushRejectedError | None = None
    with progress(f"Pushing to {label(remote)}") as cb:
        try:
            report = db.push(remote, list(refs) or None, force=force, progress=cb)
        except PushRejectedError as exc:  # everything else was pushed: report it, then fail
            report, rejected = exc.report, exc
    if as_json:
        emit_json(report)
    else:
        _describe(report)
    if rejected is not None:
        raise rejected


def _describe(report: TransferReport) -> None:
    for skipped in report.skipped:
        click.echo(f"Not pushed: {skipped}.", err=True)
    if not (report.versions or report.chunks or report.tags_moved):
        if not report.tags_rejected:
            click.echo(f"{report.remote} is up to date.")
        return
    line = f"Pushed {report.versions} versions, {report.chunks} chunks ({format_bytes(report.bytes)})"
    if report.tags_moved:
        line += f"; moved tags: {', '.join(report.tags_moved)}"
    click.echo(f"{line} to {report.remote}.")
