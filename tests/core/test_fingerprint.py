"""Content fingerprints and the ready-made observe functions."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from insync.core import (
    ObservationError,
    ParameterError,
    fingerprint_bytes,
    fingerprint_directory,
    fingerprint_file,
    fingerprint_table,
    fingerprint_value,
    observe_directory,
    observe_file,
    observe_sql,
)


def test_file_fingerprint_streams_and_tracks_content(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(b"x" * (3 * 1024 * 1024 + 7))  # spans several read blocks
    first = fingerprint_file(path)
    assert first == observe_file(path) and first.value.startswith("file:")
    path.write_bytes(b"x" * (3 * 1024 * 1024 + 6) + b"y")
    assert fingerprint_file(path) != first
    with pytest.raises(ObservationError, match=r"missing\.txt"):
        observe_file(tmp_path / "missing.txt")


def test_directory_fingerprint_sees_names_and_contents(tmp_path: Path) -> None:
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "a.txt").write_text("ab")
    (tmp_path / "d" / "sub" / "b.txt").write_text("c")
    first = fingerprint_directory(tmp_path / "d")
    (tmp_path / "d" / "a.txt").write_text("a")
    (tmp_path / "d" / "sub" / "b.txt").write_text("bc")  # bytes moved between files
    second = observe_directory(tmp_path / "d")
    (tmp_path / "d" / "sub" / "b.txt").rename(tmp_path / "d" / "sub" / "c.txt")
    assert len({first, second, fingerprint_directory(tmp_path / "d")}) == 3
    with pytest.raises(ObservationError, match="does not exist"):
        observe_directory(tmp_path / "nope")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary(),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)


def _canonical(value: object) -> object:
    """What the encoding keeps apart: types and structure (dicts compare as sorted items)."""
    if isinstance(value, dict):
        return ("d", sorted((repr(k), _canonical(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return (type(value).__name__, [_canonical(v) for v in value])
    if isinstance(value, float):
        return ("float", value.hex())
    return (type(value).__name__, value)


@given(json_values, json_values)
def test_value_fingerprint_is_injective(a: object, b: object) -> None:
    assert (fingerprint_value(a) == fingerprint_value(b)) == (_canonical(a) == _canonical(b))


def test_value_fingerprint_keeps_types_apart() -> None:
    versions = {fingerprint_value(v) for v in (1, 1.0, "1", True, b"1", [1], (1,), {"1": 1})}
    assert len(versions) == 8
    assert fingerprint_value({"a": 1, "b": 2}) == fingerprint_value({"b": 2, "a": 1})
    assert fingerprint_bytes(b"ab") != fingerprint_bytes(b"a")
    with pytest.raises(ParameterError, match="fingerprint_table"):
        fingerprint_value(object())


def test_pandas_and_arrow_fingerprints_ignore_chunking_but_not_values() -> None:
    pd = pytest.importorskip("pandas")
    pa = pytest.importorskip("pyarrow")
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    assert fingerprint_table(df) == fingerprint_table(df.copy())
    assert fingerprint_table(df) != fingerprint_table(df.assign(a=[1, 2, 4]))
    assert fingerprint_table(df) != fingerprint_table(df.rename(columns={"a": "c"}))
    table = pa.table({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    chunked = pa.concat_tables([table.slice(0, 1), table.slice(1)])
    assert fingerprint_table(table) == fingerprint_table(chunked)
    assert fingerprint_table(table) != fingerprint_table(table.slice(1))
    with pytest.raises(TypeError, match="pandas DataFrame or a pyarrow Table"):
        fingerprint_table([1, 2])


def test_observe_sql(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("create table t (id int, v text)"))
        conn.execute(sa.text("insert into t values (1, 'a')"))
    query = "select id, v from t order by id"
    first = observe_sql(url, query)
    assert observe_sql(engine, query) == first
    with engine.begin() as conn:
        conn.execute(sa.text("update t set v = 'b'"))
    assert observe_sql(engine, query) != first
    with pytest.raises(ObservationError, match="no_such_table"):
        observe_sql(engine, "select * from no_such_table")
    engine.dispose()
