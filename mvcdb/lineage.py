"""The lineage DAG: ancestors, descendants, merge bases, and drawing it like `git log --graph`.

Versions may have several parents (merges, model soups, distillation), so every walk follows all
parents, breadth first: "nearest first" means fewest edges away (ties: the order versions arrived
in the file). Walks are recursive CTEs over `lineage`, which is indexed on (child, position) and
(parent, child). Histories without merges in reach (chains, trees: the common case) take a
plain UNION ALL walk handed to Python as one aggregated row; a merge in reach switches to a walk
that tracks distances per version, and a DAG tangled enough to reach versions by many path
lengths falls back to an exact walk that stays linear in the number of edges.
"""

from __future__ import annotations

import heapq
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import MvcdbError
from .filters import MAX_COUNT, check_count
from .models import Version, VersionList, load_versions, vids_from_text

if TYPE_CHECKING:
    from .database import Database, ParentRef

# -- drawing ------------------------------------------------------------------------------------


def iter_graph_rows(versions: Sequence[Version]) -> Iterator[tuple[str, Version | None]]:
    """Lay out versions (newest first, children before parents) as `git log --graph` lines.

    Returns one (prefix, version) pair per output line: commit lines carry their Version and a
    prefix with `*` in the version's column (`* `, `| * `); connector lines carry None and draw
    branches (`|\\ `), joins (`|/ `) and columns shifting left. Each column is two characters
    wide, so every prefix on a line has the same width as the columns alive there. Parents that
    are not in `versions` get no column (the line simply ends), and a parent listed before its
    child is ignored rather than drawn upwards. Where a root version's line ends and an unrelated
    version starts in the same column, a gap line keeps them from reading as parent and child.
    Pure: no database access. Rows come one by one: a drawing of a wide history is printed as it
    is laid out (like git's), not held whole in memory first.
    """
    present = {v.id for v in versions}
    columns: list[str] = []  # the id each column is waiting for
    shown: set[str] = set()
    ended: int | None = None  # the column a root version freed on the previous line
    for version in versions:
        if version.id in shown:
            continue
        shown.add(version.id)
        if version.id in columns:
            col = columns.index(version.id)
        else:
            columns.append(version.id)
            col = len(columns) - 1
            if col == ended:  # a root just ended here: a gap, so it does not read as our child
                yield ("| " * col, None)
        ended = None
        yield (_commit_line(len(columns), col), version)
        parents = [p for p in dict.fromkeys(version.parents) if p in present and p not in shown]
        if not parents:
            line = _shift_line(columns, col, joining=None)
            del columns[col]
            if line:
                yield (line, None)
            else:
                ended = col
            continue
        columns[col] = parents[0]
        for extra, parent in enumerate(parents[1:], start=1):
            yield (_branch_line(len(columns), col + extra), None)
            columns.insert(col + extra, parent)
        yield from ((line, None) for line in _collapse(columns))


def graph_rows(versions: Sequence[Version]) -> list[tuple[str, Version | None]]:
    """iter_graph_rows as a list."""
    return list(iter_graph_rows(versions))


def _commit_line(width: int, col: int) -> str:
    return "".join("* " if k == col else "| " for k in range(width))


def _branch_line(width: int, new_col: int) -> str:
    """A new column opens at new_col, fed from new_col - 1; columns from new_col on move right."""
    chars = [" "] * (2 * (width + 1))
    for k in range(new_col):
        chars[2 * k] = "|"
    chars[2 * new_col - 1] = "\\"
    for k in range(new_col, width):
        chars[2 * k + 1] = "\\"
    return "".join(chars)


def _shift_line(columns: Sequence[str], gone: int, *, joining: int | None) -> str:
    """Column `gone` ends (joining column `joining`, or just stopping); later columns move left.

    Returns "" when nothing needs drawing (the last column simply ends).
    """
    if joining is None and gone == len(columns) - 1:
        return ""
    chars = [" "] * (2 * len(columns))
    for k in range(len(columns)):
        if k < gone:
            chars[2 * k] = "|"
        elif k > gone:
            chars[2 * k - 1] = "/"
    if joining is not None:
        chars[2 * gone - 1] = "/"
        for k in range(joining, gone - 1):
            chars[2 * k + 1] = "_"
    return "".join(chars)


def _collapse(columns: list[str]) -> list[str]:
    """Merge columns waiting for the same version into the leftmost one, one line per join."""
    lines: list[str] = []
    while True:
        first_seen: dict[str, int] = {}
        dup = None
        for k, vid in enumerate(columns):
            if vid in first_seen:
                dup = (k, first_seen[vid])
                break
            first_seen[vid] = k
        if dup is None:
            return lines
        gone, joining = dup
        lines.append(_shift_line(columns, gone, joining=joining))
        del columns[gone]


# -- walking ------------------------------------------------------------------------------------

#: An upward walk longer than this follows first-parent pointers read in one scan of the lineage
#: table (_chase_first_parents) instead of an index seek per ancestor (~2 us each here): all
#: 99,999 ancestors of a 100,000-long chain in ~0.08 s instead of ~0.19 s.
LONG_WALK = 4096
_UP = ("child", "parent", "ORDER BY l.child, l.position")
_DOWN = ("parent", "child", "ORDER BY l.parent, l.child")

#: The fast walk gives up (and the exact fallback takes over) once it has produced this many rows
#: per distinct version: only DAGs with very many merges reach a version by many path lengths.
_DUPLICATE_FACTOR = 4
_DUPLICATE_SLACK = 10_000


def _walk_sql(direction: tuple[str, str, str]) -> str:
    src, dst, _ = direction
    # (vid, distance) rows; ORDER BY 2 makes the queue a priority queue, so rows come out
    # nearest first (breadth first). UNION drops repeats of the same (vid, distance).
    return f"""WITH RECURSIVE reach(vid, distance) AS (
                   SELECT ?, 0
                   UNION
                   SELECT l.{dst}, r.distance + 1 FROM reach r JOIN lineage l ON l.{src} = r.vid
                   WHERE r.distance < ?
                   ORDER BY 2
               )
               SELECT vid, distance FROM reach"""


def _first_parent_sql(direction: tuple[str, str, str], *, aggregate: bool, bounded: bool = True) -> str:
    """The walk for histories without merges: UNION ALL, FIFO queue, no duplicate bookkeeping.

    A FIFO queue (no ORDER BY) walks breadth first, so rows come in non-decreasing distance.
    `position` is the traversed edge's parent position: while every edge walked is a first-parent
    edge (position 0), no version can be reached twice (each has one first parent), so UNION ALL
    is exact. A row with position > 0 means a merge is in reach: the caller falls back to the
    general walk. aggregate=True returns one row (vids comma-joined nearest first, distances
    likewise (downwards only), the largest position, the row count): 100,000 rows cost more to
    hand to Python than to walk. Upwards without merges the walk is a path, so the queue's order
    (which group_concat sees, as it sees a sorted subquery's) is already nearest first, one
    version per distance: no sort, and no distance column unless bounded. The last parameter
    caps the rows: an honest walk without merges visits each version once, so reaching the cap
    means a damaged file with a cycle, and the caller takes the general walk, which ends.
    """
    src, dst, _ = direction
    if aggregate and direction is _UP and not bounded:
        return f"""WITH RECURSIVE walk(vid, position) AS (
                       SELECT {dst}, position FROM lineage WHERE {src} = ?
                       UNION ALL
                       SELECT l.{dst}, l.position FROM walk w JOIN lineage l ON l.{src} = w.vid
                       LIMIT ?
                   )
                   SELECT group_concat(vid), NULL, max(position), count(*) FROM walk"""
    walk = f"""WITH RECURSIVE walk(vid, distance, position) AS (
                   SELECT ?, 0, 0
                   UNION ALL
                   SELECT l.{dst}, w.distance + 1, l.position FROM walk w JOIN lineage l ON l.{src} = w.vid
                   WHERE w.distance < ?
                   LIMIT ?
               )"""
    if aggregate and direction is _UP:
        return f"{walk} SELECT group_concat(vid), NULL, max(position), count(*) FROM walk WHERE distance > 0"
    if aggregate:
        return f"""{walk}
               SELECT group_concat(vid), group_concat(distance), max(position), count(*)
               FROM (SELECT vid, distance, position FROM walk WHERE distance > 0 ORDER BY distance, vid)"""
    return f"{walk} SELECT vid, distance, position FROM walk WHERE distance > 0"


def _walk(
    conn: sqlite3.Connection,
    start: int,
    direction: tuple[str, str, str],
    *,
    limit: int | None = None,
    depth: int | None = None,
) -> list[tuple[int, int]]:
    """(vid, distance) of every version reachable from start (excluded), nearest first."""
    return list(zip(*_walk_columns(conn, start, direction, limit=limit, depth=depth), strict=True))


def _walk_columns(
    conn: sqlite3.Connection,
    start: int,
    direction: tuple[str, str, str],
    *,
    limit: int | None = None,
    depth: int | None = None,
) -> tuple[list[int], list[int]]:
    """(vids, distances) of every version reachable from start (excluded), nearest first.

    Order: distance, then vid (the order versions arrived in this file). Histories without
    merges (chains, trees) take the first-parent walk; a merge in reach switches to the general
    one. With a limit, rows are read lazily and reading stops as soon as the nearest `limit`
    are known.
    """
    limit, depth = check_count("limit", limit), check_count("depth", depth)
    if limit == 0 or depth == 0:
        return [], []
    if limit is None:
        bounded = depth is not None
        cap = _row_cap(conn)
        long_ok = direction is _UP and not bounded and cap > LONG_WALK + 2  # (see LONG_WALK)
        walk_cap = LONG_WALK + 1 if long_ok else cap
        params = (start, walk_cap) if direction is _UP and not bounded else (start, depth or MAX_COUNT, cap)
        vids_text, distances_text, widest, rows = conn.execute(
            _first_parent_sql(direction, aggregate=True, bounded=bounded), params
        ).fetchone()
        if long_ok and rows >= walk_cap and not widest:
            chased = _chase_first_parents(conn, start)
            if chased is not None:
                return chased, list(range(1, len(chased) + 1))
            return _unzip(_walk_general(conn, start, direction, depth=depth))
        if widest or rows >= cap - 1:  # a merge in reach (or a damaged file's cycle)
            return _unzip(_walk_general(conn, start, direction, depth=depth))
        vids = vids_from_text(vids_text)
        if distances_text is None:  # upwards: a path, nearest first
            return vids, list(range(1, len(vids) + 1))
        return vids, vids_from_text(distances_text)
    found: list[tuple[int, int]] = []
    seen = {start}
    last = 0
    bounds = (start, depth or MAX_COUNT, MAX_COUNT)
    cursor = conn.execute(_first_parent_sql(direction, aggregate=False), bounds)
    try:
        for vid, distance, position in cursor:
            if position or vid in seen:  # a merge in reach (or a damaged file's cycle)
                return _unzip(_walk_general(conn, start, direction, limit=limit, depth=depth))
            if len(found) >= limit and distance > last:
                break  # every version at the limit's distance is known
            found.append((vid, distance))
            seen.add(vid)
            last = distance
    finally:
        cursor.close()
    found.sort(key=lambda item: (item[1], item[0]))
    return _unzip(found[:limit])


def _chase_first_parents(conn: sqlite3.Connection, start: int) -> list[int] | None:
    """start's ancestors, nearest first, by following first-parent pointers read in one scan of
    the lineage table; None when a merge is in reach (or a damaged file has a cycle): the caller
    then takes the general walk."""
    firsts, parents, merged = conn.execute(
        "SELECT group_concat(CASE WHEN position = 0 THEN child END),"
        " group_concat(CASE WHEN position = 0 THEN parent END),"
        " group_concat(CASE WHEN position > 0 THEN child END) FROM lineage"
    ).fetchone()
    child = np.fromstring(firsts or "", dtype=np.int64, sep=",")
    parent = np.fromstring(parents or "", dtype=np.int64, sep=",")
    if len(child) != len(parent) or (len(child) and min(int(child.min()), int(parent.min())) < 1):
        return None  # not what mvcdb writes: let the general walk cope
    top = max(int(child.max()) if len(child) else 0, int(parent.max()) if len(parent) else 0, start)
    table = np.zeros(top + 1, dtype=np.int64)
    table[child] = parent
    first_parent: list[int] = table.tolist()  # 0: no parent (vids are positive)
    path: list[int] = []
    step = path.append
    vid = start
    for _ in range(len(child) + 1):  # an honest walk takes at most one step per lineage row
        vid = first_parent[vid]
        if not vid:
            break
        step(vid)
    else:
        return None  # a cycle
    merges = set(vids_from_text(merged))
    if merges and (start in merges or not merges.isdisjoint(path)):
        return None
    return path


def _row_cap(conn: sqlite3.Connection) -> int:
    """More rows than a walk without merges can produce in this file (vids are positive)."""
    return int(conn.execute("SELECT max(vid) FROM versions").fetchone()[0] or 0) + 2


def _unzip(pairs: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    return [vid for vid, _ in pairs], [distance for _, distance in pairs]


def _walk_general(
    conn: sqlite3.Connection,
    start: int,
    direction: tuple[str, str, str],
    *,
    limit: int | None = None,
    depth: int | None = None,
) -> list[tuple[int, int]]:
    """The walk through merges: (vid, distance) pairs, nearest first.

    One recursive CTE, read lazily: with a limit, reading stops as soon as the nearest `limit`
    are known. A DAG tangled enough to reach versions by many path lengths falls back to
    _walk_exact, which stays linear in the number of edges.
    """
    best: dict[int, int] = {}
    rows = 0
    last = 0  # rows come in non-decreasing distance
    cursor = conn.execute(_walk_sql(direction), (start, depth if depth is not None else MAX_COUNT))
    try:
        for vid, distance in cursor:
            rows += 1
            if vid in best or vid == start:
                if rows > _DUPLICATE_FACTOR * len(best) + _DUPLICATE_SLACK:
                    return _walk_exact(conn, start, direction, limit=limit, depth=depth)
                continue
            if limit is not None and len(best) >= limit and distance > last:
                break  # every version at the limit's distance is known
            best[vid] = last = distance
    finally:
        cursor.close()
    found = sorted(best.items(), key=lambda item: (item[1], item[0]))
    return found[:limit] if limit is not None else found


def _walk_exact(
    conn: sqlite3.Connection,
    start: int,
    direction: tuple[str, str, str],
    *,
    limit: int | None = None,
    depth: int | None = None,
) -> list[tuple[int, int]]:
    """The same walk, linear in edges however tangled the DAG: all edges of the reachable
    sub-DAG in one recursive CTE (versions only, no distances), then breadth first in Python."""
    src, dst, order = direction
    adjacency: dict[int, list[int]] = {}
    for a, b in conn.execute(
        f"""WITH RECURSIVE reach(vid) AS (
                SELECT ? UNION SELECT l.{dst} FROM lineage l JOIN reach r ON l.{src} = r.vid
            )
            SELECT l.{src}, l.{dst} FROM lineage l JOIN reach r ON l.{src} = r.vid {order}""",
        (start,),
    ):
        adjacency.setdefault(a, []).append(b)
    distance_of = {start: 0}
    frontier = [start]
    distance = 0
    while frontier and (depth is None or distance < depth):
        distance += 1
        nxt = []
        for vid in frontier:
            for other in adjacency.get(vid, ()):
                if other not in distance_of:
                    distance_of[other] = distance
                    nxt.append(other)
        frontier = nxt
    del distance_of[start]
    found = sorted(distance_of.items(), key=lambda item: (item[1], item[0]))
    return found[:limit] if limit is not None else found


def ancestors(db: Database, ref: ParentRef, *, limit: int | None = None) -> VersionList:
    """Every version ref descends from (through any parent), nearest first; ref itself excluded.

    Versions at the same distance come in the order they arrived in the file (oldest first).
    A long result is a VersionList that builds its Version objects in batches as they are used.
    """
    vids, _ = _walk_columns(db.conn, db._vid(ref), _UP, limit=limit)
    return VersionList(db.conn, vids)


def descendants(db: Database, ref: ParentRef, *, limit: int | None = None) -> VersionList:
    """Every version that descends from ref, nearest first; ref itself excluded."""
    vids, _ = _walk_columns(db.conn, db._vid(ref), _DOWN, limit=limit)
    return VersionList(db.conn, vids)


def merge_base(db: Database, a: ParentRef, b: ParentRef) -> Version | None:
    """The nearest common ancestor of a and b, each counting as its own ancestor (as in git).

    "Nearest" = fewest edges from a plus from b; ties go to the newest, then the smallest id.
    Such a version is never an ancestor of another common ancestor. None if histories never meet.
    """
    vid_a, vid_b = db._vid(a), db._vid(b)
    dist_a = {vid_a: 0, **dict(_walk(db.conn, vid_a, _UP))}
    if vid_b in dist_a:
        return load_versions(db.conn, [vid_b])[0]
    dist_b = {vid_b: 0, **dict(_walk(db.conn, vid_b, _UP))}
    common = [v for v in dist_b if v in dist_a]
    if not common:
        return None
    nearest = min(dist_a[v] + dist_b[v] for v in common)
    tied = [v for v in common if dist_a[v] + dist_b[v] == nearest]
    created = _created_at(db.conn, tied)
    newest = max(created[v][0] for v in tied)
    best = min((v for v in tied if created[v][0] == newest), key=lambda v: created[v][1])
    return load_versions(db.conn, [best])[0]


def _created_at(conn: sqlite3.Connection, vids: Iterable[int]) -> dict[int, tuple[str, str]]:
    return {
        r[0]: (r[1], r[2])
        for r in conn.execute(
            "SELECT vid, created_at, id FROM versions WHERE vid IN (SELECT value FROM json_each(?))",
            (json.dumps(list(vids)),),
        )
    }


# -- trees --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LineageTree:
    """A piece of the DAG: `nodes` newest first (children always before their parents).

    `ref` is the full id the tree was drawn around (None for a model's or the file's forest);
    `edges` are (child id, parent id, position) for edges whose both ends are in the tree.
    str() draws it like `git log --graph`; to_dict() is the JSON shape of `mvcdb tree --json`.
    """

    ref: str | None
    model: str | None
    nodes: tuple[Version, ...]
    edges: tuple[tuple[str, str, int], ...]

    def __len__(self) -> int:
        return len(self.nodes)

    def __contains__(self, item: object) -> bool:
        ident = item.id if isinstance(item, Version) else item
        return any(v.id == ident for v in self.nodes)

    @property
    def ids(self) -> list[str]:
        return [v.id for v in self.nodes]

    def lines(self) -> list[str]:
        """The drawing, one string per line (what str() joins)."""
        return list(self.iter_lines())

    def iter_lines(self) -> Iterator[str]:
        """The drawing's lines one by one, as they are laid out."""
        for prefix, version in iter_graph_rows(self.nodes):
            if version is None:
                yield prefix.rstrip()
            else:
                yield f"{prefix}{describe(version, focus=version.id == self.ref)}"

    def __str__(self) -> str:
        return "\n".join(self.lines()) if self.nodes else "(no versions)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "model": self.model,
            "nodes": [
                {
                    "id": v.id,
                    "short_id": v.short_id,
                    "model": v.model,
                    "parents": list(v.parents),
                    "tags": list(v.tags),
                    "message": v.message,
                    "author": v.author,
                    "created_at": v.created_at.isoformat().replace("+00:00", "Z"),
                    "metrics": v.to_dict()["metrics"],
                }
                for v in self.nodes
            ],
            "edges": [{"child": c, "parent": p, "position": pos} for c, p, pos in self.edges],
        }


def describe(version: Version, *, focus: bool = False) -> str:
    """One line about a version for graph output: short id, tags, model, first line of message."""
    tags = f" ({', '.join(version.tags)})" if version.tags else ""
    message = version.message.splitlines()[0] if version.message else ""
    mark = " <" if focus else ""
    return f"{version.short_id}{tags} {version.model}{' ' + message if message else ''}{mark}"


def lineage(
    db: Database, ref: ParentRef | None = None, *, model: str | None = None, depth: int | None = None
) -> LineageTree:
    """The DAG around ref (ancestors and descendants up to `depth` edges away), or a forest.

    With no ref: every version of `model` (or of the whole file when model is None too). With a
    ref and a model: the ref's neighbourhood restricted to that model's versions (ref kept).
    """
    conn = db.conn
    if ref is None:
        if depth is not None:
            raise MvcdbError("depth limits the distance from a ref: give a ref with it")
        if model is None:
            vids = [r[0] for r in conn.execute("SELECT vid FROM versions")]
        else:
            vids = [r[0] for r in conn.execute("SELECT vid FROM versions WHERE model = ?", (model,))]
            if not vids:
                raise MvcdbError(f"no versions of model {model!r}")
        focus = None
    else:
        focus = db._vid(ref)
        up, _ = _walk_columns(conn, focus, _UP, depth=depth)
        down, _ = _walk_columns(conn, focus, _DOWN, depth=depth)
        vids = [focus, *up, *down]
        if model is not None:
            models = _models(conn, vids)
            vids = [v for v in vids if v == focus or models.get(v) == model]
    return _tree(conn, vids, focus, model)


def _models(conn: sqlite3.Connection, vids: Sequence[int]) -> dict[int, str]:
    return dict(
        conn.execute(
            "SELECT vid, model FROM versions WHERE vid IN (SELECT value FROM json_each(?))",
            (json.dumps(list(vids)),),
        ).fetchall()
    )


def _tree(conn: sqlite3.Connection, vids: Sequence[int], focus: int | None, model: str | None) -> LineageTree:
    versions = load_versions(conn, list(vids))
    by_id = {v.id: v for v in versions}
    ordered = topo_newest_first(versions)
    edges = tuple((v.id, p, pos) for v in ordered for pos, p in enumerate(v.parents) if p in by_id)
    ref_id = next((v.id for v, vid in zip(versions, vids, strict=True) if vid == focus), None)
    return LineageTree(ref=ref_id, model=model, nodes=tuple(ordered), edges=edges)


def topo_newest_first(versions: Sequence[Version]) -> list[Version]:
    """Order versions newest first such that every child comes before all of its parents.

    Clock skew between machines (merged files) cannot put a parent above its child: among the
    versions whose children are all placed, the newest goes next.
    """
    by_id = {v.id: v for v in versions}
    waiting = {v.id: 0 for v in versions}  # children not yet placed
    for v in versions:
        for p in set(v.parents):
            if p in waiting:
                waiting[p] += 1
    heap = [(-v.created_at.timestamp(), v.id) for v in versions if waiting[v.id] == 0]
    heapq.heapify(heap)
    out: list[Version] = []
    while heap:
        _, ident = heapq.heappop(heap)
        v = by_id[ident]
        out.append(v)
        for p in set(v.parents):
            if p in waiting:
                waiting[p] -= 1
                if waiting[p] == 0:
                    parent = by_id[p]
                    heapq.heappush(heap, (-parent.created_at.timestamp(), parent.id))
    return out


__all__ = [
    "LineageTree",
    "ancestors",
    "descendants",
    "describe",
    "graph_rows",
    "iter_graph_rows",
    "lineage",
    "merge_base",
    "topo_newest_first",
]
