"""The value cache: last materialized values by asset and data version, on any fsspec URL.

A miss or an unreadable entry means "run the step", never a crash. Writes are atomic.

Whoever can write to the cache location must not be able to run code in the workers that read
it (a planted pickle runs on load): every entry carries an HMAC-SHA256 over its asset, partition,
data version, serializer and bytes, keyed by $INSYNC_CACHE_KEY or by a key file created in the
insync home (`cache.key`, mode 0600). An entry that does not verify is a miss with a warning and
is never deserialized. Workers sharing one cache (object storage) share the key through
$INSYNC_CACHE_KEY.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import pickle
import secrets
import time
import uuid
from pathlib import Path
from typing import Any, Final, Protocol
from urllib.parse import quote

import fsspec
from fsspec.implementations.local import LocalFileSystem

from ._keys import AssetKey, CoercibleToAssetKey
from ._settings import resolve_settings
from ._versions import DataVersion, length_prefixed
from .errors import ConfigError, SerializationError

__all__ = ["NO_VALUE", "JsonSerializer", "PickleSerializer", "Serializer", "ValueCache"]

log = logging.getLogger("insync")


class _NoValue:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_VALUE"

    def __bool__(self) -> bool:
        # A cached 0, "" or empty frame is a value: truthiness would confuse it with a miss.
        raise TypeError("NO_VALUE has no truth value; compare with `value is NO_VALUE`")


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
    """JSON, for values that must be readable outside Python. A value JSON would change (a tuple,
    an int dict key, NaN) is refused when recorded, so a skip never returns something else."""

    name = "json"

    def dumps(self, value: Any) -> bytes:
        data = json.dumps(value, sort_keys=True, allow_nan=False).encode()
        if not _same(json.loads(data), value):
            raise ValueError(
                "the value does not survive a JSON round trip unchanged (tuples become lists, dict "
                "keys become strings); return lists and string keys, or use the pickle serializer"
            )
        return data

    def loads(self, data: bytes) -> Any:
        return json.loads(data)


def _same(decoded: Any, value: Any) -> bool:
    """Equal and of the same types all the way down (JSON turns 1.0 into 1.0 but (1,) into [1])."""
    if type(decoded) is not type(value):
        return isinstance(value, float) and isinstance(decoded, float)
    if isinstance(value, dict):
        return decoded.keys() == value.keys() and all(_same(decoded[k], value[k]) for k in value)
    if isinstance(value, list):
        return len(decoded) == len(value) and all(_same(a, b) for a, b in zip(decoded, value, strict=True))
    return bool(decoded == value)


_SERIALIZERS: Final[dict[str, type[Serializer]]] = {"pickle": PickleSerializer, "json": JsonSerializer}
_MAGIC: Final = b"insync-value-1\n"
_STALE_TEMP_S: Final = 3600.0  # a temp file this old was left by a writer that died mid-put
_KEY_VAR: Final = "INSYNC_CACHE_KEY"


class ValueCache:
    """Values keyed by (asset key, data version) under a folder or fsspec URL.

    `ValueCache()` uses explicit url > $INSYNC_CACHE_URL > `<INSYNC_HOME or ./.insync>/values`.
    Use an object-store URL (`s3://bucket/insync`) when workers run on several machines.

    :raises ConfigError: unknown serializer name or unusable URL.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        serializer: str | Serializer = "pickle",
        key: str | bytes | None = None,
    ) -> None:
        settings = resolve_settings(cache_url=url)
        resolved = settings.cache_url
        self._key = _signing_key(key, settings.home)
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
        payload = self._verified(data, key, data_version, partition)
        if payload is None:
            log.warning(
                "value cache: entry %s is not signed with this cache key (written elsewhere, or "
                "tampered with); it was not loaded and the step will run. Workers sharing a cache "
                "share $%s",
                path,
                _KEY_VAR,
            )
            return NO_VALUE
        try:
            return self.serializer.loads(payload)
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
        """Store already serialized bytes, signed: temp file + rename locally, one PUT on object
        stores. Temp files an interrupted writer left behind over an hour ago are removed."""
        path = self.path(key, data_version, partition)
        data = _MAGIC + self._mac(data, key, data_version, partition).encode() + b"\n" + data
        if isinstance(self.fs, LocalFileSystem):
            folder = os.path.dirname(path)
            os.makedirs(folder, exist_ok=True)
            _remove_stale_temps(folder)
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

    def _mac(self, data: bytes, key: CoercibleToAssetKey, version: DataVersion, partition: str | None) -> str:
        named = length_prefixed(
            b"insync-value-1",
            str(AssetKey.parse(key)).encode(),
            (partition or "").encode("utf-8", "surrogatepass"),
            version.value.encode("utf-8", "surrogatepass"),
            self.serializer.name.encode(),
            data,
        )
        return hmac.new(self._key, named, hashlib.sha256).hexdigest()

    def _verified(
        self, entry: bytes, key: CoercibleToAssetKey, version: DataVersion, partition: str | None
    ) -> bytes | None:
        """The payload of a signed entry, or None when it does not verify (never deserialized)."""
        if not entry.startswith(_MAGIC):
            return None
        mac, newline, payload = entry[len(_MAGIC) :].partition(b"\n")
        if not newline:
            return None
        expected = self._mac(payload, key, version, partition).encode()
        return payload if hmac.compare_digest(mac, expected) else None


def _signing_key(explicit: str | bytes | None, home: Path) -> bytes:
    """explicit > $INSYNC_CACHE_KEY > <home>/cache.key (created with mode 0600 when missing)."""
    chosen = explicit if explicit is not None else os.environ.get(_KEY_VAR)
    if chosen:
        return chosen.encode() if isinstance(chosen, str) else bytes(chosen)
    path = home / "cache.key"
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("value cache: cannot read %s (%s); cached values will not be reused", path, exc)
        return secrets.token_bytes(32)
    try:
        home.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_hex(32).encode())
    except FileExistsError:
        pass  # another process created it first: use theirs
    except OSError as exc:
        log.warning("value cache: cannot create %s (%s); set $%s to reuse values", path, exc, _KEY_VAR)
        return secrets.token_bytes(32)
    return path.read_bytes().strip()


def _remove_stale_temps(folder: str) -> None:
    try:
        now = time.time()
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith(".tmp-") and now - entry.stat().st_mtime > _STALE_TEMP_S:
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
    except OSError:
        pass
