"""Content fingerprints for user-provided data versions: fast, streaming and injective.

xxh3-128 (xxhash) is the one algorithm everywhere, so workers on different machines agree.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import math
import os
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path, PurePath
from typing import Any, Final

import xxhash

from ._versions import DataVersion
from .errors import ObservationError, ParameterError

__all__ = [
    "fingerprint_bytes",
    "fingerprint_directory",
    "fingerprint_file",
    "fingerprint_parameters",
    "fingerprint_table",
    "fingerprint_value",
]

_BLOCK: Final = 1 << 20


def _version(hasher: Any, prefix: str) -> DataVersion:
    return DataVersion(f"{prefix}:{hasher.hexdigest()}")


def fingerprint_bytes(data: bytes | bytearray | memoryview) -> DataVersion:
    """Fingerprint of a byte string."""
    return _version(xxhash.xxh3_128(data), "bytes")


def _hash_file_into(hasher: Any, path: Path) -> None:
    with path.open("rb", buffering=0) as fh:
        buffer = bytearray(_BLOCK)
        view = memoryview(buffer)
        while n := fh.readinto(buffer):
            hasher.update(view[:n])


def fingerprint_file(path: str | os.PathLike[str]) -> DataVersion:
    """Fingerprint of a file's bytes, read in 1 MiB blocks (never whole into memory).

    :raises ObservationError: the file is missing or unreadable.
    """
    file = Path(path)
    hasher = xxhash.xxh3_128()
    try:
        _hash_file_into(hasher, file)
    except OSError as exc:
        raise ObservationError(f"cannot fingerprint file {file}: {exc.strerror or exc}") from exc
    return _version(hasher, "file")


def fingerprint_directory(path: str | os.PathLike[str]) -> DataVersion:
    """Fingerprint of a directory tree: relative paths and contents, in sorted order.

    Names and contents are length-prefixed, so moving bytes between files changes it.
    :raises ObservationError: the directory is missing or unreadable.
    """
    root = Path(path)
    if not root.is_dir():
        raise ObservationError(
            f"cannot fingerprint directory {root}: it does not exist or is not a directory"
        )
    hasher = xxhash.xxh3_128()
    try:
        files = sorted(p for p in root.rglob("*") if p.is_file())
        for file in files:
            name = file.relative_to(root).as_posix().encode()
            hasher.update(len(name).to_bytes(8, "big") + name)
            hasher.update(file.stat().st_size.to_bytes(8, "big"))
            _hash_file_into(hasher, file)
    except OSError as exc:
        raise ObservationError(f"cannot fingerprint directory {root}: {exc}") from exc
    return _version(hasher, "dir")


def fingerprint_value(value: Any) -> DataVersion:
    """Fingerprint of a JSON-like value with types kept apart (1, 1.0, "1" and True all differ).

    Also dates and datetimes (with their UTC offset), Decimal, UUID, paths, enum members and
    sets. NaN is one value, whatever its bits.

    :raises ParameterError: a value of another type; fingerprint such data yourself (e.g.
        `fingerprint_table`) or return a data version.
    """
    hasher = xxhash.xxh3_128()
    try:
        _encode(value, hasher.update, 0)
    except RecursionError:
        raise ParameterError("cannot fingerprint a value nested over 500 levels deep") from None
    return _version(hasher, "value")


def fingerprint_parameters(
    values: Mapping[str, Any],
    *,
    ignore: Iterable[str] = (),
    fingerprints: Mapping[str, Callable[[Any], Any]] | None = None,
    what: str = "the step",
) -> tuple[tuple[str, str], ...]:
    """`(name, fingerprint)` of each parameter a step reads, sorted by name: part of provenance
    and of the logical data version, so a step is never reused for other parameter values.

    `ignore` names parameters that do not change the result (a logger, a connection); a function
    in `fingerprints` turns a parameter into something `fingerprint_value` accepts (or returns a
    `DataVersion`).

    :raises ParameterError: a parameter with no fingerprint, naming it and both ways out; an
        ignored or fingerprinted name that is not a parameter (a typo would silently do nothing).
    """
    ignored = set(ignore)
    custom = dict(fingerprints or {})
    for name in sorted((ignored | set(custom)) - set(values)):
        raise ParameterError(
            f"{what} has no parameter {name!r} to ignore or fingerprint; its parameters are "
            f"{', '.join(sorted(values)) or 'none'}"
        )
    out = []
    for name in sorted(values):
        if not isinstance(name, str) or not name or len(name) > 255 or any(ord(c) < 32 for c in name):
            raise ParameterError(f"{what} has a parameter named {name!r}; names are non-empty strings")
        if name in ignored:
            continue
        value = values[name]
        try:
            if name in custom:
                value = custom[name](value)
            version = value if isinstance(value, DataVersion) else fingerprint_value(value)
        except ParameterError as exc:
            raise ParameterError(
                f"parameter {name!r} of {what} cannot be fingerprinted ({exc}); if it does not change "
                f"the result, ignore it (ignore_parameters=[{name!r}]), otherwise give a function: "
                f"parameter_fingerprints={{{name!r}: lambda v: ...}}"
            ) from None
        out.append((name, version.value))
    return tuple(out)


def _encode(value: Any, put: Any, depth: int = 0) -> None:
    # Tag + length-prefixed payload for every node: an injective encoding of the tree.
    if depth > 500:
        raise RecursionError
    if value is None:
        put(b"N")
    elif value is True or value is False:
        put(b"T" if value else b"F")
    elif isinstance(value, int):
        raw = str(value).encode()
        put(b"i" + len(raw).to_bytes(8, "big") + raw)
    elif isinstance(value, float):
        raw = ("nan" if math.isnan(value) else value.hex()).encode()
        put(b"f" + len(raw).to_bytes(8, "big") + raw)
    elif isinstance(value, str):
        raw = value.encode("utf-8", "surrogatepass")
        put(b"s" + len(raw).to_bytes(8, "big") + raw)
    elif isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        put(b"b" + len(raw).to_bytes(8, "big") + raw)
    elif isinstance(value, list | tuple):
        put((b"l" if isinstance(value, list) else b"t") + len(value).to_bytes(8, "big"))
        for item in value:
            _encode(item, put, depth + 1)
    elif isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: (type(kv[0]).__name__, repr(kv[0])))
        put(b"d" + len(items).to_bytes(8, "big"))
        for k, v in items:
            _encode(k, put, depth + 1)
            _encode(v, put, depth + 1)
    elif isinstance(value, set | frozenset):
        encoded = []
        for item in value:
            parts: list[bytes] = []
            _encode(item, parts.append, depth + 1)
            encoded.append(b"".join(parts))
        put(b"S" + len(encoded).to_bytes(8, "big") + b"".join(sorted(encoded)))
    elif isinstance(value, dt.datetime | dt.date | dt.time):
        # isoformat keeps the UTC offset: 12:00+01:00 and 12:00+00:00 are other instants.
        raw = f"{type(value).__name__}:{value.isoformat()}".encode()
        put(b"D" + len(raw).to_bytes(8, "big") + raw)
    elif isinstance(value, dt.timedelta | decimal.Decimal | uuid.UUID | PurePath):
        raw = f"{type(value).__name__}:{value}".encode()
        put(b"O" + len(raw).to_bytes(8, "big") + raw)
    elif isinstance(value, enum.Enum):
        raw = f"{type(value).__module__}.{type(value).__qualname__}.{value.name}".encode()
        put(b"E" + len(raw).to_bytes(8, "big") + raw)
    else:
        raise ParameterError(
            f"cannot fingerprint a {type(value).__module__}.{type(value).__name__}; use "
            "fingerprint_table for DataFrames/Arrow tables, or return your own DataVersion"
        )


def fingerprint_table(table: Any) -> DataVersion:
    """Fingerprint of a pandas DataFrame or a pyarrow Table, hashing buffers, not Python rows.

    pandas: column names, dtypes and `pandas.util.hash_pandas_object` (index included).
    pyarrow: schema and the Arrow IPC bytes after combining chunks, so chunking does not matter.

    :raises TypeError: neither a DataFrame nor an Arrow table.
    """
    module = type(table).__module__
    hasher = xxhash.xxh3_128()
    if module.startswith("pandas") and hasattr(table, "columns"):
        import pandas as pd

        header = [[str(c), str(t)] for c, t in zip(table.columns, table.dtypes, strict=True)]
        _encode(header, hasher.update, 0)
        hasher.update(pd.util.hash_pandas_object(table, index=True).to_numpy().tobytes())
        return _version(hasher, "pandas")
    if module.startswith("pyarrow") and hasattr(table, "schema"):
        import pyarrow as pa

        combined = table.combine_chunks()
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, combined.schema) as writer:
            for batch in combined.to_batches():
                writer.write_batch(batch)
        hasher.update(memoryview(sink.getvalue()))
        return _version(hasher, "arrow")
    raise TypeError(
        f"fingerprint_table takes a pandas DataFrame or a pyarrow Table, not {module}.{type(table).__name__}"
    )
