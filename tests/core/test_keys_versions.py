"""Asset keys, data versions, logical/dagster hashing and auto code versions."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from insync.core import (
    INITIAL,
    NULL,
    UNKNOWN,
    AssetKey,
    AssetSpec,
    ConfigError,
    DataVersion,
    InvalidAssetKey,
    InvalidCodeVersion,
    InvalidDataVersion,
    code_version_of,
    dagster_data_version,
    logical_data_version,
    resolve_code_version,
)
from insync.core._versions import user_data_version


def test_asset_key_forms_are_equal_and_print_the_user_string() -> None:
    assert AssetKey("analytics/orders") == AssetKey(["analytics", "orders"])
    assert str(AssetKey(("a", "b"))) == "a/b"
    assert AssetKey.parse("x") is not None and AssetKey.parse(AssetKey("x")) == AssetKey("x")
    assert sorted([AssetKey("b"), AssetKey("a/z"), AssetKey("a")]) == [
        AssetKey("a"),
        AssetKey("a/z"),
        AssetKey("b"),
    ]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("raw//orders", "has an empty part; write 'raw/orders'"),
        ("", "empty"),
        (["a/b"], "containing '/'"),
        (["a", 3], "not a string"),
        (42, "must be a string"),
        ([], "empty"),
        ("raw/or\nders", "control character"),
    ],
)
def test_malformed_keys_say_what_to_write(raw: object, message: str) -> None:
    with pytest.raises(InvalidAssetKey, match=message):
        AssetKey(raw)  # type: ignore[arg-type]


parts = st.lists(
    st.text(
        st.characters(min_codepoint=32, exclude_characters="/", exclude_categories=("Cs",)), min_size=1
    ).filter(str.strip),
    min_size=1,
    max_size=4,
)


@given(parts, parts)
def test_user_string_is_canonical(a: list[str], b: list[str]) -> None:
    assert (AssetKey(a) == AssetKey(b)) == (a == b)
    assert AssetKey(str(AssetKey(a))) == AssetKey(a)


def test_data_versions_and_sentinels() -> None:
    assert str(DataVersion("20")) == "20"
    assert str(INITIAL) == "INITIAL" and str(NULL) == "NULL" and str(UNKNOWN) == "UNKNOWN"
    with pytest.raises(InvalidDataVersion, match="non-empty string"):
        DataVersion("")
    with pytest.raises(InvalidDataVersion, match="DataVersion"):
        DataVersion(20)  # type: ignore[arg-type]
    with pytest.raises(InvalidDataVersion, match="reserved"):
        user_data_version("INITIAL")


versions = st.dictionaries(
    st.sampled_from(["a", "b", "ab", "a/b", "c"]).map(AssetKey),
    st.text(st.characters(blacklist_categories=("Cs",), min_codepoint=1), min_size=1)
    .filter(lambda s: s not in {"UNKNOWN"})
    .map(DataVersion),
    max_size=4,
)


@given(st.text(), versions, st.text(), versions)
def test_logical_data_version_is_injective(code1: str, in1: dict, code2: str, in2: dict) -> None:
    same = (code1, sorted(in1.items())) == (code2, sorted(in2.items()))
    assert (logical_data_version(code1, in1) == logical_data_version(code2, in2)) == same


def test_concatenation_does_not_collide() -> None:
    a, c = AssetKey("a"), AssetKey("c")
    assert logical_data_version("x", {a: DataVersion("ab"), c: DataVersion("c")}) != logical_data_version(
        "x", {a: DataVersion("a"), c: DataVersion("bc")}
    )
    assert logical_data_version("ab", {a: DataVersion("c")}) != logical_data_version(
        "a", {a: DataVersion("bc")}
    )


def test_unknown_input_propagates() -> None:
    assert logical_data_version("1", {AssetKey("a"): UNKNOWN}) == UNKNOWN
    assert dagster_data_version("1", {AssetKey("a"): UNKNOWN}) == UNKNOWN


def test_dagster_scheme_matches_dagster_definition() -> None:
    # Dagster: sha256("".join([code_version, *versions sorted by str(AssetKey(path))])).
    inputs = {
        AssetKey("b"): DataVersion("2"),
        AssetKey(["a", "z"]): DataVersion("1"),
        AssetKey("a"): DataVersion("0"),
    }
    # "AssetKey(['a', 'z'])" < "AssetKey(['a'])" (',' sorts before ']') < "AssetKey(['b'])"
    expected = hashlib.sha256(b"v1" + b"1" + b"0" + b"2").hexdigest()
    assert dagster_data_version("v1", inputs).value == expected


def test_resolve_code_version_errors() -> None:
    assert resolve_code_version(None) is None
    assert resolve_code_version("v1") == "v1"
    with pytest.raises(InvalidCodeVersion, match="write code_version='1'"):
        resolve_code_version(1)  # type: ignore[arg-type]
    with pytest.raises(InvalidCodeVersion, match="empty"):
        resolve_code_version("  ")
    with pytest.raises(InvalidCodeVersion, match="surrounding spaces"):
        resolve_code_version(" v1")
    with pytest.raises(InvalidCodeVersion, match="at most 255"):
        resolve_code_version("x" * 300)
    with pytest.raises(InvalidCodeVersion, match="needs the function"):
        resolve_code_version("auto")
    with pytest.raises(InvalidCodeVersion, match="lambda"):
        resolve_code_version("auto", lambda: 1)
    with pytest.raises(InvalidCodeVersion, match="Python function"):
        code_version_of(len)


def _module(source: str) -> dict:
    namespace: dict = {"__name__": "generated"}
    exec(compile(source, "<generated>", "exec"), namespace)
    return namespace


def test_auto_code_version_ignores_comments_docstrings_formatting_and_decorators(
    tmp_path, monkeypatch
) -> None:
    import importlib
    import sys

    monkeypatch.syspath_prepend(str(tmp_path))

    def version(name: str, source: str) -> str:
        (tmp_path / f"{name}.py").write_text(source)
        sys.modules.pop(name, None)
        return code_version_of(importlib.import_module(name).compute)

    base = version(
        "m1",
        "def helper(x):\n    return x * 2\n\n\ndef compute(a):\n    return helper(a) + 1\n",
    )
    cosmetic = version(
        "m2",
        "import functools\n\ndef helper(x):\n    # doubles\n    return x*2\n\n\n@functools.lru_cache\n"
        "def compute(a):\n    '''Docs.'''\n    return helper( a )+1  # plus one\n",
    )
    helper_edit = version(
        "m3",
        "def helper(x):\n    return x * 3\n\n\ndef compute(a):\n    return helper(a) + 1\n",
    )
    body_edit = version(
        "m4", "def helper(x):\n    return x * 2\n\n\ndef compute(a):\n    return helper(a) + 2\n"
    )
    assert base == cosmetic
    assert len({base, helper_edit, body_edit}) == 3


def test_asset_spec_validation() -> None:
    spec = AssetSpec("b", code_version="1", deps=["a", "a", AssetKey("c")], metadata={"owner": "x"})
    assert spec.deps == (AssetKey("a"), AssetKey("c")) and spec.metadata == {"owner": "x"}
    assert AssetSpec("b", deps="a").deps == (AssetKey("a"),)
    with pytest.raises(ConfigError, match="itself"):
        AssetSpec("a", deps=["a"])
    with pytest.raises(ConfigError, match="kind"):
        AssetSpec("a", kind="table")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="cannot have deps"):
        AssetSpec("s", kind="observable", deps=["a"])
    with pytest.raises(ConfigError, match="JSON"):
        AssetSpec("a", metadata={"x": object()})
    with pytest.raises(InvalidCodeVersion):
        AssetSpec("a", code_version="")
