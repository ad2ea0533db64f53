"""Storing chunks fetched from a remote as they arrived: stub rows that a lazy clone fills later,
and verified self-contained encodings (codecs 0-2) written without re-compression; which
parameters of a version are still stubs."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence

from ..chunkcodec import STUB
from ..connection import write_transaction


def insert_stubs(conn: sqlite3.Connection, sizes: Mapping[bytes, int]) -> None:
    """Insert placeholder rows (codec STUB, no data) for chunks whose bytes are fetched later."""
    with write_transaction(conn):
        conn.executemany(
            f"INSERT OR IGNORE INTO chunks (hash, size, codec, itemsize, data) VALUES (?, ?, {STUB}, 1, x'')",
            list(sizes.items()),
        )


def insert_encoded(conn: sqlite3.Connection, rows: Sequence[tuple[bytes, int, int, int, bytes]]) -> None:
    """Store verified chunks: (hash, size, codec, itemsize, payload) rows in a self-contained
    encoding (codecs 0-2, or 5-7 with their check), filling stub rows in place (keeping their cids)."""
    with write_transaction(conn):
        conn.executemany(
            f"UPDATE chunks SET codec = ?3, itemsize = ?4, data = ?5 WHERE hash = ?1 AND codec = {STUB}", rows
        )
        conn.executemany(
            "INSERT OR IGNORE INTO chunks (hash, size, codec, itemsize, data) VALUES (?, ?, ?, ?, ?)", rows
        )


def unfetched_params(conn: sqlite3.Connection, version_id: str) -> frozenset[str]:
    """Names of a version's parameters with chunks a lazy clone has not fetched yet (reading
    them would download them): what browsing (show, the TUI's norms) should leave alone."""
    rows = conn.execute(
        "SELECT DISTINCT tc.name FROM versions v JOIN tensor_chunks tc ON tc.vid = v.vid"
        f" JOIN chunks c ON c.cid = tc.cid WHERE v.id = ? AND tc.kind = 'param' AND c.codec = {STUB}",
        (version_id,),
    )
    return frozenset(str(name) for (name,) in rows)
