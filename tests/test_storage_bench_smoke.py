"""The benchmark runner works end to end on one quick scenario (no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.mark.slow
def test_quick_startup_scenario_writes_rows(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--only", "startup", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    rows = doc["rows"]
    assert rows and all("error" not in r for r in rows), rows
    for r in rows:
        for key in (
            "scenario",
            "size",
            "seconds",
            "throughput",
            "unit",
            "limit_name",
            "ratio",
            "peak_rss_mb",
        ):
            assert key in r
    assert "mvcdb --help start-up" in proc.stdout
    assert "TUI first screen from a fresh process" in proc.stdout
    from benchmarks.common import row_problems

    assert [p for r in rows for p in row_problems(r)] == []


def test_runner_discovers_every_scenario_module() -> None:
    from benchmarks.__main__ import discover

    names = discover()
    assert names[:4] == ["bench_storage", "bench_trajectory", "bench_versions", "bench_startup"]
    for name in names:
        assert (ROOT / "benchmarks" / f"{name}.py").exists()
