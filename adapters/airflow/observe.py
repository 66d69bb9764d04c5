"""Ready-made observe functions for ``InsyncObservationSensor`` and ``InsyncObservationTrigger``.

They are importable by path (what a trigger needs) and take keyword arguments only, given as
``observe_kwargs``: ``observe=observe_file, observe_kwargs={"path": "/data/numbers.txt"}``.
"""

from __future__ import annotations

import os
from typing import Any

from insync.core import ConfigError, DataVersion
from insync.core import observe_directory as _observe_directory
from insync.core import observe_file as _observe_file
from insync.core import observe_sql as _observe_sql

__all__ = ["observe_directory", "observe_file", "observe_sql"]


def observe_file(*, path: str | os.PathLike[str]) -> DataVersion:
    """Content fingerprint of one file.

    :raises ObservationError: the file is missing or unreadable (nothing is recorded).
    """
    return _observe_file(path)


def observe_directory(*, path: str | os.PathLike[str]) -> DataVersion:
    """Fingerprint of every file name and content below a directory.

    :raises ObservationError: the directory is missing or unreadable.
    """
    return _observe_directory(path)


def observe_sql(
    *,
    query: str,
    url: str | None = None,
    conn_id: str | None = None,
    params: dict[str, Any] | None = None,
) -> DataVersion:
    """Fingerprint of a SQL query's result rows (give it an ORDER BY, or aggregate).

    The database is a SQLAlchemy ``url`` or an Airflow connection ``conn_id`` (read through
    the task SDK, so it also works on workers without metadata-database access).

    :raises ConfigError: neither or both of ``url`` and ``conn_id``.
    :raises ObservationError: the database cannot be reached or the query fails.
    """
    if (url is None) == (conn_id is None):
        raise ConfigError("observe_sql needs exactly one of url='...' or conn_id='...'")
    if conn_id is not None:
        from airflow.sdk import Connection

        url = _sqlalchemy_url(Connection.get(conn_id))
    assert url is not None  # for the type checker: set by one of the branches above
    return _observe_sql(url, query, **(params or {}))


_DRIVERS = {"postgres": "postgresql+psycopg", "postgresql": "postgresql+psycopg"}


def _sqlalchemy_url(conn: Any) -> str:
    """A SQLAlchemy URL from an Airflow connection's fields.

    Not ``conn.get_uri()``: Airflow quotes a sqlite path into the host (``sqlite://%2Ftmp...``)
    and says ``postgres://``, which SQLAlchemy 2 does not accept.
    """
    import sqlalchemy as sa

    if conn.conn_type == "sqlite":
        return f"sqlite:///{conn.host}"
    url = sa.URL.create(
        _DRIVERS.get(conn.conn_type, conn.conn_type),
        username=conn.login or None,
        password=conn.password or None,
        host=conn.host or None,
        port=conn.port or None,
        database=conn.schema or None,
    )
    return url.render_as_string(hide_password=False)
