"""Event-driven scheduling: run a DAG each time a watched source's data version changes.

The triggerer polls the file with insync's trigger; when its content fingerprint differs from
the last recorded observation it records the new one and emits an Airflow asset event, which
schedules `consume_numbers`. Needs a running triggerer (``airflow triggerer``).
"""

from __future__ import annotations

import os
from pathlib import Path

from airflow.sdk import Asset, AssetWatcher, dag, task
from insync.adapters.airflow import InsyncObservationTrigger, versioned

NUMBERS_FILE = os.environ.get(
    "INSYNC_EXAMPLE_NUMBERS_FILE", str(Path(__file__).parent / "data" / "numbers.txt")
)

numbers_file = Asset(
    "raw/numbers_file",
    watchers=[
        AssetWatcher(
            name="numbers_file_changed",
            trigger=InsyncObservationTrigger(
                key="raw/numbers_file",
                observe="insync.adapters.airflow.observe.observe_file",
                observe_kwargs={"path": NUMBERS_FILE},
                poll_interval=30,
            ),
        )
    ],
)


@dag(dag_id="event_driven_numbers", schedule=[numbers_file], catchup=False, tags=["insync"])
def event_driven_numbers() -> None:
    @task(inlets=[numbers_file], outlets=[Asset("walkthrough/event_number")])
    @versioned(code_version="v1")
    def consume_numbers() -> int:
        return int(Path(NUMBERS_FILE).read_text())

    consume_numbers()


event_driven_numbers()
