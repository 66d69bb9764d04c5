"""Asset keys: `/`-separated paths whose parts never contain `/`, so the user string is canonical."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

from .errors import InvalidAssetKey

__all__ = ["AssetKey", "CoercibleToAssetKey"]


class AssetKey(str):
    """A key such as `analytics/orders`: an immutable `str` holding the canonical user string.

    `AssetKey("analytics/orders")` and `AssetKey(["analytics", "orders"])` are equal, and equal to
    the plain string "analytics/orders", so `store.statuses()["analytics/orders"]` works. Being a
    `str` makes hashing and comparison C-speed: keys are looked up millions of times on a
    100k-asset graph. Order is the user string's order.

    :raises InvalidAssetKey: an empty key, an empty part, a part containing `/` or a control
        character, or something that is neither a string nor a sequence of strings.
    """

    __slots__ = ()

    def __new__(cls, path: str | Sequence[str]) -> AssetKey:
        raw: object = path
        if isinstance(raw, AssetKey):
            return raw
        if isinstance(raw, str):
            parts: tuple[object, ...] = tuple(raw.split("/"))
            shown = raw
        elif isinstance(raw, Sequence):
            parts = tuple(raw)
            shown = repr(list(raw))
            for part in parts:
                if isinstance(part, str) and "/" in part:
                    raise InvalidAssetKey(
                        f"asset key {shown} has a part containing '/' ({part!r}); "
                        f"write it as the string {'/'.join(str(p) for p in parts)!r} instead"
                    )
        else:
            raise InvalidAssetKey(
                f"asset key must be a string like 'analytics/orders' or a list of parts, "
                f"not {type(raw).__name__} {raw!r}"
            )
        if not parts or parts == ("",):
            raise InvalidAssetKey("asset key is empty; give a name like 'analytics/orders'")
        for part in parts:
            if not isinstance(part, str):
                raise InvalidAssetKey(
                    f"asset key {shown} has a part that is not a string ({part!r}); use strings only"
                )
            if not part.strip():
                fixed = "/".join(p for p in parts if isinstance(p, str) and p.strip())
                raise InvalidAssetKey(
                    f"asset key {shown!r} has an empty part; write {fixed!r}"
                    if fixed
                    else f"asset key {shown!r} has only empty parts; give a name"
                )
            if any(ord(c) < 32 or 0xD800 <= ord(c) <= 0xDFFF for c in part):
                raise InvalidAssetKey(
                    f"asset key {shown!r} has a control character (newline, tab, ...) or a lone "
                    "surrogate; remove it"
                )
        return str.__new__(cls, "/".join(parts))  # type: ignore[arg-type]

    @classmethod
    def _trusted(cls, user_string: str) -> AssetKey:
        """A key read back from the store, validated when it was written: skip validation."""
        return str.__new__(cls, user_string)

    @classmethod
    def parse(cls, value: CoercibleToAssetKey) -> AssetKey:
        """Accept an `AssetKey`, a user string or a sequence of parts."""
        return value if isinstance(value, AssetKey) else cls(value)

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(self.split("/"))

    def __str__(self) -> str:
        return str.__str__(self)

    def __repr__(self) -> str:
        return f"AssetKey({str.__str__(self)!r})"


CoercibleToAssetKey: TypeAlias = AssetKey | str | Sequence[str]
