"""A process that has a database open never opens and closes a descriptor of its own on it: that
would drop SQLite's POSIX locks, and another process closing the file would then take itself for
the last one and delete the WAL from under the first (mvcdb/heldfiles.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from reliability_helpers import finish_small_wals

import mvcdb
from mvcdb import checkpointer, heldfiles

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/fd").is_dir() or not Path("/proc/locks").exists(),
    reason="finds held descriptors and locks in /proc (Linux)",
)


def _our_locks(path: Path) -> list[str]:
    """This process's POSIX locks on the file, as /proc/locks lists them (without each line's
    ordinal: it moves as other processes take and drop locks anywhere on the machine)."""
    inode = f":{path.stat().st_ino}"
    found = []
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "POSIX" in fields and str(os.getpid()) in fields and any(f.endswith(inode) for f in fields):
            found.append(" ".join(fields[1:]))
    return sorted(found)


def _open_and_close_elsewhere(path: Path) -> None:
    """Another process opens the file, reads it and closes it (the last to close folds the WAL)."""
    code = "import sys, mvcdb; d = mvcdb.open(sys.argv[1], readonly=True); len(d.versions()); d.close()"
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, timeout=60)


def test_opening_a_file_again_in_the_same_process_keeps_its_locks(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    wal = Path(f"{path}-wal")
    with mvcdb.open(path) as db:
        db.record("m", {"w": np.zeros(3)})
        held = _our_locks(path)
        assert held  # the open connection's shared lock on the main file
        with mvcdb.open(path, readonly=True) as again:  # reads the header before connecting
            assert len(again.versions()) == 1
        assert _our_locks(path) == held
        _open_and_close_elsewhere(path)
        assert wal.exists()  # the other process knew it was not the last one
        db.record("m", {"w": np.ones(3)})
    with mvcdb.open(path, readonly=True) as done:
        assert len(done.versions()) == 2


def test_the_checkpointer_syncs_without_dropping_locks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    finish_small_wals(monkeypatch)
    synced: list[bool] = []
    real = checkpointer.sync_data

    def spy(file: str) -> bool:
        synced.append(real(file))
        return synced[-1]

    monkeypatch.setattr(checkpointer, "sync_data", spy)
    path = tmp_path / "m.db"
    with mvcdb.open(path) as db:
        cp = db.conn.checkpointer
        assert cp is not None
        cp.interval = 0.0
        held = _our_locks(path)
        # Until a finishing pass has synced: when the catch-up passes keep up, within a few
        # hundred versions; when a fast writer outpaces them, once the WAL reaches LIMIT_FRAMES
        # (a fixed 300 versions failed in the second case). Bounded all the same.
        for i in range(20_000):
            db.record("m", {"w": np.full(8, i, dtype=np.float32)})
            if i >= 300 and synced:
                break
        cp.stop()  # waits for a running pass
        assert synced and all(synced)  # each went through a descriptor SQLite holds
        assert _our_locks(path) == held
        _open_and_close_elsewhere(path)
        assert Path(f"{path}-wal").exists()


def test_read_head_and_sync_data(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    with mvcdb.open(path) as db:
        db.record("m", {"w": np.zeros(3)})
        fd = heldfiles.descriptor_of(path)
        assert fd is not None and os.fstat(fd).st_ino == path.stat().st_ino
        head = heldfiles.read_head(path, 100)
        assert heldfiles.sync_data(path)
    assert head == path.read_bytes()[:100]
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"abc")
    assert heldfiles.descriptor_of(plain) is None
    assert heldfiles.read_head(plain, 100) == b"abc"  # nobody holds it: opened and closed
    assert not heldfiles.sync_data(plain)
    assert heldfiles.descriptor_of(tmp_path / "missing") is None
