"""Sharing between files: merge a teammate's database into this one, export a bundle of versions.

Both are one operation — copy versions a target lacks from a source — so they share `_copy`:
merge copies everything from another file (opened read-only, never written); export copies chosen
versions and their ancestors into a new file. Nothing from the source is trusted: each incoming
version's manifest must hash to its id and decode strictly, and the rows are rebuilt from the
manifest alone; each incoming chunk is decoded and re-hashed while copied. A bad version or chunk
stops the copy with an MvcdbError naming it, before any row is written (chunks already copied are
removed again), so a tampered file cannot poison the target. Ids are content hashes, so copying is
a set union: idempotent, and commutative in content.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import inline
from .author import current_author
from .blobstore import MAX_CHUNK_BYTES, is_lazy_clone
from .chunkcodec import STUB
from .connection import write_transaction
from .copying import (
    IncomingVersion,
    TagMove,
    check_tag_move,
    chunk_rows,
    ids_to_vids,
    insert_batch,
    insert_tag_moves,
    keep_tag_position,
    missing_parents,
    sized_batches,
    topological,
    verified_manifest,
)
from .errors import MvcdbError
from .refs import check_tag_name
from .timeutil import now_text

if TYPE_CHECKING:
    from .database import Database, ParentRef

Progress = Callable[[int, int, str], None]

#: Chunk bytes read and verified per batch while copying.
COPY_BATCH_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class TagConflict:
    """A tag that points at different versions in the two files."""

    name: str
    ours: str | None  # None: deleted here after the other file's last move of it
    theirs: str
    took_theirs: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ours": self.ours,
            "theirs": self.theirs,
            "resolution": "theirs" if self.took_theirs else "ours",
        }

    def __str__(self) -> str:
        ours = self.ours[:12] if self.ours else "(deleted)"
        kept = f"moved to theirs {self.theirs[:12]}" if self.took_theirs else f"kept ours {ours}"
        return f"tag {self.name!r}: ours {ours}, theirs {self.theirs[:12]}: {kept}"


@dataclass(frozen=True)
class MergeReport:
    """What a merge or an export copied."""

    source: str
    target: str
    versions_added: list[str] = field(default_factory=list)
    versions_present: int = 0
    chunks_added: int = 0
    bytes_added: int = 0
    tag_moves_added: int = 0
    tags_set: list[str] = field(default_factory=list)
    conflicts: list[TagConflict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """Whether anything was written to the target."""
        return bool(self.versions_added or self.chunks_added or self.tag_moves_added or self.tags_set)

    def to_dict(self) -> dict[str, Any]:
        """The shape `mvcdb merge --json` and `mvcdb export --json` print."""
        return {
            "source": self.source,
            "target": self.target,
            "versions_added": list(self.versions_added),
            "versions_present": self.versions_present,
            "chunks_added": self.chunks_added,
            "bytes_added": self.bytes_added,
            "tag_moves_added": self.tag_moves_added,
            "tags_set": list(self.tags_set),
            "conflicts": [c.to_dict() for c in self.conflicts],
            "notes": list(self.notes),
        }

    def __str__(self) -> str:
        from .cli.output import format_bytes

        lines = [
            f"{len(self.versions_added)} version(s) added from {self.source} to {self.target}"
            f" ({self.versions_present} already present); {self.chunks_added} chunk(s)"
            f" ({format_bytes(self.bytes_added)}), {self.tag_moves_added} tag move(s) copied",
        ]
        if self.tags_set:
            lines.append("tags set: " + ", ".join(self.tags_set))
        lines += [f"conflict: {c}" for c in self.conflicts]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


@dataclass
class _Plan:
    versions: list[IncomingVersion]
    present: int
    tag_moves: list[TagMove]
    tags: dict[str, str]
    notes: list[str] = field(default_factory=list)


class _Refused(MvcdbError):
    """A source the copy refuses (damaged or forged content): merge's words; export rewords it."""

    def __init__(self, source: str, what: str) -> None:
        super().__init__(f"refusing to merge from {source}: {what}; nothing of it was written")
        self.source, self.what = source, what


def _refuse(source: str, what: str) -> MvcdbError:
    return _Refused(source, what)


# -- planning: read and validate everything the source offers -----------------------------------


def _plan(src: Database, dst: Database, ids: Sequence[str] | None, tag_names: set[str] | None) -> _Plan:
    source = str(src.path)
    rows = src.conn.execute("SELECT id FROM versions ORDER BY created_at, vid").fetchall()
    wanted = [r[0] for r in rows] if ids is None else list(ids)
    present = set(ids_to_vids(dst.conn, wanted))
    incoming: dict[str, IncomingVersion] = {}
    for vid_hex in wanted:
        if vid_hex in present or vid_hex in incoming:
            continue
        row = src.conn.execute("SELECT manifest FROM versions WHERE id = ?", (vid_hex,)).fetchone()
        if row is None:
            raise _refuse(source, f"version {str(vid_hex)[:12]!r} has an invalid id")
        try:
            incoming[vid_hex] = verified_manifest(vid_hex, bytes(row[0]))
        except MvcdbError as exc:
            raise _refuse(source, str(exc)) from None
    ordered = topological(incoming, allow_missing_parents=True)
    here = ids_to_vids(dst.conn, sorted({p for v in ordered for p in v.manifest.parents}))
    notes = [
        f"version {child[:12]}: parent {parent[:12]} is in neither file (removed with rm --force?)"
        for child, parent in missing_parents(ordered, here)
    ]
    tags = {
        name: vid_hex
        for name, vid_hex in src.conn.execute(
            "SELECT t.name, v.id FROM tags t JOIN versions v ON v.vid = t.vid ORDER BY t.name"
        )
        if tag_names is None or name in tag_names
    }
    try:
        for name in tags:
            check_tag_name(name)
        moves = [
            check_tag_move(tuple(r))
            for r in src.conn.execute("SELECT name, from_id, to_id, author, at FROM tag_history ORDER BY seq")
            if tag_names is None or r[0] in tag_names
        ]
    except MvcdbError as exc:
        raise _refuse(source, str(exc)) from None
    return _Plan(ordered, len(present), moves, tags, notes)


# -- copying chunks -------------------------------------------------------------------------------


def _itemsize(dtype: str) -> int:
    from .dtypes import EXTENSION_ITEMSIZE

    return EXTENSION_ITEMSIZE.get(dtype) or np.dtype(dtype).itemsize


@dataclass
class _Need:
    """A chunk the target lacks: where it is in the source, and who needs it (for messages)."""

    hash: bytes
    cid: int
    size: int
    itemsize: int
    owner: str
    data: bytes | None = None  # the bytes of a tiny tensor the source keeps in its row (no cid)


def _needed_chunks(src: Database, dst: Database, versions: Sequence[IncomingVersion]) -> list[_Need]:
    """Every chunk the incoming versions use that the target lacks, sizes checked before reading."""
    source = str(src.path)
    all_hashes = list(dict.fromkeys(h for v in versions for t in v.manifest.tensors for h in t.hashes))
    have = chunk_rows(dst.conn, all_hashes)
    offer = chunk_rows(src.conn, [h for h in all_hashes if h not in have])
    tiny: dict[bytes, tuple[bytes, str]] = {}
    if any(h not in have and h not in offer for h in all_hashes):  # in-row tensors of the source
        try:
            tiny = inline.chunks_of(src.conn, ids_to_vids(src.conn, [v.id for v in versions]).values())
        except MvcdbError as exc:
            raise _refuse(source, str(exc)) from None
    needs: dict[bytes, _Need] = {}
    for v in versions:
        for t in v.manifest.tensors:
            owner = f"{t.kind} {t.name!r} of version {v.id[:12]}"
            total = 0
            for h in t.hashes:
                if h in have:
                    total += have[h][1]
                    continue
                if h in tiny and h not in offer:
                    raw = tiny[h][0]
                    total += len(raw)
                    needs.setdefault(h, _Need(h, -1, len(raw), _itemsize(t.dtype), owner, raw))
                    continue
                if h not in offer:
                    raise _refuse(source, f"chunk {h.hex()[:12]} of {owner} is missing from it")
                cid, size, _ = offer[h]
                if size > MAX_CHUNK_BYTES:
                    raise _refuse(source, f"chunk {h.hex()[:12]} of {owner} claims {size} bytes")
                total += size
                needs.setdefault(h, _Need(h, cid, size, _itemsize(t.dtype), owner))
            if total != t.nbytes:
                raise _refuse(source, f"the chunks of {owner} hold {total} bytes, not {t.nbytes}")
    return list(needs.values()) + _stubs_to_fill(src, dst, needs.keys())


def _stubs_to_fill(src: Database, dst: Database, planned: Collection[bytes]) -> list[_Need]:
    """The chunks a lazy clone (dst) has not fetched yet and the source holds: copied too, so
    that a merge of a full file makes the clone's versions restorable offline."""
    if not is_lazy_clone(dst.conn):  # only a lazy clone holds stubs
        return []
    stubs = {
        bytes(h): int(size)
        for h, size in dst.conn.execute(f"SELECT hash, size FROM chunks WHERE codec = {STUB}")
        if bytes(h) not in planned
    }
    needs: list[_Need] = []
    for start in range(0, len(stubs), 500):
        part = list(stubs)[start : start + 500]
        for digest, cid, size, itemsize in src.conn.execute(
            f"SELECT hash, cid, size, itemsize FROM chunks WHERE codec != {STUB}"
            f" AND hash IN ({','.join('?' * len(part))})",
            part,
        ):
            if size != stubs[bytes(digest)]:
                raise _refuse(str(src.path), f"chunk {bytes(digest).hex()[:12]} claims {size} bytes")
            needs.append(_Need(bytes(digest), int(cid), int(size), int(itemsize), "a chunk not fetched yet"))
    return needs


def _copy_chunks(
    src: Database, dst: Database, needs: Sequence[_Need], tick: Callable[[int, str], None]
) -> dict[bytes, int]:
    """Read, verify and store the needed chunks in batches; return hash -> new cid in the target.

    On a damaged chunk, raises naming it (after removing what this call stored).
    """
    added: dict[bytes, int] = {}
    try:
        for n in needs:
            if n.data is not None:  # checked when read from the source's row
                added[n.hash] = dst.store.store_chunks([memoryview(n.data)], [n.hash], n.itemsize)[0]
        for batch in sized_batches(
            [n for n in needs if n.data is None],
            lambda n: n.size,
            max_bytes=COPY_BATCH_BYTES,
            max_count=64,
            key=lambda n: n.itemsize,
        ):
            buf = np.empty(sum(n.size for n in batch), dtype=np.uint8)
            try:
                src.store.read_into([n.cid for n in batch], buf)
            except MvcdbError:
                _name_bad_chunk(src, batch)
                raise
            pieces, offset = [], 0
            mv = memoryview(buf.data)
            for n in batch:
                pieces.append(mv[offset : offset + n.size])
                offset += n.size
            cids = dst.store.store_chunks(pieces, [n.hash for n in batch], batch[0].itemsize)
            added.update(zip((n.hash for n in batch), cids, strict=True))
            tick(len(batch), "chunks")
    except BaseException:
        _discard(dst, list(added.values()))
        raise
    return added


def _name_bad_chunk(src: Database, batch: Sequence[_Need]) -> None:
    for n in batch:
        try:
            src.store.read_chunk(n.cid)
        except MvcdbError as exc:
            raise _refuse(
                str(src.path), f"chunk {n.hash.hex()[:12]} of {n.owner} cannot be used ({exc})"
            ) from None


def _discard(dst: Database, cids: Sequence[int]) -> None:
    """Remove chunks this copy added, unless something references them meanwhile."""
    if not cids:
        return
    with contextlib.suppress(sqlite3.Error, MvcdbError), write_transaction(dst.conn):
        dst.conn.execute(
            "DELETE FROM chunks WHERE cid IN (SELECT value FROM json_each(?))"
            " AND cid NOT IN (SELECT cid FROM tensor_chunks)"
            " AND cid NOT IN (SELECT base FROM chunks WHERE base IS NOT NULL)",
            (json.dumps(list(cids)),),
        )


# -- tags -----------------------------------------------------------------------------------------


def _merge_tags(
    dst: Database,
    tags: dict[str, str],
    moves: Sequence[TagMove],
    theirs: bool,
) -> tuple[list[str], list[TagConflict]]:
    """Bring the target's tags in line with the source's where that is not a conflict."""
    conn = dst.conn
    last_theirs: dict[str, str] = {}
    for name, _, _, _, at in moves:
        last_theirs[name] = max(at, last_theirs.get(name, ""))
    set_here: list[str] = []
    conflicts: list[TagConflict] = []
    author, at = current_author(), now_text()
    for name, their_id in sorted(tags.items()):
        row = conn.execute("SELECT vid FROM versions WHERE id = ?", (their_id,)).fetchone()
        if row is None:
            continue
        their_vid = int(row[0])
        ours = conn.execute(
            "SELECT v.id FROM tags t JOIN versions v ON v.vid = t.vid WHERE t.name = ?", (name,)
        ).fetchone()
        if ours is not None and ours[0] == their_id:
            continue
        if ours is None:
            deleted = conn.execute(
                "SELECT at FROM tag_history WHERE name = ? AND to_id IS NULL ORDER BY at DESC LIMIT 1",
                (name,),
            ).fetchone()
            if deleted is None or deleted[0] <= last_theirs.get(name, ""):
                conn.execute("INSERT INTO tags (name, vid) VALUES (?, ?)", (name, their_vid))
                set_here.append(name)
                continue
        conflicts.append(TagConflict(name, ours[0] if ours else None, their_id, theirs))
        if theirs:
            dst._set_tag(name, their_vid, their_id, author, at)
            set_here.append(name)
        else:
            keep_tag_position(conn, name, ours[0] if ours else None, author, at)
    return set_here, conflicts


# -- the shared copy, merge and export --------------------------------------------------------------


def _copy(
    src: Database,
    dst: Database,
    *,
    ids: Sequence[str] | None,
    tag_names: set[str] | None,
    theirs: bool,
    progress: Progress | None,
) -> MergeReport:
    plan = _plan(src, dst, ids, tag_names)
    needs = _needed_chunks(src, dst, plan.versions)
    total = len(needs) + len(plan.versions) + 1
    done = 0

    def tick(n: int, what: str) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(min(done, total), total, what)

    tick(0, "chunks")
    added_chunks = _copy_chunks(src, dst, needs, tick)
    restored: list[tuple[str, str]] = []
    try:
        with write_transaction(dst.conn):
            added = insert_batch(dst.conn, plan.versions, allow_missing_parents=True, restored=restored)
            moves = insert_tag_moves(dst.conn, plan.tag_moves)
            tags_set, conflicts = _merge_tags(dst, plan.tags, plan.tag_moves, theirs)
    except BaseException:
        _discard(dst, list(added_chunks.values()))
        raise
    tick(len(plan.versions) + 1, "versions")
    return MergeReport(
        source=str(src.path),
        target=str(dst.path),
        versions_added=added,
        versions_present=plan.present,
        chunks_added=len(added_chunks),
        bytes_added=sum(n.size for n in needs),
        tag_moves_added=moves,
        tags_set=tags_set,
        conflicts=conflicts,
        notes=plan.notes + [f"version {c[:12]}: its edge to parent {p[:12]} restored" for c, p in restored],
    )


def merge(
    db: Database,
    other_path: str | os.PathLike[str],
    *,
    theirs: bool = False,
    progress: Progress | None = None,
) -> MergeReport:
    """Copy every version, lineage edge, chunk and tag move of another file that this one lacks.

    The other file is opened read-only and never written. Tags that point elsewhere on each side
    are reported as conflicts and kept as they are here, unless theirs=True.

    Raises:
        MvcdbError: the other file is missing, foreign, newer, or holds a damaged or tampered
            version or chunk (named in the message; nothing of it is written here).
    """
    from .database import Database

    db._check_writable()
    other = Path(other_path)
    if not other.exists():
        raise MvcdbError(f"{other} does not exist")
    with contextlib.suppress(OSError):
        if os.path.samefile(other, db.path):
            raise MvcdbError(f"{other} is this database itself; nothing to merge")
    with Database(other, readonly=True) as src:
        return _copy(src, db, ids=None, tag_names=None, theirs=theirs, progress=progress)


def closure(db: Database, refs: Iterable[ParentRef]) -> list[str]:
    """Ids of the given versions and all their ancestors (every parent, not only first ones)."""
    vids = sorted({db._vid(r) for r in refs})
    if not vids:
        raise MvcdbError("name at least one version to export")
    rows = db.conn.execute(
        "WITH RECURSIVE up(vid) AS (SELECT value FROM json_each(?)"
        " UNION SELECT l.parent FROM lineage l JOIN up ON l.child = up.vid)"
        " SELECT v.id FROM versions v JOIN up ON up.vid = v.vid ORDER BY v.created_at, v.vid",
        (json.dumps(vids),),
    )
    return [r[0] for r in rows]


def export(
    db: Database, refs: Iterable[ParentRef], path: str | os.PathLike[str], *, progress: Progress | None = None
) -> MergeReport:
    """Write a new self-contained .db with the chosen versions, their ancestors and their tags.

    Refuses to overwrite an existing file. Merging the bundle elsewhere reproduces the versions
    exactly (same ids, bit-identical restores).
    """
    from .database import Database

    target = Path(path)
    if target.exists() or Path(f"{target}-wal").exists():
        raise MvcdbError(f"{target} already exists; choose a new file name for the bundle")
    folder = target.parent
    if not folder.is_dir():
        why = "does not exist" if not folder.exists() else "is not a directory"
        raise MvcdbError(f"cannot write {target}: {folder} {why}")
    ids = closure(db, list(refs))
    vids_json = json.dumps(ids)
    tag_names = {
        r[0]
        for r in db.conn.execute(
            "SELECT t.name FROM tags t JOIN versions v ON v.vid = t.vid"
            " WHERE v.id IN (SELECT value FROM json_each(?))",
            (vids_json,),
        )
    }
    try:
        with Database(target, chunk_size=db.chunk_size) as dst:
            return _copy(db, dst, ids=ids, tag_names=tag_names, theirs=False, progress=progress)
    except BaseException as exc:
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(OSError):
                os.unlink(f"{target}{suffix}")
        if isinstance(exc, _Refused):
            raise MvcdbError(f"cannot export from {exc.source}: {exc.what}; no bundle was written") from None
        raise
