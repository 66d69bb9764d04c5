"""The event store: append-only events, a latest-record index and the registered definitions.

Writes happen here, one transaction each; status reads go through `_loading.load_graph` (a fixed
number of queries) and the pure functions of `_staleness`: no query runs per asset or per edge.
"""

from __future__ import annotations

import datetime
import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

import pendulum
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from . import _schema as t
from ._keys import AssetKey, CoercibleToAssetKey
from ._loading import ancestors_cte, chunks, inputs_of, load_graph, paused_gc
from ._model import AssetSpec, AssetStatus, Event, EventKind, InputVersion, freeze_metadata
from ._settings import Settings, resolve_settings
from ._staleness import (
    compute_statuses,
    current_version,
    inputs_digest,
    topological_order,
)
from ._versions import DataVersion, logical_data_version, user_data_version
from .errors import (
    SchemaVersionError,
    StoreError,
    StoreUnavailable,
    UnknownAssetError,
)

__all__ = ["EventStore", "Materialization"]

log = logging.getLogger("insync")

T = TypeVar("T")
_BUSY_TIMEOUT_S: Final = 30.0
_RETRIES: Final = 8
_MAT: Final = "materialization"
_OBS: Final = "observation"


@dataclass(frozen=True, slots=True)
class Materialization:
    """One materialization to append with `EventStore.record_materializations`."""

    key: AssetKey
    data_version: DataVersion | None = None  # None: logical (code version + inputs)
    run_id: str | None = None
    framework: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    inputs: tuple[InputVersion, ...] | None = None  # None: the inputs' versions right now


class EventStore:
    """The insync store on any SQLAlchemy URL (SQLite embedded by default, PostgreSQL shared).

    `EventStore()` resolves its location at call time: explicit url > $INSYNC_DATABASE_URL >
    $INSYNC_HOME > ./.insync. Opening creates an empty store, refuses one written by another
    schema revision, and never rewrites data silently.

    :raises StoreUnavailable: the database cannot be reached.
    :raises SchemaVersionError: the store needs `insync db upgrade`, or is newer than this insync.
    :raises StoreError: the file or database is not an insync store.
    """

    def __init__(self, url: str | None = None, *, upgrade: bool = False) -> None:
        self.settings: Settings = resolve_settings(url)
        self.url = sa.make_url(_normalize_driver(self.settings.database_url))
        self.dialect = self.url.get_backend_name()
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

    def _create_engine(self) -> sa.Engine:
        if self.dialect != "sqlite":
            return sa.create_engine(self.url, pool_pre_ping=True)
        if self.url.database and self.url.database != ":memory:":
            Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(self.url, connect_args={"timeout": _BUSY_TIMEOUT_S})

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # We issue BEGIN ourselves (below); pysqlite's implicit transactions would defer the
            # write lock to the first write and turn concurrent upgrades into "database is locked".
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA busy_timeout = {int(_BUSY_TIMEOUT_S * 1000)}")
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

    def _write(self, work: Callable[[sa.Connection], T]) -> T:
        """Run `work` in one write transaction, retrying lock timeouts, deadlocks and conflicts."""
        for attempt in range(_RETRIES):
            try:
                with self._engine.connect() as conn:
                    conn.execution_options(insync_write=True)
                    with conn.begin():
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
        return StoreUnavailable(
            f"cannot reach the insync store {where} (chosen by {self.settings.source}): "
            f"{' '.join(str(exc.orig).split())}; check the database is running and the URL is right"
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
        revision = self.schema_revision()
        if revision == t.HEAD_REVISION:
            return
        self._check_known(revision)
        if revision is not None and not upgrade:
            raise SchemaVersionError(
                f"the insync store {self.url.render_as_string(hide_password=True)} has schema "
                f"revision {revision}; this insync needs {t.HEAD_REVISION}: run `insync db upgrade`"
            )
        self._write(self._migrate)

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
        """
        batch = {spec.key: spec for spec in specs}
        if batch:
            self._write(lambda conn: self._register(conn, list(batch.values())))

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
                specs, _ = load_graph(conn, [AssetKey(k) for k in chunk], "ancestors", with_latest=False)
                topological_order(specs)  # raises CycleError naming the cycle

    def _insert(self, table: sa.Table) -> Any:
        dialect_insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        return dialect_insert(table)

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
            specs, _ = load_graph(conn, None, "self", with_latest=False)
        return specs

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
    ) -> Event:
        """Append a materialization with its provenance.

        `data_version` None computes the logical version from the registered code version (the
        run id when the code version is unknown) and the inputs; a given one is user-provided and
        wins. `inputs` None reads the inputs' current versions now; steps pass the snapshot taken
        when they started.

        :raises UnknownAssetError: the key is not registered.
        :raises InvalidDataVersion: the data version is empty or a sentinel name.
        """
        item = Materialization(
            key=AssetKey.parse(key),
            data_version=None if data_version is None else user_data_version(data_version),
            run_id=run_id,
            framework=framework,
            metadata=metadata or {},
            inputs=None if inputs is None else tuple(inputs),
        )
        return self.record_materializations([item])[0]

    def record_materializations(self, items: Sequence[Materialization]) -> list[Event]:
        """Append many materializations in one transaction, in order.

        An item whose `inputs` is None sees the versions written by the items before it, so a
        batch in topological order records each child against its parent's new version.
        """
        if not items:
            return []
        return self._write(lambda conn: self._append_materializations(conn, list(items)))

    def _append_materializations(self, conn: sa.Connection, items: list[Materialization]) -> list[Event]:
        keys = {item.key for item in items}
        specs, latest = load_graph(conn, list(keys), "deps")
        unknown = [str(k) for k in keys if k not in specs]
        if unknown:
            raise _unknown_error(conn, unknown)
        now = pendulum.now("UTC")
        # Versions written earlier in this batch: key -> (data version, batch index).
        written: dict[AssetKey, tuple[str, int]] = {}
        prepared = []
        for index, item in enumerate(items):
            spec = specs[item.key]
            # (input key, data version, event id, index in this batch when written by this batch)
            snapshot: list[tuple[AssetKey, str, int | None, int | None]]
            if item.inputs is not None:
                snapshot = [(i.key, i.data_version.value, i.event_id, None) for i in item.inputs]
            else:
                snapshot = []
                for dep in spec.deps:
                    if dep in written:
                        version, batch_index = written[dep]
                        snapshot.append((dep, version, None, batch_index))
                    else:
                        version, event_id, _ = current_version(specs.get(dep), latest.get(dep))
                        snapshot.append((dep, version, event_id, None))
            run_id = item.run_id
            if item.data_version is not None:
                version, user_provided = item.data_version.value, True
            else:
                if spec.code_version is None and run_id is None:
                    run_id = uuid.uuid4().hex  # unknown code: the run id stands in
                stand_in = spec.code_version if spec.code_version is not None else f"run:{run_id}"
                versions = {k: DataVersion(v) for k, v, _, _ in snapshot}
                version, user_provided = logical_data_version(stand_in, versions).value, False
            written[item.key] = (version, index)
            prepared.append((item, spec, snapshot, version, user_provided, run_id))

        rows = [
            {
                "asset_key": str(item.key),
                "kind": _MAT,
                "data_version": version,
                "code_version": spec.code_version,
                "user_provided": user_provided,
                "run_id": run_id,
                "framework": item.framework or spec.framework,
                "created_at": now,
                "metadata": freeze_metadata(item.metadata, what=f"materialization of {item.key}"),
                # An input written earlier in this batch has no id yet: its digest follows below.
                "inputs_digest": ""
                if any(b is not None for *_, b in snapshot)
                else inputs_digest((dep, e) for dep, _, e, _ in snapshot),
            }
            for item, spec, snapshot, version, user_provided, run_id in prepared
        ]
        ids = self._insert_events(conn, rows)
        resolved = [
            tuple(
                InputVersion(dep, DataVersion._trusted(v), ids[b] if b is not None else e)
                for dep, v, e, b in snapshot
            )
            for _, _, snapshot, _, _, _ in prepared
        ]
        late = [
            {"event_id": ids[i], "digest": inputs_digest((i.key, i.event_id) for i in resolved[i])}
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
                "data_version": x.data_version.value,
                "input_event_id": x.event_id,
            }
            for i, inputs in enumerate(resolved)
            for x in inputs
        ]
        if input_rows:
            self._insert_rows(conn, t.inputs, input_rows)
        self._advance_latest(conn, [(str(item.key), _MAT, i) for item, i in zip(items, ids, strict=True)])
        return [_event_from_row(ids[i], rows[i], resolved[i]) for i in range(len(rows))]

    def record_observation(
        self,
        key: CoercibleToAssetKey,
        data_version: DataVersion | str,
        *,
        run_id: str | None = None,
        framework: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Event:
        """Append an observation of a source's data version.

        :raises UnknownAssetError: the key is not registered (register it as `observable`).
        :raises InvalidDataVersion: the data version is empty or a sentinel name.
        """
        asset = AssetKey.parse(key)
        version = user_data_version(data_version)
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
        }

        def work(conn: sa.Connection) -> Event:
            exists = conn.execute(
                sa.select(t.definitions.c.asset_key).where(t.definitions.c.asset_key == str(asset))
            ).first()
            if exists is None:
                hint = f"; for a source: register AssetSpec({str(asset)!r}, kind='observable')"
                raise _unknown_error(conn, [str(asset)], hint)
            (event_id,) = self._insert_events(conn, [row])
            self._advance_latest(conn, [(str(asset), _OBS, event_id)])
            return _event_from_row(event_id, row, ())

        return self._write(work)

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

    def _advance_latest(self, conn: sa.Connection, entries: list[tuple[str, str, int]]) -> None:
        newest: dict[tuple[str, str], int] = {}
        for key, kind, event_id in entries:
            newest[(key, kind)] = max(event_id, newest.get((key, kind), 0))
        # Sorted, so concurrent PostgreSQL writers lock rows in one order and never deadlock;
        # the WHERE keeps a slower transaction with an older id from moving the index backwards.
        rows = [{"asset_key": k, "kind": kind, "event_id": i} for (k, kind), i in sorted(newest.items())]
        stmt = self._insert(t.latest)
        stmt = stmt.on_conflict_do_update(
            index_elements=["asset_key", "kind"],
            set_={"event_id": stmt.excluded.event_id},
            where=stmt.excluded.event_id > t.latest.c.event_id,
        )
        conn.execute(stmt, rows)

    # ----------------------------------------------------------------------------- reads
    def status(self, key: CoercibleToAssetKey, *, upstream: bool = True) -> AssetStatus:
        """Status of one asset; with `upstream`, also the ancestors whose change is pending.

        :raises UnknownAssetError: the key is not registered.
        """
        asset = AssetKey.parse(key)
        with self._read() as conn:
            specs, latest = load_graph(conn, [asset], "ancestors" if upstream else "deps")
            if asset not in specs:
                raise _unknown_error(conn, [str(asset)])
        return compute_statuses(specs, latest, [asset], with_upstream=upstream)[asset]

    def statuses(
        self, keys: Iterable[CoercibleToAssetKey] | None = None, *, upstream: bool = True
    ) -> dict[AssetKey, AssetStatus]:
        """Status of every registered asset (or of `keys`), in 2 to 6 queries whatever the size.

        :raises UnknownAssetError: a key is not registered.
        :raises CycleError: the registered definitions contain a cycle.
        """
        wanted = None if keys is None else [AssetKey.parse(k) for k in keys]
        with paused_gc():
            with self._read() as conn:
                if wanted is None:
                    specs, latest = load_graph(conn, None, "self")
                else:
                    specs, latest = load_graph(conn, wanted, "ancestors" if upstream else "deps")
                    unknown = [str(k) for k in wanted if k not in specs]
                    if unknown:
                        raise _unknown_error(conn, unknown)
            return compute_statuses(specs, latest, wanted, with_upstream=upstream)

    def _step_view(self, spec: AssetSpec) -> tuple[AssetStatus, tuple[InputVersion, ...]]:
        """For a step's check: register `spec` if it changed, then its status and input snapshot.

        Two to four queries on the hot path, and no write when the definition is unchanged.
        """
        with self._read() as conn:
            specs, latest = load_graph(conn, [spec.key], "deps")
        if specs.get(spec.key) != spec:
            self.register([spec])
            with self._read() as conn:
                specs, latest = load_graph(conn, [spec.key], "deps")
        status = compute_statuses(specs, latest, [spec.key], with_upstream=False)[spec.key]
        return status, inputs_of(specs[spec.key], specs, latest)

    def snapshot_inputs(self, key: CoercibleToAssetKey) -> tuple[InputVersion, ...]:
        """The current data version and event id of each dependency of `key`.

        :raises UnknownAssetError: the key is not registered.
        """
        asset = AssetKey.parse(key)
        with self._read() as conn:
            specs, latest = load_graph(conn, [asset], "deps")
            if asset not in specs:
                raise _unknown_error(conn, [str(asset)])
        return inputs_of(specs[asset], specs, latest)

    def history(
        self, key: CoercibleToAssetKey, *, limit: int | None = None, kind: EventKind | None = None
    ) -> list[Event]:
        """Events of one asset, newest first, with their inputs."""
        asset = AssetKey.parse(key)
        query = sa.select(t.events).where(t.events.c.asset_key == str(asset))
        if kind is not None:
            query = query.where(t.events.c.kind == kind)
        query = query.order_by(t.events.c.id.desc()).limit(limit)
        with self._read() as conn:
            rows = [r._asdict() for r in conn.execute(query)]
            ids = [r["id"] for r in rows]
            found: dict[int, list[InputVersion]] = {}
            for chunk in chunks(ids):
                for r in conn.execute(sa.select(t.inputs).where(t.inputs.c.event_id.in_(chunk))):
                    found.setdefault(r.event_id, []).append(
                        InputVersion(AssetKey(r.input_key), DataVersion(r.data_version), r.input_event_id)
                    )
        return [
            _event_from_row(r["id"], r, tuple(sorted(found.get(r["id"], []), key=lambda i: i.key)))
            for r in rows
        ]

    def latest_event(self, key: CoercibleToAssetKey, kind: EventKind | None = None) -> Event | None:
        """The newest event of an asset (of `kind`, if given), or None."""
        events = self.history(key, limit=1, kind=kind)
        return events[0] if events else None

    def definitions_revision(self) -> int:
        """A counter that grows with every registration: with `last_event_id`, a cheap change marker."""
        with self._read() as conn:
            query = sa.select(t.counters.c.value).where(t.counters.c.name == "definitions")
            return int(conn.execute(query).scalar() or 0)

    def last_event_id(self) -> int:
        """The highest event id in the store (0 when empty): a cheap change marker for pollers."""
        with self._read() as conn:
            return int(conn.execute(sa.select(sa.func.max(t.events.c.id))).scalar() or 0)

    # ------------------------------------------------------------------------ bulk loading


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
    )


def _sqlite_value(value: Any) -> Any:
    """What SQLAlchemy's SQLite types would bind: naive UTC text for datetimes, ints for bools."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, datetime.datetime):
        return value.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def _read_revision(conn: sa.Connection) -> str | None:
    if not sa.inspect(conn).has_table(t.VERSION_TABLE):
        return None
    return conn.execute(sa.text(f"SELECT version_num FROM {t.VERSION_TABLE}")).scalar()


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
