"""`mvcdb export REF... -o bundle.db`: a small self-contained file to hand to a teammate."""

from __future__ import annotations

import click

from .context import complete_ref, json_option, open_db
from .output import emit_json, progress


@click.command("export")
@click.argument("refs", metavar="REF...", nargs=-1, required=True, shell_complete=complete_ref)
@click.option(
    "-o",
    "--output",
    "output",
    required=True,
    type=click.Path(dir_okay=False),
    help="The bundle file to create (never overwritten).",
)
@json_option
@click.pass_context
def command(ctx: click.Context, refs: tuple[str, ...], output: str, as_json: bool) -> None:
    """Write the versions REF... and all their ancestors (with their tags) to a new .db file.

    The bundle is an ordinary mvcdb database: a teammate runs `mvcdb merge bundle.db` (or
    browses it directly) and gets exactly these versions, with the same ids.

    \b
    --json shape: as `mvcdb merge --json` ("target" is the bundle).
    """
    if not output:
        raise click.BadParameter("the file name is empty", param_hint="'-o' / '--output'")
    db = open_db(ctx, readonly=True)
    with progress("Exporting", unit="items") as cb:
        report = db.export(list(refs), output, progress=cb)
    if as_json:
        emit_json(report.to_dict())
    else:
        click.echo(str(report).replace(" added from ", " exported from ", 1))
