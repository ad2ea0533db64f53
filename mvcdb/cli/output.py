"""Printing: rich tables and colour on a terminal, plain text when piped, JSON on request."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import click

from mvcdb.text import without_controls


def is_tty() -> bool:
    """True when stdout is a terminal (rich formatting); False when piped (plain, parseable text)."""
    return sys.stdout.isatty()


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "to_dict"):
        return _jsonable(obj.to_dict())
    if hasattr(obj, "item") and callable(obj.item):
        return _jsonable(obj.item())
    if isinstance(obj, bytes):
        return obj.hex()
    return obj


def _default(obj: Any) -> Any:
    """What json's C encoder calls for a value it does not know: as _jsonable converts it."""
    converted = _jsonable(obj)
    if converted is obj:
        raise TypeError(f"{type(obj).__name__} is not JSON serializable")
    return converted


def _dumps(doc: Any, indent: int | None) -> str:
    """doc as JSON: straight through json's encoder, or (a NaN, an infinity, a key JSON cannot
    take) through _jsonable first, which turns those into strings."""
    try:
        return json.dumps(doc, indent=indent, ensure_ascii=False, allow_nan=False, default=_default)
    except (ValueError, TypeError):
        return json.dumps(_jsonable(doc), indent=indent, ensure_ascii=False, allow_nan=False)


#: A top-level list longer than this prints one compact item a line (still one JSON document):
#: json's indenting encoder is pure Python, several times slower than its C one.
LONG_JSON_LIST = 100


def emit_json(obj: Any) -> None:
    """Print obj as JSON (NaN/inf become strings, objects with to_dict() are expanded), indented;
    a long top-level list with one compact item a line."""
    if isinstance(obj, (list, tuple)) and len(obj) > LONG_JSON_LIST:
        click.echo("[\n" + ",\n".join(_dumps(item, None) for item in obj) + "\n]")
        return
    click.echo(_dumps(obj, 2))


def console() -> Any:
    """A rich Console writing to stdout (colour only on a terminal)."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=not is_tty())


def table_cell(value: Any) -> str:
    """A value as one table cell: None is empty, and each run of control characters (a tab or
    newline in an author or tag name from a hostile file) becomes one space, so a piped table
    keeps one line a row and one tab a column."""
    return "" if value is None else without_controls(str(value))


#: Table columns whose cells are all at most this long never wrap (a 12-hex id, a time, a number),
#: while the other columns keep at least WRAPPED_MIN_CHARS to fold into.
NO_WRAP_CHARS = 20
WRAPPED_MIN_CHARS = 8


#: Lines echo_lines writes together (one echo, and one flush, a line cost ~20 us a line).
LINES_A_WRITE = 1000


def echo_lines(lines: Iterable[str]) -> None:
    """Print lines as they come, LINES_A_WRITE at a time: a long listing streams (`| head` stops
    it early) without paying an echo and a flush a line."""
    batch: list[str] = []
    for line in lines:
        batch.append(line)
        if len(batch) >= LINES_A_WRITE:
            click.echo("\n".join(batch))
            batch.clear()
    if batch:
        click.echo("\n".join(batch))


def emit_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str | None = None) -> None:
    """A table: rich box drawing on a terminal, tab-separated plain text when piped."""
    if not is_tty():
        echo_lines(["\t".join(columns)])
        echo_lines("\t".join(table_cell(v) for v in row) for row in rows)
        return
    from rich.table import Table

    table = Table(title=title, show_edge=False, header_style="bold")
    cells = [[table_cell(v) for v in row] for row in rows]
    out = console()
    for col, keep in zip(columns, _unwrapped(columns, cells, out.width), strict=True):
        table.add_column(col, overflow="fold", no_wrap=keep, min_width=len(col) if keep else None)
    for row in cells:
        table.add_row(*row)
    out.print(table)


def _unwrapped(columns: Sequence[str], cells: Sequence[Sequence[str]], width: int) -> list[bool]:
    """Which columns stay on one line: short ones (ids, times, numbers, names: copyable whole),
    from the left, as long as the others keep up to WRAPPED_MIN_CHARS each to fold into."""
    widths = [max([len(c), *(len(row[i]) for row in cells if i < len(row))]) for i, c in enumerate(columns)]
    keep = [False] * len(columns)
    for i, w in enumerate(widths):
        if w > NO_WRAP_CHARS:
            continue
        keep[i] = True
        # each cell has a space either side; a rule separates neighbours (no outer edge)
        need = sum(w + 2 if k else min(w, WRAPPED_MIN_CHARS) + 2 for w, k in zip(widths, keep, strict=True))
        need += len(columns) - 1
        if need > width:
            keep[i] = False
            break
    return keep


def format_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def format_metric(value: float) -> str:
    """A metric value, short: 0.012345 -> '0.01235'; NaN -> 'nan'."""
    if value != value:
        return "nan"
    if value == 0 or 1e-4 <= abs(value) < 1e6:
        return f"{value:.5g}"
    return f"{value:.3e}"


#: cb(done, total, what): report progress; total is in the same unit as done (bytes or items).
ProgressCallback = Callable[[int, int, str], None]


def _no_progress(done: int, total: int, what: str) -> None:
    """The callback used when stdout/stderr is piped: progress is not worth printing there."""


@contextmanager
def progress(description: str, *, unit: str = "bytes", delay: float = 0.3) -> Iterator[ProgressCallback]:
    """A progress bar on a terminal, nothing when piped.

    Yields ``cb(done, total, what)``; call it as work advances (``done`` and ``total`` in bytes
    when ``unit == "bytes"``, else in items; ``what`` names the current piece, e.g. a tensor).
    The bar is drawn on stderr (stdout stays clean for data) and only appears once the work has
    taken longer than `delay` seconds, so quick operations do not flash a bar.

    Args:
        description: What is being done ("Restoring 3f2a…").
        unit: "bytes" shows sizes and transfer speed; anything else shows counts.
        delay: Seconds of work before the bar is drawn.
    """
    if not sys.stderr.isatty():
        yield _no_progress
        return
    import time

    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    amount = (
        (DownloadColumn(binary_units=True), TransferSpeedColumn())
        if unit == "bytes"
        else (MofNCompleteColumn(),)
    )
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        *amount,
        TimeRemainingColumn(),
        TextColumn("{task.fields[what]}"),
        console=Console(stderr=True),
        transient=True,
    )
    task = bar.add_task(description, total=None, what="")
    started_at = time.monotonic()
    shown = False

    def cb(done: int, total: int, what: str = "") -> None:
        nonlocal shown
        bar.update(task, completed=done, total=max(total, 0) or None, what=what)
        if not shown and time.monotonic() - started_at >= delay:
            bar.start()
            shown = True

    try:
        yield cb
    finally:
        if shown:
            bar.stop()


_SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float] | Any, width: int = 40) -> str:
    """A unicode sparkline of a series, resampled to at most `width` cells (NaN/inf shown as ' ').

    Each cell shows the mean of the values that fall into it, so long series keep their shape.
    Values are averaged as float64 arrays (a million-point series in milliseconds, not a second
    of Python loops), summed left to right as the Python loop they replace did.
    """
    import numpy as np

    array = np.asarray(values, dtype=np.float64).reshape(-1)
    n = len(array)
    if n == 0:
        return ""
    m = min(n, max(width, 1))
    cells: list[float] = []
    for i in range(m):
        part = array[i * n // m : (i + 1) * n // m]
        part = part[np.isfinite(part)]
        # cumsum adds left to right as sum() of floats does on Python 3.11 (np.sum pairs terms up)
        cells.append(float(np.cumsum(part)[-1]) / part.size if part.size else math.nan)
    finite = [c for c in cells if math.isfinite(c)]
    if not finite:
        return " " * len(cells)
    low, high = min(finite), max(finite)
    span = high - low
    out = []
    for c in cells:
        if not math.isfinite(c):
            out.append(" ")
        elif span == 0:
            out.append(_SPARKS[len(_SPARKS) // 2])
        else:
            out.append(_SPARKS[min(len(_SPARKS) - 1, int((c - low) / span * len(_SPARKS)))])
    return "".join(out)


def format_time(moment: datetime) -> str:
    """A timestamp for tables: '2026-11-27 03:52:31' (UTC, to the second)."""
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def format_metrics(metrics: Mapping[str, float], limit: int = 4) -> str:
    """'val_mse=0.2285 loss=0.1' — the first `limit` metrics, short, for one-line listings."""
    parts = [f"{k}={format_metric(v)}" for k, v in list(metrics.items())[:limit]]
    if len(metrics) > limit:
        parts.append(f"(+{len(metrics) - limit})")
    return " ".join(parts)


def one_line(text: str, width: int = 60) -> str:
    """The first line of a message, cut to `width` characters with an ellipsis."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= width else first[: width - 1] + "…"


def emit_heading(text: str) -> None:
    """A section heading: bold on a terminal, a plain line (preceded by a blank one) when piped."""
    if is_tty():
        console().print(f"\n[bold underline]{_escape(text)}[/]")
    else:
        click.echo(f"\n{text}")


def emit_fields(fields: Sequence[tuple[str, Any]]) -> None:
    """Aligned `key  value` lines (a value of None is skipped); keys dimmed on a terminal."""
    shown = [(k, str(v)) for k, v in fields if v is not None]
    if not shown:
        return
    width = max(len(k) for k, _ in shown)
    if not is_tty():
        for key, value in shown:
            click.echo(f"{key.ljust(width)}  {value}")
        return
    out = console()
    for key, value in shown:
        out.print(f"[dim]{_escape(key.ljust(width))}[/]  {_escape(value)}")


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
