"""`mvcdb verify`: check the whole file; exit 1 naming every problem found."""

from __future__ import annotations

import click

from .app import EXIT_CODE_KEY
from .context import json_option, open_db
from .output import emit_json, progress


@click.command("verify")
@json_option
@click.pass_context
def command(ctx: click.Context, as_json: bool) -> None:
    """Check the file's integrity; exit 1 if anything is wrong, naming each problem.

    Runs SQLite's integrity and foreign-key checks, decodes and re-hashes every chunk,
    re-hashes every version's manifest to its id and compares it with the stored rows
    (metadata, metrics, parents, tensors), and resolves every lineage edge and tag.

    \b
    --json shape:
      {"path", "ok", "checked": {"versions", "chunks", "tags"},
       "problems": [{"kind", "subject", "detail"}], "notes": [...]}
    kinds: sqlite-integrity, foreign-key, chunk-corrupt, chunk-missing, manifest-hash,
    manifest-decode, manifest-mismatch, manifest-incomplete, lineage, tag, meta
    """
    db = open_db(ctx, readonly=True)
    with progress("Verifying", unit="items") as cb:
        report = db.verify(progress=cb)
    if not report.ok:  # known before printing: `mvcdb verify | head -1` still exits 1
        ctx.meta[EXIT_CODE_KEY] = 1
    if as_json:
        emit_json(report.to_dict())
    else:
        click.echo(str(report))
    if not report.ok:
        ctx.exit(1)
