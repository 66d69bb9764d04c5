"""The value cache: last materialized values by asset and data version, on any fsspec URL.

A miss or an unreadable entry means "run the step", never a crash. Writes are atomic.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import uuid
from typing import Any, Final, Protocol
from urllib.parse import quote

import fsspec
from fsspec.implementations.local import LocalFileSystem

from ._keys import AssetKey, CoercibleToAssetKey
from ._settings import resolve_settings
from ._versions import DataVersion
from .errors import ConfigError, SerializationError

__all__ = ["NO_VALUE", "JsonSerializer", "PickleSerializer", "Serializer", "ValueCache"]

log = logging.getLogger("insync")


class _NoValue:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_VALUE"

    def __bool__(self) -> bool:
        return False


NO_VALUE: Final = _NoValue()


class Serializer(Protocol):
    """Turns values into bytes and back; `name` becomes the file suffix."""

    name: str

    def dumps(self, value: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


class PickleSerializer:
    name = "pickle"

    def dumps(self, value: Any) -> bytes:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)

    def loads(self, data: bytes) -> Any:
        return pickle.loads(data)


class JsonSerializer:
    name = "json"

    def dumps(self, value: Any) -> bytes:
        return json.dumps(value, sort_keys=True).encode()

    def loads(self, data: bytes) -> Any:
        return json.loads(data)


_SERIALIZERS: Final[dict[str, type[Serializer]]] = {"pickle": PickleSerializer, "json": JsonSerializer}


class ValueCache:
    """Values keyed by (asset key, data version) under a folder or fsspec URL.

    `ValueCache()` uses explicit url > $INSYNC_CACHE_URL > `<INSYNC_HOME or ./.insync>/values`.
    Use an object-store URL (`s3://bucket/insync`) when workers run on several machines.

    :raises ConfigError: unknown serializer name or unusable URL.
    """

    def __init__(self, url: str | None = None, *, serializer: str | Serializer = "pickle") -> None:
        resolved = resolve_settings(cache_url=url).cache_url
        if isinstance(serializer, str):
            if serializer not in _SERIALIZERS:
                raise ConfigError(
                    f"unknown serializer {serializer!r}; use one of {sorted(_SERIALIZERS)} "
                    "or an object with name/dumps/loads"
                )
            serializer = _SERIALIZERS[serializer]()
        self.serializer: Serializer = serializer
        try:
            self.fs, self.root = fsspec.core.url_to_fs(resolved)
        except (ValueError, ImportError) as exc:
            raise ConfigError(f"cannot use value cache URL {resolved!r}: {exc}") from exc
        self.url = resolved

    def __repr__(self) -> str:
        return f"ValueCache({self.url!r}, serializer={self.serializer.name!r})"

    def path(self, key: CoercibleToAssetKey, data_version: DataVersion, partition: str | None = None) -> str:
        """Where the value lives: quoted key parts, then a hash of the data version (and of the
        partition: two partitions never share an entry, even with equal user data versions)."""
        parts = [quote(part, safe="") for part in AssetKey.parse(key).parts]
        named = data_version.value if not partition else f"{len(partition)}:{partition}:{data_version.value}"
        digest = hashlib.sha256(named.encode("utf-8", "surrogatepass")).hexdigest()[:40]
        return "/".join([self.root.rstrip("/"), *parts, f"{digest}.{self.serializer.name}"])

    def serialize(self, key: CoercibleToAssetKey, value: Any) -> bytes:
        """:raises SerializationError: the serializer cannot encode the value."""
        try:
            return self.serializer.dumps(value)
        except Exception as exc:
            raise SerializationError(
                f"cannot cache the value of {AssetKey.parse(key)} with the {self.serializer.name} "
                f"serializer ({type(exc).__name__}: {exc}); nothing was recorded. Return a "
                "serializable value, pick another serializer, or run without a value cache"
            ) from exc

    def get(self, key: CoercibleToAssetKey, data_version: DataVersion, partition: str | None = None) -> Any:
        """The cached value, or NO_VALUE when it is missing or cannot be read."""
        path = self.path(key, data_version, partition)
        try:
            with self.fs.open(path, "rb") as fh:
                data = fh.read()
        except FileNotFoundError:
            return NO_VALUE
        except Exception as exc:  # unreachable storage: recompute rather than fail the run
            log.warning("value cache: cannot read %s (%s); the step will run", path, exc)
            return NO_VALUE
        try:
            return self.serializer.loads(data)
        except Exception as exc:
            log.warning("value cache: entry %s is unreadable (%s); the step will run", path, exc)
            return NO_VALUE

    def put(
        self, key: CoercibleToAssetKey, data_version: DataVersion, value: Any, partition: str | None = None
    ) -> None:
        """Serialize and store a value atomically. :raises SerializationError:"""
        self.put_bytes(key, data_version, self.serialize(key, value), partition)

    def put_bytes(
        self, key: CoercibleToAssetKey, data_version: DataVersion, data: bytes, partition: str | None = None
    ) -> None:
        """Store already serialized bytes: temp file + rename locally, one PUT on object stores."""
        path = self.path(key, data_version, partition)
        if isinstance(self.fs, LocalFileSystem):
            folder = os.path.dirname(path)
            os.makedirs(folder, exist_ok=True)
            temp = os.path.join(folder, f".tmp-{uuid.uuid4().hex}")
            try:
                with open(temp, "wb") as fh:
                    fh.write(data)
                os.replace(temp, path)
            finally:
                if os.path.exists(temp):
                    os.unlink(temp)
        else:
            self.fs.pipe_file(path, data)
