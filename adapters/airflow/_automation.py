"""`insync automate`'s Airflow launcher: trigger a DAG run through Airflow 3's REST API.

The run carries the selection in its `conf` (`{"insync": {"assets": [...], "tasks": [...]}}`);
the versioned tasks that are in sync end SUCCESS without running their code, so only the
Unsynced ones do their work. The DAG run id is the launch's idempotency key: should two
launches of the same claim ever reach Airflow, the second gets 409 and starts nothing.

Where Airflow is: `[tool.insync.automate.airflow] url = "http://host:8080"` or
$INSYNC_AIRFLOW_URL. Credentials (SimpleAuthManager, or any auth manager serving
`POST /auth/token`): `username` in the config or $INSYNC_AIRFLOW_USERNAME, the password only in
$INSYNC_AIRFLOW_PASSWORD; with neither, `GET /auth/token` (`simple_auth_manager_all_admins`).
"""

from __future__ import annotations

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
        """Trigger one run of the owner's DAG; return its run id.

        :raises InsyncError: Airflow cannot be reached, refuses the token, or rejects the run.
        """
        dag_id = request.owner.target
        conf = {
            "insync": {
                "assets": [str(k) for k in request.keys],
                "tasks": list(request.items),
                "partitions": {str(k): list(v) for k, v in request.partitions.items()},
            }
        }
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
                response = client.post(
                    f"/api/v2/dags/{dag_id}/dagRuns",
                    json={"dag_run_id": request.idempotency_key, "logical_date": None, "conf": conf},
                )
        except httpx.HTTPError as exc:
            raise InsyncError(
                f"cannot reach Airflow at {self.url}: {exc}; is the api-server running?"
            ) from None
        if response.status_code == 409:  # this launch was already triggered
            return request.idempotency_key
        if response.status_code >= 400:
            raise InsyncError(
                f"Airflow refused to trigger {dag_id} (HTTP {response.status_code}): {response.text[:300]}"
            )
        return str(response.json().get("dag_run_id", request.idempotency_key))
