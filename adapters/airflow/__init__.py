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

import typing

if typing.TYPE_CHECKING:
    from ._sensor import InsyncObservationSensor
    from ._task import versioned, versioned_operator
    from ._trigger import InsyncObservationTrigger

__all__ = [
    "InsyncObservationSensor",
    "InsyncObservationTrigger",
    "versioned",
    "versioned_operator",
]

# Loaded on first use: every DAG file is parsed again and again, and one that only versions
# tasks need not import the sensor and the trigger (Airflow's trigger machinery with them).
_HOME: typing.Final = {
    "InsyncObservationSensor": "_sensor",
    "InsyncObservationTrigger": "_trigger",
    "versioned": "_task",
    "versioned_operator": "_task",
}

if not typing.TYPE_CHECKING:  # mypy resolves the names from the imports above

    def __getattr__(name: str) -> object:
        module = _HOME.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        # __import__, not importlib.import_module: `python -X importtime` only sees the former.
        value = getattr(__import__(f"{__name__}.{module}", fromlist=[name]), name)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})
