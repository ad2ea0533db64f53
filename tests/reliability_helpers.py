"""Shared by the sharing/reliability tests: file digests, raw tampering, a file's global content,
a checkpointer that finishes small WALs."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import mvcdb
from mvcdb import checkpointer


def finish_small_wals(monkeypatch: pytest.MonkeyPatch) -> None:
    """Have the background checkpointer finish (restart) the WAL at 128 frames, so a few hundred
    small versions go through several finishing cycles. As in production, LIMIT_FRAMES is 16 x
    FINISH_FRAMES: back-to-back passes (interval 0) can fall behind a fast writer and never catch
    up to 32 new frames; then the limit finishes the WAL anyway."""
    monkeypatch.setattr(checkpointer, "FINISH_FRAMES", 128)
    monkeypatch.setattr(checkpointer, "CATCH_UP_FRAMES", 32)
    monkeypatch.setattr(checkpointer, "LIMIT_FRAMES", 16 * 128)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tamper(path: Path, sql: str, *args: Any) -> None:
    """Run one statement on the file directly (foreign keys off), as an attacker or a bad disk would."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute(sql, args)
    conn.commit()
    conn.close()


def flip_chunk_byte(path: Path, cid_query: str, *args: Any, offset: int = 100) -> int:
    """Flip one byte of the stored data of the chunk `cid_query` selects; return its cid."""
    conn = sqlite3.connect(path)
    cid, data = conn.execute(f"SELECT cid, data FROM chunks WHERE cid = ({cid_query})", args).fetchone()
    data = bytearray(data)
    data[min(offset, len(data) - 1)] ^= 0xFF
    conn.execute("UPDATE chunks SET data = ? WHERE cid = ?", (bytes(data), cid))
    conn.commit()
    conn.close()
    return int(cid)


def content(db: mvcdb.Database) -> dict[str, Any]:
    """Everything a file holds, keyed by global names (ids, hashes), independent of local keys."""
    conn = db.conn
    return {
        "versions": sorted(
            conn.execute(
                "SELECT id, model, message, author, created_at, metadata, params_bytes, manifest"
                " FROM versions"
            )
        ),
        "lineage": sorted(
            conn.execute(
                "SELECT c.id, p.id, l.position FROM lineage l"
                " JOIN versions c ON c.vid = l.child JOIN versions p ON p.vid = l.parent"
            )
        ),
        "metrics": sorted(
            conn.execute("SELECT v.id, m.name, m.value FROM metrics m JOIN versions v ON v.vid = m.vid"),
            key=repr,
        ),
        "tensors": sorted(
            conn.execute(
                "SELECT v.id, t.kind, t.name, t.dtype, t.shape, t.nbytes, t.digest FROM tensors t"
                " JOIN versions v ON v.vid = t.vid"
            )
        ),
        # chunk hashes held, whether as chunk rows or as tiny tensors kept in their row (a local choice)
        "chunks": sorted(
            {bytes(r[0]) for r in conn.execute("SELECT hash FROM chunks")}
            | {
                hashlib.sha256(r[0]).digest()
                for r in conn.execute("SELECT data FROM tensors WHERE data IS NOT NULL")
            }
        ),
        "tags": sorted(conn.execute("SELECT t.name, v.id FROM tags t JOIN versions v ON v.vid = t.vid")),
        "tag_history": sorted(
            conn.execute("SELECT name, from_id, to_id, author, at FROM tag_history"), key=repr
        ),
    }
