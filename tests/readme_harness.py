"""Every command the READMEs show, run as a newcomer types it (tests/test_readme_commands.py).

The convention, the same in every README: commands live in ```console blocks, one per line after
a `$ ` prompt; the lines under a command are output it must print (each line, with runs of
spaces counted as one, is found in some printed line; `...` stands for anything: a line of its
own elides lines, inside a line it elides part of it). A command whose comment starts `# exits N` must
exit with N, every other one with 0. A block that must not run (it builds the environment,
starts a server, takes minutes) follows `<!-- not run: why -->`; the test lists those.

Each README runs top to bottom in one fresh copy of the repository (its `.venv` a link to the
venv running the tests), in order, each command in `bash -c` with the working directory and the
exported variables the previous commands left (so `cd`, `export` and `source .venv/bin/activate`
work as typed). The environment is a new user's: no INSYNC_*, Airflow, Prefect or dbt setting,
the venv NOT on PATH (a README that forgets to activate it fails), a home of its own; one thing
is given, as a developer would have it: PREFECT_API_URL of one `prefect server start`, which
saves each Prefect command its own server's cold start.

A README runs once per test process (`run_readme` caches it; each xdist worker is one), so an
example's own test reads the output of the commands the harness ran instead of running them again.
"""

from __future__ import annotations

import atexit
import functools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from prefect_server import shared_prefect_server

ROOT = Path(__file__).resolve().parents[1]
READMES = (
    "README.md",
    "examples/airflow/README.md",
    "examples/cross_orchestrator/README.md",
    "examples/dbt/README.md",
    "examples/prefect/README.md",
    "benchmarks/README.md",
)
# These run Prefect flows: they get PREFECT_API_URL of the shared server.
USES_PREFECT = ("examples/cross_orchestrator/README.md", "examples/prefect/README.md")
COMMAND_TIMEOUT = 600  # seconds; a command that runs longer is a server or a benchmark: mark it
NOT_RUN = re.compile(r"<!--\s*not run:\s*(?P<why>.*?)\s*-->")
EXITS = re.compile(r"#\s*exits\s+(\d+)\b")
FENCE = re.compile(r"^```(?P<info>[^`]*)$")
# First words of a shell command: a block of another kind starting with one is a command in disguise.
COMMAND_WORDS = ("$ ", "python ", ".venv/", "pip ", "insync ", "make ", "cd ", "export ", "source ")
_SKIPPED_IN_COPY = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", ".insync*", "target", "logs", "*.duckdb", "*.duckdb.wal",
    ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis", "*.egg-info", "build", "dist",
)


@dataclass
class Command:
    readme: str
    line: int  # 1-based line of the `$ ` prompt in the README
    text: str
    shown: list[str] = field(default_factory=list)  # output lines the README shows
    not_run: str | None = None  # the reason, for a command in a `not run` block

    @property
    def exit_code(self) -> int:
        found = EXITS.search(self.text)
        return int(found.group(1)) if found else 0

    def __str__(self) -> str:
        return f"{self.readme}:{self.line}: $ {self.text}"


@dataclass
class Ran:
    command: Command
    returncode: int
    output: str  # stdout and stderr, interleaved as a terminal shows them
    seconds: float


@dataclass
class ReadmeRun:
    readme: str
    copy: Path  # the repository copy the commands ran in (kept until the process exits)
    ran: list[Ran]

    def output_of(self, fragment: str) -> str:
        """The output of the one command whose text contains `fragment`."""
        found = [r for r in self.ran if fragment in r.command.text]
        assert len(found) == 1, f"{len(found)} commands of {self.readme} contain {fragment!r}"
        return found[0].output


def parse(readme: str, text: str | None = None) -> tuple[list[Command], list[str]]:
    """(commands in order, problems): a problem is a command outside a ```console block."""
    lines = (ROOT / readme).read_text().splitlines() if text is None else text.splitlines()
    commands: list[Command] = []
    problems: list[str] = []
    block: str | None = None  # the info string of the open fence
    not_run: str | None = None
    pending_not_run: str | None = None
    for number, line in enumerate(lines, start=1):
        fence = FENCE.match(line.strip()) if line.startswith("```") else None
        if block is None:
            if fence:
                block, not_run, pending_not_run = fence["info"].strip(), pending_not_run, None
                first = next((ln for ln in lines[number:] if ln.strip()), "")
                if block in ("", "bash", "sh", "shell") and first.startswith(COMMAND_WORDS):
                    problems.append(f"{readme}:{number}: a command in a ```{block} block: use console")
            elif (found := NOT_RUN.search(line)) is not None:
                pending_not_run = found["why"]
            elif line.strip():
                pending_not_run = None if not line.lstrip().startswith("<!--") else pending_not_run
            continue
        if line.strip() == "```":
            block = None
            continue
        if block != "console":
            continue
        if line.startswith("$ "):
            commands.append(Command(readme, number, line[2:].strip(), not_run=not_run))
        elif commands and commands[-1].line < number and line.strip():
            commands[-1].shown.append(line)
        elif line.strip():
            problems.append(f"{readme}:{number}: output before any `$ ` command: {line!r}")
    if block is not None:
        problems.append(f"{readme}: a ``` block is not closed")
    return commands, problems


def normal(line: str) -> str:
    return " ".join(line.split())


def missing_lines(shown: list[str], output: str) -> list[str]:
    """The shown lines no printed line matches (`...` elides; see the module docstring)."""
    printed = [normal(line) for line in output.splitlines()]
    missing = []
    for line in shown:
        parts = [normal(p) for p in line.split("...")]
        if not any(parts):
            continue
        if not any(_in_order(parts, candidate) for candidate in printed):
            missing.append(line)
    return missing


def _in_order(parts: list[str], line: str) -> bool:
    at = 0
    for part in parts:
        if not part:
            continue
        found = line.find(part, at)
        if found < 0:
            return False
        at = found + len(part)
    return True


def _copy_repository() -> Path:
    where = Path(tempfile.mkdtemp(prefix="insync-readme-"))
    atexit.register(shutil.rmtree, where, True)
    copy = where / "insync"
    shutil.copytree(ROOT, copy, ignore=_SKIPPED_IN_COPY, symlinks=True)
    (copy / ".venv").symlink_to(Path(sys.prefix))
    (where / "home").mkdir()
    return copy


def newcomer_env(home: Path, prefect_api_url: str | None) -> dict[str, str]:
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        # A terminal gets each line as it is printed; so does a timeout's report here.
        "PYTHONUNBUFFERED": "1",
        "TMPDIR": os.environ.get("TMPDIR", "/tmp"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    if prefect_api_url:
        env["PREFECT_API_URL"] = prefect_api_url
    return env


def _run(command: Command, cwd: Path, env: dict[str, str], state: Path) -> tuple[Ran, Path, dict[str, str]]:
    """Run one command in bash; return what it printed, and the cwd and environment it left."""
    script = f'{command.text}\n__rc=$?\npwd > "{state}/cwd"\nenv -0 > "{state}/env"\nexit $__rc\n'
    started = time.perf_counter()
    # Its own process group, so a timeout ends the command's children too (a server, a flow run).
    process = subprocess.Popen(
        ["bash", "--noprofile", "--norc", "-c", script],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        stdin=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=COMMAND_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        message = f"\n[still running after {COMMAND_TIMEOUT} s: mark its block <!-- not run: why -->]"
        return Ran(command, -1, output + message, COMMAND_TIMEOUT), cwd, env
    ran = Ran(command, process.returncode, output, time.perf_counter() - started)
    if (state / "cwd").exists():
        cwd = Path((state / "cwd").read_text().strip())
        pairs = (item.split("=", 1) for item in (state / "env").read_text().split("\0") if "=" in item)
        shell_own = ("_", "SHLVL", "PWD", "OLDPWD")
        env = {k: v for k, v in pairs if not k.startswith("BASH_FUNC_") and k not in shell_own}
        (state / "cwd").unlink()
    return ran, cwd, env


@functools.cache
def run_readme(readme: str) -> ReadmeRun:
    """Run every command of `readme` not marked `not run`, in order, in a fresh repository copy.

    Stops at the first command that fails (its exit code differs from the expected one): later
    commands would only fail because of it. Output checks are left to the caller.
    """
    commands, _ = parse(readme)
    prefect_api_url = shared_prefect_server() if readme in USES_PREFECT else None
    copy = _copy_repository()
    state = copy.parent / "state"
    state.mkdir()
    cwd, env = copy, newcomer_env(copy.parent / "home", prefect_api_url)
    ran: list[Ran] = []
    for command in commands:
        if command.not_run is not None:
            continue
        print(f"[readme] {command}", file=sys.stderr, flush=True)
        result, cwd, env = _run(command, cwd, env, state)
        ran.append(result)
        if result.returncode != command.exit_code:
            break
    return ReadmeRun(readme, copy, ran)
