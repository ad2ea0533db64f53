"""`mvcdb restore REF -o FILE`: write a version's parameters (or --trajectory) to .npz or .safetensors.

The format follows the file's extension; the writing (atomic, no silent overwrite, tensor names as
keys, never paths) is mvcdb/exporting.py's, shared with the TUI's export dialog.
"""

from __future__ import annotations

from pathlib import Path

import click

from .context import json_option, open_db, ref_argument
from .output import emit_json, format_bytes, progress


@click.command("restore")
@ref_argument()
@click.option(
    "--output",
    "-o",
    "output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The file to write: .npz, or .safetensors (needs the safetensors library).",
)
@click.option("--force", "-f", is_flag=True, help="Overwrite FILE if it exists.")
@click.option(
    "--trajectory", is_flag=True, help="Write the per-iteration trajectory instead of the parameters."
)
@json_option
@click.pass_context
def command(ctx: click.Context, ref: str, output: Path, force: bool, trajectory: bool, as_json: bool) -> None:
    """Write the parameters of version REF to FILE, bit-identical (dtype, shape and bytes).

    With --trajectory the file holds `step` and one array per logged series (NaN where a series
    was not logged at a step). With --json: {"id", "path", "format", "kind", "tensors", "bytes"}.

    \b
    Examples:
      mvcdb restore production -o model.npz
      mvcdb restore linreg@latest -o model.safetensors --force
      mvcdb restore production --trajectory -o run.npz
    """
    from mvcdb import exporting
    from mvcdb.errors import MvcdbError

    try:
        exporting.output_format(output)
    except MvcdbError as exc:
        raise click.BadParameter(str(exc), param_hint="'-o' / '--output'") from None
    how = "pass --force"
    exporting.check_output(output, overwrite=force, how_to_overwrite=how)  # before opening anything
    db = open_db(ctx, readonly=True)
    version = db.get(ref)
    with progress(f"Restoring {version.short_id}") as cb:
        written = exporting.export_version(
            db, version.id, output, overwrite=force, trajectory=trajectory, progress=cb, how_to_overwrite=how
        )
    kind = "trajectory" if trajectory else "params"
    if as_json:
        emit_json(
            {
                "id": version.id,
                "path": str(output),
                "format": written.format,
                "kind": kind,
                "tensors": written.tensors,
                "bytes": written.nbytes,
            }
        )
    else:
        what = "series" if trajectory else "tensors"
        size = format_bytes(written.nbytes)
        click.echo(f"Wrote {written.tensors} {what} ({size}) of {version.short_id} to {output}")
