"""Long query results: the lazy VersionList, lazily parsed Version fields, the first-parent lineage
walk, and the order-driven versions() plans, each checked against the plain eager answer."""

from __future__ import annotations

import copy
import math
import pickle
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lineage_helpers import reference_bfs

import mvcdb
from mvcdb import filters, lineage, models
from mvcdb.models import Version, VersionList, load_versions


@pytest.fixture
def lazy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every VersionList lazy and read in batches of 4, so small files exercise batching."""
    monkeypatch.setattr(models, "EAGER_LENGTH", 0)
    monkeypatch.setattr(models, "FETCH_BATCH", 4)


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[tuple[mvcdb.Database, list[Version]]]:
    """23 versions in a line with metrics, metadata and a tag (NaN != NaN: no NaN metric here)."""
    with mvcdb.open(tmp_path / "chain.db") as db:
        made: list[Version] = []
        for i in range(23):
            made.append(
                db.record(
                    "m",
                    metrics={"loss": 1.0 / (i + 1), "acc": i / 23},
                    metadata={"i": i, "nested": {"lr": 0.1 * i}},
                    parent=made[-1] if made else None,
                    message=f"v{i}",
                )
            )
        db.tag(made[3], "best")
        made[3] = db.get(made[3].id)
        yield db, made


def eager(db: mvcdb.Database, got: VersionList) -> list[Version]:
    return load_versions(db.conn, got.vids)


# -- VersionList behaves like a read-only list --------------------------------------------------


def test_versionlist_is_list_like(chain: tuple[mvcdb.Database, list[Version]], lazy: None) -> None:
    db, made = chain
    got = db.ancestors(made[-1])
    assert isinstance(got, VersionList)
    expected = list(reversed(made[:-1]))
    assert len(got) == 22 and bool(got)
    assert got[0] == expected[0] and got[-1] == expected[-1] and got[-22] == expected[0]
    assert got[7].id == expected[7].id
    with pytest.raises(IndexError):
        got[22]
    with pytest.raises(IndexError):
        got[-23]
    for sl in (
        slice(None),
        slice(3, 9),
        slice(-5, None),
        slice(None, None, -1),
        slice(1, 20, 3),
        slice(9, 3),
    ):
        assert got[sl] == expected[sl]
        assert isinstance(got[sl], list)
    assert list(got) == expected and list(got) == expected  # iterating twice
    assert got == expected and expected == got and got != expected[:-1] and got != [*expected[:-1], made[-1]]
    assert got == tuple(expected)
    assert got != "not a list"
    assert repr(got) == repr(expected)
    assert made[0] in got and made[-1] not in got
    assert got.index(made[10]) == expected.index(made[10])
    assert got.count(made[10]) == 1
    assert list(reversed(got)) == expected[::-1]
    assert got + [made[-1]] == [*expected, made[-1]] and [made[-1]] + got == [made[-1], *expected]
    assert pickle.loads(pickle.dumps(got)) == expected and copy.copy(got) == expected
    assert db.ancestors(made[-1]) == got  # two lists of the same rows
    with pytest.raises(TypeError):
        hash(got)
    empty = db.ancestors(made[0])
    assert len(empty) == 0 and not empty and empty == [] and list(empty) == [] and repr(empty) == "[]"


def test_versionlist_reads_in_batches_only_what_is_used(
    chain: tuple[mvcdb.Database, list[Version]], lazy: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, made = chain
    calls: list[int] = []
    real = models._fetch

    def spy(conn: Any, vids: Any) -> dict[int, Version]:
        calls.append(len(vids))
        return real(conn, vids)

    monkeypatch.setattr(models, "_fetch", spy)
    got = db.versions()
    assert calls == [] and len(got) == 23
    assert got[-1].id == made[0].id
    assert calls == [3]  # the last batch of 4: positions 20..22
    assert got[21].id == made[1].id and calls == [3]  # already built
    assert [v.id for v in got] == [v.id for v in reversed(made)]
    assert sum(calls) == 23  # nothing built twice


def test_lazy_and_eager_versions_are_identical(chain: tuple[mvcdb.Database, list[Version]]) -> None:
    db, made = chain
    listed = db.versions(order_by="created_at")
    for version, recorded in zip(listed, made, strict=True):
        assert version == recorded  # every field, including the lazily parsed ones
        assert version.created_at == recorded.created_at and version.created_at.tzinfo is not None
        assert version.metadata == recorded.metadata
        assert version.to_dict() == recorded.to_dict()
        assert hash(version) == hash(recorded)
    nan = db.record("m", metrics={"loss": float("nan")})
    assert math.isnan(db.versions(limit=1)[0].metrics["loss"]) and db.versions(limit=1)[0].id == nan.id
    assert listed[3].tags == ("best",) and listed[4].parents == (made[3].id,)
    assert listed[0].parents == () and listed[0].parent is None
    # a constructed Version holds plain values (the lazy fields only serve rows from the file)
    built = Version(
        id=made[1].id,
        model="m",
        parents=made[1].parents,
        metrics=made[1].metrics,
        metadata={"i": 1, "nested": {"lr": 0.1}},
        message="v1",
        author=made[1].author,
        created_at=made[1].created_at,
    )
    assert built == listed[1] and vars(built)["metadata"] == {"i": 1, "nested": {"lr": 0.1}}
    assert copy.deepcopy(listed[2]) == listed[2] and pickle.loads(pickle.dumps(listed[2])) == made[2]


def test_closing_the_database_builds_what_is_left(tmp_path: Path, lazy: None) -> None:
    with mvcdb.open(tmp_path / "c.db") as db:
        made = [db.record("m", metrics={"x": i}) for i in range(9)]
        got = db.versions()
        first = got[0]
    assert first.id == made[-1].id
    assert [v.id for v in got] == [v.id for v in reversed(made)]  # read after close


def test_removing_versions_while_iterating(tmp_path: Path, lazy: None) -> None:
    # rm() first turns this connection's unfinished lists into snapshots: a cleanup loop works
    with mvcdb.open(tmp_path / "i.db") as db:
        made = [db.record("m") for _ in range(9)]
        seen = []
        for version in db.versions():
            seen.append(version.id)
            db.rm(version)
        assert seen == [v.id for v in reversed(made)] and len(db.versions()) == 0


def _other_connection_rm(path: Path, version: Version, then_record: bool = False) -> None:
    with mvcdb.open(path) as other:
        other.rm(version)
        if then_record:
            other.record("m", message="newcomer")


def test_a_version_removed_elsewhere_is_an_error_not_a_gap(tmp_path: Path, lazy: None) -> None:
    with mvcdb.open(tmp_path / "r.db") as db:
        made = [db.record("m") for _ in range(9)]
        got = db.versions(order_by="created_at")
        _other_connection_rm(db.path, made[4])
        assert got[0].id == made[0].id  # the guard (the list's newest) is intact: batch 0 reads
        with pytest.raises(mvcdb.MvcdbError, match="removed"):
            got[4]


def test_a_reused_local_id_is_caught(tmp_path: Path, lazy: None) -> None:
    # vids are reused after the highest one is deleted: the list must not show the newcomer
    with mvcdb.open(tmp_path / "u.db") as db:
        made = [db.record("m") for _ in range(9)]
        got = db.versions(order_by="created_at")
        _other_connection_rm(db.path, made[-1], then_record=True)
        assert db.versions(limit=1)[0].message == "newcomer"
        with pytest.raises(mvcdb.MvcdbError, match="removed"):
            list(got)


def test_short_lists_are_snapshots(tmp_path: Path) -> None:
    with mvcdb.open(tmp_path / "s.db") as db:
        made = [db.record("m") for _ in range(5)]
        got = db.versions()
        db.rm(made[-1])
        assert [v.id for v in got] == [v.id for v in reversed(made)]


# -- the first-parent walk and its fallback ------------------------------------------------------


def _record_graph(
    db: mvcdb.Database, n: int, merges: bool, seed: int
) -> tuple[list[str], dict[str, list[str]]]:
    rng = random.Random(seed)
    made: list[str] = []
    parents: dict[str, list[str]] = {}
    for i in range(n):
        k = 0 if not made else (rng.choice([1, 1, 2]) if merges and i % 5 == 0 else 1)
        chosen = rng.sample(made, min(k, len(made)))
        made.append(db.record("m", parents=chosen).id)
        parents[made[-1]] = chosen
    return made, parents


@pytest.mark.parametrize("long_walk", [lineage.LONG_WALK, 2])  # 2: long ancestries chase pointers
@pytest.mark.parametrize("merges", [False, True])
def test_walks_match_a_reference_bfs(
    tmp_path: Path, lazy: None, monkeypatch: pytest.MonkeyPatch, merges: bool, long_walk: int
) -> None:
    general: list[int] = []
    chased: list[bool] = []
    real = lineage._walk_general
    real_chase = lineage._chase_first_parents

    def spy(*args: Any, **kwargs: Any) -> list[tuple[int, int]]:
        general.append(1)
        return real(*args, **kwargs)

    def chase_spy(conn: Any, start: int) -> list[int] | None:
        got = real_chase(conn, start)
        chased.append(got is not None)
        return got

    monkeypatch.setattr(lineage, "_walk_general", spy)
    monkeypatch.setattr(lineage, "_chase_first_parents", chase_spy)
    monkeypatch.setattr(lineage, "LONG_WALK", long_walk)
    with mvcdb.open(tmp_path / "g.db") as db:
        made, parents = _record_graph(db, 60, merges, seed=3)
        children: dict[str, list[str]] = {m: [] for m in made}
        for child in made:
            for p in parents[child]:
                children[p].append(child)
        for start in [made[0], made[-1], *random.Random(1).sample(made, 12)]:
            for walk, edges in ((db.ancestors, parents), (db.descendants, children)):
                full = [v.id for v in walk(start)]
                assert full == reference_bfs(start, edges, order=made)
                for limit in (0, 1, 3, 7):
                    assert [v.id for v in walk(start, limit=limit)] == full[:limit]
            tree = db.lineage(start, depth=2)
            near = {
                start,
                *reference_bfs(start, parents, depth=2, order=made),
                *reference_bfs(start, children, depth=2, order=made),
            }
            assert set(tree.ids) == near
    assert bool(general) == merges  # trees and chains never need the general walk
    assert any(chased) == (long_walk == 2)  # long ancestries followed first-parent pointers
    if long_walk == 2:
        assert all(chased) == (not merges)  # ... unless a merge was in reach


def test_a_merge_as_the_starting_point_takes_the_general_walk(tmp_path: Path) -> None:
    with mvcdb.open(tmp_path / "m.db") as db:
        a = db.record("m")
        b = db.record("m", parent=a)
        c = db.record("m")
        d = db.record("m", parents=[b, c])
        assert [v.id for v in db.ancestors(d)] == [b.id, c.id, a.id]
        assert [v.id for v in db.ancestors(d, limit=1)] == [b.id]
        assert [v.id for v in db.descendants(a)] == [b.id, d.id]
        base = db.merge_base(d, b)
        assert base is not None and base.id == b.id
        e = db.record("m", parents=[c, a, b])  # parents keep their recorded order, not vid order
        assert db.get(e.id).parents == (c.id, a.id, b.id) == db.versions(limit=1)[0].parents


def test_long_chain_walk(tmp_path: Path) -> None:
    # longer than EAGER_LENGTH: the lazy list, the aggregated walk, depth bounds
    with mvcdb.open(tmp_path / "long.db") as db:
        conn = db.conn
        made = [db.record("m")]
        with mvcdb.connection.write_transaction(conn):
            for _ in range(models.EAGER_LENGTH + 50):
                made.append(db.record("m", parent=made[-1]))
        got = db.ancestors(made[-1])
        assert len(got) == len(made) - 1 and got[0].id == made[-2].id and got[-1].id == made[0].id
        assert [v.id for v in got] == [v.id for v in reversed(made[:-1])]
        vid = db._vid(made[-1])
        assert lineage._walk(conn, vid, lineage._UP, depth=3) == [(vid - 1, 1), (vid - 2, 2), (vid - 3, 3)]
        assert [v.id for v in db.descendants(made[0], limit=2)] == [made[1].id, made[2].id]
        assert len(db.lineage(made[500], depth=10)) == 21


# -- versions(): the order-driven plans give the filter-driven answer ----------------------------


@pytest.fixture
def population(tmp_path: Path) -> Iterator[mvcdb.Database]:
    """120 versions: loss with ties, NaNs and gaps; acc everywhere; two models; metadata."""
    rng = random.Random(11)
    with mvcdb.open(tmp_path / "p.db") as db:
        for i in range(120):
            metrics: dict[str, float] = {"acc": rng.random()}
            roll = rng.random()
            if roll < 0.1:
                metrics["loss"] = float("nan")
            elif roll < 0.8:
                metrics["loss"] = round(rng.random(), 1)  # many ties
            db.record(
                "a" if i % 3 else "b",
                metrics=metrics,
                metadata={"k": i % 4},
                message="odd" if i % 2 else "even",
            )
        yield db


QUERIES: list[dict[str, Any]] = [
    {},
    {"where": "metrics.loss < 0.5"},
    {"where": "loss >= 0.3", "order_by": "metrics.loss"},
    {"where": ["loss >= 0.3", "loss <= 0.7"], "order_by": "-metrics.loss"},
    {"order_by": "metrics.loss"},
    {"order_by": "-metrics.loss"},
    {"order_by": "metrics.acc", "where": "loss < 0.4"},
    {"order_by": "metrics.loss", "where": "acc > 0.5"},
    {"order_by": "metrics.loss", "model": "b"},
    {"order_by": "metrics.nothing"},
    {"order_by": "created_at", "where": "acc < 0.3"},
    {"where": ["acc > 0.2", "metadata.k = 1", "message ~ odd"]},
    {"order_by": "metrics.loss", "where": "message = even", "model": "a"},
    {"order_by": "-metrics.loss", "where": "metadata.k != 2"},
]


@pytest.mark.parametrize("query", QUERIES)
def test_order_driven_plans_agree_with_the_filter_driven_one(
    population: mvcdb.Database, monkeypatch: pytest.MonkeyPatch, query: dict[str, Any]
) -> None:
    conn = population.conn
    clauses, metrics = _parts(query)
    reference = filters._filter_driven(conn, clauses, metrics, query.get("order_by"), None, 0)
    assert filters.select_vids(conn, **query) == reference
    assert len(reference) == len(set(reference)) and reference
    for selective in (False, True):  # force each plan in turn
        monkeypatch.setattr(filters, "_any_selective", lambda *_args, s=selective: s)
        for limit, offset in ((5, 0), (7, 3), (50, 40), (10, 85), (10, 200), (0, 0), (200, 0)):
            got = filters.select_vids(conn, **query, limit=limit, offset=offset)
            assert got == reference[offset : offset + limit], (selective, limit, offset)


def _parts(query: dict[str, Any]) -> tuple[list[tuple[str, list[Any]]], list[Any]]:
    clauses: list[tuple[str, list[Any]]] = []
    for field, sql in (("model", "v.model = ?"),):
        if field in query:
            clauses.append((sql, [query[field]]))
    metrics: list[Any] = []
    where = query.get("where")
    for cond in [where] if isinstance(where, str) else list(where or []):
        parsed = filters._parse_condition(cond)
        if isinstance(parsed, tuple):
            clauses.append(parsed)
        else:
            metrics.append(parsed)
    return clauses, metrics


def test_metric_order_puts_missing_and_nan_last(population: mvcdb.Database) -> None:
    got = population.versions(order_by="metrics.loss", limit=200)
    values = [v.metrics.get("loss", float("nan")) for v in got]
    valued = [x for x in values if not math.isnan(x)]
    assert values[: len(valued)] == sorted(valued)
    assert all(math.isnan(x) for x in values[len(valued) :])
    top = population.versions(order_by="-metrics.loss", limit=3)
    assert [v.metrics["loss"] for v in top] == sorted(valued, reverse=True)[:3]


def test_selectivity_probe_picks_the_filter_driven_plan(
    population: mvcdb.Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = population.conn
    used: list[str] = []
    for name in ("_filter_driven", "_by_metric", "_by_time"):
        real = getattr(filters, name)

        def spy(*args: Any, _name: str = name, _real: Any = real) -> list[int]:
            used.append(_name)
            return list(_real(*args))

        monkeypatch.setattr(filters, name, spy)
    filters.select_vids(conn, where="acc > 0.999", order_by="metrics.loss", limit=5)  # few match
    filters.select_vids(conn, where="acc > 0.001", order_by="metrics.loss", limit=5)  # most match
    filters.select_vids(conn, where="loss < 0.001", order_by="metrics.loss", limit=5)  # own metric: a range
    filters.select_vids(conn, where="acc > 0.001", limit=5)
    filters.select_vids(conn, tag="none", order_by="metrics.loss", limit=5)  # a tag names one version
    filters.select_vids(conn, where="acc > 0.001")  # everything wanted: no walk
    assert used == [
        "_filter_driven",
        "_by_metric",
        "_by_metric",
        "_by_time",
        "_filter_driven",
        "_filter_driven",
    ]


def test_bad_paging_values(population: mvcdb.Database) -> None:
    for bad in (-1, 1.5, True):
        with pytest.raises(mvcdb.MvcdbError, match="limit"):
            population.versions(limit=bad)  # type: ignore[arg-type]
        with pytest.raises(mvcdb.MvcdbError, match="offset"):
            population.versions(offset=bad)  # type: ignore[arg-type]


def test_a_damaged_file_with_a_lineage_cycle_still_ends(tmp_path: Path) -> None:
    # honest files cannot hold a cycle (parents exist first); a hand-edited one must not hang us
    with mvcdb.open(tmp_path / "cyc.db") as db:
        a, b, c = db.record("m"), db.record("m"), db.record("m")
        va, vb, vc = db._vid(a), db._vid(b), db._vid(c)
        db.conn.executemany(
            "INSERT INTO lineage (child, position, parent) VALUES (?, 0, ?)", [(va, vb), (vb, vc), (vc, va)]
        )
        assert [v.id for v in db.ancestors(a)] == [b.id, c.id]
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(lineage, "LONG_WALK", 1)  # the pointer chase meets the cycle too
            assert [v.id for v in db.ancestors(a)] == [b.id, c.id]
        assert [v.id for v in db.ancestors(a, limit=1)] == [b.id]
        assert [v.id for v in db.descendants(a)] == [c.id, b.id]
        assert [v.id for v in db.descendants(a, limit=5)] == [c.id, b.id]
        assert db.lineage(a, depth=5).ref == a.id  # returns (a cycle cannot be drawn, but it ends)


def test_merges_and_repeated_vids_across_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models, "FETCH_BATCH", 2)
    with mvcdb.open(tmp_path / "b.db") as db:
        a, b = db.record("m"), db.record("m")
        c = db.record("m", parents=[b, a])
        vid = db._vid(c)
        got = load_versions(db.conn, [vid, db._vid(a), vid, vid])
        assert [v.parents for v in got] == [(b.id, a.id), (), (b.id, a.id), (b.id, a.id)]


def test_filter_fields_as_a_user_writes_them(tmp_path: Path) -> None:
    """created_at compares as a time (it compared raw text: '2026-11-27 23:59' < '2026-11-27T…'
    matched nothing); metadata true/false/null are JSON's; a metadata order puts versions without
    the field last; a bare dotted name no metric has is an error, not an empty result."""
    from datetime import datetime, timedelta, timezone

    with mvcdb.open(tmp_path / "f.db") as db:
        a = db.record("m", {"w": 1.0}, metadata={"amp": True, "hyper": {"lr": 0.1}, "note": None})
        b = db.record("m", {"w": 2.0}, metadata={"amp": False, "hyper": {"lr": 0.01}})
        c = db.record("m", {"w": 3.0}, metrics={"val.loss": 0.5})

        def ids(**kw: Any) -> list[str]:
            return [v.id for v in db.versions(**kw)]

        later = (datetime.now(timezone.utc) + timedelta(days=1)).strftime("%Y-%m-%d %H:%M")
        assert set(ids(where=f"created_at < {later}")) == {a.id, b.id, c.id}
        assert ids(where=f"created_at > {later}") == []
        assert set(ids(where="created_at > 1d")) == {a.id, b.id, c.id}
        assert ids(where="created_at < '2000-01-01'") == []
        with pytest.raises(mvcdb.MvcdbError, match="created_at 'yesterday' is not a date"):
            ids(where="created_at < yesterday")
        assert ids(where="metadata.amp = true") == [a.id]
        assert ids(where="metadata.amp = false") == [b.id]
        assert ids(where="metadata.amp != true") == [b.id]
        assert set(ids(where="metadata.note = null")) == {a.id, b.id, c.id}  # JSON null, or no field
        assert ids(where="metadata.hyper = null") == [c.id]
        assert set(ids(where="metadata.hyper != null")) == {a.id, b.id}
        assert ids(where="metadata.amp = 'true'") == []  # quoted: the text "true"
        with pytest.raises(mvcdb.MvcdbError, match="null can only be compared"):
            ids(where="metadata.note < null")
        assert ids(order_by="metadata.hyper.lr") == [b.id, a.id, c.id]
        assert ids(order_by="-metadata.hyper.lr") == [a.id, b.id, c.id]
        for typo in ("metdata.hyper.lr > 0", "hyper.lr > 0"):
            with pytest.raises(mvcdb.MvcdbError, match=r"write metadata\.PATH"):
                ids(where=typo)
        assert ids(where="val.loss < 1") == [c.id]  # a dotted metric that exists still works
        for nonsense in ("model <> m", "metrics. < 1", "message = "):  # matched nothing, silently
            with pytest.raises(mvcdb.MvcdbError, match="cannot read condition"):
                ids(where=nonsense)
        assert ids(order_by="val.loss") == [c.id, b.id, a.id]  # a bare metric name, as in a condition
        with pytest.raises(mvcdb.MvcdbError, match="no version has a metric of that name"):
            ids(order_by="crated_at")
        assert ids(where="metrics.no.such < 1") == []  # written as a metric: simply no match
