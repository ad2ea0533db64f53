"""Edge cases from a CLI review: out-of-range times, strict `sql -p` binding, empty `log`
results, `tree`'s optional REF, and remote URL messages that quote what the user typed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import Fixture, assert_error, build, copy_fixture, run

from mvcdb.remote import urls


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> Fixture:
    return build(tmp_path_factory.mktemp("edges") / "fx.db")


@pytest.mark.parametrize("option", ["--since", "--until"])
@pytest.mark.parametrize(
    "when", ["99999999d", "9999999999999w", "9999-12-31T23:59:59-01:00", "0001-01-01T00:00+01:00"]
)
def test_log_time_out_of_range_is_a_usage_error(fx: Fixture, option: str, when: str) -> None:
    assert_error(run(fx.path, ["log", option, when]), 2, option, repr(when), "out of range")


def test_log_times_at_the_edges_of_the_range_still_work(fx: Fixture) -> None:
    assert run(fx.path, ["log", "--since", "0001-01-01", "-n", "1"]).stdout.count("\n") == 2
    assert run(fx.path, ["log", "--since", "9999-12-31T23:59:59"]).stdout.strip() == "No versions match."
    everything = run(fx.path, ["log"]).stdout
    assert run(fx.path, ["log", "--since", "0999-01-01"]).stdout == everything  # years < 1000 compare right
    assert run(fx.path, ["log", "--until", "0999-01-01"]).stdout.strip() == "No versions match."


@pytest.mark.parametrize(
    "args", [["-n", "0"], ["--model", ""], ["--author", ""], ["--tag", ""], ["--where", "val_mse < 0"]]
)
def test_log_selecting_nothing_in_a_non_empty_database_says_no_match(fx: Fixture, args: list[str]) -> None:
    result = run(fx.path, ["log", *args])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == "No versions match."


def test_log_on_an_empty_database_keeps_the_hint(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    assert run(empty, ["init"]).exit_code == 0
    assert run(empty, ["log"]).stdout.strip() == "No versions yet (record one, or try `mvcdb demo`)."


@pytest.mark.parametrize(
    ("given", "value", "kind"),
    [
        ("0", 0, "integer"),
        ("42", 42, "integer"),
        ("-7", -7, "integer"),
        ("+7", 7, "integer"),
        (str(2**63 - 1), 2**63 - 1, "integer"),
        (str(-(2**63)), -(2**63), "integer"),
        ("2.5", 2.5, "real"),
        ("-.5", -0.5, "real"),
        ("1e-3", 0.001, "real"),
        ("0.25E2", 25.0, "real"),
        ("99999999999999999999999", "99999999999999999999999", "text"),
        (str(2**63), str(2**63), "text"),
        ("007", "007", "text"),
        ("00.5", "00.5", "text"),
        ("1_000", "1_000", "text"),
        (" 5", " 5", "text"),
        ("5 ", "5 ", "text"),
        ("5\n", "5\n", "text"),
        ("nan", "nan", "text"),
        ("-inf", "-inf", "text"),
        ("Infinity", "Infinity", "text"),
        ("1e999", "1e999", "text"),
        ("٣", "٣", "text"),  # an Arabic-Indic digit: int() takes it, SQL does not
        ("0x10", "0x10", "text"),
        ("", "", "text"),
    ],
)
def test_sql_param_binds_a_number_only_for_a_strict_literal(
    fx: Fixture, given: str, value: object, kind: str
) -> None:
    result = run(fx.path, ["sql", "SELECT ? AS v, typeof(?) AS t", "-p", given, "-p", given, "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == [{"v": value, "t": kind}]


def test_sql_param_finds_a_tag_that_looks_like_a_number(fx: Fixture, tmp_path: Path) -> None:
    db = copy_fixture(fx, tmp_path)
    assert run(db.path, ["tag", "production", "007"]).exit_code == 0
    query = "SELECT tag FROM tagged_versions WHERE tag = ?"
    result = run(db.path, ["sql", query, "-p", "007", "--csv"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == ["tag", "007"]


def test_sql_param_help_states_the_binding_rule(fx: Fixture) -> None:
    text = " ".join(run(fx.path, ["sql", "--help"]).stdout.split())
    assert "Plain integers that fit 64 bits and decimals like 2.5 or 1e-3 bind as numbers" in text


def test_tree_usage_shows_ref_as_optional(fx: Fixture) -> None:
    result = run(fx.path, ["tree", "--help"])
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0] == "Usage: mvcdb tree [OPTIONS] [REF]"
    assert run(fx.path, ["tree"]).exit_code == 0  # and it is optional indeed


@pytest.mark.parametrize(
    ("given", "quoted"),
    [
        ("notaurl", "'notaurl'"),
        ("/path/to/file.db", "'/path/to/file.db'"),
        ("host:5432/db", "'host:5432/db'"),
        ("alice:s3cret@host/db", "'alice:***@host/db'"),
        ("mysql://u:s3cret@h/db", "'mysql://u:***@h/db'"),
    ],
)
def test_remote_add_quotes_the_text_given(tmp_path: Path, given: str, quoted: str) -> None:
    db = tmp_path / "a.db"
    assert run(db, ["init"]).exit_code == 0
    line = assert_error(run(db, ["remote", "add", "origin", given]), 1, f"not a PostgreSQL URL: {quoted} ")
    assert "s3cret" not in line and "://" + given not in line


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("notaurl", "notaurl"),
        ("[bad", "[bad"),
        ("u@h/db", "u@h/db"),
        (
            "postgresql://h/db?sslmode=require&application_name=a%20b",
            "postgresql://h/db?sslmode=require&application_name=a%20b",
        ),
        ("host/db?password=s3cret&a=1", "host/db?password=***&a=1"),
        ("alice:s3cret@host/db?x=http://y", "alice:***@host/db?x=http://y"),
        ("  postgresql://u:s3cret@h/db", "postgresql://u:***@h/db"),
    ],
)
def test_redact_shows_the_text_as_given_without_its_password(given: str, shown: str) -> None:
    assert urls.redact(given) == shown
