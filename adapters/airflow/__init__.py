"""insync for Airflow 3: versioned tasks that skip when in sync, record data versions and
emit Airflow asset events, plus a sensor and an event trigger that observe sources.

- ``versioned``: decorator for TaskFlow functions (below ``@task``);
- ``versioned_operator``: wraps any operator instance (or ``X.partial(...).expand(...)``);
- ``InsyncObservationSensor`` / ``InsyncObservationTrigger``: source observation;
- ``insync.adapters.airflow.policy``: cluster policy versioning tasks by Asset ``extra``;
- ``insync.adapters.airflow.observe``: ready-made observe functions (file, directory, SQL);
- ``insync airflow plan DAG_ID`` (``insync.adapters.airflow.cli``): what would run, and why.
"""

try:
    import airflow.sdk  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in an environment without Airflow
    raise ImportError(
        "insync.adapters.airflow needs Apache Airflow 3: pip install 'insync[airflow]'"
    ) from exc

from ._sensor import InsyncObservationSensor
from ._task import versioned, versioned_operator
from ._trigger import InsyncObservationTrigger

__all__ = [
    "InsyncObservationSensor",
    "InsyncObservationTrigger",
    "versioned",
    "versioned_operator",
]
