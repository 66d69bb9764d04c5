"""Where the store and the value cache live: one resolver, read at call time, never at import."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import sqlalchemy as sa

from .errors import ConfigError

__all__ = ["Settings", "resolve_settings"]

DATABASE_URL_VAR: Final = "INSYNC_DATABASE_URL"
HOME_VAR: Final = "INSYNC_HOME"
CACHE_URL_VAR: Final = "INSYNC_CACHE_URL"
DEFAULT_HOME: Final = ".insync"
DATABASE_FILE: Final = "insync.db"


@dataclass(frozen=True, slots=True)
class Settings:
    """Resolved locations. `source` says which rule chose the database, for messages."""

    database_url: str
    home: Path
    cache_url: str
    source: str


def resolve_settings(url: str | None = None, *, cache_url: str | None = None) -> Settings:
    """First match wins: explicit `url` > $INSYNC_DATABASE_URL > $INSYNC_HOME > ./.insync.

    The value cache: explicit `cache_url` > $INSYNC_CACHE_URL > `<home>/values`.

    :raises ConfigError: the URL cannot be parsed.
    """
    home = Path(os.environ.get(HOME_VAR) or DEFAULT_HOME).expanduser().absolute()
    if url:
        database_url, source = url, "the url argument"
    elif os.environ.get(DATABASE_URL_VAR):
        database_url, source = os.environ[DATABASE_URL_VAR], f"${DATABASE_URL_VAR}"
    else:
        database_url = f"sqlite:///{home / DATABASE_FILE}"
        source = f"${HOME_VAR}" if os.environ.get(HOME_VAR) else f"the default ./{DEFAULT_HOME}"
    try:
        sa.make_url(database_url)
    except sa.exc.ArgumentError as exc:
        raise ConfigError(
            f"cannot parse the insync database URL from {source} ({database_url!r}): {exc}; "
            "use a SQLAlchemy URL such as sqlite:///path/insync.db or "
            "postgresql+psycopg://user@host:5432/db"
        ) from exc
    resolved_cache = cache_url or os.environ.get(CACHE_URL_VAR) or str(home / "values")
    return Settings(database_url=database_url, home=home, cache_url=resolved_cache, source=source)
