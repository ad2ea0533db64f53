"""The one ref resolver shared by the API, CLI and TUI.

A ref is a base optionally followed by ancestry suffixes:
  base   full id (64 hex) | unique hex prefix (>= 4) | tag name | MODEL@latest
  suffix ~N (N-th first parent), ~ (= ~1), ^ (= ~1); suffixes chain: prod~2^
Tag names win over hex prefixes; tags that look like hex ids are refused when created.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable
from typing import Any

from .errors import MvcdbError, RefError
from .models import damaged

MIN_PREFIX = 4
MAX_CANDIDATES = 10
NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-/+:]{0,199}$")
HEX_RE = re.compile(r"^[0-9a-f]{4,64}$")
_SUFFIX_RE = re.compile(r"(~\d*|\^)+$")
_STEP_RE = re.compile(r"~(\d*)|\^")


def check_model_name(name: object) -> str:
    """Model names: ASCII letters, digits and _ . - / + : (no spaces, no ~ ^ @), at most 200 chars."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise MvcdbError(
            f"invalid model name {name!r}: use ASCII letters, digits and _ . - / + : (no spaces, ~, ^ or @)"
        )
    return name


def check_tag_name(name: object) -> str:
    """Tag names follow model-name rules and must not look like a hex id prefix."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise MvcdbError(
            f"invalid tag name {name!r}: use ASCII letters, digits and _ . - / + : (no spaces, ~, ^ or @)"
        )
    if HEX_RE.match(name.lower()):  # refs match id prefixes ignoring case
        raise MvcdbError(f"invalid tag name {name!r}: it would be mistaken for a version id prefix")
    return name


def tag_list(tags: object) -> list[str]:
    """A tags= argument as checked names: one name, or an iterable of names."""
    if isinstance(tags, str):
        return [check_tag_name(tags)]
    if not isinstance(tags, Iterable):
        raise MvcdbError(f"tags must be a tag name or a list of names, got {type(tags).__name__}")
    return [check_tag_name(t) for t in tags]


def name_list(names: object, what: str, item: str) -> list[str]:
    """A list-of-names argument (restore's names=, compare's metrics= and fields=) as a list:
    one string is one name, not its characters; every name a non-empty string. `what` names the
    argument and `item` one of its names in errors ("fields", "field")."""
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, Iterable):
        raise MvcdbError(f"{what} must be a list of names (or one name), got {type(names).__name__}")
    found = list(names)
    for name in found:
        if not isinstance(name, str) or not name:
            raise MvcdbError(f"{item} names are non-empty strings, got {name!r}")
    return found


def ref_list(refs: object, what: str) -> list[Any]:
    """A refs argument (parents=, export's versions) as a list: None is none, one ref (a string
    or a Version) is one, not its characters; else an iterable of refs."""
    if refs is None:
        return []
    if isinstance(refs, str) or isinstance(getattr(refs, "id", None), str):
        return [refs]
    if not isinstance(refs, Iterable):
        raise MvcdbError(f"{what} must be a ref or a list of refs, got {type(refs).__name__}")
    return list(refs)


def split_ref(ref: str) -> tuple[str, int]:
    """Split 'base~2^' into ('base', 3)."""
    match = _SUFFIX_RE.search(ref)
    if not match or match.start() == 0:
        return ref, 0
    steps = 0
    for m in _STEP_RE.finditer(match.group(0)):
        steps += int(m.group(1)) if m.group(1) else 1
    return ref[: match.start()], steps


def resolve_vid(conn: sqlite3.Connection, ref: object) -> int:
    """Resolve a ref to the local vid of one version, or raise RefError saying why not."""
    if not isinstance(ref, str):
        raise RefError(f"a ref must be a string (id, prefix, tag or MODEL@latest), got {type(ref).__name__}")
    text = ref.strip()
    if not text or len(text) > 300 or any(ord(c) < 32 for c in text):
        raise RefError(f"invalid ref {ref!r}")
    base, steps = split_ref(text)
    vid = _resolve_base(conn, base, ref)
    for i in range(steps):
        row = conn.execute(
            "SELECT l.parent, v.vid FROM lineage l LEFT JOIN versions v ON v.vid = l.parent"
            " WHERE l.child = ? AND l.position = 0",
            (vid,),
        ).fetchone()
        if row is None:
            raise RefError(f"{ref!r}: {base}{f'~{i}' if i else ''} is a root version: it has no parent")
        if row[1] is None:
            raise damaged(
                f"{ref!r}", f"{base}{f'~{i}' if i else ''} names parent row {row[0]}, which does not exist"
            )
        vid = row[0]
    return int(vid)


def latest_of(base: str, ref: str) -> str | None:
    """The model named by a 'MODEL@latest' base (None if base has no '@'); RefError otherwise."""
    if "@" not in base:
        return None
    model, _, selector = base.rpartition("@")
    if selector != "latest":
        raise RefError(f"unknown selector {selector!r} in {ref!r} (only MODEL@latest is known)")
    return model


def _resolve_base(conn: sqlite3.Connection, base: str, ref: str) -> int:
    model = latest_of(base, ref)
    if model is not None:
        row = conn.execute(
            "SELECT vid FROM versions WHERE model = ? ORDER BY created_at DESC, vid DESC LIMIT 1",
            (model,),
        ).fetchone()
        if row is None:
            raise RefError(f"no versions of model {model!r}")
        return int(row[0])
    row = conn.execute(
        "SELECT t.vid, v.vid FROM tags t LEFT JOIN versions v ON v.vid = t.vid WHERE t.name = ?", (base,)
    ).fetchone()
    if row is not None:
        if row[1] is None:
            raise damaged(f"tag {base!r}", f"it points at version row {row[0]}, which does not exist")
        return int(row[0])
    lowered = base.lower()
    if HEX_RE.match(lowered):
        if len(lowered) == 64:
            row = conn.execute("SELECT vid FROM versions WHERE id = ?", (lowered,)).fetchone()
            if row is None:
                raise RefError(f"no version with id {lowered}")
            return int(row[0])
        if len(lowered) >= MIN_PREFIX:
            rows = conn.execute(
                "SELECT vid, id, model, created_at FROM versions WHERE id >= ? AND id < ?"
                " ORDER BY id LIMIT ?",
                (lowered, lowered + "g", MAX_CANDIDATES + 1),
            ).fetchall()
            if len(rows) == 1:
                return int(rows[0][0])
            if len(rows) > 1:
                shown = ", ".join(f"{r[1][:12]} ({r[2]}, {r[3][:19]})" for r in rows[:MAX_CANDIDATES])
                more = " and more" if len(rows) > MAX_CANDIDATES else ""
                raise RefError(f"ambiguous ref {base!r}: candidates {shown}{more}")
    raise RefError(f"unknown ref {ref!r}: not a tag, a version id (prefix of >= 4 hex), or MODEL@latest")
