"""Pieces of the dbt adapter that need no warehouse: SQL normalization, argument splitting,
meta validation, the exported names."""

from __future__ import annotations

import pytest
from insync.adapters.dbt import _manifest, _sql
from insync.adapters.dbt._runner import split_args
from insync.core import ConfigError


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("select a+b from t", "SELECT a + b\nFROM   t ;"),
        ("select 1 -- note\n, 2", "select 1 /* other\nnote */ , 2"),
        ("select x from t", "\n\n  select   x\tfrom t\n"),
    ],
)
def test_formatting_and_comments_do_not_change_normalized_sql(a: str, b: str) -> None:
    assert _sql.normalize_sql(a) == _sql.normalize_sql(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("select 'a b'", "select 'a  b'"),  # inside a string, whitespace is data
        ("select '--x'", "select ''"),  # a comment marker inside a string is not a comment
        ('select "Col"', 'select "col"'),  # quoted identifiers are case-sensitive
        ("select ab from t", "select a b from t"),
        ("select 1 from t", "select 2 from t"),
    ],
)
def test_real_changes_change_normalized_sql(a: str, b: str) -> None:
    assert _sql.normalize_sql(a) != _sql.normalize_sql(b)


def test_split_args_separates_selection_project_and_build_options() -> None:
    args = split_args(["--select", "a", "b+", "--target", "prod", "--threads", "4",
                       "--exclude=c", "-s", "d", "--full-refresh", "--vars", "{x: 1}"])
    assert args.selection == ("--select", "a", "b+", "--exclude", "c", "--select", "d")
    assert args.project == ("--target", "prod", "--vars", "{x: 1}")
    assert args.build == ("--threads", "4", "--full-refresh")
    assert args.full_refresh


def test_split_args_refuses_an_option_without_value() -> None:
    with pytest.raises(ConfigError, match="--select needs a value"):
        split_args(["--select"])
    with pytest.raises(ConfigError, match="--target needs a value"):
        split_args(["--target"])


def test_split_args_refuses_empty_builds() -> None:
    with pytest.raises(ConfigError, match="--empty builds relations without rows"):
        split_args(["--empty"])


def test_unknown_meta_key_is_named_with_the_fix() -> None:
    with pytest.raises(ConfigError, match=r"model\.x\.y: unknown meta\.insync key\(s\) colour; use"):
        _manifest._insync_meta("model.x.y", {"insync": {"colour": "red"}})


def test_bad_data_version_mode_is_refused() -> None:
    with pytest.raises(ConfigError, match="data_version is 'fast'; use 'content' or 'logical'"):
        _manifest._insync_meta("model.x.y", {"insync": {"data_version": "fast"}})


def test_meta_insync_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError, match=r"meta\.insync must be a mapping"):
        _manifest._insync_meta("model.x.y", {"insync": "content"})


def test_bad_key_names_the_node() -> None:
    with pytest.raises(ConfigError, match=r"model\.x\.y: cannot form an asset key.*meta: \{insync"):
        _manifest._key("model.x.y", {"key": "a//b"}, ())


def test_exported_names() -> None:
    import insync.adapters.dbt as adapter

    assert adapter.__all__ == sorted(adapter.__all__)
    assert adapter.__all__ == ["BuildReport", "DbtError", "DbtProject", "NodeOutcome"]


def test_import_without_dbt_says_what_to_install() -> None:
    import subprocess
    import sys

    code = (
        "import importlib.metadata as m\n"
        "real = m.version\n"
        "def version(name):\n"
        "    if name == 'dbt-core':\n"
        "        raise m.PackageNotFoundError(name)\n"
        "    return real(name)\n"
        "m.version = version\n"
        "import insync.adapters.dbt\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 1
    assert "pip install 'insync[dbt]'" in result.stderr
