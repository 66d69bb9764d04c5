"""Asset key mapping and every bad-input error, without running Airflow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from insync.core import ConfigError, InvalidAssetKey


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("analytics/orders", "analytics/orders"),
        ("orders", "orders"),
        ("s3://bucket/raw/orders.csv", "s3/bucket/raw/orders.csv"),
        ("file:///data/numbers.txt", "file/data/numbers.txt"),
        ("postgres://db/public/orders/", "postgres/db/public/orders"),
    ],
)
def test_asset_names_map_to_insync_keys(name: str, key: str):
    from insync.adapters.airflow._keys import key_from_asset_name

    assert str(key_from_asset_name(name)) == key


def test_a_name_with_an_empty_part_says_how_to_fix_it():
    from insync.adapters.airflow._keys import key_from_asset_name

    with pytest.raises(InvalidAssetKey, match=r"Asset\(name='raw/orders'"):
        key_from_asset_name("raw//orders")


def test_task_key_rules():
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.sdk import DAG, Asset
    from insync.adapters.airflow._keys import VersionSettings, asset_key_for

    with DAG("etl", schedule=None):
        plain = BashOperator(task_id="load", bash_command="x")
        one = BashOperator(task_id="one", bash_command="x", outlets=[Asset("raw/orders")])
        two = BashOperator(task_id="two", bash_command="x", outlets=[Asset("raw/a"), Asset("raw/b")])
        chosen = BashOperator(
            task_id="chosen",
            bash_command="x",
            outlets=[Asset("raw/a"), Asset("raw/b", extra={"insync": {"key": "raw/b"}})],
        )
    default = VersionSettings()
    assert str(asset_key_for(plain, default)) == "etl/load"
    assert str(asset_key_for(one, default)) == "raw/orders"
    assert str(asset_key_for(one, VersionSettings(key="x/y"))) == "x/y"
    assert str(asset_key_for(chosen, default)) == "raw/b"
    with pytest.raises(ConfigError, match="2 outlet Assets"):
        asset_key_for(two, default)


def test_bad_settings_fail_when_the_dag_is_parsed():
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.sdk import DAG
    from insync.adapters.airflow import versioned, versioned_operator

    with pytest.raises(InvalidAssetKey, match="key="):
        versioned(key="raw//orders")
    with pytest.raises(InvalidAssetKey, match="deps="):
        versioned(deps=["ok/one", "bad/"])
    with pytest.raises(ConfigError, match="data_version= must be a function"):
        versioned(data_version="v1")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="code_version= must be a string"):
        versioned(code_version=1)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"store= must be a URL string or an insync\.core\.EventStore"):
        versioned(store=42)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"cache= must be a URL string or an insync\.core\.ValueCache"):
        versioned(cache=42)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="needs an Airflow operator instance"):
        versioned_operator(lambda: 1)
    with DAG("twice", schedule=None):
        op = versioned_operator(BashOperator(task_id="t", bash_command="x"))
        with pytest.raises(ConfigError, match="already versioned"):
            versioned_operator(op)


def test_store_and_cache_take_an_object_or_a_url(sqlite_url: str, tmp_path: Path):
    from insync.adapters.airflow import InsyncObservationTrigger
    from insync.adapters.airflow._keys import opened_store, value_cache
    from insync.core import EventStore, ValueCache

    with EventStore(sqlite_url) as store:
        with opened_store(store) as given:
            assert given is store
        assert store.definitions() == {}  # still open: its owner closes it
        # The triggerer gets the URL, never the open store.
        trigger = InsyncObservationTrigger(key="raw/x", observe="os.getcwd", store=store)
        assert trigger.serialize()[1]["store"] == store.settings.database_url
    with opened_store(sqlite_url) as opened:
        assert opened.settings.database_url == store.settings.database_url
    cache = ValueCache(str(tmp_path / "values"))
    assert value_cache(cache) is cache
    assert isinstance(value_cache(str(tmp_path / "other")), ValueCache)


def test_versioned_above_task_is_refused_with_the_fix():
    from airflow.sdk import task
    from insync.adapters.airflow import versioned

    @task
    def produce() -> int:
        return 1

    with pytest.raises(ConfigError, match="put it below @task"):
        versioned(produce)


def test_wrapping_keeps_the_operator_class_name_for_the_ui():
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.sdk import DAG
    from insync.adapters.airflow import versioned_operator

    with DAG("names", schedule=None):
        op = versioned_operator(BashOperator(task_id="t", bash_command="x"))
    assert type(op).__name__ == "BashOperator"
    assert isinstance(op, BashOperator)
    assert op.task_type == "BashOperator"


def test_deferrable_sensor_needs_an_importable_observe_function():
    from insync.adapters.airflow import InsyncObservationSensor

    with pytest.raises(ConfigError, match="cannot be imported by the triggerer"):
        InsyncObservationSensor(task_id="s", observe=lambda: "v1", deferrable=True)


def test_import_without_airflow_names_the_extra():
    script = (
        "import sys\n"
        "sys.modules['airflow'] = None\n"
        "sys.modules['airflow.sdk'] = None\n"
        "try:\n"
        "    import insync.adapters.airflow\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert "pip install 'insync[airflow]'" in result.stdout


def test_airflow_connections_become_sqlalchemy_urls():
    from airflow.sdk import Connection
    from insync.adapters.airflow.observe import _sqlalchemy_url

    pg = Connection(
        conn_id="pg",
        conn_type="postgres",
        host="db",
        login="me",
        password="pw",
        port=5432,
        schema="shop",
    )
    assert _sqlalchemy_url(pg) == "postgresql+psycopg://me:pw@db:5432/shop"
    lite = Connection(conn_id="lite", conn_type="sqlite", host="/data/x.db")
    assert _sqlalchemy_url(lite) == "sqlite:////data/x.db"


def test_an_ambiguous_outlet_fails_when_the_operator_is_wrapped():
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.sdk import DAG, Asset
    from insync.adapters.airflow import versioned_operator

    with DAG("ambiguous", schedule=None), pytest.raises(ConfigError, match="pass key="):
        versioned_operator(BashOperator(task_id="t", bash_command="x", outlets=[Asset("a/x"), Asset("a/y")]))
