"""Real concurrency against `insync.core.EventStore`: many OS processes, one store.

Workers run `_workers.py` in a fresh interpreter started with subprocess; groups of workers are
forked from one such interpreter before any store is opened (imports paid once; each process opens
its own connections, so only the database is shared). They start together (a barrier file),
report every event they appended, and any exception in a worker fails the test with its traceback.

Covered, on SQLite and PostgreSQL: many writers plus a reader (every event accounted for, ids,
latest index, provenance, statuses), the same for partitions (writers sharing and not sharing
partitions of one asset, and adding DynamicPartitions keys as they write), SIGKILL inside an
append and inside the first migration, racing first opens (one migration), racing registrations
that would close a cycle.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from insync.core import AssetKey, DataVersion, Event, EventStore, PartitionCounts, StaleStatus

sys.path.insert(0, str(Path(__file__).parent))  # also under --import-mode=importlib
import _workers as w

WORKERS = Path(__file__).with_name("_workers.py")
START_TIMEOUT_S = 45.0  # interpreter start on a loaded 2-CPU box is slow; writing is not


class Worker:
    """One worker process; stdout lines arrive on a queue, stderr is collected for failures."""

    def __init__(self, name: str, mode: str, args: dict[str, Any]) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKERS), mode, json.dumps(args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()  # None: stdout closed
        self.stderr: list[str] = []
        self._threads = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr or ()), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _read_stdout(self) -> None:
        for line in self.proc.stdout or ():
            self.lines.put(line)
        self.lines.put(None)

    def expect(self, wanted: str, timeout: float = START_TIMEOUT_S) -> None:
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                self.kill()
                pytest.fail(f"worker {self.name} did not say {wanted} within {timeout}s{self._err()}")
            if line is None:
                self.proc.wait(timeout=10)
                pytest.fail(
                    f"worker {self.name} exited ({self.proc.returncode}) before saying {wanted}{self._err()}"
                )
            if line.strip() == wanted:
                return

    def result(self, timeout: float = 60.0) -> Any:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"worker {self.name} still running after {timeout}s{self._err()}")
        for thread in self._threads:
            thread.join(timeout=10)
        if self.proc.returncode != 0:
            pytest.fail(f"worker {self.name} exited {self.proc.returncode}{self._err()}")
        stderr = "".join(self.stderr)
        assert "database is locked" not in stderr, f"worker {self.name}:\n{stderr}"
        results = []
        while not self.lines.empty():
            line = self.lines.get()
            if line and line.startswith("RESULT "):
                results.append(json.loads(line[len("RESULT ") :]))
        assert len(results) == 1, f"worker {self.name} printed no RESULT{self._err()}"
        return results[0]

    def kill(self) -> None:
        """Stop the process if still running and close its pipes (idempotent)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        for thread in self._threads:
            thread.join(timeout=10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

    def _err(self) -> str:
        for thread in self._threads[1:]:
            thread.join(timeout=2)
        text = "".join(self.stderr).strip()
        if len(text) > 12_000:  # eight identical tracebacks say no more than two
            text = f"{text[:8_000]}\n[... {len(text) - 11_000} characters cut ...]\n{text[-3_000:]}"
        return f"; its stderr:\n{text}" if text else " (no stderr)"


def run_together(mode: str, count: int, args: dict[str, Any], tmp_path: Path) -> list[dict[str, Any]]:
    """Run `count` workers of `mode` as separate processes, released at once once all are ready."""
    go = tmp_path / "go"
    launcher = Worker(
        f"{mode}x{count}",
        "group",
        {"mode": mode, "count": count, "out": str(tmp_path / "workers"), "args": {**args, "go": str(go)}},
    )
    try:
        launcher.expect("READY")
        go.touch()
        results = launcher.result()
    finally:
        launcher.kill()
    assert isinstance(results, list) and len(results) == count
    return results


# ------------------------------------------------------------------------------ checks
def all_events(store: EventStore) -> dict[int, Event]:
    """Every event in the store, through the public API (`history` of every defined asset)."""
    found: dict[int, Event] = {}
    for key in store.definitions():
        for event in store.history(key):
            assert event.id not in found, f"event {event.id} listed twice"
            found[event.id] = event
    return found


def check_provenance(store: EventStore, events: dict[int, Event], *, serial: bool) -> None:
    """Every materialization has one input per dependency, each naming a real, earlier event of
    that dependency with the same data version. With `serial` writers (SQLite), the input is the
    dependency's newest event before the materialization, since ids follow commit order there."""
    specs = store.definitions()
    # Per asset and partition (None: unpartitioned): an input reads one partition of its dependency.
    by_key: dict[tuple[AssetKey, str | None], list[int]] = defaultdict(list)
    for event_id in sorted(events):
        by_key[(events[event_id].key, events[event_id].partition)].append(event_id)
    for event in events.values():
        if event.kind != "materialization":
            assert event.inputs == ()
            continue
        deps = specs[event.key].deps
        assert tuple(i.key for i in event.inputs) == deps, event
        for item in event.inputs:
            stream = by_key[(item.key, item.partition)]
            if item.event_id is None:  # the dependency had no record yet
                if serial:
                    assert not any(i < event.id for i in stream), (event, item)
                continue
            source = events[item.event_id]
            assert (source.key, source.partition) == (item.key, item.partition), (event, item)
            assert source.id < event.id, (event, item)
            assert source.data_version == item.data_version, (event, item)
            if serial:
                assert item.event_id == max(i for i in stream if i < event.id), (event, item)


def check_statuses(store: EventStore, events: dict[int, Event]) -> None:
    """`statuses()` (which reads the latest index) agrees with the newest event of each asset."""
    newest: dict[AssetKey, Event] = {}
    for event in events.values():
        if event.key not in newest or event.id > newest[event.key].id:
            newest[event.key] = event
    statuses = store.statuses()
    specs = store.definitions()
    for key, status in statuses.items():
        if key not in newest:
            assert status.last_event_id is None, status
            continue
        event = newest[key]
        assert status.last_event_id == event.id, (key, status.last_event_id, event.id)
        assert status.data_version == event.data_version, (key, status, event)
        assert store.latest_event(key) == event
        if specs[key].is_source:
            continue
        assert status.last_run_id == event.run_id
        in_sync = all(statuses[i.key].data_version == i.data_version for i in event.inputs)
        expected = StaleStatus.FRESH if in_sync else StaleStatus.STALE
        assert status.status is expected, (key, status, event.inputs)


def check_many_writers(url: str, results: list[dict[str, Any]], rounds: int, *, serial: bool) -> None:
    *results, reader = results
    assert reader["reads"] >= 2 and not reader["backwards"], reader
    per_worker = w.ROUND_EVENTS * rounds
    with EventStore(url) as store:
        events = all_events(store)
        assert len(events) == per_worker * len(results), "events lost or invented"
        assert store.last_event_id() == max(events)
        reported: list[int] = []
        for index, result in enumerate(results):
            appended = result["events"]
            ids = [event_id for event_id, _, _ in appended]
            assert len(appended) == per_worker
            assert all(a < b for a, b in itertools.pairwise(ids)), f"w{index}: ids not increasing"
            for event_id, key, kind in appended:
                stored = events[event_id]
                assert (str(stored.key), stored.kind, stored.run_id) == (key, kind, f"w{index}")
            by_run = sorted(i for i, e in events.items() if e.run_id == f"w{index}")
            assert by_run == ids, f"w{index}: store and worker disagree on its events"
            reported += ids
        assert len(set(reported)) == len(reported) == len(events)
        check_provenance(store, events, serial=serial)
        check_statuses(store, events)
        final = {str(k): s.last_event_id for k, s in store.statuses().items()}
        assert reader["seen"] == {k: v for k, v in final.items() if v is not None}
        counts = Counter(str(e.key) for e in events.values())
        assert counts[w.SHARED_A] == rounds * len(results)
        assert counts[w.SHARED_B] == rounds * len(results)
    # Under the API: one latest row per asset and kind, each naming that pair's newest event.
    raw = raw_integrity(url)
    assert raw["events"] == len(events)
    assert raw["latest"] == len({(e.key, e.partition, e.kind) for e in events.values()})
    assert raw["orphan_inputs"] == raw["orphan_latest"] == raw["lagging_latest"] == 0


# ------------------------------------------------------------------------- many writers
def test_sqlite_many_processes_append_without_losing_events(sqlite_url: str, tmp_path: Path) -> None:
    EventStore(sqlite_url).close()
    rounds = 10
    # Four writers and one reader.
    results = run_together("append", 5, {"url": sqlite_url, "rounds": rounds, "writers": 4}, tmp_path)
    check_many_writers(sqlite_url, results, rounds, serial=True)


def test_postgres_many_processes_append_without_losing_events(postgres_url: str, tmp_path: Path) -> None:
    EventStore(postgres_url).close()
    rounds = 5
    # Eight writers and one reader.
    results = run_together("append", 9, {"url": postgres_url, "rounds": rounds, "writers": 8}, tmp_path)
    check_many_writers(postgres_url, results, rounds, serial=False)


# -------------------------------------------------------------------- partitions, many writers
def check_partition_writers(url: str, results: list[dict[str, Any]], rounds: int, *, serial: bool) -> None:
    """Nothing lost or duplicated; per partition, the latest record is its highest event id and
    `history(key, partition=P)` holds exactly what the writers wrote there; the dynamic key set is
    every key added, once; rollups and partition statuses agree with the events."""
    *results, reader = results
    assert reader["reads"] >= 2 and not reader["backwards"], reader
    writers = len(results)
    days, child, dyn = AssetKey(w.PART_DAYS), AssetKey(w.PART_CHILD), AssetKey(w.PART_DYN)
    with EventStore(url) as store:
        events = all_events(store)
        assert len(events) == w.PART_ROUND_EVENTS * rounds * writers, "events lost or invented"
        assert store.last_event_id() == max(events)
        reported: list[int] = []
        written: Counter[tuple[str, str | None]] = Counter()
        for index, result in enumerate(results):
            ids = [event_id for event_id, *_ in result["events"]]
            assert len(ids) == w.PART_ROUND_EVENTS * rounds
            assert all(a < b for a, b in itertools.pairwise(ids)), f"w{index}: ids not increasing"
            for event_id, key, partition, kind in result["events"]:
                stored = events[event_id]
                assert (str(stored.key), stored.partition, stored.kind, stored.run_id) == (
                    key,
                    partition,
                    kind,
                    f"w{index}",
                )
                written[(key, partition)] += 1
            reported += ids
        assert len(set(reported)) == len(reported) == len(events)
        assert all(e.partition is not None for e in events.values())

        # Per partition: history counts, and the latest record is the highest id.
        streams: dict[tuple[AssetKey, str], list[Event]] = defaultdict(list)
        for event in events.values():
            streams[(event.key, event.partition)].append(event)  # type: ignore[index]
        assert {(str(k), p): len(v) for (k, p), v in streams.items()} == dict(written)
        for (key, partition), stream in streams.items():
            newest = max(stream, key=lambda e: e.id)
            history = store.history(key, partition=partition)
            assert [e.id for e in history] == sorted((e.id for e in stream), reverse=True), (key, partition)
            status = store.status(key, partition=partition, upstream=False)
            assert status.last_event_id == newest.id, (key, partition, status.last_event_id, newest.id)
            assert status.data_version == newest.data_version, (key, partition)
            assert status.last_run_id == newest.run_id, (key, partition)
        shared = streams[(days, w.SHARED_DAY)]
        assert len(shared) == 2 * writers * rounds
        assert {e.parameters for e in shared} == {
            (("by", f"value:w{i}{alone}"),) for i in range(writers) for alone in ("", "-alone")
        }

        # Dynamic keys: each added once, whether added explicitly or by materializing it.
        added = {key for result in results for key in result["dynamic"]}
        assert len(added) == 2 * rounds + 2 * rounds * writers
        keys = store.dynamic_partitions(w.DYN_NAME)
        assert len(keys) == len(set(keys)) and set(keys) == added
        materialized_dyn = {p for (k, p) in streams if k == dyn}
        assert materialized_dyn == {k for k in added if not k.startswith("w") or "auto" in k}

        check_provenance(store, events, serial=serial)

        # Rollups: counts and Unsynced keys follow from the newest events alone.
        def current(key: AssetKey, partition: str) -> str:
            return max(streams[(key, partition)], key=lambda e: e.id).data_version.value

        written_days = {w.SHARED_DAY} | {w.own_day(i) for i in range(writers)}
        stale_children = set()
        for day in written_days:
            (read,) = max(streams[(child, day)], key=lambda e: e.id).inputs
            assert (read.key, read.partition) == (days, day)
            if read.data_version.value != current(days, day):
                stale_children.add(day)
        # Each writer's last write of the shared day comes alone, with a version no batch wrote.
        assert stale_children == {w.SHARED_DAY}, stale_children
        missing_days = tuple(d for d in w.PART_DAY_KEYS if d not in written_days)
        statuses = store.statuses()
        assert statuses[days].partitions == PartitionCounts(
            len(w.PART_DAY_KEYS), len(written_days), (), missing_days
        )
        counts = statuses[child].partitions
        assert counts is not None
        assert (counts.total, counts.synced, counts.missing) == (
            len(w.PART_DAY_KEYS),
            len(written_days) - len(stale_children),
            missing_days,
        )
        assert set(counts.unsynced) == stale_children
        assert statuses[child].status is (StaleStatus.STALE if stale_children else StaleStatus.FRESH)
        for day in written_days:
            one = store.status(child, partition=day).status
            assert one is (StaleStatus.STALE if day in stale_children else StaleStatus.FRESH), (day, one)
        counts = statuses[dyn].partitions
        assert counts is not None
        assert (counts.total, counts.synced, counts.unsynced) == (len(added), len(materialized_dyn), ())
        assert set(counts.missing) == added - materialized_dyn
        final = {str(k): s.last_event_id for k, s in statuses.items()}
        assert reader["seen"] == {k: v for k, v in final.items() if v is not None}
    raw = raw_integrity(url)
    assert raw["events"] == len(events)
    assert raw["latest"] == len(streams)
    assert raw["dynamic_keys"] == len(added)
    assert raw["orphan_inputs"] == raw["orphan_latest"] == raw["lagging_latest"] == 0


def test_many_processes_write_shared_and_own_partitions(store_url: str, tmp_path: Path) -> None:
    """Writers append to the same and to different partitions of one asset, and to partitions of
    a DynamicPartitions asset whose keys they add concurrently (explicitly and by materializing)."""
    EventStore(store_url).close()
    serial = store_url.startswith("sqlite")
    writers, rounds = (4, 5) if serial else (6, 3)
    args = {"url": store_url, "rounds": rounds, "writers": writers}
    results = run_together("append_partitions", writers + 1, args, tmp_path)  # and one reader
    check_partition_writers(store_url, results, rounds, serial=serial)


# ---------------------------------------------------------------------- SIGKILL mid-write
KILL_STAGES = ["insync_events", "insync_event_inputs", "insync_latest"]
# PostgreSQL rolls back a dead client's transaction wholesale; one stage shows it, more cost time.
PG_KILL_STAGES = ["insync_event_inputs"]
BATCH = 2000


def raw_integrity(url: str) -> dict[str, int]:
    """Row counts and orphan counts read straight from the tables (the one place we look under
    the public API: a partial record is exactly what the API might hide)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            one = lambda sql: int(conn.execute(sa.text(sql)).scalar() or 0)  # noqa: E731
            return {
                "events": one("SELECT count(*) FROM insync_events"),
                "inputs": one("SELECT count(*) FROM insync_event_inputs"),
                "latest": one("SELECT count(*) FROM insync_latest"),
                "killed": one("SELECT count(*) FROM insync_events WHERE run_id = 'killed'"),
                "orphan_inputs": one(
                    "SELECT count(*) FROM insync_event_inputs i LEFT JOIN insync_events e "
                    "ON e.id = i.event_id WHERE e.id IS NULL"
                ),
                "orphan_latest": one(
                    "SELECT count(*) FROM insync_latest l LEFT JOIN insync_events e "
                    "ON e.id = l.event_id WHERE e.id IS NULL"
                ),
                "lagging_latest": one(
                    "SELECT count(*) FROM insync_latest l WHERE l.event_id <> (SELECT max(e.id) "
                    "FROM insync_events e WHERE e.asset_key = l.asset_key AND e.kind = l.kind "
                    "AND e.partition_key = l.partition_key)"
                ),
                "dynamic_keys": one("SELECT count(*) FROM insync_dynamic_partitions"),
                "mats_without_inputs": one(
                    "SELECT count(*) FROM insync_events e WHERE e.kind = 'materialization' "
                    "AND e.asset_key = 'kill/b' AND NOT EXISTS "
                    "(SELECT 1 FROM insync_event_inputs i WHERE i.event_id = e.id)"
                ),
            }
    finally:
        engine.dispose()


def kill_inside(url: str, statement: str, while_inside: Callable[[], None] | None = None) -> None:
    """Run a `kill` worker, SIGKILL it once it sits in its open transaction after `statement`
    (after calling `while_inside`, if given)."""
    worker = Worker(f"kill-{statement}", "kill", {"url": url, "statement": statement, "size": BATCH})
    try:
        worker.expect("READY")
        worker.expect("INSIDE")
        if while_inside is not None:
            while_inside()
        os.kill(worker.proc.pid, signal.SIGKILL)
        worker.proc.wait(timeout=30)
        assert worker.proc.returncode == -signal.SIGKILL, f"worker ended on its own{worker._err()}"
    finally:
        worker.kill()


def sigkill_mid_transaction(url: str, stage: str) -> None:
    store = EventStore(url)
    store.register(w.kill_specs())
    store.record_observation(w.KILL_SOURCE, DataVersion("s1"), run_id="before")
    store.record_materializations(w.kill_batch(6, "before"))
    before_events = all_events(store)
    before_status = store.statuses()
    before_raw = raw_integrity(url)

    kill_inside(url, f"insert into {stage}")

    # Nothing of the batch is visible: not through the API, not in any table.
    with EventStore(url) as fresh:
        assert all_events(fresh) == before_events
        assert fresh.statuses() == before_status
        assert fresh.last_event_id() == max(before_events)
    assert raw_integrity(url) == before_raw
    assert before_raw["orphan_inputs"] == before_raw["orphan_latest"] == before_raw["killed"] == 0

    # And the store takes the same batch afterwards, through the old and a new handle.
    store.record_observation(w.KILL_SOURCE, DataVersion("s2"), run_id="after")
    with EventStore(url) as fresh:
        written = fresh.record_materializations(w.kill_batch(BATCH, "after"))
        assert len(written) == BATCH
        events = all_events(fresh)
        assert sum(1 for e in events.values() if e.run_id == "after") == BATCH + 1
        check_provenance(fresh, events, serial=True)
        check_statuses(fresh, events)
    after_raw = raw_integrity(url)
    assert after_raw["events"] == before_raw["events"] + BATCH + 1
    assert after_raw["orphan_inputs"] == after_raw["orphan_latest"] == after_raw["lagging_latest"] == 0
    assert after_raw["mats_without_inputs"] == 0
    store.close()


@pytest.mark.parametrize("stage", KILL_STAGES)
def test_sqlite_sigkill_mid_transaction_leaves_no_partial_record(sqlite_url: str, stage: str) -> None:
    sigkill_mid_transaction(sqlite_url, stage)


@pytest.mark.parametrize("stage", PG_KILL_STAGES)
def test_postgres_sigkill_mid_transaction_leaves_no_partial_record(postgres_url: str, stage: str) -> None:
    sigkill_mid_transaction(postgres_url, stage)


def test_sqlite_writer_waiting_on_a_killed_writer_goes_through(sqlite_url: str) -> None:
    """A write queued behind a transaction whose process dies gets the lock and commits: no
    "database is locked" for the survivor, and only its own events appear."""
    store = EventStore(sqlite_url)
    store.register(w.kill_specs())
    observed = store.record_observation(w.KILL_SOURCE, DataVersion("s1"))
    outcome: dict[str, Any] = {}

    def blocked_write() -> None:
        try:
            outcome["events"] = store.record_materializations(w.kill_batch(10, "waiting"))
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=blocked_write, daemon=True)

    def start_waiting() -> None:
        thread.start()
        thread.join(1.0)
        assert thread.is_alive(), f"the write did not wait for the open transaction: {outcome}"

    kill_inside(sqlite_url, "insert into insync_event_inputs", start_waiting)
    thread.join(40)
    assert not thread.is_alive(), "the waiting write never finished"
    assert "error" not in outcome, outcome
    events = all_events(store)
    assert sorted(events) == sorted([observed.id, *(e.id for e in outcome["events"])])
    check_provenance(store, events, serial=True)
    check_statuses(store, events)
    store.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_sigkill_mid_migration_leaves_a_store_that_opens(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The first opener dies between two CREATE TABLEs: the next opener migrates from scratch."""
    url = (
        f"sqlite:///{tmp_path / 'fresh' / 'insync.db'}"
        if backend == "sqlite"
        else str(request.getfixturevalue("postgres_url"))
    )
    kill_inside(url, "create table insync_latest")
    with EventStore(url) as store:
        assert store.schema_revision() is not None
        store.register(w.kill_specs())
        store.record_observation(w.KILL_SOURCE, DataVersion("s1"))
        assert len(store.record_materializations(w.kill_batch(10, "after"))) == 10
        events = all_events(store)
        assert len(events) == 11
        check_provenance(store, events, serial=True)
        check_statuses(store, events)


# ------------------------------------------------------------------------- first open
def check_first_open(url: str, results: Iterable[dict[str, Any]], count: int) -> None:
    results = list(results)
    assert sum(r["migrated"] for r in results) == 1, f"migrations run: {results}"
    with EventStore(url) as store:
        head = store.schema_revision()
        assert head is not None
        assert {r["revision"] for r in results} == {head}
        events = all_events(store)
        assert sorted(events) == sorted(r["event_id"] for r in results)
        assert {str(e.key) for e in events.values()} == {f"open/{i}" for i in range(count)}
        assert set(store.definitions()) == {AssetKey(f"open/{i}") for i in range(count)}
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            names = [n for n in sa.inspect(conn).get_table_names() if n.endswith("alembic_version")]
            assert len(names) == 1, names
            rows = conn.execute(sa.text(f"SELECT version_num FROM {names[0]}")).all()
            assert [tuple(r) for r in rows] == [(head,)]
    finally:
        engine.dispose()


def test_sqlite_concurrent_first_open_migrates_once(tmp_path: Path) -> None:
    # A path whose directory does not exist yet: the openers race to create it, too.
    url = f"sqlite:///{tmp_path / 'brand' / 'new' / 'insync.db'}"
    results = run_together("first_open", 6, {"url": url}, tmp_path)
    check_first_open(url, results, 6)


def test_postgres_concurrent_first_open_migrates_once(postgres_url: str, tmp_path: Path) -> None:
    results = run_together("first_open", 8, {"url": postgres_url}, tmp_path)
    check_first_open(postgres_url, results, 8)


# ------------------------------------------------------------------------- racing cycles
def check_rings(url: str, results: list[dict[str, Any]], rounds: int) -> None:
    """Two workers raced to close each ring: exactly one of them must get CycleError."""
    pairs = len(results) // 2
    closed = []
    for r in range(rounds):
        for pair in range(pairs):
            refused = [res["refused"][r] for res in results[2 * pair : 2 * pair + 2]]
            if refused.count(None) != 1:
                closed.append(f"r{r}p{pair}: {refused}")
            else:
                assert f"r{r}p{pair}/" in next(e for e in refused if e is not None)
    assert not closed, (
        f"{len(closed)} of {rounds * pairs} rings: both closing edges accepted, i.e. two concurrent "
        f"register() calls closed a cycle neither could see: {closed}"
    )
    with EventStore(url) as store:
        specs = store.definitions()
        assert sum(len(spec.deps) for spec in specs.values()) == 3 * rounds * pairs
        assert len(store.statuses()) == 4 * rounds * pairs  # CycleError if a cycle got in


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_concurrent_registrations_cannot_close_a_cycle(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = str(request.getfixturevalue(f"{backend}_url"))
    count, rounds = (4, 3) if backend == "sqlite" else (8, 2)
    rings = [f"r{r}p{pair}" for r in range(rounds) for pair in range(count // 2)]
    with EventStore(url) as store:
        store.register([spec for ring in rings for spec in w.ring_specs(ring)])
    results = run_together("ring", count, {"url": url, "count": count, "rounds": rounds}, tmp_path)
    check_rings(url, results, rounds)
