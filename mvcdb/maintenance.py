"""Upkeep of one file: stats, verify (re-hash everything), gc (reclaim unreferenced chunks), rm.

verify trusts nothing it reads: SQLite's own integrity check, then every chunk decoded and
re-hashed, every manifest re-hashed to its id, decoded strictly and compared with the relational
rows it summarises, every lineage edge and tag resolved. Each problem found is named, never raised,
so one report lists all the damage.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import checkpointer
from .author import current_author
from .blobstore import MAX_CHUNK_BYTES, damaged_stubs, tensor_digest, valid_chunk_size
from .chunkcodec import STUB
from .connection import acquire_transaction_lock, checkpoint, with_retry, write_transaction
from .errors import DecodeError, MvcdbError
from .manifest import decode as decode_manifest
from .manifest import version_id
from .refs import HEX_RE, NAME_RE
from .timeutil import now_text

if TYPE_CHECKING:
    from .database import Database, ParentRef

Progress = Callable[[int, int, str], None]

#: Chunks decoded together in one read_into call during verify (bounded by bytes too).
VERIFY_BATCH = 32
VERIFY_BATCH_BYTES = 64 * 1024 * 1024


def file_bytes(path: Path) -> int:
    """Size on disk of the database: the .db plus its -wal, if any."""
    total = 0
    for p in (path, Path(f"{path}-wal")):
        try:
            total += p.stat().st_size
        except OSError:
            pass
    return total


def _ratio(a: int, b: int) -> float:
    return a / b if b else 1.0


# -- stats -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stats:
    """Counts and sizes of one file; ratios > 1 mean savings."""

    path: str
    file_bytes: int
    versions: int
    models: int
    tensors: int
    series: int
    chunks: int
    tags: int
    tag_moves: int
    param_bytes: int
    trajectory_bytes: int
    chunk_raw_bytes: int
    stored_bytes: int
    orphan_chunks: int
    #: chunks of a lazy clone not fetched yet, and their raw bytes (not in stored_bytes)
    unfetched_chunks: int = 0
    unfetched_raw_bytes: int = 0

    @property
    def logical_bytes(self) -> int:
        """Bytes of every tensor of every version, as if each were stored in full."""
        return self.param_bytes + self.trajectory_bytes

    @property
    def dedup_ratio(self) -> float:
        """Logical bytes / distinct chunk bytes: what content addressing saves."""
        return _ratio(self.logical_bytes, self.chunk_raw_bytes)

    @property
    def compression_ratio(self) -> float:
        """Distinct chunk bytes / bytes actually stored: what encoding (zstd, deltas) saves (over
        the chunks this file holds: a lazy clone's unfetched ones are left out)."""
        return _ratio(self.chunk_raw_bytes - self.unfetched_raw_bytes, self.stored_bytes)

    @property
    def total_ratio(self) -> float:
        """Logical bytes / stored bytes."""
        return _ratio(self.logical_bytes, self.stored_bytes)

    def to_dict(self) -> dict[str, Any]:
        """The shape `mvcdb stats --json` prints."""
        return {
            "path": self.path,
            "file_bytes": self.file_bytes,
            "versions": self.versions,
            "models": self.models,
            "tensors": self.tensors,
            "series": self.series,
            "chunks": self.chunks,
            "orphan_chunks": self.orphan_chunks,
            "chunks_not_fetched": self.unfetched_chunks,
            "tags": self.tags,
            "tag_moves": self.tag_moves,
            "param_bytes": self.param_bytes,
            "trajectory_bytes": self.trajectory_bytes,
            "logical_bytes": self.logical_bytes,
            "chunk_raw_bytes": self.chunk_raw_bytes,
            "stored_bytes": self.stored_bytes,
            "dedup_ratio": round(self.dedup_ratio, 4),
            "compression_ratio": round(self.compression_ratio, 4),
            "total_ratio": round(self.total_ratio, 4),
        }

    def __str__(self) -> str:
        from .cli.output import format_bytes as fb

        return "\n".join(
            [
                f"file          {self.path} ({fb(self.file_bytes)})",
                f"versions      {self.versions} of {self.models} model(s); {self.tags} tag(s),"
                f" {self.tag_moves} tag move(s)",
                f"tensors       {self.tensors} parameter tensor(s), {self.series} trajectory series",
                f"chunks        {self.chunks} ({self.orphan_chunks} unreferenced: `mvcdb gc` reclaims them)"
                + (
                    f"; {self.unfetched_chunks} not fetched yet (a lazy clone)"
                    if self.unfetched_chunks
                    else ""
                ),
                f"logical       {fb(self.logical_bytes)} (parameters {fb(self.param_bytes)},"
                f" trajectories {fb(self.trajectory_bytes)})",
                f"distinct      {fb(self.chunk_raw_bytes)}  dedup {self.dedup_ratio:.2f}x",
                f"stored        {fb(self.stored_bytes)}  compression {self.compression_ratio:.2f}x,"
                f" overall {self.total_ratio:.2f}x",
            ]
        )


def stats(db: Database) -> Stats:
    """Counts, file size, logical vs distinct vs stored bytes (read-only, no chunk is decoded)."""
    one = _one(db.conn)
    by_kind = dict(db.conn.execute("SELECT kind, coalesce(sum(nbytes), 0) FROM tensors GROUP BY kind"))
    counts = dict(db.conn.execute("SELECT kind, count(*) FROM tensors GROUP BY kind"))
    chunks, raw, stored, unfetched, unfetched_raw = db.conn.execute(
        "SELECT count(*), coalesce(sum(size), 0), coalesce(sum(length(data)), 0),"
        f" coalesce(sum(codec = {STUB}), 0), coalesce(sum(CASE WHEN codec = {STUB} THEN size END), 0)"
        " FROM chunks"
    ).fetchone()
    return Stats(
        path=str(db.path),
        file_bytes=file_bytes(db.path),
        versions=one("SELECT count(*) FROM versions"),
        models=one("SELECT count(DISTINCT model) FROM versions"),
        tensors=int(counts.get("param", 0)),
        series=int(counts.get("traj", 0)),
        chunks=int(chunks),
        tags=one("SELECT count(*) FROM tags"),
        tag_moves=one("SELECT count(*) FROM tag_history"),
        param_bytes=int(by_kind.get("param", 0)),
        trajectory_bytes=int(by_kind.get("traj", 0)) + int(by_kind.get("traj_steps", 0)),
        chunk_raw_bytes=int(raw),
        stored_bytes=int(stored),
        orphan_chunks=one(f"SELECT count(*) FROM chunks WHERE cid NOT IN ({_LIVE_CHUNKS})"),
        unfetched_chunks=int(unfetched),
        unfetched_raw_bytes=int(unfetched_raw),
    )


def _one(conn: sqlite3.Connection) -> Callable[[str], int]:
    return lambda sql: int(conn.execute(sql).fetchone()[0])


#: Chunks a version needs: referenced by a tensor, or (transitively) the delta base of one that is.
_LIVE_CHUNKS = """
    WITH RECURSIVE live(cid) AS (
        SELECT cid FROM tensor_chunks
        UNION
        SELECT c.base FROM chunks c JOIN live ON c.cid = live.cid WHERE c.base IS NOT NULL
    ) SELECT cid FROM live
"""

# -- verify ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the file: a kind (stable, for scripts), what it concerns, and why."""

    kind: str
    subject: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "subject": self.subject, "detail": self.detail}

    def __str__(self) -> str:
        return f"{self.kind}: {self.subject}: {self.detail}"


@dataclass(frozen=True)
class VerifyReport:
    """What verify checked and every problem it found; ok means none."""

    path: str
    versions: int = 0
    chunks: int = 0
    tags: int = 0
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """The shape `mvcdb verify --json` prints."""
        return {
            "path": self.path,
            "ok": self.ok,
            "checked": {"versions": self.versions, "chunks": self.chunks, "tags": self.tags},
            "problems": [p.to_dict() for p in self.problems],
            "notes": list(self.notes),
        }

    def __str__(self) -> str:
        head = (
            f"{self.path}: OK" if self.ok else f"{self.path}: {len(self.problems)} problem(s) found"
        ) + f" ({self.versions} versions, {self.chunks} chunks, {self.tags} tags checked)"
        return "\n".join([head, *(f"  {p}" for p in self.problems), *(f"  note: {n}" for n in self.notes)])


class _Checker:
    """Collects problems while the checks of verify() run over one database."""

    def __init__(self, db: Database, progress: Progress | None) -> None:
        self.db = db
        self.conn = db.conn
        self.progress = progress
        self.problems: list[Problem] = []
        self.notes: list[str] = []
        self.done = 0
        self.total = 0

    def problem(self, kind: str, subject: str, detail: str) -> None:
        self.problems.append(Problem(kind, subject, " ".join(str(detail).split())))

    def tick(self, what: str, n: int = 1) -> None:
        self.done += n
        if self.progress is not None:
            self.progress(min(self.done, self.total), self.total, what)

    # SQLite's own checks ----------------------------------------------------------------------

    def sqlite(self) -> None:
        try:
            rows = [r[0] for r in self.conn.execute("PRAGMA integrity_check(20)")]
        except sqlite3.DatabaseError as exc:
            self.problem("sqlite-integrity", "file", str(exc))
            return
        if rows != ["ok"]:
            for r in rows:
                self.problem("sqlite-integrity", "file", r)
        try:
            for table, rowid, parent, _ in self.conn.execute("PRAGMA foreign_key_check"):
                where = f"{table} row {rowid}" if rowid is not None else f"a {table} row"
                self.problem("foreign-key", where, f"refers to a missing {parent} row")
        except sqlite3.DatabaseError as exc:
            self.problem("foreign-key", "file", str(exc))

    # meta -------------------------------------------------------------------------------------

    def meta(self) -> None:
        """The facts every mvcdb file states about itself: a damaged one is reported here (it
        would otherwise only show as a confusing error when the file is opened)."""
        try:
            meta = dict(self.conn.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as exc:
            self.problem("sqlite-integrity", "meta", str(exc))
            return
        if "format" not in meta:
            self.problem("meta", "meta 'format'", "is missing (every mvcdb file has format = 'mvcdb')")
        elif meta["format"] != "mvcdb":
            self.problem("meta", "meta 'format'", f"is {meta['format']!r}, not 'mvcdb'")
        if "chunk_size" not in meta:
            self.problem("meta", "meta 'chunk_size'", "is missing")
        elif valid_chunk_size(meta["chunk_size"]) is None:
            self.problem(
                "meta",
                "meta 'chunk_size'",
                f"is {meta['chunk_size']!r}, not a whole number of bytes from 4 KiB to 512 MiB",
            )

    # chunks -----------------------------------------------------------------------------------

    def chunks(self, cids: list[tuple[int, int]]) -> None:
        for batch in _batches(cids):
            try:
                out = np.empty(sum(size for _, size in batch), dtype=np.uint8)
                self.db.store.read_into([cid for cid, _ in batch], out)
            except (MvcdbError, sqlite3.DatabaseError, ValueError, MemoryError):
                for cid, _ in batch:  # find which ones
                    self._one_chunk(cid)
            self.tick("chunks", len(batch))

    def _one_chunk(self, cid: int) -> None:
        try:
            self.db.store.read_chunk(cid)
        except (MvcdbError, sqlite3.DatabaseError, ValueError, MemoryError) as exc:
            self.problem("chunk-corrupt", self._chunk_subject(cid), str(exc))

    def _chunk_subject(self, cid: int) -> str:
        row = self.conn.execute(
            "SELECT v.id, tc.kind, tc.name FROM tensor_chunks tc JOIN versions v ON v.vid = tc.vid"
            " WHERE tc.cid = ? LIMIT 1",
            (cid,),
        ).fetchone()
        where = f" (used by {row[1]} {row[2]!r} of version {row[0][:12]})" if row else " (unreferenced)"
        return f"chunk {cid}{where}"

    # versions ---------------------------------------------------------------------------------

    def version(self, vid: int, vid_hex: str, row: tuple[Any, ...]) -> None:
        model, message, author, created_at, metadata, params_bytes, blob = row
        subject = f"version {vid_hex[:12]}"
        blob = bytes(blob)
        if version_id(blob) != vid_hex:
            self.problem(
                "manifest-hash", subject, "its manifest does not hash to its id (tampered or damaged)"
            )
        try:
            m = decode_manifest(blob)
        except MvcdbError as exc:
            self.problem("manifest-decode", subject, str(exc))
            return
        fields = {"model": model, "message": message, "author": author, "created_at": created_at}
        for name, value in fields.items():
            if getattr(m, name) != value:
                self.problem("manifest-mismatch", subject, f"{name} differs from its manifest")
        if _json_canon(metadata) != _json_canon(m.metadata):
            self.problem("manifest-mismatch", subject, "metadata differs from its manifest")
        self._parents(vid, subject, m.parents)
        self._metrics(vid, subject, dict(m.metrics))
        self._tensors(vid, subject, m.tensors, params_bytes)

    def _parents(self, vid: int, subject: str, parents: tuple[str, ...]) -> None:
        rows = {
            pos: pid
            for pos, pid in self.conn.execute(
                "SELECT l.position, v.id FROM lineage l LEFT JOIN versions v ON v.vid = l.parent"
                " WHERE l.child = ?",
                (vid,),
            )
        }
        for pos, pid in sorted(rows.items()):
            if pid is None:
                self.problem("lineage", subject, f"parent #{pos} is not in the file")
            elif pos >= len(parents) or parents[pos] != pid:
                self.problem("lineage", subject, f"parent #{pos} ({pid[:12]}) is not in its manifest")
        for pos, pid in enumerate(parents):
            if pos in rows:
                continue
            if self.conn.execute("SELECT 1 FROM versions WHERE id = ?", (pid,)).fetchone():
                self.problem("lineage", subject, f"the edge to its parent {pid[:12]} is missing")
            else:
                self.notes.append(
                    f"{subject}: parent {pid[:12]} is not in this file (removed with rm --force?)"
                )

    def _metrics(self, vid: int, subject: str, expected: dict[str, float]) -> None:
        got = {
            n: (math.nan if v is None else float(v))
            for n, v in self.conn.execute("SELECT name, value FROM metrics WHERE vid = ?", (vid,))
        }
        if set(got) != set(expected):
            self.problem("manifest-mismatch", subject, "its metric names differ from its manifest")
            return
        for name, value in expected.items():
            other = got[name]
            if not (value == other or (math.isnan(value) and math.isnan(other))):
                self.problem("manifest-mismatch", subject, f"metric {name!r} differs from its manifest")

    def _tensors(self, vid: int, subject: str, tensors: tuple[Any, ...], params_bytes: int) -> None:
        rows: dict[tuple[str, str], tuple[str, str, int, str]] = {}
        hashes: dict[tuple[str, str], list[bytes | None]] = {}
        sizes: dict[tuple[str, str], int] = {}
        for kind, name, dtype, shape, nbytes, digest, data in self.conn.execute(
            "SELECT kind, name, dtype, shape, nbytes, digest, data FROM tensors WHERE vid = ?", (vid,)
        ):
            rows[(kind, name)] = (dtype, shape, nbytes, digest)
            if data is not None:  # a tiny tensor kept in its row: its one chunk hash is of these bytes
                hashes[(kind, name)] = [hashlib.sha256(data).digest()]
                sizes[(kind, name)] = len(data)
        for kind, name, chash, size in self.conn.execute(
            "SELECT tc.kind, tc.name, c.hash, c.size FROM tensor_chunks tc"
            " LEFT JOIN chunks c ON c.cid = tc.cid WHERE tc.vid = ? ORDER BY tc.kind, tc.name, tc.seq",
            (vid,),
        ):
            hashes.setdefault((kind, name), []).append(None if chash is None else bytes(chash))
            sizes[(kind, name)] = sizes.get((kind, name), 0) + (size or 0)
        named = {(t.kind, t.name) for t in tensors}
        for key in sorted(set(rows) - named):
            self.problem("manifest-mismatch", subject, f"{key[0]} {key[1]!r} is not in its manifest")
        for t in tensors:
            key = (t.kind, t.name)
            what = f"{t.kind} {t.name!r}"
            row = rows.get(key)
            if row is None:
                self.problem("manifest-incomplete", subject, f"{what} named by its manifest is missing")
                continue
            dtype, shape, nbytes, digest = row
            try:
                shape_ok = json.loads(shape) == list(t.shape)
            except ValueError:
                shape_ok = False
            if dtype != t.dtype or not shape_ok or nbytes != t.nbytes:
                self.problem(
                    "manifest-mismatch", subject, f"{what}: dtype/shape/size differ from its manifest"
                )
            got = hashes.get(key, [])
            if None in got:
                self.problem("chunk-missing", subject, f"{what}: a chunk it uses is missing")
            elif got != list(t.hashes):
                self.problem("manifest-mismatch", subject, f"{what}: its chunks differ from its manifest")
            elif sizes.get(key, 0) != t.nbytes:
                self.problem(
                    "manifest-mismatch", subject, f"{what}: its chunks hold {sizes.get(key, 0)} bytes"
                )
            if digest != tensor_digest(t.dtype, t.shape, t.hashes):
                self.problem("manifest-mismatch", subject, f"{what}: its digest is wrong")
        expected_bytes = sum(t.nbytes for t in tensors if t.kind == "param")
        if params_bytes != expected_bytes:
            self.problem("manifest-mismatch", subject, "params_bytes differs from its manifest")

    # tags -------------------------------------------------------------------------------------

    def tags(self) -> int:
        rows = self.conn.execute(
            "SELECT t.name, t.vid, v.id FROM tags t LEFT JOIN versions v ON v.vid = t.vid"
        ).fetchall()
        for name, vid, vid_hex in rows:
            if vid_hex is None:
                self.problem("tag", f"tag {name!r}", f"points at version row {vid}, which does not exist")
            if not isinstance(name, str) or not NAME_RE.match(name):  # mvcdb never writes one
                self.problem("tag", f"tag {name!r}", "has a name mvcdb refuses (written by another tool?)")
            elif HEX_RE.match(name.lower()):  # allowed before names were checked ignoring case
                self.notes.append(f"tag {name!r} looks like a version id prefix; rename it (mvcdb tag)")
        last = dict(
            self.conn.execute(
                "SELECT name, to_id FROM tag_history h WHERE seq = (SELECT max(seq) FROM tag_history"
                " WHERE name = h.name)"
            ).fetchall()
        )
        for name, _, vid_hex in rows:
            if vid_hex is not None and name in last and last[name] != vid_hex:
                self.notes.append(f"tag {name!r}: its last history entry points elsewhere (merged?)")
        return len(rows)


def _json_canon(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _batches(cids: list[tuple[int, int]]) -> Iterator[list[tuple[int, int]]]:
    batch: list[tuple[int, int]] = []
    size = 0
    for cid, n in cids:
        if batch and (len(batch) >= VERIFY_BATCH or size + n > VERIFY_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append((cid, n))
        size += n
    if batch:
        yield batch


def verify(db: Database, progress: Progress | None = None) -> VerifyReport:
    """Check everything and return a report naming each problem (never raises for damage).

    Checks: PRAGMA integrity_check and foreign_key_check; every chunk decoded and re-hashed;
    every manifest re-hashed to its version id, decoded and compared with the version's rows
    (fields, metadata, parents, metrics, tensors and their chunks); every tag resolvable.
    Runs in one read transaction: a consistent snapshot even while others write (in WAL mode
    writers are not held up by it).
    """
    lock = acquire_transaction_lock(db.conn)  # the connection's one transaction is ours a while
    try:
        if db.conn.in_transaction:  # inside this thread's db.batch(): its snapshot, as it stands
            return _verify(db, progress)
        db.conn.execute("BEGIN")
        try:
            return _verify(db, progress)
        finally:
            if db.conn.in_transaction:
                db.conn.execute("ROLLBACK")
    finally:
        if lock is not None:
            lock.release()


def _verify(db: Database, progress: Progress | None) -> VerifyReport:
    check = _Checker(db, progress)
    check.sqlite()
    check.meta()
    try:
        rows = db.conn.execute("SELECT cid, size, codec FROM chunks ORDER BY cid").fetchall()
        oversized = [int(c) for c, s, _ in rows if not 0 <= s <= MAX_CHUNK_BYTES]
        stubs = [int(c) for c, s, codec in rows if codec == STUB and 0 <= s <= MAX_CHUNK_BYTES]
        damaged = damaged_stubs(db.conn, stubs)
        cids = [(int(c), int(s)) for c, s, codec in rows if codec != STUB and 0 <= s <= MAX_CHUNK_BYTES]
        versions = db.conn.execute("SELECT vid, id FROM versions ORDER BY vid").fetchall()
    except sqlite3.DatabaseError as exc:
        check.problem("sqlite-integrity", "file", f"cannot read the tables: {exc}")
        return VerifyReport(str(db.path), problems=check.problems)
    for cid in oversized:  # decoding it would first allocate what it claims
        check.problem(
            "chunk-corrupt", check._chunk_subject(cid), f"it claims more than {MAX_CHUNK_BYTES} bytes"
        )
    for cid, why in damaged.items():
        check.problem("chunk-corrupt", check._chunk_subject(cid), why)
    if len(stubs) > len(damaged):
        check.notes.append(
            f"{len(stubs) - len(damaged)} chunk(s) not fetched yet (a lazy clone): not checked"
        )
    check.total = len(cids) + len(versions)
    check.chunks(cids)
    for vid, vid_hex in versions:  # one at a time: manifests of big models are not small
        try:
            row = db.conn.execute(
                "SELECT model, message, author, created_at, metadata, params_bytes, manifest"
                " FROM versions WHERE vid = ?",
                (vid,),
            ).fetchone()
            check.version(vid, vid_hex, tuple(row))
        except sqlite3.DatabaseError as exc:
            check.problem("sqlite-integrity", f"version {vid_hex[:12]}", str(exc))
        check.tick("versions")
    tags = 0
    try:
        tags = check.tags()
    except sqlite3.DatabaseError as exc:
        check.problem("sqlite-integrity", "tags", str(exc))
    return VerifyReport(
        str(db.path),
        versions=len(versions),
        chunks=len(rows) - len(stubs) + len(damaged),
        tags=tags,
        problems=check.problems,
        notes=check.notes,
    )


# -- gc ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GcReport:
    """What gc removed, how much smaller the file became, and anything the user must act on."""

    path: str
    chunks_deleted: int
    stored_bytes_deleted: int
    file_bytes_before: int
    file_bytes_after: int
    #: chunks no tensor row uses that were kept because a version's manifest names them (damage)
    chunks_kept: int = 0
    notes: tuple[str, ...] = ()

    @property
    def reclaimed_bytes(self) -> int:
        return max(0, self.file_bytes_before - self.file_bytes_after)

    def to_dict(self) -> dict[str, Any]:
        """The shape `mvcdb gc --json` prints."""
        return {
            "path": self.path,
            "chunks_deleted": self.chunks_deleted,
            "stored_bytes_deleted": self.stored_bytes_deleted,
            "file_bytes_before": self.file_bytes_before,
            "file_bytes_after": self.file_bytes_after,
            "reclaimed_bytes": self.reclaimed_bytes,
            "chunks_kept": self.chunks_kept,
            "notes": list(self.notes),
        }

    def __str__(self) -> str:
        from .cli.output import format_bytes as fb

        return "\n".join(
            [
                f"deleted {self.chunks_deleted} unreferenced chunk(s)"
                f" ({fb(self.stored_bytes_deleted)} stored);"
                f" file {fb(self.file_bytes_before)} -> {fb(self.file_bytes_after)}"
                f" ({fb(self.reclaimed_bytes)} reclaimed)",
                *(f"note: {n}" for n in self.notes),
            ]
        )


class GcCompactionError(MvcdbError):
    """gc deleted the unreferenced chunks (committed: their space is reused inside the file) but
    could not compact the file for lack of disk space; `report` says what was deleted."""

    def __init__(self, message: str, report: GcReport) -> None:
        super().__init__(message)
        self.report = report


def gc(db: Database, progress: Progress | None = None) -> GcReport:
    """_gc with the connection to itself: another thread's transaction on a shared Database must
    neither be joined by the deletion nor be open when VACUUM runs (it waits, or BusyError)."""
    db._check_writable()
    lock = acquire_transaction_lock(db.conn)
    try:
        return _gc(db, progress)
    finally:
        if lock is not None:
            lock.release()


def _gc(db: Database, progress: Progress | None = None) -> GcReport:
    """Delete every chunk no version needs (keeping delta bases of kept chunks), then compact.

    A chunk is needed if a tensor row uses it or -- whatever the rows say, since they may be
    damaged -- a version's manifest names its hash. The deletion is its own write transaction,
    committed before compaction: a concurrent record either committed before it (its chunks are
    referenced and kept) or commits after it, and then a chunk it wrote a moment earlier may be
    gone and that record fails with a clear "record again". On a full disk the deletion still
    stands (its space is reused inside the file) and GcCompactionError says compaction needs space.
    """
    db._check_writable()
    if db.conn.in_transaction:  # VACUUM cannot run in a transaction: refuse before deleting anything
        raise MvcdbError("gc cannot run inside db.batch(): compacting the file needs no open transaction")
    before = file_bytes(db.path)
    steps = 3

    def tick(done: int, what: str) -> None:
        if progress is not None:
            progress(done, steps, what)

    tick(0, "finding unreferenced chunks")
    # manifests are decoded before the write lock is taken (seconds for a big file), and in it
    # only those of versions recorded meanwhile
    prescan = _scan_manifests(db.conn, _unused_hashes(db.conn))
    # SQLite built with SECURE_DELETE (Debian's is) would write every freed page, zeroed, to the
    # WAL: the deletion would need as much free disk as it frees. FAST zeroes only pages written
    # anyway; the VACUUM that follows drops the deleted bytes from the file.
    secure = int(db.conn.execute("PRAGMA secure_delete").fetchone()[0])
    if secure == 1:
        db.conn.execute("PRAGMA secure_delete = FAST")
    try:
        with write_transaction(db.conn):
            count, stored, kept, notes = _delete_unneeded(db.conn, prescan)
    except sqlite3.OperationalError as exc:
        if not _is_full(exc):
            raise
        raise MvcdbError(
            "the disk is full: gc deleted nothing (even a deletion needs a little space in the"
            " write-ahead log); free some disk space and run mvcdb gc again"
        ) from None
    finally:
        db.conn.execute(f"PRAGMA secure_delete = {secure}")
    tick(1, "compacting the file (VACUUM)")
    compact_needs = 0  # bytes of free space compaction lacked, if it did
    if count or int(db.conn.execute("PRAGMA freelist_count").fetchone()[0]):
        try:
            with_retry(lambda: _compact(db.conn))
        except sqlite3.OperationalError as exc:
            if not _is_full(exc):
                raise
            compact_needs = _live_bytes(db.conn)
    tick(2, "checkpointing")
    if db.conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
        with checkpointer.paused(db.conn):  # the file stays open for writing: keep one running
            checkpoint(db.conn)
    tick(3, "done")
    report = GcReport(str(db.path), count, stored, before, file_bytes(db.path), kept, tuple(notes))
    if compact_needs:
        from .cli.output import format_bytes as fb

        done = (
            f"deleted {count} unreferenced chunk(s) ({fb(stored)} stored): their space is free"
            " for new records inside the file, but"
            if count
            else "no unreferenced chunk to delete, but"
        )
        raise GcCompactionError(
            f"{done} the disk is too full to compact the file (VACUUM needs about"
            f" {fb(compact_needs)} free); free some disk space and run mvcdb gc again to shrink it",
            report,
        )
    return report


def _compact(conn: sqlite3.Connection) -> None:
    """Rewrite the file without its free pages (needs about its live size of free space)."""
    conn.execute("VACUUM")


def _live_bytes(conn: sqlite3.Connection) -> int:
    """Bytes of the file's pages in use: what VACUUM writes (to a temporary copy, then the WAL)."""
    pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
    free = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
    return max(1, pages - free) * int(conn.execute("PRAGMA page_size").fetchone()[0])


def _is_full(exc: sqlite3.OperationalError) -> bool:
    """True for SQLITE_FULL ('database or disk is full')."""
    code = getattr(exc, "sqlite_errorcode", None)
    return (code is not None and code & 0xFF == 13) or "is full" in str(exc).lower()


def _unused_hashes(conn: sqlite3.Connection) -> set[bytes]:
    """Hashes of the chunks no tensor row needs (nor any such chunk as a delta base)."""
    return {bytes(h) for (h,) in conn.execute(f"SELECT hash FROM chunks WHERE cid NOT IN ({_LIVE_CHUNKS})")}


@dataclass
class _ManifestScan:
    """Which of the hashes looked for the scanned versions' manifests name; which versions were
    scanned (ids), and which of them have a manifest that cannot be decoded."""

    looked_for: set[bytes]
    named: set[bytes] = field(default_factory=set)
    scanned: set[str] = field(default_factory=set)
    unreadable: list[str] = field(default_factory=list)


def _scan_manifests(
    conn: sqlite3.Connection, hashes: set[bytes], ids: Sequence[str] | None = None
) -> _ManifestScan:
    """Decode the manifests of the versions ids names (None: all) once each and note which of
    hashes they name (only hits are kept in memory: a file may name millions of chunks)."""
    scan = _ManifestScan(set(hashes))
    if not hashes:
        return scan
    if ids is None:
        rows: Iterable[tuple[str, bytes]] = conn.execute("SELECT id, manifest FROM versions")
    else:
        rows = (
            row
            for i in range(0, len(ids), _ID_BATCH)
            for row in conn.execute(
                "SELECT id, manifest FROM versions WHERE id IN (SELECT value FROM json_each(?))",
                (json.dumps(list(ids[i : i + _ID_BATCH])),),
            ).fetchall()
        )
    for vid_hex, blob in rows:
        scan.scanned.add(str(vid_hex))
        try:
            tensors = decode_manifest(bytes(blob)).tensors
        except (DecodeError, MvcdbError, ValueError, TypeError):
            scan.unreadable.append(str(vid_hex))
            continue
        for t in tensors:
            scan.named.update(h for h in t.hashes if h in hashes)
    return scan


def _delete_unneeded(conn: sqlite3.Connection, prescan: _ManifestScan) -> tuple[int, int, int, list[str]]:
    """Inside gc's write transaction: delete the chunks no version needs; return (deleted, their
    stored bytes, kept only because a manifest names them, notes for the user). prescan is the
    scan made before the lock: only what changed since is decoded here."""
    unused = {
        int(cid): (bytes(digest), base, int(stored))
        for cid, digest, base, stored in conn.execute(
            f"SELECT cid, hash, base, length(data) FROM chunks WHERE cid NOT IN ({_LIVE_CHUNKS})"
        )
    }
    if not unused:
        return 0, 0, 0, []
    hashes = {digest for digest, _, _ in unused.values()}
    now = [str(i) for (i,) in conn.execute("SELECT id FROM versions")]
    fresh = _scan_manifests(conn, hashes - prescan.looked_for)  # unreferenced since: all versions
    later = _scan_manifests(conn, hashes & prescan.looked_for, [i for i in now if i not in prescan.scanned])
    named_hashes = (hashes & prescan.named) | fresh.named | later.named
    present = set(now)
    unreadable = (
        [i for i in prescan.unreadable if i in present]
        + later.unreadable
        + [i for i in fresh.unreadable if i not in prescan.unreadable]
    )
    notes: list[str] = []
    if unreadable:
        notes.append(
            f"the manifest of version {unreadable[0][:12]}"
            + (f" (and {len(unreadable) - 1} more)" if len(unreadable) > 1 else "")
            + f" cannot be decoded, so which chunks it needs is unknown: kept all {len(unused)}"
            " unreferenced chunk(s); run mvcdb verify (and mvcdb rm a version beyond repair)"
        )
        return 0, 0, 0, notes
    named = {cid for cid, (digest, _, _) in unused.items() if digest in named_hashes}
    keep = set(named)
    todo = list(named)
    while todo:  # the delta bases of a kept chunk are kept too (a base in use is live already)
        base = unused[todo.pop()][1]
        if base is not None and base in unused and base not in keep:
            keep.add(base)
            todo.append(base)
    if named:
        notes.append(
            f"kept {len(named)} chunk(s) no tensor row uses but a version's manifest names"
            + (f" (and {len(keep) - len(named)} delta base(s) of them)" if len(keep) > len(named) else "")
            + ": the file's rows are damaged; run mvcdb verify"
        )
    doomed = sorted(set(unused) - keep)
    for i in range(0, len(doomed), _ID_BATCH):
        conn.execute(
            "DELETE FROM chunks WHERE cid IN (SELECT value FROM json_each(?))",
            (json.dumps(doomed[i : i + _ID_BATCH]),),
        )
    return len(doomed), sum(unused[cid][2] for cid in doomed), len(named), notes


#: Ids per `json_each(?)` question of gc.
_ID_BATCH = 20_000


# -- rm ----------------------------------------------------------------------------------------


def rm(db: Database, ref: ParentRef, *, force: bool = False) -> str:
    """Delete one version and return its id; its chunks stay until gc.

    A version with children is refused unless force=True; then the children keep everything of
    their own and only lose their lineage edge to it (nothing is re-parented). Tags pointing at it
    are deleted, each with a tag_history entry.
    """
    db._check_writable()
    vid = db._vid(ref)
    vid_hex = db._id_of(vid)
    author, at = current_author(), now_text()
    with write_transaction(db.conn):
        row = db.conn.execute("SELECT id FROM versions WHERE vid = ?", (vid,)).fetchone()
        if row is None or row[0] != vid_hex:
            raise MvcdbError(f"version {vid_hex[:12]} was removed by someone else meanwhile")
        children = [
            r[0]
            for r in db.conn.execute(
                "SELECT v.id FROM lineage l JOIN versions v ON v.vid = l.child WHERE l.parent = ?"
                " ORDER BY v.created_at",
                (vid,),
            )
        ]
        if children and not force:
            shown = ", ".join(c[:12] for c in children[:5]) + (" ..." if len(children) > 5 else "")
            raise MvcdbError(
                f"version {vid_hex[:12]} has {len(children)} child version(s) ({shown});"
                " use --force (force=True) to remove it anyway"
            )
        for (name,) in db.conn.execute("SELECT name FROM tags WHERE vid = ?", (vid,)).fetchall():
            db.conn.execute("DELETE FROM tags WHERE name = ?", (name,))
            db._log_tag(name, vid_hex, None, author, at)
        db.conn.execute("DELETE FROM lineage WHERE parent = ?", (vid,))
        db.conn.execute("DELETE FROM versions WHERE vid = ?", (vid,))
    return vid_hex
