"""Team remotes under stress, with real processes: eight concurrent pushers of overlapping
histories, and pushes/pulls killed with SIGKILL midway then resumed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import remote_helpers
from remote_helpers import without_password

import mvcdb
from mvcdb.remote import urls

CHUNK = 64 * 1024

PUSHER = textwrap.dedent(
    """
    import os, sys, time
    go = sys.argv[1]
    while not os.path.exists(go):
        time.sleep(0.005)
    from mvcdb.cli.app import main
    sys.exit(main(sys.argv[2:]))
    """
)

# the PostgreSQL fixtures (a session server, a fresh database per test, PGPASSWORD)
pg_server = remote_helpers.pg_server
pg_url = remote_helpers.pg_url
pg_env = remote_helpers.pg_env


def _remote_rows(url: str, query: str) -> list[tuple[object, ...]]:
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()


def _incomplete_remote_versions(url: str) -> int:
    """Visible remote versions whose chunks or tensors are not all there (must always be 0)."""
    rows = _remote_rows(
        url,
        "SELECT count(*) FROM mvcdb.tensor_chunks tc LEFT JOIN mvcdb.chunks c ON c.hash = tc.hash"
        " WHERE c.hash IS NULL",
    )
    return int(rows[0][0])  # type: ignore[call-overload]


@pytest.mark.slow  # eight interpreters starting at once: ~10-25 s on two cores
def test_eight_concurrent_pushers_lose_nothing_and_duplicate_nothing(
    tmp_path: Path, pg_url: str, pg_env: dict[str, str]
) -> None:
    rng = np.random.default_rng(1)
    frozen = rng.standard_normal(200_000).astype(np.float32)  # shared by every job: stored once
    base_path = tmp_path / "base.db"
    with mvcdb.open(base_path, chunk_size=CHUNK) as db:
        urls.add(db.conn, "origin", without_password(pg_url))
        prev = None
        for _ in range(3):
            prev = db.record("net", params={"frozen": frozen, "head": rng.standard_normal(5000)}, parent=prev)
        db.tag(prev, "base")
    jobs: list[Path] = []
    for pair in range(4):  # two jobs per pair share one more version: overlapping histories
        pair_path = tmp_path / f"pair{pair}.db"
        shutil.copyfile(base_path, pair_path)
        with mvcdb.open(pair_path, chunk_size=CHUNK) as db:
            shared = db.record(
                "net", params={"frozen": frozen, "head": rng.standard_normal(5000)}, parent="base"
            )
        for k in range(2):
            job = tmp_path / f"job{2 * pair + k}.db"
            shutil.copyfile(pair_path, job)
            with mvcdb.open(job, chunk_size=CHUNK) as db:
                own = db.record(
                    "net",
                    params={"frozen": frozen, "head": rng.standard_normal(5000), "extra": rng.random(40_000)},
                    parent=shared,
                )
                db.tag(own, "latest")
                db.tag(own, f"job{2 * pair + k}")
            jobs.append(job)
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PUSHER, str(go), "--db", str(job), "push"],
            env=pg_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for job in jobs
    ]
    time.sleep(0.5)  # let every interpreter start and wait at the line
    go.touch()
    results = [p.communicate(timeout=120) + (p.returncode,) for p in procs]
    # 'latest' points at eight sibling versions: exactly one push creates it, the others are refused
    ok = [r for r in results if r[2] == 0]
    refused = [r for r in results if r[2] != 0]
    assert len(ok) == 1, results
    assert all("not a fast-forward" in r[1] and "latest" in r[1] for r in refused), results

    expected_versions: set[str] = set()
    expected_chunks: set[bytes] = set()
    for job in jobs:
        with mvcdb.open(job, readonly=True) as db:
            expected_versions |= {r[0] for r in db.conn.execute("SELECT id FROM versions")}
            expected_chunks |= {bytes(r[0]) for r in db.conn.execute("SELECT hash FROM chunks")}
    with mvcdb.open(jobs[0], readonly=True) as db:
        per_shared = db.conn.execute("SELECT count(*) FROM tensor_chunks").fetchone()[0]
    assert len(expected_versions) == 3 + 4 + 8
    remote_versions = {r[0] for r in _remote_rows(pg_url, "SELECT id FROM mvcdb.versions")}
    assert remote_versions == expected_versions
    remote_chunks = {bytes(r[0]) for r in _remote_rows(pg_url, "SELECT hash FROM mvcdb.chunks")}  # type: ignore[call-overload]
    assert remote_chunks == expected_chunks
    assert _incomplete_remote_versions(pg_url) == 0
    count = _remote_rows(
        pg_url, "SELECT count(*), count(DISTINCT (version_id, kind, name, seq)) FROM mvcdb.tensor_chunks"
    )
    assert count[0][0] == count[0][1] and count[0][0] > per_shared
    tags = dict(_remote_rows(pg_url, "SELECT name, version_id FROM mvcdb.tags"))  # type: ignore[arg-type]
    assert set(tags) == {"base", "latest"} | {f"job{i}" for i in range(8)}
    history = _remote_rows(pg_url, "SELECT name, from_id FROM mvcdb.tag_history ORDER BY seq")
    assert sorted(n for n, _ in history) == sorted(tags)  # every tag created exactly once
    # and a teammate pulls all of it back, bit for bit
    with mvcdb.open(tmp_path / "all.db") as everyone:
        assert everyone.pull(pg_url).versions == 15
        for job in jobs:
            with mvcdb.open(job, readonly=True) as db:
                tip = db.tags()[job.stem]
                got, want = everyone.restore(tip), db.restore(tip)
                assert all(got[k].tobytes() == want[k].tobytes() for k in want)


KILLED = textwrap.dedent(
    """
    import os, sys, time
    import mvcdb
    from mvcdb.remote import transfer
    verb, path, url, phase, marker = sys.argv[1:6]
    transfer.BATCH_CHUNKS = 3
    transfer.VERSION_BATCH = 2

    def progress(done, total, what):
        versions = int(what.split("/")[0])
        if (phase == "chunks" and done * 2 >= total > 0) or (phase == "versions" and versions >= 4):
            open(marker, "w").close()
            time.sleep(600)  # wait to be killed

    with mvcdb.open(path) as db:
        getattr(db, verb)(url, progress=progress)
    """
)


@pytest.mark.parametrize(
    ("verb", "phase"),
    [
        ("push", "versions"),
        ("pull", "chunks"),
        pytest.param("push", "chunks", marks=pytest.mark.slow),
        pytest.param("pull", "versions", marks=pytest.mark.slow),
    ],
)
def test_killed_transfer_leaves_both_sides_consistent_and_rerun_finishes(
    tmp_path: Path, pg_url: str, verb: str, phase: str
) -> None:
    rng = np.random.default_rng(2)
    source = tmp_path / "source.db"
    with mvcdb.open(source, chunk_size=CHUNK) as db:
        prev = None
        for i in range(10):
            params = {"w": rng.standard_normal(40_000).astype(np.float32), "i": np.int32(i)}
            prev = db.record("net", params=params, parent=prev)
        db.tag(prev, "production")
        ids = [v.id for v in db.versions(order_by="created_at")]
        if verb == "pull":
            db.push(pg_url)
    local = source if verb == "push" else tmp_path / "dest.db"
    mvcdb.open(local).close()
    marker = tmp_path / "marker"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED, verb, str(local), pg_url, phase, str(marker)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    # both sides are consistent: whatever is visible is complete
    expected_visible = 0 if phase == "chunks" else 4
    if verb == "push":
        assert _incomplete_remote_versions(pg_url) == 0
        assert len(_remote_rows(pg_url, "SELECT id FROM mvcdb.versions")) == expected_visible
        assert _remote_rows(pg_url, "SELECT count(*) FROM mvcdb.tags")[0][0] == 0
    with mvcdb.open(local) as db:
        visible = [v.id for v in db.versions()]
        if verb == "pull":
            assert len(visible) == expected_visible and db.tags() == {}
        for vid in visible:
            db.restore(vid)  # every visible version is whole
        report = getattr(db, verb)(pg_url)  # rerun finishes the job
        assert report.versions == 10 - expected_visible
        assert report.tags_moved == ["production"]
        assert getattr(db, verb)(pg_url).versions == 0
    with mvcdb.open(tmp_path / "check.db") as check, mvcdb.open(source, readonly=True) as src:
        check.pull(pg_url)
        assert sorted(v.id for v in check.versions()) == sorted(ids)
        for vid in ids:
            got, want = check.restore(vid), src.restore(vid)
            assert all(got[k].tobytes() == want[k].tobytes() for k in want)
