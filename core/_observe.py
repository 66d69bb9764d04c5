"""Ready-made observe functions for sources, shared by every adapter."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
import xxhash

from ._fingerprint import _encode, fingerprint_directory, fingerprint_file
from ._versions import DataVersion
from .errors import ObservationError

__all__ = ["observe_directory", "observe_file", "observe_sql"]


def observe_file(path: str | os.PathLike[str]) -> DataVersion:
    """Data version of a file source: the fingerprint of its bytes.

    :raises ObservationError: the file is missing or unreadable (nothing is recorded).
    """
    return fingerprint_file(path)


def observe_directory(path: str | os.PathLike[str]) -> DataVersion:
    """Data version of a directory source: names and contents of every file below it.

    :raises ObservationError: the directory is missing or unreadable.
    """
    return fingerprint_directory(path)


def observe_sql(connection: str | sa.Engine, query: str, **params: Any) -> DataVersion:
    """Data version of a SQL source: the fingerprint of the query's rows, in the order returned.

    Give the query an ORDER BY (or make it an aggregate such as `select max(updated_at)`) so the
    same data always yields the same version.

    :raises ObservationError: the database cannot be reached or the query fails.
    """
    engine = sa.create_engine(connection) if isinstance(connection, str) else connection
    hasher = xxhash.xxh3_128()
    try:
        with engine.connect() as conn:
            result = conn.execute(sa.text(query), params)
            _encode(list(result.keys()), hasher.update)
            for row in _iter_rows(result):
                _encode(row, hasher.update)
    except sa.exc.SQLAlchemyError as exc:
        raise ObservationError(f"observing with query {query!r} failed: {exc}") from exc
    finally:
        if isinstance(connection, str):
            engine.dispose()
    return DataVersion(f"sql:{hasher.hexdigest()}")


def _iter_rows(rows: Iterable[Any]) -> Iterable[list[Any]]:
    for row in rows:
        yield [v if isinstance(v, int | float | str | bytes | bool) or v is None else str(v) for v in row]
