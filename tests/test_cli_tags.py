"""`mvcdb tag` and `mvcdb tags`: create, move (the rollback), delete, list, history."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import Fixture, assert_error, build, copy_fixture, run


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Fixture:
    return build(tmp_path_factory.mktemp("tags") / "fx.db")


@pytest.fixture
def fx(template: Fixture, tmp_path: Path) -> Fixture:
    return copy_fixture(template, tmp_path)


def test_tags_lists_names_and_versions(fx: Fixture) -> None:
    data = json.loads(run(fx.path, ["tags", "--json"]).stdout)
    assert [(t["name"], t["id"], t["model"]) for t in data] == [
        ("best", fx.v3, "linreg"),
        ("production", fx.v1, "linreg"),
    ]
    assert set(data[0]) == {"name", "id", "short_id", "model", "created_at", "message"}
    text = run(fx.path, ["tags"]).stdout.splitlines()
    assert text[0].split("\t")[:3] == ["tag", "id", "model"]
    assert text[2].startswith(f"production\t{fx.v1[:12]}\tlinreg")


def test_move_is_printed_from_to_and_rollback_is_kept_in_history(fx: Fixture) -> None:
    forward = run(fx.path, ["tag", fx.v4[:10], "production"])
    assert forward.exit_code == 0, forward.stderr
    assert forward.stdout.strip() == f"production: {fx.v1[:12]} -> {fx.v4[:12]} (linreg)"
    back = run(fx.path, ["tag", "--json", fx.v1, "production"])
    assert json.loads(back.stdout) == {"name": "production", "from": fx.v4, "to": fx.v1}
    history = json.loads(run(fx.path, ["tags", "--history", "production", "--json"]).stdout)
    assert [(h["from"], h["to"]) for h in history] == [
        (None, fx.v1),
        (fx.v1, fx.v2),
        (fx.v2, fx.v1),
        (fx.v1, fx.v4),
        (fx.v4, fx.v1),
    ]
    assert set(history[0]) == {"name", "from", "to", "author", "at"} and history[0]["author"] == "tester"
    rows = run(fx.path, ["tags", "--history", "production"]).stdout.splitlines()
    assert rows[0].split("\t") == ["at (UTC)", "author", "from", "to"]
    assert rows[1].split("\t")[2:] == ["(new)", fx.v1[:12]]


def test_new_tag_same_target_and_ancestry_refs(fx: Fixture) -> None:
    created = run(fx.path, ["tag", "linreg@latest~1", "staging"])
    assert created.stdout.strip() == f"staging: (new) -> {fx.v2[:12]} (linreg)"
    same = run(fx.path, ["tag", fx.v2, "staging"])
    assert same.exit_code == 0 and "already points at" in same.stdout


def test_delete_keeps_history(fx: Fixture) -> None:
    deleted = run(fx.path, ["tag", "--delete", "best"])
    assert deleted.exit_code == 0 and deleted.stdout.strip() == f"best: {fx.v3[:12]} -> (deleted)"
    assert [t["name"] for t in json.loads(run(fx.path, ["tags", "--json"]).stdout)] == ["production"]
    history = json.loads(run(fx.path, ["tags", "--history", "best", "--json"]).stdout)
    assert history[-1]["from"] == fx.v3 and history[-1]["to"] is None
    again = json.loads(run(fx.path, ["tag", "-d", "production", "--json"]).stdout)
    assert again == {"name": "production", "from": fx.v1, "to": None}


def test_errors(fx: Fixture) -> None:
    assert_error(run(fx.path, ["tag", "--delete", "nope"]), 1, "no tag named 'nope'")
    assert_error(run(fx.path, ["tag", "no-such-ref", "x"]), 1, "unknown ref")
    assert_error(run(fx.path, ["tag", fx.v1, "abcd"]), 1, "invalid tag name")
    assert_error(run(fx.path, ["tag", fx.v1, "has space"]), 1, "invalid tag name")
    assert_error(run(fx.path, ["tag", "production"]), 2, "REF NAME")
    assert_error(run(fx.path, ["tag", fx.v1, "--delete", "best"]), 2, "--delete")
    assert_error(run(fx.path, ["tags", "--history", "never"]), 1, "no tag named 'never'")
    assert_error(run(fx.path, ["tags", "--history", "never", "--json"]), 1, "no tag named 'never'")
