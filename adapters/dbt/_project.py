"""The memoized dbt build: parse, register, observe, decide, invoke dbt, record.

`DbtProject` is the Python API (for an Airflow task or a Prefect flow calling dbt); the
`insync dbt` commands are thin wrappers over it.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import pendulum
from insync.core import (
    AssetKey,
    AssetStatus,
    ConfigError,
    DataVersion,
    Event,
    EventStore,
    Materialization,
    Observation,
    ObservationError,
    decision_line,
    fingerprint_value,
)
from insync.core._owners import owner_metadata

from ._compile import CACHE_FILE, CompiledCache, compiled_nodes
from ._lineage import DbtOlCapture, emit_build_lineage
from ._manifest import FRAMEWORK, DbtAsset, assets_from_manifest, topological_order, window_floor
from ._plan import Decision, due_windows, plan
from ._progress import note, phase
from ._report import BuildReport, NodeOutcome
from ._runner import DbtError, DbtInvoker, _value_of, release_warehouse, split_args
from ._sql import (
    SUPPORTED_WAREHOUSES,
    batch_query,
    checksum_expression,
    existing_relations_query,
    max_expression,
    observe_expression,
    windows_query,
)

if TYPE_CHECKING:
    from dbt.contracts.graph.manifest import Manifest

__all__ = ["DbtProject"]

log = logging.getLogger("insync.adapters.dbt")

# dbt statuses after which the node's relation holds what its code says.
_DONE: Final = frozenset({"success"})
_PARTIAL: Final = "partial success"  # a microbatch model some of whose batches failed
_FAILED_TEST: Final = frozenset({"fail", "error", "runtime error"})
_COMMAND_TYPES: Final = {"build": ("model", "seed", "snapshot"), "run": ("model",)}


class DbtProject:
    """A dbt project whose builds are memoized in an insync store.

    >>> project = DbtProject("path/to/project", store="sqlite:///insync.db")  # doctest: +SKIP
    >>> report = project.build("--select", "marts")  # doctest: +SKIP
    >>> report.built, report.reused  # doctest: +SKIP

    `dbt_args` are dbt options every call gets (`--target prod`, `--vars ...`); `store` is an
    `EventStore`, a URL, or None for the default location ($INSYNC_DATABASE_URL, $INSYNC_HOME,
    ./.insync). `run_id` names the run in provenance (default: a new uuid per build).
    """

    def __init__(
        self,
        project_dir: str | os.PathLike[str] | None = None,
        *,
        profiles_dir: str | os.PathLike[str] | None = None,
        target: str | None = None,
        dbt_args: Sequence[str] = (),
        store: EventStore | str | None = None,
    ) -> None:
        extra: list[str] = []
        if project_dir is not None:
            extra += ["--project-dir", os.fspath(project_dir)]
        if profiles_dir is not None:
            extra += ["--profiles-dir", os.fspath(profiles_dir)]
        if target is not None:
            extra += ["--target", target]
        self._base_args = (*extra, *dbt_args)
        self._store_arg = store
        self._store: EventStore | None = store if isinstance(store, EventStore) else None

    # ------------------------------------------------------------------ public API
    @property
    def store(self) -> EventStore:
        if self._store is None:
            self._store = EventStore(self._store_arg if isinstance(self._store_arg, str) else None)
        return self._store

    def close(self) -> None:
        """Close the store if this project opened it."""
        if self._store is not None and not isinstance(self._store_arg, EventStore):
            self._store.close()
            self._store = None

    def __enter__(self) -> DbtProject:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def build(self, *args: str, force: bool = False, run_id: str | None = None) -> BuildReport:
        """`dbt build` of the selected nodes that are unsynced or missing; the rest is reused.

        `args` are dbt's own (`--select`, `--exclude`, `--target`, `--full-refresh`, ...);
        `force` (or `--full-refresh`) rebuilds every selected node. Microbatch models build only
        their missing and unsynced batches; `--event-time-start/--event-time-end` bound them.
        Readers of a source insync cannot observe always rebuild (`BuildReport.unobserved`).

        :raises DbtError: dbt could not parse/compile the project or resolve the selection.
        :raises ObservationError: a source could not be observed (nothing was built).
        :raises ConfigError: no dbt_project.yml in the project directory, no such dbt profile,
            bad `meta.insync` on a node, or two nodes sharing an asset key.
        """
        try:
            return self._execute("build", args, force=force, run_id=run_id)
        finally:
            release_warehouse()

    def run(self, *args: str, force: bool = False, run_id: str | None = None) -> BuildReport:
        """`dbt run` (models only, no tests) of the selected unsynced or missing models.

        :raises DbtError, ObservationError, ConfigError: as `build`.
        """
        try:
            return self._execute("run", args, force=force, run_id=run_id)
        finally:
            release_warehouse()

    def status(self, *args: str, observe: bool = True) -> BuildReport:
        """What `build` would do now, without building: every selected node with its reason.

        Observing sources records observations (that is how new source data is noticed);
        `observe=False` skips that and uses the last recorded observations.

        :raises DbtError, ObservationError, ConfigError: as `build`.
        """
        try:
            ctx = self._prepare(args, "build", observe=observe)
            decisions = self._decide(ctx, force=None, dry_run=True)
        finally:
            release_warehouse()
        ctx.clock.lap("decide")
        # Nothing runs: each node says its status and causes (a parent's rebuild in its words).
        outcomes = [NodeOutcome(ctx.assets[d.unique_id], "would build" if d.build else "reuse",
                                d.message) for d in decisions]
        return BuildReport("status", run_id=None, outcomes=outcomes, invocations=0,
                           timings=ctx.clock.laps, unobserved=_unobserved(ctx))

    def asset_status(self, node: str, *args: str,
                     observe: bool = True) -> tuple[DbtAsset, AssetStatus]:
        """The dbt node named `node` (name, unique id, `source.table` or asset key) and its status.

        :raises ConfigError: no node has that name (the message lists close names).
        """
        try:
            ctx = self._prepare(args, "build", observe=observe)
        finally:
            release_warehouse()
        asset = _find(ctx.assets, node)
        return asset, self.store.status(asset.key)

    # ------------------------------------------------------------------ the flow
    def _prepare(self, args: Sequence[str], command: str, *, observe: bool) -> _Context:
        dbt_args = split_args([*self._base_args, *args])
        invoker = DbtInvoker(dbt_args)
        clock = _Clock()
        with phase("dbt parse of %s", invoker.check_project()):
            manifest = invoker.parse()
        clock.lap("parse")
        cache = CompiledCache(os.path.join(dbt_args.target_dir, CACHE_FILE), manifest,
                              dbt_args.project)
        known, compiled_now = _compile(invoker, manifest, cache)
        clock.lap("compile")
        warehouse = str(getattr(manifest.metadata, "adapter_type", "") or "")
        assets = assets_from_manifest(manifest, os.path.abspath(dbt_args.project_dir),
                                      content_checksums=warehouse in SUPPORTED_WAREHOUSES,
                                      code_versions=known)
        if compiled_now:
            cache.save({uid: assets[uid].code_version or "" for uid in cache.fingerprints
                        if uid in assets})
        ctx = _Context(invoker, manifest, assets, warehouse, clock)
        ctx.selected = self._selection(ctx, dbt_args.selection, _COMMAND_TYPES[command])
        clock.lap("select")
        content = sorted(assets[u].name for u in ctx.selected if assets[u].data_version == "content")
        if content and warehouse not in SUPPORTED_WAREHOUSES:
            # Refused before building: after the build, nothing could be recorded for them.
            raise ConfigError(
                f"content data versions are implemented for {', '.join(SUPPORTED_WAREHOUSES)}, "
                f"not {warehouse}; remove meta.insync.data_version from {', '.join(content)}"
            )
        self._register(ctx)
        clock.lap("register")
        sources = sum(1 for a in assets.values() if a.is_source) if observe else 0
        with phase("observing %d source(s) and listing relations in the warehouse", sources):
            self._observe_and_check(ctx, observe=observe)
        clock.lap("observe")
        ctx.force_reason = (
            "--full-refresh rebuilds every selected node" if dbt_args.full_refresh else None
        )
        return ctx

    def _selection(self, ctx: _Context, selection: Sequence[str], types: Iterable[str]) -> set[str]:
        wanted = set(types)
        candidates = {uid for uid, a in ctx.assets.items() if a.resource_type in wanted}
        if not selection:
            return candidates
        with phase("dbt ls %s", " ".join(selection)):
            return candidates & ctx.invoker.select(selection)

    def _register(self, ctx: _Context) -> None:
        keys = {uid: a.key for uid, a in ctx.assets.items()}
        existing = self.store.definitions()
        specs = []
        for asset in ctx.assets.values():
            other = existing.get(asset.key)
            if asset.is_source and other is not None and (
                other.kind == "materializable"
                or (other.kind == "observable" and other.framework != FRAMEWORK)
            ):
                # Another orchestrator builds or observes this table: its records are the truth.
                ctx.owned_elsewhere.add(asset.unique_id)
            owner = None if asset.is_source else self._owner(ctx, asset)
            specs.append(asset.spec(keys, observed=asset.unique_id not in ctx.owned_elsewhere, owner=owner))
        self.store.register(specs)

    @staticmethod
    def _owner(ctx: _Context, asset: DbtAsset) -> dict[str, Any]:
        """Who rebuilds this model for `insync automate`: `insync dbt build --select NAME` here."""
        args = ctx.invoker.args
        options = {}
        if profiles := _value_of(args.project, "--profiles-dir"):
            options["profiles_dir"] = os.path.abspath(profiles)
        if target := _value_of(args.project, "--target"):
            options["dbt_target"] = target  # "target" is the owner's own (the project dir)
        return owner_metadata("dbt", os.path.abspath(args.project_dir), asset.name, **options)

    def _observe_and_check(self, ctx: _Context, *, observe: bool) -> None:
        """Observe sources and list existing relations, in one warehouse query.

        A source insync cannot observe (no checksum query on this warehouse and no declared
        observation, or a table that is not there) is noted in `ctx.unobserved`: the models
        reading it always rebuild, saying so.
        """
        sources = [a for a in ctx.assets.values()
                   if a.is_source and a.unique_id not in ctx.owned_elsewhere]
        for asset in sources:
            if asset.observation is None:
                ctx.unobserved[asset.unique_id] = (
                    f"insync has no checksum query for {ctx.warehouse or 'this warehouse'}; "
                    "declare meta.insync.observe or a loaded_at_field")
        observed = [a for a in sources if a.observation is not None]
        schemas = {a.schema for a in ctx.assets.values() if not a.is_source and a.relation}
        if ctx.warehouse not in SUPPORTED_WAREHOUSES:
            if observe and observed:
                raise ConfigError(
                    f"observing dbt sources runs SQL that insync knows for "
                    f"{', '.join(SUPPORTED_WAREHOUSES)}, not {ctx.warehouse}; drop "
                    "meta.insync.observe/data_version/loaded_at_field from the sources"
                )
            return
        if not observe:
            observed = []
        try:
            rows = ctx.invoker.query(self._observe_query(ctx, observed, schemas)) \
                if observed or schemas else []
        except DbtError as exc:
            implicit = [a for a in observed if a.observation and a.observation.implicit]
            if not implicit:
                raise self._observation_error(ctx, observed, exc) from exc
            # A source nobody asked to observe may not be loaded yet: leave it unobserved.
            there = {r["insync_value"] for r in ctx.invoker.query(existing_relations_query(
                {a.schema for a in implicit}))}
            for asset in implicit:
                if f"{asset.schema}.{asset.identifier}".lower() not in there:
                    ctx.unobserved[asset.unique_id] = "its table is not in the warehouse"
            observed = [a for a in observed if a.unique_id not in ctx.unobserved]
            try:
                rows = ctx.invoker.query(self._observe_query(ctx, observed, schemas))
            except DbtError as again:
                raise self._observation_error(ctx, observed, again) from again
        ctx.existing = {r["insync_value"] for r in rows if r["insync_name"] == "relation"}
        values = {r["insync_name"]: r["insync_value"] for r in rows if r["insync_name"] != "relation"}
        self._record_observations(observed, values)

    def _record_observations(self, observed: Sequence[DbtAsset], values: Mapping[str, str]) -> None:
        """Record the sources (and windows) whose checksum changed, a window emptied included:
        the core's rule, one store call for every source."""
        items: list[Observation] = []
        absent: list[Observation] = []
        for asset in observed:
            metadata = {"dbt_unique_id": asset.unique_id,
                        "observed_by": asset.observation.kind if asset.observation else None}
            if asset.partitions is None:
                items.append(Observation(asset.key, _observed(values.get(asset.unique_id)),
                                         metadata=metadata))
                continue
            metadata["observed_by"] = "windows"
            prefix = asset.unique_id + "|"
            items.extend(Observation(asset.key, _observed(value), name[len(prefix):], metadata)
                         for name, value in sorted(values.items()) if name.startswith(prefix))
            absent.append(Observation(asset.key, _observed(None), metadata=metadata))
        if not items and not absent:
            return
        result = self.store.observe(items, consumers={}, framework=FRAMEWORK, absent=absent)
        windows: dict[str, int] = {}
        for event in result.recorded:
            if event.partition is None:
                log.info("observed %s: new data version %s", event.key, event.data_version)
            else:
                windows[str(event.key)] = windows.get(str(event.key), 0) + 1
        for key, changed in windows.items():
            log.info("observed %s: %d window(s) with a new data version", key, changed)

    def _observe_query(self, ctx: _Context, observed: Sequence[DbtAsset],
                       schemas: set[str]) -> str:
        scalar = [(a.unique_id, self._observe_sql(ctx, a)) for a in observed if a.partitions is None]
        queries = [batch_query(scalar)] if scalar else []
        until = window_floor(ctx.now, "hourly")
        for asset in observed:
            if asset.partitions is not None and asset.observation is not None:
                queries.append(windows_query(
                    ctx.warehouse, asset.unique_id, asset.relation or "", asset.observation.sql,
                    asset.partitions.cadence, asset.partitions.start,
                    window_floor(dt.datetime.fromisoformat(until), asset.partitions.cadence)))
        if schemas:
            queries.append(existing_relations_query(schemas))
        return " union all ".join(queries)

    def _observe_sql(self, ctx: _Context, asset: DbtAsset) -> str:
        assert asset.observation is not None and asset.relation is not None
        obs = asset.observation
        if obs.kind == "query":
            return observe_expression(ctx.warehouse, obs.sql)
        if obs.kind == "loaded_at":
            return max_expression(ctx.warehouse, asset.relation, obs.sql)
        return checksum_expression(ctx.warehouse, asset.relation, asset.database, asset.schema,
                                   asset.identifier)

    def _observation_error(self, ctx: _Context, observed: Sequence[DbtAsset],
                           exc: DbtError) -> ObservationError:
        """Find which source's query failed, so the message names it."""
        for asset in observed:
            try:
                ctx.invoker.query(self._observe_query(ctx, [asset], set()))
            except DbtError as one:
                return ObservationError(
                    f"could not observe dbt source {asset.name} ({asset.key}): {one}; fix its "
                    "meta.insync.observe query or loaded_at_field, or load the table first"
                )
        return ObservationError(f"could not query the warehouse: {exc}")

    def _decide(self, ctx: _Context, *, force: str | None, only: Iterable[str] | None = None,
                dry_run: bool = False) -> list[Decision]:
        selected = ctx.selected if only is None else set(only)
        keys = sorted({ctx.assets[uid].key for uid in selected})
        statuses = self.store.statuses(keys, upstream=False) if keys else {}
        for key, status in statuses.items():  # the causes of a node's first decision (lineage)
            ctx.statuses.setdefault(key, status)
        return plan(ctx.assets, selected, statuses, existing=ctx.existing, force=force,
                    unobserved=ctx.unobserved, now=ctx.now,
                    bounds=ctx.invoker.args.event_time, dry_run=dry_run)

    def _execute(self, command: str, args: Sequence[str], *, force: bool,
                 run_id: str | None) -> BuildReport:
        ctx = self._prepare(args, command, observe=True)
        run_id = run_id or uuid.uuid4().hex
        force_reason = ctx.force_reason or ("forced (--force)" if force else None)
        outcomes: dict[str, NodeOutcome] = {}
        remaining = set(ctx.selected) - {u for u, a in ctx.assets.items() if a.is_source}
        invocations = 0
        # One wave per layer of content-versioned nodes whose content really changed. No bound:
        # each wave removes what it built from `remaining`, so the loop ends after at most one
        # wave per node, and no waiting node is ever left out of the report.
        while remaining:
            decisions = self._decide(ctx, force=force_reason, only=remaining)
            ctx.clock.lap("decide")
            force_reason = None
            for d in decisions:
                if not d.build and d.unique_id not in outcomes:
                    outcomes[d.unique_id] = NodeOutcome(ctx.assets[d.unique_id], "reused", d.message)
            to_build = [d for d in decisions if d.build]
            if not to_build:
                break
            for d in to_build:
                log.info("%s", decision_line(False, str(ctx.assets[d.unique_id].key), d.status, d.reason))
            results: dict[str, Any] = {}
            for stage in _stages(ctx, to_build):
                note("dbt %s of %d node(s)%s; %d reused", command, len(stage),
                     " with --full-refresh" if stage[0].full_refresh else "",
                     sum(1 for o in outcomes.values() if o.action == "reused"))
                results.update(self._invoke(ctx, command, stage))
                invocations += 1
            ctx.clock.lap("dbt")
            with phase("recording %d node(s) in the insync store", len(to_build)):
                failed = self._record(ctx, to_build, results, run_id, outcomes)
            ctx.clock.lap("record")
            remaining -= {d.unique_id for d in to_build}
            # Only descendants of nodes just built (through content-versioned ones, or they
            # would have been in this call) can have become unsynced by it.
            built_now = {u for u, o in outcomes.items() if o.action == "built"}
            reach: set[str] = set()
            for uid in topological_order(ctx.assets, remaining):
                if any(p in built_now or p in reach for p in ctx.assets[uid].parents):
                    reach.add(uid)
            remaining = reach
            for uid in remaining:
                outcomes.pop(uid, None)
            if failed and remaining:
                # No further call after a failure; say which waiting nodes it leaves unsynced.
                for d in self._decide(ctx, force=None, only=remaining):
                    outcomes[d.unique_id] = NodeOutcome(
                        ctx.assets[d.unique_id], "skipped" if d.build else "reused",
                        f"not built after a failure: {d.reason}" if d.build else d.message)
                break
            if failed or not remaining:
                break
        for uid, outcome in outcomes.items():
            if outcome.action == "reused":
                log.info("skip %s: %s", ctx.assets[uid].key, outcome.reason)
        ordered = [outcomes[u] for u in topological_order(ctx.assets, outcomes)]
        emit_build_lineage(self.store, ordered, ctx.statuses, ctx.recorded, ctx.lineage)
        return BuildReport(command, run_id=run_id, outcomes=ordered, invocations=invocations,
                           timings=ctx.clock.laps, unobserved=_unobserved(ctx))

    def _invoke(self, ctx: _Context, command: str, stage: Sequence[Decision]) -> dict[str, Any]:
        ids = [d.unique_id for d in stage]
        extra = ["--full-refresh"] if stage and stage[0].full_refresh else []
        extra += _batch_range(ctx, stage) if not extra else []
        # dbt-ol's events are read from the artifacts this call writes, before the next call
        # overwrites them (nothing happens unless OpenLineage is on).
        with ctx.lineage.call():
            if set(ids) == ctx.selected:
                # Everything the user selected is due (a first build, --force): their own
                # selection says it exactly, and dbt resolves it faster than 500 fqn selectors.
                result = ctx.invoker.execute(command, ctx.invoker.args.selection, extra=extra)
            else:
                selectors, excludes = _selectors(ctx.manifest, ids)
                result = ctx.invoker.execute(command, ["--select", *selectors],
                                             ["--exclude", *excludes] if excludes else [], extra)
        return {r.node.unique_id: r for r in (result.results if result is not None else ())}

    def _record(self, ctx: _Context, built: Sequence[Decision], results: Mapping[str, Any],
                run_id: str, outcomes: dict[str, NodeOutcome]) -> bool:
        """Record the nodes dbt built and whose tests passed; True if anything failed."""
        failed_tests: dict[str, str] = {}
        for res in results.values():
            node = res.node
            if node.resource_type != "test" or str(res.status) not in _FAILED_TEST:
                continue
            for parent in getattr(node.depends_on, "nodes", ()):
                failed_tests.setdefault(parent, f"test {node.name} {res.status}")
        succeeded: list[Decision] = []
        any_failed = False
        batches: dict[str, list[str]] = {}
        for d in built:
            asset = ctx.assets[d.unique_id]
            res = results.get(d.unique_id)
            status = str(res.status) if res is not None else "not run"
            if asset.partitions is not None and status in (*_DONE, _PARTIAL):
                batches[d.unique_id] = _built_batches(ctx, asset, res)
            if status in _DONE and d.unique_id not in failed_tests:
                succeeded.append(d)
                continue
            any_failed = True
            if status == _PARTIAL:
                done = set(batches[d.unique_id])
                failed = [k for k in d.partitions or () if k not in done]
                outcomes[d.unique_id] = NodeOutcome(
                    asset, "failed", f"batches {', '.join(failed[:3]) or '?'} failed; "
                    f"{len(done)} recorded")
                continue
            if status in _DONE:
                outcomes[d.unique_id] = NodeOutcome(
                    asset, "test failed", f"{failed_tests[d.unique_id]}: not recorded")
            elif status == "skipped":
                outcomes[d.unique_id] = NodeOutcome(asset, "skipped", "dbt skipped it (upstream failed)")
            else:
                message = (getattr(res, "message", None) or "").strip().splitlines()
                detail = message[0] if message else status
                outcomes[d.unique_id] = NodeOutcome(
                    asset, "failed", f"{status}: {detail}", error="\n".join(message))
        content = self._content_versions(ctx, [d.unique_id for d in succeeded])
        by_id = {d.unique_id: d for d in succeeded}
        by_id.update({d.unique_id: d for d in built if d.unique_id in batches
                      and d.unique_id not in by_id and d.unique_id not in failed_tests})
        items: list[Materialization] = []  # parents first: children see parents' new versions
        for uid in topological_order(ctx.assets, by_id):
            d = by_id[uid]
            asset = ctx.assets[d.unique_id]
            res = results[d.unique_id]
            version = content.get(d.unique_id)
            if version is None and asset.always_run:
                # It ran because it always runs, not because its inputs changed: without a
                # checksum, only a new version per run keeps its descendants honest.
                version = fingerprint_value(["dbt-always-run", run_id, uid])
            metadata = {"dbt_unique_id": d.unique_id, "reason": d.reason,
                        "execution_time": round(float(res.execution_time or 0.0), 3),
                        "data_version_kind": asset.data_version}
            if uid in batches:
                # One materialization per batch dbt built (the range may hold more than were due).
                items.extend(Materialization(key=asset.key, run_id=run_id, framework=FRAMEWORK,
                                             metadata=metadata, partition=key)
                             for key in batches[uid])
            else:
                items.append(Materialization(key=asset.key, data_version=version, run_id=run_id,
                                             framework=FRAMEWORK, metadata=metadata))
            if uid not in outcomes or outcomes[uid].action != "failed":
                outcomes[d.unique_id] = NodeOutcome(asset, "built", d.reason)
        ctx.recorded.extend(self.store.record_materializations(items))
        return any_failed

    def _content_versions(self, ctx: _Context, ids: Sequence[str]) -> dict[str, DataVersion]:
        wanted = [ctx.assets[u] for u in ids if ctx.assets[u].data_version == "content"]
        if not wanted:
            return {}
        expressions = [
            (a.unique_id, checksum_expression(ctx.warehouse, a.relation or "", a.database,
                                              a.schema, a.identifier))
            for a in wanted
        ]
        rows = ctx.invoker.query(batch_query(expressions))
        values = {r["insync_name"]: r["insync_value"] for r in rows}
        return {uid: fingerprint_value(["dbt-content", values.get(uid)]) for uid, _ in expressions}


class _Context:
    """State of one insync dbt command."""

    @functools.cached_property
    def lineage(self) -> DbtOlCapture:
        """dbt-ol's events of each dbt call (made when a dbt call runs)."""
        return DbtOlCapture(self.invoker.args)

    def __init__(self, invoker: DbtInvoker, manifest: Manifest, assets: dict[str, DbtAsset],
                 warehouse: str, clock: _Clock) -> None:
        self.clock = clock
        self.invoker = invoker
        self.manifest = manifest
        self.assets = assets
        self.warehouse = warehouse
        self.selected: set[str] = set()
        self.owned_elsewhere: set[str] = set()
        self.existing: set[str] | None = None
        self.force_reason: str | None = None
        self.unobserved: dict[str, str] = {}  # source unique id -> why insync cannot observe it
        self.now = pendulum.now("UTC")  # cuts the microbatch windows that have ended
        self.statuses: dict[AssetKey, AssetStatus] = {}  # before this command built anything
        self.recorded: list[Event] = []  # materializations this command recorded


class _Clock:
    """Seconds spent per phase, summed over waves (reported in `BuildReport.timings`)."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.laps[phase] = round(self.laps.get(phase, 0.0) + now - self._last, 4)
        self._last = now


def _compile(invoker: DbtInvoker, manifest: Manifest,
             cache: CompiledCache) -> tuple[dict[str, str], bool]:
    """dbt compiles the models and snapshots whose compilation inputs changed since the last
    run. Returns the code versions of the others, from the last compile (see `_compile`), and
    whether dbt compiled anything."""
    wanted = compiled_nodes(manifest)
    known = cache.reusable(wanted)
    due = [uid for uid in wanted if uid not in known]
    if not due:
        note("dbt compile skipped: no model or snapshot changed since the last compile")
        return known, False
    with phase("dbt compile of %d of %d models and snapshots%s", len(due), len(wanted),
               " (the others are unchanged since the last compile)" if known else ""):
        if len(due) == len(wanted):
            invoker.compile()
        else:
            selectors, excludes = _selectors(manifest, due)
            invoker.compile(["--select", *selectors, *(["--exclude", *excludes] if excludes else [])])
    return known, True


def _stages(ctx: _Context, to_build: Sequence[Decision]) -> list[list[Decision]]:
    """Split one wave into dbt calls, parents first: `--full-refresh` applies to a whole call, so
    models that need it go in their own call, after the plain nodes they read (and before the
    plain nodes reading them). Usually a single call."""
    by_id = {d.unique_id: d for d in to_build}
    stage: dict[str, int] = {}
    for uid in topological_order(ctx.assets, by_id):
        kind = int(by_id[uid].full_refresh)
        floor = max((stage[p] for p in ctx.assets[uid].parents if p in stage), default=0)
        stage[uid] = floor if floor % 2 == kind else floor + 1
    calls: dict[int, list[Decision]] = {}
    for uid in topological_order(ctx.assets, by_id):
        calls.setdefault(stage[uid], []).append(by_id[uid])
    return [calls[n] for n in sorted(calls)]


def _batch_range(ctx: _Context, stage: Sequence[Decision]) -> list[str]:
    """--event-time-start/--event-time-end spanning every batch due in this call (dbt takes one
    range per call, for all its microbatch models: batches in between are rebuilt too)."""
    starts: list[pendulum.DateTime] = []
    ends: list[pendulum.DateTime] = []
    for d in stage:
        partitions = ctx.assets[d.unique_id].partitions
        if partitions is None or not d.partitions:
            continue
        starts.append(partitions.window(d.partitions[0])[0])
        ends.append(partitions.window(d.partitions[-1])[1])
    if not starts:
        return []
    fmt = "%Y-%m-%dT%H:%M:%S"
    return ["--event-time-start", min(starts).in_timezone("UTC").strftime(fmt),
            "--event-time-end", max(ends).in_timezone("UTC").strftime(fmt)]


def _built_batches(ctx: _Context, asset: DbtAsset, result: Any) -> list[str]:
    """Keys of the batches dbt reports as built, among the windows insync tracks."""
    assert asset.partitions is not None
    tracked = set(due_windows(asset, ctx.now))
    found = []
    for start, _end in getattr(getattr(result, "batch_results", None), "successful", None) or ():
        key = asset.partitions.key_of(pendulum.instance(start).in_timezone("UTC"))
        if key in tracked:
            found.append(key)
    return sorted(set(found))


def _observed(value: str | None) -> DataVersion:
    """The data version of a source (or window) from its observation query's value."""
    return fingerprint_value(["dbt-observation", value])


def _unobserved(ctx: _Context) -> tuple[str, ...]:
    """`raw.orders: why` for each source insync cannot observe that a selected node reads."""
    read = {p for uid in ctx.selected for p in ctx.assets[uid].parents}
    return tuple(f"{ctx.assets[u].name}: {why}" for u, why in sorted(ctx.unobserved.items())
                 if u in read)


def _selectors(manifest: Manifest, ids: Sequence[str]) -> tuple[list[str], list[str]]:
    """dbt selectors choosing exactly `ids`: `fqn:` of each node, plus excludes for any other
    node an fqn prefix would also catch (models in a folder named like a model)."""
    wanted = set(ids)
    prefixes = {tuple(manifest.nodes[u].fqn) for u in ids}
    selectors = [f"fqn:{'.'.join(manifest.nodes[u].fqn)}" for u in ids]
    extra: list[str] = []
    for uid, node in manifest.nodes.items():
        if uid in wanted or node.resource_type not in ("model", "seed", "snapshot"):
            continue
        fqn = tuple(node.fqn)
        if any(fqn[:n] in prefixes for n in range(1, len(fqn))):
            extra.append(f"fqn:{'.'.join(fqn)}")
    return selectors, extra


def _find(assets: Mapping[str, DbtAsset], name: str) -> DbtAsset:
    """:raises ConfigError: no node (or more than one) answers to `name`."""
    hits = [a for a in assets.values() if name in (a.unique_id, a.name, str(a.key))]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise ConfigError(f"{name!r} names several dbt nodes ({', '.join(a.unique_id for a in hits)}); "
                          "use the unique id")
    close = sorted(a.name for a in assets.values() if name.lower() in a.name.lower())[:5]
    hint = f"; did you mean {', '.join(close)}?" if close else "; see `insync dbt status`"
    raise ConfigError(f"no dbt model, seed, snapshot or source named {name!r}{hint}")
