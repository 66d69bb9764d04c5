"""Data versions, their sentinels, and the pure functions that compute logical data versions."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from ._keys import AssetKey
from .errors import InvalidDataVersion

__all__ = [
    "INITIAL",
    "NULL",
    "SENTINEL_NAMES",
    "UNKNOWN",
    "DataVersion",
    "dagster_data_version",
    "length_prefixed",
    "logical_data_version",
    "user_data_version",
]


@dataclass(frozen=True, slots=True)
class DataVersion:
    """A fingerprint of an asset's value; `str()` is the value itself."""

    value: str

    def __post_init__(self) -> None:
        if not isinstance(self.value, str) or not self.value:
            raise InvalidDataVersion(
                f"a data version must be a non-empty string, not {self.value!r}; "
                f"for a number write DataVersion(str({self.value!r}))"
            )
        if any(c == "\x00" or "\ud800" <= c <= "\udfff" for c in self.value):
            raise InvalidDataVersion(
                f"data version {self.value[:40]!r} contains a NUL byte or a lone surrogate; "
                "use a hash or plain text"
            )

    def __str__(self) -> str:
        return self.value

    @classmethod
    def _trusted(cls, value: str) -> DataVersion:
        """A version read back from the store: skip validation on the hot path."""
        version = object.__new__(cls)
        object.__setattr__(version, "value", value)
        return version


# NULL: a materializable asset never materialized. INITIAL: a source never observed (or a record
# that carries no data version). UNKNOWN: a version we cannot know; it never compares as unchanged.
NULL: Final = DataVersion("NULL")
INITIAL: Final = DataVersion("INITIAL")
UNKNOWN: Final = DataVersion("UNKNOWN")
SENTINEL_NAMES: Final = frozenset({"NULL", "INITIAL", "UNKNOWN"})


def user_data_version(value: DataVersion | str) -> DataVersion:
    """Coerce a user-provided data version, refusing the sentinel names.

    :raises InvalidDataVersion: empty, not a string, or one of NULL, INITIAL, UNKNOWN.
    """
    version = value if isinstance(value, DataVersion) else DataVersion(value)
    if version.value in SENTINEL_NAMES:
        raise InvalidDataVersion(
            f"data version {version.value!r} is reserved for insync's sentinels; "
            "return another string (for example a content hash)"
        )
    return version


def length_prefixed(*fields: bytes) -> bytes:
    """Injective encoding of a sequence of byte strings: ("ab", "c") never equals ("a", "bc")."""
    out = bytearray(len(fields).to_bytes(8, "big"))
    for field in fields:
        out += len(field).to_bytes(8, "big")
        out += field
    return bytes(out)


def logical_data_version(
    code_version: str,
    inputs: Mapping[Any, DataVersion],
    *,
    partition: str | None = None,
    parameters: Iterable[tuple[str, str]] = (),
) -> DataVersion:
    """insync's default data version: a SHA-256 of everything the step read.

    That is the code version, the input data versions (keyed by asset key, or by
    `(asset key, partition)` for an upstream partition), the partition computed and the
    parameters' fingerprints (`(name, fingerprint)` pairs). Inputs are taken in canonical order
    and every field is length-prefixed, so distinct reads give distinct encodings. Without
    partitions or parameters the encoding is the original one, so stores written before
    partitions existed keep their versions. Any UNKNOWN input makes the result UNKNOWN.
    """
    if any(v == UNKNOWN for v in inputs.values()):
        return UNKNOWN
    normalized = sorted(
        ((k, "") if not isinstance(k, tuple) else (k[0], k[1] or ""), v.value) for k, v in inputs.items()
    )
    params = sorted(parameters)
    if partition is None and not params and all(p == "" for (_, p), _ in normalized):
        fields = [b"insync-logical-1", code_version.encode()]
        for (key, _), version in normalized:
            fields.append(str(key).encode())
            fields.append(version.encode())
        return DataVersion(hashlib.sha256(length_prefixed(*fields)).hexdigest())
    encoded_inputs = [
        length_prefixed(str(key).encode(), part.encode(), version.encode())
        for (key, part), version in normalized
    ]
    encoded = length_prefixed(
        b"insync-logical-2",
        code_version.encode(),
        length_prefixed() if partition is None else length_prefixed(partition.encode()),
        length_prefixed(*(length_prefixed(n.encode(), f.encode()) for n, f in params)),
        length_prefixed(*encoded_inputs),
    )
    return DataVersion(hashlib.sha256(encoded).hexdigest())


def dagster_data_version(code_version: str, inputs: Mapping[AssetKey, DataVersion]) -> DataVersion:
    """Dagster's `compute_logical_data_version`, byte for byte, for stores shared with Dagster.

    Dagster sorts inputs by `str(AssetKey(path))`, i.e. `AssetKey(['a', 'b'])`, and hashes the plain
    concatenation, which is not injective: prefer `logical_data_version` unless you need Dagster's
    exact values.
    """
    if any(v == UNKNOWN for v in inputs.values()):
        return UNKNOWN
    ordered = sorted(inputs, key=lambda k: f"AssetKey({list(k.parts)!r})")
    joined = "".join([code_version, *(inputs[k].value for k in ordered)])
    return DataVersion(hashlib.sha256(joined.encode("utf8")).hexdigest())
