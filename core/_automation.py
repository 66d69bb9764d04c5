"""Declarative automation: which Unsynced assets to launch, through which owner, and who claimed it.

A policy per asset or key prefix says when an asset should be materialized (eager, when a named
upstream has a new data version, when its code changed), how long to let upstream changes
settle (`lag_tolerance`), whether any or all parents must have changed, and how old it may get
(`freshness`). `evaluate` is pure: statuses, definitions and times in, one `Decision` per asset
out. `claim` writes the launches into `insync_automation_claims` in one transaction, keyed by
(asset, partition, change): a second `insync automate` process, or the same one after a
restart, finds the row and does not launch the same change again.

Owners are what knows how to run an asset: an Airflow DAG, a Prefect deployment, a dbt project.
Adapters record them with the definition (metadata `insync_owner`); a policy may override them.
The launchers themselves live in the adapters (entry point group `insync.launchers`), so this
module imports no orchestrator.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import hashlib
import json
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, Protocol

import pendulum
import sqlalchemy as sa

from . import _schema as t
from ._keys import AssetKey
from ._loading import chunks
from ._model import AssetSpec, AssetStatus, StaleCauseCategory, StaleStatus, partition_label
from ._owners import (
    OWNER_KEY,
    OWNER_KINDS,
    PARTITION_BY_WINDOW,
    UNTARGETABLE,
    WINDOW_KINDS,
    Owner,
    owner_metadata,
)
from ._partitions import TimeWindowPartitions
from ._store import EventStore
from .errors import ConfigError

__all__ = [
    "OWNER_KEY",
    "AutomationConfig",
    "Decision",
    "LaunchRequest",
    "Launcher",
    "Owner",
    "Policy",
    "claim",
    "evaluate",
    "load_config",
    "owner_metadata",
    "parse_duration",
    "plan",
    "release",
    "requests_for",
]

_POLICY_KEYS: Final = (
    "eager",
    "on_upstream",
    "on_code_change",
    "lag_tolerance",
    "parents",
    "freshness",
    "owner",
)
_SECTION_KEYS: Final = ("policies", *OWNER_KINDS)
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION: Final = re.compile(r"(\d+(?:\.\d+)?)([smhd])")

Action = Literal["launch", "wait", "hold", "claimed", "no owner", "breach"]


# --------------------------------------------------------------------------------- model
def parse_duration(value: object, what: str) -> datetime.timedelta:
    """`"30m"`, `"6h"`, `"1h30m"`, `"90s"`, `"2d"`, a number of seconds or a timedelta.

    :raises ConfigError: naming `what` and the accepted forms.
    """
    if isinstance(value, datetime.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and value.strip() and _DURATION.sub("", value.replace(" ", "")) == "":
        seconds = sum(float(n) * _UNITS[u] for n, u in _DURATION.findall(value.replace(" ", "")))
    else:
        raise ConfigError(f'{what} is {value!r}; write a duration like "90s", "30m", "6h", "1h30m" or "2d"')
    if seconds < 0:
        raise ConfigError(f"{what} is negative ({value!r}); write a duration of 0 or more")
    return datetime.timedelta(seconds=seconds)


def _human(delta: datetime.timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if (seconds >= size and seconds % size == 0) or seconds >= 10 * size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True, slots=True)
class Policy:
    """When an asset (or every asset under a key prefix) is launched.

    - `eager`: whenever it is Unsynced or never materialized;
    - `on_upstream`: when one of these upstream assets has a new data version;
    - `on_code_change`: when its code version changed;
    - `parents`: "any" changed parent suffices, or "all" must have changed (of `on_upstream`
      when given, else of all its deps); a code change launches either way;
    - `lag_tolerance`: wait until this long after the first upstream change, then launch once
      with everything that arrived meanwhile;
    - `freshness`: report a breach when the last materialization is older, Synced or not;
    - `owner`: "kind:target", overriding the owner the adapter recorded.

    Durations are timedeltas or strings like "30m", "6h".

    :raises ConfigError: a bad duration, parents value or owner.
    """

    eager: bool = False
    on_upstream: tuple[AssetKey, ...] = ()
    on_code_change: bool = False
    lag_tolerance: datetime.timedelta = datetime.timedelta(0)
    parents: Literal["any", "all"] = "any"
    freshness: datetime.timedelta | None = None
    owner: Owner | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        for name in ("eager", "on_code_change"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} is {getattr(self, name)!r}; write true or false")
        upstream = self.on_upstream
        if isinstance(upstream, str):
            upstream = (upstream,)
        if not isinstance(upstream, Iterable):
            raise ConfigError(f"on_upstream is {upstream!r}; write a list of asset keys")
        set_(self, "on_upstream", tuple(sorted({AssetKey.parse(k) for k in upstream})))
        set_(self, "lag_tolerance", parse_duration(self.lag_tolerance, "lag_tolerance"))
        if self.freshness is not None:
            set_(self, "freshness", parse_duration(self.freshness, "freshness"))
        if self.parents not in ("any", "all"):
            raise ConfigError(f'parents is {self.parents!r}; write "any" or "all"')
        if isinstance(self.owner, str):
            set_(self, "owner", Owner.parse(self.owner, "owner"))
        elif self.owner is not None and not isinstance(self.owner, Owner):
            raise ConfigError(f'owner is {self.owner!r}; write "kind:target" or Owner(...)')

    @property
    def launches(self) -> bool:
        return self.eager or self.on_code_change or bool(self.on_upstream)


@dataclass(frozen=True, slots=True)
class AutomationConfig:
    """Policies by asset key or key prefix (`"marts"` covers `marts/daily_revenue`; `"*"` covers
    everything); the longest match wins. `launchers` holds each owner kind's options (the
    `[airflow]` table: `url`, `username`)."""

    policies: Mapping[str, Policy] = field(default_factory=dict)
    launchers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for pattern, policy in self.policies.items():
            if pattern != "*":
                AssetKey.parse(pattern)
            if not isinstance(policy, Policy):
                raise ConfigError(f"the policy for {pattern!r} is {policy!r}, not a Policy")

    def policy_for(self, key: AssetKey) -> Policy | None:
        best: tuple[int, Policy] | None = None
        for pattern, policy in self.policies.items():
            if pattern == "*":
                rank = 0
            elif key == pattern or key.startswith(pattern + "/"):
                rank = pattern.count("/") + 1
            else:
                continue
            if best is None or rank > best[0]:
                best = (rank, policy)
        return None if best is None else best[1]


def _unknown_key(key: str, allowed: Sequence[str], where: str) -> ConfigError:
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return ConfigError(f"unknown key {key!r} in {where}; {hint}known keys: {', '.join(allowed)}")


def config_from_mapping(table: Mapping[str, Any], where: str) -> AutomationConfig:
    """An `AutomationConfig` from the `[tool.insync.automate]` table (or a small TOML file's root).

    :raises ConfigError: an unknown key, a bad value; the message names the key and the fix.
    """
    for key in table:
        if key not in _SECTION_KEYS:
            raise _unknown_key(key, _SECTION_KEYS, where)
    raw_policies = table.get("policies", {})
    if not isinstance(raw_policies, Mapping):
        raise ConfigError(f'policies in {where} must be a table of [policies."KEY"] tables')
    policies: dict[str, Policy] = {}
    for pattern, body in raw_policies.items():
        here = f'{where} [policies."{pattern}"]'
        if not isinstance(body, Mapping):
            raise ConfigError(f"{here} must be a table (eager = true, ...), not {body!r}")
        for key in body:
            if key not in _POLICY_KEYS:
                raise _unknown_key(key, _POLICY_KEYS, here)
        try:
            if pattern != "*":
                AssetKey.parse(pattern)
            policies[pattern] = Policy(**body)
        except ConfigError as exc:
            raise ConfigError(f"{here}: {exc}") from None
    launchers = {kind: dict(table[kind]) for kind in OWNER_KINDS if isinstance(table.get(kind), Mapping)}
    return AutomationConfig(policies, launchers)


def load_config(path: str | Path | None = None, *, cwd: Path | None = None) -> AutomationConfig:
    """Policies from `path` (a TOML file whose root is the automate table, or a pyproject.toml),
    else from `./pyproject.toml`'s `[tool.insync.automate]`.

    :raises ConfigError: the file is missing or not TOML, holds no automate table, or a policy is
        wrong.
    """
    chosen = Path(path) if path is not None else (cwd or Path.cwd()) / "pyproject.toml"
    try:
        document = tomllib.loads(chosen.read_text(encoding="utf-8"))
    except FileNotFoundError:
        how = "" if path is not None else "; add [tool.insync.automate] to it, or pass --config FILE"
        raise ConfigError(f"no automation config: {chosen} does not exist{how}") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read the automation config {chosen}: {exc}") from None
    if chosen.name == "pyproject.toml" or "tool" in document:
        table = document.get("tool", {}).get("insync", {}).get("automate")
        if not isinstance(table, Mapping):
            raise ConfigError(
                f"{chosen} has no [tool.insync.automate] table; add one with [tool.insync.automate."
                'policies."KEY"] tables, or pass --config FILE'
            )
        return config_from_mapping(table, f"{chosen} [tool.insync.automate]")
    return config_from_mapping(document, str(chosen))


# ------------------------------------------------------------------------------ decisions
@dataclass(frozen=True, slots=True)
class Decision:
    """What `insync automate` does about one asset in one loop; `str()` is its log line."""

    key: AssetKey
    action: Action
    reason: str
    owner: Owner | None = None
    partitions: tuple[str, ...] = ()  # the partitions to launch; () for an unpartitioned asset
    change: str = ""  # what the claim is keyed by: the state the launch answers
    # [start, end) of each time partition, for owners whose run computes the window of its
    # data interval (owner.partition_by "window"): (partition, start, end) triples.
    windows: tuple[tuple[str, datetime.datetime, datetime.datetime], ...] = ()

    def __str__(self) -> str:
        label = str(self.key)
        if self.partitions:
            shown = ", ".join(self.partitions[:3]) + (
                f" +{len(self.partitions) - 3}" if len(self.partitions) > 3 else ""
            )
            label = partition_label(self.key, shown)
        via = (
            f" via {self.owner}" + (f" ({self.owner.item})" if self.owner.item else "") if self.owner else ""
        )
        return f"{self.action} {label}{via}: {self.reason}"


def change_token(spec: AssetSpec, status: AssetStatus, statuses: Mapping[AssetKey, AssetStatus]) -> str:
    """The state a launch answers: code version, status and each dep's current version and event.

    A later upstream change or a new code version gives another token, so it launches again;
    the same state seen by another instance, or after a restart, gives the same token.
    """
    parts: list[str] = [spec.code_version or "", status.status.value]
    for dep in spec.deps:
        found = statuses.get(dep)
        parts += [dep, str(found.data_version) if found else "", str(found.last_event_id) if found else ""]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]


def _trigger(spec: AssetSpec, status: AssetStatus, policy: Policy) -> tuple[bool, str]:
    """(launch?, why) for an asset that is not Synced, by its policy alone."""
    if status.status is StaleStatus.MISSING or (
        status.partitions and status.partitions.missing and not status.partitions.unsynced
    ):
        if policy.eager:
            return True, "never materialized" if status.status is StaleStatus.MISSING else (
                f"{len(status.partitions.missing) if status.partitions else 0} partitions never materialized"
            )
        return False, "never materialized, and the policy is not eager"
    causes = status.causes
    code = [c for c in causes if c.category is StaleCauseCategory.CODE]
    changed = {c.dependency for c in causes if c.category is StaleCauseCategory.DATA and c.dependency}
    roots = "; ".join(dict.fromkeys(str(c) for c in status.root_causes)) or "Unsynced"
    if code and (policy.eager or policy.on_code_change):
        return True, roots
    watched = set(policy.on_upstream) if policy.on_upstream else set(spec.deps)
    hits = changed & watched
    if policy.eager or policy.on_upstream:
        if policy.on_upstream and not hits:
            named = ", ".join(policy.on_upstream)
            return False, f"Unsynced ({roots}), but on_upstream names {named}, which did not change"
        if policy.parents == "all" and not watched <= changed:
            waiting = ", ".join(sorted(watched - changed))
            return False, f"Unsynced ({roots}); parents = all, still waiting for {waiting}"
        if hits or policy.eager:
            return True, roots
    return False, f"Unsynced ({roots}), but the policy launches on other changes"


def evaluate(
    statuses: Mapping[AssetKey, AssetStatus],
    specs: Mapping[AssetKey, AssetSpec],
    config: AutomationConfig,
    *,
    now: datetime.datetime,
    owners: Mapping[AssetKey, Owner] | None = None,
    materialized_at: Mapping[AssetKey, datetime.datetime] | None = None,
    first_change: Mapping[AssetKey, datetime.datetime] | None = None,
) -> list[Decision]:
    """One decision per asset that has a policy and needs one: pure, no store access.

    `owners` are the recorded owners (a policy's owner wins); `materialized_at` the time of each
    asset's latest materialization (freshness); `first_change` when the first upstream change
    not yet materialized arrived (lag_tolerance). Assets that are Synced and fresh get no line.
    A Synced asset whose pending upstream change is launched by the same owner in this loop
    joins that launch (a dbt model below the one rebuilt), so one run carries the whole chain.
    """
    owners = owners or {}
    materialized_at = materialized_at or {}
    first_change = first_change or {}
    decisions: list[Decision] = []
    joiners: list[tuple[AssetKey, Policy, Owner | None]] = []
    for key in sorted(statuses):
        status, spec = statuses[key], specs.get(key)
        policy = config.policy_for(key)
        if policy is None or spec is None or spec.is_source:
            continue
        owner = _owner(policy, owners.get(key))
        if policy.freshness is not None:
            at = materialized_at.get(key)
            if at is None:
                decisions.append(
                    Decision(
                        key,
                        "breach",
                        f"never materialized, freshness bound {_human(policy.freshness)}",
                        owner,
                    )
                )
            elif now - at > policy.freshness:
                age = _human(now - at)
                decisions.append(
                    Decision(
                        key,
                        "breach",
                        f"last materialized {age} ago, freshness bound {_human(policy.freshness)}",
                        owner,
                    )
                )
        partitioned = status.partitions is not None
        needs = status.status is not StaleStatus.FRESH or (
            partitioned and status.partitions is not None and bool(status.partitions.missing)
        )
        if not needs or not policy.launches:
            if status.upstream and policy.launches:
                joiners.append((key, policy, owner))
            continue
        launch, why = _trigger(spec, status, policy)
        if not launch:
            decisions.append(Decision(key, "hold", why, owner))
            continue
        partitions: tuple[str, ...] = ()
        if status.partitions is not None:
            partitions = status.partitions.unsynced + (status.partitions.missing if policy.eager else ())
        change = change_token(spec, status, statuses)
        if owner is None:
            decisions.append(
                Decision(
                    key,
                    "no owner",
                    f"{why}; no owner is recorded: run it once through its adapter, or set "
                    'owner = "kind:target" in its policy',
                    None,
                    partitions,
                    change,
                )
            )
            continue
        windows: tuple[tuple[str, datetime.datetime, datetime.datetime], ...] = ()
        if partitions:
            refused, windows = _aim(key, spec, owner, partitions)
            if refused:
                decisions.append(Decision(key, "hold", f"{why}; {refused}", owner, partitions))
                continue
        since = first_change.get(key)
        if policy.lag_tolerance and since is not None and now - since < policy.lag_tolerance:
            remaining = _human(policy.lag_tolerance - (now - since))
            decisions.append(
                Decision(
                    key,
                    "wait",
                    f"{why}; first upstream change {_human(now - since)} ago, lag_tolerance "
                    f"{_human(policy.lag_tolerance)}: launches in {remaining}",
                    owner,
                    partitions,
                    change,
                )
            )
            continue
        decisions.append(Decision(key, "launch", why, owner, partitions, change, windows))
    launched = {d.key: d.owner.group for d in decisions if d.action == "launch" and d.owner}
    for key, _policy, owner in joiners:
        if owner is None:
            continue
        same = [u.key for u in statuses[key].upstream if launched.get(u.key) == owner.group]
        if same:
            decisions.append(
                Decision(
                    key,
                    "launch",
                    f"joins the {owner.kind} run of {', '.join(same)} (will be unsynced after it)",
                    owner,
                    (),
                    "",
                )
            )
    return sorted(decisions, key=lambda d: (d.key, d.action))


def _owner(policy: Policy, recorded: Owner | None) -> Owner | None:
    if policy.owner is None:
        return recorded
    if recorded is not None and recorded.group == policy.owner.group:
        return recorded
    if recorded is not None and recorded.kind == policy.owner.kind:
        return dataclasses.replace(policy.owner, item=recorded.item, partition_by=recorded.partition_by)
    return policy.owner


def _aim(
    key: AssetKey, spec: AssetSpec, owner: Owner, partitions: tuple[str, ...]
) -> tuple[str, tuple[tuple[str, datetime.datetime, datetime.datetime], ...]]:
    """(why a launch cannot compute exactly `partitions`, or ""; their time windows).

    A run that picks its partition itself (a `partition=` template, its map index) would
    rebuild some other partition than the Unsynced one, so such an asset is held, not launched.
    """
    yourself = (
        f"run {owner}"
        + (f" ({owner.item})" if owner.item else "")
        + f" for {', '.join(partitions[:3])}"
        + (f" +{len(partitions) - 3}" if len(partitions) > 3 else "")
        + " yourself"
    )
    if owner.partition_by in UNTARGETABLE:
        return (
            f"the {owner.kind} run picks its partition from {UNTARGETABLE[owner.partition_by]}, which "
            f"insync cannot set: {yourself}"
            + (
                f", or give {key} time partitions without partition= (a launch sets the run's data "
                "interval to the window)"
                if owner.kind in WINDOW_KINDS
                else ""
            ),
            (),
        )
    if owner.partition_by != PARTITION_BY_WINDOW:
        return "", ()  # the adapter does not say: its launcher gets the partition keys
    if not isinstance(spec.partitions, TimeWindowPartitions):
        return (
            f"its {owner.kind} run reads the partition from a time window, but {key} has "
            f"{type(spec.partitions).__name__}: {yourself}",
            (),
        )
    definition = spec.partitions
    try:
        return "", tuple((p, *definition.window(p)) for p in partitions)
    except ConfigError as exc:  # a key that is no window of these partitions
        return f"{exc}: {yourself}", ()


# ---------------------------------------------------------------------------- the store side
class Launcher(Protocol):
    """What an adapter provides to run its assets (entry point group `insync.launchers`)."""

    def owner_of(self, spec: AssetSpec) -> Owner | None:
        """The owner this adapter recorded in `spec`'s metadata in its own terms, if any."""

    def launch(self, request: LaunchRequest) -> str:
        """Start the run; return a reference to it (a DAG run id, a flow run id, an exit code).

        :raises InsyncError: the run could not be started.
        """


@dataclass(frozen=True, slots=True)
class LaunchRequest:
    """One run to start for one owner: the assets, their items (task ids, dbt nodes) and
    partitions, and an idempotency key derived from the claims. `windows` holds [start, end) of
    each time partition whose owner's run computes the window of its data interval (Airflow)."""

    owner: Owner
    keys: tuple[AssetKey, ...]
    items: tuple[str, ...]
    partitions: Mapping[AssetKey, tuple[str, ...]]
    idempotency_key: str
    options: Mapping[str, Any] = field(default_factory=dict)
    store_url: str = ""  # the store the run must record into (the child gets INSYNC_DATABASE_URL)
    windows: Mapping[AssetKey, Mapping[str, tuple[datetime.datetime, datetime.datetime]]] = field(
        default_factory=dict
    )


def requests_for(
    decisions: Iterable[Decision], config: AutomationConfig, *, store_url: str = ""
) -> list[LaunchRequest]:
    """Launch decisions grouped by owner: one run per DAG, deployment or dbt project."""
    groups: dict[tuple[str, str], list[tuple[Decision, Owner]]] = {}
    for d in decisions:
        if d.action == "launch" and d.owner is not None:
            groups.setdefault(d.owner.group, []).append((d, d.owner))
    out = []
    for (kind, _target), pairs in sorted(groups.items()):
        members = [d for d, _ in pairs]
        first = pairs[0][1]
        # Launcher options: what the adapter recorded (a dbt profiles folder), then the config's.
        options = {**dict(first.options), **config.launchers.get(kind, {})}
        owner = dataclasses.replace(first, item="")
        digest = hashlib.sha256(
            json.dumps(sorted([str(d.key), list(d.partitions), d.change] for d in members)).encode()
        ).hexdigest()[:24]
        out.append(
            LaunchRequest(
                owner=owner,
                keys=tuple(d.key for d in members),
                items=tuple(dict.fromkeys(o.item for _, o in pairs if o.item)),
                partitions={d.key: d.partitions for d in members if d.partitions},
                idempotency_key=f"insync-{digest}",
                options=options,
                store_url=store_url,
                # claim() may have dropped partitions another instance took: keep theirs out.
                windows={
                    d.key: {p: (start, end) for p, start, end in d.windows if p in d.partitions}
                    for d in members
                    if d.windows
                },
            )
        )
    return out


def plan(
    store: EventStore,
    config: AutomationConfig,
    *,
    now: datetime.datetime | None = None,
    owner_hints: Sequence[Launcher] = (),
) -> list[Decision]:
    """Evaluate every policy against the store: 3 queries plus 2 per debounced Unsynced asset.

    `owner_hints` are the adapters' launchers, which read owners from their own metadata.
    Claimed launches come back as `claimed`; nothing is written.
    """
    now = now or pendulum.now("UTC")
    specs = store.definitions()
    statuses = store.statuses()
    owners: dict[AssetKey, Owner] = {}
    for key, spec in specs.items():
        found = Owner.recorded(spec)
        for launcher in owner_hints:
            if found is not None:
                break
            found = launcher.owner_of(spec)
        if found is not None:
            owners[key] = found
    with_bounds = [k for k in statuses if (p := config.policy_for(k)) is not None and p.freshness is not None]
    times = _event_times(store, [i for k in with_bounds if (i := statuses[k].last_event_id) is not None])
    materialized_at = {
        k: times[i] for k in with_bounds if (i := statuses[k].last_event_id) is not None and i in times
    }
    debounced = [
        k
        for k, s in statuses.items()
        if s.status is StaleStatus.STALE and (p := config.policy_for(k)) is not None and p.lag_tolerance
    ]
    first = {k: when for k in debounced if (when := _first_change(store, statuses[k])) is not None}
    decisions = evaluate(
        statuses, specs, config, now=now, owners=owners, materialized_at=materialized_at, first_change=first
    )
    return _mark_claimed(store, decisions)


def _event_times(store: EventStore, ids: list[int]) -> dict[int, datetime.datetime]:
    found: dict[int, datetime.datetime] = {}
    with store._read() as conn:
        for chunk in chunks(ids):
            query = sa.select(t.events.c.id, t.events.c.created_at).where(t.events.c.id.in_(chunk))
            for row in conn.execute(query):
                found[row.id] = _utc(row.created_at)
    return found


def _utc(value: datetime.datetime) -> datetime.datetime:
    # SQLite hands timestamps back naive; they were written in UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=datetime.UTC)


def _first_change(store: EventStore, status: AssetStatus) -> datetime.datetime | None:
    """When the earliest upstream version not yet materialized here was recorded."""
    changed = {c.dependency for c in status.causes if c.category is StaleCauseCategory.DATA and c.dependency}
    if not changed:
        return None
    history = store.history(status.key, limit=1, kind="materialization")
    recorded = {i.key: i for i in history[0].inputs} if history else {}
    earliest: datetime.datetime | None = None
    with store._read() as conn:
        for dep in sorted(changed):
            query = sa.select(sa.func.min(t.events.c.created_at)).where(t.events.c.asset_key == str(dep))
            seen = recorded.get(dep)
            if seen is not None:
                query = query.where(t.events.c.data_version != str(seen.data_version))
                if seen.event_id is not None:
                    query = query.where(t.events.c.id > seen.event_id)
            when = conn.execute(query).scalar()
            if when is not None and (earliest is None or _utc(when) < earliest):
                earliest = _utc(when)
    return earliest


def _claim_rows(decisions: Iterable[Decision]) -> list[tuple[Decision, str]]:
    return [(d, p) for d in decisions if d.action == "launch" and d.change for p in (d.partitions or ("",))]


def _mark_claimed(store: EventStore, decisions: list[Decision]) -> list[Decision]:
    rows = _claim_rows(decisions)
    if not rows:
        return decisions
    claims = t.automation_claims
    taken: dict[tuple[str, str, str], tuple[str, datetime.datetime]] = {}
    with store._read() as conn:
        for chunk in chunks(sorted({str(d.key) for d, _ in rows})):
            query = sa.select(claims).where(claims.c.asset_key.in_(chunk))
            for r in conn.execute(query):
                taken[(r.asset_key, r.partition_key, r.change)] = (r.instance, _utc(r.claimed_at))
    out = []
    for d in decisions:
        hits = (
            [
                taken[(str(d.key), p, d.change)]
                for p in (d.partitions or ("",))
                if (str(d.key), p, d.change) in taken
            ]
            if d.action == "launch" and d.change
            else []
        )
        if hits:
            instance, at = hits[0]
            out.append(
                dataclasses.replace(
                    d,
                    action="claimed",
                    reason=f"{d.reason}; this change was launched by {instance} at {at:%Y-%m-%d %H:%M:%S}Z",
                )
            )
        else:
            out.append(d)
    return out


def claim(store: EventStore, decisions: Sequence[Decision], *, instance: str) -> list[Decision]:
    """Claim the launch decisions in one transaction; return them with the ones another
    instance (or an earlier loop) claimed first turned into `claimed`.

    The unique key (asset, partition, change) decides between racing instances: exactly one
    insert wins, on SQLite and on PostgreSQL.
    """
    rows = _claim_rows(decisions)
    if not rows:
        return list(decisions)
    now = pendulum.now("UTC")
    claims = t.automation_claims

    def work(conn: sa.Connection) -> set[tuple[str, str, str]]:
        lost = set()
        for d, partition in rows:
            stmt = (
                store._insert(claims)
                .values(
                    asset_key=str(d.key),
                    partition_key=partition,
                    change=d.change,
                    instance=instance,
                    claimed_at=now,
                    owner=str(d.owner or ""),
                    run_ref="",
                )
                .on_conflict_do_nothing()
            )
            # RETURNING, not rowcount: psycopg reports -1 for an INSERT .. ON CONFLICT DO NOTHING.
            if conn.execute(stmt.returning(claims.c.change)).first() is None:
                lost.add((str(d.key), partition, d.change))
        return lost

    lost = store._write(work)
    out = []
    for d in decisions:
        parts = d.partitions or ("",)
        won = [p for p in parts if (str(d.key), p, d.change) not in lost]
        if d.action != "launch" or len(won) == len(parts):
            out.append(d)
        elif won:  # another instance took some partitions: launch the rest
            out.append(dataclasses.replace(d, partitions=tuple(won)))
        else:
            out.extend(_mark_claimed(store, [d]))
    return out


def release(store: EventStore, decisions: Sequence[Decision]) -> None:
    """Drop the claims of launches that failed to start, so a later loop tries again."""
    rows = _claim_rows(decisions)
    if not rows:
        return
    claims = t.automation_claims

    def work(conn: sa.Connection) -> None:
        for d, partition in rows:
            conn.execute(
                claims.delete().where(
                    claims.c.asset_key == str(d.key),
                    claims.c.partition_key == partition,
                    claims.c.change == d.change,
                )
            )

    store._write(work)


def record_run(store: EventStore, decisions: Sequence[Decision], run_ref: str) -> None:
    """Note which run a claim started (shown by the other instance's `claimed` line)."""
    rows = _claim_rows(decisions)
    claims = t.automation_claims

    def work(conn: sa.Connection) -> None:
        for d, partition in rows:
            conn.execute(
                claims.update()
                .where(
                    claims.c.asset_key == str(d.key),
                    claims.c.partition_key == partition,
                    claims.c.change == d.change,
                )
                .values(run_ref=run_ref[:255])
            )

    if rows:
        store._write(work)
