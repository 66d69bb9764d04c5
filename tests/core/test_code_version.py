"""`code_version="auto"` sees all the user's code: helpers, imported project modules, methods,
classes, constants, closures and defaults; it names installed packages without following them,
reports what it cannot follow, and finds reads of inputs insync cannot see."""

from __future__ import annotations

import importlib
import logging
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from insync.core import (
    CodeAnalysis,
    ConfigError,
    analyze_code,
    code_version_of,
    resolve_code_version,
)
from insync.core._code_version import _Analyzer, _patterns

Load = Callable[..., ModuleType]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Load]:
    """`project(main_source, helpers=source, ...)` writes a package of user modules under a
    fresh name and imports its `main`: each call is a new import, so sources can be compared."""
    monkeypatch.syspath_prepend(str(tmp_path))
    packages: list[str] = []

    def load(main: str, **modules: str) -> ModuleType:
        package = f"cv_{uuid.uuid4().hex[:12]}"
        folder = tmp_path / package
        folder.mkdir()
        (folder / "__init__.py").write_text("")
        for name, source in {"main": main, **modules}.items():
            (folder / f"{name}.py").write_text(textwrap.dedent(source))
        packages.append(package)
        importlib.invalidate_caches()
        return importlib.import_module(f"{package}.main")

    yield load
    for name in list(sys.modules):
        if name.partition(".")[0] in packages:
            del sys.modules[name]


def version(module: ModuleType, name: str = "compute") -> str:
    return analyze_code(getattr(module, name)).version


MAIN = """
from . import helpers as h
from .helpers import clean

LIMIT = 3


def compute(rows):
    return [clean(r) for r in rows if r < LIMIT] + [h.scale(r) for r in rows]
"""

HELPERS = """
FACTOR = 2


def clean(x):
    return x + 1


def scale(x):
    return x * FACTOR
"""

PIPELINE = """
class Pipeline:
    RATE = 2

    def run(self, x):
        return self.scale(x) + 1

    def scale(self, x):
        return x * self.RATE * self.factor

    def unused(self):
        return 0
"""


def test_the_same_code_in_another_package_has_the_same_version(project: Load) -> None:
    first = analyze_code(project(MAIN, helpers=HELPERS).compute)
    again = analyze_code(project(MAIN, helpers=HELPERS).compute)
    assert first == again == CodeAnalysis(first.version, (), ())
    assert len(first.version) == 16 and int(first.version, 16) >= 0
    compute = project(MAIN, helpers=HELPERS).compute
    assert resolve_code_version("auto", compute) == code_version_of(compute) == first.version


def test_editing_a_module_constant_changes_the_version(project: Load) -> None:
    base = version(project(MAIN, helpers=HELPERS))
    in_main = version(project(MAIN.replace("LIMIT = 3", "LIMIT = 4"), helpers=HELPERS))
    in_helpers = version(project(MAIN, helpers=HELPERS.replace("FACTOR = 2", "FACTOR = 2.0")))
    assert len({base, in_main, in_helpers}) == 3


def test_editing_an_imported_project_helper_changes_the_version(project: Load) -> None:
    base = version(project(MAIN, helpers=HELPERS))
    imported_name = version(project(MAIN, helpers=HELPERS.replace("x + 1", "x + 2")))
    module_attribute = version(project(MAIN, helpers=HELPERS.replace("x * FACTOR", "x ** FACTOR")))
    assert len({base, imported_name, module_attribute}) == 3


def test_editing_a_method_called_through_self_changes_the_version(project: Load) -> None:
    def versions(source: str) -> tuple[str, str]:
        pipeline = project("from .pipeline import Pipeline\n", pipeline=source).Pipeline
        return code_version_of(pipeline.run), code_version_of(pipeline().run)

    base = versions(PIPELINE)
    assert base[0] == base[1]  # a method from its class or bound to an instance
    assert versions(PIPELINE.replace("x * self.RATE", "x / self.RATE")) != base
    assert versions(PIPELINE.replace("RATE = 2", "RATE = 3")) != base
    # A method the called code never reaches, and instance state (an input like any argument).
    assert versions(PIPELINE.replace("return 0", "return 1")) == base


def test_editing_a_class_used_by_name_or_its_project_base_changes_the_version(project: Load) -> None:
    shapes = """
    class Base:
        def area(self):
            return self.width * self.height

    class Square(Base):
        def __init__(self, side):
            self.width = self.height = side
    """
    main = "from .shapes import Square\n\n\ndef compute(side):\n    return Square(side).area()\n"
    base = version(project(main, shapes=shapes))
    assert version(project(main, shapes=shapes.replace("self.width * self.height", "self.width"))) != base
    assert version(project(main, shapes=shapes.replace("= side", "= side + 1"))) != base
    commented = shapes.replace("class Square", "# a square\n    class Square")
    assert version(project(main, shapes=commented)) == base


def test_editing_a_default_value_changes_the_version(project: Load) -> None:
    main = """
    FACTOR = 2


    def compute(x, offset=1, *, factor=FACTOR):
        return x * factor + offset
    """
    base = version(project(main))
    assert version(project(main.replace("offset=1", "offset=2"))) != base
    # The same text `factor=FACTOR`: only the value of the default tells.
    assert version(project(main.replace("FACTOR = 2", "FACTOR = 3"))) != base


def test_comments_docstrings_formatting_and_decorators_do_not_count(project: Load) -> None:
    cosmetic_main = '''
    """A module docstring."""
    import functools

    from . import helpers as h
    from .helpers import clean

    LIMIT = (
        3  # rows below
    )


    @functools.lru_cache
    def compute(rows):
        """Clean and scale."""
        return [clean( r ) for r in rows if r<LIMIT] + [
            h.scale(r) for r in rows  # scaled
        ]
    '''
    cosmetic_helpers = '''
    FACTOR = 2  # doubles


    def clean(x):
        """Plus one."""
        return (x + 1)


    def scale(x):
        # multiplies
        return x*FACTOR
    '''
    assert version(project(cosmetic_main, helpers=cosmetic_helpers)) == version(
        project(MAIN, helpers=HELPERS)
    )


def test_installed_packages_are_named_not_followed(
    project: Load, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    installed = tmp_path / "venv" / "lib" / "python3" / "site-packages"
    installed.mkdir(parents=True)
    monkeypatch.syspath_prepend(str(installed))
    library = f"lib_{uuid.uuid4().hex[:12]}"
    monkeypatch.delitem(sys.modules, library, raising=False)  # removed again at teardown
    main = f"""
    import json

    import sqlalchemy
    import {library}
    from {library} import helper


    def compute(x):
        return json.dumps({library}.helper(x) + helper(x)) + str(sqlalchemy.text("select 1"))
    """
    (installed / f"{library}.py").write_text("def helper(x):\n    return x + 1\n")
    first = analyze_code(project(main).compute)
    (installed / f"{library}.py").write_text("def helper(x):\n    return x + 1000\n")
    del sys.modules[library]
    edited = project(main)
    assert edited.compute(1) == "2002select 1"  # the library did change
    assert analyze_code(edited.compute) == first
    assert first.unresolved == ()


def test_recursion_and_self_reference_terminate(project: Load) -> None:
    main = """
    from .other import pong

    LOOP = []
    LOOP.append(LOOP)


    class Node:
        def child(self):
            return Node().walk(self)

        def walk(self, other):
            return self.walk(other) if other else self.child()


    def ping(n):
        return pong(n - 1) if n else Node().child()


    def compute(n):
        return ping(n), LOOP
    """
    other = "from . import main as m\n\n\ndef pong(n):\n    return m.ping(n - 1)\n"
    analysis = analyze_code(project(main, other=other).compute)
    assert analysis.unresolved == ("LOOP",)  # a list holding itself has no finite encoding
    edited = project(main, other=other.replace("n - 1", "n - 2"))
    assert analyze_code(edited.compute).version != analysis.version
    assert analyze_code(edited.Node.walk).unresolved == ()


def test_unresolvable_names_are_reported_and_logged_once(
    project: Load, caplog: pytest.LogCaptureFixture
) -> None:
    main = """
    import threading

    from . import helpers

    LOCK = threading.Lock()


    def compute(x, name):
        with LOCK:
            return getattr(helpers, name)(x) + helpers.missing(x) + not_defined_yet(x)
    """
    caplog.set_level(logging.INFO, logger="insync")
    compute = project(main, helpers=HELPERS).compute
    analysis = analyze_code(compute)
    assert analysis.unresolved == ("LOCK", "getattr(helpers, name)", "helpers.missing", "not_defined_yet")
    assert code_version_of(compute) == analysis.version  # logged once per function, not per call
    messages = [r.getMessage() for r in caplog.records if r.name == "insync"]
    assert len(messages) == 1
    assert messages[0] == (
        f"code_version auto for {compute.__module__}.compute: cannot follow names LOCK, "
        "getattr(helpers, name), helpers.missing, not_defined_yet (dynamic); declare an explicit "
        "code version if they matter"
    )


def test_unseen_reads_are_found_in_all_the_followed_code(project: Load) -> None:
    main = """
    import os
    from datetime import datetime
    from os import getenv as read_env

    from . import helpers


    def compute(x, random=None):
        stamp = datetime.now()
        home = os.environ["HOME"]
        return helpers.context_value() + read_env("USER") + str(stamp) + home + str(random.x)
    """
    helpers = """
    import random as rnd


    def context_value():
        return get_current_context()["ds"] + str(rnd.random())


    def get_current_context():
        return {"ds": "2024-01-01"}
    """
    compute = project(main, helpers=helpers).compute
    core = ("datetime.now", "os.environ", "os.getenv", "random.random")
    assert analyze_code(compute).unseen_reads == core
    with_context = analyze_code(compute, unseen=["get_current_context", "Variable.get"])
    assert with_context.unseen_reads == tuple(sorted((*core, "get_current_context")))
    assert with_context.version == analyze_code(compute).version


def test_unseen_names_must_be_dotted_names() -> None:
    with pytest.raises(ConfigError, match="not a dotted name"):
        analyze_code(version, unseen=["os..environ"])
    with pytest.raises(ConfigError, match="dotted names, not int"):
        analyze_code(version, unseen=[3])  # type: ignore[list-item]


VALUES = """
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import Enum


class Color(Enum):
    RED = 1
    BLUE = 2


@dataclass(frozen=True)
class Settings:
    limit: int


VALUE = {value}


def compute():
    return VALUE
"""


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("1", "1.0"),
        ("1", "'1'"),
        ("1", "True"),
        ("0.0", "-0.0"),
        ("b'x'", "'x'"),
        ("(1, 2)", "[1, 2]"),
        ("{'a': 1, 'b': 2}", "{'b': 2, 'a': 1}"),  # iteration order is behaviour
        ("frozenset({'a'})", "{'a'}"),
        ("re.compile('a+')", "re.compile('a+', re.IGNORECASE)"),
        ("Color.RED", "Color.BLUE"),
        ("Settings(1)", "Settings(2)"),
        ("Decimal('1.0')", "Decimal('1.00')"),
        ("date(2024, 1, 1)", "date(2024, 1, 2)"),
        ("(Color, Settings)", "(Settings, Color)"),
    ],
)
def test_constant_values_are_told_apart(project: Load, before: str, after: str) -> None:
    first = analyze_code(project(VALUES.format(value=before)).compute)
    second = analyze_code(project(VALUES.format(value=after)).compute)
    assert first.unresolved == second.unresolved == ()
    assert first.version != second.version
    assert analyze_code(project(VALUES.format(value=before)).compute) == first


def test_objects_without_a_stable_encoding_are_unresolved(project: Load) -> None:
    analysis = analyze_code(project(VALUES.format(value="object()")).compute)
    assert analysis.unresolved == ("VALUE",)


def typed(value: Any) -> Any:
    """The value with its types spelled out, where Python's == would mix 1, 1.0 and True."""
    if isinstance(value, list | tuple):
        return type(value).__name__, tuple(typed(v) for v in value)
    if isinstance(value, dict):
        return "dict", tuple((typed(k), typed(v)) for k, v in value.items())
    if isinstance(value, frozenset):
        return "frozenset", frozenset(typed(v) for v in value)
    if isinstance(value, float):
        return "float", value.hex()
    return type(value).__name__, value


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=4)
    | st.binary(max_size=4)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.dictionaries(scalars, inner, max_size=3)
        | st.frozensets(scalars | st.tuples(scalars, scalars), max_size=3)
    ),
    max_leaves=8,
)


def encoding(value: object) -> bytes:
    out = bytearray()
    _Analyzer(encoding, _patterns(()))._encode(value, out, dry=False)  # type: ignore[arg-type]
    return bytes(out)


@given(values, values)
def test_value_encoding_is_injective(a: object, b: object) -> None:
    assert (encoding(a) == encoding(b)) == (typed(a) == typed(b))


def test_sets_of_strings_hash_the_same_in_every_process(project: Load, tmp_path: Path) -> None:
    main = project(VALUES.format(value="{'alpha', 'beta', 'gamma', 'delta', ('x', 'y')}"))
    code = (
        "import importlib, sys; sys.path.insert(0, sys.argv[1]); from insync.core import analyze_code; "
        f"print(analyze_code(importlib.import_module({main.__name__!r}).compute).version)"
    )
    seen = {
        subprocess.run(
            [sys.executable, "-c", code, str(tmp_path)],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert seen == {version(main)}


def test_closures_nested_scopes_and_module_location(project: Load) -> None:
    main = """
    from pathlib import Path

    from .helpers import clean


    def make(factor):
        def compute(rows):
            total = 0

            def add(value):
                nonlocal total
                total += clean(value) * factor

            [add(r) for r in rows]
            return total, Path(__file__).parent / "data.csv"

        return compute
    """
    module = project(main, helpers=HELPERS)
    same_elsewhere = project(main, helpers=HELPERS)  # another folder: another __file__
    assert code_version_of(module.make(2)) == code_version_of(same_elsewhere.make(2))
    assert code_version_of(module.make(2)) != code_version_of(module.make(3))
    edited = project(main, helpers=HELPERS.replace("x + 1", "x - 1"))
    assert code_version_of(edited.make(2)) != code_version_of(module.make(2))
    assert analyze_code(module.make(2)).unresolved == ()


def test_a_chain_of_twenty_helpers_is_followed_to_its_last_link(project: Load) -> None:
    # Speed is not asserted here (no timing asserts in tests); what is followed is.
    def source(last_body: str) -> str:
        helpers = ["LIMIT = 10", "NAMES = ('a', 'b')", "TABLE = {'x': [1, 2, 3], 'y': {'z': 1.5}}"]
        for i in range(20):
            call = f"helper_{i + 1}(x)" if i < 19 else last_body
            helpers.append(
                f"\n\ndef helper_{i}(x, scale={i}):\n"
                f'    """Helper {i}."""\n'
                "    values = [v * scale for v in range(LIMIT) if v not in NAMES]\n"
                "    total = sum(values) + len(TABLE)\n"
                "    for key, value in TABLE.items():\n"
                "        total += len(key)\n"
                f"    return {call} + total\n"
            )
        return "\n".join(helpers) + "\n\ndef compute(x):\n    return helper_0(x)\n"

    first = project(source("x")).compute
    same = project(source("x")).compute
    edited_last_link = project(source("x * 2")).compute
    assert code_version_of(first) == code_version_of(same)
    assert code_version_of(edited_last_link) != code_version_of(first)
    assert analyze_code(first).unresolved == ()


def test_code_versions_computed_in_threads_while_a_parse_is_paused(project: Load) -> None:
    """Prefect runs tasks in threads. On CPython 3.11, a parse paused mid-conversion by a garbage
    collection (a finalizer that releases the GIL) while another thread parses used to fail with
    "SystemError: AST constructor recursion depth mismatch" (gh-106905). The pause is forced here:
    a finalizer that finds itself inside `ast.parse` waits until the other thread is done."""
    import ast
    import gc
    import threading

    body = "\n".join(f"def f_{i}(x):\n    return [x + {i} for _ in range(3)]\n" for i in range(300))
    first = project(body + "\ndef compute(x):\n    return f_0(x)\n").compute
    second = project(body + "\ndef compute(x):\n    return f_1(x)\n").compute
    paused, resume = threading.Event(), threading.Event()

    class Pause:
        def __init__(self) -> None:
            self.cycle = self  # only the cycle collector frees it: it runs inside allocations

        def __del__(self) -> None:
            if paused.is_set():
                return
            frame = sys._getframe(1)
            while frame is not None and frame.f_code is not ast.parse.__code__:
                frame = frame.f_back
            if frame is None:
                Pause()  # collected outside a parse: arm again for the next collection
                return
            paused.set()
            resume.wait(timeout=3)  # with parses serialized the other thread waits: time out

    versions: dict[str, str] = {}
    errors: list[BaseException] = []

    def run(name: str, fn: Callable[..., Any], wait: bool) -> None:
        try:
            if wait:
                assert paused.wait(timeout=60), "no collection landed inside the first parse"
            versions[name] = code_version_of(fn)
        except BaseException as exc:  # reported below, from the main thread
            errors.append(exc)
        finally:
            resume.set()

    gc.collect()
    Pause()
    threads = [
        threading.Thread(target=run, args=("first", first, False)),
        threading.Thread(target=run, args=("second", second, True)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    paused.set()  # disarm a Pause left over if no collection came
    assert errors == []
    assert versions["first"] != versions["second"]
    assert versions["first"] == code_version_of(first)
