"""Worker processes for the multi-process reliability tests (run as a script, one role each).

    python reliability_workers.py writer DB WRITER COUNT     record COUNT versions, moving tags
    python reliability_workers.py killable DB FIRST          record forever (small, big, runs)
    python reliability_workers.py reader DB STOPFILE         list versions until STOPFILE exists
    python reliability_workers.py opener DB WRITER           open a (maybe missing) file, record one
    python reliability_workers.py merger DB OTHER            merge OTHER into DB

Every version's content is a pure function of its message ("<writer>:<index>"), so the parent
test can recompute what any version must restore to, whichever process wrote it.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import mvcdb

#: Chunk size the killable writer uses so a "big" version spans many chunks and transactions.
SMALL_CHUNKS = 64 * 1024


def content(message: str) -> dict[str, Any]:
    """params / trajectory / metrics / metadata of the version with this message."""
    writer, _, index = message.partition(":")
    seed = int(writer) * 1_000_003 + int(index)
    rng = np.random.default_rng(seed)
    big = writer == "0" and int(index) % 3 == 1  # only the killable writer (0) records big ones
    params = {
        "w": rng.standard_normal(400_000 if big else 2_000).astype(np.float32),
        "b": np.float64(rng.standard_normal()),
        "frozen": np.ones(5_000, dtype=np.float32),  # shared by every version: stored once
    }
    steps = 40
    return {
        "params": params,
        "trajectory": {"loss": rng.random(steps), "acc": rng.random(steps).astype(np.float32)},
        "metrics": {"val_loss": float(rng.random())},
        "metadata": {"writer": int(writer), "index": int(index)},
    }


def check_version(db: mvcdb.Database, version: mvcdb.Version) -> None:
    """Assert a version restores bit-identically to what its message says it holds."""
    want = content(version.message)
    got = db.restore(version.id)
    assert sorted(got) == sorted(want["params"]), (version.id, sorted(got))
    for name, arr in want["params"].items():
        expected = np.asarray(arr)
        assert got[name].dtype == expected.dtype and got[name].tobytes() == expected.tobytes(), name
    traj = db.trajectory(version.id)
    for name, arr in want["trajectory"].items():
        assert traj[name].tobytes() == arr.tobytes(), name
    assert version.metrics == want["metrics"] and version.metadata == want["metadata"]


def record(db: mvcdb.Database, message: str, *, as_run: bool = False) -> mvcdb.Version:
    c = content(message)
    if not as_run:
        return db.record(
            "stress",
            params=c["params"],
            metrics=c["metrics"],
            metadata=c["metadata"],
            trajectory=c["trajectory"],
            message=message,
        )
    with db.run("stress", metadata=c["metadata"], message=message) as run:
        for step in range(len(c["trajectory"]["loss"])):
            run.log(step, loss=c["trajectory"]["loss"][step], acc=c["trajectory"]["acc"][step])
        return run.commit(params=c["params"], metrics=c["metrics"])


def writer(path: str, who: int, count: int) -> None:
    assert who > 0, "writer 0 is the killable one"
    with mvcdb.open(path) as db:
        for i in range(count):
            v = record(db, f"{who}:{i}", as_run=i % 2 == 1)
            db.tag(v, f"w{who}")
            db.tag(v, "shared")
            print(v.id, flush=True)


def killable(path: str, first: int) -> None:
    """Record until killed; print each version's id once record() has returned."""
    db = mvcdb.open(path, chunk_size=SMALL_CHUNKS)
    i = first
    while True:
        v = record(db, f"0:{i}", as_run=i % 3 == 2)
        print(v.id, flush=True)
        i += 1


def reader(path: str, stopfile: str) -> None:
    """List versions and tags every 10 ms until stopfile exists; `<stopfile>.ready` says the first
    read is done (the writers start after it: they can finish before a slow start-up otherwise)."""
    worst = 0.0
    reads = 0
    with mvcdb.open(path, readonly=True) as db:
        while not Path(stopfile).exists():
            start = time.monotonic()
            db.versions(limit=20)
            db.tags()
            worst = max(worst, time.monotonic() - start)
            reads += 1
            if reads == 1:
                Path(stopfile + ".ready").touch()
            time.sleep(0.01)
    print(json.dumps({"reads": reads, "worst_seconds": worst}), flush=True)


def opener(path: str, who: int) -> None:
    with mvcdb.open(path) as db:
        v = record(db, f"{who}:0")
        db.tag(v, "shared")
        print(v.id, flush=True)


def merger(path: str, other: str) -> None:
    with mvcdb.open(path, chunk_size=SMALL_CHUNKS) as db:
        print(json.dumps(db.merge(other).to_dict()), flush=True)


if __name__ == "__main__":
    role, db_path, *rest = sys.argv[1:]
    if role == "writer":
        writer(db_path, int(rest[0]), int(rest[1]))
    elif role == "killable":
        killable(db_path, int(rest[0]))
    elif role == "reader":
        reader(db_path, rest[0])
    elif role == "opener":
        opener(db_path, int(rest[0]))
    elif role == "merger":
        merger(db_path, rest[0])
    else:
        raise SystemExit(f"unknown role {role}")
