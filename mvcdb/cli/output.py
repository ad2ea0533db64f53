"""Printing: rich tables and colour on a terminal, plain text when piped, JSON on request."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from typing import Any

import click


def is_tty() -> bool:
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


def emit_json(obj: Any) -> None:
    """Print obj as JSON (NaN/inf become strings, objects with to_dict() are expanded)."""
    click.echo(json.dumps(_jsonable(obj), indent=2, ensure_ascii=False, allow_nan=False))


def console() -> Any:
    """A rich Console writing to stdout (colour only on a terminal)."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=not is_tty())


def emit_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str | None = None) -> None:
    """A table: rich box drawing on a terminal, tab-separated plain text when piped."""
    if not is_tty():
        click.echo("\t".join(columns))
        for row in rows:
            click.echo("\t".join("" if v is None else str(v) for v in row))
        return
    from rich.table import Table

    table = Table(title=title, show_edge=False, header_style="bold")
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console().print(table)


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
