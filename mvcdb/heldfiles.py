"""Reading or syncing a database file without opening (and closing) a descriptor of our own.

Closing *any* descriptor of a file drops every POSIX lock the process holds on it, SQLite's
included: a connection's shared lock on the main file is how another process learns it is not
the last one open, so a stray open()/close() in a process that has the file open lets that other
process checkpoint and delete the WAL under it ("How To Corrupt An SQLite Database File", 2.2).
So where this process already holds the file open (Linux: found in /proc/self/fd), mvcdb reads
and syncs through that descriptor and never closes it; only a file the process does not hold
(no locks to lose) is opened and closed here.
"""

from __future__ import annotations

import os
from pathlib import Path

_FDS = Path("/proc/self/fd")


def descriptor_of(path: str | os.PathLike[str]) -> int | None:
    """A readable descriptor this process already holds on the file at path, or None (none
    open, or no /proc to find one in)."""
    try:
        target = os.stat(path)
        names = os.listdir(_FDS)
    except OSError:
        return None
    for name in names:
        try:
            found = os.stat(_FDS / name)
            if found.st_ino != target.st_ino or found.st_dev != target.st_dev:
                continue
            fd = int(name)
            if _readable(fd):
                return fd
        except (OSError, ValueError):
            continue  # closed meanwhile, or not a number
    return None


def _readable(fd: int) -> bool:
    import fcntl  # (POSIX only: this is reached only where /proc/self/fd exists)

    return fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE != os.O_WRONLY


def _same_file(fd: int, path: str | os.PathLike[str]) -> bool:
    """Whether fd still refers to the file at path (a borrowed number may be closed and reused)."""
    try:
        held, named = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (held.st_ino, held.st_dev) == (named.st_ino, named.st_dev)


def read_head(path: str | os.PathLike[str], size: int) -> bytes:
    """The first size bytes of the file (fewer if it is shorter); raises OSError if unreadable."""
    fd = descriptor_of(path)
    if fd is not None:
        try:
            head = os.pread(fd, size, 0)
            if _same_file(fd, path):
                return head
        except OSError:
            pass  # closed meanwhile: nothing of ours holds it now, so open it ourselves
    with open(path, "rb") as fh:
        return fh.read(size)


def sync_data(path: str | os.PathLike[str]) -> bool:
    """fdatasync the file through a descriptor this process holds; False when there is none."""
    fd = descriptor_of(path)
    if fd is None:
        return False
    try:
        getattr(os, "fdatasync", os.fsync)(fd)
    except OSError:
        return False  # closed meanwhile (syncing whatever reused the number does no harm)
    return True
