"""Team remote over loopback: push and pull of a model family's history, and a no-op push.

The history: N versions of one model family — a frozen backbone shared by every version (stored
once) plus a head that every version fine-tunes — about 100 MB of unique bytes (full run: 100
versions; --quick: 20 versions, ~20 MB). A throwaway PostgreSQL cluster runs on loopback.

Limits, measured in the same run on the same server: `COPY ... FROM STDIN (FORMAT BINARY)` of the
very chunk payloads a push sends into a plain bytea table (push), and `COPY ... TO STDOUT` of them
back (pull). The no-op push (everything already there) is reported in seconds: it is the cost a
training job pays to learn that there is nothing to send.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

import mvcdb

from .common import MB, human, measure, remove_db, row, scratch


def _family(db: mvcdb.Database, versions: int, backbone_bytes: int, head_bytes: int) -> None:
    """Record the history: a shared backbone, a head moved a little by each version."""
    rng = np.random.default_rng(0)
    backbone = {
        f"backbone.{i}": (rng.standard_normal(backbone_bytes // 4 // 8, dtype=np.float32) * 0.02)
        for i in range(8)
    }
    head = rng.standard_normal(head_bytes // 4, dtype=np.float32) * 0.02
    prev = None
    for i in range(versions):
        head = head + rng.standard_normal(head.shape, dtype=np.float32) * np.float32(1e-3)
        prev = db.record(
            "family",
            params={**backbone, "head": head},
            metrics={"val_loss": 1.0 / (i + 1)},
            metadata={"epoch": i},
            parent=prev,
        )
    assert prev is not None, "no versions recorded"
    db.tag(prev, "latest")


@contextmanager
def _database(admin_url: str, base_url: Any) -> Iterator[str]:
    """A fresh database on the cluster, dropped afterwards."""
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base_url(name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _payloads(db: mvcdb.Database) -> list[tuple[bytes, bytes]]:
    return [(bytes(h), bytes(d)) for h, d in db.conn.execute("SELECT hash, data FROM chunks")]


def _copy_in(url: str, payloads: list[tuple[bytes, bytes]]) -> None:
    import psycopg

    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS raw (hash bytea PRIMARY KEY, data bytea NOT NULL)")
        conn.execute("ALTER TABLE raw ALTER COLUMN data SET STORAGE EXTERNAL")
        conn.execute("TRUNCATE raw")
        with conn.cursor() as cur, cur.copy("COPY raw (hash, data) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["bytea", "bytea"])
            for h, d in payloads:
                copy.write_row((h, d))


def _copy_out(url: str) -> int:
    import psycopg

    total = 0
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy("COPY raw (hash, data) TO STDOUT (FORMAT BINARY)") as copy:
            for block in copy:
                total += len(block)
    return total


def run(quick: bool) -> Iterator[dict[str, Any]]:
    """Push, no-op push and pull of the history, against raw COPY in and out."""
    from mvcdb.remote.localpg import start_cluster

    versions = 20 if quick else 100
    backbone = (19 if quick else 90) * MB
    head = 40 * 1024 if quick else 100 * 1024
    cluster = start_cluster()
    try:
        admin = cluster.url()
        with scratch("remote-") as tmp:
            src_path = tmp / "source.db"
            with mvcdb.open(src_path) as src:
                _family(src, versions, backbone, head)
                payloads = _payloads(src)
            sent = sum(len(d) for _, d in payloads)
            size = f"{versions} versions, {human(sent)} unique"
            with _database(admin, cluster.url) as url:
                copy_in = measure(lambda: _copy_in(url, payloads), 3)
                copy_out = measure(lambda: _copy_out(url), 3)
            payloads.clear()
            with contextlib.ExitStack() as remotes:
                urls: list[str] = []

                def fresh_remote() -> None:  # every push goes to an empty database
                    urls.append(remotes.enter_context(_database(admin, cluster.url)))

                with mvcdb.open(src_path, readonly=True) as src:
                    push = measure(lambda: src.push(urls[-1]), 3, setup=fresh_remote)
                    url = urls[-1]
                    noop = measure(lambda: src.push(url), 3)
                yield (row("remote push", size, push, sent / MB, "MB/s", "COPY FROM STDIN", copy_in.seconds))
                yield (
                    row(
                        "remote push (nothing to send)",
                        size,
                        noop,
                        versions,
                        "versions/s",
                        "",
                        None,
                        note="time to learn the remote has everything",
                    )
                )
                dest = tmp / "dest.db"
                pulling: list[mvcdb.Database] = []

                def fresh_dest() -> None:  # creating the empty file is not timed
                    remove_db(dest)
                    pulling.append(mvcdb.open(dest))

                pull = measure(
                    lambda: pulling[-1].pull(url), 3, setup=fresh_dest, teardown=lambda: pulling.pop().close()
                )
                yield (row("remote pull", size, pull, sent / MB, "MB/s", "COPY TO STDOUT", copy_out.seconds))
                lazy = tmp / "lazy.db"
                from mvcdb.remote.transfer import clone

                clone_t = measure(lambda: clone(url, lazy, lazy=True), 3, setup=lambda: remove_db(lazy))
                yield (
                    row(
                        "remote clone --lazy",
                        size,
                        clone_t,
                        versions,
                        "versions/s",
                        "",
                        None,
                        file_mb=lazy.stat().st_size / MB,
                        note=f"lazy file {lazy.stat().st_size / MB:.1f} MB",
                    )
                )
    finally:
        cluster.stop()
