"""insync for Prefect 3: versioned tasks and flows, native Cached states, source observation.

- `versioned(key, code_version=..., deps=...)` above `@task`/`@flow`/`@materialize`: each run is
  checked against the insync store when it starts; a FRESH asset ends in Prefect's `Cached`
  state with its last value, otherwise the function runs and the materialization is recorded.
  Arguments that are not upstream asset values are parameters; `partition="day"` makes the
  argument `day` name the partition a run computes (`.map()` backfills one per call).
- `observation_flow({key: observe_fn})`: a deployable flow recording source observations and
  emitting `insync.source.changed` when a data version changes.
- `source_changed_trigger(*keys)`: the deployment trigger that starts a downstream flow then.
- `ensure_prefect_api()`: before a script's first flow run, start Prefect's temporary server
  (when no PREFECT_API_URL is set) with a line saying so, and advice if it times out.
"""

try:
    import prefect  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised without Prefect installed
    raise ImportError("insync.adapters.prefect needs Prefect 3: pip install 'insync[prefect]'") from exc

from ._decorator import versioned
from ._observe import SOURCE_CHANGED_EVENT, observation_flow, source_changed_trigger
from ._server import ensure_prefect_api

__all__ = [
    "SOURCE_CHANGED_EVENT",
    "ensure_prefect_api",
    "observation_flow",
    "source_changed_trigger",
    "versioned",
]
