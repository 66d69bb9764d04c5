"""OpenLineage in core: off unless configured, schema-valid events, failures that fail nothing."""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from insync.core import AssetSpec, EventStore, Step, _lineage
from insync.core._lineage import emit_step, step_lineage

_DATA = Path(__file__).parents[1] / "data" / "openlineage"
_spec = importlib.util.spec_from_file_location("ol_validate", _DATA / "ol_validate.py")
assert _spec is not None and _spec.loader is not None
ol_validate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ol_validate)

README = Path(__file__).parents[2] / "README.md"


ol_file = ol_validate.ol_file


def _materialize_twice(store: EventStore) -> None:
    store.register([AssetSpec("raw/orders", kind="observable")])
    store.observe({"raw/orders": "v1"})
    for _ in range(2):  # runs, then skips
        step = Step(store, AssetSpec("analytics/orders", code_version="v1", deps=["raw/orders"]),
                    framework="prefect")
        decision = step.check()
        emit_step(step_lineage(decision, None if decision.skip else step.record()), job_name="orders")


@pytest.mark.parametrize(
    ("env", "files", "expected"),
    [
        ({}, [], False),
        ({"OPENLINEAGE_URL": "http://lineage:5000"}, [], True),
        ({"OPENLINEAGE__TRANSPORT__TYPE": "console"}, [], True),
        ({"OPENLINEAGE_URL": "http://lineage:5000", "OPENLINEAGE_DISABLED": "true"}, [], False),
        ({"OPENLINEAGE_CONFIG": "{dir}/ol.yml"}, ["ol.yml"], True),
        ({"OPENLINEAGE_CONFIG": "{dir}/missing.yml"}, [], False),
        ({}, ["openlineage.yml"], True),  # in the working directory
    ],
)
def test_configured_the_openlineage_way(
    env: dict[str, str], files: list[str], expected: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in files:
        (tmp_path / name).write_text("transport:\n  type: console\n")
    environ = {k: v.replace("{dir}", str(tmp_path)) for k, v in env.items()}
    assert _lineage._configured(environ) is expected


def test_off_by_default_imports_no_openlineage(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import os, sys
        for name in list(os.environ):
            if name.startswith("OPENLINEAGE"):
                del os.environ[name]
        os.environ["HOME"] = {str(tmp_path)!r}
        from insync.core import AssetSpec, EventStore, Step
        from insync.core._lineage import emit_step, lineage_enabled, step_lineage
        store = EventStore("sqlite:///{tmp_path}/s.db")
        step = Step(store, AssetSpec("a", code_version="v1"))
        emit_step(step_lineage(step.check(), step.record()), job_name="a")
        emit_step(step_lineage(step.check()), job_name="a", failed=RuntimeError("boom"))
        assert not lineage_enabled()
        print(sorted(m for m in sys.modules if m.startswith("openlineage")))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_events_are_valid_and_carry_versions_and_decision(ol_file: Path, sqlite_url: str) -> None:
    store = EventStore(sqlite_url)
    _materialize_twice(store)
    events = ol_file.read_text().splitlines()
    parsed = [json.loads(line) for line in events]
    assert [e["eventType"] for e in parsed] == ["START", "COMPLETE", "START", "COMPLETE"]
    for event in parsed:
        assert ol_validate.validate_event(event) == [
            "run.tags (https://openlineage.io/spec/facets/1-0-0/TagsRunFacet.json#/$defs/TagsRunFacet)"
        ]
    run, skip = parsed[1], parsed[3]
    recorded = store.status("analytics/orders")
    for event, decision in ((run, "run"), (skip, "skip")):
        (output,) = event["outputs"]
        assert (output["namespace"], output["name"]) == ("insync", "analytics/orders")
        assert output["facets"]["version"]["datasetVersion"] == str(recorded.data_version)
        facet = output["facets"]["insync"]
        assert facet["decision"] == decision
        assert facet["codeVersion"] == "v1"
        assert facet["inputs"] == [{"asset": "raw/orders", "dataVersion": "v1", "eventId": 1}]
        assert event["run"]["facets"]["insync"]["decision"] == decision
        assert event["inputs"][0]["facets"]["version"]["datasetVersion"] == "v1"
    assert run["run"]["facets"]["insync"]["status"] == "MISSING"
    assert skip["run"]["facets"]["insync"]["status"] == "FRESH"
    assert run["run"]["runId"] == parsed[0]["run"]["runId"] != skip["run"]["runId"]


def test_a_cause_tree_is_valid_against_the_facet_schema(ol_file: Path, sqlite_url: str) -> None:
    store = EventStore(sqlite_url)
    _materialize_twice(store)
    store.observe({"raw/orders": "v2"})
    step = Step(store, AssetSpec("analytics/orders", code_version="v2", deps=["raw/orders"]))
    emit_step(step_lineage(step.check(), step.record()), job_name="orders")
    event = json.loads(ol_file.read_text().splitlines()[-1])
    ol_validate.validate_event(event)
    causes = event["run"]["facets"]["insync"]["causes"]
    assert {c["category"] for c in causes} == {"CODE", "DATA"}
    broken = json.loads(json.dumps(event))
    broken["run"]["facets"]["insync"]["causes"][0]["category"] = "WEATHER"
    with pytest.raises(AssertionError, match="WEATHER"):
        ol_validate.validate_event(broken)


def test_a_failed_step_emits_start_and_fail_without_a_version(ol_file: Path, sqlite_url: str) -> None:
    store = EventStore(sqlite_url)
    store.register([AssetSpec("raw/orders", kind="observable")])
    store.observe({"raw/orders": "v1"})
    step = Step(store, AssetSpec("analytics/orders", code_version="v1", deps=["raw/orders"]),
                framework="prefect")
    decision = step.check()
    try:
        raise ValueError("orders.csv has no header")
    except ValueError as exc:
        emit_step(step_lineage(decision), job_name="orders", run_id="0192f0e4-0000-7000-8000-000000000001",
                  failed=exc)
    emit_step(step_lineage(decision), job_name="orders", failed="dbt: relation missing")
    events = ol_validate.read_events(ol_file)
    assert [e["eventType"] for e in events] == ["START", "FAIL", "START", "FAIL"]
    for event in events:  # errorMessage is checked against its vendored schema
        assert ol_validate.validate_event(event) == [
            "run.tags (https://openlineage.io/spec/facets/1-0-0/TagsRunFacet.json#/$defs/TagsRunFacet)"
        ]
        (output,) = event["outputs"]
        assert (output["namespace"], output["name"], output["facets"]) == ("insync", "analytics/orders", {})
        assert event["inputs"][0]["facets"]["version"]["datasetVersion"] == "v1"
        facet = event["run"]["facets"]["insync"]
        assert (facet["decision"], facet["status"], facet["dataVersion"]) == ("run", "MISSING", "NULL")
        assert facet["codeVersion"] == "v1"
    start, fail = events[0], events[1]
    assert start["run"]["runId"] == fail["run"]["runId"] == "0192f0e4-0000-7000-8000-000000000001"
    assert "errorMessage" not in start["run"]["facets"]
    error = fail["run"]["facets"]["errorMessage"]
    assert error["message"] == "ValueError: orders.csv has no header"
    assert error["programmingLanguage"] == "python"
    assert "Traceback" in error["stackTrace"] and "orders.csv has no header" in error["stackTrace"]
    assert events[3]["run"]["facets"]["errorMessage"]["message"] == "dbt: relation missing"
    assert "stackTrace" not in events[3]["run"]["facets"]["errorMessage"]
    assert events[2]["run"]["runId"] == events[3]["run"]["runId"] != start["run"]["runId"]
    del error["programmingLanguage"]
    with pytest.raises(AssertionError, match="programmingLanguage"):
        ol_validate.validate_event(fail)


def test_a_skip_whose_run_failed_says_run(ol_file: Path, sqlite_url: str) -> None:
    """In sync, but the value was gone: the step ran after all, and failed."""
    store = EventStore(sqlite_url)
    _materialize_twice(store)
    step = Step(store, AssetSpec("analytics/orders", code_version="v1", deps=["raw/orders"]))
    decision = step.check()
    assert decision.skip
    emit_step(step_lineage(decision), job_name="orders", failed=RuntimeError("boom"))
    fail = ol_validate.read_events(ol_file)[-1]
    ol_validate.validate_event(fail)
    facet = fail["run"]["facets"]["insync"]
    assert (fail["eventType"], facet["decision"], facet["status"]) == ("FAIL", "run", "FRESH")
    # The version the failure left in place, not a new one.
    assert facet["dataVersion"] == str(store.status("analytics/orders").data_version)


def test_a_failing_backend_fails_no_step_and_warns_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, sqlite_url: str
) -> None:
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__TYPE", "http")
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__URL", "http://127.0.0.1:9")
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__RETRY", '{"total": 0}')
    _lineage.reset_lineage()
    try:
        with caplog.at_level(logging.WARNING, logger="insync"):
            _materialize_twice(EventStore(sqlite_url))
    finally:
        _lineage.reset_lineage()
    warnings = [r.getMessage() for r in caplog.records if "OpenLineage" in r.getMessage()]
    assert len(warnings) == 1 and "cannot emit events" in warnings[0]


def _readme_event() -> dict[str, Any]:
    text = README.read_text()
    section = text[text.index("## OpenLineage"):]
    block = re.search(r"```json\n(.*?)\n```", section, re.S)
    assert block, "README's OpenLineage section shows no ```json event"
    event: dict[str, Any] = json.loads(block.group(1))
    return event


def _shape(value: Any) -> Any:
    """Keys (recursively) and value types: what must not drift between README and code."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return type(value).__name__


def test_readme_event_is_valid_and_matches_what_is_emitted(ol_file: Path, sqlite_url: str) -> None:
    shown = _readme_event()
    assert ol_validate.validate_event(shown) == []
    store = EventStore(sqlite_url)
    _materialize_twice(store)
    store.observe({"raw/orders": "v2"})
    step = Step(store, AssetSpec("analytics/orders", code_version="v1", deps=["raw/orders"]),
                framework="prefect")
    emit_step(step_lineage(step.check(), step.record()), job_name="shop.orders")
    emitted = json.loads(ol_file.read_text().splitlines()[-1])
    emitted["run"]["facets"].pop("tags")  # the client's own; the README leaves it out
    assert _shape(shown) == _shape(emitted)
