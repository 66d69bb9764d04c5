from __future__ import annotations

from collections.abc import Iterator

import pytest
from insync.core import EventStore


@pytest.fixture
def store(sqlite_url: str) -> Iterator[EventStore]:
    with EventStore(sqlite_url) as s:
        yield s


@pytest.fixture
def any_store(store_url: str) -> Iterator[EventStore]:
    """The same test on SQLite and on PostgreSQL."""
    with EventStore(store_url) as s:
        yield s
