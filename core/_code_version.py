"""Code versions: explicit strings, or `auto` = a hash of all the user's code a function reaches.

`auto` hashes the normalized source (AST without comments, docstrings, formatting or the
function's decorators) of the function and of everything it reads in the user's own project:
helper functions and classes (also through imported project modules), methods reached through
`self`/`cls`/`super()`, and the values of module constants, closure variables and defaults.
Code from the standard library, from installed packages (site-packages/dist-packages) and from
insync itself is named, not followed: those packages carry versions of their own.

What cannot be followed (`getattr` with a computed name, `eval`, an object with no stable
encoding, a global missing when the hash is taken) is reported in `CodeAnalysis.unresolved` and
logged once per function on the `insync` logger; reads of inputs insync cannot see (environment,
clock, randomness, run context) are reported in `CodeAnalysis.unseen_reads`.

This module holds the public face, the analyzer and the encoding of values; where code lives and
what its source reads (project detection, parsing, shapes, unseen-read patterns) is in
`_code_source`.
"""

from __future__ import annotations

import builtins
import dataclasses
import datetime
import enum
import functools
import hashlib
import inspect
import logging
import math
import re
import threading
import types
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

from ._code_source import (
    _canonical,
    _class_home,
    _class_shape,
    _function_shape,
    _matches,
    _Patterns,
    _patterns,
    _Project,
    _top_package,
)
from ._versions import length_prefixed
from .errors import InvalidCodeVersion

__all__ = [
    "AUTO",
    "MAX_CODE_VERSION_LENGTH",
    "UNSEEN_READS",
    "CodeAnalysis",
    "analyze_code",
    "code_version_of",
    "resolve_code_version",
]

AUTO: Final = "auto"
MAX_CODE_VERSION_LENGTH: Final = 255
# Reads of inputs no adapter can see, matched on dotted names as written or as resolved
# (`from os import getenv` resolves to `os.getenv`); `x.*` matches any attribute of `x`.
UNSEEN_READS: Final = (
    "date.today",
    "datetime.now",
    "datetime.today",
    "datetime.utcnow",
    "os.environ",
    "os.environ.get",
    "os.getenv",
    "random.*",
    "time.time",
    "uuid.uuid4",
)

_FORMAT: Final = b"insync-auto-2"
_LOG: Final = logging.getLogger("insync")
# Module attributes that describe where the code lives, not what it computes: hashing
# `__file__` would give each checkout (scheduler, worker) its own version.
_MODULE_DUNDERS: Final = frozenset(
    {
        "__builtins__",
        "__cached__",
        "__doc__",
        "__file__",
        "__loader__",
        "__name__",
        "__package__",
        "__path__",
        "__spec__",
    }
)
_BUILTIN_CALLABLES: Final = (
    types.BuiltinFunctionType,
    types.WrapperDescriptorType,
    types.MethodWrapperType,
    types.MethodDescriptorType,
    types.ClassMethodDescriptorType,
)
_TEXT_VALUE_TYPES: Final = frozenset(
    {
        ("decimal", "Decimal"),
        ("fractions", "Fraction"),
        ("uuid", "UUID"),
        ("pathlib", "PurePath"),
        ("pathlib", "PurePosixPath"),
        ("pathlib", "PureWindowsPath"),
        ("pathlib", "Path"),
        ("pathlib", "PosixPath"),
        ("pathlib", "WindowsPath"),
        ("zoneinfo", "ZoneInfo"),
        ("datetime", "timezone"),
    }
)


@dataclass(frozen=True, slots=True)
class CodeAnalysis:
    """What `code_version="auto"` found in a function and the project code it reaches.

    `version`: the code version, 16 hex characters.
    `unresolved`: names that could not be followed (dynamic dispatch, `getattr` with a computed
    name, objects without a stable encoding, globals missing when hashed); edits behind them do
    not change `version`, so declare an explicit code version if they matter.
    `unseen_reads`: dotted names of inputs read in the code that insync cannot see (environment,
    clock, randomness, run context), each once, sorted.
    """

    version: str
    unresolved: tuple[str, ...] = ()
    unseen_reads: tuple[str, ...] = ()


def resolve_code_version(code_version: str | None, fn: Callable[..., Any] | None = None) -> str | None:
    """Validate an explicit code version, or compute it when it is `"auto"`.

    `None` stays `None` (unknown: the run id stands in and the step is never skipped).

    :raises InvalidCodeVersion: not a string, empty, too long, containing control characters, or
        `"auto"` without a function whose source can be read.
    """
    if code_version is None:
        return None
    if not isinstance(code_version, str):
        raise InvalidCodeVersion(
            f"code version must be a string, not {type(code_version).__name__} {code_version!r}; "
            f"write code_version={str(code_version)!r}"
        )
    if code_version == AUTO:
        if fn is None:
            raise InvalidCodeVersion(
                "code_version='auto' needs the function whose source defines the version"
            )
        return code_version_of(fn)
    if not code_version.strip():
        raise InvalidCodeVersion(
            "code version is empty; give a string like 'v1', 'auto', or None for unknown"
        )
    if code_version != code_version.strip() or any(
        ord(c) < 32 or 0xD800 <= ord(c) <= 0xDFFF for c in code_version
    ):
        raise InvalidCodeVersion(
            f"code version {code_version!r} has surrounding spaces or control characters; "
            f"write {code_version.strip()!r}"
        )
    if len(code_version) > MAX_CODE_VERSION_LENGTH:
        raise InvalidCodeVersion(
            f"code version is {len(code_version)} characters long (at most "
            f"{MAX_CODE_VERSION_LENGTH}); use a short tag or a hash"
        )
    return code_version


def code_version_of(fn: Callable[..., Any]) -> str:
    """The `auto` code version of `fn`: `analyze_code(fn).version`.

    :raises InvalidCodeVersion: the source of `fn` cannot be read (built-ins, REPL, lambdas in
        a shared line); pass an explicit code version then.
    """
    return analyze_code(fn).version


def analyze_code(fn: Callable[..., Any], *, unseen: Iterable[str] = ()) -> CodeAnalysis:
    """Hash `fn` and the project code and values it reads; report what it cannot follow.

    Comments, docstrings, formatting and the decorators of functions do not count; renaming a
    local variable, editing a helper (in the same module or an imported project module), a
    method called through `self`, a class used by name, a module constant or a default value
    does. `unseen` adds dotted names (`"Variable.get"`, `"prefect.runtime"`) or bare names
    (`"get_current_context"`) to `UNSEEN_READS`.

    Parsing is cached per function and class object; names and values are resolved again at
    every call, so a constant rebound after the first call still counts.

    :raises InvalidCodeVersion: the source of `fn` cannot be read (built-ins, REPL, lambdas in
        a shared line); pass an explicit code version then.
    :raises ConfigError: an entry of `unseen` is not a dotted name.
    """
    patterns = _patterns((*UNSEEN_READS, *unseen))
    root, owner = _as_function(fn)
    analyzer = _Analyzer(root, patterns)
    version = analyzer.run(root, owner)
    unresolved = tuple(sorted(analyzer.unresolved))
    if unresolved:
        _log_once(root, unresolved)
    return CodeAnalysis(version, unresolved, tuple(sorted(analyzer.unseen)))


# --- The root function -------------------------------------------------------------------------


def _as_function(fn: object) -> tuple[types.FunctionType, type | None]:
    """The plain function behind `fn` and, for a bound method, the class it was bound through."""
    try:
        unwrapped = inspect.unwrap(fn)  # type: ignore[arg-type]
    except ValueError:  # a __wrapped__ loop
        unwrapped = fn
    owner: type | None = None
    if isinstance(unwrapped, types.MethodType):
        bound = unwrapped.__self__
        owner = bound if isinstance(bound, type) else type(bound)
        unwrapped = unwrapped.__func__
    if not isinstance(unwrapped, types.FunctionType):
        raise InvalidCodeVersion(
            f"code_version='auto' needs a Python function, got {type(fn).__name__} {fn!r}; "
            "pass an explicit code version"
        )
    return unwrapped, owner if owner is not None else _owner_of(unwrapped)


def _owner_of(func: types.FunctionType) -> type | None:
    """The class a function is defined in, found through its qualified name (not in functions)."""
    parts = func.__qualname__.split(".")
    if len(parts) < 2 or "<locals>" in parts:
        return None
    obj: object = func.__globals__.get(parts[0])
    for part in parts[1:-1]:
        obj = inspect.getattr_static(obj, part, None)
    return obj if isinstance(obj, type) else None


_LOGGED: weakref.WeakKeyDictionary[types.FunctionType, tuple[str, ...]] = weakref.WeakKeyDictionary()
_LOGGED_LOCK: Final = threading.Lock()


def _log_once(root: types.FunctionType, unresolved: tuple[str, ...]) -> None:
    with _LOGGED_LOCK:
        if _LOGGED.get(root) == unresolved:
            return
        _LOGGED[root] = unresolved
    _LOG.info(
        "code_version auto for %s.%s: cannot follow names %s (dynamic); declare an explicit code "
        "version if they matter",
        root.__module__,
        root.__qualname__,
        ", ".join(unresolved),
    )


# --- Resolution and encoding ---------------------------------------------------------------------


class _Unencodable(Exception):
    """A value without a stable, injective encoding."""


def _lp(raw: bytes) -> bytes:
    return len(raw).to_bytes(8, "big") + raw


class _Analyzer:
    """One analysis: visits units (functions, classes) breadth first and encodes what they read.

    Units are numbered in order of discovery, which follows sorted names, so references between
    units are indices and the result does not depend on module names (a module loaded twice under
    two names hashes the same).
    """

    def __init__(self, root: types.FunctionType, patterns: _Patterns) -> None:
        self.patterns = patterns
        self.project = _Project(_top_package(root.__module__))
        self.units: list[tuple[types.FunctionType | type, type | None]] = []
        self.index: dict[tuple[int, int], int] = {}
        self.unresolved: set[str] = set()
        self.unseen: set[str] = set()
        self._active: set[int] = set()
        self._encoded: dict[int, tuple[object, bytes | None]] = {}

    def run(self, root: types.FunctionType, owner: type | None) -> str:
        _function_shape(root)  # raises InvalidCodeVersion for the root, unlike for helpers
        self._unit(root, owner)
        records = [_FORMAT]
        position = 0
        while position < len(self.units):
            obj, unit_owner = self.units[position]
            position += 1
            try:
                if isinstance(obj, type):
                    records.append(self._class_record(obj))
                else:
                    records.append(self._function_record(obj, unit_owner))
            except Exception as exc:  # InvalidCodeVersion, or code too odd to analyse: reported
                _LOG.debug("code_version auto cannot analyse %s", obj.__qualname__, exc_info=exc)
                self.unresolved.add(f"{obj.__module__}.{obj.__qualname__}")
                records.append(b"?" + obj.__qualname__.encode())
        return hashlib.sha256(length_prefixed(*records)).hexdigest()[:16]

    # Units

    def _unit(self, obj: types.FunctionType | type, owner: type | None) -> int:
        key = (id(obj), id(owner))
        if key not in self.index:
            self.index[key] = len(self.units)
            self.units.append((obj, owner))
        return self.index[key]

    # Records

    def _function_record(self, func: types.FunctionType, owner: type | None) -> bytes:
        shape = _function_shape(func)
        fields = [b"F", func.__qualname__.encode(), shape.tree, self._defaults(func)]
        lookup = functools.partial(_lookup_in_function, func)
        for chain in shape.chains:
            fields += [b"g:" + ".".join(chain).encode(), self._bind_chain(lookup, chain)]
        if owner is None and (shape.self_attrs or shape.super_attrs) and _looks_like_method(func):
            self.unresolved.update(f"self.{name}" for name in shape.self_attrs)
            self.unresolved.update(f"super().{name}" for name in shape.super_attrs)
        elif owner is not None:
            for name in shape.self_attrs:
                bound = self._bind_class_attribute(owner.__mro__, name, owner, f"self.{name}")
                if bound is not None:
                    fields += [b"s:" + name.encode(), bound]
            defining = _owner_of(func) or owner
            mro = owner.__mro__ if defining in owner.__mro__ else defining.__mro__
            after = mro[mro.index(defining) + 1 :]
            for name in shape.super_attrs:
                bound = self._bind_class_attribute(after, name, owner, f"super().{name}")
                fields += [b"p:" + name.encode(), bound if bound is not None else b"?"]
                if bound is None:
                    self.unresolved.add(f"super().{name}")
        self.unresolved.update(shape.dynamic)
        return length_prefixed(*fields)

    def _class_record(self, cls: type) -> bytes:
        shape = _class_shape(cls)
        fields = [b"C", cls.__qualname__.encode(), shape.tree]
        lookup = functools.partial(_lookup_in_namespace, _class_home(cls)[1] or {})
        for chain in shape.chains:
            fields += [b"g:" + ".".join(chain).encode(), self._bind_chain(lookup, chain)]
        self.unresolved.update(shape.dynamic)
        return length_prefixed(*fields)

    def _defaults(self, func: types.FunctionType) -> bytes:
        """The default values themselves: `def f(x=LIMIT)` changes when `LIMIT` does."""
        code = func.__code__
        out = bytearray()
        defaults = func.__defaults__ or ()
        names = code.co_varnames[code.co_argcount - len(defaults) : code.co_argcount]
        items = [*zip(names, defaults, strict=True), *sorted((func.__kwdefaults__ or {}).items())]
        out += len(items).to_bytes(8, "big")
        for name, value in items:
            out += _lp(name.encode()) + self._encode_or_mark(value, f"{func.__qualname__}({name}=...)")
        return bytes(out)

    def _bind_chain(self, lookup: Callable[[str], tuple[bool, object]], chain: tuple[str, ...]) -> bytes:
        root = chain[0]
        found, obj = lookup(root)
        self._check_unseen(chain, obj if found else None)
        if not found:
            self.unresolved.add(root)
            return b"?"
        if root in _MODULE_DUNDERS:
            return b"_"
        if isinstance(obj, types.ModuleType) and self.project.owns_module(obj):
            # `import mylib.helpers as h; h.clean(x)`: follow `h.clean`.
            depth = 1
            while isinstance(obj, types.ModuleType) and depth < len(chain):
                try:
                    obj = getattr(obj, chain[depth])
                except Exception:  # AttributeError, or a failing module __getattr__
                    self.unresolved.add(".".join(chain[: depth + 1]))
                    return b"?"
                depth += 1
            if isinstance(obj, types.ModuleType):
                return b"M" if self.project.owns_module(obj) else b"m" + _lp(obj.__name__.encode())
            return b"a" + depth.to_bytes(8, "big") + self._encode_or_mark(obj, ".".join(chain[:depth]))
        return self._encode_or_mark(obj, root)

    def _bind_class_attribute(
        self, mro: tuple[type, ...], name: str, owner: type, label: str
    ) -> bytes | None:
        """An attribute found on the class (a method, a class constant); None for instance
        state, which is the object's data like any argument's, not code."""
        for klass in mro:
            if name in vars(klass):
                attribute = vars(klass)[name]
                break
        else:
            return None
        if isinstance(attribute, types.FunctionType):
            return self._function_ref(attribute, owner, dry=False)
        if isinstance(attribute, staticmethod | classmethod) and isinstance(
            attribute.__func__, types.FunctionType
        ):
            return self._function_ref(attribute.__func__, owner, dry=False)
        if isinstance(attribute, property):
            out = bytearray(b"P")
            for accessor in (attribute.fget, attribute.fset, attribute.fdel):
                if isinstance(accessor, types.FunctionType):
                    out += self._function_ref(accessor, owner, dry=False)
                else:
                    out += self._encode_or_mark(accessor, label)
            return bytes(out)
        return self._encode_or_mark(attribute, label)

    def _check_unseen(self, chain: tuple[str, ...], obj: object) -> None:
        candidates = [chain]
        canonical = _canonical(obj) if obj is not None else None
        if canonical is not None:
            candidates.append((*canonical.split("."), *chain[1:]))
        best = [match for dotted in candidates for match in _matches(dotted, self.patterns)]
        if best:
            width = max(w for w, _ in best)
            self.unseen.update(name for w, name in best if w == width)

    # Values

    def _encode_or_mark(self, value: object, label: str) -> bytes:
        """The value's encoding, or a mark and `label` in `unresolved`. A value read by many
        helpers (a shared table) is encoded once per analysis."""
        key = id(value)
        if key in self._encoded:
            encoded = self._encoded[key][1]
        else:
            out = bytearray()
            try:
                self._encode(value, out, dry=False)
                encoded = b"v" + bytes(out)
            except Exception:  # _Unencodable, RecursionError, or a user object's failing hook
                encoded = None
            finally:
                self._active.clear()
            self._encoded[key] = (value, encoded)  # the value is kept so its id stays its own
        if encoded is None:
            self.unresolved.add(label)
            return b"?"
        return encoded

    def _function_ref(self, func: types.FunctionType, owner: type | None, dry: bool) -> bytes:
        if not self.project.owns_function(func):
            return b"x" + _lp(f"{func.__module__}.{func.__qualname__}".encode())
        if dry:  # a sort key inside a set: no discovery, so the order of a set does not matter
            return b"c" + _lp(f"{func.__module__}.{func.__qualname__}".encode())
        return b"c" + self._unit(func, owner).to_bytes(8, "big")

    def _class_ref(self, cls: type, dry: bool) -> bytes:
        if not self.project.owns_class(cls):
            return b"x" + _lp(f"{cls.__module__}.{cls.__qualname__}".encode())
        if dry:
            return b"k" + _lp(f"{cls.__module__}.{cls.__qualname__}".encode())
        return b"k" + self._unit(cls, None).to_bytes(8, "big")

    def _encode(self, value: object, out: bytearray, dry: bool) -> None:
        """Tag + length-prefixed payload for every node, as `_fingerprint._encode`, extended to
        code references, sets and the common value types of module constants. Each kind has its
        own tag, so encodings are prefix-free and can be concatenated.

        :raises _Unencodable: no stable encoding (an address would show in its repr).
        """
        kind = type(value)
        if value is None:
            out += b"N"
        elif kind is bool:
            out += b"T" if value else b"F"
        elif isinstance(value, int) and kind is int:
            out += b"i" + _lp(value.to_bytes((value.bit_length() + 8) // 8, "big", signed=True))
        elif isinstance(value, float) and kind is float:
            out += b"f" + _lp(("nan" if math.isnan(value) else value.hex()).encode())
        elif isinstance(value, complex) and kind is complex:
            out += b"j"
            self._encode(value.real, out, dry)
            self._encode(value.imag, out, dry)
        elif isinstance(value, str) and kind is str:
            out += b"s" + _lp(value.encode("utf-8", "surrogatepass"))
        elif isinstance(value, bytes | bytearray) and kind in (bytes, bytearray):
            out += (b"b" if kind is bytes else b"y") + _lp(bytes(value))
        elif isinstance(value, type):
            out += self._class_ref(value, dry)
        elif isinstance(value, types.FunctionType) or (callable(value) and hasattr(value, "__wrapped__")):
            self._encode_callable(value, out, dry)
        elif isinstance(value, types.ModuleType):
            out += b"M" if self.project.owns_module(value) else b"m" + _lp(value.__name__.encode())
        else:
            self._encode_object(value, out, dry)

    def _encode_callable(self, value: object, out: bytearray, dry: bool) -> None:
        try:
            target = inspect.unwrap(value)  # type: ignore[arg-type]
        except ValueError as exc:
            raise _Unencodable from exc
        if isinstance(target, types.FunctionType):
            out += self._function_ref(target, None, dry)
        elif target is not value:
            self._encode(target, out, dry)
        else:
            raise _Unencodable

    def _encode_object(self, value: object, out: bytearray, dry: bool) -> None:
        key = id(value)
        if key in self._active:
            raise _Unencodable  # a container holding itself
        self._active.add(key)
        try:
            self._encode_composite(value, out, dry)
        finally:
            self._active.discard(key)

    def _encode_composite(self, value: object, out: bytearray, dry: bool) -> None:
        kind = type(value)
        if isinstance(value, list | tuple) and kind in (list, tuple):
            out += (b"l" if kind is list else b"t") + len(value).to_bytes(8, "big")
            for item in value:
                self._encode(item, out, dry)
        elif isinstance(value, dict) and kind is dict:
            out += b"d" + len(value).to_bytes(8, "big")  # insertion order: iteration sees it
            for k, v in value.items():
                self._encode(k, out, dry)
                self._encode(v, out, dry)
        elif isinstance(value, set | frozenset) and kind in (set, frozenset):
            keyed = []
            for item in value:
                probe = bytearray()
                self._encode(item, probe, dry=True)
                keyed.append((bytes(probe), item))
            keyed.sort(key=lambda pair: pair[0])
            out += (b"S" if kind is set else b"Z") + len(keyed).to_bytes(8, "big")
            for _, item in keyed:
                self._encode(item, out, dry)
        elif isinstance(value, enum.Enum):
            out += b"e" + self._class_ref(type(value), dry)
            if value.name is not None:
                out += _lp(value.name.encode())
            else:  # a composite flag without a name: its value tells the members
                self._encode(value.value, out, dry)
        elif isinstance(value, re.Pattern):
            out += b"r"
            self._encode(value.pattern, out, dry)
            self._encode(value.flags, out, dry)
        elif isinstance(value, types.MethodType):
            bound = value.__self__
            owner = bound if isinstance(bound, type) else type(bound)
            func = value.__func__
            out += b"B"
            if isinstance(func, types.FunctionType):
                out += self._function_ref(func, owner, dry)
            else:
                self._encode(func, out, dry)
            self._encode(bound, out, dry)
        elif isinstance(value, functools.partial):
            out += b"p"
            self._encode(value.func, out, dry)
            self._encode(tuple(value.args), out, dry)
            self._encode(dict(value.keywords), out, dry)
        elif isinstance(value, staticmethod | classmethod):
            out += b"h"
            self._encode(value.__func__, out, dry)
        elif isinstance(value, _BUILTIN_CALLABLES):
            name = _canonical(value) or getattr(value, "__qualname__", None)
            if not isinstance(name, str):
                raise _Unencodable
            out += b"x" + _lp(name.encode())
        elif isinstance(value, logging.Logger):
            out += b"L"  # where messages go, not what is computed
        else:
            self._encode_record(value, out, dry)

    def _encode_record(self, value: object, out: bytearray, dry: bool) -> None:
        kind = type(value)
        if dataclasses.is_dataclass(value):
            fields = dataclasses.fields(value)
            out += b"D" + self._class_ref(kind, dry) + len(fields).to_bytes(8, "big")
            for field in fields:
                out += _lp(field.name.encode())
                self._encode(getattr(value, field.name), out, dry)
        elif isinstance(value, tuple) and isinstance(getattr(kind, "_fields", None), tuple):
            out += b"n" + self._class_ref(kind, dry)  # a named tuple
            self._encode(tuple(tuple.__iter__(value)), out, dry)
        elif isinstance(value, datetime.date | datetime.time):
            out += b"O" + self._class_ref(kind, dry) + _lp(value.isoformat().encode())
        elif isinstance(value, datetime.timedelta):
            out += b"W" + self._class_ref(kind, dry)
            self._encode((value.days, value.seconds, value.microseconds), out, dry)
        elif (kind.__module__, kind.__qualname__) in _TEXT_VALUE_TYPES:
            out += b"X" + _lp(f"{kind.__module__}.{kind.__qualname__}".encode()) + _lp(str(value).encode())
        elif isinstance(value, range):
            out += b"R"
            self._encode((value.start, value.stop, value.step), out, dry)
        elif _is_numeric_array(value):
            array: Any = value
            out += b"A" + _lp(str(array.dtype.str).encode())
            self._encode(tuple(array.shape), out, dry)
            out += _lp(bytes(array.tobytes()))
        else:
            self._encode_subclass(value, out, dry)

    def _encode_subclass(self, value: object, out: bytearray, dry: bool) -> None:
        """A subclass of a plain type (`class Color(str)`): the class, then the plain value."""
        plain: object
        if isinstance(value, str):
            plain = str.__str__(value)
        elif isinstance(value, bool | int):
            plain = int.__int__(value)
        elif isinstance(value, float):
            plain = float.__float__(value)
        elif isinstance(value, bytes):
            plain = bytes.__bytes__(value)
        elif isinstance(value, tuple):
            plain = tuple(tuple.__iter__(value))
        elif isinstance(value, list):
            plain = list(list.__iter__(value))
        elif isinstance(value, dict):
            plain = dict(dict.items(value))
        elif isinstance(value, frozenset):
            plain = frozenset(frozenset.__iter__(value))
        elif isinstance(value, set):
            plain = set(set.__iter__(value))
        else:
            raise _Unencodable
        out += b"u" + self._class_ref(type(value), dry)
        self._encode(plain, out, dry)


def _is_numeric_array(value: object) -> bool:
    """A numpy array of plain numbers (object arrays hold pointers, never stable bytes)."""
    if type(value).__module__ != "numpy" or type(value).__name__ != "ndarray":
        return False
    dtype = getattr(value, "dtype", None)
    return dtype is not None and not bool(getattr(dtype, "hasobject", True))


def _looks_like_method(func: types.FunctionType) -> bool:
    parts = func.__qualname__.split(".")
    return len(parts) >= 2 and parts[-2] != "<locals>"


def _lookup_in_function(func: types.FunctionType, name: str) -> tuple[bool, object]:
    """A name as the function sees it: its closure, its module's globals, then built-ins."""
    code = func.__code__
    if name in code.co_freevars and func.__closure__ is not None:
        try:
            return True, func.__closure__[code.co_freevars.index(name)].cell_contents
        except ValueError:  # an empty cell: assigned later in the enclosing function
            return False, None
    return _lookup_in_namespace(func.__globals__, name)


def _lookup_in_namespace(namespace: dict[str, Any], name: str) -> tuple[bool, object]:
    if name in namespace:
        return True, namespace[name]
    spec = namespace.get("__builtins__", builtins)
    names = spec if isinstance(spec, dict) else vars(spec)
    if name in names:
        return True, names[name]
    return False, None
