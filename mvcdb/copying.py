"""Copying versions into a local file from their manifests: what merging another file, exporting a
bundle (mvcdb/merge.py) and pushing, pulling or cloning a remote (mvcdb/remote/transfer.py) share.

Whatever arrives from elsewhere is untrusted. `verified_manifest` re-hashes a manifest against the
id it came under, decodes it strictly and checks what decoding leaves to the writer;
`check_tag_move` does the same for a tag-history row. `insert_batch` then writes the rows of
versions from their manifests alone — their chunks must already be stored locally — parents first,
inside the caller's write transaction; `insert_versions` does it a batch per short transaction, so
a version appears atomically and an interrupted copy resumes cleanly. Ids are content hashes, so a
copy is a set union: versions already present are skipped. A version that comes back after rm
--force gets back the edges its children here lost (`restore_edges`): their manifests name it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from . import manifest as manifest_mod
from . import serial
from .blobstore import StoredTensor
from .connection import write_transaction
from .errors import IntegrityError, MvcdbError
from .manifest import Manifest
from .recording import insert_version
from .refs import HEX_RE, check_model_name, check_tag_name
from .tensors import check_name
from .timeutil import parse_text

#: Hashes per `IN (?, ...)` question (bound variables are limited).
HASH_BATCH = 500
#: Ids per `json_each(?)` question.
ID_BATCH = 20_000

T = TypeVar("T")

#: A tag-history row: (name, from_id, to_id, author, at); from_id None = created, to_id None = deleted.
TagMove = tuple[str, str | None, str | None, str, str]


@dataclass(frozen=True)
class IncomingVersion:
    """A version to copy: its id, its manifest bytes, and the decoded manifest."""

    id: str
    blob: bytes
    manifest: Manifest


# -- checking what arrives -------------------------------------------------------------------------


def is_full_id(value: object) -> bool:
    """Whether value is a full version id (64 lowercase hex characters)."""
    return isinstance(value, str) and len(value) == 64 and HEX_RE.fullmatch(value) is not None


def check_timestamp(text: object) -> str:
    """Refuse a timestamp mvcdb did not write (it must sort and parse like ours)."""
    try:
        if not isinstance(text, str):
            raise TypeError
        parse_text(text)
    except (ValueError, TypeError):
        raise MvcdbError(f"invalid timestamp {str(text)[:40]!r}") from None
    return text


def verified_manifest(version_id: str, blob: bytes) -> IncomingVersion:
    """The version arriving under version_id with manifest blob, checked.

    Raises:
        IntegrityError: the id is malformed, blob does not hash to it, or it does not decode
            strictly into only what mvcdb writes (valid names, timestamp, JSON-object metadata,
            hex parent ids, no duplicates); the message names the version.
    """
    if not is_full_id(version_id):
        raise IntegrityError(f"version {str(version_id)[:12]!r} has an invalid id")
    if manifest_mod.version_id(blob) != version_id:
        raise IntegrityError(f"version {version_id[:12]} does not match its id (tampered or damaged)")
    try:
        decoded = manifest_mod.decode(blob)
        _check_contents(decoded)
    except MvcdbError as exc:
        raise IntegrityError(f"version {version_id[:12]}: {exc}") from None
    return IncomingVersion(version_id, blob, decoded)


def _check_contents(m: Manifest) -> None:
    """What manifest.decode leaves to the writer, so the local schema's checks never fire."""
    check_model_name(m.model)
    try:
        check_timestamp(m.created_at)
    except MvcdbError as exc:
        raise MvcdbError(f"invalid created_at or metadata: {exc}") from None
    try:
        metadata = json.loads(m.metadata)
    except (TypeError, ValueError, RecursionError):
        raise MvcdbError("invalid created_at or metadata: its metadata is not JSON") from None
    if not isinstance(metadata, dict):
        raise MvcdbError("invalid created_at or metadata: its metadata is not a JSON object")
    if not all(is_full_id(p) for p in m.parents):
        raise MvcdbError("it names an invalid parent id")
    if len(set(m.parents)) != len(m.parents):
        raise MvcdbError("it names the same parent twice")
    names = [check_name(n, "metric name") for n, _ in m.metrics]
    if len(set(names)) != len(names):
        raise MvcdbError("it names a metric twice")
    keys = [(t.kind, check_name(t.name)) for t in m.tensors]
    if len(set(keys)) != len(keys):
        raise MvcdbError("it names a tensor twice")


def check_tag_move(row: Sequence[object]) -> TagMove:
    """A tag-history row checked to have the shape mvcdb writes; MvcdbError naming what is wrong."""
    name, from_id, to_id, author, at = row
    if not isinstance(author, str):
        raise MvcdbError("a tag history entry has fields of the wrong type")
    tag = check_tag_name(name)
    ids: list[str | None] = []
    for ref in (from_id, to_id):
        if not (ref is None or (isinstance(ref, str) and is_full_id(ref))):
            raise MvcdbError(f"a tag history entry of {tag!r} names an invalid id")
        ids.append(ref)
    return tag, ids[0], ids[1], author, check_timestamp(at)


# -- ordering --------------------------------------------------------------------------------------


def missing_parents(versions: Iterable[IncomingVersion], present: Collection[str]) -> list[tuple[str, str]]:
    """(child id, parent id) of every parent that is neither among versions nor in present."""
    versions = list(versions)
    known = {v.id for v in versions}
    return [(v.id, p) for v in versions for p in v.manifest.parents if p not in known and p not in present]


def topological(
    versions: Mapping[str, IncomingVersion],
    present: Collection[str] = (),
    *,
    allow_missing_parents: bool = False,
) -> list[IncomingVersion]:
    """The versions parents-first (roots taken in the mapping's order).

    Every parent must be among versions or in present (ids already at the destination), unless
    allow_missing_parents (merge keeps a version whose parent was removed with rm --force).

    Raises:
        IntegrityError: a parent is missing, or the lineage has a cycle (impossible for honest
            content-hashed ids).
    """
    if not allow_missing_parents:
        for child, parent in missing_parents(versions.values(), present):
            raise IntegrityError(f"version {child[:12]}: parent {parent[:12]} is missing")
    order: list[IncomingVersion] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done
    for root in versions:
        stack: list[tuple[str, int]] = [(root, 0)]
        while stack:
            vid_hex, i = stack.pop()
            if i == 0:
                if state.get(vid_hex) == 2:
                    continue
                state[vid_hex] = 1
            parents = versions[vid_hex].manifest.parents
            if i < len(parents):
                stack.append((vid_hex, i + 1))
                p = parents[i]
                if p in versions:
                    if state.get(p) == 1:
                        raise IntegrityError(f"version {vid_hex[:12]}: its lineage contains a cycle")
                    if state.get(p) != 2:
                        stack.append((p, 0))
                continue
            state[vid_hex] = 2
            order.append(versions[vid_hex])
    return order


# -- batching -------------------------------------------------------------------------------------


def sized_batches(
    items: Iterable[T],
    size: Callable[[T], int],
    *,
    max_bytes: int,
    max_count: int,
    key: Callable[[T], object] | None = None,
) -> Iterator[list[T]]:
    """Consecutive runs of items of at most max_count items and max_bytes in total (an item larger
    than max_bytes goes alone), also split wherever key(item) changes: bounded memory per batch."""
    batch: list[T] = []
    total = 0
    for item in items:
        n = size(item)
        if batch and (
            total + n > max_bytes
            or len(batch) >= max_count
            or (key is not None and key(item) != key(batch[0]))
        ):
            yield batch
            batch, total = [], 0
        batch.append(item)
        total += n
    if batch:
        yield batch


# -- looking up what is here -----------------------------------------------------------------------


def ids_to_vids(conn: sqlite3.Connection, ids: Iterable[object]) -> dict[str, int]:
    """Local vids of the given version ids (absent ones, and anything not a string, left out)."""
    items = [i for i in ids if isinstance(i, str)]
    found: dict[str, int] = {}
    for start in range(0, len(items), ID_BATCH):
        part = json.dumps(items[start : start + ID_BATCH])
        found.update(
            conn.execute(
                "SELECT id, vid FROM versions WHERE id IN (SELECT value FROM json_each(?))", (part,)
            ).fetchall()
        )
    return found


def chunk_rows(conn: sqlite3.Connection, hashes: Sequence[bytes]) -> dict[bytes, tuple[int, int, int]]:
    """hash -> (cid, size, codec) of the given chunk hashes present locally (stub rows included)."""
    found: dict[bytes, tuple[int, int, int]] = {}
    for start in range(0, len(hashes), HASH_BATCH):
        part = hashes[start : start + HASH_BATCH]
        marks = ",".join("?" * len(part))
        for digest, cid, size, codec in conn.execute(
            f"SELECT hash, cid, size, codec FROM chunks WHERE hash IN ({marks})", part
        ):
            found[bytes(digest)] = (int(cid), int(size), int(codec))
    return found


# -- writing rows ----------------------------------------------------------------------------------


def insert_batch(
    conn: sqlite3.Connection,
    versions: Sequence[IncomingVersion],
    *,
    allow_missing_parents: bool = False,
    restored: list[tuple[str, str]] | None = None,
    orphans: set[int] | None = None,
) -> list[str]:
    """Insert the rows of versions (parents first) inside the caller's write transaction.

    Versions already present are skipped; returns the ids inserted. A parent absent here is
    skipped (its lineage edge left out) if allow_missing_parents, else IntegrityError. Versions
    here that name an inserted version as a parent but lost the edge to it (rm --force removed
    it) get the edge back in the same transaction (`restore_edges`), and (child id, parent id) of
    each is appended to restored if given. orphans: the vids that may lack an edge, from
    `incomplete_versions` before a copy of many batches (the batch adds those it inserts without
    every parent); None looks them up now, a pass over every manifest.

    Raises:
        IntegrityError: a chunk a manifest names is not stored here (a stub row counts), or a
            parent is missing; nothing of the batch is written once the caller rolls back.
    """
    hashes = sorted({h for v in versions for t in v.manifest.tensors for h in t.hashes})
    cids = {h: row[0] for h, row in chunk_rows(conn, hashes).items()}
    missing = [h for h in hashes if h not in cids]
    if missing:
        raise IntegrityError(
            f"chunk {missing[0].hex()[:16]} is missing (removed by a concurrent gc?);"
            " the copy is incomplete: run it again"
        )
    parents = {p for v in versions for p in v.manifest.parents}
    vids = ids_to_vids(conn, sorted(parents | {v.id for v in versions}))
    added: list[str] = []
    partial: set[int] = set()
    for v in versions:
        if v.id in vids:
            continue  # present already, or another process copied or recorded it meanwhile
        m = v.manifest
        edges = [(position, vids[p]) for position, p in enumerate(m.parents) if p in vids]
        complete = len(edges) == len(m.parents)
        if not complete and not allow_missing_parents:
            absent = next(p for p in m.parents if p not in vids)
            raise IntegrityError(f"version {v.id[:12]}: parent {absent[:12]} is missing")
        vid, _ = insert_version(
            conn,
            vid_of_parents=[parent for _, parent in edges] if complete else [],
            version_id_=v.id,
            manifest=v.blob,
            model=m.model,
            message=m.message,
            author=m.author,
            created_at=m.created_at,
            metadata=m.metadata,
            metrics=dict(m.metrics),
            tensors={
                (t.kind, t.name): StoredTensor(
                    t.dtype, t.shape, t.nbytes, t.hashes, tuple(cids[h] for h in t.hashes)
                )
                for t in m.tensors
            },
        )
        if not complete:  # keep each remaining parent at its manifest position
            partial.add(vid)
            conn.executemany(
                "INSERT INTO lineage (child, parent, position) VALUES (?, ?, ?)",
                [(vid, parent, position) for position, parent in edges],
            )
        vids[v.id] = vid
        added.append(v.id)
    if orphans is not None:
        orphans |= partial
    if added:
        edges_back = restore_edges(conn, {i: vids[i] for i in added}, among=orphans)
        if restored is not None:
            restored += edges_back
    return added


#: The manifest's "parents" key and the key packed right after its list (keys are sorted), and
#: the packed size of one parent id: what `_MAYBE_INCOMPLETE` looks for in the manifest bytes.
_PARENTS_KEY = serial.pack("parents")
_NEXT_KEY = serial.pack("tensors")
_PARENT_BYTES = len(serial.pack("0" * 64))

#: Versions whose lineage rows may not cover every parent their manifest names: all but those whose
#: canonical manifest shows a parents list exactly as long as their rows (a fixarray header of
#: 0x90 + count, then that many ids, then the next key). A superset: a version with 16 or more
#: parents, or whose manifest is packed otherwise, is listed too and decoded by the caller.
_MAYBE_INCOMPLETE = """
SELECT vid, id, manifest FROM (
    SELECT v.vid, v.id, v.manifest, instr(v.manifest, :key) + length(:key) AS at,
        (SELECT count(*) FROM lineage l WHERE l.child = v.vid) AS edges
    FROM versions v
)
WHERE hex(substr(manifest, at, 1)) != printf('%02X', 144 + edges)
    OR substr(manifest, at + 1 + :size * edges, length(:next)) != :next
"""


def _maybe_incomplete(conn: sqlite3.Connection) -> list[tuple[int, str, bytes]]:
    return conn.execute(
        _MAYBE_INCOMPLETE, {"key": _PARENTS_KEY, "next": _NEXT_KEY, "size": _PARENT_BYTES}
    ).fetchall()


def incomplete_versions(conn: sqlite3.Connection) -> set[int]:
    """Vids of the versions here that may lack a lineage edge to a parent their manifest names
    (a superset, found in one pass over the manifests without decoding them): what `insert_batch`
    needs to check when versions arrive, looked up once for a copy of many batches."""
    return {int(r[0]) for r in _maybe_incomplete(conn)}


def restore_edges(
    conn: sqlite3.Connection, arrived: Mapping[str, int], *, among: Collection[int] | None = None
) -> list[tuple[str, str]]:
    """Give back the lineage edges versions here lost to parents that just arrived (inside the
    caller's write transaction); return (child id, parent id) of each edge added.

    rm --force deletes a version's edges to its children; when that version comes back (merge,
    pull), each child's manifest, which names its parents by id in order, says which edges and at
    which position to restore. arrived maps the id of each version just inserted to its vid;
    among limits the children looked at to those vids (None: every version that may lack an
    edge). A position that already has a row, or a manifest that does not decode (verify reports
    it), is left alone.
    """
    if among is None:
        rows = _maybe_incomplete(conn)
    elif among:
        rows = conn.execute(
            "SELECT vid, id, manifest FROM versions WHERE vid IN (SELECT value FROM json_each(?))",
            (json.dumps(sorted(among)),),
        ).fetchall()
    else:
        return []
    found: list[tuple[str, str]] = []
    for vid, child_id, blob in rows:
        try:
            parents = manifest_mod.decode(bytes(blob)).parents
        except MvcdbError:
            continue
        if not any(p in arrived for p in parents):
            continue
        have = {int(r[0]) for r in conn.execute("SELECT position FROM lineage WHERE child = ?", (vid,))}
        edges = [(position, p) for position, p in enumerate(parents) if p in arrived and position not in have]
        conn.executemany(
            "INSERT INTO lineage (child, parent, position) VALUES (?, ?, ?)",
            [(vid, arrived[p], position) for position, p in edges],
        )
        found += [(str(child_id), p) for _, p in edges]
    return found


def insert_versions(
    conn: sqlite3.Connection,
    versions: Sequence[IncomingVersion],
    *,
    batch: int = 200,
    allow_missing_parents: bool = False,
    restored: list[tuple[str, str]] | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[str]:
    """insert_batch over versions (parents first), a batch per write transaction of its own.

    Returns the ids inserted; progress(n) is called after each batch of n versions. Restored
    edges are appended to restored as by insert_batch; the versions that may need one are looked
    up once, not a pass over every manifest per batch.
    """
    added: list[str] = []
    orphans = incomplete_versions(conn)
    for start in range(0, len(versions), batch):
        part = versions[start : start + batch]
        with write_transaction(conn):
            added += insert_batch(
                conn, part, allow_missing_parents=allow_missing_parents, restored=restored, orphans=orphans
            )
        if progress is not None:
            progress(len(part))
    return added


def insert_tag_moves(conn: sqlite3.Connection, moves: Iterable[TagMove]) -> int:
    """Insert the tag-history entries this file lacks (inside the caller's transaction); return
    how many. NULL-aware: the UNIQUE constraint treats NULL ids as distinct, so it is not enough."""
    count = 0
    for name, from_id, to_id, author, at in moves:
        cur = conn.execute(
            "INSERT INTO tag_history (name, from_id, to_id, author, at) SELECT ?, ?, ?, ?, ?"
            " WHERE NOT EXISTS (SELECT 1 FROM tag_history WHERE name = ? AND at = ? AND author = ?"
            " AND from_id IS ? AND to_id IS ?)",
            (name, from_id, to_id, author, at, name, at, author, from_id, to_id),
        )
        count += cur.rowcount
    return count


def keep_tag_position(conn: sqlite3.Connection, name: str, kept: str | None, author: str, at: str) -> bool:
    """After a merge or pull kept this file's position of a tag (kept: the version id it points
    at, or None: deleted here), make the tag's history end there again; True if a move was added.

    The other side's moves were copied in, and the latest of them may end elsewhere: one move
    from there to `kept`, stamped now by whoever merged, records the decision, so the history
    read in order always ends where the tag is (call inside the caller's write transaction).
    """
    last = conn.execute(
        "SELECT to_id FROM tag_history WHERE name = ? ORDER BY at DESC, seq DESC LIMIT 1", (name,)
    ).fetchone()
    if last is None or last[0] == kept:
        return False
    conn.execute(
        "INSERT OR IGNORE INTO tag_history (name, from_id, to_id, author, at) VALUES (?, ?, ?, ?, ?)",
        (name, last[0], kept, author, at),
    )
    return True
