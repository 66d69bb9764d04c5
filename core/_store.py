"""The event store: append-only events, a latest-record index and the registered definitions.

Writes happen here, one transaction each; status reads go through `_loading.load_graph` (a fixed
number of queries) and the pure functions of `_staleness`: no query runs per asset or per edge.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import logging
import os
import random
import re
import shlex
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

import pendulum
import sqlalchemy as sa

from . import _schema as t
from ._keys import AssetKey, CoercibleToAssetKey
from ._loading import ancestors_cte, chunks, input_pairs, inputs_of, load_graph, load_step_graph, paused_gc
from ._model import AssetSpec, AssetStatus, Event, EventKind, InputVersion, StaleStatus, freeze_metadata
from ._observation import (
    Observation,
    ObservationResult,
    Observations,
    changed_observations,
    coerce_observations,
    missing_partitions,
    unread_consumers,
)
from ._partitions import NOT_PARTITIONED, DynamicPartitions, check_partition_key
from ._settings import Settings, resolve_settings
from ._staleness import (
    Graph,
    compute_statuses,
    parameter_causes,
    partition_status,
    provenance_digest,
    topological_order,
)
from ._validate import check_limit, check_text
from ._versions import DataVersion, logical_data_version, user_data_version
from .errors import (
    ConfigError,
    InvalidPartitionKey,
    SchemaVersionError,
    StoreError,
    StoreUnavailable,
    UnknownAssetError,
)

__all__ = ["REGISTERED", "EventStore", "Materialization", "StepStore"]

log = logging.getLogger("insync")

T = TypeVar("T")
_BUSY_TIMEOUT_S: Final = 30.0
_RETRIES: Final = 8
_MAT: Final = "materialization"
_OBS: Final = "observation"


class _Registered:
    def __repr__(self) -> str:
        return "REGISTERED"


REGISTERED: Final = _Registered()


@dataclass(frozen=True, slots=True)
class Materialization:
    """One materialization to append with `EventStore.record_materializations`.

    `code_version` is the one the step was checked with: a worker still running old code records
    its output under the old version even after a newer worker registered a new one (a rolling
    deploy). The default takes the registered version.
    """

    key: AssetKey
    data_version: DataVersion | None = None  # None: logical (code version + inputs + partition + parameters)
    run_id: str | None = None
    framework: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    inputs: tuple[InputVersion, ...] | None = None  # None: the inputs' versions right now
    partition: str | None = None
    parameters: tuple[tuple[str, str], ...] = ()  # (name, fingerprint): see fingerprint_parameters
    code_version: str | _Registered | None = REGISTERED
    # A step's record: the same run recording the same thing again (workers racing on one task's
    # retries) gets the first record back instead of appending another.
    once_per_run: bool = False


class StepStore(Protocol):
    """What `Step` needs of a store: the whole protocol of a versioned step is these two calls.

    `EventStore` implements it; a store of your own (an HTTP client for a remote insync, a
    fake in tests) can too.
    """

    def check_view(
        self, spec: AssetSpec, partition: str | None = None, parameters: Sequence[tuple[str, str]] = ()
    ) -> tuple[AssetStatus, tuple[InputVersion, ...]]: ...

    def record_materialization(
        self,
        key: CoercibleToAssetKey,
        *,
        data_version: DataVersion | str | None = None,
        run_id: str | None = None,
        framework: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        inputs: Sequence[InputVersion] | None = None,
        partition: str | None = None,
        parameters: Sequence[tuple[str, str]] = (),
        code_version: str | _Registered | None = REGISTERED,
        once_per_run: bool = False,
    ) -> Event: ...


class EventStore:
    """The insync store on any SQLAlchemy URL (SQLite embedded by default, PostgreSQL shared).

    `EventStore()` resolves its location at call time: explicit url > $INSYNC_DATABASE_URL >
    $INSYNC_HOME > ./.insync. Opening creates an empty store, refuses one written by another
    schema revision, and never rewrites data silently.

    `read_only=True` (the CLI's status/why/history and the catalog) never creates or migrates a
    store, and reads a SQLite store on a read-only mount. A SQLite file that already holds
    another application's tables is refused unless `share_database=True`: insync would otherwise
    add its tables to it and switch it to WAL. (On PostgreSQL, sharing a database with Airflow's
    metadata is supported: insync keeps its own version table.)

    :raises StoreUnavailable: the database cannot be reached.
    :raises SchemaVersionError: the store needs `insync db upgrade`, or is newer than this insync.
    :raises StoreError: the file or database is not an insync store, there is no store and
        `read_only` is set, or its folder cannot be created.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        upgrade: bool = False,
        read_only: bool = False,
        share_database: bool = False,
    ) -> None:
        self.settings: Settings = resolve_settings(url)
        self.url = sa.make_url(_normalize_driver(self.settings.database_url))
        self.dialect = self.url.get_backend_name()
        self.read_only = read_only
        if self.dialect == "sqlite":
            self._check_sqlite_file(share_database=share_database)
        self._engine = self._create_engine()
        try:
            self._prepare_schema(upgrade=upgrade)
        except BaseException:
            self._engine.dispose()
            raise

    # ----------------------------------------------------------------------------- lifecycle
    def __repr__(self) -> str:
        return f"EventStore({self.url.render_as_string(hide_password=True)!r})"

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._engine.dispose()

    def _check_sqlite_file(self, *, share_database: bool) -> None:
        """Before anything touches the file: a store to create, to read only, or someone else's."""
        database = self.url.database
        if not database or database == ":memory:":
            return
        path = Path(database)
        where = self.url.render_as_string(hide_password=True)
        if not path.exists():
            if self.read_only:
                absolute = Path("/", database)
                slip = (
                    f" (sqlite:/// starts a path relative to {Path.cwd()}: did you mean "
                    f"sqlite:///{absolute}, with four slashes?)"
                    if not path.is_absolute() and absolute.exists()
                    else ""
                )
                raise StoreError(
                    f"there is no insync store at {path}{slip} (chosen by {self.settings.source}); "
                    "nothing was created. Run a versioned step or `insync db upgrade` to create it, or "
                    "point --database-url / INSYNC_DATABASE_URL / INSYNC_HOME at your store"
                )
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"cannot create the folder {path.parent} for the insync store {where} (chosen by "
                    f"{self.settings.source}): {exc.strerror or exc}; choose a writable location"
                ) from None
            return
        if share_database:
            return
        try:
            with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as probe:
                tables = [
                    row[0] for row in probe.execute("SELECT name FROM sqlite_master WHERE type='table'")
                ]
        except sqlite3.Error:
            return  # not a database at all: the schema check says so and changes nothing
        foreign = sorted(t for t in tables if not t.startswith("insync_") and t != "sqlite_sequence")
        if foreign and not any(t.startswith("insync_") for t in tables):
            shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            raise StoreError(
                f"{where} is another application's database (tables {shown}); insync will not add "
                "its tables to it nor switch it to WAL. Nothing was changed: use a file of its own, "
                "or EventStore(url, share_database=True) if sharing it is intended"
            )

    def _create_engine(self) -> sa.Engine:
        if self.dialect != "sqlite":
            try:
                # No hstore: insync stores none, and looking its type up costs every task a query.
                return sa.create_engine(self.url, pool_pre_ping=True, use_native_hstore=False)
            except ImportError as exc:
                driver = self.url.get_driver_name()
                package = "psycopg2-binary" if driver == "psycopg2" else "'insync[postgres]'"
                raise ConfigError(
                    f"the insync store {self.url.render_as_string(hide_password=True)} needs the "
                    f"PostgreSQL driver {driver}, which is not installed ({exc}): pip install {package}"
                ) from None
        read_only = self.read_only
        database = self.url.database
        if (
            read_only
            and database
            and database != ":memory:"
            and not os.access(Path(database).parent, os.W_OK)
        ):
            # A read-only mount: SQLite cannot create the WAL side files there; read immutably.
            def connect() -> sqlite3.Connection:
                return sqlite3.connect(
                    f"file:{database}?mode=ro&immutable=1",
                    uri=True,
                    timeout=_BUSY_TIMEOUT_S,
                    check_same_thread=False,
                )

            engine = sa.create_engine("sqlite://", creator=connect)
        else:
            engine = sa.create_engine(self.url, connect_args={"timeout": _BUSY_TIMEOUT_S})

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # We issue BEGIN ourselves (below); pysqlite's implicit transactions would defer the
            # write lock to the first write and turn concurrent upgrades into "database is locked".
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA busy_timeout = {int(_BUSY_TIMEOUT_S * 1000)}")
            if not read_only:
                cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.close()

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn: sa.Connection) -> None:
            write = conn.get_execution_options().get("insync_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine

    # ------------------------------------------------------------------------- transactions
    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        try:
            with self._engine.connect() as conn, conn.begin():
                yield conn
        except sa.exc.OperationalError as exc:
            raise self._unavailable(exc) from exc
        except sa.exc.DatabaseError as exc:
            raise self._not_a_store(exc) from exc

    def _write(self, work: Callable[[sa.Connection], T], *, migrating: bool = False) -> T:
        """Run `work` in one write transaction, retrying lock timeouts, deadlocks and conflicts.

        The transaction first reads the schema revision: a newer insync may have migrated the store
        since it was opened (a long-running worker during a rolling upgrade), and a write must never
        touch a store of another revision.
        """
        for attempt in range(_RETRIES):
            try:
                with self._engine.connect() as conn:
                    conn.execution_options(insync_write=True)
                    with conn.begin():
                        if not migrating:
                            self._verify_revision(conn)
                        return work(conn)
            except sa.exc.DBAPIError as exc:
                if not _is_retryable(exc) or attempt == _RETRIES - 1:
                    if isinstance(exc, sa.exc.OperationalError):
                        raise self._unavailable(exc) from exc
                    raise
                time.sleep(min(2.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.5))
        raise AssertionError("unreachable")

    def _unavailable(self, exc: sa.exc.DBAPIError) -> StoreError:
        where = self.url.render_as_string(hide_password=True)
        if _is_retryable(exc):
            return StoreUnavailable(
                f"the insync store {where} stayed locked by other writers for "
                f"{_BUSY_TIMEOUT_S:.0f}s ({exc.orig}); retry, or use PostgreSQL for many "
                "concurrent workers"
            )
        text = str(exc.orig).lower()
        reached = "connection" not in text and "unable to open" not in text
        if reached and ("not a database" in text or "no such" in text or "does not exist" in text):
            return self._not_a_store(exc)  # reached it, but its tables are not ours
        missing = re.search(r'(database|role) "([^"]+)" does not exist', str(exc.orig))
        if missing is not None and self.dialect == "postgresql":
            return self._missing_on_server(missing.group(1), missing.group(2))
        return StoreUnavailable(
            f"cannot reach the insync store {where} (chosen by {self.settings.source}): "
            f"{' '.join(str(exc.orig).split())}; check the database is running and the URL is right"
        )

    def _missing_on_server(self, what: str, name: str) -> StoreUnavailable:
        """The server answered, but the URL's database or user is not there: say how to create it."""
        options = [f"-h {shlex.quote(self.url.host)}"] if self.url.host else []
        options += [f"-p {self.url.port}"] if self.url.port else []
        if what == "database":
            options += [f"-U {shlex.quote(self.url.username)}"] if self.url.username else []
            command = " ".join(["createdb", *options, shlex.quote(name)])
            fix = f"create it with `{command}`, or point the URL at an existing database"
        else:
            command = " ".join(["createuser", *options, shlex.quote(name)])
            fix = f"fix the user in the URL, or create the role with `{command}`"
        server = f"{self.url.host or 'localhost'}:{self.url.port or 5432}"
        return StoreUnavailable(
            f'the PostgreSQL {what} "{name}" of the insync store '
            f"{self.url.render_as_string(hide_password=True)} (chosen by {self.settings.source}) does "
            f"not exist on {server}; {fix}"
        )

    def _not_a_store(self, exc: Exception) -> StoreError:
        where = self.url.render_as_string(hide_password=True)
        return StoreError(
            f"{where} is not a readable insync store ({getattr(exc, 'orig', exc)}); nothing was "
            "changed: move the file aside or point INSYNC_DATABASE_URL/INSYNC_HOME elsewhere"
        )

    # ---------------------------------------------------------------------------- schema
    def schema_revision(self) -> str | None:
        """The store's schema revision, or None for an empty database."""
        with self._read() as conn:
            return _read_revision(conn)

    def _prepare_schema(self, *, upgrade: bool) -> None:
        revision = self._current_revision()
        if revision == t.HEAD_REVISION:
            return
        self._check_known(revision)
        in_memory = self.dialect == "sqlite" and self.url.database in (None, "", ":memory:")
        if revision is None and self.read_only and not in_memory:
            raise StoreError(
                f"{self.url.render_as_string(hide_password=True)} holds no insync store (chosen by "
                f"{self.settings.source}); nothing was created. Run a versioned step or "
                "`insync db upgrade` to create it"
            )
        if revision is not None and not upgrade:
            raise SchemaVersionError(
                f"the insync store {self.url.render_as_string(hide_password=True)} has schema "
                f"revision {revision}; this insync needs {t.HEAD_REVISION}: run `insync db upgrade`"
            )
        self._write(self._migrate, migrating=True)

    def _current_revision(self) -> str | None:
        """The schema revision in one statement on the usual path, a store that exists: this runs
        in every task process. The catalog is asked only when that statement fails (a new
        database, another application's, a damaged store, not a database), to say which."""
        try:
            conn = self._engine.connect()
        except sa.exc.OperationalError as exc:
            raise self._unavailable(exc) from exc
        except sa.exc.DatabaseError as exc:
            raise self._not_a_store(exc) from exc
        with conn:
            if self.dialect == "postgresql":  # one round trip: no BEGIN, no COMMIT around it
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            try:
                revision = conn.execute(_REVISION).scalar()
                conn.commit()
                return revision
            except sa.exc.DBAPIError:
                conn.rollback()
        return self.schema_revision()

    def _verify_revision(self, conn: sa.Connection) -> None:
        """:raises SchemaVersionError: the store is no longer at this insync's revision."""
        try:
            revision = conn.execute(_REVISION).scalar()
        except sa.exc.DBAPIError as exc:  # the version table is gone: not ours to write to
            raise self._not_a_store(exc) from exc
        if revision != t.HEAD_REVISION:
            self._check_known(revision)
            raise SchemaVersionError(
                f"the insync store {self.url.render_as_string(hide_password=True)} is now at schema "
                f"revision {revision}; this insync writes {t.HEAD_REVISION}: run `insync db upgrade`"
            )

    def _check_known(self, revision: str | None) -> None:
        if revision is not None and revision not in t.KNOWN_REVISIONS:
            raise SchemaVersionError(
                f"the insync store {self.url.render_as_string(hide_password=True)} was written by "
                f"a newer insync (schema revision {revision!r}; this one knows up to "
                f"{t.HEAD_REVISION!r}); upgrade insync to use it. The store was not changed."
            )

    def _migrate(self, conn: sa.Connection) -> None:
        from alembic import command
        from alembic.config import Config

        if self.dialect == "postgresql":  # one migrator at a time across processes
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(7262351)"))
        revision = _read_revision(conn)  # again, under the lock: another process may have won
        self._check_known(revision)
        if revision == t.HEAD_REVISION:
            return
        if revision is None and _has_insync_tables(conn):
            raise StoreError(
                f"{self.url.render_as_string(hide_password=True)} has insync tables but no "
                f"{t.VERSION_TABLE} row; it was damaged or created by hand. Nothing was changed: "
                "move it aside or restore it from a backup"
            )
        config = Config()
        config.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
        log.info("insync store %s migrated to %s", self, t.HEAD_REVISION)

    # ----------------------------------------------------------------------- definitions
    def register(self, specs: Iterable[AssetSpec]) -> None:
        """Upsert the current definitions of these assets.

        Dependencies that are not defined become `external` placeholders. An `external` spec never
        replaces a materializable or observable definition, so a dbt source does not clobber the
        Airflow task that writes the same table.

        :raises CycleError: the new definitions close a cycle (nothing is written).
        :raises ConfigError: something other than AssetSpec objects.
        """
        if isinstance(specs, AssetSpec) or not isinstance(specs, Iterable) or isinstance(specs, str):
            raise ConfigError(f"register takes a list of AssetSpec, not {type(specs).__name__} {specs!r:.60}")
        items = list(specs)
        for spec in items:
            if not isinstance(spec, AssetSpec):
                raise ConfigError(
                    f"register takes AssetSpec objects, not {type(spec).__name__} {spec!r:.60}; "
                    f"write AssetSpec({spec!r:.40})"
                )
        batch = {spec.key: spec for spec in items}
        if not batch:
            return
        # Unchanged definitions write nothing: no write lock, no revision bump (a sensor poke or
        # an unchanged dbt build re-registers everything it knows, every time).
        with self._read() as conn:
            known = load_graph(conn, list(batch), "deps", with_latest=False).specs
        changed = [spec for spec in batch.values() if _needs_write(spec, known)]
        if changed:
            self._write(lambda conn: self._register(conn, changed))

    def _register(self, conn: sa.Connection, specs: list[AssetSpec]) -> None:
        if self.dialect == "postgresql":
            # Two concurrent registrations could each close half of a cycle the other cannot see
            # yet; registrations are rare, so they take turns (SQLite's BEGIN IMMEDIATE already does).
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(7262352)"))
        now = pendulum.now("UTC")
        rows = [
            {
                "asset_key": str(s.key),
                "code_version": s.code_version,
                "kind": s.kind,
                "framework": s.framework,
                "metadata": s.metadata_json,
                "deps": "\n".join(str(d) for d in s.deps),  # keys hold no control characters
                "updated_at": now,
                "partitions": s.partitions_json,
                "partition_mappings": s.mappings_json,
            }
            for s in specs
        ]
        owning = [r for r in rows if r["kind"] != "external"]
        placeholders = [r for r in rows if r["kind"] == "external"]
        self._upsert(conn, t.definitions, owning, ["asset_key"])
        self._upsert(conn, t.definitions, placeholders, ["asset_key"], only_if_kind="external")
        owned_keys = [str(s.key) for s in specs if s.kind != "external"]
        for chunk in chunks(owned_keys):
            conn.execute(t.deps.delete().where(t.deps.c.asset_key.in_(chunk)))
        dep_rows = [
            {"asset_key": str(s.key), "dep_key": str(d)}
            for s in specs
            if s.kind != "external"
            for d in s.deps
        ]
        if dep_rows:
            conn.execute(t.deps.insert(), dep_rows)
        missing = sorted({r["dep_key"] for r in dep_rows} - set(owned_keys))
        self._insert_placeholders(conn, missing, now)
        self._reject_cycles(conn, owned_keys)
        bump = self._insert(t.counters).values(name="definitions", value=1)
        conn.execute(
            bump.on_conflict_do_update(index_elements=["name"], set_={"value": t.counters.c.value + 1})
        )

    def _insert_placeholders(self, conn: sa.Connection, keys: list[str], now: Any) -> None:
        rows = [
            {
                "asset_key": k,
                "code_version": None,
                "kind": "external",
                "framework": None,
                "metadata": "{}",
                "deps": "",
                "updated_at": now,
                "partitions": "",
                "partition_mappings": "",
            }
            for k in keys
        ]
        for chunk in chunks(rows):
            conn.execute(self._insert(t.definitions).values(chunk).on_conflict_do_nothing())

    def _reject_cycles(self, conn: sa.Connection, keys: list[str]) -> None:
        """A new cycle must pass through a key just registered: look only among its ancestors."""
        for chunk in chunks(keys):
            closure = ancestors_cte(chunk)
            hit = conn.execute(sa.select(closure.c.k).where(closure.c.k.in_(chunk)).limit(1)).first()
            if hit is not None:  # maybe just a -> b registered together; sort to be sure
                graph = load_graph(conn, [AssetKey(k) for k in chunk], "ancestors", with_latest=False)
                topological_order(graph.specs)  # raises CycleError naming the cycle

    def _insert(self, table: sa.Table) -> Any:
        # Imported here: a process on one database does not load the other's dialect.
        if self.dialect == "postgresql":
            from sqlalchemy.dialects import postgresql

            return postgresql.insert(table)
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table)

    def _upsert(
        self,
        conn: sa.Connection,
        table: sa.Table,
        rows: list[dict[str, Any]],
        index: list[str],
        *,
        only_if_kind: str | None = None,
    ) -> None:
        if not rows:
            return
        stmt = self._insert(table)
        changed = {c: stmt.excluded[c] for c in rows[0] if c not in index}
        where = table.c.kind == only_if_kind if only_if_kind else None
        stmt = stmt.on_conflict_do_update(index_elements=index, set_=changed, where=where)
        conn.execute(stmt, rows)

    def definitions(self) -> dict[AssetKey, AssetSpec]:
        """Every registered definition, placeholders included."""
        with self._read() as conn:
            return dict(load_graph(conn, None, "self", with_latest=False).specs)

    # ---------------------------------------------------------------------------- writes
    def record_materialization(
        self,
        key: CoercibleToAssetKey,
        *,
        data_version: DataVersion | str | None = None,
        run_id: str | None = None,
        framework: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        inputs: Sequence[InputVersion] | None = None,
        partition: str | None = None,
        parameters: Sequence[tuple[str, str]] = (),
        code_version: str | _Registered | None = REGISTERED,
        once_per_run: bool = False,
    ) -> Event:
        """Append a materialization (of one partition, for a partitioned asset) with its provenance.

        `data_version` None computes the logical version from the code version (the run id when
        it is unknown), the inputs, the partition and the parameters' fingerprints; a given one is
        user-provided and wins. `inputs` None reads the inputs' current versions now; steps pass
        the snapshot taken when they started, and the code version they were checked with.

        :raises UnknownAssetError: the key is not registered.
        :raises InvalidDataVersion: the data version is empty or a sentinel name.
        :raises InvalidPartitionKey: a partition for an unpartitioned asset, none for a
            partitioned one, or a key that is not one of the asset's partitions.
        """
        if inputs is not None and (isinstance(inputs, str) or not isinstance(inputs, Iterable)):
            raise ConfigError(f"inputs must be a list of InputVersion, not {type(inputs).__name__}")
        item = Materialization(
            key=AssetKey.parse(key),
            data_version=None if data_version is None else user_data_version(data_version),
            run_id=run_id,
            framework=framework,
            metadata=metadata or {},
            inputs=None if inputs is None else tuple(inputs),
            partition=partition,
            parameters=tuple(parameters),
            code_version=code_version,
            once_per_run=once_per_run,
        )
        return self.record_materializations([item])[0]

    def record_materializations(self, items: Sequence[Materialization]) -> list[Event]:
        """Append many materializations in one transaction, in order.

        An item whose `inputs` is None sees the versions written by the items before it, so a
        batch in topological order records each child against its parent's new version.
        """
        items = list(items)
        for item in items:
            _check_item(item)
        if not items:
            return []
        return self._write(lambda conn: self._append_materializations(conn, items))

    def _append_materializations(self, conn: sa.Connection, items: list[Materialization]) -> list[Event]:
        keys = {item.key for item in items}
        single_run = len(items) == 1 and items[0].run_id is not None and items[0].once_per_run
        if single_run and self.dialect == "postgresql":
            # Same-run steps racing (8 workers retrying one task) take turns per asset partition,
            # so the check below sees the winner's record (SQLite's BEGIN IMMEDIATE serializes all).
            lock = f"{items[0].key}[{items[0].partition or ''}]"  # a hash: collisions only serialize
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(7262353, hashtext(:k))"), {"k": lock})
        graph = load_graph(conn, list(keys), "deps")
        specs = graph.specs
        unknown = [str(k) for k in keys if k not in specs]
        if unknown:
            raise _unknown_error(conn, unknown)
        now = pendulum.now("UTC")
        # Versions written earlier in this batch: (key, partition) -> (data version, batch index).
        written: dict[tuple[AssetKey, str], tuple[str, int]] = {}
        prepared = []
        new_dynamic: set[tuple[str, str]] = set()
        for index, item in enumerate(items):
            spec = specs[item.key]
            partition = _partition_of(spec, item.partition, graph.dynamic)
            if isinstance(spec.partitions, DynamicPartitions) and partition not in graph.dynamic.get(
                spec.partitions.name, ()
            ):
                new_dynamic.add((spec.partitions.name, partition))
            # (input key, input partition, data version, event id, index in this batch when written here)
            snapshot: list[tuple[AssetKey, str, str, int | None, int | None]]
            if item.inputs is not None:
                snapshot = [
                    (i.key, i.partition or NOT_PARTITIONED, i.data_version.value, i.event_id, None)
                    for i in item.inputs
                ]
            else:
                snapshot = []
                for dep, dep_part in input_pairs(spec, partition, graph):
                    if (dep, dep_part) in written:
                        version, batch_index = written[(dep, dep_part)]
                        snapshot.append((dep, dep_part, version, None, batch_index))
                    else:
                        version, event_id, _ = graph.current(dep, dep_part)
                        snapshot.append((dep, dep_part, version, event_id, None))
            code_version = (
                spec.code_version if isinstance(item.code_version, _Registered) else item.code_version
            )
            run_id = item.run_id
            params = tuple(sorted(item.parameters))
            if item.data_version is not None:
                version, user_provided = item.data_version.value, True
            else:
                if code_version is None and run_id is None:
                    run_id = uuid.uuid4().hex  # unknown code: the run id stands in
                stand_in = code_version if code_version is not None else f"run:{run_id}"
                versions = {(k, p): DataVersion._trusted(v) for k, p, v, _, _ in snapshot}
                version = logical_data_version(
                    stand_in, versions, partition=partition or None, parameters=params
                ).value
                user_provided = False
            written[(item.key, partition)] = (version, index)
            prepared.append(
                (item, spec, partition, snapshot, version, user_provided, run_id, code_version, params)
            )

        rows = [
            {
                "asset_key": str(item.key),
                "kind": _MAT,
                "data_version": version,
                "code_version": code_version,
                "user_provided": user_provided,
                "run_id": run_id,
                "framework": item.framework or spec.framework,
                "created_at": now,
                "metadata": freeze_metadata(item.metadata, what=f"materialization of {item.key}"),
                # An input written earlier in this batch has no id yet: its digest follows below.
                "inputs_digest": ""
                if any(b is not None for *_, b in snapshot)
                else provenance_digest(spec, specs, [(dep, p, e) for dep, p, _, e, _ in snapshot]),
                "partition_key": partition,
                "parameters": _parameters_json(params),
            }
            for (
                item,
                spec,
                partition,
                snapshot,
                version,
                user_provided,
                run_id,
                code_version,
                params,
            ) in prepared
        ]
        if single_run:
            same = _same_run_record(graph, items[0], rows[0])
            if same is not None:
                return [self._event_by_id(conn, same)]
        ids = self._insert_events(conn, rows)
        resolved = [
            tuple(
                InputVersion(dep, DataVersion._trusted(v), ids[b] if b is not None else e, p or None)
                for dep, p, v, e, b in snapshot
            )
            for _, _, _, snapshot, *_ in prepared
        ]
        late = [
            {
                "event_id": ids[i],
                "digest": provenance_digest(
                    prepared[i][1], specs, [(x.key, x.partition or "", x.event_id) for x in resolved[i]]
                ),
            }
            for i, row in enumerate(rows)
            if not row["inputs_digest"]
        ]
        if late:
            conn.execute(
                t.events.update()
                .where(t.events.c.id == sa.bindparam("event_id"))
                .values(inputs_digest=sa.bindparam("digest")),
                late,
            )
        input_rows = [
            {
                "event_id": ids[i],
                "input_key": str(x.key),
                "input_partition": x.partition or NOT_PARTITIONED,
                "data_version": x.data_version.value,
                "input_event_id": x.event_id,
            }
            for i, inputs in enumerate(resolved)
            for x in inputs
        ]
        if input_rows:
            self._insert_rows(conn, t.inputs, input_rows)
        if new_dynamic:
            self._add_dynamic(conn, sorted(new_dynamic), now)
        self._advance_latest(
            conn,
            [
                (str(item.key), str(row["partition_key"]), _MAT, i)
                for item, row, i in zip(items, rows, ids, strict=True)
            ],
        )
        return [_event_from_row(ids[i], rows[i], resolved[i]) for i in range(len(rows))]

    def record_observation(
        self,
        key: CoercibleToAssetKey,
        data_version: DataVersion | str,
        *,
        run_id: str | None = None,
        framework: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        partition: str | None = None,
    ) -> Event:
        """Append an observation of a source's data version (of one partition, if partitioned).

        :raises UnknownAssetError: the key is not registered (register it as `observable`).
        :raises InvalidDataVersion: the data version is empty or a sentinel name.
        :raises InvalidPartitionKey: the partition does not fit the asset's definition.
        """
        asset = AssetKey.parse(key)
        version = user_data_version(data_version)
        check_text(run_id, "run_id", max_length=255)
        check_text(framework, "framework", max_length=64)
        row = {
            "asset_key": str(asset),
            "kind": _OBS,
            "data_version": version.value,
            "code_version": None,
            "user_provided": True,
            "run_id": run_id,
            "framework": framework,
            "created_at": pendulum.now("UTC"),
            "metadata": freeze_metadata(metadata, what=f"observation of {asset}"),
            "inputs_digest": "",
            "partition_key": NOT_PARTITIONED,
            "parameters": "",
        }

        def work(conn: sa.Connection) -> Event:
            graph = load_graph(conn, [asset], "self", with_latest=False)
            spec = graph.specs.get(asset)
            if spec is None:
                hint = f"; for a source: register AssetSpec({str(asset)!r}, kind='observable')"
                raise _unknown_error(conn, [str(asset)], hint)
            part = _partition_of(spec, partition, graph.dynamic)
            if isinstance(spec.partitions, DynamicPartitions) and part not in graph.dynamic.get(
                spec.partitions.name, ()
            ):
                self._add_dynamic(conn, [(spec.partitions.name, part)], row["created_at"])
            written = {**row, "partition_key": part}
            (event_id,) = self._insert_events(conn, [written])
            self._advance_latest(conn, [(str(asset), part, _OBS, event_id)])
            return _event_from_row(event_id, written, ())

        return self._write(work)

    def observe(
        self,
        observations: Observations,
        *,
        consumers: Mapping[CoercibleToAssetKey, Iterable[CoercibleToAssetKey]] | None = None,
        run_id: str | None = None,
        framework: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        absent: Iterable[Observation] = (),
    ) -> ObservationResult:
        """Record the observations of sources whose data version changed; nothing for the rest.

        Every adapter's observation goes through here: a sensor poking every minute, a dbt build
        or a Prefect flow on unchanged sources writes nothing. A source that is not registered
        yet (or is only a placeholder some asset depends on) is registered as `observable` of
        `framework`, in the same transaction. `observations` maps source keys to versions, or
        is a list of `Observation` (with a partition or metadata of its own); `metadata` is
        added to every recorded one.

        `consumers` maps a source to the assets whose reads are compared (`ObservationResult.
        unread`); None compares every registered asset depending on each source, `{}` none.

        `absent` completes a scan of a partitioned source: each item (its partition None) is
        the version of every partition of its source that has a recorded version but is not
        among `observations` (a time window whose rows were all deleted).

        A fixed number of queries whatever the number of sources and consumers, and one write
        transaction only when something changed.

        :raises ConfigError: observations that are neither a mapping nor Observation objects.
        :raises InvalidAssetKey, InvalidDataVersion: a malformed key or version.
        :raises InvalidPartitionKey: a partition that does not fit the source's definition.
        """
        items = coerce_observations(observations)
        fillers = coerce_observations(absent)
        check_text(run_id, "run_id", max_length=255)
        check_text(framework, "framework", max_length=64)
        sources = list(dict.fromkeys(i.key for i in [*items, *fillers]))
        with self._read() as conn:
            if consumers is None:
                readers = _dependents(conn, sources)
            else:
                readers = {
                    AssetKey.parse(s): tuple(dict.fromkeys(AssetKey.parse(c) for c in cs))
                    for s, cs in consumers.items()
                }
            wanted = {*sources, *(c for cs in readers.values() for c in cs)}
            graph = load_graph(conn, sorted(wanted), "self")
        items += missing_partitions(graph, items, fillers)
        common = dict(metadata or {})
        frozen = {
            (i.key, i.partition): freeze_metadata({**common, **i.metadata}, what=f"observation of {i.key}")
            for i in items
        }
        placeholders = [k for k in sources if k not in graph.specs or graph.specs[k].kind == "external"]
        new_specs = [AssetSpec(k, kind="observable", framework=framework) for k in placeholders]
        for item in items:
            spec = graph.specs.get(item.key)
            if spec is not None and item.key not in placeholders:
                _partition_of(spec, item.partition, graph.dynamic, reading=True, dynamic_ok=True)
            elif item.partition is not None:
                _partition_of(new_specs[placeholders.index(item.key)], item.partition, {})
        changed, unchanged, previous = changed_observations(graph, items)
        versions = {i.key: i.data_version.value for i in items if i.partition is None}
        compared = {s: readers.get(s, ()) for s in readers if s in versions}
        unread = unread_consumers(graph, versions, compared)
        recorded: list[Event] = []
        if changed:

            def work(conn: sa.Connection) -> list[Event]:
                now = pendulum.now("UTC")
                if new_specs:
                    self._register(conn, new_specs)
                # Again under the write lock: another observer may have recorded the same version.
                fresh = load_graph(conn, sorted({i.key for i in changed}), "self")
                still, _, _ = changed_observations(fresh, changed)
                rows = []
                dynamic = []
                for item in still:
                    spec = fresh.specs[item.key]
                    part = _partition_of(spec, item.partition, fresh.dynamic)
                    if isinstance(spec.partitions, DynamicPartitions) and part not in fresh.dynamic.get(
                        spec.partitions.name, ()
                    ):
                        dynamic.append((spec.partitions.name, part))
                    rows.append(_observation_row(item, part, run_id, framework, now, frozen))
                if dynamic:
                    self._add_dynamic(conn, sorted(set(dynamic)), now)
                if not rows:
                    return []
                ids = self._insert_events(conn, rows)
                pairs = list(zip(rows, ids, strict=True))
                self._advance_latest(conn, [(r["asset_key"], r["partition_key"], _OBS, i) for r, i in pairs])
                return [_event_from_row(i, r, ()) for r, i in pairs]

            recorded = self._write(work)
            written = {(e.key, e.partition) for e in recorded}
            unchanged += [i for i in changed if (i.key, i.partition) not in written]
        return ObservationResult(tuple(recorded), tuple(unchanged), unread, previous, compared)

    def add_partitions(self, name: str, keys: Iterable[str]) -> None:
        """Add keys to the DynamicPartitions set `name` (existing keys are left as they are).

        :raises InvalidPartitionKey: a malformed key (nothing is added).
        """
        check_partition_key(name, what="DynamicPartitions name")
        if isinstance(keys, str):
            raise InvalidPartitionKey(f"add_partitions takes a list of keys, not the string {keys!r}")
        checked = sorted({check_partition_key(k) for k in keys})
        if checked:
            now = pendulum.now("UTC")
            self._write(lambda conn: self._add_dynamic(conn, [(name, k) for k in checked], now))

    def dynamic_partitions(self, name: str) -> list[str]:
        """Keys of the DynamicPartitions set `name`, sorted."""
        with self._read() as conn:
            query = sa.select(t.dynamic_partitions.c.partition_key).where(t.dynamic_partitions.c.name == name)
            return sorted(conn.execute(query).scalars())

    def _add_dynamic(self, conn: sa.Connection, pairs: list[tuple[str, str]], now: Any) -> None:
        rows = [{"name": n, "partition_key": k, "created_at": now} for n, k in pairs]
        for chunk in chunks(rows):
            conn.execute(self._insert(t.dynamic_partitions).values(chunk).on_conflict_do_nothing())

    def _event_by_id(self, conn: sa.Connection, event_id: int) -> Event:
        row = conn.execute(sa.select(t.events).where(t.events.c.id == event_id)).one()._asdict()
        inputs = tuple(
            InputVersion(
                AssetKey._trusted(r.input_key),
                DataVersion._trusted(r.data_version),
                r.input_event_id,
                r.input_partition or None,
            )
            for r in conn.execute(sa.select(t.inputs).where(t.inputs.c.event_id == event_id))
        )
        return _event_from_row(event_id, row, tuple(sorted(inputs, key=lambda i: (i.key, i.partition or ""))))

    def _insert_events(self, conn: sa.Connection, rows: list[dict[str, Any]]) -> list[int]:
        if self.dialect != "sqlite":
            stmt = t.events.insert().returning(t.events.c.id, sort_by_parameter_order=True)
            return [row[0] for row in conn.execute(stmt, rows)]
        # SQLite: we hold the write lock (BEGIN IMMEDIATE), so one executemany appends consecutive
        # rowids after the current maximum; this is several times faster than RETURNING per row.
        self._insert_rows(conn, t.events, rows)
        last = int(conn.exec_driver_sql("SELECT max(id) FROM insync_events").scalar_one())
        return list(range(last - len(rows) + 1, last + 1))

    def _insert_rows(self, conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
        """Bulk insert; on SQLite straight through the driver's executemany (no per-row compile)."""
        if self.dialect != "sqlite":
            conn.execute(table.insert(), rows)
            return
        columns = list(rows[0])
        sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        convert = [c for c in columns if isinstance(rows[0][c], bool | datetime.datetime)]
        if convert:
            rows = [{**row, **{c: _sqlite_value(row[c]) for c in convert}} for row in rows]
        conn.exec_driver_sql(sql, [tuple(row.values()) for row in rows])

    def _advance_latest(self, conn: sa.Connection, entries: list[tuple[str, str, str, int]]) -> None:
        newest: dict[tuple[str, str, str], int] = {}
        for key, partition, kind, event_id in entries:
            newest[(key, partition, kind)] = max(event_id, newest.get((key, partition, kind), 0))
        # Sorted, so concurrent PostgreSQL writers lock rows in one order and never deadlock;
        # the WHERE keeps a slower transaction with an older id from moving the index backwards.
        rows = [
            {"asset_key": k, "partition_key": p, "kind": kind, "event_id": i}
            for (k, p, kind), i in sorted(newest.items())
        ]
        stmt = self._insert(t.latest)
        stmt = stmt.on_conflict_do_update(
            index_elements=["asset_key", "partition_key", "kind"],
            set_={"event_id": stmt.excluded.event_id},
            where=stmt.excluded.event_id > t.latest.c.event_id,
        )
        conn.execute(stmt, rows)

    # ----------------------------------------------------------------------------- reads
    def status(
        self, key: CoercibleToAssetKey, *, upstream: bool = True, partition: str | None = None
    ) -> AssetStatus:
        """Status of one asset (its rollup, if partitioned) or of one of its partitions; with
        `upstream`, also the ancestors whose change is pending.

        :raises UnknownAssetError: the key is not registered.
        :raises InvalidPartitionKey: `partition` does not fit the asset.
        """
        asset = AssetKey.parse(key)
        with self._read() as conn:
            graph = load_graph(conn, [asset], "ancestors" if upstream else "deps")
            if asset not in graph.specs:
                raise _unknown_error(conn, [str(asset)])
        whole = compute_statuses(graph, [asset], with_upstream=upstream)[asset]
        if partition is None:
            return whole
        spec = graph.specs[asset]
        check_partition_key(partition)
        if graph.records(asset, partition) is None:  # a recorded key stays readable when dropped
            _partition_of(spec, partition, graph.dynamic, reading=True)
        one = partition_status(spec, partition, graph)
        return dataclasses.replace(one, upstream=whole.upstream)

    def statuses(
        self, keys: Iterable[CoercibleToAssetKey] | None = None, *, upstream: bool = True
    ) -> dict[AssetKey, AssetStatus]:
        """Status of every registered asset (or of `keys`), in 2 to 7 queries whatever the size.

        :raises UnknownAssetError: a key is not registered.
        :raises CycleError: the registered definitions contain a cycle.
        """
        wanted = None if keys is None else [AssetKey.parse(k) for k in keys]
        with paused_gc():
            with self._read() as conn:
                if wanted is None:
                    graph = load_graph(conn, None, "self")
                else:
                    graph = load_graph(conn, wanted, "ancestors" if upstream else "deps")
                    unknown = [str(k) for k in wanted if k not in graph.specs]
                    if unknown:
                        raise _unknown_error(conn, unknown)
            return compute_statuses(graph, wanted, with_upstream=upstream)

    def check_view(
        self,
        spec: AssetSpec,
        partition: str | None = None,
        parameters: Sequence[tuple[str, str]] = (),
    ) -> tuple[AssetStatus, tuple[InputVersion, ...]]:
        """What a step's check needs: register `spec` if it changed, then the status of its
        partition (with a PARAMETERS cause when `parameters`, `(name, fingerprint)` pairs, differ
        from the recorded ones) and the snapshot of what it reads, for its provenance.

        Two to four queries on the hot path, and no write when the definition is unchanged.

        :raises InvalidPartitionKey: `partition` does not fit `spec`.
        """
        part = _partition_of(spec, partition, {}, reading=True, dynamic_ok=True)
        with self._read() as conn:
            graph, registered = load_step_graph(conn, spec, part)
        if registered != spec:
            self.register([spec])
            with self._read() as conn:
                graph, _ = load_step_graph(conn, spec, part)
        status = partition_status(spec, part, graph)
        if status.status is not StaleStatus.MISSING and not spec.is_source:
            records = graph.records(spec.key, part)
            recorded = records.materialization.parameters if records and records.materialization else ""
            extra = parameter_causes(spec.key, part, recorded, parameters)
            if extra:
                status = dataclasses.replace(
                    status, status=StaleStatus.STALE, causes=(*status.causes, *extra)
                )
        return status, inputs_of(spec, part, graph)

    def snapshot_inputs(
        self, key: CoercibleToAssetKey, *, partition: str | None = None
    ) -> tuple[InputVersion, ...]:
        """The current data version and event id of each input of `key` (of one partition).

        :raises UnknownAssetError: the key is not registered.
        """
        asset = AssetKey.parse(key)
        with self._read() as conn:
            graph = load_graph(conn, [asset], "deps")
            if asset not in graph.specs:
                raise _unknown_error(conn, [str(asset)])
        spec = graph.specs[asset]
        return inputs_of(spec, _partition_of(spec, partition, graph.dynamic, reading=True), graph)

    def history(
        self,
        key: CoercibleToAssetKey,
        *,
        limit: int | None = None,
        kind: EventKind | None = None,
        partition: str | None = None,
        before: int | None = None,
    ) -> list[Event]:
        """Events of one asset (of one partition, if given), newest first, with their inputs;
        `before` (an event id) pages back: only older events.

        :raises UnknownAssetError: the asset is not registered.
        :raises ConfigError: a limit or `before` that is not a positive integer.
        """
        asset = AssetKey.parse(key)
        limit = check_limit(limit)
        if kind is not None and kind not in (_MAT, _OBS):
            raise ConfigError(f"kind must be 'materialization', 'observation' or None, not {kind!r}")
        query = sa.select(t.events).where(t.events.c.asset_key == str(asset))
        if kind is not None:
            query = query.where(t.events.c.kind == kind)
        if partition is not None:
            query = query.where(t.events.c.partition_key == check_partition_key(partition))
        if before is not None:
            query = query.where(t.events.c.id < check_limit(before))
        query = query.order_by(t.events.c.id.desc()).limit(limit)
        with self._read() as conn:
            rows = [r._asdict() for r in conn.execute(query)]
            if not rows:
                known = sa.select(t.definitions.c.asset_key).where(t.definitions.c.asset_key == str(asset))
                if conn.execute(known).first() is None:
                    raise _unknown_error(conn, [str(asset)])
            ids = [r["id"] for r in rows]
            found: dict[int, list[InputVersion]] = {}
            for chunk in chunks(ids):
                for r in conn.execute(sa.select(t.inputs).where(t.inputs.c.event_id.in_(chunk))):
                    found.setdefault(r.event_id, []).append(
                        InputVersion(
                            AssetKey(r.input_key),
                            DataVersion(r.data_version),
                            r.input_event_id,
                            r.input_partition or None,
                        )
                    )
        return [
            _event_from_row(
                r["id"], r, tuple(sorted(found.get(r["id"], []), key=lambda i: (i.key, i.partition or "")))
            )
            for r in rows
        ]

    def latest_event(self, key: CoercibleToAssetKey, kind: EventKind | None = None) -> Event | None:
        """The newest event of an asset (of `kind`, if given), or None (also for an asset the
        store does not know yet: adapters ask before their first registration)."""
        try:
            events = self.history(key, limit=1, kind=kind)
        except UnknownAssetError:
            return None
        return events[0] if events else None

    def definitions_revision(self) -> int:
        """A counter that grows with every registration that changed a definition: with
        `last_event_id`, a cheap change marker."""
        with self._read() as conn:
            query = sa.select(t.counters.c.value).where(t.counters.c.name == "definitions")
            return int(conn.execute(query).scalar() or 0)

    def last_event_id(self) -> int:
        """The highest event id in the store (0 when empty): a cheap change marker for pollers."""
        with self._read() as conn:
            return int(conn.execute(sa.select(sa.func.max(t.events.c.id))).scalar() or 0)

    # ------------------------------------------------------------------------ bulk loading


def _partition_of(
    spec: AssetSpec,
    partition: str | None,
    dynamic: Mapping[str, Sequence[str]],
    *,
    reading: bool = False,
    dynamic_ok: bool = False,
) -> str:
    """The store's partition column for `partition` of `spec` ("" when unpartitioned).

    :raises InvalidPartitionKey: a partition for an unpartitioned asset, none for a partitioned
        one, or a key outside a static or time definition (dynamic keys are added on write).
    """
    definition = spec.partitions
    if definition is None:
        if partition is not None:
            raise InvalidPartitionKey(
                f"asset {spec.key} is not partitioned, but partition {partition!r} was given; drop it, "
                "or declare partitions=... on the asset"
            )
        return NOT_PARTITIONED
    if partition is None:
        raise InvalidPartitionKey(
            f"asset {spec.key} is partitioned ({type(definition).__name__}); say which partition, "
            "e.g. partition='2026-12-01'"
        )
    if isinstance(definition, DynamicPartitions):
        check_partition_key(partition)
        if reading and not dynamic_ok and partition not in dynamic.get(definition.name, ()):
            raise InvalidPartitionKey(
                f"partition {partition!r} of {spec.key} has not been added to DynamicPartitions "
                f"{definition.name!r}; add it with store.add_partitions({definition.name!r}, [...])"
            )
        return partition
    return definition.validate(partition)


def _dependents(conn: sa.Connection, sources: list[AssetKey]) -> dict[AssetKey, tuple[AssetKey, ...]]:
    """{source: every registered asset depending on it}, in one query per 500 sources."""
    found: dict[AssetKey, list[AssetKey]] = {s: [] for s in sources}
    for chunk in chunks([str(s) for s in sources]):
        query = (
            sa.select(t.deps.c.dep_key, t.deps.c.asset_key)
            .where(t.deps.c.dep_key.in_(chunk))
            .order_by(t.deps.c.dep_key, t.deps.c.asset_key)
        )
        for dep_key, asset_key in conn.execute(query).fetchall():
            found[AssetKey._trusted(dep_key)].append(AssetKey._trusted(asset_key))
    return {s: tuple(v) for s, v in found.items()}


def _observation_row(
    item: Observation,
    partition: str,
    run_id: str | None,
    framework: str | None,
    now: Any,
    metadata: Mapping[tuple[AssetKey, str | None], str],
) -> dict[str, Any]:
    return {
        "asset_key": str(item.key),
        "kind": _OBS,
        "data_version": item.data_version.value,
        "code_version": None,
        "user_provided": True,
        "run_id": run_id,
        "framework": framework,
        "created_at": now,
        "metadata": metadata[(item.key, item.partition)],
        "inputs_digest": "",
        "partition_key": partition,
        "parameters": "",
    }


def _same_run_record(graph: Graph, item: Materialization, row: Mapping[str, Any]) -> int | None:
    """The id of the latest record of this asset partition if the same run already recorded
    exactly this (same code version, inputs, parameters and data version): a concurrent retry."""
    records = graph.records(item.key, row["partition_key"])
    mat = records.materialization if records is not None else None
    if (
        mat is not None
        and mat.run_id == row["run_id"]
        and mat.data_version == row["data_version"]
        and mat.code_version == row["code_version"]
        and mat.parameters == row["parameters"]
        and row["inputs_digest"]
        and mat.inputs_digest == row["inputs_digest"]
    ):
        return mat.event_id
    return None


def _needs_write(spec: AssetSpec, known: Mapping[AssetKey, AssetSpec]) -> bool:
    current = known.get(spec.key)
    if spec.kind == "external":  # a placeholder never replaces what is there
        return current is None
    return current != spec or any(dep not in known for dep in spec.deps)


def _check_item(item: object) -> None:
    """:raises ConfigError: a Materialization whose fields cannot be stored the same everywhere."""
    if not isinstance(item, Materialization):
        raise ConfigError(f"record_materializations takes Materialization objects, not {type(item).__name__}")
    AssetKey.parse(item.key)
    check_text(item.run_id, "run_id", max_length=255)
    check_text(item.framework, "framework", max_length=64)
    if item.partition is not None:
        check_partition_key(item.partition)
    if item.inputs is not None:
        for entry in item.inputs:
            if not isinstance(entry, InputVersion):
                raise ConfigError(
                    f"inputs of {item.key} must be InputVersion(key, data_version, event_id), "
                    f"not {entry!r:.60}"
                )
    for pair in item.parameters:
        if not (isinstance(pair, tuple) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            raise ConfigError(
                f"parameters of {item.key} must be (name, fingerprint) pairs; build them with "
                "fingerprint_parameters({...})"
            )


def _parameters_json(parameters: Sequence[tuple[str, str]]) -> str:
    if not parameters:
        return ""
    return json.dumps(dict(parameters), sort_keys=True, separators=(",", ":"))


def _event_from_row(event_id: int, row: Mapping[str, Any], inputs: tuple[InputVersion, ...]) -> Event:
    created = row["created_at"]
    if not isinstance(created, pendulum.DateTime):
        created = pendulum.instance(created, tz="UTC")
    return Event(
        id=event_id,
        key=AssetKey(row["asset_key"]),
        kind=row["kind"],
        data_version=DataVersion(row["data_version"]),
        code_version=row["code_version"],
        user_provided=bool(row["user_provided"]),
        run_id=row["run_id"],
        framework=row["framework"],
        timestamp=created.in_timezone("UTC"),
        metadata=json.loads(row["metadata"]),
        inputs=inputs,
        partition=row.get("partition_key") or None,
        parameters=tuple(sorted(json.loads(row["parameters"]).items())) if row.get("parameters") else (),
    )


def _sqlite_value(value: Any) -> Any:
    """What SQLAlchemy's SQLite types would bind: naive UTC text for datetimes, ints for bools."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, datetime.datetime):
        return value.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


_REVISION: Final = sa.text(f"SELECT version_num FROM {t.VERSION_TABLE}")


def _read_revision(conn: sa.Connection) -> str | None:
    if not sa.inspect(conn).has_table(t.VERSION_TABLE):
        return None
    return conn.execute(_REVISION).scalar()


def _has_insync_tables(conn: sa.Connection) -> bool:
    names = set(sa.inspect(conn).get_table_names())
    return any(table.name in names for table in t.metadata.sorted_tables)


def _unknown_error(conn: sa.Connection, keys: Iterable[str], hint: str = "") -> UnknownAssetError:
    """Name the unknown keys, with the closest registered key for each (only on the error path)."""
    import difflib

    known = list(conn.execute(sa.select(t.definitions.c.asset_key)).scalars())
    named = []
    for key in sorted(keys):
        close = difflib.get_close_matches(key, known, n=1)
        named.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return UnknownAssetError(
        f"unknown asset {', '.join(named)}: it is not registered in this store; register it "
        f"with store.register([AssetSpec(...)]) or check the store URL{hint}"
    )


def _is_retryable(exc: sa.exc.DBAPIError) -> bool:
    text = str(exc.orig).lower()
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return (
        "database is locked" in text
        or "database table is locked" in text
        or code in {"40001", "40P01", "55P03"}  # serialization failure, deadlock, lock timeout
    )


def _normalize_driver(url: str) -> str:
    """`postgresql://` means psycopg2 to SQLAlchemy; use psycopg 3 when that is what is installed."""
    parsed = sa.make_url(url)
    if parsed.drivername == "postgresql":
        try:
            import psycopg2  # noqa: F401
        except ImportError:
            return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return url
