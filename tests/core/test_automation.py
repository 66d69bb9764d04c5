"""insync automate's core: policies from TOML, evaluation against real store statuses, debounce,
freshness, partitions, and the claims that keep two instances from launching one change twice
(SQLite and PostgreSQL)."""

from __future__ import annotations

import dataclasses
import datetime
import threading
from pathlib import Path

import pendulum
import pytest
from insync.core import (
    AssetKey,
    AssetSpec,
    ConfigError,
    EventStore,
    StaticPartitions,
    TimeWindowPartitions,
)
from insync.core.automation import (
    AutomationConfig,
    LaunchRequest,
    Owner,
    Policy,
    claim,
    evaluate,
    load_config,
    owner_metadata,
    plan,
    release,
    requests_for,
)

# raw/file (observed) -> raw/orders (Airflow) -> staging/orders -> marts/revenue (dbt)
#   -> reports/revenue (Prefect)
GRAPH = [
    AssetSpec("raw/file", kind="observable"),
    AssetSpec(
        "raw/orders",
        code_version="1",
        deps=["raw/file"],
        metadata=owner_metadata("airflow", "ingest", "load_orders"),
    ),
    AssetSpec(
        "staging/orders",
        code_version="1",
        deps=["raw/orders"],
        metadata=owner_metadata("dbt", "/w", "stg_orders"),
    ),
    AssetSpec(
        "marts/revenue",
        code_version="1",
        deps=["staging/orders"],
        metadata=owner_metadata("dbt", "/w", "revenue"),
    ),
    AssetSpec(
        "reports/revenue",
        code_version="1",
        deps=["marts/revenue"],
        metadata=owner_metadata("prefect", "build-reports/reports"),
    ),
]
EAGER = AutomationConfig({"*": Policy(eager=True)})


def _synced(store: EventStore) -> None:
    store.register(GRAPH)
    store.record_observation("raw/file", "v1")
    for key in ("raw/orders", "staging/orders", "marts/revenue", "reports/revenue"):
        store.record_materialization(key)


def _lines(decisions: list) -> list[str]:  # type: ignore[type-arg]
    return [str(d) for d in decisions]


# ------------------------------------------------------------------------------ configuration
def test_policies_load_from_pyproject_and_from_a_small_file(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.insync.automate.policies."raw"]\neager = true\n'
        '[tool.insync.automate.policies."staging/orders"]\non_upstream = ["raw/orders"]\n'
        'lag_tolerance = "30m"\nparents = "all"\nfreshness = "6h"\nowner = "dbt:warehouse"\n'
        '[tool.insync.automate.airflow]\nurl = "http://127.0.0.1:8080"\n'
    )
    config = load_config(cwd=tmp_path)
    staging = config.policy_for(pendulum_key("staging/orders"))
    assert staging == Policy(
        on_upstream=("raw/orders",),
        lag_tolerance=datetime.timedelta(minutes=30),
        parents="all",
        freshness=datetime.timedelta(hours=6),
        owner=Owner("dbt", "warehouse"),
    )
    assert config.policy_for(pendulum_key("raw/orders")) == Policy(eager=True)
    assert config.policy_for(pendulum_key("rawx/orders")) is None  # prefixes match whole parts
    assert config.launchers == {"airflow": {"url": "http://127.0.0.1:8080"}}
    small = tmp_path / "automate.toml"
    small.write_text('[policies."*"]\neager = true\n')
    assert load_config(small).policy_for(pendulum_key("any/thing")) == Policy(eager=True)


def pendulum_key(text: str):  # type: ignore[no-untyped-def]
    from insync.core import AssetKey

    return AssetKey(text)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            '[policies."raw"]\neagre = true\n',
            r"unknown key 'eagre' in .*policies.\"raw\".*did you mean 'eager'",
        ),
        (
            '[policies."raw"]\nlag_tolerance = "30 minutes"\n',
            r'lag_tolerance is .30 minutes.; write a duration like "90s"',
        ),
        ('[policies."raw"]\nfreshness = -5\n', r"freshness is negative"),
        (
            '[policies."raw"]\nowner = "luigi:pipeline"\n',
            r"owner kind 'luigi' is not one insync can launch; use one of airflow:DAG_ID",
        ),
        ('[policies."raw"]\nowner = "ingest_raw"\n', r"owner is .ingest_raw.; write one of airflow:DAG_ID"),
        ('[policies."raw"]\nparents = "most"\n', r'parents is .most.; write "any" or "all"'),
        ('[policys."raw"]\neager = true\n', r"unknown key 'policys'.*did you mean 'policies'"),
        ('[policies."raw//x"]\neager = true\n', r"empty part"),
    ],
)
def test_bad_config_names_the_key_and_the_fix(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "automate.toml"
    path.write_text(body)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_missing_config_says_where_to_put_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"pyproject.toml does not exist; add \[tool.insync.automate\]"):
        load_config(cwd=tmp_path)
    (tmp_path / "pyproject.toml").write_text("[tool.other]\nx = 1\n")
    with pytest.raises(ConfigError, match=r"has no \[tool.insync.automate\] table"):
        load_config(cwd=tmp_path)


# ------------------------------------------------------------------------------- evaluation
def test_eager_launches_only_the_unsynced_asset_through_its_recorded_owner(store: EventStore) -> None:
    _synced(store)
    assert plan(store, EAGER) == []  # all Synced: nothing to say
    store.record_observation("raw/file", "v2")
    assert _lines(plan(store, EAGER)) == [
        "launch raw/orders via airflow:ingest (load_orders): raw/file has a new data version"
    ]
    store.record_materialization("raw/orders")  # the Airflow run finished
    # dbt's two models go in one build: the mart joins the run of the model it reads.
    assert _lines(plan(store, EAGER)) == [
        "launch marts/revenue via dbt:/w (revenue): joins the dbt run of staging/orders "
        "(will be unsynced after it)",
        "launch staging/orders via dbt:/w (stg_orders): raw/orders has a new data version",
    ]


def test_on_upstream_on_code_change_and_all_parents(store: EventStore) -> None:
    store.register(
        [
            AssetSpec("a", kind="observable"),
            AssetSpec("b", kind="observable"),
            AssetSpec(
                "both", code_version="1", deps=["a", "b"], metadata=owner_metadata("dbt", "/w", "both")
            ),
        ]
    )
    store.record_observation("a", "1")
    store.record_observation("b", "1")
    store.record_materialization("both")
    store.record_observation("a", "2")
    on_b = AutomationConfig({"both": Policy(on_upstream=["b"])})
    assert _lines(plan(store, on_b)) == [
        "hold both via dbt:/w (both): Unsynced (a has a new data version), but on_upstream names b, "
        "which did not change"
    ]
    all_parents = AutomationConfig({"both": Policy(eager=True, parents="all")})
    assert _lines(plan(store, all_parents)) == [
        "hold both via dbt:/w (both): Unsynced (a has a new data version); parents = all, still waiting for b"
    ]
    store.record_observation("b", "2")
    assert [d.action for d in plan(store, all_parents)] == ["launch"]
    assert [d.action for d in plan(store, on_b)] == ["launch"]
    code_only = AutomationConfig({"both": Policy(on_code_change=True)})
    assert [d.action for d in plan(store, code_only)] == ["hold"]  # data changed, code did not
    store.record_materialization("both")
    store.register(
        [AssetSpec("both", code_version="2", deps=["a", "b"], metadata=owner_metadata("dbt", "/w", "both"))]
    )
    assert _lines(plan(store, code_only)) == ["launch both via dbt:/w (both): both has a new code version"]


def test_no_owner_and_a_policy_owner_override(store: EventStore) -> None:
    store.register([AssetSpec("src", kind="observable"), AssetSpec("x", code_version="1", deps=["src"])])
    store.record_observation("src", "1")
    (no_owner,) = plan(store, EAGER)
    assert str(no_owner) == (
        "no owner x: never materialized; no owner is recorded: run it once through its adapter, or set "
        'owner = "kind:target" in its policy'
    )
    (launch,) = plan(store, AutomationConfig({"x": Policy(eager=True, owner="prefect:flow/dep")}))
    assert str(launch) == "launch x via prefect:flow/dep: never materialized"


def test_lag_tolerance_waits_from_the_first_upstream_change_then_launches_once(store: EventStore) -> None:
    _synced(store)
    config = AutomationConfig({"raw": Policy(eager=True, lag_tolerance="30m")})
    first = store.record_observation("raw/file", "v2").timestamp
    store.record_observation("raw/file", "v3")  # a second change arrives in the window
    (waiting,) = plan(store, config, now=first + datetime.timedelta(minutes=10))
    assert waiting.action == "wait"
    assert waiting.reason.endswith("first upstream change 10m ago, lag_tolerance 30m: launches in 20m")
    (ready,) = plan(store, config, now=first + datetime.timedelta(minutes=31))
    assert ready.action == "launch"
    assert ready.change == plan(store, config, now=first + datetime.timedelta(minutes=45))[0].change


def test_freshness_breach_is_reported_even_when_synced(store: EventStore) -> None:
    _synced(store)
    config = AutomationConfig({"reports": Policy(freshness="6h")})
    assert plan(store, config) == []
    (breach,) = plan(store, config, now=pendulum.now("UTC") + datetime.timedelta(hours=7))
    assert breach.action == "breach"
    assert breach.reason == "last materialized 7h ago, freshness bound 6h"
    assert breach.key == "reports/revenue"


def test_only_the_unsynced_partitions_are_launched(store: EventStore) -> None:
    regions = StaticPartitions(["eu", "us", "asia"])
    store.register(
        [
            AssetSpec("src", kind="observable", partitions=regions),
            AssetSpec(
                "sales",
                code_version="1",
                deps=["src"],
                partitions=regions,
                metadata=owner_metadata("airflow", "sales", "compute"),
            ),
        ]
    )
    for region in ("eu", "us", "asia"):
        store.record_observation("src", "1", partition=region)
        store.record_materialization("sales", partition=region)
    store.record_observation("src", "2", partition="us")
    (launch,) = plan(store, EAGER)
    assert (launch.action, launch.partitions) == ("launch", ("us",))
    assert str(launch).startswith("launch sales[us] via airflow:sales (compute):")


def test_evaluate_is_pure_and_skips_assets_without_a_policy(store: EventStore) -> None:
    _synced(store)
    store.record_observation("raw/file", "v2")
    only_reports = AutomationConfig({"reports": Policy(eager=True)})
    decisions = evaluate(store.statuses(), store.definitions(), only_reports, now=pendulum.now("UTC"))
    assert decisions == []  # raw/orders is Unsynced, but no policy covers it


# ------------------------------------------------------------------------------------ claims
def test_two_instances_launch_one_change_once_also_after_a_restart(any_store: EventStore) -> None:
    _synced(any_store)
    any_store.record_observation("raw/file", "v2")
    first = claim(any_store, plan(any_store, EAGER), instance="a")
    assert [d.action for d in first] == ["launch"]
    second = claim(any_store, plan(any_store, EAGER), instance="b")
    assert [d.action for d in second] == ["claimed"]
    assert "this change was launched by a at" in second[0].reason
    with EventStore(any_store.url.render_as_string(hide_password=False)) as restarted:
        assert [d.action for d in plan(restarted, EAGER)] == ["claimed"]
    # A new upstream change is a new claim.
    any_store.record_observation("raw/file", "v3")
    assert [d.action for d in claim(any_store, plan(any_store, EAGER), instance="b")] == ["launch"]


def test_racing_instances_claim_exactly_once(any_store: EventStore) -> None:
    _synced(any_store)
    any_store.record_observation("raw/file", "v2")
    url = any_store.url.render_as_string(hide_password=False)
    decisions = plan(any_store, EAGER)
    results: list[str] = []
    start = threading.Barrier(4)

    def instance(name: str) -> None:
        with EventStore(url) as store:
            start.wait()
            results.extend(d.action for d in claim(store, decisions, instance=name))

    threads = [threading.Thread(target=instance, args=(f"i{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["claimed", "claimed", "claimed", "launch"]


def test_a_launch_that_failed_to_start_is_released(any_store: EventStore) -> None:
    _synced(any_store)
    any_store.record_observation("raw/file", "v2")
    claimed = claim(any_store, plan(any_store, EAGER), instance="a")
    release(any_store, claimed)
    assert [d.action for d in plan(any_store, EAGER)] == ["launch"]


def test_dry_run_plan_writes_nothing(store: EventStore) -> None:
    _synced(store)
    store.record_observation("raw/file", "v2")
    plan(store, EAGER)
    plan(store, EAGER)
    with store._read() as conn:
        import sqlalchemy as sa

        assert conn.execute(sa.text("select count(*) from insync_automation_claims")).scalar() == 0
    assert [d.action for d in claim(store, plan(store, EAGER), instance="a")] == ["launch"]


def test_policy_in_python_validates_like_toml() -> None:
    with pytest.raises(ConfigError, match="lag_tolerance is 'soon'"):
        Policy(eager=True, lag_tolerance="soon")
    assert Policy(freshness="1h30m").freshness == datetime.timedelta(minutes=90)
    with pytest.raises(ConfigError, match="the policy for 'x' is"):
        AutomationConfig({"x": {"eager": True}})  # type: ignore[dict-item]


def test_public_face_of_insync_core_automation() -> None:
    import insync.core.automation as automation

    assert automation.__all__ == [
        "OWNER_KEY", "AutomationConfig", "Decision", "LaunchRequest", "Launcher", "Owner", "Policy",
        "claim", "evaluate", "load_config", "owner_metadata", "parse_duration", "plan", "release",
        "requests_for",
    ]
    assert {n for n in dir(automation) if not n.startswith("_")} == set(automation.__all__)


def test_a_long_running_loop_prints_a_standing_decision_once(
    store: EventStore, capsys: pytest.CaptureFixture[str]
) -> None:
    """A decision that stands (here: no owner) prints when it appears and when it changes, not
    every interval; `--once` (no memory) prints every decision."""
    from insync.core._automate_cli import _Launchers, run_once

    store.register([AssetSpec("src", kind="observable"), AssetSpec("x", code_version="1", deps=["src"])])
    store.record_observation("src", "1")
    launchers = _Launchers(EAGER)
    standing: dict[str, str] = {}

    def loop(memory: dict[str, str] | None = standing) -> list[str]:
        run_once(store, EAGER, launchers, instance="a", dry_run=False, standing=memory)
        return [line.split(" ", 1)[1] for line in capsys.readouterr().out.splitlines()]

    assert [line.split(":")[0] for line in loop()] == ["no owner x"]
    assert loop() == []
    assert [line.split(":")[0] for line in loop(None)] == ["no owner x"]  # --once
    store.record_materialization("x")
    assert loop() == ["nothing to do"]
    assert loop() == []
    store.record_observation("src", "2")
    assert [line.split(":")[0] for line in loop()] == ["no owner x"]


# ------------------------------------------------------------------------- partitions reach runs
DAYS = TimeWindowPartitions("daily", start="2026-11-01", end="2026-11-04", timezone="Europe/Berlin")


def _two_unsynced_days(store: EventStore, partition_by: str, partitions: object = DAYS) -> None:
    store.register(
        [
            AssetSpec("src", kind="observable", partitions=partitions),  # type: ignore[arg-type]
            AssetSpec(
                "daily",
                code_version="1",
                deps=["src"],
                partitions=partitions,  # type: ignore[arg-type]
                metadata=owner_metadata("airflow", "days", "compute", partition_by=partition_by),
            ),
        ]
    )
    keys = ["2026-11-01", "2026-11-02", "2026-11-03"] if partitions is DAYS else ["eu", "us", "asia"]
    for key in keys:
        store.record_observation("src", "1", partition=key)
        store.record_materialization("daily", partition=key)
    for key in keys[1:]:
        store.record_observation("src", "2", partition=key)


def test_a_launch_of_time_partitions_carries_each_window(store: EventStore) -> None:
    _two_unsynced_days(store, "window")
    (launch,) = plan(store, EAGER)
    assert (launch.action, launch.partitions) == ("launch", ("2026-11-02", "2026-11-03"))
    (request,) = requests_for([launch], EAGER)
    berlin = pendulum.timezone("Europe/Berlin")
    assert request.windows == {
        "daily": {
            "2026-11-02": (
                pendulum.datetime(2026, 11, 2, tz=berlin),
                pendulum.datetime(2026, 11, 3, tz=berlin),
            ),
            "2026-11-03": (
                pendulum.datetime(2026, 11, 3, tz=berlin),
                pendulum.datetime(2026, 11, 4, tz=berlin),
            ),
        }
    }
    # Another instance claimed one day first: the request keeps only the other's window.
    (rest,) = requests_for([dataclasses.replace(launch, partitions=("2026-11-03",))], EAGER)
    assert list(rest.windows["daily"]) == ["2026-11-03"]


@pytest.mark.parametrize(
    ("partition_by", "partitions", "why"),
    [
        ("partition key", StaticPartitions(["eu", "us", "asia"]), "from its own partition key"),
        ("partition=", DAYS, "from the task's partition= argument"),
        ("map index", StaticPartitions(["eu", "us", "asia"]), "from the task's map index"),
        ("window", StaticPartitions(["eu", "us", "asia"]), "reads the partition from a time window"),
    ],
)
def test_a_run_that_picks_its_own_partition_is_held_not_launched(
    store: EventStore, partition_by: str, partitions: object, why: str
) -> None:
    _two_unsynced_days(store, partition_by, partitions)
    (held,) = plan(store, EAGER)
    assert held.action == "hold"
    assert why in held.reason
    assert "run airflow:days (compute) for " in held.reason and "yourself" in held.reason
    assert held.change == ""  # nothing to claim: a held asset is not launched
    assert requests_for([held], EAGER) == []


def test_an_owner_that_does_not_say_how_it_partitions_launches_keys_only(store: EventStore) -> None:
    _two_unsynced_days(store, "")  # Prefect and dbt record no partition_by
    (launch,) = plan(store, EAGER)
    (request,) = requests_for([launch], EAGER)
    assert (launch.action, request.windows) == ("launch", {})
    assert request.partitions == {"daily": ("2026-11-02", "2026-11-03")}


def test_the_recorded_partition_mode_survives_the_metadata_round_trip() -> None:
    spec = AssetSpec("a", metadata=owner_metadata("airflow", "d", "t", partition_by="window"))
    owner = Owner.recorded(spec)
    assert owner is not None and (owner.partition_by, owner.options) == ("window", ())
    assert Owner.recorded(AssetSpec("b", metadata=owner_metadata("dbt", "/w", "m"))).partition_by == ""  # type: ignore[union-attr]


def test_the_prefect_launcher_starts_no_run_for_partitions() -> None:
    # Refused before Prefect is imported or reached: no server needed.
    from insync.adapters.prefect._automation import PrefectLauncher
    from insync.core import InsyncError

    request = LaunchRequest(
        Owner("prefect", "daily/days"),
        (AssetKey("daily"),),
        (),
        {AssetKey("daily"): ("2026-11-02", "2026-11-03")},
        "insync-z",
    )
    with pytest.raises(InsyncError, match=r"daily\[2026-11-02, 2026-11-03\]: .* run deployment daily/days"):
        PrefectLauncher().launch(request)
