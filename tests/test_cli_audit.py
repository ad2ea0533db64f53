"""The command line under hostile use: a pipe closed early, Ctrl-C, an option missing its value,
bytes that are not UTF-8 in an argument, a refused `record` on a missing file, `tui` without a
terminal, and long diff lines on a terminal. Each failure is one line on stderr, never a traceback,
and leaves the database as it was."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import Fixture, assert_error, build, copy_fixture, run
from reliability_helpers import tamper

import mvcdb


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Fixture:
    return build(tmp_path_factory.mktemp("cli-audit") / "fx.db")


@pytest.fixture
def fx(template: Fixture, tmp_path: Path) -> Fixture:
    return copy_fixture(template, tmp_path)


def _mvcdb(db: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "mvcdb", "--db", str(db), *args]


def test_a_pipe_closed_early_ends_quietly_with_exit_0(fx: Fixture) -> None:
    """`mvcdb log | head -0`: the reader is gone before the first line; click alone exits 1 with
    nothing said (and only when the output outgrew the pipe buffer: a race)."""
    proc = subprocess.Popen(_mvcdb(fx.path, "log"), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader goes away before mvcdb writes anything
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 0, err
    assert err == b""


def test_ctrl_c_inside_a_verb_is_interrupted_with_exit_130(
    fx: Fixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while a verb works: `Interrupted.` and 130 (click alone: a blank line, `Aborted.`, 1)."""

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(mvcdb.Database, "verify", interrupted)
    result = run(fx.path, ["verify"])
    assert result.exit_code == 130, (result.exit_code, result.stderr)
    assert result.stderr == "Interrupted.\n"
    assert result.stdout == ""


@pytest.mark.slow
def test_a_real_sigint_stops_a_running_query_and_leaves_the_file_intact(fx: Fixture) -> None:
    before = fx.path.read_bytes()
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    proc = subprocess.Popen(
        _mvcdb(fx.path, "sql", endless),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # a shell's background jobs ignore SIGINT; a terminal's foreground job does not
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    time.sleep(2.0)  # well past start-up: the query is running
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err == b"Interrupted.\n" and out == b""
    assert fx.path.read_bytes() == before


@pytest.mark.parametrize(("args", "verb"), [(["tag", "--delete"], "tag"), (["tags", "--history"], "tags")])
def test_an_option_missing_its_value_points_to_the_verbs_help(
    fx: Fixture, args: list[str], verb: str
) -> None:
    assert_error(run(fx.path, args), 2, "requires an argument", f"(see 'mvcdb {verb} --help')")


def test_an_option_of_the_group_missing_its_value_still_points_to_mvcdb_help() -> None:
    assert_error(run(None, ["--db"]), 2, "(see 'mvcdb --help')")


@pytest.mark.parametrize(
    "args",
    [
        ["show", "t\udcfe"],
        ["log", "--author", "\udcfeé"],
        ["tags", "--history", "x\udcfe"],
        ["diff", "best", "b\udcfe"],
    ],
)
def test_an_argument_that_is_not_utf8_is_one_clear_line(fx: Fixture, args: list[str]) -> None:
    """Bytes a UTF-8 locale cannot decode reach Python as lone surrogates, which SQLite refuses."""
    before = fx.path.read_bytes()
    bad = next(a for a in args if "\udcfe" in a)
    shown = bad.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    line = assert_error(run(fx.path, args), 1, f"'{shown}' is not valid UTF-8 text")
    assert "internal error" not in line and "UnicodeEncodeError" not in line
    assert fx.path.read_bytes() == before


def test_log_graph_matching_nothing_says_so(fx: Fixture) -> None:
    result = run(fx.path, ["log", "--graph", "--model", "nope"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == "No versions match."


@pytest.mark.parametrize(
    ("model", "options", "needle"),
    [("a b", [], "invalid model name"), ("ok", ["--tag", "abcd"], "invalid tag name")],
)
def test_a_refused_record_creates_no_database(
    tmp_path: Path, model: str, options: list[str], needle: str
) -> None:
    params = tmp_path / "p.npz"
    np.savez(params, w=np.ones(3))
    target = tmp_path / "new.db"
    assert_error(run(target, ["record", model, "--params", str(params), *options]), 1, needle)
    assert not target.exists()


def test_tui_without_a_terminal_is_refused(fx: Fixture) -> None:
    """CliRunner's stdin and stdout are not terminals: the UI would hang waiting for keys."""
    assert_error(run(fx.path, ["tui"]), 1, "needs a terminal")


def test_export_to_an_empty_file_name_is_bad_usage(fx: Fixture) -> None:
    assert_error(run(fx.path, ["export", "best", "-o", ""]), 2, "the file name is empty")


def test_diff_on_a_terminal_keeps_long_lines_whole(fx: Fixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """A narrow terminal folds a long diff line; it is never cut with an ellipsis."""
    from mvcdb.cli import cmd_diff, output

    plain = run(fx.path, ["diff", fx.v1, fx.v2]).stdout
    for module in (cmd_diff, output):
        monkeypatch.setattr(module, "is_tty", lambda: True)
    shown = run(fx.path, ["diff", fx.v1, fx.v2], COLUMNS="40")
    assert shown.exit_code == 0, shown.stderr
    assert "…" not in shown.stdout
    assert shown.stdout.split() == plain.split()


def test_verify_finding_damage_exits_1_even_when_its_reader_is_gone(
    fx: Fixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mvcdb verify | head -0` on a damaged file: the closed pipe must not turn the failure into 0."""
    import click

    echo = click.echo

    def reader_gone(message: object = None, file: object = None, nl: bool = True, err: bool = False) -> None:
        if not err:  # stdout: the pipe's reader has exited
            raise BrokenPipeError(32, "Broken pipe")
        echo(message, err=True)

    monkeypatch.setattr(click, "echo", reader_gone)
    healthy = run(fx.path, ["verify"])
    assert (healthy.exit_code, healthy.stderr) == (0, "")
    tamper(fx.path, "UPDATE versions SET message = 'edited' WHERE id = ?", fx.v1)
    damaged = run(fx.path, ["verify"])
    assert (damaged.exit_code, damaged.stderr) == (1, "")


def test_a_closed_stdout_is_refused_before_anything_is_done(fx: Fixture) -> None:
    """`mvcdb tag best staging >&-`: one line on stderr, exit 1, and no tag was set."""
    proc = subprocess.run(
        _mvcdb(fx.path, "tag", "best", "staging"),
        stdout=subprocess.DEVNULL,  # replaced below: descriptor 1 closed in the child
        stderr=subprocess.PIPE,
        preexec_fn=lambda: os.close(1),
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == b"mvcdb: error: standard output is closed (to discard the output: >/dev/null)\n"
    with mvcdb.open(fx.path, readonly=True) as db:
        assert "staging" not in db.tags()


def test_a_damaged_page_is_one_line_pointing_to_verify(fx: Fixture) -> None:
    """Every page after the header overwritten (a bad disk): one line that says what to run next."""
    data = bytearray(fx.path.read_bytes())
    page = int.from_bytes(data[16:18], "big")  # the header's page size (1 means 65536)
    page = 65536 if page == 1 else page
    data[page:] = b"\xa5" * (len(data) - page)
    fx.path.write_bytes(bytes(data))
    assert_error(run(fx.path, ["show", fx.v1]), 1, "malformed", "`mvcdb verify`")
    assert fx.path.read_bytes() == bytes(data)


def test_a_fifo_given_as_the_database_is_refused_without_reading_it(tmp_path: Path) -> None:
    """Reading a FIFO's header blocked until a writer came, i.e. forever."""
    fifo = tmp_path / "pipe.db"
    os.mkfifo(fifo)
    for args in (["log"], ["show", "x"], ["tag", "best", "x"]):
        assert_error(run(fifo, args), 1, "is not a regular file")


def test_a_reader_finding_the_file_held_exclusively_is_told_not_shown_stale_rows(
    fx: Fixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another program holding the file in exclusive locking mode: a read-only open used to fall
    back to opening it as immutable media, which skips the WAL and shows what was there before."""
    import sqlite3

    monkeypatch.setenv("MVCDB_BUSY_TIMEOUT", "0.2")
    other = sqlite3.connect(fx.path, isolation_level=None)
    try:
        other.execute("PRAGMA locking_mode = EXCLUSIVE")
        other.execute("BEGIN IMMEDIATE")
        other.execute("UPDATE versions SET message = 'changed by the other program'")
        other.execute("COMMIT")  # committed to the WAL; the exclusive lock stays
        with pytest.raises(mvcdb.BusyError, match="locked"):
            mvcdb.open(fx.path, readonly=True)
    finally:
        other.close()
    with mvcdb.open(fx.path, readonly=True) as db:
        assert {v.message for v in db.versions()} == {"changed by the other program"}


@pytest.mark.slow  # a real process waiting for a lock, then Ctrl-C: ~2 s
def test_ctrl_c_ends_a_wait_for_another_writers_lock(fx: Fixture) -> None:
    """SQLite's own busy wait ignores Ctrl-C: `mvcdb tag` sat out the whole busy timeout (60 s by
    default) before it noticed. The command line waits in Python sleeps instead."""
    import sqlite3

    other = sqlite3.connect(fx.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        proc = subprocess.Popen(
            _mvcdb(fx.path, "tag", "best", "waiting"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "MVCDB_BUSY_TIMEOUT": "120"},
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        time.sleep(1.5)  # past start-up: waiting for the lock
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        other.close()
    assert proc.returncode == 130, err
    assert err == b"Interrupted.\n"
    with mvcdb.open(fx.path, readonly=True) as db:
        assert "waiting" not in db.tags()


def test_export_into_a_folder_that_is_a_file_or_missing_says_it_cannot_write(
    fx: Fixture, tmp_path: Path
) -> None:
    (tmp_path / "afile").write_text("x")
    assert_error(
        run(fx.path, ["export", "best", "-o", str(tmp_path / "afile" / "b.db")]), 1, "is not a directory"
    )
    assert_error(
        run(fx.path, ["export", "best", "-o", str(tmp_path / "nodir" / "b.db")]), 1, "does not exist"
    )
    assert not (tmp_path / "nodir").exists()
