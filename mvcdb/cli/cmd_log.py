"""`mvcdb log`: versions newest first, filtered; `--graph` draws the lineage like `git log --graph`."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import click

from .context import complete_model, complete_tag, json_option, open_db
from .output import (
    console,
    echo_lines,
    emit_json,
    emit_table,
    format_metrics,
    format_time,
    is_tty,
    one_line,
)

if TYPE_CHECKING:
    from mvcdb.models import Version


def parse_when(text: str, now: datetime | None = None) -> datetime:
    """mvcdb.timeutil.parse_when for a command-line value: click.BadParameter instead of MvcdbError."""
    from mvcdb.errors import MvcdbError
    from mvcdb.timeutil import parse_when as parse

    try:
        return parse(text, "", now=now)
    except MvcdbError as exc:
        raise click.BadParameter(str(exc)) from None


class _When(click.ParamType):  # type: ignore[type-arg]  # generic only in click >= 8.2
    name = "WHEN"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return parse_when(str(value))
        except click.BadParameter as exc:
            self.fail(exc.message, param, ctx)


def _check_conditions(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    """Malformed --where conditions are bad usage (exit 2), like a malformed --since."""
    from mvcdb import filters
    from mvcdb.errors import MvcdbError

    for value in values:
        try:
            filters.condition_sql(value)
        except MvcdbError as exc:
            raise click.BadParameter(str(exc)) from None
    return values


def _check_order(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """An --order-by key mvcdb cannot sort by is bad usage (exit 2)."""
    from mvcdb import filters
    from mvcdb.errors import MvcdbError

    try:
        filters.order_sql(value)
    except MvcdbError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


@click.command("log")
@click.option("--model", "-M", metavar="MODEL", shell_complete=complete_model, help="Only this model.")
@click.option(
    "--tag", "-t", metavar="TAG", shell_complete=complete_tag, help="Only the version with this tag."
)
@click.option("--author", "-a", metavar="NAME", help="Only versions by this author.")
@click.option("--since", type=_When(), help="Recorded at or after (2026-01-31, ISO time, or 7d/12h ago).")
@click.option("--until", type=_When(), help="Recorded before (same forms as --since).")
@click.option(
    "--where",
    "-w",
    "conditions",
    multiple=True,
    metavar="COND",
    callback=_check_conditions,
    help="A condition such as 'metrics.val_mse < 0.3' or 'metadata.train_set = train.csv' (repeatable).",
)
@click.option(
    "--order-by",
    metavar="KEY",
    callback=_check_order,
    help="created_at, model, metrics.NAME, metadata.PATH; '-' prefix = descending.",
)
@click.option("--limit", "-n", type=click.IntRange(min=0), help="At most this many versions.")
@click.option(
    "--graph", is_flag=True, help="Draw the lineage DAG beside the versions (like git log --graph)."
)
@json_option
@click.pass_context
def command(
    ctx: click.Context,
    model: str | None,
    tag: str | None,
    author: str | None,
    since: datetime | None,
    until: datetime | None,
    conditions: tuple[str, ...],
    order_by: str | None,
    limit: int | None,
    graph: bool,
    as_json: bool,
) -> None:
    """List versions, newest first.

    Filters combine (all must hold). With --json: a list of version objects (see README).

    \b
    Examples:
      mvcdb log --model linreg -n 5
      mvcdb log --where 'metrics.val_mse < 0.25' --since 7d
      mvcdb log --graph
    """
    db = open_db(ctx, readonly=True)
    versions = db.versions(
        model,
        tag=tag,
        author=author,
        since=since,
        until=until,
        where=list(conditions) or None,
        order_by=order_by,
        limit=limit,
    )
    if as_json:
        emit_json([v.to_dict() for v in versions])
    elif not versions:  # with --graph too: an empty drawing would look like an empty file
        click.echo(
            "No versions match." if _filtered(ctx) else "No versions yet (record one, or try `mvcdb demo`)."
        )
    elif graph:
        _print_graph(list(versions))
    else:
        emit_table(
            ["id", "model", "created (UTC)", "author", "tags", "metrics", "message"],
            [
                (
                    v.short_id,
                    v.model,
                    format_time(v.created_at),
                    v.author,
                    ",".join(v.tags),
                    format_metrics(v.metrics),
                    one_line(v.message),
                )
                for v in versions
            ],
        )


def _filtered(ctx: click.Context) -> bool:
    """Whether a filter or --limit was given, even an empty or zero one (`--model ''`, `-n 0`).

    If so, an empty result means "nothing matches", not "the database is empty".
    """
    if ctx.params.get("conditions"):
        return True
    return any(ctx.params.get(k) is not None for k in ("model", "tag", "author", "since", "until", "limit"))


def _print_graph(versions: list[Version]) -> None:
    """One line per graph row: the lane drawing, then the version's summary (if the row has one)."""
    from mvcdb.lineage import iter_graph_rows

    rows = iter_graph_rows(versions)  # streamed: a wide history prints as it is laid out
    if not is_tty():
        echo_lines(
            prefix + _summary(version) if version is not None else prefix.rstrip() for prefix, version in rows
        )
        return
    from rich.text import Text

    out = console()
    for prefix, version in rows:
        line = Text()
        line.append(prefix if version is not None else prefix.rstrip(), style="magenta")
        if version is not None:
            line.append(version.short_id, style="yellow")
            if version.tags:
                line.append(" (" + ", ".join(version.tags) + ")", style="bold green")
            line.append(f" {version.model}", style="cyan")
            line.append(f" {format_time(version.created_at)} {version.author}", style="dim")
            if version.message:
                line.append(" " + one_line(version.message))
            if version.metrics:
                line.append("  " + format_metrics(version.metrics), style="blue")
        out.print(line, no_wrap=True, overflow="ellipsis")


def _summary(v: Version) -> str:
    """The plain-text line beside a graph node: id (tags) model time author message metrics."""
    parts = [v.short_id]
    if v.tags:
        parts.append("(" + ", ".join(v.tags) + ")")
    parts += [v.model, format_time(v.created_at), v.author]
    if v.message:
        parts.append(one_line(v.message))
    if v.metrics:
        parts.append(" " + format_metrics(v.metrics))
    return " ".join(parts)
