"""Microbatch models as time-partitioned assets: only the batches whose inputs changed rebuild.

Real dbt-core 1.12 + dbt-duckdb 1.11 run the batches (`--event-time-start/--event-time-end`).
The events are dated in the last five days, so the batches are windows that have ended.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pendulum
import pytest
from insync.core import AssetKey, StaleStatus, TimeWindowPartitions

if TYPE_CHECKING:
    from tests.dbt.conftest import Shop

TODAY = pendulum.now("UTC").start_of("day")
DAYS = [TODAY.subtract(days=n).format("YYYY-MM-DD") for n in range(5, 0, -1)]
EVENTS = """
      - name: events
        config: {event_time: happened_at}
"""
DAILY = f"""
{{{{ config(materialized='incremental', incremental_strategy='microbatch',
            event_time='happened_at', batch_size='day', begin='{DAYS[0]}', lookback=1) }}}}
select happened_at, kind, amount * 2 as amount from {{{{ source('raw', 'events') }}}}
"""
TOTALS = "select kind, sum(amount) as total from {{ ref('daily_events') }} group by kind\n"
DAILY_KEY = AssetKey(["shop", "main", "daily_events"])


@pytest.fixture
def events_shop(built_shop: Shop) -> Shop:
    built_shop.sql("create table raw.events (happened_at timestamp, kind varchar, amount integer)")
    rows = ", ".join(f"(timestamp '{day} {hour:02d}:00', '{kind}', {i})"
                     for i, day in enumerate(DAYS) for hour, kind in ((9, "a"), (15, "b")))
    built_shop.sql(f"insert into raw.events values {rows}")
    built_shop.replace("models/sources.yml", "      - name: payments\n", EVENTS + "      - name: payments\n")
    built_shop.edit("models/marts/daily_events.sql", DAILY)
    built_shop.edit("models/marts/event_totals.sql", TOTALS)
    return built_shop


def batches_built(shop: Shop) -> list[str]:
    """The batches dbt's last call ran (from its run_results.json)."""
    results = json.loads((shop.dir / "target" / "run_results.json").read_text())
    for result in results["results"]:
        if result["unique_id"] == "model.shop.daily_events":
            return [pendulum.parse(b[0]).format("YYYY-MM-DD")
                    for b in result["batch_results"]["successful"]]
    return []


def test_a_microbatch_model_rebuilds_only_the_batches_whose_window_changed(
    events_shop: Shop,
) -> None:
    shop = events_shop
    first = shop.build()
    assert first.built == ["daily_events", "event_totals"]
    spec = shop.store.definitions()[DAILY_KEY]
    assert spec.partitions == TimeWindowPartitions("daily", start=DAYS[0])
    source = shop.store.definitions()[AssetKey("shop/raw/events")]
    assert (source.kind, source.partitions) == ("observable", TimeWindowPartitions("daily", start=DAYS[0]))
    counts = shop.store.status(DAILY_KEY).partitions
    assert counts is not None and (counts.total, counts.synced) == (5, 5)
    assert batches_built(shop) == DAYS

    again = shop.build()
    assert again.built == [] and again.invocations == 0

    # One event of one day corrected: that day's batch, and the table reading the model.
    shop.sql(f"update raw.events set amount = 100 where happened_at = timestamp '{DAYS[2]} 09:00'")
    report = shop.build()
    assert report.built == ["daily_events", "event_totals"]
    reason = report.outcome("daily_events").reason
    assert reason == f"batches {DAYS[2]}: shop/raw/events[{DAYS[2]}] has a new data version"
    assert batches_built(shop) == [DAYS[2]]
    assert [len(shop.store.history(DAILY_KEY, partition=d)) for d in DAYS] == [1, 1, 2, 1, 1]
    assert shop.sql("select total from main.event_totals where kind = 'a'") == [((0 + 1 + 100 + 3 + 4) * 2,)]

    # A late event for an older day, and a day emptied: those two batches (and the one between:
    # dbt takes one range per call).
    shop.sql(f"insert into raw.events values (timestamp '{DAYS[0]} 23:00', 'a', 7)")
    shop.sql(f"delete from raw.events where happened_at::date = date '{DAYS[2]}'")
    report = shop.build()
    assert report.outcome("daily_events").reason.startswith(f"batches {DAYS[0]}, {DAYS[2]}: ")
    assert batches_built(shop) == DAYS[:3]
    assert shop.sql(f"select count(*) from main.daily_events where happened_at::date = '{DAYS[2]}'") == [(0,)]
    before = (shop.store.last_event_id(), shop.store.definitions_revision())
    assert shop.build().built == []
    assert (shop.store.last_event_id(), shop.store.definitions_revision()) == before  # no writes

    # New code: every batch.
    shop.replace("models/marts/daily_events.sql", "amount * 2", "amount * 3")
    report = shop.build()
    assert report.outcome("daily_events").reason == "shop/main/daily_events has a new code version"
    assert batches_built(shop) == DAYS
    assert shop.store.status(DAILY_KEY).status is StaleStatus.FRESH


def test_the_users_event_time_range_bounds_the_batches(events_shop: Shop) -> None:
    shop = events_shop
    first = shop.build("--event-time-end", DAYS[4])  # as if built before the last day ended
    assert batches_built(shop) == DAYS[:4]
    assert first.outcome("daily_events").reason == "never materialized"
    report = shop.build()  # the day has ended since: its batch, and nothing else
    assert report.outcome("daily_events").reason == f"batches {DAYS[4]}: never materialized"
    assert batches_built(shop) == [DAYS[4]]
    shop.sql(f"update raw.events set amount = amount + 1 where happened_at::date in "
             f"(date '{DAYS[0]}', date '{DAYS[4]}')")
    report = shop.build("--select", "daily_events", "--event-time-start", DAYS[3])
    assert report.outcome("daily_events").reason.startswith(f"batches {DAYS[4]}: ")
    assert batches_built(shop) == [DAYS[4]]
    status = shop.store.status(DAILY_KEY).partitions
    assert status is not None and status.unsynced == (DAYS[0],)  # outside the range: left
    assert shop.build("--select", "daily_events").built == ["daily_events"]
    assert batches_built(shop) == [DAYS[0]]


def test_a_source_also_read_whole_keeps_one_version_and_every_batch_reads_it(
    events_shop: Shop,
) -> None:
    shop = events_shop
    shop.edit("models/marts/event_count.sql",
              "select count(*) as n from {{ source('raw', 'events') }}\n")
    assert shop.build().success
    assert shop.store.definitions()[AssetKey("shop/raw/events")].partitions is None
    shop.sql(f"update raw.events set amount = 100 where happened_at = timestamp '{DAYS[2]} 09:00'")
    report = shop.build()
    assert report.outcome("daily_events").reason == "shop/raw/events has a new data version"
    assert batches_built(shop) == DAYS  # correct, not minimal: the source has one version
    assert report.outcome("event_count").action == "built"


def test_a_yearly_microbatch_model_has_no_partitions_and_rebuilds_every_batch(
    events_shop: Shop,
) -> None:
    shop = events_shop
    shop.replace("models/marts/daily_events.sql", "batch_size='day'", "batch_size='year'")
    shop.replace("models/marts/daily_events.sql", f"begin='{DAYS[0]}'", f"begin='{DAYS[0][:4]}-01-01'")
    assert shop.build().built == ["daily_events", "event_totals"]
    assert shop.store.definitions()[DAILY_KEY].partitions is None
    assert shop.build().built == []
    shop.sql(f"update raw.events set amount = 100 where happened_at = timestamp '{DAYS[2]} 09:00'")
    report = shop.build()
    assert report.outcome("daily_events").reason == (
        "shop/raw/events has a new data version (batch_size year: every batch is rebuilt)")
    assert shop.sql("select sum(amount) from main.daily_events where kind = 'a'") == [
        ((0 + 1 + 100 + 3 + 4) * 2,)]
