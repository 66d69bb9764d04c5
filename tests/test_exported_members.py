"""The public faces are deliberate: these lists change only on purpose."""

import importlib
import types

import insync.core
import pytest


def _public(module: types.ModuleType) -> set[str]:
    """Every public name the module binds, submodules aside: nothing public escapes `__all__`."""
    return {
        name
        for name in dir(module)
        if not name.startswith("_") and not isinstance(getattr(module, name), types.ModuleType)
    }


def test_core_exports() -> None:
    assert insync.core.__all__ == sorted(insync.core.__all__, key=lambda n: (not n.isupper(), n))
    assert set(insync.core.__all__) == _public(insync.core)


# Each adapter exports a few names (STYLE.md, "One public face"); the frameworks are installed in
# the dev environment, so every adapter imports here.
ADAPTER_EXPORTS = {
    "insync.adapters.airflow": [
        "InsyncObservationSensor",
        "InsyncObservationTrigger",
        "versioned",
        "versioned_operator",
    ],
    "insync.adapters.prefect": [
        "SOURCE_CHANGED_EVENT",
        "ensure_prefect_api",
        "observation_flow",
        "source_changed_trigger",
        "versioned",
    ],
    "insync.adapters.dbt": ["BuildReport", "DbtError", "DbtProject", "NodeOutcome"],
}


@pytest.mark.parametrize("name", sorted(ADAPTER_EXPORTS))
def test_adapter_exports(name: str) -> None:
    adapter = importlib.import_module(name)
    assert adapter.__all__ == ADAPTER_EXPORTS[name]
    assert adapter.__all__ == sorted(adapter.__all__)
    assert set(adapter.__all__) == _public(adapter)


def test_ui_and_cli_exports() -> None:
    import insync.core.cli
    import insync.core.ui

    assert insync.core.ui.__all__ == ["create_app", "serve"]
    assert insync.core.cli.__all__ == [
        "InsyncGroup",
        "cause_lines",
        "event_to_json",
        "explain",
        "main",
        "status_to_json",
    ]


def test_core_imports_no_orchestrator() -> None:
    import subprocess
    import sys

    code = (
        "import sys, insync.core, insync.core.cli; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('airflow', 'prefect', 'dbt')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_catalog_imports_neither_click_nor_rich() -> None:
    import subprocess
    import sys

    code = "import sys, insync.core.ui; print(sorted({'click', 'rich'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
