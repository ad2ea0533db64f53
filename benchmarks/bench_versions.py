"""Many versions: recording small ones, listing/filtering, ancestors, concurrent writers.

Limits: plain sqlite3 doing the same rows (one transaction a version), the same filter as one SQL
query, the ancestors as one recursive CTE, and one writer alone (for eight concurrent writers).
The 10,000- and 100,000-version files are built by direct inserts of real manifests (valid mvcdb
files) and cached under benchmarks/results/cache/.
"""

from __future__ import annotations

import contextlib
import json
import random
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

import mvcdb
from mvcdb.manifest import encode as encode_manifest
from mvcdb.manifest import version_id

from .common import CACHE, measure, remove_db, row, scratch

#: Bump when the cached files' content changes.
CACHE_FORMAT = 5


def build_versions_db(n: int, shape: str, cache: Path = CACHE) -> Path:
    """A file of n versions whose lineage is a chain or a random tree (cached; built in seconds)."""
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"versions-{shape}-{n}-v{CACHE_FORMAT}.db"
    if path.exists():
        return path
    tmp = path.with_suffix(".tmp")
    remove_db(tmp)
    rng = random.Random(n)
    db = mvcdb.open(tmp)
    conn = db.conn
    ids: list[str] = []
    t0 = 1_700_000_000
    conn.execute("BEGIN IMMEDIATE")
    for i in range(n):
        if shape == "chain":
            parents = [i] if i else []  # vids are 1-based: vid i is version i-1
        else:
            parents = [rng.randrange(i) + 1] if i else []
        model = f"model{i % 5}"
        metrics = {"val_loss": rng.random(), "acc": rng.random()}
        meta = json.dumps(
            {"lr": 10 ** -rng.randint(2, 5), "train_set": f"data/part{i % 10}.csv", "epoch": i % 50},
            sort_keys=True,
            separators=(",", ":"),
        )
        created = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t0 + i)) + ".000000Z"
        manifest = encode_manifest(
            model=model,
            parents=[ids[p - 1] for p in parents],
            message=f"version {i}",
            author="bench",
            created_at=created,
            metadata=meta,
            metrics=metrics,
            tensors=[],
        )
        vid_hex = version_id(manifest)
        ids.append(vid_hex)
        conn.execute(
            "INSERT INTO versions (vid, id, model, message, author, created_at, metadata, params_bytes,"
            " manifest) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?)",
            (i + 1, vid_hex, model, f"version {i}", "bench", created, meta, manifest),
        )
        conn.executemany(
            "INSERT INTO lineage (child, parent, position) VALUES (?, ?, ?)",
            [(i + 1, p, k) for k, p in enumerate(parents)],
        )
        conn.executemany("INSERT INTO metrics VALUES (?, ?, ?)", [(i + 1, k, v) for k, v in metrics.items()])
    conn.execute("COMMIT")
    db.close()
    tmp.rename(path)
    return path


def _small_params(i: int) -> dict[str, Any]:
    return {"m": np.float64(0.5 + i * 1e-6), "b": np.float64(-0.1), "w": np.full(10, i, dtype=np.float32)}


def _small_metrics(i: int) -> dict[str, float]:
    return {"val_loss": 1.0 / (i + 1), "acc": 0.5, "mse": 0.1}


def _small_metadata(i: int) -> dict[str, Any]:
    return {"lr": 0.01, "epoch": i, "train_set": "train.csv"}


def _record_small(path: Path, n: int, batch: bool = False) -> None:
    with mvcdb.open(path) as db, db.batch() if batch else contextlib.nullcontext():
        parent = None
        for i in range(n):
            parent = db.record(
                "small",
                _small_params(i),
                metrics=_small_metrics(i),
                metadata=_small_metadata(i),
                parent=parent,
            )


def _plain_small(path: Path, n: int, batch: bool = False) -> None:
    """The same rows in plain sqlite3 (a version row with its metadata, its three metrics, its
    three tensors' bytes, its parent link), one transaction per version (what atomic versions
    need) or all in one transaction (what db.batch() does)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("CREATE TABLE v (id INTEGER PRIMARY KEY, model TEXT, created TEXT, metadata TEXT)")
    conn.execute("CREATE TABLE m (vid INTEGER, name TEXT, value REAL, PRIMARY KEY (vid, name))")
    conn.execute("CREATE TABLE t (vid INTEGER, name TEXT, data BLOB, PRIMARY KEY (vid, name))")
    conn.execute("CREATE TABLE l (child INTEGER, parent INTEGER, PRIMARY KEY (child, parent))")
    if batch:
        conn.execute("BEGIN IMMEDIATE")
    for i in range(n):
        if not batch:
            conn.execute("BEGIN IMMEDIATE")
        cur = conn.execute(
            "INSERT INTO v (model, created, metadata) VALUES (?, ?, ?)",
            ("small", time.time(), json.dumps(_small_metadata(i))),
        )
        vid = int(cur.lastrowid or 0)
        conn.executemany(
            "INSERT INTO m VALUES (?, ?, ?)", [(vid, k, v) for k, v in _small_metrics(i).items()]
        )
        conn.executemany(
            "INSERT INTO t VALUES (?, ?, ?)",
            [(vid, k, np.asarray(a).tobytes()) for k, a in _small_params(i).items()],
        )
        if i:
            conn.execute("INSERT INTO l VALUES (?, ?)", (vid, vid - 1))
        if not batch:
            conn.execute("COMMIT")
    if batch:
        conn.execute("COMMIT")
    conn.close()


#: The size the issue's small-versions target (>= 2,000 versions/s) is set for.
TARGET_VERSIONS = 10_000


def _small_versions(work: Path, n: int, repeats: int) -> list[dict[str, Any]]:
    return [_small_versions_row(work, n, repeats, batch) for batch in (False, True)]


def _small_versions_row(work: Path, n: int, repeats: int, batch: bool) -> dict[str, Any]:
    path = work / "small.db"
    t = measure(lambda: _record_small(path, n, batch), repeats, setup=lambda: remove_db(path))
    plain = work / "plain.sqlite"
    t_plain = measure(lambda: _plain_small(plain, n, batch), repeats, setup=lambda: remove_db(plain))
    return row(
        f"record small versions{' in db.batch()' if batch else ' (metrics+metadata+tiny params)'}",
        f"{n:,} versions",
        t,
        n,
        "versions/s",
        "sqlite3, same rows, 1 txn" if batch else "sqlite3, same rows, 1 txn/version",
        t_plain.seconds,
        # the issue sets the target at 10,000 versions; fewer pay open() and close() (its
        # checkpoint: 0.1-0.2 s) over fewer versions, as the trajectory's smaller size does
        target=">= 2,000 versions/s" if n >= TARGET_VERSIONS else "(target: 10,000 versions)",
        met=n / t.seconds >= 2000 if n >= TARGET_VERSIONS else None,
        note="one transaction for all" if batch else "one transaction (commit) per version",
    )


def _listing(path: Path, n: int, repeats: int) -> list[dict[str, Any]]:
    out = []
    with mvcdb.open(path, readonly=True) as db:
        db.versions(limit=1)

        def filtered() -> None:
            db.versions(where="metrics.val_loss < 0.2", order_by="metrics.val_loss", limit=100)

        def everything() -> None:
            db.versions()

        def everything_built() -> None:
            for _ in db.versions():  # every Version object built
                pass

        t_filter = measure(filtered, repeats)
        t_all = measure(everything, 3)
        t_built = measure(everything_built, 3)
        sql = (
            "SELECT v.vid FROM versions v JOIN metrics m ON m.vid = v.vid AND m.name = 'val_loss'"
            " WHERE m.value < 0.2 ORDER BY m.value LIMIT 100"
        )
        t_sql = measure(lambda: db.conn.execute(sql).fetchall(), repeats)
        t_sql_all = measure(
            lambda: db.conn.execute(
                "SELECT vid, id, model, message, author, created_at, metadata FROM versions"
                " ORDER BY created_at DESC"
            ).fetchall(),
            3,
        )
    size = f"{n:,} versions"
    out.append(
        row(
            "versions(): filter on a metric + sort, top 100",
            size,
            t_filter,
            n,
            "versions scanned/s",
            "one SQL query (vids only)",
            t_sql.seconds,
            target="<= 50 ms",
            met=t_filter.seconds <= 0.05,
        )
    )
    out.append(
        row(
            "versions(): list all (a lazy VersionList)",
            size,
            t_all,
            n,
            "versions/s",
            "one SQL query (rows only)",
            t_sql_all.seconds,
            note="returns once the order is known; Version objects are built in batches on use",
        )
    )
    out.append(
        row(
            "versions(): list all and build every Version",
            size,
            t_built,
            n,
            "versions/s",
            "one SQL query (rows only)",
            t_sql_all.seconds,
        )
    )
    return out


def _cte(conn: sqlite3.Connection, vid: int) -> list[int]:
    return [
        r[0]
        for r in conn.execute(
            "WITH RECURSIVE up(vid) AS (SELECT parent FROM lineage WHERE child = ?"
            " UNION SELECT l.parent FROM lineage l JOIN up ON l.child = up.vid) SELECT vid FROM up",
            (vid,),
        )
    ]


def _ancestors(chain: Path, tree: Path, n: int, repeats: int) -> list[dict[str, Any]]:
    out = []
    with mvcdb.open(chain, readonly=True) as db:
        tip = db.conn.execute("SELECT id FROM versions WHERE vid = ?", (n,)).fetchone()[0]
        got = db.ancestors(tip)
        assert len(got) == n - 1
        t = measure(lambda: db.ancestors(tip), repeats)
        t_cte = measure(lambda: _cte(db.conn, n), repeats)
        t_built = measure(lambda: list(db.ancestors(tip)), 3)
    out.append(
        row(
            "ancestors of a chain's tip (all of them)",
            f"{n:,}-long chain",
            t,
            n - 1,
            "versions/s",
            "recursive CTE (vids only)",
            t_cte.seconds,
            target="<= 200 ms",
            met=t.seconds <= 0.2,
            note="a lazy VersionList: the walk, Version objects built on use (next row)",
        )
    )
    out.append(
        row(
            "ancestors of a chain's tip, every Version built",
            f"{n:,}-long chain",
            t_built,
            n - 1,
            "versions/s",
            "recursive CTE (vids only)",
            t_cte.seconds,
        )
    )
    with mvcdb.open(tree, readonly=True) as db:
        rng = random.Random(7)
        leaves = [rng.randrange(n // 2, n) + 1 for _ in range(50)]
        ids = [db.conn.execute("SELECT id FROM versions WHERE vid = ?", (v,)).fetchone()[0] for v in leaves]
        depth = sum(len(_cte(db.conn, v)) for v in leaves) / len(leaves)

        def ours() -> None:
            for ref in ids:
                db.ancestors(ref)

        def raw() -> None:
            for v in leaves:
                _cte(db.conn, v)

        t = measure(ours, repeats)
        t_cte = measure(raw, repeats)
    per = t.seconds / len(ids)
    out.append(
        row(
            "ancestors in a random tree (per query)",
            f"{n:,} nodes",
            per,
            1,
            "queries/s",
            "recursive CTE (vids only)",
            t_cte.seconds / len(ids),
            target="<= 1 ms",
            met=per <= 1e-3,
            note=f"mean depth {depth:.1f}",
            peak_rss_mb=t.peak_mb,
            anon_rise_mb=t.anon_rise_mb,
            cpu_seconds=t.cpu_seconds / len(ids),
            runs=[r / len(ids) for r in t.runs],
        )
    )
    return out


WRITER = """
import sys, numpy as np, mvcdb
path, n, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with mvcdb.open(path) as db:
    for i in range(n):
        db.record("w" + tag, {"w": np.full(10, i, dtype=np.float32)}, metrics={"loss": i / n},
                  metadata={"writer": tag, "i": i})
"""


def _writers(path: Path, writers: int, each: int) -> None:
    """Start the writer processes and wait for them all (the timed part)."""
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(each), str(k)]) for k in range(writers)
    ]
    try:
        for p in procs:
            if p.wait() != 0:
                raise RuntimeError("a concurrent writer failed")
    finally:  # an interrupted or failed run leaves no writer behind
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def _fresh_file(path: Path) -> None:
    remove_db(path)
    mvcdb.open(path).close()


def _check_count(path: Path, expected: int) -> None:
    with mvcdb.open(path, readonly=True) as db:
        count = db.conn.execute("SELECT count(*) FROM versions").fetchone()[0]
    if count != expected:
        raise RuntimeError(f"lost versions: {count} of {expected}")


def _concurrency(work: Path, each: int, repeats: int) -> dict[str, Any]:
    """Eight writer processes against one, on the same number of versions; creating the file and
    counting its versions afterwards are not timed."""
    path = work / "conc.db"
    t8 = measure(
        lambda: _writers(path, 8, each),
        repeats,
        setup=lambda: _fresh_file(path),
        teardown=lambda: _check_count(path, 8 * each),
    )
    t1 = measure(
        lambda: _writers(path, 1, 8 * each),
        repeats,
        setup=lambda: _fresh_file(path),
        teardown=lambda: _check_count(path, 8 * each),
    )
    return row(
        "8 concurrent writer processes, total",
        f"8 x {each} versions",
        t8,
        8 * each,
        "versions/s",
        "1 writer, same number of versions",
        t1.seconds,
        note="includes 8 interpreter start-ups (1 for the limit); every version is checked to have landed",
        peak_rss_mb=None,  # the writers' memory is not measured (cpu: theirs, they are waited for)
        anon_rise_mb=None,
    )


def run(quick: bool) -> Iterator[dict[str, Any]]:
    """Small versions, listing/filtering, ancestors and concurrency at a small and a large size."""
    repeats = 3 if quick else 5
    with scratch("versions-") as work:
        for n in (1_000, 2_000) if quick else (1_000, 10_000):
            yield from _small_versions(work, n, 3 if n > 2000 else repeats)
        for n in (1_000, 10_000) if quick else (10_000, 100_000):
            tree = build_versions_db(n, "tree")
            chain = build_versions_db(n, "chain")
            yield from _listing(tree, n, repeats)
            yield from _ancestors(chain, tree, n, repeats)
        for each in (20, 50) if quick else (50, 250):
            yield _concurrency(work, each, 3)
