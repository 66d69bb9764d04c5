"""Partitions: which slices an asset has, and which upstream slices each one reads.

A partitioned asset has one record stream per partition key: its own materializations,
provenance, data version and status; the asset's status is their rollup. Keys are plain strings
(`2026-12-01`, `eu`); the empty string is reserved for "not partitioned" in the store.

Definitions: `StaticPartitions` (a fixed set), `TimeWindowPartitions` (hourly, daily, weekly,
monthly windows in a timezone) and `DynamicPartitions` (keys added at run time, shared by name).
Mappings from a child partition to the upstream partitions it reads: `IdentityMapping`,
`TimeWindowMapping` (overlapping windows: daily -> monthly and back), `AllPartitionsMapping` and
`FunctionMapping` (a user function). Unlike Dagster, no mapping stops checking above a size.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias

import pendulum

from .errors import ConfigError, InvalidPartitionKey

__all__ = [
    "NOT_PARTITIONED",
    "AllPartitionsMapping",
    "DynamicPartitions",
    "FunctionMapping",
    "IdentityMapping",
    "PartitionMapping",
    "PartitionsDefinition",
    "StaticPartitions",
    "TimeWindowMapping",
    "TimeWindowPartitions",
    "check_partition_key",
    "mapping_from_json",
    "mapping_to_json",
    "partitions_from_json",
    "partitions_to_json",
    "upstream_partitions",
]

NOT_PARTITIONED: Final = ""  # the partition column of records of unpartitioned assets
MAX_PARTITION_KEY_LENGTH: Final = 255
Cadence: TypeAlias = Literal["hourly", "daily", "weekly", "monthly"]
CADENCES: Final = ("hourly", "daily", "weekly", "monthly")
# Dagster's key formats, so keys read the same to people moving between the two.
_FORMATS: Final = {
    "hourly": "%Y-%m-%d-%H:%M",
    "daily": "%Y-%m-%d",
    "weekly": "%Y-%m-%d",
    "monthly": "%Y-%m-%d",
}


def check_partition_key(key: object, *, what: str = "partition key") -> str:
    """A usable partition key: a non-empty string without control characters, at most 255 long.

    :raises InvalidPartitionKey: otherwise, naming the fix.
    """
    if not isinstance(key, str):
        raise InvalidPartitionKey(
            f"{what} must be a string, not {type(key).__name__} {key!r}; write {str(key)!r}"
        )
    if not key:
        raise InvalidPartitionKey(f"{what} is empty; give a key such as '2026-12-01' or 'eu'")
    if len(key) > MAX_PARTITION_KEY_LENGTH:
        raise InvalidPartitionKey(
            f"{what} is {len(key)} characters long (at most {MAX_PARTITION_KEY_LENGTH}); use a shorter key"
        )
    if any(ord(c) < 32 or 0xD800 <= ord(c) <= 0xDFFF for c in key):
        raise InvalidPartitionKey(f"{what} {key!r} has a control or surrogate character; remove it")
    return key


@dataclass(frozen=True, slots=True)
class StaticPartitions:
    """A fixed set of keys, in the order given (e.g. regions)."""

    keys_: tuple[str, ...]

    def __init__(self, keys: Iterable[str]) -> None:
        if isinstance(keys, str):
            raise ConfigError(f"StaticPartitions takes a list of keys, not the string {keys!r}")
        checked = tuple(check_partition_key(k) for k in keys)
        if not checked:
            raise ConfigError("StaticPartitions needs at least one key")
        if len(set(checked)) != len(checked):
            dupes = sorted({k for k in checked if checked.count(k) > 1})
            raise ConfigError(
                f"StaticPartitions lists {', '.join(map(repr, dupes))} twice; list each key once"
            )
        object.__setattr__(self, "keys_", checked)

    def keys(
        self, now: pendulum.DateTime | None = None, dynamic: Mapping[str, Sequence[str]] = {}
    ) -> list[str]:
        return list(self.keys_)

    def validate(self, key: str) -> str:
        check_partition_key(key)
        if key not in self.keys_:
            raise InvalidPartitionKey(
                f"partition {key!r} is not one of the static keys ({_preview(self.keys_)}); "
                "add it to StaticPartitions or use DynamicPartitions"
            )
        return key


@dataclass(frozen=True, slots=True)
class DynamicPartitions:
    """Keys added at run time (`EventStore.add_partitions(name, keys)`, or by materializing one).

    Assets naming the same `name` share one key set.
    """

    name: str

    def __post_init__(self) -> None:
        check_partition_key(self.name, what="DynamicPartitions name")

    def keys(
        self, now: pendulum.DateTime | None = None, dynamic: Mapping[str, Sequence[str]] = {}
    ) -> list[str]:
        return list(dynamic.get(self.name, ()))

    def validate(self, key: str) -> str:
        return check_partition_key(key)


@dataclass(frozen=True, slots=True)
class TimeWindowPartitions:
    """Consecutive time windows from `start` (inclusive) to `end` (exclusive; None: open).

    Keys are each window's start in the timezone: `2026-12-01` (daily, and weekly/monthly: the
    first day), `2026-12-01-13:00` (hourly; a non-UTC zone adds the offset, `+01:00`, so the
    repeated hour when clocks go back still has two keys). Weeks start on Monday. A window counts
    as a partition once it has ended (`keys()`), but any aligned window may be materialized.
    """

    cadence: Cadence
    start: str
    end: str | None = None
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        if self.cadence not in CADENCES:
            raise ConfigError(
                f"time partitions have cadence {self.cadence!r}; use one of {', '.join(CADENCES)}"
            )
        try:
            zone = pendulum.timezone(self.timezone)
        except Exception as exc:
            raise ConfigError(
                f"unknown timezone {self.timezone!r} for time partitions; "
                "use an IANA name like 'Europe/Berlin'"
            ) from exc
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, dt.datetime | dt.date):
                value = value.isoformat()
                object.__setattr__(self, name, value)
            try:
                parsed = pendulum.parse(value, tz=zone)
            except Exception as exc:
                raise ConfigError(
                    f"time partitions {name} {value!r} is not a date; write it like '2026-01-01'"
                ) from exc
            if self._floor(parsed) != parsed:
                raise ConfigError(
                    f"time partitions {name} {value!r} is not at the start of a {self.cadence} window "
                    f"in {self.timezone}; use {self._floor(parsed).isoformat()!r}"
                )
        if self.end is not None and self._start() >= self._parse(self.end):
            raise ConfigError(f"time partitions end {self.end!r} is not after start {self.start!r}")

    def _parse(self, text: str) -> pendulum.DateTime:
        parsed = pendulum.parse(text, tz=pendulum.timezone(self.timezone))
        assert isinstance(parsed, pendulum.DateTime)  # checked in __post_init__
        return parsed

    def _start(self) -> pendulum.DateTime:
        return self._parse(self.start)

    def _floor(self, moment: Any) -> pendulum.DateTime:
        local = pendulum.instance(moment).in_timezone(self.timezone)
        unit = {"hourly": "hour", "daily": "day", "weekly": "week", "monthly": "month"}[self.cadence]
        floored: pendulum.DateTime = local.start_of(unit)
        return floored

    def _next(self, start: pendulum.DateTime) -> pendulum.DateTime:
        if self.cadence == "hourly":
            # Add in UTC: local arithmetic would skip or repeat an hour at DST changes.
            return start.in_timezone("UTC").add(hours=1).in_timezone(self.timezone)
        if self.cadence == "daily":
            return start.add(days=1)
        if self.cadence == "weekly":
            return start.add(weeks=1)
        return start.add(months=1)

    def key_of(self, start: pendulum.DateTime) -> str:
        key = start.strftime(_FORMATS[self.cadence])
        if self.cadence == "hourly" and self.timezone != "UTC":
            key += start.strftime("%z")[:3] + ":" + start.strftime("%z")[3:]
        return key

    def window(self, key: str) -> tuple[pendulum.DateTime, pendulum.DateTime]:
        """[start, end) of the window named `key`. :raises InvalidPartitionKey:"""
        start = self._key_start(key)
        return start, self._next(start)

    def _key_start(self, key: str) -> pendulum.DateTime:
        check_partition_key(key)
        try:
            if self.cadence == "hourly":
                text, offset = key[:16], key[16:]
                naive = dt.datetime.strptime(text, _FORMATS["hourly"])
                if offset:
                    local = dt.datetime.strptime(text + offset.replace(":", ""), _FORMATS["hourly"] + "%z")
                    moment = pendulum.instance(local).in_timezone(self.timezone)
                else:
                    moment = pendulum.instance(naive, tz=self.timezone)
            else:
                moment = pendulum.instance(
                    dt.datetime.strptime(key, _FORMATS[self.cadence]), tz=self.timezone
                )
        except ValueError:
            moment = None
        if moment is None or self.key_of(self._floor(moment)) != key:
            example = self.key_of(self._start())
            raise InvalidPartitionKey(
                f"partition {key!r} is not a {self.cadence} window key in {self.timezone}; "
                f"write keys like {example!r}"
            ) from None
        if moment < self._start() or (self.end is not None and moment >= self._parse(self.end)):
            raise InvalidPartitionKey(
                f"partition {key!r} is outside the time partitions [{self.start}, {self.end or 'open'})"
            )
        return moment

    def validate(self, key: str) -> str:
        self._key_start(key)
        return key

    def keys(
        self, now: pendulum.DateTime | None = None, dynamic: Mapping[str, Sequence[str]] = {}
    ) -> list[str]:
        """Keys of every window that has ended by `now` (default: the current time)."""
        return list(self.windows(self._start(), self._limit(now)))

    def _limit(self, now: pendulum.DateTime | None) -> pendulum.DateTime:
        limit = pendulum.now("UTC") if now is None else now
        if self.end is not None:
            limit = min(limit, self._parse(self.end))
        return limit

    def windows(self, since: pendulum.DateTime, until: pendulum.DateTime, *, ended: bool = True) -> list[str]:
        """Keys of the windows starting at or after floor(`since`) that end by `until`
        (`ended=False`: that start before `until`), within the definition's bounds."""
        start = max(self._floor(since), self._start())
        bound = self._parse(self.end) if self.end is not None else None
        out = []
        if self.cadence == "daily" and self.timezone == "UTC":
            # Fast path for the common case: stdlib datetimes, no timezone arithmetic per key.
            one = dt.timedelta(days=1)
            day = dt.datetime(start.year, start.month, start.day, tzinfo=dt.UTC)
            while (bound is None or day < bound) and ((day + one <= until) if ended else (day < until)):
                out.append(day.strftime("%Y-%m-%d"))
                day += one
            return out
        current = start
        while True:
            following = self._next(current)
            if bound is not None and current >= bound:
                break
            if (following > until) if ended else (current >= until):
                break
            out.append(self.key_of(current))
            current = following
        return out


PartitionsDefinition: TypeAlias = StaticPartitions | TimeWindowPartitions | DynamicPartitions


# --------------------------------------------------------------------------------- mappings
@dataclass(frozen=True, slots=True)
class IdentityMapping:
    """Child partition `p` reads upstream partition `p` (the default between like definitions)."""


@dataclass(frozen=True, slots=True)
class AllPartitionsMapping:
    """Every child partition reads every upstream partition (the default into an unpartitioned child)."""


@dataclass(frozen=True, slots=True)
class TimeWindowMapping:
    """A child window reads the upstream windows overlapping it (daily -> monthly and back).

    `start_offset`/`end_offset` widen it by whole upstream windows: `start_offset=-1` also reads the
    window before (a rolling 2-day computation on daily data).
    """

    start_offset: int = 0
    end_offset: int = 0


@dataclass(frozen=True, slots=True, eq=False)
class FunctionMapping:
    """`fn(child_key) -> upstream keys`: any rule you can write.

    Stored by its qualified name: a status computed where the function is not loaded (the CLI, the
    catalog) checks the upstream partitions recorded in provenance, and cannot see a partition the
    function would newly add; a step's own check always runs the function.
    """

    fn: Callable[[str], Iterable[str]] | None
    name: str

    def __init__(self, fn: Callable[[str], Iterable[str]] | None, name: str | None = None) -> None:
        if fn is not None and not callable(fn):
            raise ConfigError(f"FunctionMapping takes a function of the child partition key, not {fn!r}")
        label = name or f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
        object.__setattr__(self, "fn", fn)
        object.__setattr__(self, "name", label)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FunctionMapping) and other.name == self.name

    def __hash__(self) -> int:
        return hash(("FunctionMapping", self.name))


PartitionMapping: TypeAlias = IdentityMapping | AllPartitionsMapping | TimeWindowMapping | FunctionMapping


def upstream_partitions(
    child: PartitionsDefinition | None,
    child_key: str,
    parent: PartitionsDefinition | None,
    mapping: PartitionMapping | None,
    *,
    now: pendulum.DateTime | None = None,
    dynamic: Mapping[str, Sequence[str]] = {},
    all_keys: Callable[[PartitionsDefinition], Sequence[str]] | None = None,
) -> list[str] | None:
    """The upstream partition keys that `child_key` of the child reads ([""] for an unpartitioned
    parent). None: a FunctionMapping whose function is not loaded here (use recorded provenance).

    :raises ConfigError: a mapping that cannot apply to these definitions (named, with the fix).
    """
    if parent is None:
        return [NOT_PARTITIONED]
    every = all_keys or (lambda d: d.keys(now, dynamic))
    if child is None or isinstance(mapping, AllPartitionsMapping):
        if mapping is not None and not isinstance(mapping, AllPartitionsMapping):
            raise ConfigError(
                f"{type(mapping).__name__} needs a partitioned child; an unpartitioned asset reads all "
                "upstream partitions (AllPartitionsMapping)"
            )
        return list(every(parent))
    if isinstance(mapping, FunctionMapping):
        if mapping.fn is None:
            return None
        found = mapping.fn(child_key)
        if isinstance(found, str):
            raise ConfigError(
                f"partition mapping {mapping.name} returned the string {found!r}; return a list of keys"
            )
        return [check_partition_key(k, what=f"key returned by {mapping.name}") for k in found]
    if isinstance(parent, TimeWindowPartitions) and isinstance(child, TimeWindowPartitions):
        offsets = mapping if isinstance(mapping, TimeWindowMapping) else TimeWindowMapping()
        if mapping is None or isinstance(mapping, TimeWindowMapping):
            if parent == child and offsets == TimeWindowMapping():
                return [child_key]
            return _overlapping(child, child_key, parent, offsets)
    if isinstance(mapping, TimeWindowMapping):
        raise ConfigError("TimeWindowMapping needs time-window partitions on both sides; use FunctionMapping")
    # Identity: the same key upstream, when the upstream has such a key.
    try:
        parent.validate(child_key)
    except InvalidPartitionKey:
        return []
    return [child_key]


def _overlapping(
    child: TimeWindowPartitions, child_key: str, parent: TimeWindowPartitions, offsets: TimeWindowMapping
) -> list[str]:
    start, end = child.window(child_key)
    keys = parent.windows(start, end, ended=False)
    # windows() floors `start` into the parent's cadence, so a coarser parent's window is included.
    if offsets.start_offset or offsets.end_offset:
        first = parent.window(keys[0])[0] if keys else parent._floor(start)
        for _ in range(-offsets.start_offset):
            first = first.subtract(seconds=1)
            first = parent._floor(first)
            if first < parent._start():
                break
            keys.insert(0, parent.key_of(first))
        last = parent.window(keys[-1])[0] if keys else parent._floor(start)
        for _ in range(offsets.end_offset):
            last = parent._next(last)
            keys.append(parent.key_of(last))
    return keys


# ------------------------------------------------------------------------------- JSON forms
def partitions_to_json(definition: PartitionsDefinition | None) -> str:
    """Canonical JSON text of a definition ("" for none), as stored with the asset's definition."""
    if definition is None:
        return ""
    if isinstance(definition, StaticPartitions):
        body: dict[str, Any] = {"type": "static", "keys": list(definition.keys_)}
    elif isinstance(definition, DynamicPartitions):
        body = {"type": "dynamic", "name": definition.name}
    else:
        body = {
            "type": "time",
            "cadence": definition.cadence,
            "start": definition.start,
            "end": definition.end,
            "timezone": definition.timezone,
        }
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


_PARSED: dict[str, PartitionsDefinition | None] = {}


def partitions_from_json(text: str) -> PartitionsDefinition | None:
    """The definition stored as `text` (cached: 1,000 assets usually share a handful)."""
    if not text:
        return None
    found = _PARSED.get(text)
    if found is None:
        body = json.loads(text)
        if body["type"] == "static":
            found = StaticPartitions(body["keys"])
        elif body["type"] == "dynamic":
            found = DynamicPartitions(body["name"])
        else:
            found = TimeWindowPartitions(body["cadence"], body["start"], body["end"], body["timezone"])
        if len(_PARSED) < 10_000:
            _PARSED[text] = found
    return found


def mapping_to_json(mapping: PartitionMapping) -> dict[str, Any]:
    if isinstance(mapping, IdentityMapping):
        return {"type": "identity"}
    if isinstance(mapping, AllPartitionsMapping):
        return {"type": "all"}
    if isinstance(mapping, TimeWindowMapping):
        return {"type": "time", "start_offset": mapping.start_offset, "end_offset": mapping.end_offset}
    return {"type": "function", "name": mapping.name}


def mapping_from_json(body: Mapping[str, Any]) -> PartitionMapping:
    kind = body["type"]
    if kind == "identity":
        return IdentityMapping()
    if kind == "all":
        return AllPartitionsMapping()
    if kind == "time":
        return TimeWindowMapping(int(body["start_offset"]), int(body["end_offset"]))
    return FunctionMapping(None, str(body["name"]))


def _preview(keys: Sequence[str]) -> str:
    shown = ", ".join(repr(k) for k in keys[:5])
    return shown + (f", ... {len(keys) - 5} more" if len(keys) > 5 else "")
