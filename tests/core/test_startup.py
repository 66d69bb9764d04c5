"""The everyday path: what `insync --help` and `insync status` import, and the newcomer's
mistakes with a store URL, each a single line with the fix and never a password.

How fast these are is measured in benchmarks/bench_startup.py, not asserted here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from insync.core import AssetSpec, ConfigError, EventStore, StoreError, StoreUnavailable
from insync.core.cli import main

SECRET = "s3cret"
REPO = Path(__file__).resolve().parents[2]
NEVER = ("alembic", "airflow", "prefect", "dbt", "fsspec", "psycopg")


def modules_after(*argv: str, cwd: Path) -> set[str]:
    """Every module loaded by a fresh interpreter that ran `insync ARGV`."""
    code = (
        "import json, sys\nfrom insync.core.cli import main\n"
        f"try: main({list(argv)!r})\nexcept SystemExit as exit: assert not exit.code, exit.code\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=cwd)
    return set(json.loads(out.stdout.splitlines()[-1]))


def loaded(modules: set[str], *packages: str) -> list[str]:
    return sorted({p for p in packages for m in modules if m == p or m.startswith(p + ".")})


def test_help_imports_neither_the_store_nor_any_orchestrator(tmp_path: Path) -> None:
    modules = modules_after("--help", cwd=tmp_path)
    assert loaded(modules, *NEVER, "sqlalchemy", "pendulum", "rich", "insync.adapters") == []


def test_status_imports_no_orchestrator_no_migration_tool_and_no_other_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'insync.db'}"
    with EventStore(url) as store:
        store.register(
            [AssetSpec(f"a{i}", code_version="1", deps=[f"a{i - 1}"] if i else []) for i in range(10)]
        )
    modules = modules_after("--database-url", url, "status", cwd=tmp_path)
    assert loaded(modules, *NEVER, "sqlalchemy.dialects.postgresql", "insync.adapters") == []
    assert "sqlalchemy" in modules  # it did read the store


def test_importing_insync_core_loads_names_on_first_use() -> None:
    code = (
        "import sys, insync.core\n"
        "before = {m.split('.')[0] for m in sys.modules}\n"
        "insync.core.EventStore\n"
        "print(sorted(before & {'sqlalchemy', 'pendulum', 'fsspec'}), 'sqlalchemy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["[]", "True"]


def test_help_lists_the_adapter_commands_with_their_own_help() -> None:
    result = CliRunner().invoke(main, ["--help"], terminal_width=200)
    assert result.exit_code == 0
    lines = {line.split()[0]: line for line in result.output.splitlines() if line.startswith("  ")}
    assert "Airflow 3: see what versioned tasks would do" in lines["airflow"]
    assert "Memoized dbt" in lines["dbt"]


# ------------------------------------------------------------------------- newcomer mistakes
def one_line_error(*argv: str, env: dict[str, str] | None = None) -> str:
    """stderr of `insync ARGV` in a fresh process: it must fail, in one line, without a secret."""
    result = subprocess.run(
        [str(Path(sys.executable).with_name("insync")), *argv],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and SECRET not in result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr


@pytest.mark.parametrize(
    ("url", "fix"),
    [
        ("sqlite:/data/insync.db", "did you mean sqlite:////data/insync.db?"),
        ("sqlite//data/insync.db", "did you mean sqlite:////data/insync.db?"),
        ("/data/insync.db", "did you mean sqlite:////data/insync.db?"),
        ("insync.db", "did you mean sqlite:///insync.db?"),
        ("sqlite:///~/insync.db", f"write sqlite:///{Path.home()}/insync.db"),
        (f"postgresql+psycopg//me:{SECRET}@db/insync", "write postgresql\\+psycopg://"),
        (f"postgres//me:{SECRET}@db/insync", "write postgresql\\+psycopg://"),
        (f"postgresql+pyscopg://me:{SECRET}@db/insync", "write postgresql\\+psycopg://"),
    ],
)
def test_url_typos_say_what_was_meant(url: str, fix: str) -> None:
    with pytest.raises(ConfigError, match=fix) as info:
        EventStore(url)
    assert SECRET not in str(info.value)


def test_a_folder_given_as_url_points_at_insync_home(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"set INSYNC_HOME={tmp_path} instead"):
        EventStore(str(tmp_path))


def test_three_slashes_for_an_absolute_path_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "store" / "insync.db"
    EventStore(f"sqlite:///{store}").close()
    monkeypatch.chdir(tmp_path / "store")  # sqlite:///tmp/... now names a file relative to here
    relative = f"sqlite:///{str(store).lstrip('/')}"
    with pytest.raises(StoreError, match=f"did you mean sqlite:///{store}, with four slashes"):
        EventStore(relative, read_only=True)


def test_cli_url_typos_are_one_line(tmp_path: Path) -> None:
    message = one_line_error("status", env={"INSYNC_DATABASE_URL": f"sqlite:{tmp_path}/insync.db"})
    assert "$INSYNC_DATABASE_URL" in message and f"sqlite:///{tmp_path}/insync.db" in message
    message = one_line_error("--database-url", f"postgres//me:{SECRET}@db/x", "status")
    assert "the url argument" in message and "postgresql+psycopg://" in message


def test_a_missing_postgres_driver_says_what_to_install(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['psycopg'] = None  # as if not installed\n"
        "from insync.core import EventStore, ConfigError\n"
        f"try: EventStore('postgresql+psycopg://me:{SECRET}@127.0.0.1:1/x')\n"
        "except ConfigError as exc: print(exc)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "needs the PostgreSQL driver psycopg" in out and "pip install 'insync[postgres]'" in out
    assert SECRET not in out


@pytest.fixture
def missing_database(postgres_server: str) -> str:
    """A URL on the real server whose database does not exist (with a password to hide)."""
    name = f"insync_missing_{uuid.uuid4().hex[:8]}"
    return (
        sa.make_url(postgres_server).set(database=name, password=SECRET).render_as_string(hide_password=False)
    )


def test_a_missing_postgres_database_names_createdb(missing_database: str) -> None:
    name = sa.make_url(missing_database).database
    with pytest.raises(StoreUnavailable, match=rf'database "{name}" .*does not exist.*`createdb .*{name}`'):
        EventStore(missing_database)
    message = one_line_error("status", env={"INSYNC_DATABASE_URL": missing_database})
    assert f"createdb -h 127.0.0.1 -p 5432 -U postgres {name}" in message


def test_a_missing_postgres_role_says_so(postgres_server: str) -> None:
    url = sa.make_url(postgres_server).set(username="insync_nobody", password=SECRET)
    with pytest.raises(StoreUnavailable, match=r'role "insync_nobody" .*does not exist.*createuser') as info:
        EventStore(url.render_as_string(hide_password=False))
    assert SECRET not in str(info.value)


def test_the_cross_orchestrator_example_on_a_missing_database_is_one_line(
    missing_database: str, tmp_path: Path
) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "examples" / "cross_orchestrator" / "run.py"),
            "--database-url",
            missing_database,
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and SECRET not in result.stdout + result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("run.py: error: StoreUnavailable:")
    assert f"createdb -h 127.0.0.1 -p 5432 -U postgres {sa.make_url(missing_database).database}" in line
