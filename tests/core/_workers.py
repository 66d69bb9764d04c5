"""Worker processes for test_concurrency.py: run as `python _workers.py MODE JSON-ARGS`.

Protocol on stdout, one line each: `READY` once imports are done (and the store is open, for
modes that need it), then the worker waits for the file `go` names so every worker starts writing
at once; `INSIDE` when a `kill` worker sits inside its open transaction; `RESULT <json>` last.
Any exception ends the process with a traceback on stderr and a non-zero exit code.

`group` runs `count` workers of another mode as separate OS processes forked from this freshly
started interpreter *before* any store is opened: each child opens its own engine and connections,
so they share nothing but the database, and the imports (over a second of CPU on a small CI box)
are paid once instead of once per process.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from insync.core import (
    AssetKey,
    AssetSpec,
    CycleError,
    DataVersion,
    DynamicPartitions,
    EventStore,
    Materialization,
    Step,
    TimeWindowPartitions,
)

SHARED_SOURCE = "shared/src"
SHARED_A = "shared/a"
SHARED_B = "shared/b"
KILL_SOURCE = "kill/src"
KILL_A = "kill/a"
KILL_B = "kill/b"
ROUND_EVENTS = 6  # events each append round writes
PART_DAYS = "part/days"  # daily, 16 days; every writer writes day 0 and a day of its own
PART_CHILD = "part/child"  # daily on part/days (identity), written in the same batches
PART_DYN = "part/dyn"  # DynamicPartitions whose keys the writers add while they write
DYN_NAME = "part-dyn"
PART_ROUND_EVENTS = 9  # events each append_partitions round writes


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def wait_for(go: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(go):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the test never created {go}")
        time.sleep(0.002)


def shared_specs() -> list[AssetSpec]:
    return [
        AssetSpec(SHARED_SOURCE, kind="observable"),
        AssetSpec(SHARED_A, code_version="1"),
        AssetSpec(SHARED_B, code_version="1", deps=[SHARED_A, SHARED_SOURCE]),
    ]


def own_specs(worker: int) -> list[AssetSpec]:
    p = f"w{worker}"
    return [
        AssetSpec(f"{p}/src", kind="observable"),
        AssetSpec(f"{p}/x", code_version="1", deps=[SHARED_A, f"{p}/src"]),
        AssetSpec(f"{p}/y", code_version="1", deps=[f"{p}/x", SHARED_B]),
    ]


def kill_specs() -> list[AssetSpec]:
    return [
        AssetSpec(KILL_SOURCE, kind="observable"),
        AssetSpec(KILL_A, code_version="1"),
        AssetSpec(KILL_B, code_version="1", deps=[KILL_A, KILL_SOURCE]),
    ]


def kill_batch(size: int, run_id: str) -> list[Materialization]:
    """Alternating a/b, so every b records an input pointing at the a just before it."""
    keys = [KILL_A, KILL_B]
    return [
        Materialization(key=_key(keys[i % 2]), run_id=run_id, metadata={"i": i, "pad": "x" * 200})
        for i in range(size)
    ]


def _key(text: str) -> AssetKey:
    return AssetKey.parse(text)


def append(args: dict[str, Any], ready: Callable[[], None]) -> dict[str, Any]:
    """Register shared + own specs, then append `rounds` x 6 events; report them in order.

    Workers numbered `writers` and up are readers instead (see `read_while_writing`).
    """
    worker, rounds, go = args["worker"], args["rounds"], args["go"]
    if worker >= args["writers"]:
        return read_while_writing(args, ready)
    run_id = f"w{worker}"
    store = EventStore(args["url"])
    ready()
    wait_for(go)
    try:
        return {"events": _append_rounds(store, worker, rounds, run_id)}
    finally:
        store.close()
        (Path(go).parent / f"done-{worker}").touch()


def _append_rounds(store: EventStore, worker: int, rounds: int, run_id: str) -> list[tuple[int, str, str]]:
    specs = shared_specs() + own_specs(worker)
    if worker % 2:  # half register in the opposite order: PostgreSQL must retry any deadlock
        specs.reverse()
    store.register(specs)
    p = f"w{worker}"
    appended: list[tuple[int, str, str]] = []

    def keep(event: Any) -> None:
        appended.append((event.id, str(event.key), event.kind))

    for r in range(rounds):
        if r % 7 == 3:  # re-registering unchanged shared definitions must not disturb anything
            store.register(shared_specs())
        keep(store.record_materialization(SHARED_A, run_id=run_id, metadata={"round": r}))
        keep(store.record_observation(SHARED_SOURCE, DataVersion(f"{p}-{r}"), run_id=run_id))
        keep(store.record_observation(f"{p}/src", f"src-{r % 3}", run_id=run_id))
        for event in store.record_materializations(
            [
                Materialization(key=_key(SHARED_B), run_id=run_id),
                Materialization(key=_key(f"{p}/x"), run_id=run_id, data_version=DataVersion(f"x-{r}")),
                Materialization(key=_key(f"{p}/y"), run_id=run_id),
            ]
        ):
            keep(event)
    return appended


def partition_specs() -> list[AssetSpec]:
    days = TimeWindowPartitions("daily", start="2026-01-01", end="2026-01-17")
    return [
        AssetSpec(PART_DAYS, code_version="1", partitions=days),
        AssetSpec(PART_CHILD, code_version="1", deps=[PART_DAYS], partitions=days),
        AssetSpec(PART_DYN, code_version="1", partitions=DynamicPartitions(DYN_NAME)),
    ]


PART_DAY_KEYS = [f"2026-01-{d:02d}" for d in range(1, 17)]
SHARED_DAY = PART_DAY_KEYS[0]


def own_day(worker: int) -> str:
    return PART_DAY_KEYS[1 + worker]


def append_partitions(args: dict[str, Any], ready: Callable[[], None]) -> dict[str, Any]:
    """Per round: a batch writing the shared day and the worker's own day of part/days and
    part/child (the child items read the days written just before them in the batch), a forced
    Step of the child's own day, dynamic partitions: keys added explicitly (one shared by all
    writers, one own) and keys added by materializing them (again one shared, one own), and last
    the shared day alone, so the shared day of the child ends Unsynced. Reports every event
    appended, with the dynamic keys it added.

    Workers numbered `writers` and up are readers instead (see `read_while_writing`).
    """
    worker, rounds, go = args["worker"], args["rounds"], args["go"]
    if worker >= args["writers"]:
        return read_while_writing(args, ready)
    run_id = f"w{worker}"
    store = EventStore(args["url"])
    ready()
    wait_for(go)
    try:
        specs = partition_specs()
        store.register(list(reversed(specs)) if worker % 2 else specs)
        days, child, dyn = (_key(s) for s in (PART_DAYS, PART_CHILD, PART_DYN))
        mine = own_day(worker)
        appended: list[tuple[int, str, str | None, str]] = []
        added: list[str] = []

        def keep(event: Any) -> None:
            appended.append((event.id, str(event.key), event.partition, event.kind))

        for r in range(rounds):
            batch = [
                # The shared day's data version depends on who wrote it last (parameters enter it).
                Materialization(
                    days, partition=SHARED_DAY, run_id=run_id, parameters=(("by", f"value:{run_id}"),)
                ),
                Materialization(days, partition=mine, run_id=run_id, metadata={"round": r}),
                Materialization(child, partition=SHARED_DAY, run_id=run_id),
                Materialization(child, partition=mine, run_id=run_id),
            ]
            for event in store.record_materializations(batch):
                keep(event)
            step = Step(store, specs[1], partition=mine, parameters={"round": r}, force=True, run_id=run_id)
            assert not step.check(needs_value=False).skip
            keep(step.record())
            explicit = [f"k{r}", f"{run_id}-r{r}"]
            store.add_partitions(DYN_NAME, explicit)
            keep(store.record_materialization(dyn, partition=f"k{r}", run_id=run_id))
            for event in store.record_materializations(
                [
                    Materialization(dyn, partition=f"auto{r}", run_id=run_id),
                    Materialization(dyn, partition=f"{run_id}-auto{r}", run_id=run_id),
                ]
            ):
                keep(event)
            added += [*explicit, f"auto{r}", f"{run_id}-auto{r}"]
            # The shared day again, alone, with a version no batch writes: its child is Unsynced.
            keep(
                store.record_materialization(
                    days, partition=SHARED_DAY, run_id=run_id, parameters=[("by", f"value:{run_id}-alone")]
                )
            )
        return {"events": appended, "dynamic": added}
    finally:
        store.close()
        (Path(go).parent / f"done-{worker}").touch()


def read_while_writing(args: dict[str, Any], ready: Callable[[], None]) -> dict[str, Any]:
    """Poll `statuses()` until every writer is done: reads never fail, and no asset's latest
    event id ever moves backwards between two reads (the index only advances)."""
    folder = Path(args["go"]).parent
    store = EventStore(args["url"])
    ready()
    wait_for(args["go"])
    seen: dict[str, int] = {}
    backwards: list[str] = []
    reads = 0
    while True:
        finished = all((folder / f"done-{i}").exists() for i in range(args["writers"]))
        for key, status in store.statuses().items():
            last = status.last_event_id
            if last is not None:
                if last < seen.get(str(key), 0):
                    backwards.append(f"{key}: {seen[str(key)]} -> {last}")
                seen[str(key)] = last
        assert store.last_event_id() >= max(seen.values(), default=0)
        reads += 1
        if finished:  # one full read after the last write, then stop
            break
    store.close()
    return {"reads": reads, "backwards": backwards, "seen": seen}


def first_open(args: dict[str, Any], ready: Callable[[], None]) -> dict[str, Any]:
    """Open a brand-new store at the same moment as the other workers; say if this one migrated."""
    messages: list[str] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    logger = logging.getLogger("insync")
    logger.setLevel(logging.INFO)
    logger.addHandler(Catch())
    ready()
    wait_for(args["go"])
    store = EventStore(args["url"])
    revision = store.schema_revision()
    # The store must be usable right away by every opener.
    store.register([AssetSpec(f"open/{args['worker']}", code_version="1")])
    event = store.record_materialization(f"open/{args['worker']}", run_id=f"open{args['worker']}")
    store.close()
    migrated = [m for m in messages if "migrated to" in m]
    return {"migrated": len(migrated), "revision": revision, "event_id": event.id}


def barrier(folder: Path, name: str, worker: int, count: int, timeout: float = 60.0) -> None:
    """Wait until all `count` workers reached barrier `name` (files in `folder`)."""
    (folder / f"{name}-{worker}").touch()
    deadline = time.monotonic() + timeout
    while sum((folder / f"{name}-{i}").exists() for i in range(count)) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"barrier {name}: not every worker arrived")
        time.sleep(0.001)


def ring_specs(name: str) -> list[AssetSpec]:
    """Half of a 4-ring `name/0 -> 1 -> 2 -> 3 -> 0` (X -> Y: X depends on Y), registered first;
    `closing_edge(name, side)` adds the other two, one per racing worker."""
    return [
        AssetSpec(f"{name}/0", code_version="1"),
        AssetSpec(f"{name}/1", code_version="1", deps=[f"{name}/2"]),
        AssetSpec(f"{name}/2", code_version="1"),
        AssetSpec(f"{name}/3", code_version="1", deps=[f"{name}/0"]),
    ]


def closing_edge(name: str, side: int) -> AssetSpec:
    # Side 0 and side 1 touch disjoint rows, so no lock orders them: only the check can.
    start, dep = (0, 1) if side == 0 else (2, 3)
    return AssetSpec(f"{name}/{start}", code_version="1", deps=[f"{name}/{dep}"])


def ring(args: dict[str, Any], ready: Callable[[], None]) -> dict[str, Any]:
    """Per round, worker pairs race to add the two edges that close a ring: one must be refused."""
    worker, count, rounds = args["worker"], args["count"], args["rounds"]
    folder = Path(args["go"]).parent
    store = EventStore(args["url"])
    ready()
    wait_for(args["go"])
    refused: list[str | None] = []
    for r in range(rounds):
        barrier(folder, f"round{r}", worker, count)
        try:
            store.register([closing_edge(f"r{r}p{worker // 2}", worker % 2)])
            refused.append(None)
        except CycleError as exc:
            refused.append(str(exc))
    store.close()
    return {"refused": refused}


def kill(args: dict[str, Any], ready: Callable[[], None]) -> dict[str, Any]:
    """Open the store and append a large batch, freezing inside the open transaction right after
    the first SQL statement that starts with `statement` (a migration's CREATE TABLE, or one of
    the batch's INSERTs); the test SIGKILLs this process there.

    The hook is a SQLAlchemy event on the Engine class (public API, no private store attributes).
    """
    wanted = args["statement"].lower()

    def freeze(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        if " ".join(statement.lower().split()).startswith(wanted):
            say("INSIDE")
            time.sleep(120)

    sa.event.listen(sa.Engine, "after_cursor_execute", freeze)
    ready()
    store = EventStore(args["url"])
    store.register(kill_specs())
    store.record_materializations(kill_batch(args["size"], "killed"))
    # Reaching this line means the freeze never happened: the test fails on the missing INSIDE.
    return {"committed": True}


def _die_with_parent() -> None:
    """A child whose launcher was killed (test timeout) must not linger: ask for SIGKILL."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def group(args: dict[str, Any], ready: Callable[[], None]) -> list[Any]:
    """Fork `count` workers of `mode`; READY when all are ready; their results in worker order."""
    mode, count, out = args["mode"], args["count"], Path(args["out"])
    # First openers migrate: pay for importing alembic once, before forking.
    import alembic.command
    import alembic.config  # noqa: F401

    out.mkdir(parents=True, exist_ok=True)
    children: dict[int, int] = {}
    for index in range(count):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                _die_with_parent()
                child_ready = lambda i=index: (out / f"ready-{i}").touch()  # noqa: E731
                result = MODES[mode]({**args["args"], "worker": index}, child_ready)
                (out / f"result-{index}.json").write_text(json.dumps(result))
                code = 0
            except BaseException:
                sys.stderr.write(f"worker {index} failed:\n{traceback.format_exc()}")
                sys.stderr.flush()
            finally:
                os._exit(code)  # never run the launcher's cleanup in a child
        children[pid] = index

    failed: dict[int, int] = {}
    while sum((out / f"ready-{i}").exists() for i in range(count)) < count:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid:  # a child ended before it was ready: it failed; stop waiting for the rest
            failed[children.pop(pid)] = os.waitstatus_to_exitcode(status)
            break
        time.sleep(0.005)
    if not failed:
        ready()
    for pid, index in children.items():
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            failed[index] = code
    if failed:
        raise RuntimeError(f"{mode} workers failed (index: exit code): {failed}; tracebacks above")
    return [json.loads((out / f"result-{i}.json").read_text()) for i in range(count)]


MODES: dict[str, Callable[[dict[str, Any], Callable[[], None]], Any]] = {
    "append": append,
    "append_partitions": append_partitions,
    "first_open": first_open,
    "group": group,
    "kill": kill,
    "ring": ring,
}


def main() -> None:
    mode, raw = sys.argv[1], sys.argv[2]
    result = MODES[mode](json.loads(raw), lambda: say("READY"))
    say("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
