"""The ledger contract suite over the in-memory and SQLite backends.

PostgreSQL runs the same suite in ``test_store_postgres.py`` where a server can be started.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from wattwise.store._memory import forget
from wattwise.testing.store_contract import RunStoreContract

FIXTURES = Path(__file__).parent / "fixtures"


class TestMemoryStore(RunStoreContract):
    shared_between_processes = False  # a memory ledger lives in one process

    @pytest.fixture
    def store_url(self) -> Iterator[str]:
        url = f"memory://contract-{uuid.uuid4().hex}"
        yield url
        forget(url)


class TestSQLiteStore(RunStoreContract):
    can_block = True

    @pytest.fixture
    def store_url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'ledger' / 'ledger.db'}"

    def old_ledger_url(self, tmp_path: Path) -> str | None:
        copy = tmp_path / "old" / "ledger.db"
        copy.parent.mkdir()
        shutil.copyfile(FIXTURES / "ledger_v0_1.db", copy)
        return str(copy)  # a plain path, as v0.1 took

    @contextlib.contextmanager
    def blocked(self, store_url: str) -> Iterator[None]:
        """Another process's connection holds the write lock."""
        holder = sqlite3.connect(store_url[len("sqlite:///") :], isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
