"""The store contract, run on SQLite and PostgreSQL alike."""

from __future__ import annotations

from pathlib import Path

import pendulum
import pytest
import sqlalchemy as sa
from insync.core import (
    AssetKey,
    AssetSpec,
    ConfigError,
    DataVersion,
    EventStore,
    InvalidDataVersion,
    SchemaVersionError,
    StaleStatus,
    StoreError,
    StoreUnavailable,
    UnknownAssetError,
)

K = AssetKey


def test_definitions_round_trip(any_store: EventStore) -> None:
    spec = AssetSpec("a/b", code_version="1", deps=["raw/x"], framework="airflow", metadata={"owner": "me"})
    any_store.register([spec])
    defs = any_store.definitions()
    assert defs[K("a/b")] == spec
    assert defs[K("raw/x")].kind == "external"  # undefined dep became a placeholder
    any_store.register([AssetSpec("a/b", code_version="2")])
    assert any_store.definitions()[K("a/b")].deps == ()


def test_events_history_and_provenance(any_store: EventStore) -> None:
    any_store.register([AssetSpec("src", kind="observable"), AssetSpec("a", code_version="1", deps=["src"])])
    before = pendulum.now("UTC")
    obs = any_store.record_observation("src", "s1", run_id="o1", framework="prefect", metadata={"rows": 3})
    mat = any_store.record_materialization("a", run_id="r1", framework="airflow", metadata={"n": [1, 2]})
    assert obs.id < mat.id
    (latest, *_) = any_store.history("a")
    assert latest.id == mat.id and latest.kind == "materialization"
    assert latest.inputs[0].key == K("src") and latest.inputs[0].data_version == DataVersion("s1")
    assert latest.inputs[0].event_id == obs.id
    assert latest.metadata == {"n": [1, 2]} and latest.framework == "airflow" and latest.code_version == "1"
    assert latest.timestamp >= before.subtract(seconds=1) and latest.timestamp.timezone_name == "UTC"
    assert any_store.history("src")[0].metadata == {"rows": 3}
    assert any_store.latest_event("a", kind="observation") is None
    assert any_store.last_event_id() == mat.id
    assert any_store.history("a", limit=1) == [latest]


def test_change_markers_move_with_registrations_and_events(any_store: EventStore) -> None:
    assert (any_store.definitions_revision(), any_store.last_event_id()) == (0, 0)
    any_store.register([AssetSpec("a", code_version="1")])
    any_store.register([AssetSpec("a", code_version="2")])
    assert any_store.definitions_revision() == 2
    event = any_store.record_materialization("a")
    assert any_store.last_event_id() == event.id and any_store.definitions_revision() == 2


def test_registering_unchanged_definitions_writes_nothing(any_store: EventStore) -> None:
    specs = [AssetSpec("a", code_version="1"), AssetSpec("b", code_version="1", deps=["a", "src"])]
    for _ in range(3):
        any_store.register(specs)
    assert any_store.definitions_revision() == 1
    any_store.register([AssetSpec("src", kind="external")])  # a placeholder is there already
    assert any_store.definitions_revision() == 1
    any_store.register([AssetSpec("b", code_version="2", deps=["a", "src"])])
    assert any_store.definitions_revision() == 2


def test_statuses_for_a_graph(any_store: EventStore) -> None:
    any_store.register(
        [AssetSpec(f"n{i}", code_version="1", deps=[f"n{i - 1}"] if i else []) for i in range(20)]
    )
    for i in range(20):
        any_store.record_materialization(f"n{i}")
    statuses = any_store.statuses()
    assert len(statuses) == 20 and all(s.status is StaleStatus.FRESH for s in statuses.values())
    any_store.register([AssetSpec("n0", code_version="2")])
    assert [u.key for u in any_store.status("n19").upstream] == [K("n0")]
    assert set(any_store.statuses(["n5", "n6"], upstream=False)) == {K("n5"), K("n6")}


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.record_materialization("nope"),
        lambda s: s.record_observation("nope", "1"),
        lambda s: s.status("nope"),
        lambda s: s.statuses(["nope"]),
        lambda s: s.snapshot_inputs("nope"),
    ],
)
def test_unknown_keys_are_named_with_a_suggestion(any_store: EventStore, call) -> None:  # type: ignore[no-untyped-def]
    any_store.register([AssetSpec("nope2")])
    with pytest.raises(UnknownAssetError, match=r"'nope'.*did you mean 'nope2'"):
        call(any_store)


def test_bad_values_record_nothing(any_store: EventStore) -> None:
    any_store.register([AssetSpec("a", code_version="1"), AssetSpec("s", kind="observable")])
    with pytest.raises(InvalidDataVersion, match="reserved"):
        any_store.record_observation("s", "NULL")
    with pytest.raises(ConfigError, match="JSON"):
        any_store.record_materialization("a", metadata={"x": {1, 2}})
    assert any_store.last_event_id() == 0


def test_a_newer_store_is_refused_untouched(store_url: str) -> None:
    EventStore(store_url).close()
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE insync_alembic_version SET version_num = '9999_future'"))
    with pytest.raises(SchemaVersionError, match=r"newer insync.*9999_future.*upgrade insync"):
        EventStore(store_url)
    with engine.connect() as conn:
        assert (
            conn.execute(sa.text("SELECT version_num FROM insync_alembic_version")).scalar() == "9999_future"
        )
    engine.dispose()


def test_damaged_store_without_version_is_refused(store_url: str) -> None:
    EventStore(store_url).close()
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE insync_alembic_version"))
    engine.dispose()
    with pytest.raises(StoreError, match="no insync_alembic_version row"):
        EventStore(store_url)


def test_a_file_that_is_not_a_database_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "insync.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match=r"not a readable insync store.*nothing was changed"):
        EventStore(f"sqlite:///{path}")
    assert path.read_bytes() == b"this is not sqlite" * 100


def test_database_down_says_where_and_what_to_do() -> None:
    with pytest.raises(StoreUnavailable, match=r"cannot reach the insync store .*127\.0\.0\.1:1.*running"):
        EventStore("postgresql+psycopg://postgres@127.0.0.1:1/test")


def test_location_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with EventStore() as store:
        assert store.url.database == str(Path.cwd() / ".insync" / "insync.db")
    monkeypatch.setenv("INSYNC_HOME", str(tmp_path / "home"))
    with EventStore() as store:
        assert store.url.database == str(tmp_path / "home" / "insync.db")
    monkeypatch.setenv("INSYNC_DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    with EventStore() as store:
        assert store.url.database == str(tmp_path / "env.db")
    with EventStore(f"sqlite:///{tmp_path / 'arg.db'}") as store:
        assert store.url.database == str(tmp_path / "arg.db")
    monkeypatch.setenv("INSYNC_DATABASE_URL", "not a url")
    with pytest.raises(ConfigError, match=r"\$INSYNC_DATABASE_URL"):
        EventStore()


def test_shares_a_database_with_airflow_alembic(store_url: str) -> None:
    database = sa.make_url(store_url).database
    if store_url.startswith("sqlite"):
        Path(str(database)).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:  # another tool's alembic table must not confuse us
        conn.execute(sa.text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
        conn.execute(sa.text("INSERT INTO alembic_version VALUES ('airflow_rev')"))
    engine.dispose()
    if store_url.startswith("sqlite"):  # a file is one application's: sharing it must be asked for
        with pytest.raises(StoreError, match=r"another application's database.*share_database=True"):
            EventStore(store_url)
    with EventStore(store_url, share_database=True) as store:
        store.register([AssetSpec("a")])
        assert store.schema_revision() == "0003_automation_claims"


def test_migrations_build_exactly_the_schema_the_code_uses(store_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from insync.core import _schema

    EventStore(store_url).close()
    engine = sa.create_engine(store_url)
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), _schema.metadata)
    engine.dispose()
    ignored = {"insync_alembic_version"}
    assert [d for d in diffs if not (d[0] == "remove_table" and d[1].name in ignored)] == []
    versions = Path(_schema.__file__).with_name("migrations") / "versions"
    assert sorted(p.stem for p in versions.glob("0*.py")) == list(_schema.KNOWN_REVISIONS)


def test_a_write_rechecks_the_revision_a_newer_insync_may_have_moved(store_url: str) -> None:
    """A worker opened the store, then a newer insync migrated it: the worker's next write is
    refused and writes nothing (the revision is read inside the write transaction)."""
    with EventStore(store_url) as store:
        store.register([AssetSpec("a", code_version="1")])
        engine = sa.create_engine(store_url)
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE insync_alembic_version SET version_num = '9999_future'"))
        with pytest.raises(SchemaVersionError, match=r"newer insync.*9999_future.*not changed"):
            store.record_materialization("a")
        with engine.begin() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM insync_events")).scalar() == 0
            conn.execute(sa.text("UPDATE insync_alembic_version SET version_num = '0001_initial'"))
        with pytest.raises(SchemaVersionError, match=r"0001_initial.*insync db upgrade"):
            store.register([AssetSpec("b")])
        engine.dispose()


def test_opening_a_current_store_reads_its_revision_in_one_statement(store_url: str) -> None:
    """Every task process opens the store: on a current store, opening runs one statement (the
    version read), not a catalog lookup."""
    EventStore(store_url).close()
    statements: list[str] = []

    def seen(conn: object, cursor: object, statement: str, *rest: object) -> None:
        statements.append(statement)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", seen)
    try:
        EventStore(store_url).close()
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", seen)
    assert [s for s in statements if not s.startswith(("BEGIN", "PRAGMA"))] == [
        "SELECT version_num FROM insync_alembic_version"
    ]
