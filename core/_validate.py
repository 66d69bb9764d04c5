"""Checks at the public API, so bad input is one clear error, the same on SQLite and PostgreSQL.

Without them SQLite stores what PostgreSQL refuses (a 300-character run id, a NUL byte, bytes
for a string), and the store then holds records one backend cannot read back.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, Final

from .errors import ConfigError

__all__ = ["check_limit", "check_text", "metadata_json"]

_MAX_DEPTH: Final = 100


def check_text(
    value: object, what: str, *, max_length: int, optional: bool = True, allow_empty: bool = False
) -> str | None:
    """`value` if it is a storable string: not empty (unless `allow_empty`), no NUL or other
    control character, no lone surrogate, at most `max_length` characters.

    :raises ConfigError: naming `what` and the fix.
    """
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{what} must be a string, not {type(value).__name__} {_short(value)}")
    if not value and not allow_empty:
        raise ConfigError(f"{what} is an empty string; pass None when there is none")
    if len(value) > max_length:
        raise ConfigError(f"{what} is {len(value)} characters long (at most {max_length}); shorten it")
    for char in value:
        code = ord(char)
        if code < 32 or 0xD800 <= code <= 0xDFFF:
            kind = "a NUL byte" if code == 0 else "a control character" if code < 32 else "a lone surrogate"
            raise ConfigError(f"{what} {_short(value)} contains {kind}; remove it")
    return value


def check_limit(limit: object) -> int | None:
    """:raises ConfigError: a limit that is not None or a positive integer."""
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigError(f"limit must be a positive integer or None (all), not {_short(limit)}")
    return limit


def metadata_json(metadata: Mapping[str, Any] | None, *, what: str) -> str:
    """Canonical JSON text of user metadata (sorted keys, strict JSON).

    :raises ConfigError: not a mapping with string keys, not JSON-serializable, NaN or Infinity
        (which would make `history --json` print invalid JSON), or nested over 100 levels.
    """
    if not metadata:
        return "{}"
    if not isinstance(metadata, Mapping):
        raise ConfigError(f"metadata of {what} must be a dict, not {type(metadata).__name__}")
    _check_tree(metadata, what, 0)
    try:
        return json.dumps(dict(metadata), sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"metadata of {what} must be JSON-serializable ({exc}); "
            "convert values to str/int/float/bool/list/dict"
        ) from None


def _check_tree(value: Any, what: str, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise ConfigError(f"metadata of {what} is nested over {_MAX_DEPTH} levels deep; flatten it")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(
            f"metadata of {what} holds {value!r}, which JSON cannot carry; store it as a string"
        )
    if isinstance(value, str):
        check_text(value, f"a metadata string of {what}", max_length=10_000_000, allow_empty=True)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigError(f"metadata of {what} has the key {_short(key)}; keys must be strings")
            check_text(key, f"a metadata key of {what}", max_length=10_000, allow_empty=True)
            _check_tree(item, what, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_tree(item, what, depth + 1)


def _short(value: object) -> str:
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."
