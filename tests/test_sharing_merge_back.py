"""A version removed with rm --force comes back, as in git, when merged or pulled again: its
children's lineage edges to it (named by their manifests) are restored with it."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import remote_helpers
from reliability_helpers import content

import mvcdb

pg_server = remote_helpers.pg_server
pg_url = remote_helpers.pg_url


def params(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"w": rng.standard_normal(300).astype(np.float32), "b": np.array(seed, dtype=np.int64)}


def chain(db: mvcdb.Database, names: str, model: str = "m") -> dict[str, mvcdb.Version]:
    """One version per letter, each the child of the one before (the first is a root)."""
    out: dict[str, mvcdb.Version] = {}
    parent: mvcdb.Version | None = None
    for seed, name in enumerate(names):
        parent = out[name] = db.record(model, params(seed), parent=parent, message=name)
    return out


def assert_whole(db: mvcdb.Database, versions: dict[str, mvcdb.Version], seeds: dict[str, int]) -> None:
    """verify() is clean and every version restores bit-identically to what was recorded."""
    report = db.verify()
    assert report.ok, report.problems
    for name, v in versions.items():
        got = db.restore(v.id)
        want = params(seeds[name])
        assert sorted(got) == sorted(want)
        for key, value in want.items():
            have = np.asarray(got[key])
            assert (have.dtype, have.shape, have.tobytes()) == (value.dtype, value.shape, value.tobytes())


def ids(vs: list[mvcdb.Version] | mvcdb.VersionList) -> list[str]:
    return [v.id for v in vs]


def test_merge_brings_back_a_removed_parent_with_its_childs_edge(tmp_path: Path) -> None:
    path, full = tmp_path / "x.db", tmp_path / "full.db"
    with mvcdb.open(path) as db:
        v = chain(db, "pcg")
        db.export([v["g"]], full)
        db.rm(v["c"], force=True)
        assert ids(db.ancestors(v["g"])) == []
        report = db.merge(full)
        assert report.versions_added == [v["c"].id]
        assert any(
            f"{v['g'].id[:12]}: its edge to parent {v['c'].id[:12]} restored" in n for n in report.notes
        )
        assert ids(db.ancestors(v["g"])) == [v["c"].id, v["p"].id]
        assert db.get(v["g"].id + "~1").id == v["c"].id
        assert db.get(v["g"].id).parents == (v["c"].id,)
        assert_whole(db, v, {"p": 0, "c": 1, "g": 2})
        again = db.merge(full)
        assert not again.changed and not again.notes


def test_merge_into_a_file_that_got_the_child_from_a_bundle_exported_after_rm(tmp_path: Path) -> None:
    home, full, after, second = (tmp_path / n for n in ("home.db", "full.db", "after.db", "second.db"))
    with mvcdb.open(home) as db:
        v = chain(db, "pcg")
        db.export([v["g"]], full)
        db.rm(v["c"], force=True)
        db.export([v["g"]], after)  # g alone: its parent is gone
    with mvcdb.open(second) as db:
        db.merge(after)
        assert db.get(v["g"].id).parents == ()
        report = db.merge(full)
        assert sorted(report.versions_added) == sorted([v["p"].id, v["c"].id])
        assert ids(db.ancestors(v["g"])) == [v["c"].id, v["p"].id]
        assert_whole(db, v, {"p": 0, "c": 1, "g": 2})


@pytest.mark.parametrize("removed", ["ab", "ba", "rab", "bra", "arb"])
def test_a_chain_of_removed_versions_comes_back_in_one_merge(tmp_path: Path, removed: str) -> None:
    path, full = tmp_path / "x.db", tmp_path / "full.db"
    with mvcdb.open(path) as db:
        v = chain(db, "rabt")
        db.export([v["t"]], full)
        for name in removed:
            db.rm(v[name], force=True)
        db.merge(full)
        assert ids(db.ancestors(v["t"])) == [v["b"].id, v["a"].id, v["r"].id]
        assert_whole(db, v, {"r": 0, "a": 1, "b": 2, "t": 3})
        from mvcdb.copying import incomplete_versions  # here: the check above must fail first without it

        assert not incomplete_versions(db.conn)  # nothing left that may lack an edge


@pytest.mark.parametrize("n_parents", [3, 17])  # 17: the parents list no longer packs as a fixarray
def test_a_merge_version_gets_each_edge_back_at_its_position(tmp_path: Path, n_parents: int) -> None:
    path, full = tmp_path / "x.db", tmp_path / "full.db"
    with mvcdb.open(path) as db:
        roots = {f"r{i}": db.record("m", params(i), message=f"r{i}") for i in range(n_parents)}
        soup = db.record("m", params(99), parents=list(roots.values()), message="parents")
        db.export([soup], full)
        for i in (1, n_parents - 1):  # a middle parent and the last one
            db.rm(roots[f"r{i}"], force=True)
        assert db.get(soup.id).parents == tuple(
            r.id for k, r in roots.items() if k not in ("r1", f"r{n_parents - 1}")
        )
        report = db.merge(full)
        assert len(report.versions_added) == 2
        assert db.get(soup.id).parents == tuple(r.id for r in roots.values())
        positions = db.conn.execute(
            "SELECT p.id, l.position FROM lineage l JOIN versions p ON p.vid = l.parent"
            " JOIN versions c ON c.vid = l.child WHERE c.id = ? ORDER BY l.position",
            (soup.id,),
        ).fetchall()
        assert positions == [(r.id, i) for i, r in enumerate(roots.values())]
        assert_whole(db, {**roots, "soup": soup}, {**{f"r{i}": i for i in range(n_parents)}, "soup": 99})


def test_a_parent_that_never_comes_back_leaves_the_edge_missing(tmp_path: Path) -> None:
    path, other = tmp_path / "x.db", tmp_path / "other.db"
    with mvcdb.open(other) as db:
        unrelated = chain(db, "uv", model="n")
    with mvcdb.open(path) as db:
        v = chain(db, "pcg")
        db.rm(v["c"], force=True)
        report = db.merge(other)
        assert sorted(report.versions_added) == sorted(u.id for u in unrelated.values())
        assert not any("restored" in n for n in report.notes)
        assert db.get(v["g"].id).parents == ()
        assert ids(db.ancestors(v["g"])) == []
        with pytest.raises(mvcdb.RefError):
            db.get(v["g"].id + "~1")
        found = db.verify()
        assert found.ok and any(v["c"].id[:12] in n for n in found.notes)
        assert_whole(db, {"p": v["p"], "g": v["g"]}, {"p": 0, "g": 2})


def test_merging_back_is_commutative_in_content(tmp_path: Path) -> None:
    full, cut = tmp_path / "full.db", tmp_path / "cut.db"
    with mvcdb.open(full) as db:
        v = chain(db, "pcgh")
    cut.write_bytes(full.read_bytes())
    with mvcdb.open(cut) as db:
        db.rm(v["c"], force=True)
        db.rm(v["g"], force=True)
    for a, b in itertools.permutations([full, cut]):
        copy = tmp_path / f"{a.stem}-{b.stem}.db"
        copy.write_bytes(a.read_bytes())
        with mvcdb.open(copy) as db:
            db.merge(b)
    with mvcdb.open(tmp_path / "full-cut.db") as x, mvcdb.open(tmp_path / "cut-full.db") as y:
        assert content(x) == content(y)
        assert ids(y.ancestors(v["h"])) == [v["g"].id, v["c"].id, v["p"].id]
        assert_whole(y, v, {"p": 0, "c": 1, "g": 2, "h": 3})


def test_pull_brings_back_removed_parents_with_their_edges(tmp_path: Path, pg_url: str) -> None:
    path = tmp_path / "x.db"
    with mvcdb.open(path) as db:
        v = chain(db, "pcgh")
        db.push(pg_url)
        db.rm(v["g"], force=True)
        db.rm(v["c"], force=True)
        report = db.pull(pg_url)
        assert report.versions == 2
        assert ids(db.ancestors(v["h"])) == [v["g"].id, v["c"].id, v["p"].id]
        assert_whole(db, v, {"p": 0, "c": 1, "g": 2, "h": 3})
