"""`mvcdb tui` as a person uses it: started in tmux, driven by keys, read with capture-pane.

Also the CLI side of the verb, and the promise that the library and `mvcdb --help` never import
textual.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from tui_helpers import build_fixture

TMUX = shutil.which("tmux")


class Tmux:
    """One tmux server on a private socket (never the user's own) running one command."""

    def __init__(self, socket: str) -> None:
        self.socket = socket

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        assert TMUX is not None
        return subprocess.run([TMUX, "-L", self.socket, *args], capture_output=True, text=True, timeout=20)

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "tui").stdout

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", "tui", *keys)

    def type(self, text: str) -> None:
        self.run("send-keys", "-t", "tui", "-l", text)

    def wait(self, check: Callable[[str], bool], timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if check(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"the screen never showed what was expected; it shows:\n{text}")
            time.sleep(0.2)

    def alive(self) -> bool:
        return self.run("has-session", "-t", "tui").returncode == 0


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    if TMUX is None:
        pytest.skip("tmux is not installed")
    session = Tmux(f"mvcdb-tui-test-{os.getpid()}")
    try:
        yield session
    finally:
        session.run("kill-server")


@pytest.mark.slow
def test_tui_in_tmux_filter_mark_diff_and_quit(tmux: Tmux, tmp_path: Path) -> None:
    path = tmp_path / "fixture.db"
    ids = build_fixture(path)
    # COLUMNS/LINES (set by pytest) would override the terminal's real size inside Textual.
    command = f"env -u COLUMNS -u LINES {sys.executable} -m mvcdb --db {path} tui"
    started = tmux.run(
        "new-session", "-d", "-s", "tui", "-x", "140", "-y", "40", "-e", "TERM=xterm-256color", command
    )
    assert started.returncode == 0, started.stderr
    tmux.run("resize-window", "-t", "tui", "-x", "140", "-y", "40")  # some tmux versions start at 80x24
    expected = ("6 versions", ids["m2"][:12], "linreg", "production", "/ Filter", "lineage · mlp")
    tmux.wait(lambda s: all(x in s for x in expected))

    tmux.type("/")
    tmux.wait(lambda s: "filter: val_loss<0.2" in s)  # the filter box is open (its placeholder shows)
    tmux.type("model=linreg")
    tmux.keys("Enter")
    expected = ("4 versions", "filter: model=linreg", f"detail · {ids['v4'][:12]}", "lineage · linreg")
    screen = tmux.wait(lambda s: all(x in s for x in expected))
    assert ids["m1"][:12] not in screen  # the mlp rows are gone

    tmux.keys("Space")
    tmux.wait(lambda s: f"marked: {ids['v4'][:12]}" in s)
    tmux.keys("Down", "Space")
    tmux.wait(lambda s: f"marked: {ids['v4'][:12]}, {ids['v3'][:12]}" in s)
    tmux.keys("d")  # diff the two marked versions
    screen = tmux.wait(lambda s: f"diff  {ids['v4'][:12]}  →  {ids['v3'][:12]}" in s and "parameters" in s)
    assert "changed" in screen and "metadata" in screen

    tmux.keys("Escape")
    tmux.wait(lambda s: "4 versions" in s)
    tmux.keys("q")
    deadline = time.monotonic() + 15
    while tmux.alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not tmux.alive(), "q did not quit the app"


def test_tui_verb_refuses_a_missing_file(tmp_path: Path) -> None:
    from mvcdb.cli.app import cli

    result = CliRunner().invoke(cli, ["tui", str(tmp_path / "nope.db")])
    assert result.exit_code == 1
    assert result.stderr.startswith("mvcdb: error: ") and "does not exist" in result.stderr


def test_tui_verb_help_and_no_textual_in_the_library() -> None:
    code = (
        "import sys, mvcdb, mvcdb.cli.app\n"
        "from click.testing import CliRunner\n"
        "r = CliRunner().invoke(mvcdb.cli.app.cli, ['--help'])\n"
        "assert r.exit_code == 0 and 'tui' in r.output, r.output\n"
        "r = CliRunner().invoke(mvcdb.cli.app.cli, ['tui', '--help'])\n"
        "assert r.exit_code == 0 and 'PATH' in r.output, r.output\n"
        "db = mvcdb.open(sys.argv[1]); db.versions(); db.close()\n"
        "assert 'textual' not in sys.modules, 'textual was imported'\n"
    )
    with _tmpdir() as where:
        done = subprocess.run(
            [sys.executable, "-c", code, str(where / "x.db")], capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 0, done.stderr


class _tmpdir:  # noqa: N801 - a tiny context manager
    def __enter__(self) -> Path:
        import tempfile

        self._dir = tempfile.TemporaryDirectory()
        return Path(self._dir.name)

    def __exit__(self, *exc: object) -> None:
        self._dir.cleanup()
