"""Two real processes recording into one file at once lose nothing."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

import mvcdb

WRITER = textwrap.dedent(
    """
    import sys, numpy as np, mvcdb
    path, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with mvcdb.open(path) as db:
        prev = None
        for i in range(n):
            w = np.full(20_000, i, dtype=np.float32) + (0.5 if who == "b" else 0.0)
            with db.run("m-" + who, parent=prev) as run:
                for step in range(50):
                    run.log(step, loss=float(step))
                prev = run.commit(params={"w": w}, metrics={"i": i})
            db.tag(prev, "latest-" + who)
    print("done", who)
    """
)


def test_two_processes_recording_at_once_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    mvcdb.open(path).close()
    n = 40
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), who, str(n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for who in ("a", "b")
    ]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert "locked" not in err
    with mvcdb.open(path, readonly=True) as db:
        for who, offset in (("a", 0.0), ("b", 0.5)):
            versions = db.versions(model=f"m-{who}")
            assert len(versions) == n
            for v in versions:
                i = int(v.metrics["i"])
                np.testing.assert_array_equal(db.restore(v.id)["w"], np.full(20_000, i + offset, np.float32))
                assert len(db.trajectory(v.id)["step"]) == 50
            assert len(db.tag_history(f"latest-{who}")) == n
            assert db.get(f"latest-{who}").metrics["i"] == n - 1
            assert len(db.ancestors(f"latest-{who}")) == n - 1 if hasattr(db, "ancestors") else True
