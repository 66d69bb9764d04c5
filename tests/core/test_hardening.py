"""Bad input is one clear InsyncError, the same on SQLite and PostgreSQL, and changes nothing."""

from __future__ import annotations

import logging
import math
import os
import pickle
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from insync.core import (
    NO_VALUE,
    AssetSpec,
    ConfigError,
    DataVersion,
    EventStore,
    InsyncError,
    InvalidAssetKey,
    InvalidDataVersion,
    Materialization,
    StaticPartitions,
    StoreError,
    UnknownAssetError,
    ValueCache,
)

SECRET = "s3cret"


# ------------------------------------------------------------------------------------ URLs
@pytest.mark.parametrize(
    ("url", "message"),
    [
        (f"postgresql+psycopg//user:{SECRET}@127.0.0.1/x", "not a SQLAlchemy URL"),
        (f"postgresql://user:{SECRET}@127.0.0.1:abc/x", "port is not a number"),
        (f"postgres://user:{SECRET}@127.0.0.1/x", "write postgresql\\+psycopg"),
        (f"mysql://user:{SECRET}@127.0.0.1/x", "supports SQLite and PostgreSQL"),
        ("foo://bar", "supports SQLite and PostgreSQL"),
        (f"user:{SECRET}@127.0.0.1", "not a SQLAlchemy URL"),
    ],
)
def test_bad_urls_are_config_errors_that_never_show_the_password(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        EventStore(url)
    assert SECRET not in str(info.value)
    assert "the url argument" in str(info.value)


def test_the_cli_names_the_environment_variable_and_hides_the_password(tmp_path: Path) -> None:
    env = {**os.environ, "INSYNC_DATABASE_URL": f"postgresql+psycopg//user:{SECRET}@127.0.0.1/x"}
    result = subprocess.run(
        [str(Path(sys.executable).with_name("insync")), "status"], capture_output=True, text=True, env=env
    )
    assert result.returncode != 0
    assert SECRET not in result.stdout + result.stderr
    assert "$INSYNC_DATABASE_URL" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unwritable_location_names_the_folder() -> None:
    with pytest.raises(StoreError, match=r"cannot create the folder /proc/\S+ for the insync store"):
        EventStore("sqlite:////proc/insync-test/x/insync.db")


# ---------------------------------------------------------------------- reading creates nothing
def test_read_only_commands_never_create_a_store(tmp_path: Path) -> None:
    target = tmp_path / "nowhere" / "insync.db"
    for command in (["status"], ["why", "a"], ["history", "a"]):
        result = subprocess.run(
            [
                str(Path(sys.executable).with_name("insync")),
                "--database-url",
                f"sqlite:///{target}",
                *command,
            ],
            capture_output=True,
            text=True,
        )
        assert result.returncode != 0
        assert "there is no insync store" in result.stderr
    assert not target.parent.exists()
    with pytest.raises(StoreError, match="no insync store"):
        EventStore(f"sqlite:///{target}", read_only=True)


def test_read_only_reads_an_existing_store(sqlite_url: str) -> None:
    with EventStore(sqlite_url) as store:
        store.register([AssetSpec("a", code_version="1")])
        store.record_materialization("a")
    with EventStore(sqlite_url, read_only=True) as store:
        assert store.status("a").status.value == "FRESH"


def test_history_of_an_unknown_asset_is_an_unknown_asset_error(any_store: EventStore) -> None:
    any_store.register([AssetSpec("orders")])
    assert any_store.history("orders") == []
    with pytest.raises(UnknownAssetError, match="did you mean 'orders'"):
        any_store.history("order")


def test_another_applications_sqlite_file_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    before = path.read_bytes()
    with pytest.raises(StoreError, match=r"another application's database \(tables users\)"):
        EventStore(f"sqlite:///{path}")
    assert path.read_bytes() == before
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


# ------------------------------------------------------------------------ fields, both stores
def _bad_calls(store: EventStore) -> list[tuple[str, Any, type[InsyncError]]]:
    deep: Any = {}
    for _ in range(5000):
        deep = {"x": deep}
    return [
        ("run_id over 255", lambda: store.record_materialization("a", run_id="r" * 256), ConfigError),
        ("framework over 64", lambda: store.record_materialization("a", framework="f" * 65), ConfigError),
        ("NUL in run_id", lambda: store.record_materialization("a", run_id="r\x00"), ConfigError),
        ("bytes run_id", lambda: store.record_materialization("a", run_id=b"r"), ConfigError),
        ("surrogate key", lambda: store.record_materialization("a\ud800"), InvalidAssetKey),
        (
            "surrogate version",
            lambda: store.record_materialization("a", data_version="v\ud800"),
            InvalidDataVersion,
        ),
        ("NUL version", lambda: store.record_observation("src", "v\x00"), InvalidDataVersion),
        ("NaN metadata", lambda: store.record_materialization("a", metadata={"x": math.nan}), ConfigError),
        (
            "Infinity metadata",
            lambda: store.record_observation("src", "v", metadata={"x": math.inf}),
            ConfigError,
        ),
        ("deep metadata", lambda: store.record_materialization("a", metadata=deep), ConfigError),
        ("int metadata key", lambda: store.record_materialization("a", metadata={1: 2}), ConfigError),
        ("limit -1", lambda: store.history("a", limit=-1), ConfigError),
        ("limit 'x'", lambda: store.history("a", limit="x"), ConfigError),
        ("deps None", lambda: AssetSpec("x", deps=None), ConfigError),
        ("deps 1", lambda: AssetSpec("x", deps=1), ConfigError),
        ("register None", lambda: store.register(None), ConfigError),
        ("register ['x']", lambda: store.register(["x"]), ConfigError),
        ("inputs [1]", lambda: store.record_materialization("a", inputs=[1]), ConfigError),
        ("parameters junk", lambda: store.record_materialization("a", parameters=[1]), ConfigError),
        ("items junk", lambda: store.record_materializations(["a"]), ConfigError),
        ("partition NUL", lambda: store.record_materialization("p", partition="e\x00u"), ConfigError),
    ]


def test_every_bad_field_is_a_clear_error_and_changes_nothing(any_store: EventStore) -> None:
    store = any_store
    store.register(
        [
            AssetSpec("a", code_version="1"),
            AssetSpec("src", kind="observable"),
            AssetSpec("p", partitions=StaticPartitions(["eu"])),
        ]
    )
    store.record_materialization("a")
    before = (store.last_event_id(), store.definitions_revision())
    for name, call, error in _bad_calls(store):
        with pytest.raises(error):
            call()
        assert (store.last_event_id(), store.definitions_revision()) == before, name
    assert store.history("a")[0].run_id is None


# --------------------------------------------------------------------------------- fuzzing
keys = st.lists(st.text(min_size=0, max_size=6), min_size=1, max_size=3).map("/".join)
texts = st.one_of(st.none(), st.text(max_size=300), st.binary(max_size=4), st.integers())
json_like = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    key=keys,
    version=st.one_of(st.none(), st.text(max_size=20)),
    run_id=texts,
    framework=texts,
    metadata=st.one_of(st.none(), st.dictionaries(st.text(max_size=4), json_like, max_size=3)),
    partition=st.one_of(st.none(), st.text(max_size=8)),
)
def test_fuzz_the_public_api(
    any_store: EventStore,
    key: str,
    version: str | None,
    run_id: Any,
    framework: Any,
    metadata: Any,
    partition: Any,
) -> None:
    """Whatever a caller passes: a record that reads back the same, or an InsyncError and no change."""
    store = any_store
    before = store.last_event_id()
    try:
        spec = AssetSpec(key, partitions=StaticPartitions([partition]) if partition else None)
        store.register([spec])
        event = store.record_materializations(
            [
                Materialization(
                    spec.key,
                    data_version=None if version is None else DataVersion(version),
                    run_id=run_id,
                    framework=framework,
                    metadata=metadata or {},
                    partition=partition or None,
                )
            ]
        )[0]
    except InsyncError:
        assert store.last_event_id() == before
        return
    (read,) = store.history(key, limit=1)
    expected_run = event.run_id if run_id is None else run_id  # no code version: a run id stands in
    assert (read.id, read.run_id, read.framework, read.partition) == (
        event.id,
        expected_run,
        framework,
        partition or None,
    )
    assert read.metadata == (metadata or {})
    assert str(read.data_version) == str(event.data_version)


# ------------------------------------------------------------------------------ value cache
class _Planted:
    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, ("touch planted-ran",))


def test_a_planted_pickle_is_never_loaded(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cache = ValueCache(str(tmp_path / "values"))
    version = DataVersion("v1")
    cache.put("orders", version, {"rows": 3})
    assert cache.get("orders", version) == {"rows": 3}
    path = cache.path("orders", version)
    Path(path).write_bytes(pickle.dumps(_Planted()))  # someone with write access to the bucket
    with caplog.at_level(logging.WARNING, logger="insync"):
        assert cache.get("orders", version) is NO_VALUE
    assert "not signed with this cache key" in caplog.text
    assert not (Path.cwd() / "planted-ran").exists()


def test_a_valid_entry_moved_to_another_asset_is_refused(tmp_path: Path) -> None:
    cache = ValueCache(str(tmp_path / "values"))
    cache.put("a", DataVersion("v"), "value of a")
    Path(cache.path("b", DataVersion("v"))).parent.mkdir(parents=True, exist_ok=True)
    Path(cache.path("b", DataVersion("v"))).write_bytes(Path(cache.path("a", DataVersion("v"))).read_bytes())
    assert cache.get("b", DataVersion("v")) is NO_VALUE
    other_key = ValueCache(str(tmp_path / "values"), key="another worker's key")
    assert other_key.get("a", DataVersion("v")) is NO_VALUE  # workers sharing a cache share the key


def test_the_json_serializer_refuses_what_it_would_change(tmp_path: Path) -> None:
    from insync.core import SerializationError

    cache = ValueCache(str(tmp_path / "values"), serializer="json")
    for value in ({1: (1, 2)}, (1, 2), {"x": math.nan}):
        with pytest.raises(SerializationError, match=r"round trip|JSON"):
            cache.put("a", DataVersion("v"), value)
    cache.put("a", DataVersion("v"), {"1": [1, 2.5, None]})
    assert cache.get("a", DataVersion("v")) == {"1": [1, 2.5, None]}


def test_temp_files_of_killed_writers_are_cleaned_up(tmp_path: Path) -> None:
    cache = ValueCache(str(tmp_path / "values"))
    cache.put("a", DataVersion("v1"), 1)
    folder = Path(cache.path("a", DataVersion("v1"))).parent
    leftover, recent = folder / ".tmp-dead", folder / ".tmp-live"
    leftover.write_bytes(b"x" * 1024)
    recent.write_bytes(b"x")
    old = time.time() - 7200
    os.utime(leftover, (old, old))
    cache.put("a", DataVersion("v2"), 2)
    assert not leftover.exists() and recent.exists()  # a writer still running keeps its file


def test_a_store_on_a_read_only_mount_can_be_read(tmp_path: Path) -> None:
    """A read-only bind mount in a private mount namespace (root on this machine may mount)."""
    import shutil

    folder, mounted = tmp_path / "store", tmp_path / "ro"
    with EventStore(f"sqlite:///{folder / 'insync.db'}") as store:
        store.register([AssetSpec("a", code_version="1")])
        store.record_materialization("a")
    mounted.mkdir()
    if shutil.which("unshare") is None:
        pytest.skip("unshare(1) is not installed")
    script = (
        f"mount --bind {folder} {mounted} && mount -o remount,bind,ro {mounted} && "
        f"touch {mounted}/probe 2>/dev/null; test ! -e {mounted}/probe && "
        f"{Path(sys.executable).with_name('insync')} --database-url sqlite:///{mounted}/insync.db status"
    )
    result = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True)
    if "Operation not permitted" in result.stderr or "permission denied" in result.stderr.lower():
        pytest.skip(f"cannot make a private read-only mount here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    assert "Synced" in result.stdout


def test_empty_names_are_refused_and_empty_metadata_strings_kept(any_store: EventStore) -> None:
    """Found by the fuzz suite: framework="" was stored as None, a silent change."""
    store = any_store
    store.register([AssetSpec("a", code_version="1")])
    for field in ("run_id", "framework"):
        with pytest.raises(ConfigError, match="empty string; pass None"):
            store.record_materialization("a", **{field: ""})
    event = store.record_materialization("a", metadata={"": ""})
    assert store.history("a")[0].metadata == {"": ""} == event.metadata


def test_no_value_has_no_truth_value() -> None:
    """A cached 0 or "" is a value: `if decision.value:` would treat it as missing."""
    with pytest.raises(TypeError, match="is NO_VALUE"):
        bool(NO_VALUE)


def test_events_are_hashable(any_store: EventStore) -> None:
    any_store.register([AssetSpec("a", code_version="1")])
    event = any_store.record_materialization("a", metadata={"rows": 3})
    assert event in {event}
