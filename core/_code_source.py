"""The source side of `code_version="auto"`: which code is the user's own, and what it reads.

`_code_version` computes the version (the analyzer that follows what a function reaches, and the
encoding of runtime values). Everything here depends only on where code lives and on what its
source text says, never on the values it reads at run time:

- which code is the user's project (followed and hashed) and which is the standard library, an
  installed package or insync itself (named, not followed);
- parsing each source file once, and the `_Shape` of each function or class: its AST dumped
  without names, docstrings, positions or a function's decorators, and the dotted names it reads
  scope by scope (`_Reads`, guided by the symbol table);
- the patterns of unseen reads (`UNSEEN_READS`, `analyze_code(unseen=...)`) and matching reads
  against them.

Kept apart so that each module reads on its own; this module never imports `_code_version`.
"""

from __future__ import annotations

import ast
import collections
import functools
import linecache
import os
import site
import symtable
import sys
import sysconfig
import threading
import types
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from .errors import ConfigError, InvalidCodeVersion

# Calls whose target no name resolution can know.
_DYNAMIC_CALLS: Final = frozenset({"eval", "exec", "globals", "__import__"})
_DYNAMIC_CHAINS: Final = frozenset({("importlib", "import_module")})
_COMPREHENSIONS: Final[dict[type[ast.AST], str]] = {
    ast.ListComp: "listcomp",
    ast.SetComp: "setcomp",
    ast.DictComp: "dictcomp",
    ast.GeneratorExp: "genexpr",
}

# --- Which code is the user's own --------------------------------------------------------------

_CORE_DIR: Final = os.path.dirname(os.path.realpath(__file__)) + os.sep


@functools.cache
def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths[name] for name in ("stdlib", "platstdlib", "purelib", "platlib") if name in paths}
    roots.update(getattr(site, "getsitepackages", list)())
    return tuple(sorted({os.path.realpath(root) + os.sep for root in roots}))


@functools.lru_cache(maxsize=4096)
def _is_library_file(filename: str) -> bool:
    """A file of the standard library, of an installed package, or of insync itself."""
    real = os.path.realpath(filename)
    parts = real.split(os.sep)
    return (
        "site-packages" in parts
        or "dist-packages" in parts
        or real.startswith(_library_roots())
        or real.startswith(_CORE_DIR)
    )


def _is_insync(module: object) -> bool:
    return isinstance(module, str) and (module == "insync" or module.startswith("insync."))


def _top_package(module: object) -> str | None:
    return module.partition(".")[0] if isinstance(module, str) and module else None


@dataclass(frozen=True, slots=True)
class _Project:
    """The user's own code as seen from one root function: its top-level package (even when
    installed into site-packages) and any code outside the libraries; never insync itself."""

    root_package: str | None

    def owns(self, module: object, filename: str | None) -> bool:
        if _is_insync(module):
            return False
        if self.root_package is not None and _top_package(module) == self.root_package:
            return True  # the root's own package, even installed into site-packages
        if filename is None:
            return False
        if filename.startswith("<"):  # exec'd code; followed when its source is registered
            return not filename.startswith("<frozen") and filename in linecache.cache
        return not _is_library_file(filename)

    def owns_function(self, func: types.FunctionType) -> bool:
        return self.owns(func.__module__, func.__code__.co_filename)

    def owns_class(self, cls: type) -> bool:
        if cls.__module__ == "builtins":
            return False
        module = sys.modules.get(cls.__module__)
        if module is not None:
            return self.owns_module(module)
        return self.owns(cls.__module__, _class_home(cls)[0])

    def owns_module(self, module: types.ModuleType) -> bool:
        filename = getattr(module, "__file__", None)
        if not isinstance(filename, str):
            paths = list(getattr(module, "__path__", None) or ())  # a namespace package
            filename = paths[0] if paths and isinstance(paths[0], str) else None
        return self.owns(module.__name__, filename)


# --- Parsing, cached per source file and per function or class ---------------------------------

_Definition = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


@dataclass(frozen=True, slots=True)
class _Shape:
    """What the source of one function or class says, independently of runtime values."""

    code: types.CodeType | None  # the function's code when parsed (a replaced __code__ re-parses)
    tree: bytes  # ast.dump of the normalized definition
    chains: tuple[tuple[str, ...], ...]  # maximal dotted reads rooted at a global name, sorted
    self_attrs: tuple[str, ...]  # attributes read on the first parameter (`self`/`cls`)
    super_attrs: tuple[str, ...]  # attributes read on `super()`
    dynamic: tuple[str, ...]  # calls no name resolution can follow (`getattr(obj, name)`)


@dataclass(frozen=True, slots=True)
class _SourceFile:
    """One parsed source file: a module is parsed once for all the functions read from it."""

    lines: list[str]  # linecache's list: a new list means the file changed
    functions: dict[int, ast.FunctionDef | ast.AsyncFunctionDef]  # by first line, decorators included
    classes: dict[str, list[ast.ClassDef]]  # by qualified name
    tables: dict[tuple[str, int], list[symtable.SymbolTable]]  # every scope by (name, line)
    parents: dict[int, symtable.SymbolTable]  # id(scope) -> enclosing scope


_SHAPES: weakref.WeakKeyDictionary[object, _Shape] = weakref.WeakKeyDictionary()
_FILES: collections.OrderedDict[str, _SourceFile] = collections.OrderedDict()
_FILES_KEPT: Final = 32  # a cache size, not a limit on what is read: a dropped file is re-parsed
_PARSE_LOCK: Final = threading.Lock()
# CPython 3.11 keeps ast.parse's recursion depth in interpreter-wide state (gh-106905): a parse
# paused mid-conversion (a garbage collection running a finalizer that releases the GIL) while
# another thread parses fails with "SystemError: AST constructor recursion depth mismatch".
# Prefect runs tasks in threads, so their code versions are parsed one at a time.
_AST_LOCK: Final = threading.Lock()


def _source_file(filename: str, module_globals: dict[str, Any] | None, name: str) -> _SourceFile:
    """:raises InvalidCodeVersion: the file cannot be read or no longer compiles."""
    linecache.checkcache(filename)
    lines = linecache.getlines(filename, module_globals)
    if not lines:
        raise InvalidCodeVersion(
            f"cannot read the source of {name} for code_version='auto' (no source file "
            f"{filename!r}); pass an explicit code version such as 'v1'"
        )
    with _PARSE_LOCK:
        cached = _FILES.get(filename)
        if cached is not None and cached.lines is lines:
            _FILES.move_to_end(filename)
            return cached
    text = "".join(lines)
    try:
        with _AST_LOCK:
            tree = ast.parse(text, filename)
        top = symtable.symtable(text, filename, "exec")
    except (SyntaxError, ValueError) as exc:
        raise InvalidCodeVersion(
            f"cannot parse the source of {name} for code_version='auto' ({exc}); pass an "
            "explicit code version such as 'v1'"
        ) from exc
    parsed = _SourceFile(lines, {}, {}, {}, {})
    _index_definitions(tree.body, [], parsed)
    _index_scopes(top, parsed)
    with _PARSE_LOCK:
        _FILES[filename] = parsed
        while len(_FILES) > _FILES_KEPT:
            _FILES.popitem(last=False)
    return parsed


def _index_definitions(statements: list[ast.stmt], path: list[str], parsed: _SourceFile) -> None:
    """Definitions are statements: only statement lists are searched, not expressions."""
    for child in statements:
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
            parsed.functions.setdefault(first, child)
            _index_definitions(child.body, [*path, child.name, "<locals>"], parsed)
            continue
        if isinstance(child, ast.ClassDef):
            parsed.classes.setdefault(".".join([*path, child.name]), []).append(child)
            _index_definitions(child.body, [*path, child.name], parsed)
            continue
        for field in ("body", "orelse", "finalbody"):
            block = getattr(child, field, None)
            if isinstance(block, list):
                _index_definitions(block, path, parsed)
        for inner in (*getattr(child, "handlers", ()), *getattr(child, "cases", ())):
            _index_definitions(inner.body, path, parsed)


def _index_scopes(table: symtable.SymbolTable, parsed: _SourceFile) -> None:
    for child in table.get_children():
        parsed.tables.setdefault((child.get_name(), child.get_lineno()), []).append(child)
        parsed.parents[id(child)] = table
        _index_scopes(child, parsed)


def _scope_of(parsed: _SourceFile, node: _Definition) -> symtable.SymbolTable | None:
    kind = "class" if isinstance(node, ast.ClassDef) else "function"
    for table in parsed.tables.get((node.name, node.lineno), ()):
        if table.get_type() == kind:
            return table
    return None


def _function_shape(func: types.FunctionType) -> _Shape:
    """:raises InvalidCodeVersion: the source cannot be read or isolated."""
    code = func.__code__
    cached = _cached_shape(func)
    if cached is not None and cached.code is code:
        return cached
    name = f"{func.__module__}.{func.__qualname__}"
    parsed = _source_file(code.co_filename, func.__globals__, name)
    node = parsed.functions.get(code.co_firstlineno)
    scope = _scope_of(parsed, node) if node is not None and node.name == code.co_name else None
    if node is None or scope is None:
        raise InvalidCodeVersion(
            f"code_version='auto' cannot isolate the source of {func.__qualname__} (a lambda?); "
            "define it with `def` or pass an explicit code version"
        )
    positional = [*node.args.posonlyargs, *node.args.args]
    reads = _Reads(scope, positional[0].arg if positional else None, frozenset(code.co_freevars))
    for statement in node.body:
        reads.visit(statement, scope)
    shape = reads.shape(code, _dump_normalized(node))
    _keep_shape(func, shape)
    return shape


def _class_shape(cls: type) -> _Shape:
    """:raises InvalidCodeVersion: the source cannot be read or isolated."""
    cached = _cached_shape(cls)
    if cached is not None:
        return cached
    name = f"{cls.__module__}.{cls.__qualname__}"
    filename, namespace = _class_home(cls)
    if filename is None:
        raise InvalidCodeVersion(f"cannot find the source file of class {name}")
    parsed = _source_file(filename, namespace, name)
    candidates = parsed.classes.get(cls.__qualname__, [])
    line = getattr(cls, "__firstlineno__", None)  # Python 3.13+: tells conditional definitions apart
    node = next((c for c in candidates if line in (None, c.lineno)), None)
    scope = _scope_of(parsed, node) if node is not None else None
    if node is None or scope is None:
        raise InvalidCodeVersion(f"cannot isolate the source of class {name}")
    reads = _Reads(scope, None, frozenset())
    enclosing = parsed.parents.get(id(scope), scope)
    for part in (*node.decorator_list, *node.bases, *node.keywords):
        reads.visit(part, enclosing)
    for statement in node.body:
        reads.visit(statement, scope)
    shape = reads.shape(None, _dump_normalized(node))
    _keep_shape(cls, shape)
    return shape


def _cached_shape(obj: object) -> _Shape | None:
    try:
        with _PARSE_LOCK:
            return _SHAPES.get(obj)
    except TypeError:  # a class whose metaclass makes it unhashable: parsed every time
        return None


def _keep_shape(obj: object, shape: _Shape) -> None:
    try:
        with _PARSE_LOCK:
            _SHAPES[obj] = shape
    except TypeError:
        pass


def _class_home(cls: type) -> tuple[str | None, dict[str, Any] | None]:
    """The file and module namespace of a class: its module's, or for a module loaded by hand
    (not in `sys.modules`) those of its methods."""
    module = sys.modules.get(cls.__module__)
    filename = getattr(module, "__file__", None)
    if module is not None and isinstance(filename, str):
        return filename, vars(module)
    for attribute in vars(cls).values():
        func = getattr(attribute, "__func__", attribute)
        if isinstance(func, types.FunctionType) and func.__qualname__.startswith(cls.__qualname__):
            return func.__code__.co_filename, func.__globals__
    return None, None


def _dump_normalized(node: _Definition) -> bytes:
    """The definition as `ast.dump` would write it (fields, no positions), without its name
    (hashed as the qualname), without docstrings, and for a function without its decorators
    (orchestration settings, not computation). Written out here to skip those fields without
    copying or mutating the file's tree, which other functions share."""
    out: list[str] = [type(node).__name__, "("]
    for field in node._fields:
        value = getattr(node, field, None)
        if field == "name":
            value = ""
        elif field == "decorator_list" and not isinstance(node, ast.ClassDef):
            value = []
        elif field == "body":
            value = _without_docstring(value)
        _dump_field(value, out)
    out.append(")")
    return "".join(out).encode()


def _dump_node(node: ast.AST, out: list[str]) -> None:
    out += (type(node).__name__, "(")
    definition = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    for field in node._fields:
        value = getattr(node, field, None)
        _dump_field(_without_docstring(value) if definition and field == "body" else value, out)
    out.append(")")


def _dump_field(value: object, out: list[str]) -> None:
    if isinstance(value, ast.AST):
        _dump_node(value, out)
    elif isinstance(value, list):
        out.append("[")
        for item in value:
            _dump_field(item, out)
        out.append("]")
    else:
        out.append(repr(value))
    out.append(",")


def _without_docstring(body: Any) -> Any:
    if (
        body
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
    ):
        return body[1:] or [ast.Pass()]
    return body


class _Reads:
    """Walks a definition scope by scope; the symbol table knows what is global in each.

    `freevars`: the function's closure variables (free in its scopes but not defined there),
    resolved like globals through the function's cells.
    """

    def __init__(self, scope: symtable.SymbolTable, self_name: str | None, freevars: frozenset[str]) -> None:
        self.self_name = self_name
        self.freevars = freevars
        self.chains: set[tuple[str, ...]] = set()
        self.self_attrs: set[str] = set()
        self.super_attrs: set[str] = set()
        self.dynamic: set[str] = set()
        self._tables: dict[tuple[str, int], list[symtable.SymbolTable]] = {}
        self._index(scope)

    def _index(self, table: symtable.SymbolTable) -> None:
        for child in table.get_children():
            self._tables.setdefault((child.get_name(), child.get_lineno()), []).append(child)
            self._index(child)

    def _scope_of(self, node: ast.AST, enclosing: symtable.SymbolTable) -> symtable.SymbolTable:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            key = (node.name, node.lineno)
        elif isinstance(node, ast.Lambda):
            key = ("lambda", node.lineno)
        else:
            key = (_COMPREHENSIONS.get(type(node), ""), getattr(node, "lineno", 0))
        tables = self._tables.get(key)
        return tables.pop(0) if tables else enclosing

    def shape(self, code: types.CodeType | None, tree: bytes) -> _Shape:
        return _Shape(
            code=code,
            tree=tree,
            chains=tuple(sorted(self.chains)),
            self_attrs=tuple(sorted(self.self_attrs)),
            super_attrs=tuple(sorted(self.super_attrs)),
            dynamic=tuple(sorted(self.dynamic)),
        )

    def is_global(self, table: symtable.SymbolTable, name: str) -> bool:
        try:
            symbol = table.lookup(name)
        except KeyError:
            return False
        return symbol.is_global() or (symbol.is_free() and name in self.freevars)

    def visit(self, node: ast.AST, table: symtable.SymbolTable) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            # Defaults run in the enclosing scope; annotations and decorators are not computation.
            for default in (*node.args.defaults, *node.args.kw_defaults):
                if default is not None:
                    self.visit(default, table)
            inner = self._scope_of(node, table)
            for statement in node.body if isinstance(node.body, list) else [node.body]:
                self.visit(statement, inner)
        elif isinstance(node, ast.ClassDef):
            for part in (*node.decorator_list, *node.bases, *node.keywords):
                self.visit(part, table)
            inner = self._scope_of(node, table)
            for statement in node.body:
                self.visit(statement, inner)
        elif isinstance(node, ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp):
            first = node.generators[0]
            self.visit(first.iter, table)  # the first iterable runs in the enclosing scope
            inner = self._scope_of(node, table)
            rest: list[ast.AST] = [first.target, *first.ifs, *node.generators[1:]]
            rest += [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
            for part in rest:
                self.visit(part, inner)
        elif isinstance(node, ast.AnnAssign):
            for piece in (node.target, node.value):  # the annotation is not computation
                if piece is not None:
                    self.visit(piece, table)
        elif isinstance(node, ast.Attribute | ast.Name):
            self._chain(node, table)
        else:
            if isinstance(node, ast.Call):
                self._call(node, table)
            for child in ast.iter_child_nodes(node):
                self.visit(child, table)

    def _chain(self, node: ast.Attribute | ast.Name, table: symtable.SymbolTable) -> None:
        parts: list[str] = []
        base: ast.expr = node
        while isinstance(base, ast.Attribute):
            parts.append(base.attr)
            base = base.value
        parts.reverse()
        if isinstance(base, ast.Name):
            if isinstance(base.ctx, ast.Load) and self.is_global(table, base.id):
                self.chains.add((base.id, *parts))
            elif parts and base.id == self.self_name:
                self.self_attrs.add(parts[0])
            return
        if parts and _is_super_call(base):
            self.super_attrs.add(parts[0])
        self.visit(base, table)

    def _call(self, node: ast.Call, table: symtable.SymbolTable) -> None:
        func = node.func
        if isinstance(func, ast.Name) and self.is_global(table, func.id):
            if func.id == "getattr" and len(node.args) >= 2:
                target, attribute = node.args[0], node.args[1]
                if not isinstance(target, ast.Name) or not (
                    target.id == self.self_name or self.is_global(table, target.id)
                ):
                    return  # an attribute of an argument or a local: data, not code
                if isinstance(attribute, ast.Constant) and isinstance(attribute.value, str):
                    if target.id == self.self_name:
                        self.self_attrs.add(attribute.value)
                    else:
                        self.chains.add((target.id, attribute.value))
                else:
                    self.dynamic.add(_excerpt(node))
            elif func.id in _DYNAMIC_CALLS:
                self.dynamic.add(_excerpt(node))
        elif (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and (func.value.id, func.attr) in _DYNAMIC_CHAINS
            and self.is_global(table, func.value.id)
        ):
            self.dynamic.add(_excerpt(node))


def _is_super_call(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "super"
        and not node.args
    )


def _excerpt(node: ast.AST) -> str:
    text = ast.unparse(node)
    return text if len(text) <= 80 else text[:77] + "..."


# --- Unseen reads --------------------------------------------------------------------------------

_Pattern = tuple[tuple[str, ...], bool]  # segments, and whether it ends in `.*`
_Patterns = dict[str, list[_Pattern]]  # by first segment: most reads share none with any pattern


def _patterns(names: Iterable[str]) -> _Patterns:
    """:raises ConfigError: a name that is not a dotted name."""
    if isinstance(names, str):
        names = (names,)
    found: set[_Pattern] = set()
    for name in names:
        if not isinstance(name, str):
            raise ConfigError(f"unseen reads are dotted names, not {type(name).__name__} {name!r}")
        segments = tuple(name.strip().split("."))
        wildcard = len(segments) > 1 and segments[-1] == "*"
        segments = segments[:-1] if wildcard else segments
        if not all(s.isidentifier() for s in segments):
            raise ConfigError(
                f"unseen read {name!r} is not a dotted name; write e.g. 'Variable.get', "
                "'get_current_context' or 'random.*'"
            )
        found.add((segments, wildcard))
    by_first: _Patterns = {}
    for pattern in sorted(found):
        by_first.setdefault(pattern[0][0], []).append(pattern)
    return by_first


def _matches(dotted: tuple[str, ...], patterns: _Patterns) -> list[tuple[int, str]]:
    """(width, name) of each pattern whose segments begin or end the read `dotted`:
    `os.environ` begins `os.environ.get`, `datetime.now` ends `datetime.datetime.now`."""
    found = []
    for start, segment in enumerate(dotted):
        for segments, wildcard in patterns.get(segment, ()):
            width = len(segments) + wildcard
            if (
                (start == 0 or start + width == len(dotted))
                and start + width <= len(dotted)
                and dotted[start : start + len(segments)] == segments
            ):
                found.append((width, ".".join(dotted[start : start + width])))
    return found


def _canonical(obj: object) -> str | None:
    """`module.name` of an imported module, function or class, as the spec of unseen reads says."""
    if isinstance(obj, types.ModuleType):
        return obj.__name__
    if obj is os.environ:
        return "os.environ"
    try:
        name = getattr(obj, "__qualname__" if isinstance(obj, type) else "__name__", None)
        module = getattr(obj, "__module__", None)
        if module is None and isinstance(obj, types.BuiltinMethodType):
            module = type(obj.__self__).__module__  # random.random: a bound method of Random
    except Exception:  # an object whose __getattr__ fails: no canonical name
        return None
    return f"{module}.{name}" if isinstance(module, str) and isinstance(name, str) else None
