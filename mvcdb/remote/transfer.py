"""push, pull and clone: set unions between a local .db and a PostgreSQL remote.

Ids are content hashes, so a transfer is "send what the other side lacks", asked in batches (one
round trip per few thousand ids or hashes, never one per chunk). Order makes interruption safe:
chunks first (each batch its own transaction, verified against its hash before sending and after
receiving), then version rows parents-first, a batch per transaction — a version becomes visible
on either side only once all its chunks and rows are there. Rerunning finishes the job. Tags move
like git refs: only forward along the lineage unless forced, every remote move kept in history.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import chunkcodec, inline
from ..author import current_author
from ..blobstore import MAX_CHUNK_BYTES
from ..connection import connect, write_transaction
from ..copying import (
    IncomingVersion,
    TagMove,
    check_tag_move,
    chunk_rows,
    ids_to_vids,
    insert_tag_moves,
    insert_versions,
    is_full_id,
    keep_tag_position,
    sized_batches,
    topological,
    verified_manifest,
)
from ..errors import DecodeError, IntegrityError, MvcdbError, RefError
from ..refs import HEX_RE, MIN_PREFIX, check_tag_name, latest_of, ref_list, split_ref
from ..timeutil import now_text
from . import pg, urls
from .chunks import insert_encoded, insert_stubs

if TYPE_CHECKING:
    import psycopg

    from ..database import Database

ProgressCallback = Callable[[int, int, str], None]

#: Ids or hashes per "which of these do you have?" question.
ASK_BATCH = 2000
#: Chunk bytes (raw) per transfer batch, and at most this many chunks per batch.
BATCH_BYTES = 32 * 1024 * 1024
BATCH_CHUNKS = 256
#: Versions per transaction.
VERSION_BATCH = 200
SELF_CONTAINED = (chunkcodec.RAW, chunkcodec.ZSTD, chunkcodec.PLANES)
#: The chunk id given to a tiny tensor's bytes kept in its row (mvcdb/inline.py): it has no chunk row.
IN_ROW = -1
LAZY_META_KEY = "lazy_remote"


class PushRejectedError(MvcdbError):
    """Some remote tags were not moved because the move was not a fast-forward (see message)."""

    def __init__(self, message: str, report: TransferReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class TransferReport:
    """What a push or pull moved. Counts are of things the other side lacked."""

    remote: str
    versions: int = 0
    chunks: int = 0
    bytes: int = 0
    tags_moved: list[str] = field(default_factory=list)
    tags_rejected: list[str] = field(default_factory=list)
    tags_kept: list[str] = field(default_factory=list)
    stubs: int = 0
    #: versions a push left out (their parent was removed locally and is not on the remote)
    skipped: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "remote": self.remote,
            "versions": self.versions,
            "chunks": self.chunks,
            "bytes": self.bytes,
            "tags_moved": self.tags_moved,
            "tags_rejected": self.tags_rejected,
            "tags_kept": self.tags_kept,
            "chunks_not_fetched": self.stubs,
            "skipped": self.skipped,
        }


class _Progress:
    """Turns transfer steps into cb(bytes_done, bytes_total, "n/m versions")."""

    def __init__(self, cb: ProgressCallback | None) -> None:
        self.cb = cb
        self.bytes_done = self.bytes_total = self.versions_done = self.versions_total = 0

    def show(self) -> None:
        if self.cb is not None:
            what = f"{self.versions_done}/{self.versions_total} versions" if self.versions_total else "chunks"
            self.cb(self.bytes_done, self.bytes_total, what)

    def add_bytes(self, n: int) -> None:
        self.bytes_done += n
        self.show()

    def add_versions(self, n: int) -> None:
        self.versions_done += n
        self.show()


def _batches(items: Sequence[Any], size: int = ASK_BATCH) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _chunk_batches(hashes: Iterable[bytes], size: Callable[[bytes], int]) -> Iterator[list[bytes]]:
    """Chunk hashes in transfer batches (BATCH_BYTES, BATCH_CHUNKS, read when called)."""
    return sized_batches(hashes, size, max_bytes=BATCH_BYTES, max_count=BATCH_CHUNKS)


def _connect(db: Database, remote: str | None) -> tuple[str, str, psycopg.Connection[Any]]:
    name, url = urls.resolve(db.conn, remote)
    return name or urls.redact(url), url, pg.connect(url)


# -- verifying chunks ------------------------------------------------------------------------------


def _decode_verified(digest: bytes, size: int, codec: int, itemsize: int, payload: bytes) -> np.ndarray:
    """Decode a self-contained chunk payload and check its hash; IntegrityError if it lies."""
    if not 0 <= size <= MAX_CHUNK_BYTES:
        raise IntegrityError(f"chunk {digest.hex()[:16]} claims an impossible size ({size} bytes)")
    out = np.empty(size, dtype=np.uint8)
    try:
        chunkcodec.decode_into(codec, itemsize, payload, size, out)
    except DecodeError as exc:
        raise IntegrityError(f"chunk {digest.hex()[:16]} is corrupt: {exc}") from None
    if hashlib.sha256(out.data).digest() != digest:
        raise IntegrityError(f"chunk {digest.hex()[:16]} does not match its hash")
    return out


# -- push ------------------------------------------------------------------------------------------


def push(
    db: Database,
    remote: str | None,
    refs: Iterable[str] | None = None,
    *,
    force: bool = False,
    progress: ProgressCallback | None = None,
) -> TransferReport:
    """Send the remote every version (and its ancestors), chunk and tag it lacks.

    Args:
        remote: a remote name, a postgresql:// URL, or None for origin (or the only remote).
        refs: what to push (refs and their ancestors; tags named here are pushed too); None = all.
        force: move remote tags even when the move is not a fast-forward.

    Raises:
        PushRejectedError: after pushing everything else, if some tags could not be moved.
    """
    refs = [refs] if isinstance(refs, str) else refs
    name, url, conn = _connect(db, remote)
    psycopg = pg.driver()
    try:
        pg.ensure_schema(conn, url)
        return _push(db, conn, name, refs, force=force, progress=_Progress(progress))
    except psycopg.Error as exc:
        raise pg.remote_error(url, exc) from None
    finally:
        conn.close()


def _local_closure(db: Database, refs: Iterable[str] | None) -> tuple[list[tuple[int, str]], list[str]]:
    """(vid, id) of the versions to push, and the local tag names to push."""
    tags = db.tags()
    if refs is None:
        rows = db.conn.execute("SELECT vid, id FROM versions ORDER BY vid").fetchall()
        return [(int(v), str(i)) for v, i in rows], sorted(tags)
    refs = list(refs)
    starts = [db._vid(r) for r in refs]
    tag_names = sorted({r for r in refs if r in tags})
    rows = db.conn.execute(
        "WITH RECURSIVE anc(vid) AS (SELECT value FROM json_each(?)"
        " UNION SELECT l.parent FROM lineage l JOIN anc ON l.child = anc.vid)"
        " SELECT v.vid, v.id FROM anc JOIN versions v ON v.vid = anc.vid ORDER BY v.vid",
        (json.dumps(starts),),
    ).fetchall()
    return [(int(v), str(i)) for v, i in rows], tag_names


def _without_parents(
    conn: psycopg.Connection[Any], incoming: dict[str, IncomingVersion], remote_has: set[str]
) -> dict[str, str]:
    """child id -> a parent id it cannot be pushed without: parents neither pushed along nor on
    the remote (removed here with rm --force), and the descendants of such versions. Parents the
    remote has are added to remote_has (the local closure cannot see them: their edges are gone)."""
    named = {p for v in incoming.values() for p in v.manifest.parents}
    remote_has |= _remote_has_versions(conn, sorted(named - incoming.keys() - remote_has))
    orphans: dict[str, str] = {}
    changed = True
    while changed:  # a version whose parent cannot go cannot go either
        changed = False
        for child, version in incoming.items():
            if child in orphans:
                continue
            for parent in version.manifest.parents:
                if parent in orphans or (parent not in incoming and parent not in remote_has):
                    orphans[child] = parent
                    changed = True
                    break
    return orphans


def _remote_has_versions(conn: psycopg.Connection[Any], ids: Sequence[str]) -> set[str]:
    have: set[str] = set()
    for part in _batches(ids):
        have.update(
            r[0] for r in conn.execute("SELECT id FROM mvcdb.versions WHERE id = ANY(%s)", (list(part),))
        )
    return have


def _remote_has_chunks(conn: psycopg.Connection[Any], hashes: Sequence[bytes]) -> set[bytes]:
    have: set[bytes] = set()
    for part in _batches(hashes):
        have.update(
            bytes(r[0])
            for r in conn.execute("SELECT hash FROM mvcdb.chunks WHERE hash = ANY(%s)", (list(part),))
        )
    return have


def _push(
    db: Database,
    conn: psycopg.Connection[Any],
    name: str,
    refs: Iterable[str] | None,
    *,
    force: bool,
    progress: _Progress,
) -> TransferReport:
    report = TransferReport(name)
    wanted, tag_names = _local_closure(db, refs)
    remote_has = _remote_has_versions(conn, [i for _, i in wanted])
    missing = [(vid, vid_hex) for vid, vid_hex in wanted if vid_hex not in remote_has]
    incoming: dict[str, IncomingVersion] = {}
    for part in _batches([v for v, _ in missing], 500):
        for vid_hex, blob in db.conn.execute(
            "SELECT id, manifest FROM versions WHERE vid IN (SELECT value FROM json_each(?))",
            (json.dumps(list(part)),),
        ):
            incoming[vid_hex] = verified_manifest(vid_hex, bytes(blob))
    orphans = _without_parents(conn, incoming, remote_has)
    if orphans and refs is not None:
        child, parent = next(iter(orphans.items()))
        raise MvcdbError(
            f"cannot push version {child[:12]}: its parent {parent[:12]} was removed here (rm --force)"
            " and the remote does not have it"
        )
    for child, parent in orphans.items():  # a plain push sends everything else
        del incoming[child]
        report.skipped.append(
            f"{child[:12]} (its parent {parent[:12]} was removed here and is not on the remote)"
        )
    if orphans:  # and the tags on them
        local_tags = db.tags()
        tag_names = [t for t in tag_names if local_tags[t] not in orphans]
    order = topological(dict(sorted(incoming.items())), remote_has)
    hashes = sorted({h for v in incoming.values() for t in v.manifest.tensors for h in t.hashes})
    need = sorted(set(hashes) - _remote_has_chunks(conn, hashes))
    local = chunk_rows(db.conn, need)
    tiny: dict[bytes, bytes] = {}
    if any(h not in local for h in need):  # tiny tensors kept in their row travel as raw chunks
        found = inline.chunks_of(db.conn, [vid for vid, _ in missing])
        tiny = {h: raw for h, (raw, _) in found.items() if h not in local}
        local.update({h: (IN_ROW, len(raw), chunkcodec.RAW) for h, raw in tiny.items()})
    absent = [h for h in need if h not in local]
    if absent:
        raise IntegrityError(f"chunk {absent[0].hex()[:16]} is missing from {db.path}; run `mvcdb verify`")
    stubs = [h for h in need if local[h][2] == chunkcodec.STUB]
    if stubs:
        raise MvcdbError(
            f"{len(stubs)} chunks of the versions to push were never fetched into this lazy clone "
            f"and the remote {name} lacks them; restore those versions first"
        )
    progress.bytes_total = sum(local[h][1] for h in need)
    progress.versions_total = len(order)
    progress.show()
    _send_chunks(db, conn, need, local, tiny, report, progress)
    for part in _batches(order, VERSION_BATCH):
        # one global order inside transactions: concurrent pushers cannot deadlock
        batch = sorted(v.id for v in part)

        def insert(batch: Sequence[str] = batch) -> int:
            return _insert_remote_versions(conn, incoming, batch)

        report.versions += pg.retrying(conn, insert)
        progress.add_versions(len(part))
    _push_tags(db, conn, tag_names, force, report)
    if report.tags_rejected:
        raise PushRejectedError(
            f"pushed {report.versions} versions, but remote tags were not moved (not a fast-forward: "
            f"pull first, or push --force): {'; '.join(report.tags_rejected)}",
            report,
        )
    return report


def _chunk_payloads(
    db: Database, need: Sequence[bytes], local: dict[bytes, tuple[int, int, int]], tiny: dict[bytes, bytes]
) -> Iterator[list[tuple[bytes, int, int, int, bytes]]]:
    """Batches of verified (hash, size, codec, itemsize, payload) ready to send, one batch ahead.

    tiny: the raw bytes (already checked) of in-row tensors, sent as raw chunks."""

    def prepare(digest: bytes, size: int, codec: int, itemsize: int, payload: bytes) -> tuple[Any, ...]:
        _decode_verified(digest, size, codec, itemsize, payload)
        return digest, size, codec, itemsize, payload

    def reencode(digest: bytes, raw: bytes, itemsize: int) -> tuple[Any, ...]:
        enc = chunkcodec.encode(memoryview(raw), itemsize)
        return digest, len(raw), enc.codec, enc.itemsize, bytes(enc.payload)

    def submit(digest: bytes) -> Future[tuple[Any, ...]]:
        cid, size, _ = local[digest]
        if cid == IN_ROW:
            done: Future[tuple[Any, ...]] = Future()
            done.set_result((digest, size, chunkcodec.RAW, 1, tiny[digest]))
            return done
        row = db.conn.execute("SELECT codec, itemsize, data FROM chunks WHERE cid = ?", (cid,)).fetchone()
        codec, itemsize, payload = int(row[0]), int(row[1]), bytes(row[2])
        codec, payload = chunkcodec.without_check(codec, payload)  # remotes store codecs 0-2
        if codec in SELF_CONTAINED:
            return db.store.pool.submit(prepare, digest, size, codec, itemsize, payload)
        raw = db.store.read_chunk(cid)  # a delta or other local-only encoding: send a self-contained one
        return db.store.pool.submit(reencode, digest, raw, itemsize)

    pending: deque[list[Future[tuple[Any, ...]]]] = deque()
    for part in _chunk_batches(need, lambda h: local[h][1]):
        pending.append([submit(h) for h in part])
        if len(pending) > 1:
            yield [f.result() for f in pending.popleft()]
    while pending:
        yield [f.result() for f in pending.popleft()]


def _send_chunks(
    db: Database,
    conn: psycopg.Connection[Any],
    need: Sequence[bytes],
    local: dict[bytes, tuple[int, int, int]],
    tiny: dict[bytes, bytes],
    report: TransferReport,
    progress: _Progress,
) -> None:
    for rows in _chunk_payloads(db, need, local, tiny):

        def send(rows: list[tuple[bytes, int, int, int, bytes]] = rows) -> None:
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO mvcdb.chunks (hash, size, codec, itemsize, data) VALUES (%b, %b, %b, %b, %b)"
                    " ON CONFLICT (hash) DO NOTHING",
                    rows,
                )

        pg.retrying(conn, send)
        report.chunks += len(rows)
        report.bytes += sum(len(r[4]) for r in rows)
        progress.add_bytes(sum(r[1] for r in rows))


def _pg_text(text: str) -> str:
    """PostgreSQL text cannot hold NUL; the manifest (bytea) keeps the exact value."""
    return text.replace("\x00", "\ufffd")


def _insert_remote_versions(
    conn: psycopg.Connection[Any], incoming: dict[str, IncomingVersion], batch: Sequence[str]
) -> int:
    """Insert the batch's version rows (ON CONFLICT DO NOTHING) and, for the new ones, the rest."""
    from ..blobstore import tensor_digest

    vs = [incoming[i] for i in batch]
    cur = conn.execute(
        "INSERT INTO mvcdb.versions"
        " (id, model, message, author, created_at, metadata, params_bytes, manifest)"
        " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[],"
        " %s::bigint[], %s::bytea[]) ON CONFLICT (id) DO NOTHING RETURNING id",
        (
            [v.id for v in vs],
            [_pg_text(v.manifest.model) for v in vs],
            [_pg_text(v.manifest.message) for v in vs],
            [_pg_text(v.manifest.author) for v in vs],
            [v.manifest.created_at for v in vs],
            [_pg_text(v.manifest.metadata) for v in vs],
            [sum(t.nbytes for t in v.manifest.tensors if t.kind == "param") for v in vs],
            [v.blob for v in vs],
        ),
    )
    new = {r[0] for r in cur.fetchall()}
    mine = [v for v in vs if v.id in new]
    if not mine:
        return 0
    lineage = [(v.id, p, i) for v in mine for i, p in enumerate(v.manifest.parents)]
    metrics = [(v.id, _pg_text(n), x) for v in mine for n, x in v.manifest.metrics]
    tensors = [(v.id, t) for v in mine for t in v.manifest.tensors]
    chunks = [(i, t.kind, _pg_text(t.name), s, h) for i, t in tensors for s, h in enumerate(t.hashes)]
    if lineage:
        conn.execute(
            "INSERT INTO mvcdb.lineage (child, parent, position)"
            " SELECT * FROM unnest(%s::text[], %s::text[], %s::int[])",
            ([r[0] for r in lineage], [r[1] for r in lineage], [r[2] for r in lineage]),
        )
    if metrics:
        conn.execute(
            "INSERT INTO mvcdb.metrics (version_id, name, value)"
            " SELECT * FROM unnest(%s::text[], %s::text[], %s::float8[])",
            ([r[0] for r in metrics], [r[1] for r in metrics], [r[2] for r in metrics]),
        )
    if tensors:
        conn.execute(
            "INSERT INTO mvcdb.tensors (version_id, kind, name, dtype, shape, nbytes, digest)"
            " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[],"
            " %s::bigint[], %s::text[])",
            (
                [i for i, _ in tensors],
                [t.kind for _, t in tensors],
                [_pg_text(t.name) for _, t in tensors],
                [t.dtype for _, t in tensors],
                [json.dumps(list(t.shape)) for _, t in tensors],
                [t.nbytes for _, t in tensors],
                [tensor_digest(t.dtype, t.shape, t.hashes) for _, t in tensors],
            ),
        )
    if chunks:
        conn.execute(
            "INSERT INTO mvcdb.tensor_chunks (version_id, kind, name, seq, hash)"
            " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::int[], %s::bytea[])",
            tuple([r[k] for r in chunks] for k in range(5)),
        )
    return len(mine)


def _remote_descends(conn: psycopg.Connection[Any], child: str, ancestor: str) -> bool:
    row = conn.execute(
        "WITH RECURSIVE anc(id) AS (SELECT %s::text UNION SELECT l.parent FROM mvcdb.lineage l"
        " JOIN anc ON l.child = anc.id) SELECT EXISTS (SELECT 1 FROM anc WHERE id = %s)",
        (child, ancestor),
    ).fetchone()
    return bool(row and row[0])


def _push_tags(
    db: Database, conn: psycopg.Connection[Any], tag_names: Sequence[str], force: bool, report: TransferReport
) -> None:
    local = db.tags()
    author = current_author()
    for tag in tag_names:
        target = local[tag]

        def move(tag: str = tag, target: str = target) -> None:
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"mvcdb.tag/{tag}",))
            row = conn.execute("SELECT version_id FROM mvcdb.tags WHERE name = %s", (tag,)).fetchone()
            current = row[0] if row else None
            if current == target:
                return
            forced = False
            if current is not None and not _remote_descends(conn, target, current):
                if not force:
                    report.tags_rejected.append(f"{tag}: remote {current[:12]}, local {target[:12]}")
                    return
                forced = True
            conn.execute(
                "INSERT INTO mvcdb.tags (name, version_id) VALUES (%s, %s)"
                " ON CONFLICT (name) DO UPDATE SET version_id = excluded.version_id",
                (tag, target),
            )
            conn.execute(
                "INSERT INTO mvcdb.tag_history (name, from_id, to_id, author, at, forced)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (tag, current, target, _pg_text(author), now_text(), forced),
            )
            report.tags_moved.append(tag)

        pg.retrying(conn, move)


# -- pull ------------------------------------------------------------------------------------------


def pull(
    db: Database,
    remote: str | None,
    refs: Iterable[str] | None = None,
    *,
    progress: ProgressCallback | None = None,
    lazy: bool | None = None,
) -> TransferReport:
    """Copy in every version (with its ancestors), chunk and tag of the remote this file lacks.

    Args:
        remote: a remote name, a postgresql:// URL, or None for origin (or the only remote).
        refs: what to pull (remote refs: tags, ids, prefixes, MODEL@latest, REF~N); None = all.
        lazy: fetch no parameter chunks (stubs, fetched on restore); default: whether this file
            is a lazy clone.

    Local tags move to the remote's position when that is a fast-forward; a local tag that has
    moved elsewhere is kept (listed in tags_kept). The remote's tag history is copied in.
    """
    db._check_writable()
    refs = [refs] if isinstance(refs, str) else refs
    name, url, conn = _connect(db, remote)
    psycopg = pg.driver()
    if lazy is None:
        lazy = _lazy_remote(db) is not None
    try:
        pg.check_schema(conn, url)
        return _pull(db, conn, name, refs, lazy=lazy, progress=_Progress(progress))
    except psycopg.Error as exc:
        raise pg.remote_error(url, exc) from None
    finally:
        conn.close()


def _resolve_remote_ref(conn: psycopg.Connection[Any], ref: str) -> str:
    """A ref on the remote (tag, id, prefix >= 4 hex, MODEL@latest, ~N suffixes) -> full id."""
    base, steps = split_ref(ref.strip())
    row: Any = None
    model = latest_of(base, ref)
    if model is not None:
        row = conn.execute(
            "SELECT id FROM mvcdb.versions WHERE model = %s ORDER BY created_at DESC, id DESC LIMIT 1",
            (model,),
        ).fetchone()
    else:
        row = conn.execute("SELECT version_id FROM mvcdb.tags WHERE name = %s", (base,)).fetchone()
        lowered = base.lower()
        if row is None and HEX_RE.match(lowered) and len(lowered) >= MIN_PREFIX:
            rows = conn.execute(
                "SELECT id FROM mvcdb.versions WHERE id >= %s AND id < %s ORDER BY id LIMIT 2",
                (lowered, lowered + "g"),
            ).fetchall()
            if len(rows) > 1:
                raise RefError(f"ambiguous ref {base!r} on the remote")
            row = rows[0] if rows else None
    if row is None:
        raise RefError(f"unknown ref {ref!r} on the remote")
    vid_hex = str(row[0])
    for i in range(steps):
        parent = conn.execute(
            "SELECT parent FROM mvcdb.lineage WHERE child = %s AND position = 0", (vid_hex,)
        ).fetchone()
        if parent is None:
            why = f"{base} is a root version: it has no parent" if i == 0 else f"{base}~{i} has no parent"
            raise RefError(f"{ref!r}: {why} on the remote")
        vid_hex = str(parent[0])
    return vid_hex


def _remote_closure(conn: psycopg.Connection[Any], refs: Iterable[str] | None) -> tuple[list[str], list[str]]:
    """The remote ids to pull and the remote tag names to pull."""
    tags = [str(r[0]) for r in conn.execute("SELECT name FROM mvcdb.tags ORDER BY name")]
    if refs is None:
        return [str(r[0]) for r in conn.execute("SELECT id FROM mvcdb.versions")], tags
    refs = list(refs)
    starts = [_resolve_remote_ref(conn, r) for r in refs]
    rows = conn.execute(
        "WITH RECURSIVE anc(id) AS (SELECT unnest(%s::text[])"
        " UNION SELECT l.parent FROM mvcdb.lineage l JOIN anc ON l.child = anc.id) SELECT id FROM anc",
        (starts,),
    ).fetchall()
    return [str(r[0]) for r in rows], sorted(set(refs) & set(tags))


def _pull(
    db: Database,
    conn: psycopg.Connection[Any],
    name: str,
    refs: Iterable[str] | None,
    *,
    lazy: bool,
    progress: _Progress,
) -> TransferReport:
    report = TransferReport(name)
    wanted, tag_names = _remote_closure(conn, refs)
    present = ids_to_vids(db.conn, sorted(wanted))
    missing = sorted(set(wanted) - set(present))
    incoming: dict[str, IncomingVersion] = {}
    for part in _batches(missing, 500):
        for vid_hex, blob in conn.execute(
            "SELECT id, manifest FROM mvcdb.versions WHERE id = ANY(%s)", (list(part),)
        ):
            incoming[vid_hex] = verified_manifest(vid_hex, bytes(blob))
    order = topological(dict(sorted(incoming.items())), present)
    full: set[bytes] = set()
    deferred: set[bytes] = set()
    for v in incoming.values():
        for t in v.manifest.tensors:
            (deferred if lazy and t.kind == "param" else full).update(t.hashes)
    deferred -= full
    local = chunk_rows(db.conn, sorted(full | deferred))
    fetch = sorted(h for h in full if h not in local or local[h][2] == chunkcodec.STUB)
    stub = sorted(h for h in deferred if h not in local)
    sizes = _remote_sizes(conn, fetch + stub)
    lost = [h for h in fetch + stub if h not in sizes]
    if lost:
        raise IntegrityError(f"the remote lacks chunk {lost[0].hex()[:16]} of a version it lists")
    progress.bytes_total = sum(sizes[h] for h in fetch)
    progress.versions_total = len(order)
    progress.show()
    if stub:
        insert_stubs(db.conn, {h: sizes[h] for h in stub})
        report.stubs = len(stub)
    fetch_chunks(db, conn, fetch, sizes, report, progress)
    added = insert_versions(db.conn, order, batch=VERSION_BATCH, progress=progress.add_versions)
    report.versions = len(added)
    _pull_tags(db, conn, tag_names, report)
    return report


def _remote_sizes(conn: psycopg.Connection[Any], hashes: Sequence[bytes]) -> dict[bytes, int]:
    sizes: dict[bytes, int] = {}
    for part in _batches(hashes):
        for digest, size in conn.execute(
            "SELECT hash, size FROM mvcdb.chunks WHERE hash = ANY(%s)", (list(part),)
        ):
            sizes[bytes(digest)] = int(size)
    return sizes


def fetch_chunks(
    db: Database,
    conn: psycopg.Connection[Any],
    hashes: Sequence[bytes],
    sizes: dict[bytes, int],
    report: TransferReport,
    progress: _Progress,
    *,
    writer: sqlite3.Connection | None = None,
) -> None:
    """Fetch the chunks from the remote in batches, verify each, and store it locally.

    A pipeline: batch k+1 is fetched (on a thread of its own) while batch k is verified on the
    pool and batch k-1 is written. Chunks are stored in the encoding they arrived in
    (self-contained codecs 0-2, verified here against their SHA-256) with the seeded XXH3 check
    put in front (codecs 5-7, what record writes); a chunk stored as a stub (not fetched yet)
    gets its bytes filled in place, keeping its cid.
    """
    plan = list(_chunk_batches(hashes, sizes.__getitem__))
    if not plan:
        return
    target = writer or db.conn
    verified: tuple[list[bytes], dict[bytes, Any], list[Future[tuple[int, bytes]]]] | None = None

    def store(batch: list[bytes], got: dict[bytes, Any], checks: list[Future[tuple[int, bytes]]]) -> None:
        checked = [check.result() for check in checks]
        insert_encoded(
            target,
            [
                (h, int(got[h][1]), codec, int(got[h][3]), data)
                for h, (codec, data) in zip(batch, checked, strict=True)
            ],
        )
        report.chunks += len(batch)
        report.bytes += sum(len(got[h][4]) for h in batch)
        progress.add_bytes(sum(sizes[h] for h in batch))

    with ThreadPoolExecutor(1, thread_name_prefix="mvcdb-fetch") as fetcher:
        fetching = fetcher.submit(_fetch_batch, conn, plan[0])
        try:
            for k, batch in enumerate(plan):
                got = fetching.result()
                if k + 1 < len(plan):
                    fetching = fetcher.submit(_fetch_batch, conn, plan[k + 1])
                checks = [
                    db.store.pool.submit(
                        _verify, h, int(got[h][1]), int(got[h][2]), int(got[h][3]), got[h][4]
                    )
                    for h in batch
                ]
                if verified is not None:
                    store(*verified)
                verified = (batch, got, checks)
            if verified is not None:
                store(*verified)
        finally:
            fetching.cancel()


def _fetch_batch(conn: psycopg.Connection[Any], batch: list[bytes]) -> dict[bytes, Any]:
    """One batch of chunk rows from the remote, by hash; IntegrityError if any is missing."""
    with conn.cursor(binary=True) as cur:
        cur.execute(
            "SELECT hash, size, codec, itemsize, data FROM mvcdb.chunks WHERE hash = ANY(%s)", (batch,)
        )
        got = {bytes(r[0]): r for r in cur.fetchall()}
    absent = [h for h in batch if h not in got]
    if absent:
        raise IntegrityError(f"the remote lacks chunk {absent[0].hex()[:16]}")
    return got


def _verify(digest: bytes, size: int, codec: int, itemsize: int, payload: bytes) -> tuple[int, bytes]:
    """Check a fetched chunk against its hash; return it as stored here: with the seeded XXH3
    check in front (a checked codec), so restores check it without re-hashing SHA-256."""
    raw = _decode_verified(digest, size, codec, itemsize, payload)
    return chunkcodec.with_check(codec, payload, chunkcodec.checksum(raw, digest))


def _local_descends(db: Database, child: str, ancestor: str) -> bool:
    row = db.conn.execute(
        "WITH RECURSIVE anc(vid) AS (SELECT vid FROM versions WHERE id = ?"
        " UNION SELECT l.parent FROM lineage l JOIN anc ON l.child = anc.vid)"
        " SELECT EXISTS (SELECT 1 FROM anc JOIN versions v ON v.vid = anc.vid WHERE v.id = ?)",
        (child, ancestor),
    ).fetchone()
    return bool(row and row[0])


def _valid_tag_row(name: object, target: object) -> bool:
    try:
        check_tag_name(name)
    except MvcdbError:
        return False
    return is_full_id(target)


def _valid_moves(rows: Iterable[Sequence[Any]]) -> list[TagMove]:
    """The remote tag_history rows that have the shape mvcdb writes (the others are not copied)."""
    moves: list[TagMove] = []
    for row in rows:
        try:
            moves.append(check_tag_move(row))
        except MvcdbError:
            continue
    return moves


def _pull_tags(
    db: Database, conn: psycopg.Connection[Any], tag_names: Sequence[str], report: TransferReport
) -> None:
    """Fast-forward local tags to the remote's, keep diverged ones, copy the remote's tag history."""
    if not tag_names:
        return
    remote_tags = {
        name: target
        for name, target in conn.execute(
            "SELECT name, version_id FROM mvcdb.tags WHERE name = ANY(%s)", (list(tag_names),)
        ).fetchall()
        if _valid_tag_row(name, target)
    }
    history = _valid_moves(
        conn.execute(
            "SELECT name, from_id, to_id, author, at FROM mvcdb.tag_history"
            " WHERE name = ANY(%s) ORDER BY seq",
            (list(tag_names),),
        ).fetchall()
    )
    local = db.tags()
    deleted_here = {  # tags whose last move here was a deletion: kept deleted, as merge does
        str(name)
        for (name,) in db.conn.execute(
            "SELECT h.name FROM tag_history h WHERE h.name IN (SELECT value FROM json_each(?))"
            " AND h.to_id IS NULL AND h.seq = (SELECT max(seq) FROM tag_history WHERE name = h.name)",
            (json.dumps(list(tag_names)),),
        )
    }
    author, at = current_author(), now_text()
    with write_transaction(db.conn):
        insert_tag_moves(db.conn, history)
        for tag, target in sorted(remote_tags.items()):
            mine = local.get(tag)
            row = db.conn.execute("SELECT vid FROM versions WHERE id = ?", (target,)).fetchone()
            if mine == target or row is None:
                continue
            if (mine is not None and not _local_descends(db, target, mine)) or (
                mine is None and tag in deleted_here
            ):
                report.tags_kept.append(tag)  # moved elsewhere or deleted locally: the user decides
                keep_tag_position(db.conn, tag, mine, author, at)
                continue
            db.conn.execute(
                "INSERT INTO tags (name, vid) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET vid = excluded.vid",
                (tag, row[0]),
            )
            if not _history_ends_at(db.conn, tag, target):  # the copied history does not say
                # how it got there (the remote's moves end elsewhere, or earlier than ours): say it here
                db.conn.execute(
                    "INSERT OR IGNORE INTO tag_history (name, from_id, to_id, author, at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (tag, mine, target, author, at),
                )
            report.tags_moved.append(tag)


def _history_ends_at(conn: sqlite3.Connection, tag: str, target: str) -> bool:
    """True if the tag's history, read in order (as `tags --history` shows it), ends at target."""
    last = conn.execute(
        "SELECT to_id FROM tag_history WHERE name = ? ORDER BY at DESC, seq DESC LIMIT 1", (tag,)
    ).fetchone()
    return last is not None and last[0] == target


# -- clone and lazy clones -------------------------------------------------------------------------


def _lazy_remote(db: Database) -> str | None:
    row = db.conn.execute("SELECT value FROM meta WHERE key = ?", (LAZY_META_KEY,)).fetchone()
    return str(row[0]) if row else None


def clone(
    url: str,
    path: str | Path,
    *,
    lazy: bool = False,
    name: str = urls.DEFAULT_REMOTE,
    progress: ProgressCallback | None = None,
) -> TransferReport:
    """Create a new .db at path holding everything the remote has (lazy: no parameter chunks).

    The URL is stored as remote `name` without its password. An existing non-empty path is
    refused. An unreachable remote is reported before any file is created; a clone interrupted
    midway leaves a consistent file that `pull` finishes.
    """
    from ..database import Database

    urls.check_url(url)
    target = Path(path)
    if target.exists() and target.stat().st_size > 0:
        raise MvcdbError(f"{target} already exists; clone into a new path (or use pull)")
    psycopg = pg.driver()
    conn = pg.connect(url)  # fail before creating anything if the remote is unreachable (or refuses)
    try:
        pg.check_schema(conn, url)
    except psycopg.Error as exc:
        raise pg.remote_error(url, exc) from None
    finally:
        conn.close()
    db = Database(target)
    try:
        urls.add(db.conn, name, url)
        if lazy:
            with write_transaction(db.conn):
                db.conn.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (LAZY_META_KEY, name)
                )
        report = pull(db, url, progress=progress, lazy=lazy)
        report.remote = name
        return report
    finally:
        db.close()


class LazyFetcher:
    """The BlobStore.fetch_missing hook of a lazy clone: fetch stub chunks from the remote, keep them.

    The remote connection is opened on the first fetch and reused. A file opened read-only is
    still filled in (through a separate writable connection) when the file itself is writable:
    fetched chunks are a cache of the remote, like git's lazy fetches.
    """

    def __init__(self, db: Database, remote: str) -> None:
        self.db = db
        self.remote = remote
        self._remote: tuple[str, str, psycopg.Connection[Any]] | None = None

    def _connection(self) -> tuple[str, str, psycopg.Connection[Any]]:
        if self._remote is None or self._remote[2].closed or self._remote[2].broken:
            self._remote = _connect(self.db, self.remote)
        return self._remote

    def __call__(
        self, cids: list[int], report: TransferReport | None = None, progress: _Progress | None = None
    ) -> None:
        """Fetch the stub chunks among cids (others are skipped); report and progress, if given,
        count what was fetched."""
        db = self.db
        rows: list[tuple[bytes, int]] = []
        for part in _batches(sorted(set(cids)), 500):
            rows.extend(
                (bytes(h), int(s))
                for h, s in db.conn.execute(
                    f"SELECT hash, size FROM chunks WHERE codec = {chunkcodec.STUB}"
                    " AND cid IN (SELECT value FROM json_each(?))",
                    (json.dumps(list(part)),),
                )
            )
        if not rows:
            return
        writer = db.conn
        if db.readonly:
            if not os.access(db.path, os.W_OK):
                raise MvcdbError(
                    f"{db.path} is a lazy clone and these parameters were not fetched yet, "
                    "but the file is not writable: fetch them where it is (mvcdb restore)"
                )
            writer = connect(db.path, readonly=False)
        name, url, conn = self._connection()
        psycopg = pg.driver()
        try:
            sizes = dict(rows)
            progress = progress or _Progress(None)
            progress.bytes_total = sum(sizes.values())
            progress.show()
            report = report or TransferReport(name)
            report.remote = name
            fetch_chunks(db, conn, sorted(sizes), sizes, report, progress, writer=writer)
        except psycopg.Error as exc:
            conn.close()
            raise pg.remote_error(url, exc) from None
        finally:
            if writer is not db.conn:
                writer.close()


def fetch(
    db: Database, refs: Iterable[str] | None = None, *, progress: ProgressCallback | None = None
) -> TransferReport:
    """Fetch the parameter chunks a lazy clone has not fetched yet -- of the versions refs name
    (exactly those; None: every version) -- so that restoring them needs no server afterwards.

    A file that is not a lazy clone, or has fetched everything, has nothing to fetch: the report
    counts 0 chunks.
    """
    remote = _lazy_remote(db)
    report = TransferReport(remote or "")
    args: tuple[str, ...] = ()
    if refs is None:
        query = f"SELECT cid FROM chunks WHERE codec = {chunkcodec.STUB}"
    else:
        vids = sorted({db._vid(r) for r in ref_list(refs, "refs")})
        query = (
            f"SELECT DISTINCT c.cid FROM tensor_chunks t JOIN chunks c ON c.cid = t.cid"
            f" WHERE c.codec = {chunkcodec.STUB} AND t.vid IN (SELECT value FROM json_each(?))"
        )
        args = (json.dumps(vids),)
    cids = [int(c) for (c,) in db.conn.execute(query, args)]
    if not cids:
        return report
    if remote is None:
        raise IntegrityError(
            f"{len(cids)} chunks were never fetched, and this file names no remote to fetch them from"
        )
    fetcher = db.store.fetch_missing
    if not isinstance(fetcher, LazyFetcher):
        fetcher = LazyFetcher(db, remote)
    fetcher(cids, report, _Progress(progress))
    return report


def attach_lazy_fetcher(db: Database) -> None:
    """Give a lazy clone's BlobStore its fetch_missing hook (no connection until it is needed)."""
    remote = _lazy_remote(db)
    if remote is not None:
        db.store.fetch_missing = LazyFetcher(db, remote)
