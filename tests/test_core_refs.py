"""One resolver for every ref form: ids, prefixes, tags, MODEL@latest, ~N and ^."""

from __future__ import annotations

import numpy as np
import pytest

import mvcdb


@pytest.fixture
def chain(db: mvcdb.Database) -> list[mvcdb.Version]:
    versions = [db.record("linreg", {"m": np.float64(0)}, message="v0")]
    for i in range(1, 4):
        versions.append(db.record("linreg", {"m": np.float64(i)}, parent=versions[-1], message=f"v{i}"))
    return versions


def test_full_id_prefix_tag_latest_and_ancestry(db: mvcdb.Database, chain: list[mvcdb.Version]) -> None:
    v0, v1, v2, v3 = chain
    assert db.resolve(v2.id) == v2.id
    assert db.resolve(v2.id[:8]) == v2.id
    assert db.resolve(v2.id[:12].upper()) == v2.id
    assert db.resolve("linreg@latest") == v3.id
    assert db.resolve("linreg@latest~1") == v2.id
    assert db.resolve("linreg@latest~3") == v0.id
    assert db.resolve("linreg@latest^^") == v1.id
    assert db.resolve("linreg@latest~") == v2.id
    assert db.resolve(f"{v3.short_id}~1^") == v1.id
    db.tag(v1, "production")
    assert db.resolve("production") == v1.id
    assert db.resolve("production~1") == v0.id
    assert db.get(v3).parents == (v2.id,)
    assert db.get("production").tags == ("production",)


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("nosuchtag", "unknown ref"),
        ("abc", "unknown ref"),  # too short to be a prefix
        ("0" * 64, "no version with id"),
        ("linreg@latest~9", "~3 is a root version: it has no parent"),
        ("other@latest", "no versions of model"),
        ("linreg@first", "unknown selector"),
        ("", "invalid ref"),
        ("bad\nref", "invalid ref"),
    ],
)
def test_bad_refs_raise_ref_error(
    db: mvcdb.Database, chain: list[mvcdb.Version], ref: str, message: str
) -> None:
    with pytest.raises(mvcdb.RefError, match=message):
        db.resolve(ref)


def test_non_string_ref_is_a_ref_error(db: mvcdb.Database) -> None:
    with pytest.raises(mvcdb.RefError):
        db.get(42)  # type: ignore[arg-type]


def test_ambiguous_prefix_lists_candidates(db: mvcdb.Database) -> None:
    seen: dict[str, str] = {}
    clash = None
    for i in range(3000):
        v = db.record("m", metrics={"i": i})
        prefix = v.id[:4]
        if prefix in seen:
            clash = (prefix, seen[prefix], v.id)
            break
        seen[prefix] = v.id
    assert clash is not None, "no 4-hex prefix collision in 3000 versions (probability ~1e-30)"
    prefix, first, second = clash
    with pytest.raises(mvcdb.RefError) as info:
        db.resolve(prefix)
    text = str(info.value)
    assert "ambiguous" in text and first[:12] in text and second[:12] in text
    assert db.resolve(first[:12]) == first


def test_tag_names_are_checked(db: mvcdb.Database, chain: list[mvcdb.Version]) -> None:
    for bad in ["", "with space", "a~1", "x^", "m@latest", "deadbeef", "DEADBEEF", "A0d8", "-lead"]:
        with pytest.raises(mvcdb.MvcdbError):
            db.tag(chain[0], bad)
    assert db.tags() == {}


def test_tags_move_and_history_records_every_move(db: mvcdb.Database, chain: list[mvcdb.Version]) -> None:
    v0, v1, v2, _ = chain
    db.tag(v2, "production")
    db.tag(v1, "production")  # the rollback
    db.tag(v1, "production")  # no-op: not a move
    db.untag("production")
    assert "production" not in db.tags()
    moves = [(m.from_id, m.to_id) for m in db.tag_history("production")]
    assert moves == [(None, v2.id), (v2.id, v1.id), (v1.id, None)]
    assert all(m.author == "tester" for m in db.tag_history())
    with pytest.raises(mvcdb.RefError):
        db.untag("production")


def test_record_with_tags_and_parents_list(db: mvcdb.Database, chain: list[mvcdb.Version]) -> None:
    merged = db.record("linreg", {"m": 1.0}, parents=[chain[3], chain[1].id], tags=["best"])
    assert merged.parents == (chain[3].id, chain[1].id)
    assert merged.tags == ("best",)
    assert db.resolve("best~1") == chain[3].id
    with pytest.raises(mvcdb.MvcdbError, match="either parent"):
        db.record("linreg", parent=chain[0], parents=[chain[1]])
    with pytest.raises(mvcdb.MvcdbError, match="twice"):
        db.record("linreg", parents=[chain[0], chain[0].id])
    with pytest.raises(mvcdb.RefError):
        db.record("linreg", parent="nope")
