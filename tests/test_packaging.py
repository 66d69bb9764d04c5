"""The built wheel: the right files under `insync/`, the console script, and a working install.

The wheel is built once per session from a copy of the packaged sources (so no `build/` or
`*.egg-info` lands in the tree and no stale `build/lib` leaks into the wheel), installed with
`uv pip install --target`, and used from a fresh interpreter whose only insync is that copy.
Budget: a few seconds once uv's cache holds setuptools (the first build ever downloads it).
"""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import sys
import textwrap
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REQUIRED = [
    "insync/core/__init__.py",
    "insync/core/py.typed",
    "insync/core/cli.py",
    "insync/core/migrations/env.py",
    "insync/core/migrations/versions/0001_initial.py",
    "insync/core/migrations/versions/0002_partitions_parameters.py",
    "insync/adapters/__init__.py",
    "insync/adapters/airflow/__init__.py",
    "insync/adapters/prefect/__init__.py",
    "insync/adapters/dbt/__init__.py",
]


def _uv() -> str | None:
    beside = Path(sys.executable).with_name("uv")
    return str(beside) if beside.exists() else shutil.which("uv")


def _run(
    cmd: list[str], *, timeout: float, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, env=env, cwd=cwd)
    assert done.returncode == 0, f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done


def _packaged_sources(dest: Path) -> Path:
    """Copy what the build reads: pyproject, its readme/license files and the mapped folders."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = pyproject["project"]
    files = ["pyproject.toml"]
    for entry in (project.get("readme"), project.get("license")):
        if isinstance(entry, str):
            files.append(entry)
        elif isinstance(entry, dict) and "file" in entry:
            files.append(entry["file"])
    files += [p.name for p in ROOT.glob("LICENSE*")] + [p.name for p in ROOT.glob("MANIFEST.in")]
    folders = {Path(d).parts[0] for d in pyproject["tool"]["setuptools"]["package-dir"].values()}
    dest.mkdir()
    for name in files:
        shutil.copy2(ROOT / name, dest / name)
    junk = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")
    for folder in folders:
        shutil.copytree(ROOT / folder, dest / folder, ignore=junk)
    return dest


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _packaged_sources(tmp_path_factory.mktemp("pkg") / "src")


@pytest.fixture(scope="module")
def wheel(sources: Path) -> Path:
    out = sources.parent / "dist"
    uv = _uv()
    if uv is not None:
        cmd = [uv, "build", "--wheel", "--out-dir", str(out), str(sources)]
    else:  # pragma: no cover - `make` always installs uv into .venv
        cmd = [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(sources)]
    _run(cmd, timeout=300)
    (built,) = out.glob("insync-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path) -> Path:
    uv = _uv()
    target = wheel.parent.parent / "target"
    if uv is not None:
        cmd = [uv, "pip", "install", "--python", sys.executable, "--no-deps", "--target", str(target)]
    else:  # pragma: no cover
        cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target)]
    _run([*cmd, str(wheel)], timeout=120)
    return target


@pytest.fixture
def wheel_env(installed: Path, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment for a fresh interpreter that sees the installed wheel first, away from ROOT."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSYNC_") and k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(installed)
    env["INSYNC_HOME"] = str(tmp_path / "home")
    yield env


# ---------------------------------------------------------------------------------- the wheel
def test_wheel_holds_the_insync_namespace_and_nothing_else(wheel: Path, sources: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        top_level = (
            zf.read(f"{dist_info}/top_level.txt").decode().split()
            if (f"{dist_info}/top_level.txt" in names)
            else ["insync"]
        )
    missing = [n for n in REQUIRED if n not in names]
    assert not missing, f"wheel lacks {missing}"
    roots = {n.split("/")[0] for n in names}
    assert roots == {"insync", dist_info}, f"unexpected top-level entries: {sorted(roots)}"
    assert top_level == ["insync"]
    assert not [n for n in names if n.startswith(("core/", "adapters/"))]
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    # Every module and data file of the mapped folders ships: a sub-package missing from
    # `packages`, or static files missing from `package-data`, would silently not.
    pyproject = tomllib.loads((sources / "pyproject.toml").read_text())
    left_out = []
    for package, folder in pyproject["tool"]["setuptools"]["package-dir"].items():
        prefix = package.replace(".", "/")
        for path in sorted((sources / folder).rglob("*")):
            if path.is_file() and f"{prefix}/{path.relative_to(sources / folder).as_posix()}" not in names:
                left_out.append(path.relative_to(sources).as_posix())
    assert not left_out, f"not in the wheel (add them to pyproject packages/package-data): {left_out}"


def test_wheel_declares_the_console_script_and_extras(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        entry_points = zf.read(f"{dist_info}/entry_points.txt").decode()
        metadata = zf.read(f"{dist_info}/METADATA").decode()
    parser = configparser.ConfigParser()
    parser.read_string(entry_points)
    assert parser["console_scripts"]["insync"].strip() == "insync.core.cli:main"
    assert "Name: insync" in metadata.splitlines()
    lines = metadata.splitlines()
    extras = {line.split(":", 1)[1].strip() for line in lines if line.startswith("Provides-Extra:")}
    assert {"airflow", "prefect", "dbt", "postgres", "all", "dev"} <= extras
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    for name in ("sqlalchemy", "alembic", "click"):
        assert any(line.lower().startswith(f"requires-dist: {name}") for line in requires), requires


# ------------------------------------------------------------------------------ the install
PROBE = textwrap.dedent(
    """
    import importlib.util, json, sys
    from importlib.metadata import distribution, entry_points

    target = sys.argv[1]
    import insync.core
    from insync.core import AssetSpec, DataVersion, EventStore

    found = {
        "core": insync.core.__file__,
        "cli": importlib.util.find_spec("insync.core.cli").origin,
        "adapters": [
            importlib.util.find_spec(f"insync.adapters.{name}").origin
            for name in ("airflow", "prefect", "dbt")
        ],
        "dist": str(distribution("insync")._path),
        "scripts": [e.value for e in entry_points(group="console_scripts") if e.name == "insync"],
        "bare": [n for n in ("core", "adapters") if importlib.util.find_spec(n) is not None],
    }
    with EventStore() as store:  # $INSYNC_HOME: creates and migrates from the wheel's migrations
        store.register([AssetSpec("raw", kind="observable"),
                        AssetSpec("clean", code_version="1", deps=["raw"])])
        store.record_observation("raw", DataVersion("r1"))
        found["event"] = store.record_materialization("clean", run_id="wheel").id
        found["revision"] = store.schema_revision()
    print(json.dumps(found))
    """
)


def test_installed_wheel_imports_from_its_target_and_opens_a_store(
    installed: Path, wheel_env: dict[str, str], tmp_path: Path
) -> None:
    done = _run([sys.executable, "-c", PROBE, str(installed)], timeout=120, env=wheel_env, cwd=tmp_path)
    found = json.loads(done.stdout.strip().splitlines()[-1])
    target = str(installed)
    for origin in [found["core"], found["cli"], *found["adapters"], found["dist"]]:
        assert origin.startswith(target), f"{origin} is not from the installed wheel in {target}"
    assert found["scripts"] == ["insync.core.cli:main"]
    assert found["bare"] == [], f"bare top-level modules importable: {found['bare']}"
    assert found["event"] >= 1 and found["revision"]
    assert (tmp_path / "home" / "insync.db").exists()


def test_installed_console_script_reports_status(
    installed: Path, wheel_env: dict[str, str], tmp_path: Path
) -> None:
    _run([sys.executable, "-c", PROBE, str(installed)], timeout=120, env=wheel_env, cwd=tmp_path)
    script = installed / "bin" / "insync"
    if script.exists():  # the launcher uv wrote for the console script
        cmd = [str(script)]
    else:  # pragma: no cover - run the declared entry point the way the launcher would
        cmd = [
            sys.executable,
            "-c",
            "import sys; from importlib.metadata import entry_points; "
            "sys.exit(next(e for e in entry_points(group='console_scripts') if e.name == 'insync').load()())",
        ]
    status = _run([*cmd, "status", "--json"], timeout=120, env=wheel_env, cwd=tmp_path)
    rows = {row["key"]: row for row in json.loads(status.stdout)}
    assert set(rows) == {"raw", "clean"}, rows
    assert rows["clean"]["status"] == "FRESH", rows["clean"]
    why = _run([*cmd, "why", "clean"], timeout=120, env=wheel_env, cwd=tmp_path)
    assert "clean" in why.stdout
