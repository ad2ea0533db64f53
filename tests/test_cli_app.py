"""The `mvcdb` group itself: help, lazy imports, exit codes, one-line errors, docs, completion."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import assert_error, run

import mvcdb
from mvcdb.cli.app import VERBS, _module_exists, cli

README = Path(__file__).resolve().parent.parent / "README.md"


def _cli_section() -> str:
    text = README.read_text(encoding="utf-8")
    start, end = text.index("<!-- section:cli -->"), text.index("<!-- /section:cli -->")
    return text[start:end]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MVCDB_")}
    return {**env, "MVCDB_AUTHOR": "tester", **extra}


def test_help_imports_neither_numpy_nor_textual() -> None:
    code = (
        "import sys\n"
        "from mvcdb.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0, exc.code\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'textual', 'rich'))\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), check=True)
    assert "Commands:" in out.stdout
    heavy = out.stdout.rsplit("HEAVY=", 1)[1].strip()
    assert heavy == "", f"`mvcdb --help` imported {heavy}"


def test_verb_help_imports_no_textual() -> None:
    code = (
        "import sys\n"
        "from mvcdb.cli import main\n"
        "for verb in ('log', 'show', 'restore', 'record', 'tag', 'tags'):\n"
        "    try:\n"
        "        main([verb, '--help'])\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code == 0, (verb, exc.code)\n"
        "print('TEXTUAL=' + str(any(m.startswith('textual') for m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), check=True)
    assert out.stdout.rsplit("TEXTUAL=", 1)[1].strip() == "False"


def test_console_script_and_python_dash_m(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mvcdb", "--version"], capture_output=True, text=True, env=_env()
    )
    assert out.returncode == 0 and "mvcdb" in out.stdout
    exe = Path(sys.executable).with_name("mvcdb")
    argv = [str(exe)] if exe.exists() else [sys.executable, "-m", "mvcdb"]
    missing = tmp_path / "missing.db"
    out = subprocess.run([*argv, "--db", str(missing), "log"], capture_output=True, text=True, env=_env())
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.startswith("mvcdb: error: ") and out.stderr.count("\n") == 1
    assert "`mvcdb init`" in out.stderr and not missing.exists()


def test_every_verb_has_help_and_is_documented_in_the_readme() -> None:
    section = _cli_section()
    listed = [verb for verb, (module, _) in VERBS.items() if _module_exists(module)]
    assert {"init", "demo", "log", "show", "tag", "tags", "restore", "record"} <= set(listed)
    top = run(None, ["--help"])
    assert top.exit_code == 0
    for verb in listed:
        assert re.search(rf"^\s+{verb}\s+\S", top.stdout, re.M), f"{verb} missing from mvcdb --help"
        result = run(None, [verb, "--help"])
        assert result.exit_code == 0, (verb, result.stderr)
        assert "Usage: mvcdb " + verb in result.stdout
        body = result.stdout.split("\n\n", 1)[1].strip()
        assert len(body) > 20, f"{verb} has no help text"
        assert re.search(rf"`mvcdb (\[--db [^\]]*\] )?{verb}\b", section), f"{verb} not documented in README"


def test_readme_documents_exit_codes_json_and_completion() -> None:
    section = _cli_section()
    for needle in ("_MVCDB_COMPLETE", "--json", "Exit codes", "MVCDB_DEBUG"):
        assert needle in section


def test_missing_database_names_init(tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    for args in (["log"], ["show", "abcd"], ["tags"], ["restore", "x", "-o", str(tmp_path / "o.npz")]):
        assert_error(run(missing, args), 1, "mvcdb", "init", str(missing))
    assert not missing.exists()


@pytest.mark.parametrize("verb", [["log"], ["show", "abcd"], ["tags"], ["init"], ["tag", "abcd", "x"]])
def test_foreign_files_are_refused_and_left_byte_identical(tmp_path: Path, verb: list[str]) -> None:
    import sqlite3

    text = tmp_path / "notes.txt"
    text.write_bytes(b"hello, not a database\n" * 10)
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
        conn.execute("INSERT INTO t VALUES (1)")
    conn.close()
    for path in (text, other):
        before = path.read_bytes()
        assert_error(run(path, verb), 1, "not an mvcdb database")
        assert path.read_bytes() == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "other.sqlite"]


def test_init_is_idempotent_and_says_what_it_did(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    first = run(path, ["init"])
    assert first.exit_code == 0 and "Created" in first.stdout
    second = run(path, ["init"])
    assert second.exit_code == 0 and "already" in second.stdout and "nothing changed" in second.stdout
    data = json.loads(run(path, ["init", "--json"]).stdout)
    assert data == {"path": str(path), "created": False, "versions": 0}


def test_db_defaults_to_env_then_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert run(None, ["init"]).exit_code == 0
    assert (tmp_path / "mvcdb.db").exists()
    env_path = tmp_path / "env.db"
    assert run(None, ["init"], MVCDB_PATH=str(env_path)).exit_code == 0
    assert env_path.exists()


def test_usage_errors_exit_2_with_one_line(tmp_path: Path) -> None:
    assert_error(run(None, ["no-such-verb"]), 2, "no-such-verb")
    assert_error(run(None, ["--bogus"]), 2, "--bogus")
    assert_error(run(tmp_path / "x.db", ["show"]), 2, "REF", "mvcdb show --help")
    assert_error(run(tmp_path / "x.db", ["log", "--limit", "-3"]), 2, "--limit")
    assert_error(run(tmp_path / "x.db", ["log", "--since", "yesterday-ish"]), 2, "--since")


def test_no_traceback_unless_mvcdb_debug(tmp_path: Path) -> None:
    from mvcdb.errors import NotAnMvcdbFileError

    path = tmp_path / "foreign.db"
    path.write_bytes(b"not sqlite at all")
    assert_error(run(path, ["log"]), 1, "not an mvcdb database")
    debug = run(path, ["log"], MVCDB_DEBUG="1")  # the exception propagates (a traceback in a shell)
    assert debug.exit_code == 1 and isinstance(debug.exception, NotAnMvcdbFileError)


def test_internal_errors_become_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import mvcdb.cli.cmd_init as cmd_init

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("something broke")

    monkeypatch.setattr(cmd_init, "open_db", boom)
    assert_error(run(tmp_path / "x.db", ["init"]), 1, "internal error", "something broke", "MVCDB_DEBUG=1")


def test_shell_completion_script_and_ref_completion(tmp_path: Path) -> None:
    from cli_helpers import build

    fixture = build(tmp_path / "fx.db")
    script = run(None, [], _MVCDB_COMPLETE="bash_source")
    assert script.exit_code == 0 and "_MVCDB_COMPLETE=bash_complete" in script.stdout

    def complete(line: str) -> list[str]:
        words = line.split(" ")
        result = run(
            None, [], _MVCDB_COMPLETE="bash_complete", COMP_WORDS=line, COMP_CWORD=str(len(words) - 1)
        )
        assert result.exit_code == 0, result.stderr
        return [w.split(",", 1)[1] for w in result.stdout.split()]

    assert complete(f"mvcdb --db {fixture.path} show pro") == ["production"]
    assert complete(f"mvcdb --db {fixture.path} restore ") == [
        "best",
        "production",
        "linreg@latest",
        "other@latest",
    ]
    assert complete(f"mvcdb --db {fixture.path} log --model o") == ["other"]
    assert complete(f"mvcdb --db {fixture.path} tag --delete b") == ["best"]
    assert complete("mvcdb ta") == ["tag", "tags"]
    assert complete(f"mvcdb --db {tmp_path / 'missing.db'} show ") == []


def test_group_is_a_plain_verb_table() -> None:
    assert isinstance(VERBS, dict)
    assert all(isinstance(k, str) and len(v) == 2 for k, v in VERBS.items())
    assert cli.name == "mvcdb"


def test_an_empty_file_is_filled_only_by_verbs_that_create(tmp_path: Path) -> None:
    """A 0-byte file is not a database: reading and writing verbs refuse it (once naming it) and
    leave it empty; `init` makes it one."""
    empty = tmp_path / "e0.db"
    empty.touch()
    for args in (["log"], ["tag", "x", "y"], ["gc"]):
        assert_error(run(empty, args), 1, f"{empty} is an empty file; create a database with `mvcdb init`")
        assert empty.stat().st_size == 0
    with pytest.raises(mvcdb.errors.NotAnMvcdbFileError) as refused:
        mvcdb.open(empty, readonly=True)
    assert str(refused.value).count(str(empty)) == 1
    assert run(empty, ["init"]).exit_code == 0
    assert run(empty, ["log"]).exit_code == 0


def test_a_missing_directory_is_named_as_missing(tmp_path: Path) -> None:
    target = tmp_path / "nodir" / "x.db"
    assert_error(run(target, ["init"]), 1, f"no directory {target.parent}")
    assert not target.parent.exists()
