"""Many writers, readers beside them, writers killed mid-write: real processes on one file."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from reliability_workers import check_version, record

import mvcdb
from mvcdb.connection import PAGE_SIZE

WORKERS = Path(__file__).with_name("reliability_workers.py")


def spawn(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKERS), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def finish(proc: subprocess.Popen[str], timeout: float = 240) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    assert "locked" not in err.lower() and "busy" not in err.lower(), err
    return out


def check_tag_chain(db: mvcdb.Database, name: str) -> list[mvcdb.TagMove]:
    """A tag's history is one unbroken chain: each move starts where the previous one ended."""
    moves = db.tag_history(name)
    rows = db.conn.execute("SELECT from_id, to_id FROM tag_history WHERE name = ? ORDER BY seq", (name,))
    previous = None
    for from_id, to_id in rows:
        assert from_id == previous
        previous = to_id
    assert previous == db.tags().get(name)
    return moves


def many_writers(path: Path, writers: int, each: int, env: dict[str, str] | None = None) -> None:
    mvcdb.open(path).close()
    stop = path.with_suffix(".stop")
    reader = spawn("reader", str(path), str(stop), env=env)
    ready = Path(f"{stop}.ready")
    deadline = time.monotonic() + 60
    while not ready.exists() and reader.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ready.exists(), reader.communicate()
    procs = [spawn("writer", str(path), str(w), str(each), env=env) for w in range(1, writers + 1)]
    ids = [finish(p).split() for p in procs]
    stop.touch()
    read_stats = json.loads(finish(reader, timeout=60))
    assert read_stats["reads"] > 1  # it went on reading while the writers ran, never shut out
    with mvcdb.open(path) as db:
        assert db.conn.execute("SELECT count(*) FROM versions").fetchone()[0] == writers * each
        for w, written in enumerate(ids, start=1):
            assert len(written) == each
            assert [db.get(i).message for i in written] == [f"{w}:{i}" for i in range(each)]
            assert len(check_tag_chain(db, f"w{w}")) == each
            assert db.tags()[f"w{w}"] == written[-1]
        assert len(check_tag_chain(db, "shared")) == writers * each
        sample = db.versions() if writers * each <= 60 else random.Random(1).sample(db.versions(), 60)
        for v in sample:
            check_version(db, v)
        assert db.verify().ok


def test_several_writers_and_a_reader_share_one_file(tmp_path: Path) -> None:
    many_writers(tmp_path / "shared.db", writers=2, each=6)


@pytest.mark.slow
def test_rollback_journal_mode_for_network_shares(tmp_path: Path) -> None:
    """MVCDB_JOURNAL=delete: no -wal file, and concurrent writers still lose nothing."""
    path = tmp_path / "nfs.db"
    env = {"MVCDB_JOURNAL": "delete"}
    os.environ["MVCDB_JOURNAL"] = "delete"
    try:
        many_writers(path, writers=2, each=6, env=env)
        with mvcdb.open(path) as db:
            assert db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    finally:
        del os.environ["MVCDB_JOURNAL"]
    assert not Path(f"{path}-wal").exists()
    with mvcdb.open(path) as db:  # back to WAL by default, nothing lost
        assert db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.verify().ok and len(db.versions()) == 12


@pytest.mark.slow
def test_eight_writers_record_800_versions_into_one_file(tmp_path: Path) -> None:
    many_writers(tmp_path / "stress.db", writers=8, each=100)


@pytest.mark.slow
def test_many_processes_create_the_same_new_file_at_once(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    procs = [spawn("opener", str(path), str(w)) for w in range(1, 7)]
    ids = [finish(p).strip() for p in procs]
    with mvcdb.open(path) as db:
        assert sorted(v.id for v in db.versions()) == sorted(ids)
        assert len(check_tag_chain(db, "shared")) == 6
        assert db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.conn.execute("PRAGMA page_size").fetchone()[0] == PAGE_SIZE
        assert db.verify().ok


# -- killed writers -----------------------------------------------------------------------------


def kill_at_random(path: Path, rounds: int, seed: int) -> int:
    """SIGKILL a recording process at random moments, `rounds` times; check the file each time."""
    rng = random.Random(seed)
    committed: list[str] = []
    first = 0
    for _ in range(rounds):
        proc = spawn("killable", str(path), str(first))
        time.sleep(rng.uniform(0.4, 2.0))  # import time included: kills land anywhere
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        printed = out.split()
        committed += printed
        with mvcdb.open(path) as db:
            report = db.verify()
            assert report.ok, str(report)
            present = {v.id: v for v in db.versions()}
            assert set(committed) <= set(present)  # nothing acknowledged was lost
            for v in present.values():
                if v.id in printed or v.id not in committed:  # new this round (or interrupted)
                    check_version(db, v)
            first = 1 + max((int(v.message.split(":")[1]) for v in present.values()), default=-1)
            committed = list(present)
    return len(committed)


@pytest.mark.slow
def test_killed_writer_leaves_a_consistent_file(tmp_path: Path) -> None:
    kill_at_random(tmp_path / "killed.db", rounds=2, seed=7)


@pytest.mark.slow
def test_killed_writers_many_times(tmp_path: Path) -> None:
    assert kill_at_random(tmp_path / "killed.db", rounds=15, seed=11) > 0


# -- gc beside a writer --------------------------------------------------------------------------


def test_gc_during_a_record_never_leaves_a_broken_version(tmp_path: Path) -> None:
    """A record whose freshly written chunks a concurrent gc removed fails clearly, or succeeds;
    either way the file verifies and every version present restores exactly."""
    path = tmp_path / "gc.db"
    with mvcdb.open(path) as db:
        v = db.record("m", {"w": np.arange(10_000.0)})
        db.rm(v)
    proc = spawn("writer", str(path), "1", "15")
    errors = 0
    with mvcdb.open(path) as db:
        while proc.poll() is None:
            db.gc()
        out, err = proc.communicate()
        errors = proc.returncode
        if proc.returncode != 0:
            assert "vanished" in err and "record again" in err, err
        for version in db.versions():
            check_version(db, version)
        assert db.verify().ok
    assert errors in (0, 1)


@pytest.mark.slow
def test_killed_merge_leaves_a_consistent_file_and_a_rerun_finishes(tmp_path: Path) -> None:
    source, target = tmp_path / "source.db", tmp_path / "target.db"
    with mvcdb.open(source, chunk_size=64 * 1024) as db:
        for i in range(12):
            record(db, f"0:{i}", as_run=i % 3 == 2)
    mvcdb.open(target).close()
    rng = random.Random(3)
    for _ in range(4):
        proc = spawn("merger", str(target), str(source))
        time.sleep(rng.uniform(0.3, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        with mvcdb.open(target) as db:
            assert db.verify().ok
            for v in db.versions():  # all or nothing: a version present is complete
                check_version(db, v)
    with mvcdb.open(target) as db:
        db.merge(source)
        assert len(db.versions()) == 12 and db.verify().ok
        assert not db.merge(source).changed
