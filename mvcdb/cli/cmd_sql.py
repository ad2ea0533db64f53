"""`mvcdb sql "QUERY"`: a read-only SQL query over the file, as a table, CSV or JSON."""

from __future__ import annotations

import csv
import math
import re
import sys
from typing import Any

import click

from .context import open_db
from .output import emit_json, emit_table, is_tty


def _cell(value: Any) -> Any:
    """Blobs are shown by size in tables and CSV (JSON prints them as hex)."""
    if isinstance(value, bytes):
        return f"<blob {len(value)} bytes>"
    return value


@click.command("sql")
@click.argument("query")
@click.option(
    "--param",
    "-p",
    "params",
    multiple=True,
    metavar="VALUE",
    help=(
        "A value for the next '?' in QUERY (repeatable). Plain integers that fit 64 bits and"
        " decimals like 2.5 or 1e-3 bind as numbers; anything else (007, 1_000, nan) as text."
    ),
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Stop a query still running after this long (Ctrl-C stops one at any time).",
)
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV (with a header row).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of row objects.")
@click.pass_context
def command(
    ctx: click.Context,
    query: str,
    params: tuple[str, ...],
    timeout: float | None,
    as_csv: bool,
    as_json: bool,
) -> None:
    """Run a read-only SQL QUERY (one statement) against the database.

    The schema's tables and views (version_summary, version_metrics, version_parents,
    metric_deltas, tagged_versions, version_params, model_summary) are available, and so are
    the functions short_id, traj_value, traj_first, traj_last, traj_min, traj_max, traj_len and
    tensor_norm. Any write is refused. Examples are in README.md, "Querying".

    \b
    Examples:
      mvcdb sql "SELECT model, count(*) FROM versions GROUP BY model"
      mvcdb sql "SELECT * FROM version_metrics WHERE metric = ?" -p val_mse --csv
    """
    if as_csv and as_json:
        raise click.UsageError("--csv and --json exclude each other")
    from mvcdb.sqlquery import sql_table

    db = open_db(ctx, readonly=True)
    columns, rows = sql_table(db, query, [_number_or_text(p) for p in params], timeout=timeout)
    if as_json:
        emit_json([dict(zip(columns, row, strict=True)) for row in rows])
    elif as_csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([_cell(v) for v in row] for row in rows)
    elif not rows and is_tty():
        emit_table(columns, [])
        click.echo("(no rows)")
    else:
        emit_table(columns, [[_cell(v) for v in row] for row in rows])


#: A plain integer as SQL writes it: no leading zeros (007 stays text), no '_', no spaces.
_INT_RE = re.compile(r"[+-]?(?:0|[1-9][0-9]*)")
#: A plain decimal with a point or an exponent (2.5, .5, 1e-3), same rules for the integer part.
_REAL_RE = re.compile(r"[+-]?(?:(?:0|[1-9][0-9]*)(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
#: SQLite's INTEGER is signed 64-bit.
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1


def _number_or_text(text: str) -> int | float | str:
    """The value to bind for one --param: an int or a float only for a strict numeric literal.

    Python's int() and float() accept '007', '1_000', ' 5' and 'nan', which would make a tag or
    an id that looks like a number unfindable; so anything but a plain literal stays text, and so
    does a number SQLite cannot hold (beyond 64 bits, or an exponent that overflows to inf).
    """
    if _INT_RE.fullmatch(text):
        number = int(text)
        if _INT_MIN <= number <= _INT_MAX:
            return number
        return text
    if _REAL_RE.fullmatch(text):
        real = float(text)
        if math.isfinite(real):
            return real
    return text
