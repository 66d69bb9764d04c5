"""`insync automate`'s Airflow launcher: trigger a DAG run through Airflow 3's REST API.

The run carries the selection in its `conf` (`{"insync": {"assets": [...], "tasks": [...]}}`);
the versioned tasks that are in sync end SUCCESS without running their code, so only the
Unsynced ones do their work. The DAG run id is the launch's idempotency key: should two
launches of the same claim ever reach Airflow, the second gets 409 and starts nothing.

A time-partitioned task computes the window holding its run's data interval
(`_inputs.partition_of`), so each Unsynced window gets a run of its own whose data interval is
that window, with run id `<key>-<partition>`. Airflow keeps one run per logical date, and the
run that first built the window usually holds the window's start; so the logical date is a few
seconds into the window (same `ds`, same hour), chosen from the run id, and another one is
tried when that date is taken too. A task that picks its partition itself never gets here:
`plan` holds it (`Owner.partition_by`).

Where Airflow is: `[tool.insync.automate.airflow] url = "http://host:8080"` or
$INSYNC_AIRFLOW_URL. Credentials (SimpleAuthManager, or any auth manager serving
`POST /auth/token`): `username` in the config or $INSYNC_AIRFLOW_USERNAME, the password only in
$INSYNC_AIRFLOW_PASSWORD; with neither, `GET /auth/token` (`simple_auth_manager_all_admins`).
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import os
from collections.abc import Mapping
from typing import Any

import httpx
from insync.core import AssetSpec, ConfigError, InsyncError
from insync.core.automation import LaunchRequest, Owner

__all__ = ["AirflowLauncher"]

log = logging.getLogger("insync")
_TIMEOUT_S = 30.0
_DATE_TRIES = 5  # logical dates tried per window before giving up on a taken one


class AirflowLauncher:
    """Triggers DAG runs on one Airflow api-server."""

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        options = options or {}
        unknown = sorted(set(options) - {"url", "username"})
        if unknown:
            raise ConfigError(
                f"unknown key {unknown[0]!r} in [tool.insync.automate.airflow]; known keys: url, username "
                "(the password goes in $INSYNC_AIRFLOW_PASSWORD, never in a file)"
            )
        url = options.get("url") or os.environ.get("INSYNC_AIRFLOW_URL")
        if not url:
            raise ConfigError(
                "insync automate needs the Airflow api-server's URL to trigger DAG runs: set "
                'url = "http://host:8080" in [tool.insync.automate.airflow] or $INSYNC_AIRFLOW_URL'
            )
        self.url = str(url).rstrip("/")
        self.username = options.get("username") or os.environ.get("INSYNC_AIRFLOW_USERNAME")
        self._password = os.environ.get("INSYNC_AIRFLOW_PASSWORD")

    def owner_of(self, spec: AssetSpec) -> Owner | None:
        return None  # versioned tasks record their DAG at registration (metadata insync_owner)

    def _token(self, client: httpx.Client) -> str:
        if self.username:
            if not self._password:
                raise ConfigError(
                    f"Airflow user {self.username!r} is set but $INSYNC_AIRFLOW_PASSWORD is not; set it"
                )
            response = client.post(
                "/auth/token", json={"username": self.username, "password": self._password}
            )
        else:
            response = client.get("/auth/token")
        if response.status_code >= 400:
            raise InsyncError(
                f"Airflow at {self.url} refused a token (HTTP {response.status_code}); check "
                "$INSYNC_AIRFLOW_USERNAME / $INSYNC_AIRFLOW_PASSWORD, or enable "
                "simple_auth_manager_all_admins for a credential-free token"
            )
        return str(response.json()["access_token"])

    def launch(self, request: LaunchRequest) -> str:
        """Trigger the owner's DAG: one run, or one per Unsynced time window; return the run ids.

        :raises InsyncError: Airflow cannot be reached, refuses the token, or rejects a run; a
            partition without a known time window (nothing is triggered then).
        """
        dag_id = request.owner.target
        runs = _runs(request)
        started: list[str] = []
        try:
            with httpx.Client(base_url=self.url, timeout=_TIMEOUT_S) as client:
                client.headers["Authorization"] = f"Bearer {self._token(client)}"
                dag = client.get(f"/api/v2/dags/{dag_id}")
                if dag.status_code == 404:
                    raise InsyncError(
                        f"Airflow at {self.url} has no DAG {dag_id!r}; is its file in the dags folder, "
                        "or does the policy name the wrong owner?"
                    )
                if dag.status_code < 400 and dag.json().get("is_paused"):
                    log.warning("airflow DAG %s is paused: the run waits until it is unpaused", dag_id)
                for run_id, window, selection in runs:
                    started.append(self._trigger(client, dag_id, run_id, window, {"insync": selection}))
        except httpx.HTTPError as exc:
            raise InsyncError(
                f"cannot reach Airflow at {self.url}: {exc}; is the api-server running?"
            ) from None
        return (
            ", ".join(started)
            if len(started) <= 3
            else f"{started[0]} .. {started[-1]} ({len(started)} runs)"
        )

    def _trigger(
        self,
        client: httpx.Client,
        dag_id: str,
        run_id: str,
        window: tuple[datetime.datetime, datetime.datetime] | None,
        conf: dict[str, Any],
    ) -> str:
        body: dict[str, Any] = {"dag_run_id": run_id, "logical_date": None, "conf": conf}
        for attempt in range(_DATE_TRIES if window else 1):
            if window is not None:
                # Plain UTC datetimes: pendulum's arithmetic on a stdlib-UTC instance drops the zone.
                start, end = (datetime.datetime.fromtimestamp(m.timestamp(), datetime.UTC) for m in window)
                body["logical_date"] = _logical_date(run_id, attempt, start, end).isoformat()
                body["data_interval_start"] = start.isoformat()
                body["data_interval_end"] = end.isoformat()
            response = client.post(f"/api/v2/dags/{dag_id}/dagRuns", json=body)
            if response.status_code < 400:
                return str(response.json().get("dag_run_id", run_id))
            if response.status_code != 409:
                break
            # 409: this run id exists (the launch was triggered before), or the logical date is
            # another run's.
            if client.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").status_code == 200:
                return run_id
        raise InsyncError(
            f"Airflow refused to trigger {dag_id} run {run_id} (HTTP {response.status_code}): "
            f"{response.text[:300]}"
        )


_Run = tuple[str, tuple[datetime.datetime, datetime.datetime] | None, dict[str, Any]]


def _runs(request: LaunchRequest) -> list[_Run]:
    """(run id, data interval, conf selection) of each run to trigger.

    :raises InsyncError: a partition whose time window the request does not carry.
    """
    assets = [str(k) for k in request.keys]
    tasks = list(request.items)
    if not request.partitions:
        return [(request.idempotency_key, None, {"assets": assets, "tasks": tasks, "partitions": {}})]
    by_window: dict[tuple[datetime.datetime, datetime.datetime], dict[str, list[str]]] = {}
    for key, partitions in request.partitions.items():
        windows = request.windows.get(key, {})
        for partition in partitions:
            if partition not in windows:
                raise InsyncError(
                    f"{key}[{partition}]: insync does not know which time window its Airflow run "
                    f"must compute, so it triggers nothing rather than a run of another partition; "
                    f"run a task of DAG {request.owner.target!r} once with this insync (it records how "
                    "it picks its partition), or trigger the DAG for that partition yourself"
                )
            by_window.setdefault(windows[partition], {}).setdefault(str(key), []).append(partition)
    runs: list[_Run] = []
    labels: set[str] = set()
    for window, members in sorted(by_window.items()):
        label = "_".join(sorted({p for ps in members.values() for p in ps}))
        if label in labels:  # the same key names another window (another timezone)
            label += "-" + hashlib.sha256(repr(window).encode()).hexdigest()[:8]
        labels.add(label)
        selection = {"assets": assets, "tasks": tasks, "partitions": members}
        runs.append((f"{request.idempotency_key}-{label}", window, selection))
    return runs


def _logical_date(
    run_id: str, attempt: int, start: datetime.datetime, end: datetime.datetime
) -> datetime.datetime:
    """A logical date 1-59 s into the window: past the start another run may hold, within the
    same minute, so `ds`, `ts` to the minute and the hour stay the window's."""
    seconds = min(59, int((end - start).total_seconds()) - 1)
    digest = int(hashlib.sha256(f"{run_id}:{attempt}".encode()).hexdigest()[:8], 16)
    return start + datetime.timedelta(seconds=1 + digest % seconds)
