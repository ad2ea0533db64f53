"""`python -m benchmarks [--quick] [--json PATH] [--only NAME]`: every scenario, one table.

The runner imports every `benchmarks/bench_*.py` module that exposes `run(quick: bool)`, an
iterable of rows (scenario, size, seconds, throughput, unit, limit_name, ratio, peak_rss_mb), prints
one table and writes all rows (with extra keys) to a JSON file, rewritten after each module. A
module that fails is reported as a row with its error after the rows it gave before failing, and
the others still run; Ctrl-C stops the run but still prints and writes the rows so far. Exit
status: 0, 1 if a module failed or a row is malformed (see common.row_problems), 2 for bad
arguments, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import math
import os
import platform
import sqlite3
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from .common import RESULTS, row_problems

HERE = Path(__file__).resolve().parent


def discover() -> list[str]:
    """Names of the scenario modules, in a stable order (storage first, remote and TUI last)."""
    names = sorted(p.stem for p in HERE.glob("bench_*.py"))
    order = ["bench_storage", "bench_trajectory", "bench_versions", "bench_startup"]
    return sorted(names, key=lambda n: (order.index(n) if n in order else len(order), n))


def default_json(quick: bool, only: list[str]) -> Path:
    """Where the rows go without --json: a partial (--only) run never replaces a whole run's file."""
    return RESULTS / f"latest{'-quick' if quick else ''}{'-only' if only else ''}.json"


def _finite(value: Any) -> Any:
    """The value with NaN and infinities (not JSON) as None, through lists and dicts."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_json(path: Path, doc: dict[str, Any]) -> None:
    """Strict JSON (non-finite numbers as null), written whole then renamed into place."""
    text = json.dumps(_finite(doc), indent=1, default=str, allow_nan=False) + "\n"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def environment() -> dict[str, Any]:
    import numpy

    import mvcdb

    return {
        "when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "numpy": numpy.__version__,
        "mvcdb": mvcdb.__version__,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def _fmt_seconds(s: float | None) -> str:
    if s is None or not isinstance(s, (int, float)) or math.isnan(s):
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.1f} µs"
    if s < 1:
        return f"{s * 1e3:.1f} ms"
    return f"{s:.2f} s"


def _fmt_number(x: float | None) -> str:
    if x is None or not isinstance(x, (int, float)):
        return "-"
    if math.isinf(x):
        return "inf"
    if abs(x) >= 1e6:
        return f"{x / 1e6:.2f} M"
    if abs(x) >= 1e4:
        return f"{x / 1e3:.0f} k"
    if abs(x) >= 100:
        return f"{x:.0f}"
    return f"{x:.3g}"


def print_table(rows: list[dict[str, Any]]) -> None:
    headers = [
        "scenario",
        "size",
        "time",
        "cpu",
        "throughput",
        "limit",
        "ratio",
        "target",
        "ok",
        "peak RSS",
        "heap+",
    ]
    lines = []
    for r in rows:
        met = r.get("met")
        lines.append(
            [
                str(r.get("scenario", "")),
                str(r.get("size", "")),
                _fmt_seconds(r.get("seconds")),
                _fmt_seconds(r.get("cpu_seconds")),
                f"{_fmt_number(r.get('throughput'))} {r.get('unit', '')}".strip(),
                str(r.get("limit_name") or ""),
                "-" if r.get("ratio") is None else f"{r['ratio']:.2f}",
                str(r.get("target") or r.get("note") or r.get("error") or ""),
                "" if met is None else ("yes" if met else "NO"),
                "-" if r.get("peak_rss_mb") is None else f"{r['peak_rss_mb']:.0f} MB",
                "-" if r.get("anon_rise_mb") is None else f"{r['anon_rise_mb']:.0f} MB",
            ]
        )
    widths = [
        max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(headers)
    ]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for line in lines:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)))
    notes = [(r["scenario"], r["size"], r["note"]) for r in rows if r.get("note") and r.get("target")]
    if notes:
        print()
        for scenario, size, note in notes:
            print(f"  {scenario} [{size}]: {note}")


def main(argv: list[str] | None = None) -> int:
    doc_first_line = (__doc__ or "python -m benchmarks").splitlines()[0]
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=doc_first_line)
    parser.add_argument(
        "--quick", action="store_true", help="smaller models and version counts (about 100 s on 2 cores)"
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="where to write the rows as JSON (default: benchmarks/results/latest[-quick][-only].json)",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run only the modules whose name contains NAME (repeatable): " + ", ".join(discover()),
    )
    args = parser.parse_args(argv)
    known = discover()
    unknown = [o for o in args.only if not any(o in m for m in known)]
    if unknown:
        parser.error(f"--only {', '.join(unknown)}: no such module (there are: {', '.join(known)})")
    path: Path = args.json or default_json(args.quick, args.only)
    if path.is_dir():
        parser.error(f"--json {path}: is a directory (give a file name)")
    path.parent.mkdir(parents=True, exist_ok=True)
    modules = [m for m in known if not args.only or any(o in m for o in args.only)]
    rows: list[dict[str, Any]] = []
    env = environment()
    started = time.perf_counter()
    interrupted = False

    def save() -> None:
        doc = {
            "quick": args.quick,
            "only": args.only,
            "environment": env,
            "load_average_after": os.getloadavg() if hasattr(os, "getloadavg") else None,
            "total_seconds": time.perf_counter() - started,
            "rows": rows,
        }
        write_json(path, doc)

    for name in modules:
        t0 = time.perf_counter()
        print(f"running {name} ...", file=sys.stderr, flush=True)
        try:
            module = importlib.import_module(f"benchmarks.{name}")
            for r in module.run(args.quick):  # rows one by one: a crash later keeps them
                r.setdefault("module", name)
                rows.append(r)
        except KeyboardInterrupt:
            interrupted = True
            rows.append({"scenario": name, "size": "", "module": name, "error": "interrupted (Ctrl-C)"})
        except Exception as exc:  # one broken scenario must not hide the others
            traceback.print_exc()
            rows.append(
                {"scenario": name, "size": "", "module": name, "error": f"{type(exc).__name__}: {exc}"}
            )
        print(f"  {name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
        save()  # a crash or Ctrl-C later still leaves this module's rows
        if interrupted:
            break
    print()
    print_table(rows)
    total = time.perf_counter() - started
    print(
        f"\n{len(rows)} rows in {total:.0f} s; "
        "ratio = our throughput / the limit's, same run (higher is better); cpu = CPU seconds of this\n"
        "process (all threads) and of the child processes it waited for; peak RSS includes file pages\n"
        "SQLite maps; heap+ = rise of anonymous RSS"
    )
    save()
    print(f"JSON: {path}")
    problems = [p for r in rows for p in row_problems(r)]
    for problem in problems:
        print(f"malformed row: {problem}", file=sys.stderr)
    if interrupted:
        return 130
    return 1 if problems or any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
