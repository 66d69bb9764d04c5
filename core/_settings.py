"""Where the store and the value cache live: one resolver, read at call time, never at import."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import sqlalchemy as sa

from .errors import ConfigError

__all__ = ["Settings", "check_database_url", "redact", "resolve_settings"]

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


SUPPORTED: Final = "sqlite:///path/insync.db or postgresql+psycopg://user@host:5432/db"
_DRIVERS: Final = {"sqlite": ("", "pysqlite"), "postgresql": ("", "psycopg", "psycopg2")}


def resolve_settings(url: str | None = None, *, cache_url: str | None = None) -> Settings:
    """First match wins: explicit `url` > $INSYNC_DATABASE_URL > $INSYNC_HOME > ./.insync.

    The value cache: explicit `cache_url` > $INSYNC_CACHE_URL > `<home>/values`.

    :raises ConfigError: the URL cannot be parsed or names a database insync does not support;
        the message names where the URL came from and never shows a password.
    """
    home = Path(os.environ.get(HOME_VAR) or DEFAULT_HOME).expanduser().absolute()
    if url is not None and not isinstance(url, str):
        raise ConfigError(f"the insync database URL must be a string, not {type(url).__name__}")
    if url:
        database_url, source = url, "the url argument"
    elif os.environ.get(DATABASE_URL_VAR):
        database_url, source = os.environ[DATABASE_URL_VAR], f"${DATABASE_URL_VAR}"
    else:
        database_url = f"sqlite:///{home / DATABASE_FILE}"
        source = f"${HOME_VAR}" if os.environ.get(HOME_VAR) else f"the default ./{DEFAULT_HOME}"
    check_database_url(database_url, source)
    resolved_cache = cache_url or os.environ.get(CACHE_URL_VAR) or str(home / "values")
    return Settings(database_url=database_url, home=home, cache_url=resolved_cache, source=source)


def check_database_url(database_url: str, source: str) -> None:
    """:raises ConfigError: unparsable, unsupported driver, bad port, NUL byte: never echoing secrets."""
    shown = redact(database_url)
    if "\x00" in database_url:
        raise ConfigError(f"the insync database URL from {source} ({shown}) contains a NUL byte; remove it")
    try:
        parsed = sa.make_url(database_url)
        parsed.port  # noqa: B018 - parsed lazily: a non-numeric port fails here
    except (sa.exc.ArgumentError, ValueError) as exc:
        reason = "its port is not a number" if isinstance(exc, ValueError) else "it is not a SQLAlchemy URL"
        fix = _unparsable_hint(database_url) or f"use {SUPPORTED}"
        raise ConfigError(
            f"cannot parse the insync database URL from {source} ({shown}): {reason}; {fix}"
        ) from None
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "sqlite" and (parsed.database or "").startswith("~"):
        home_path = Path(parsed.database or "").expanduser()
        raise ConfigError(
            f"the insync database URL from {source} ({shown}) starts its path with ~, which a URL "
            f"does not expand; write sqlite:///{home_path}"
        )
    if backend not in _DRIVERS or driver not in _DRIVERS[backend]:
        hint = " (write postgresql+psycopg://...)" if backend in ("postgres", "postgresql") else ""
        raise ConfigError(
            f"the insync database URL from {source} ({shown}) uses {parsed.drivername!r}{hint}; insync "
            f"supports SQLite and PostgreSQL: {SUPPORTED}"
        )


def _unparsable_hint(url: str) -> str | None:
    """What an unparsable URL most likely meant, for the usual slips: a bare path, `sqlite:/x`
    or `sqlite//x` (SQLite wants three slashes, then the path), `postgresql+psycopg//...`."""
    if "://" in url:
        return None
    scheme = re.match(r"(?i)(sqlite|postgres(?:ql)?(?:\+\w+)?)(?=[:/])[:/]*", url)
    if scheme is not None and scheme.group(1).lower().startswith("postgres"):
        written = scheme.group(1)
        driver = written if "+" in written else "postgresql+psycopg"
        return f"write {driver}:// (a colon and two slashes) before the user and host"
    if "@" in url:  # user:password@host: nothing to suggest without showing it
        return None
    after_scheme = url[scheme.end(1) :].lstrip(":") if scheme else url
    absolute = after_scheme.startswith("/")
    target = Path(("/" if absolute else "") + after_scheme.lstrip("/"))
    if target.is_dir():
        return f"to keep the store in the folder {target}, set INSYNC_HOME={target} instead"
    return f"did you mean sqlite:///{target}? (sqlite:/// then the path: four slashes for an absolute one)"


def redact(url: str) -> str:
    """`url` safe to print: the password replaced by ***, whatever the URL's shape."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except Exception:
        # Unparsable: hide everything between a scheme's "//" (or the start) and the last "@".
        head, at, tail = url.rpartition("@")
        if not at:
            return url if ":" not in url.partition("//")[2] else url.split("//", 1)[0] + "//***"
        scheme, sep, _ = head.partition("//")
        return f"{scheme}{sep}***@{tail}" if sep else f"***@{tail}"
