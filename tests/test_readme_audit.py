"""README.md's reference tables stay true of the tree: the architecture table names every module
that exists (and none that does not), the file-format table every table a new file has, and every
MVCDB_* environment variable the code reads is documented. (The Python and SQL blocks are run by
test_readme_quickstart.py and test_query_docs.py; the verbs by test_cli_app.py.)"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import mvcdb

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def _section(heading: str) -> str:
    """The README's text from `heading` to the next heading of the same or a higher level."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n{heading}\n")
    level = heading.split(" ", 1)[0]
    ends = [m.start() for m in re.finditer(rf"\n#{{1,{len(level)}}} ", text) if m.start() > start]
    return text[start : ends[0] if ends else len(text)]


def _table_rows(section: str) -> list[list[str]]:
    """The cells of every Markdown table row in `section` (header and separator rows skipped)."""
    rows = []
    for line in section.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows[1:] if rows else rows


def _architecture_names() -> set[str]:
    """Every path the architecture table names: a bare `x.py` after `mvcdb/...` in the same cell
    is `mvcdb/x.py` (`mvcdb/diff.py`, `lineage.py`); one alone (`__main__.py`) is kept bare."""
    names: set[str] = set()
    for row in _table_rows(_section("## Architecture")):
        for cell in row:
            tokens = re.findall(r"`([^`\s]+)`", cell)
            base = ""
            for token in tokens:
                if "/" in token:
                    base = token.rsplit("/", 1)[0] + "/" if not token.endswith("/") else ""
                    names.add(token)
                elif token.endswith(".py"):
                    names.add(base + token if base else token)
    return names


def _modules_in_tree() -> set[str]:
    """Top-level modules and packages of mvcdb/, and the other top-level code directories."""
    found: set[str] = set()
    package = ROOT / "mvcdb"
    for entry in package.iterdir():
        if entry.name.startswith((".", "__pycache__")) or entry.name == "py.typed":
            continue
        if entry.is_symlink() and entry.is_dir():  # mvcdb/tui -> ../tui: documented as tui/
            found.add(f"{Path(entry.readlink()).name}/")
        elif entry.is_dir():
            found.add(f"mvcdb/{entry.name}/")
        elif entry.suffix == ".py":
            found.add(f"mvcdb/{entry.name}")
    return found | {"benchmarks/", "examples/"}


def test_architecture_table_lists_every_module_and_no_missing_one() -> None:
    listed = _architecture_names()
    existing = _modules_in_tree()
    unlisted = {m for m in existing if m not in listed and m.replace("mvcdb/", "", 1) not in listed}
    assert not unlisted, f"README's architecture table does not mention: {sorted(unlisted)}"
    for name in listed:
        if name.startswith(("mvcdb/", "tui/", "benchmarks/", "examples/")):
            assert (ROOT / name).exists(), f"README's architecture table names {name}, which does not exist"


def test_file_format_table_lists_every_table(tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"
    mvcdb.open(path).close()
    conn = sqlite3.connect(path)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()
    documented: set[str] = set()
    for row in _table_rows(_section("## The file format")):
        documented |= set(re.findall(r"`(\w+)`", row[0]))
    tables.discard("sqlite_sequence")
    assert not tables - documented, f"tables missing from README's file-format table: {tables - documented}"
    assert not documented - tables, f"README's file-format table names no such table: {documented - tables}"


def test_every_environment_variable_the_code_reads_is_documented() -> None:
    readme = README.read_text(encoding="utf-8")
    used: set[str] = set()
    for source in [*(ROOT / "mvcdb").rglob("*.py"), *(ROOT / "tui").rglob("*.py")]:
        used |= set(re.findall(r"(?<![\w])MVCDB_[A-Z_]+", source.read_text(encoding="utf-8")))
    assert used, "found no MVCDB_ variables: the scan is broken"
    missing = {name for name in used if name not in readme}
    assert not missing, f"environment variables not documented in README.md: {sorted(missing)}"
