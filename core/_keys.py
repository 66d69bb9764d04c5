"""Asset keys: `/`-separated paths whose parts never contain `/`, so the user string is canonical."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

from .errors import InvalidAssetKey

__all__ = ["AssetKey", "CoercibleToAssetKey"]


@dataclass(frozen=True, slots=True, order=True, init=False)
class AssetKey:
    """A key such as `analytics/orders`.

    `AssetKey("analytics/orders")` and `AssetKey(["analytics", "orders"])` are equal; `str()` gives
    the user string back. Raises `InvalidAssetKey` for an empty key, an empty part or a part
    containing `/`.
    """

    parts: tuple[str, ...]
    # Hash computed once: keys are looked up in dicts millions of times on a 100k-asset graph.
    _hash: int = field(init=False, repr=False, compare=False)

    def __init__(self, path: str | Sequence[str]) -> None:
        raw: object = path
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
        object.__setattr__(self, "parts", parts)
        object.__setattr__(self, "_hash", hash(parts))

    @classmethod
    def _trusted(cls, user_string: str) -> AssetKey:
        """A key read back from the store, validated when it was written: skip validation."""
        key = object.__new__(cls)
        parts = tuple(user_string.split("/"))
        object.__setattr__(key, "parts", parts)
        object.__setattr__(key, "_hash", hash(parts))
        return key

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, AssetKey):
            return NotImplemented
        return self._hash == other._hash and self.parts == other.parts

    @classmethod
    def parse(cls, value: CoercibleToAssetKey) -> AssetKey:
        """Accept an `AssetKey`, a user string or a sequence of parts."""
        return value if isinstance(value, AssetKey) else cls(value)

    def __str__(self) -> str:
        return "/".join(self.parts)

    def __repr__(self) -> str:
        return f"AssetKey({str(self)!r})"


CoercibleToAssetKey: TypeAlias = AssetKey | str | Sequence[str]
