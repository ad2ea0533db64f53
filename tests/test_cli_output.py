"""The shared CLI printing helpers: progress bars, sparklines, number formats, JSON, tables."""

from __future__ import annotations

import io
import json
import math
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run

import mvcdb
from mvcdb.cli import output


def test_progress_is_silent_when_piped(capsys: pytest.CaptureFixture[str]) -> None:
    with output.progress("Working") as cb:
        for i in range(3):
            cb(i, 3, f"item {i}")
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_on_stderr_of_a_terminal_after_its_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    err = _Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    with output.progress("Quick", delay=3600) as cb:
        cb(1, 2, "a")
        cb(2, 2, "")
    assert err.getvalue() == ""  # finished before the delay: no bar flashes
    with output.progress("Restoring", delay=0) as cb:
        cb(512, 1024, "layer.weight")
        cb(1024, 1024, "")
    with output.progress("Verifying", unit="items", delay=0) as cb:
        cb(0, 0, "")  # an unknown total is allowed
        cb(5, 10, "chunk 5")
    assert "Restoring" in err.getvalue() and "Verifying" in err.getvalue()


def test_sparkline() -> None:
    assert output.sparkline([]) == ""
    assert output.sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == "▁▂▃▄▅▆▇█"
    assert output.sparkline([2.0, 2.0]) == "▅▅"  # flat: mid-height
    assert output.sparkline([math.nan, 0.0, 1.0]) == " ▁█"
    assert output.sparkline([math.inf, math.nan]) == "  "
    long = output.sparkline([float(i) for i in range(1000)], width=20)
    assert len(long) == 20 and long[0] == "▁" and long[-1] == "█"


def test_number_formats() -> None:
    assert output.format_bytes(0) == "0 B" and output.format_bytes(1536) == "1.5 KiB"
    assert output.format_bytes(3 * 1024**3) == "3.0 GiB"
    assert output.format_metric(0.012345678) == "0.012346" and output.format_metric(math.nan) == "nan"
    assert output.format_metric(1e-9) == "1.000e-09"
    assert output.format_metrics({"a": 1.0, "b": 2.0, "c": 3.0}, limit=2) == "a=1 b=2 (+1)"
    assert output.one_line("first line\nsecond") == "first line"
    assert output.one_line("x" * 100, width=10) == "x" * 9 + "…"


def test_emit_json_spells_non_finite_numbers_as_strings(capsys: pytest.CaptureFixture[str]) -> None:
    output.emit_json({"a": math.nan, "b": [math.inf, -math.inf], "c": b"\x01"})
    assert json.loads(capsys.readouterr().out) == {"a": "nan", "b": ["inf", "-inf"], "c": "01"}


def test_a_long_json_list_prints_an_item_a_line_and_converts_as_a_short_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Past LONG_JSON_LIST items json's C encoder writes each item (its indenting one is pure
    Python); NaN, numpy scalars, bytes and non-string keys come out as in a short list."""
    item = {"m": math.nan, "n": np.float32(0.5), "i": np.int64(3), "b": b"\x02", 7: [math.inf]}
    expected = {"m": "nan", "n": 0.5, "i": 3, "b": "02", "7": ["inf"]}
    for count in (2, output.LONG_JSON_LIST + 1):
        output.emit_json([item, {"plain": 1}] * (count // 2) + [{"plain": 1}] * (count % 2))
        text = capsys.readouterr().out
        assert json.loads(text)[:2] == [expected, {"plain": 1}]
        assert len(json.loads(text)) == count
        lines = text.splitlines()
        assert (len(lines) == count + 2) == (count > output.LONG_JSON_LIST)  # [ items ]
    with pytest.raises(TypeError, match="not JSON serializable"):
        output.emit_json([object()] * (output.LONG_JSON_LIST + 1))


def test_emit_table_is_tab_separated_when_piped(capsys: pytest.CaptureFixture[str]) -> None:
    output.emit_table(["a", "b"], [(1, None), ("x", "y")])
    assert capsys.readouterr().out == "a\tb\n1\t\nx\ty\n"


def test_piped_tables_keep_one_row_a_line_and_one_tab_a_column(tmp_path: Path) -> None:
    """A tab or newline in an author (stamped from $MVCDB_AUTHOR) or in a tag name (written into
    a hostile file directly) never splits a row of `log` or `tags`."""
    db_file = tmp_path / "c.db"
    with mvcdb.open(db_file) as db:
        v = db.record("m", {"w": np.zeros(2)})
    assert run(db_file, ["tag", v.id, "t2"], MVCDB_AUTHOR="eve\tx\ny").exit_code == 0
    with sqlite3.connect(db_file) as conn:
        conn.execute("INSERT INTO tags (name, vid) VALUES (?, 1)", ("ev\x1b[2Jil\nline\tx",))
    for args in (["log"], ["tags"], ["tags", "--history", "t2"]):
        lines = run(db_file, args).stdout.splitlines()
        assert len({line.count("\t") for line in lines}) == 1, (args, lines)
    with mvcdb.open(db_file, readonly=True) as db:
        assert [m.author for m in db.tag_history("t2")] == ["eve x y"]  # stamped on one line
    assert output.table_cell("a\t\tb\nc\x00") == "a b c " and output.table_cell(None) == ""


def test_tables_keep_ids_and_times_whole_on_a_narrow_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every column used to fold, so an 80-column `mvcdb log` split the id it lists (one could not
    copy a ref out of it); now short columns stay whole while long ones still get room."""
    monkeypatch.setattr(output, "is_tty", lambda: True)
    row = ("dd47aa9eb9cc", "linreg", "2026-11-27 16:58:43", "A Long Author", "", "val_mse=0.2291", "x " * 40)
    columns = ["id", "model", "created (UTC)", "author", "tags", "metrics", "message"]
    for width, whole in ((80, ["dd47aa9eb9cc"]), (100, ["dd47aa9eb9cc", "2026-11-27 16:58:43"])):
        monkeypatch.setenv("COLUMNS", str(width))
        output.emit_table(columns, [row])
        shown = capsys.readouterr().out
        assert all(text in shown for text in whole), shown
        assert "val_mse" in shown.replace("\n", "") and shown.count("x") > 30  # nothing dropped
        assert max(len(line) for line in shown.splitlines()) <= width
    assert output._unwrapped(columns, [row], 40) == [False] * len(columns)  # no room: all fold
