"""Shared fixtures: a real database file under tmp_path, closed after every test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

import mvcdb

settings.register_profile("ci", max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(autouse=True)
def _fixed_author(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never depend on the machine's git config or user name."""
    monkeypatch.setenv("MVCDB_AUTHOR", "tester")
    monkeypatch.delenv("MVCDB_PATH", raising=False)
    monkeypatch.delenv("MVCDB_DEBUG", raising=False)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "models.db"


@pytest.fixture
def db(db_path: Path) -> Iterator[mvcdb.Database]:
    database = mvcdb.open(db_path)
    try:
        yield database
    finally:
        database.close()
