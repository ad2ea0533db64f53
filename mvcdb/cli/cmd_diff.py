"""`mvcdb diff A B`: what changed between two versions (metadata, metrics, parameters, trajectory)."""

from __future__ import annotations

import click

from .context import complete_ref, json_option, open_db
from .output import console, emit_json, is_tty

#: Diff.lines() style -> rich style on a terminal.
_STYLES = {"header": "bold", "added": "green", "removed": "red", "changed": "yellow", "same": "dim"}


@click.command("diff")
@click.argument("a", metavar="A", shell_complete=complete_ref)
@click.argument("b", metavar="B", shell_complete=complete_ref)
@json_option
@click.pass_context
def command(ctx: click.Context, a: str, b: str, as_json: bool) -> None:
    """What changed from version A to version B (each a ref: id, prefix, tag, MODEL@latest, REF~N).

    Metadata keys added/removed/changed (nested paths), metrics with absolute and relative
    change, parameters (identical tensors are known from their content hash without reading
    them; changed ones get L2, max |diff|, relative change, cosine and the share of changed
    elements) and trajectory series. --json prints Diff.to_dict() (see README, "Querying").

    \b
    Examples:
      mvcdb diff production linreg@latest
      mvcdb diff linreg@latest~1 linreg@latest --json
    """
    db = open_db(ctx, readonly=True)
    result = db.diff(a, b)
    if as_json:
        emit_json(result.to_dict())
        return
    if not is_tty():
        click.echo(str(result))
        return
    from rich.text import Text

    out = console()
    for style, text in result.lines():
        # soft_wrap: a long line (a metric's relative change, a series' final diff) folds at the
        # terminal's edge instead of being cut: every number the plain output has stays readable
        out.print(Text(text, style=_STYLES.get(style, "")), soft_wrap=True)
