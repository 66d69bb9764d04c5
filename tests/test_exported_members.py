"""The public faces are deliberate: these lists change only on purpose."""

import types

import insync.core


def test_core_exports() -> None:
    assert insync.core.__all__ == sorted(insync.core.__all__, key=lambda n: (not n.isupper(), n))
    public = {
        name
        for name in dir(insync.core)
        if not name.startswith("_") and not isinstance(getattr(insync.core, name), types.ModuleType)
    }
    assert set(insync.core.__all__) == public


def test_ui_and_cli_exports() -> None:
    import insync.core.cli
    import insync.core.ui

    assert insync.core.ui.__all__ == ["create_app", "serve"]
    assert insync.core.cli.__all__ == ["event_to_json", "explain", "main", "status_to_json"]


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
