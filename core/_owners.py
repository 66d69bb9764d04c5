"""Who runs an asset, as the adapters record it at registration for `insync automate`.

Kept apart from `_automation` so that recording an owner, which every Airflow task process, Prefect
task run and dbt build does, imports neither SQLAlchemy nor the automation engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from .errors import ConfigError

if TYPE_CHECKING:
    from ._model import AssetSpec

# The definition metadata entry in which adapters record who runs an asset.
OWNER_KEY: Final = "insync_owner"
OWNER_KINDS: Final = ("airflow", "dbt", "prefect")
_OWNER_HOW: Final = {
    "airflow": 'airflow:DAG_ID (e.g. "airflow:ingest_raw")',
    "dbt": 'dbt:PROJECT_DIR (e.g. "dbt:warehouse")',
    "prefect": 'prefect:FLOW/DEPLOYMENT (e.g. "prefect:build-reports/reports")',
}
# How the owner's run picks the asset's partition (`Owner.partition_by`). "window": the time
# window holding the run's data interval, which a launch can set; the others name something the
# run decides itself, so a launch cannot aim it at one partition.
PARTITION_BY_WINDOW: Final = "window"
WINDOW_KINDS: Final = ("airflow",)  # whose launcher sets the run's time window
UNTARGETABLE: Final = {
    "partition=": "the task's partition= argument",
    "partition key": "its own partition key",
    "map index": "the task's map index",
}


@dataclass(frozen=True, slots=True)
class Owner:
    """Who runs an asset: `kind` (airflow, dbt, prefect), `target` (a DAG id, a dbt project
    folder, a Prefect `flow/deployment`), `item` (the task id or dbt node inside it, "" for all),
    launcher `options` (a dbt profiles folder) and `partition_by`, how its run picks the asset's
    partition ("window", a key of `UNTARGETABLE`, or "" when the adapter does not say)."""

    kind: str
    target: str
    item: str = ""
    options: tuple[tuple[str, str], ...] = ()
    partition_by: str = ""

    def __post_init__(self) -> None:
        if self.kind not in OWNER_KINDS:
            raise ConfigError(
                f"owner kind {self.kind!r} is not one insync can launch; use one of "
                + ", ".join(_OWNER_HOW[k] for k in OWNER_KINDS)
            )
        if not isinstance(self.target, str) or not self.target:
            raise ConfigError(f"a {self.kind} owner needs a target: write {_OWNER_HOW[self.kind]}")

    def __str__(self) -> str:
        return f"{self.kind}:{self.target}"

    @property
    def group(self) -> tuple[str, str]:
        return self.kind, self.target

    @classmethod
    def parse(cls, text: object, what: str) -> Owner:
        """`"kind:target"`, as written in a policy.

        :raises ConfigError: not a string, or an unknown kind.
        """
        if not isinstance(text, str) or ":" not in text:
            raise ConfigError(
                f"{what} is {text!r}; write one of " + ", ".join(_OWNER_HOW[k] for k in OWNER_KINDS)
            )
        kind, _, target = text.partition(":")
        try:
            return cls(kind.strip(), target.strip())
        except ConfigError as exc:
            raise ConfigError(f"{what}: {exc}") from None

    @classmethod
    def recorded(cls, spec: AssetSpec) -> Owner | None:
        """The owner an adapter recorded with the definition, if any."""
        entry = spec.metadata.get(OWNER_KEY)
        if not isinstance(entry, Mapping):
            return None
        named = ("kind", "target", "item", "partition_by")
        try:
            options = tuple(sorted((str(k), str(v)) for k, v in entry.items() if k not in named))
            return cls(
                str(entry.get("kind")),
                str(entry.get("target", "")),
                str(entry.get("item", "")),
                options,
                str(entry.get("partition_by", "")),
            )
        except ConfigError:
            return None  # written by a newer insync: treat as unknown, the policy can name one


def owner_metadata(
    kind: str, target: str, item: str = "", *, partition_by: str = "", **options: str
) -> dict[str, Any]:
    """The metadata entry an adapter adds to a definition to record its owner; `partition_by`
    says how the owner's run picks the asset's partition (see `Owner`).

    :raises ConfigError: an unknown kind or an empty target.
    """
    owner = Owner(kind, target, item)
    entry = {"kind": owner.kind, "target": owner.target, "item": owner.item, **options}
    if partition_by:
        entry["partition_by"] = partition_by
    return {OWNER_KEY: entry}
