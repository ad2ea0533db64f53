"""`mvcdb tree [REF]`: the lineage DAG around a version, or a model's whole forest."""

from __future__ import annotations

import click

from .context import complete_model, complete_ref, json_option, open_db
from .output import console, echo_lines, emit_json, is_tty


@click.command("tree")
# ref_argument's metavar is a bare REF; an optional one shows as [REF] in the usage line
@click.argument("ref", metavar="[REF]", required=False, shell_complete=complete_ref)
@click.option(
    "--model",
    "-M",
    metavar="MODEL",
    shell_complete=complete_model,
    help="Only this model's versions (with REF: REF's lineage among them; REF itself always shown).",
)
@click.option(
    "--depth", "-d", type=click.IntRange(min=0), help="At most this many edges from REF (needs REF)."
)
@json_option
@click.pass_context
def command(ctx: click.Context, ref: str | None, model: str | None, depth: int | None, as_json: bool) -> None:
    """Draw the lineage: REF's ancestors and descendants, or every version of --model.

    With both, REF's ancestors and descendants that are versions of --model (a fine-tuned model
    recorded under another name drops out); without either, every version in the file. Drawn
    like `git log --graph`, newest first, REF marked with '<'.
    --json prints {"ref", "model", "nodes", "edges"}.

    \b
    Examples:
      mvcdb tree production --depth 3
      mvcdb tree --model linreg
    """
    if depth is not None and ref is None:
        raise click.UsageError("--depth needs a REF to measure from")
    db = open_db(ctx, readonly=True)
    tree = db.lineage(ref, model=model, depth=depth)
    if as_json:
        emit_json(tree.to_dict())
        return
    if not tree.nodes:
        click.echo(str(tree))
        return
    if not is_tty():
        echo_lines(tree.iter_lines())  # streamed: a wide history prints as it is laid out
        return
    from rich.text import Text

    from mvcdb.lineage import iter_graph_rows

    out = console()
    for prefix, version in iter_graph_rows(tree.nodes):
        line = Text(prefix if version is not None else prefix.rstrip(), style="magenta")
        if version is not None:
            line.append(version.short_id, style="bold yellow" if version.id == tree.ref else "yellow")
            if version.tags:
                line.append(" (" + ", ".join(version.tags) + ")", style="bold green")
            line.append(f" {version.model}", style="cyan")
            if version.message:
                line.append(" " + version.message.splitlines()[0])
            if version.id == tree.ref:
                line.append(" <", style="bold")
        out.print(line, no_wrap=True, overflow="ellipsis")
