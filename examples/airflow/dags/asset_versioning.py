"""The asset-versioning walkthrough as an Airflow 3 DAG.

    raw/numbers_file  (observable source: a text file with one number)
        -> walkthrough/number            (versioned: reads the file)
            -> walkthrough/multiplied    (versioned: number * 10)

Where the source file lives: $INSYNC_EXAMPLE_NUMBERS_FILE (the runner script sets it).
Where insync keeps its store: $INSYNC_DATABASE_URL or $INSYNC_HOME (default ./.insync).
"""

from __future__ import annotations

import os
from pathlib import Path

from airflow.sdk import Asset, dag, task
from insync.adapters.airflow import InsyncObservationSensor, versioned
from insync.adapters.airflow.observe import observe_file

NUMBERS_FILE = os.environ.get(
    "INSYNC_EXAMPLE_NUMBERS_FILE", str(Path(__file__).parent / "data" / "numbers.txt")
)


@dag(dag_id="asset_versioning", schedule=None, catchup=False, tags=["insync"])
def asset_versioning() -> None:
    # Observes the file and records its content fingerprint as a data version, then succeeds:
    # the versioned tasks below decide for themselves whether they are in sync.
    observe_numbers = InsyncObservationSensor(
        task_id="observe_numbers_file",
        outlets=[Asset("raw/numbers_file")],
        observe=observe_file,
        observe_kwargs={"path": NUMBERS_FILE},
        wait_for_change=False,
    )

    @task(outlets=[Asset("walkthrough/number")])
    @versioned(code_version="v1")
    def number() -> int:
        return int(Path(NUMBERS_FILE).read_text())

    @task(outlets=[Asset("walkthrough/multiplied")])
    @versioned(code_version="v1")  # the runner bumps this to "v2" before run 4
    def multiplied(value: int) -> int:
        return value * 10

    value = number()
    observe_numbers >> value
    multiplied(value)


asset_versioning()
