"""Lineage: ancestors, descendants and merge bases over a DAG, trees, and the git-style graph."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from lineage_helpers import reference_bfs

import mvcdb
from mvcdb import lineage as lineage_module
from mvcdb.lineage import graph_rows, iter_graph_rows, topo_newest_first
from mvcdb.models import Version

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def fake(ident: str, *parents: str, minute: int = 0) -> Version:
    """A Version for the pure graph functions (no database)."""
    return Version(
        id=ident,
        model="m",
        parents=tuple(parents),
        metrics={},
        metadata={},
        message="",
        author="",
        created_at=T0 + timedelta(minutes=minute),
    )


def drawing(versions: Sequence[Version]) -> list[str]:
    return [prefix.rstrip() + (f" {v.id}" if v else "") for prefix, v in graph_rows(versions)]


# -- graph_rows (pure) ----------------------------------------------------------------------------


def test_graph_linear_history() -> None:
    assert drawing([fake("c", "b"), fake("b", "a"), fake("a")]) == ["* c", "* b", "* a"]


def test_graph_branch_joins_back() -> None:
    assert drawing([fake("c", "a"), fake("b", "a"), fake("a")]) == ["* c", "| * b", "|/", "* a"]


def test_graph_diamond_merge() -> None:
    rows = drawing([fake("d", "b", "c"), fake("c", "a"), fake("b", "a"), fake("a")])
    assert rows == ["* d", "|\\", "| * c", "* | b", "|/", "* a"]


def test_graph_rows_carry_versions_only_on_commit_lines() -> None:
    versions = [fake("d", "b", "c"), fake("c", "a"), fake("b", "a"), fake("a")]
    rows = graph_rows(versions)
    assert [v.id for _, v in rows if v is not None] == ["d", "c", "b", "a"]
    for prefix, version in rows:
        assert ("*" in prefix) == (version is not None)
        assert len(prefix) % 2 == 0  # two characters a column


def test_graph_octopus_merge_draws_every_parent() -> None:
    versions = [fake("e", "d"), fake("d", "a", "b", "c"), fake("c", "a"), fake("b", "a"), fake("a")]
    rows = drawing(versions)
    assert [r for r in rows if "*" in r] == ["* e", "* d", "| | * c", "| * b", "* a"]
    assert sum(r.count("\\") for r in rows) == 2  # two extra parents branch off
    assert rows[-1] == "* a" and rows[-2] == "|/"


def test_graph_parents_outside_the_list_get_no_column() -> None:
    # b's parent 'gone' is not listed (e.g. log --limit): its line just ends.
    assert drawing([fake("m", "b", "z"), fake("z"), fake("b", "gone")]) == ["* m", "|\\", "| * z", "* b"]


def test_graph_unrelated_roots_are_separated() -> None:
    rows = drawing([fake("x"), fake("y")])
    assert rows == ["* x", "", "* y"]  # a gap: y is not x's parent


def test_graph_column_shifts_left_when_a_root_ends() -> None:
    rows = drawing([fake("a2", "a1"), fake("b2", "b1"), fake("a1"), fake("b1")])
    assert rows == ["* a2", "| * b2", "* | a1", " /", "* b1"]


def test_graph_ignores_duplicates_and_parents_listed_above_children() -> None:
    assert drawing([fake("a"), fake("b", "a"), fake("a")]) == ["* a", "", "* b"]


def test_graph_empty() -> None:
    assert graph_rows([]) == []


def test_graph_rows_come_one_by_one_as_they_are_laid_out() -> None:
    """`log --graph` of a wide history streams: its first line must not wait for the last."""
    versions = [fake(f"v{i}", f"v{i + 1}") for i in range(50)] + [fake("v50")]
    rows = iter_graph_rows(versions)
    assert next(rows) == graph_rows(versions)[0]  # a generator, not a finished list
    assert [next(rows) for _ in range(3)] == graph_rows(versions)[1:4]
    assert list(iter_graph_rows(versions)) == graph_rows(versions)


def test_topological_order_beats_clock_skew() -> None:
    # the child's clock was behind its parent's (files merged from two machines)
    parent, child = fake("p", minute=10), fake("c", "p", minute=1)
    assert [v.id for v in topo_newest_first([parent, child])] == ["c", "p"]


# -- walks over a real file -----------------------------------------------------------------------


@pytest.fixture
def diamond(db: mvcdb.Database) -> dict[str, Version]:
    """a -> b, a -> c, d = merge(b, c), e -> d; plus an unrelated root x of another model."""
    a = db.record("m", metrics={"loss": 1.0}, message="root")
    b = db.record("m", metrics={"loss": 0.8}, parent=a, message="left")
    c = db.record("m", metrics={"loss": 0.9}, parent=a, message="right")
    d = db.record("m", parents=[b, c], message="merge", tags=["best"])
    e = db.record("m", parent=d, message="tip")
    x = db.record("other", message="unrelated")
    return {"a": a, "b": b, "c": c, "d": d, "e": e, "x": x}


def ids(versions: Sequence[Version]) -> list[str]:
    return [v.id for v in versions]


def test_diamond_ancestors_nearest_first(db: mvcdb.Database, diamond: dict[str, Version]) -> None:
    v = diamond
    assert ids(db.ancestors(v["e"])) == [v["d"].id, v["b"].id, v["c"].id, v["a"].id]
    assert ids(db.ancestors(v["d"])) == [v["b"].id, v["c"].id, v["a"].id]  # a once, not twice
    assert ids(db.ancestors(v["d"], limit=2)) == [v["b"].id, v["c"].id]
    assert db.ancestors(v["a"]) == []
    assert db.ancestors(v["e"], limit=0) == []


def test_diamond_descendants_nearest_first(db: mvcdb.Database, diamond: dict[str, Version]) -> None:
    v = diamond
    assert ids(db.descendants(v["a"])) == [v["b"].id, v["c"].id, v["d"].id, v["e"].id]
    assert ids(db.descendants(v["c"])) == [v["d"].id, v["e"].id]
    assert ids(db.descendants("best", limit=1)) == [v["e"].id]
    assert db.descendants(v["e"]) == []


def test_diamond_merge_base(db: mvcdb.Database, diamond: dict[str, Version]) -> None:
    v = diamond
    assert db.merge_base(v["b"], v["c"]) == db.get(v["a"].id)
    assert db.merge_base(v["e"], v["c"]).id == v["c"].id  # an ancestor is its own merge base
    assert db.merge_base(v["c"], v["e"]).id == v["c"].id
    assert db.merge_base(v["d"], v["d"]).id == v["d"].id
    assert db.merge_base(v["e"], v["x"]) is None


def test_merge_base_picks_the_nearest_of_several_common_ancestors(db: mvcdb.Database) -> None:
    root = db.record("m")
    mid = db.record("m", parent=root)
    left = db.record("m", parent=mid)
    right = db.record("m", parents=[mid, root])
    assert db.merge_base(left, right).id == mid.id


def test_walk_errors(db: mvcdb.Database, diamond: dict[str, Version]) -> None:
    with pytest.raises(mvcdb.MvcdbError, match="limit"):
        db.ancestors(diamond["e"], limit=-1)
    with pytest.raises(mvcdb.errors.RefError):
        db.descendants("no-such-tag")
    with pytest.raises(mvcdb.MvcdbError, match="depth"):
        db.lineage(model="m", depth=2)


def test_counts_beyond_sqlite_integers_mean_no_bound(db: mvcdb.Database, diamond: dict[str, Version]) -> None:
    """A limit, offset or depth past 2**63 (SQLite's largest integer) is no bound at all."""
    huge = 10**30
    assert ids(db.ancestors(diamond["e"], limit=huge)) == ids(db.ancestors(diamond["e"]))
    assert ids(db.descendants(diamond["a"], limit=huge)) == ids(db.descendants(diamond["a"]))
    assert len(db.lineage(diamond["e"], depth=huge).nodes) == len(db.lineage(diamond["e"]).nodes)
    assert len(db.versions(limit=huge)) == len(db.versions()) == 6
    assert ids(db.versions(order_by="metrics.loss", limit=huge)) == ids(db.versions(order_by="metrics.loss"))
    assert len(db.versions(limit=huge, offset=huge)) == 0


def test_random_dag_matches_a_reference_bfs(tmp_path: Path) -> None:
    rng = random.Random(7)
    parents: dict[str, list[str]] = {}
    with mvcdb.open(tmp_path / "dag.db") as db:
        made: list[str] = []
        for i in range(120):
            k = 0 if not made else rng.choice([1, 1, 1, 2, 3]) if i % 7 else 0
            chosen = rng.sample(made, min(k, len(made)))
            v = db.record("m", parents=chosen)
            parents[v.id] = chosen
            made.append(v.id)
        children: dict[str, list[str]] = {m: [] for m in made}
        for child in made:  # made is in recording order = vid order
            for p in parents[child]:
                children[p].append(child)
        for start in rng.sample(made, 20):
            assert ids(db.ancestors(start)) == reference_bfs(start, parents, order=made)
            assert ids(db.descendants(start)) == reference_bfs(start, children, order=made)
            full = ids(db.ancestors(start))
            assert ids(db.ancestors(start, limit=5)) == full[:5]  # stopping early changes nothing
            assert ids(db.descendants(start, limit=3)) == ids(db.descendants(start))[:3]
            vid = db._vid(start)
            for direction in (lineage_module._UP, lineage_module._DOWN):  # the exact fallback agrees
                assert lineage_module._walk_exact(db.conn, vid, direction) == lineage_module._walk(
                    db.conn, vid, direction
                )
                assert lineage_module._walk_exact(db.conn, vid, direction, depth=2, limit=4) == (
                    lineage_module._walk(db.conn, vid, direction, depth=2, limit=4)
                )
            tree = db.lineage(start, depth=2)
            near = {start} | set(reference_bfs(start, parents, depth=2))
            near |= set(reference_bfs(start, children, depth=2))
            assert set(tree.ids) == near


def test_tangled_dag_falls_back_to_the_exact_walk(
    db: mvcdb.Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a ladder: two chains cross-merged at every step reach old versions by many path lengths
    left, right = db.record("m"), db.record("m")
    for _ in range(12):
        left, right = db.record("m", parents=[left, right]), db.record("m", parents=[right, left])
    expected = ids(db.ancestors(left))
    calls = []
    exact = lineage_module._walk_exact

    def spy(*args: object, **kwargs: object) -> list[tuple[int, int]]:
        calls.append(1)
        return exact(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(lineage_module, "_walk_exact", spy)
    monkeypatch.setattr(lineage_module, "_DUPLICATE_SLACK", 0)
    monkeypatch.setattr(lineage_module, "_DUPLICATE_FACTOR", 0)
    assert ids(db.ancestors(left)) == expected and calls
    assert len(expected) == 2 * 12 and len(set(expected)) == len(expected)


# -- trees ----------------------------------------------------------------------------------------


def test_lineage_tree_draws_like_git(db: mvcdb.Database, diamond: dict[str, Version]) -> None:
    v = {k: x.short_id for k, x in diamond.items()}
    tree = db.lineage(diamond["a"])
    assert str(tree).splitlines() == [
        f"* {v['e']} m tip",
        f"* {v['d']} (best) m merge",
        "|\\",
        f"| * {v['c']} m right",
        f"* | {v['b']} m left",
        "|/",
        f"* {v['a']} m root <",
    ]
    assert tree.ref == diamond["a"].id
    # b's lineage is its ancestors and descendants: the sibling c is not part of it
    assert str(db.lineage(diamond["b"])).splitlines() == [
        f"* {v['e']} m tip",
        f"* {v['d']} (best) m merge",
        f"* {v['b']} m left <",
        f"* {v['a']} m root",
    ]


def test_lineage_depth_and_model_forest(db: mvcdb.Database, diamond: dict[str, Version]) -> None:
    d = diamond
    near = db.lineage(d["b"], depth=1)
    assert set(near.ids) == {d["b"].id, d["a"].id, d["d"].id}
    assert db.lineage(d["b"], depth=0).ids == [d["b"].id]
    forest = db.lineage(model="m")
    assert set(forest.ids) == {d[k].id for k in "abcde"}
    assert set(db.lineage().ids) == {x.id for x in d.values()}
    assert db.lineage(d["x"], model="m").ids == [d["x"].id]  # the ref is always kept
    with pytest.raises(mvcdb.MvcdbError, match="no versions of model"):
        db.lineage(model="nope")


def test_lineage_to_dict_is_json(db: mvcdb.Database, diamond: dict[str, Version]) -> None:
    data = json.loads(json.dumps(db.lineage(diamond["d"]).to_dict(), allow_nan=False))
    assert data["ref"] == diamond["d"].id
    node = next(n for n in data["nodes"] if n["id"] == diamond["d"].id)
    assert node["parents"] == [diamond["b"].id, diamond["c"].id]
    assert (
        node["tags"] == ["best"] and node["message"] == "merge" and node["short_id"] == diamond["d"].short_id
    )
    assert set(node) >= {"id", "short_id", "model", "parents", "tags", "message", "created_at"}
    edges = {(e["child"], e["parent"], e["position"]) for e in data["edges"]}
    assert (diamond["d"].id, diamond["c"].id, 1) in edges
    assert len(edges) == 5  # b-a, c-a, d-b, d-c, e-d
    # children always come before their parents in `nodes`
    order = {n["id"]: i for i, n in enumerate(data["nodes"])}
    assert all(order[c] < order[p] for c, p, _ in edges)
