"""Shared by the lineage tests: the walk every lineage query must agree with."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence


def reference_bfs(
    start: str, edges: dict[str, list[str]], depth: int | None = None, order: Sequence[str] = ()
) -> list[str]:
    """Breadth-first distances; nearest first, ties in recording order."""
    distance = {start: 0}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if depth is not None and distance[node] >= depth:
            continue
        for nxt in edges[node]:
            if nxt not in distance:
                distance[nxt] = distance[node] + 1
                queue.append(nxt)
    del distance[start]
    rank = {ident: i for i, ident in enumerate(order)}
    return sorted(distance, key=lambda ident: (distance[ident], rank.get(ident, 0)))
