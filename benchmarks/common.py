"""Shared pieces of the benchmark scenarios: timing, peak memory, raw limits, result rows.

Every scenario returns rows (dicts) with the keys the runner prints: scenario, size, seconds,
throughput, unit, limit_name, ratio, peak_rss_mb. `ratio` is always "our throughput / the raw
limit's throughput for the same work, measured in the same run": 1.0 means as fast as the limit,
higher is better. Extra keys (target, limit_seconds, notes, ...) go to the JSON file.
"""

from __future__ import annotations

import ctypes
import gc
import math
import os
import shutil
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

try:
    _LIBC: ctypes.CDLL | None = ctypes.CDLL("libc.so.6")
except OSError:  # not glibc
    _LIBC = None

RESULTS = Path(__file__).resolve().parent / "results"
CACHE = RESULTS / "cache"
MB = 1024 * 1024


# -- measuring ------------------------------------------------------------------------------------


def _vm(field: str) -> float:
    """A memory field of /proc/self/status in MiB (0 where /proc is unavailable)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def reset_peak() -> float:
    """Reset the process's peak RSS (Linux clear_refs) and return the current RSS in MiB.

    Freed heap memory is handed back to the OS first (malloc_trim), so a run that reuses it
    still shows up as a rise.
    """
    gc.collect()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass
    return _vm("VmRSS")


def peak_rss() -> float:
    """Peak RSS in MiB since the last reset_peak()."""
    return _vm("VmHWM")


class Timing:
    """Median seconds (wall and CPU) of several runs, with the peak memory of the worst run."""

    def __init__(
        self, runs: list[float], peak_mb: float, base_mb: float, cpu: list[float], anon_rise_mb: float
    ) -> None:
        self.runs = runs
        self.seconds = statistics.median(runs)
        self.cpu_seconds = statistics.median(cpu)
        self.peak_mb = peak_mb
        self.base_mb = base_mb
        self.anon_rise_mb = anon_rise_mb

    @property
    def extra_mb(self) -> float:
        """How much the peak RSS rose above the RSS before the runs."""
        return max(0.0, self.peak_mb - self.base_mb)


class AnonSampler:
    """Samples anonymous RSS (heap memory, not file pages mapped by SQLite's mmap) every 2 ms in a
    thread.

    VmHWM counts the database pages SQLite maps with mmap (reclaimable page cache), which would
    make every read look like an allocation; the anonymous peak is what a restore really costs.
    A sample is one pread of /proc/self/statm (resident - shared pages = RssAnon), ~2 us with the
    GIL held: parsing /proc/self/status took ~45 us, and 500 of those a second cost a GIL-bound
    scenario (small versions) ~4 % of its throughput.
    """

    def __init__(self) -> None:
        self.base = _vm("RssAnon")
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        try:
            fd: int | None = os.open("/proc/self/statm", os.O_RDONLY)
        except OSError:
            fd = None
        try:
            while not self._stop.wait(0.002):
                self.peak = max(self.peak, _vm("RssAnon") if fd is None else _anon_rss(fd))
        finally:
            if fd is not None:
                os.close(fd)

    def __enter__(self) -> AnonSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _vm("RssAnon"))

    @property
    def rise(self) -> float:
        return max(0.0, self.peak - self.base)


_PAGE_MB = os.sysconf("SC_PAGE_SIZE") / MB if hasattr(os, "sysconf") else 4096 / MB


def _anon_rss(statm: int) -> float:
    """Anonymous RSS in MiB (what /proc/self/status calls RssAnon) from an open /proc/self/statm."""
    fields = os.pread(statm, 256, 0).split()
    return (int(fields[1]) - int(fields[2])) * _PAGE_MB


def measure(
    fn: Callable[[], Any],
    repeats: int,
    *,
    setup: Callable[[], Any] | None = None,
    teardown: Callable[[], Any] | None = None,
    budget: float = 20.0,
) -> Timing:
    """Run setup(); fn() (timed); teardown() `repeats` times; return the median and peak RSS.

    Runs at least once, and stops repeating once the timed runs add up to `budget` seconds (slow
    cases run once). What fn() returns is kept until the clock has stopped, so freeing it (a
    restored gigabyte: ~20 ms) is not timed.
    """
    runs: list[float] = []
    cpu: list[float] = []
    peak = base = anon = 0.0
    for _ in range(max(1, repeats)):
        if runs and sum(runs) >= budget:
            break
        if setup is not None:
            setup()
        base_now = reset_peak()
        with AnonSampler() as sampler:
            cpu_start = _cpu()
            start = time.perf_counter()
            result = fn()
            runs.append(time.perf_counter() - start)
            cpu.append(_cpu() - cpu_start)
        del result
        anon = max(anon, sampler.rise)
        peak_now = peak_rss()
        if peak_now - base_now >= peak - base:
            peak, base = peak_now, base_now
        if teardown is not None:
            teardown()
    return Timing(runs, peak, base, cpu, anon)


def _cpu() -> float:
    """CPU seconds of this process, all threads, and of the child processes it has waited for
    (robust to a busy machine, unlike wall time)."""
    t = os.times()  # its children's times come in clock ticks (10 ms); process_time() is precise
    return time.process_time() + t.children_user + t.children_system


@contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    """A temporary directory next to the results (same disk as a user's files), removed after."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=RESULTS))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def row(
    scenario: str,
    size: str,
    timing: Timing | float,
    amount: float,
    unit: str,
    limit_name: str,
    limit_seconds: float | None,
    **extra: Any,
) -> dict[str, Any]:
    """One result row; amount/seconds is the throughput in `unit` (e.g. 'MB/s', 'points/s')."""
    seconds = timing.seconds if isinstance(timing, Timing) else float(timing)
    out: dict[str, Any] = {
        "scenario": scenario,
        "size": size,
        "seconds": seconds,
        "throughput": amount / seconds if seconds > 0 else float("inf"),
        "unit": unit,
        "limit_name": limit_name,
        "limit_seconds": limit_seconds,
        "ratio": (limit_seconds / seconds) if limit_seconds and seconds > 0 else None,
        "peak_rss_mb": timing.peak_mb if isinstance(timing, Timing) else None,
    }
    if isinstance(timing, Timing):
        out["rss_rise_mb"] = timing.extra_mb
        out["anon_rise_mb"] = timing.anon_rise_mb
        out["runs"] = timing.runs
        out["cpu_seconds"] = timing.cpu_seconds
    out.update(extra)
    return out


#: The keys every result row has: the runner's table columns.
ROW_KEYS = ("scenario", "size", "seconds", "throughput", "unit", "limit_name", "ratio", "peak_rss_mb")


def row_problems(r: dict[str, Any]) -> list[str]:
    """What is wrong with one result row ([] if nothing): a missing column, a ratio that is not our
    throughput / the limit's (= limit seconds / ours, for the same work), a target without a raw
    limit measured in the same run, or without a yes/no/None verdict in `met`."""
    name = f"{r.get('scenario')!r} [{r.get('size')}]"
    if "error" in r:
        return [] if r.get("scenario") else [f"{name}: an error row without a scenario"]
    out = [f"{name}: no {key!r}" for key in ROW_KEYS if key not in r]
    if out:
        return out
    seconds, limit, ratio = r["seconds"], r.get("limit_seconds"), r["ratio"]
    if not isinstance(seconds, (int, float)) or not 0 < seconds < math.inf:
        return [f"{name}: seconds is {seconds!r}"]
    if r["limit_name"]:
        if not isinstance(limit, (int, float)) or not 0 < limit < math.inf:
            out.append(f"{name}: limit {r['limit_name']!r} without its seconds ({limit!r})")
        elif not isinstance(ratio, (int, float)):
            out.append(f"{name}: limit {r['limit_name']!r} without a ratio")
        else:
            limit_throughput = r["throughput"] * seconds / limit  # the same work in the limit's time
            if not math.isclose(ratio, r["throughput"] / limit_throughput, rel_tol=1e-9):
                out.append(f"{name}: ratio {ratio!r} is not our throughput / the limit's")
    elif ratio is not None or limit is not None:
        out.append(f"{name}: a ratio or limit seconds without a named limit")
    if r.get("target"):
        if not r["limit_name"]:
            out.append(f"{name}: target {r['target']!r} without a raw limit measured in the same run")
        if "met" not in r:
            out.append(f"{name}: target {r['target']!r} without 'met'")
        elif r["met"] is not None and type(r["met"]) is not bool:
            out.append(f"{name}: met is {r['met']!r}, not True/False/None")
    return out


# -- data -----------------------------------------------------------------------------------------


def model(total_bytes: int, seed: int = 0, tensors: int = 0) -> dict[str, np.ndarray]:
    """A float32 "model" of about total_bytes: many tensors (matrices and biases), N(0, 0.02)."""
    rng = np.random.default_rng(seed)
    n_layers = tensors or max(8, min(200, total_bytes // (4 * MB)))
    per_layer = total_bytes // 4 // n_layers
    cols = 1024
    rows = max(1, (per_layer - cols) // cols)
    params: dict[str, np.ndarray] = {}
    for i in range(n_layers):
        params[f"layer{i:03d}.weight"] = (rng.standard_normal((rows, cols), dtype=np.float32) * 0.02).astype(
            np.float32
        )
        params[f"layer{i:03d}.bias"] = (rng.standard_normal(cols, dtype=np.float32) * 0.02).astype(np.float32)
    return params


def finetune(params: dict[str, np.ndarray], seed: int = 1, rel: float = 1e-3) -> dict[str, np.ndarray]:
    """Every weight moved by about rel (relative), as after a short fine-tune."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, w in params.items():
        noise = rng.standard_normal(w.shape, dtype=np.float32)
        noise *= np.float32(rel)
        noise += np.float32(1.0)
        out[name] = w * noise
    return out


def nbytes(params: dict[str, np.ndarray]) -> int:
    return sum(a.nbytes for a in params.values())


def human(n: float) -> str:
    """A byte count in binary units, as the size labels and MB/s columns are (MB = 1024 * 1024)."""
    for unit, scale in (("GB", 1024.0 * MB), ("MB", float(MB)), ("kB", 1024.0)):
        if n >= scale:
            return f"{n / scale:.0f} {unit}" if n / scale >= 10 else f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"


# -- raw limits -----------------------------------------------------------------------------------


def file_write_fsync(path: Path, params: dict[str, np.ndarray]) -> None:
    """The durable-write limit: the same bytes with os.write in 4 MiB pieces, then fsync."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for arr in params.values():
            view = memoryview(arr.reshape(-1).view(np.uint8).data)
            for off in range(0, len(view), 4 * MB):
                os.write(fd, view[off : off + 4 * MB])
        os.fsync(fd)
    finally:
        os.close(fd)


def sqlite_blob_write(path: Path, params: dict[str, np.ndarray], *, checkpoint: bool) -> None:
    """The same bytes as 4 MiB blob rows in a plain sqlite3 table (64 KiB pages, WAL, NORMAL)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA page_size = 65536")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("CREATE TABLE IF NOT EXISTS blobs (id INTEGER PRIMARY KEY, data BLOB NOT NULL)")
        conn.execute("BEGIN IMMEDIATE")
        for arr in params.values():
            view = memoryview(arr.reshape(-1).view(np.uint8).data)
            for off in range(0, len(view), 4 * MB):
                conn.execute("INSERT INTO blobs (data) VALUES (?)", (view[off : off + 4 * MB],))
        conn.execute("COMMIT")
        if checkpoint:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def memcpy(params: dict[str, np.ndarray], out: dict[str, np.ndarray]) -> None:
    """The memory-copy limit: the same arrays copied into preallocated arrays."""
    for name, arr in params.items():
        np.copyto(out[name], arr)
