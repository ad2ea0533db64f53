"""The README's quick start runs as written (a newcomer copies it first)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_quick_start_snippet_runs(tmp_path: Path) -> None:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Quick start") :]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None, "no python block in the quick start"
    script = tmp_path / "quickstart.py"
    script.write_text(code.group(1), encoding="utf-8")
    out = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "hyper.lr" in out.stdout and "val_mse" in out.stdout
    assert (tmp_path / "models.db").exists()
    wal = tmp_path / "models.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0
