"""Code versions: explicit strings, or `auto` = a hash of the function's normalized source."""

from __future__ import annotations

import ast
import hashlib
import inspect
import textwrap
import types
from collections.abc import Callable
from typing import Any, Final

from ._versions import length_prefixed
from .errors import InvalidCodeVersion

__all__ = ["AUTO", "MAX_CODE_VERSION_LENGTH", "code_version_of", "resolve_code_version"]

AUTO: Final = "auto"
MAX_CODE_VERSION_LENGTH: Final = 255


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
    if code_version != code_version.strip() or any(ord(c) < 32 for c in code_version):
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
    """Hash of the normalized AST of `fn` and of the module-local functions it calls.

    Comments, docstrings, formatting and decorators do not count; renaming a local variable
    or editing a helper in the same module does. Functions from other modules are not followed
    (their packages have versions of their own).

    :raises InvalidCodeVersion: the source cannot be read (built-ins, REPL, lambdas in a
        shared line); pass an explicit code version then.
    """
    root = inspect.unwrap(fn)
    fields: list[bytes] = [b"insync-auto-1"]
    seen: set[int] = set()
    pending: list[types.FunctionType] = [_as_function(root)]
    while pending:
        func = pending.pop()
        if id(func) in seen:
            continue
        seen.add(id(func))
        tree = _normalized_tree(func)
        fields += [func.__qualname__.encode(), ast.dump(tree, include_attributes=False).encode()]
        pending.extend(_module_local_callees(func, tree))
    return hashlib.sha256(length_prefixed(*fields)).hexdigest()[:16]


def _as_function(fn: object) -> types.FunctionType:
    func = getattr(fn, "__func__", fn)  # bound methods
    if not isinstance(func, types.FunctionType):
        raise InvalidCodeVersion(
            f"code_version='auto' needs a Python function, got {type(fn).__name__} {fn!r}; "
            "pass an explicit code version"
        )
    return func


def _normalized_tree(func: types.FunctionType) -> ast.AST:
    try:
        source = textwrap.dedent(inspect.getsource(func))
        module = ast.parse(source)
    except (OSError, TypeError, SyntaxError) as exc:
        raise InvalidCodeVersion(
            f"cannot read the source of {func.__module__}.{func.__qualname__} for "
            f"code_version='auto' ({exc}); pass an explicit code version such as 'v1'"
        ) from exc
    node = module.body[0] if module.body else None
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        raise InvalidCodeVersion(
            f"code_version='auto' cannot isolate the source of {func.__qualname__} (a lambda?); "
            "define it with `def` or pass an explicit code version"
        )
    node.decorator_list = []  # orchestration settings, not computation
    node.name = ""  # the qualname is hashed separately; renaming via decorator aliasing is noise
    _strip_docstrings(node)
    return node


def _strip_docstrings(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]


def _module_local_callees(func: types.FunctionType, tree: ast.AST) -> list[types.FunctionType]:
    """Functions defined in the same module that `func` names (calls or passes along)."""
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    found = []
    for name in sorted(names):
        target = func.__globals__.get(name)
        target = getattr(target, "__wrapped__", target)
        if isinstance(target, types.FunctionType) and target.__module__ == func.__module__:
            found.append(target)
    return found
