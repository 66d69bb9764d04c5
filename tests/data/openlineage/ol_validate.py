"""Validate OpenLineage events offline against the vendored spec schemas (see README.md here).

Each event is checked against the core schema; then every facet whose `_schemaURL` names a
schema held here (the standard DatasetVersionDatasetFacet and ErrorMessageRunFacet, insync's
own facets) is checked
against that definition too. `validate_event` returns the facets it could not check (the
frameworks' own facets, whose schemas are not vendored) so a test can see what was skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from insync.core import _lineage
from insync.core._lineage import FACET_SCHEMA, facet_schema_path
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

HERE = Path(__file__).parent
CORE = "https://openlineage.io/spec/2-0-2/OpenLineage.json"


def _resource(path: Path | Any) -> Resource[Any]:
    return Resource.from_contents(json.loads(path.read_text()))


def registry() -> Registry[Any]:
    core = _resource(HERE / "OpenLineage-2-0-2.json")
    version = _resource(HERE / "DatasetVersionDatasetFacet-1-0-0.json")
    error = _resource(HERE / "ErrorMessageRunFacet-1-0-0.json")
    return Registry().with_resources(
        [
            (CORE, core),
            # DatasetVersionDatasetFacet 1-0-0 refers to the 1-0-2 core spec's DatasetFacet,
            # which the 2-0-2 core keeps (BaseFacet + `_deleted`): served by the 2-0-2 file.
            ("https://openlineage.io/spec/1-0-2/OpenLineage.json", core),
            ("https://openlineage.io/spec/facets/1-0-0/DatasetVersionDatasetFacet.json", version),
            # The client (1.54) stamps 1-0-1: the same single required `datasetVersion` string.
            ("https://openlineage.io/spec/facets/1-0-1/DatasetVersionDatasetFacet.json", version),
            ("https://openlineage.io/spec/facets/1-0-0/ErrorMessageRunFacet.json", error),
            # Client 1.54 stamps 1-0-1 here too: the same fields (`message`, `programmingLanguage`
            # required, `stackTrace` optional strings) as its generated ErrorMessageRunFacet.
            ("https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json", error),
            (FACET_SCHEMA, _resource(facet_schema_path())),
        ]
    )


_REGISTRY = registry()


def _check(schema_url: str, instance: Any) -> None:
    validator = Draft202012Validator(
        {"$ref": schema_url}, registry=_REGISTRY, format_checker=FormatChecker()
    )
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.path))
    if errors:
        lines = [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors]
        raise AssertionError(f"not valid against {schema_url}:\n" + "\n".join(lines))


def _facets(event: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    for name, facet in (event.get("run", {}).get("facets") or {}).items():
        found.append((f"run.{name}", facet))
    for name, facet in (event.get("job", {}).get("facets") or {}).items():
        found.append((f"job.{name}", facet))
    for side in ("inputs", "outputs"):
        for dataset in event.get(side) or ():
            for group in ("facets", "inputFacets", "outputFacets"):
                for name, facet in (dataset.get(group) or {}).items():
                    found.append((f"{side}[{dataset['name']}].{group}.{name}", facet))
    return found


def validate_event(event: dict[str, Any]) -> list[str]:
    """Raise AssertionError if `event` breaks the spec; return the facets left unchecked."""
    _check(CORE, event)
    unchecked = []
    for where, facet in _facets(event):
        url = facet.get("_schemaURL", "")
        base = url.split("#", 1)[0]
        if _REGISTRY.get(base) is None and base != CORE:
            unchecked.append(f"{where} ({url})")
            continue
        _check(url if "#" in url else base, facet)
    return unchecked


@pytest.fixture
def ol_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """OpenLineage configured with the client's file transport; yields the events file.

    A test module uses it with `ol_file = ol_validate.ol_file`.
    """
    path = tmp_path / "openlineage.jsonl"
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__TYPE", "file")
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__LOG_FILE_PATH", str(path))
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__APPEND", "true")
    monkeypatch.delenv("OPENLINEAGE_NAMESPACE", raising=False)
    _lineage.reset_lineage()
    yield path
    _lineage.reset_lineage()


def read_events(path: Path) -> list[dict[str, Any]]:
    """Events written by the client's file transport (one JSON document per line, append mode)."""
    text = path.read_text() if path.exists() else ""
    return [json.loads(line) for line in text.splitlines() if line.strip()]
