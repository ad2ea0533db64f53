"""Diffing large tensors streams them: memory stays at a few chunks, not the tensors' size."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import mvcdb
from mvcdb import diff as diff_module

RECORD = textwrap.dedent(
    """
    import sys
    import numpy as np
    import mvcdb
    n = int(sys.argv[2])
    a = np.random.default_rng(0).standard_normal(n, dtype=np.float32)
    with mvcdb.open(sys.argv[1]) as db:
        va = db.record("big", {"w": a})
        a[::2] += np.float32(0.001)
        db.record("big", {"w": a}, parent=va)
    """
)

# Peak RSS of the diff alone. SQLite's own page cache (a fixed, configurable size) and the mmap'd
# file pages (the OS page cache, reclaimable) are turned down so what remains is mvcdb's memory.
MEASURE = textwrap.dedent(
    """
    import json, resource, sys
    import mvcdb
    db = mvcdb.open(sys.argv[1], readonly=True)
    db.conn.execute("PRAGMA mmap_size = 0")
    db.conn.execute("PRAGMA cache_size = -2000")
    db.tensors("big@latest")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    d = db.diff("big@latest~1", "big@latest")
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    (p,) = d.params
    print(json.dumps({"before_kib": before, "after_kib": after, "status": p.status,
                      "frac_changed": p.frac_changed, "max_abs": p.max_abs}))
    """
)


@pytest.mark.slow
def test_diff_of_two_200mb_tensors_stays_small(tmp_path: Path) -> None:
    path = tmp_path / "big.db"
    n = 50_000_000  # 200 MB of float32 on each side
    subprocess.run([sys.executable, "-c", RECORD, str(path), str(n)], check=True, timeout=600)
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(path)], check=True, capture_output=True, text=True, timeout=600
    )
    result = json.loads(done.stdout)
    assert result["status"] == "changed"
    assert result["frac_changed"] == pytest.approx(0.5)
    assert result["max_abs"] == pytest.approx(0.001, rel=0.5)
    grown_mib = (result["after_kib"] - result["before_kib"]) / 1024
    # Loading both sides would need 400 MB (800 MB more as float64); streaming needs a few chunks.
    assert grown_mib < 100, f"the diff grew the process by {grown_mib:.0f} MiB"


def test_changed_tensors_are_compared_in_bounded_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Quick check of the same property with tracemalloc (numpy reports its allocations to it)."""
    monkeypatch.setattr(diff_module, "STEP_ELEMENTS", 1024)
    rng = np.random.default_rng(3)
    x = rng.standard_normal(1 << 18).astype(np.float32)  # 1 MiB a side, 64 chunks of 16 KiB
    with mvcdb.open(tmp_path / "m.db", chunk_size=16384) as db:
        a = db.record("m", {"x": x})
        b = db.record("m", {"x": x * np.float32(1.01)}, parent=a)
        del x
        tracemalloc.start()
        try:
            (p,) = db.diff(a, b).params
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert p.status == "changed" and p.rel_change == pytest.approx(0.01, rel=1e-3)
    assert peak < 256 * 1024, f"diff peaked at {peak} bytes for two 1 MiB tensors"
