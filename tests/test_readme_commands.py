"""Every command in every README runs exactly as written and prints what the README shows.

The convention and how the commands run: tests/readme_harness.py. A README that drifts from
the code (a renamed flag, a missing `source .venv/bin/activate`, output worded differently)
fails here, naming the README line.
"""

from __future__ import annotations

import pytest
from readme_harness import READMES, Command, missing_lines, parse, run_readme


def test_every_command_is_in_a_console_block() -> None:
    problems = [problem for readme in READMES for problem in parse(readme)[1]]
    assert problems == []
    for readme in READMES:
        assert parse(readme)[0], f"{readme} shows no ```console command"


NOT_RUN = [c for readme in READMES for c in parse(readme)[0] if c.not_run is not None]


@pytest.mark.parametrize("command", NOT_RUN, ids=lambda c: f"{c.readme}:{c.line}")
def test_commands_that_do_not_run_say_why(command: Command) -> None:
    """Each command CI does not run is listed (a skip, with its README's reason, in the summary)."""
    assert command.not_run and command.not_run.strip(), f"{command}: say why it does not run"
    pytest.skip(f"not run: $ {command.text}  ({command.not_run})")


@pytest.mark.parametrize("readme", READMES)
def test_readme_commands_run_as_written(readme: str) -> None:
    commands = [c for c in parse(readme)[0] if c.not_run is None]
    result = run_readme(readme)
    failures = []
    for ran in result.ran:
        command = ran.command
        if ran.returncode != command.exit_code:
            failures.append(
                f"{command}\n  exited {ran.returncode}, expected {command.exit_code}:\n{ran.output[-3000:]}"
            )
            continue
        missing = missing_lines(command.shown, ran.output)
        if missing:
            shown = "\n".join(f"    {line}" for line in missing)
            failures.append(f"{command}\n  did not print:\n{shown}\n  it printed:\n{ran.output[-3000:]}")
    if len(result.ran) < len(commands):
        failures.append(f"(stopped there; {len(commands) - len(result.ran)} later commands did not run)")
    assert not failures, "\n\n".join(failures)


SAMPLE = """\
Intro `make demo` inline is prose.

<!-- not run: starts a server -->
```console
$ insync ui
```

```console
$ cd examples
$ insync status   # exits 1
Error: no store
$ insync why a
a: Synced ... done
...
```

```bash
python run.py
```
"""


def test_the_harness_reads_the_convention_and_can_fail() -> None:
    commands, problems = parse("SAMPLE.md", SAMPLE)
    assert [(c.text, c.not_run, c.exit_code) for c in commands] == [
        ("insync ui", "starts a server", 0),
        ("cd examples", None, 0),
        ("insync status   # exits 1", None, 1),
        ("insync why a", None, 0),
    ]
    assert commands[3].shown == ["a: Synced ... done", "..."]
    assert problems == ["SAMPLE.md:17: a command in a ```bash block: use console"]
    assert missing_lines(commands[3].shown, "a:   Synced, all done\n") == []
    assert missing_lines(commands[3].shown, "a: done Synced\n") == ["a: Synced ... done"]
    assert missing_lines(["Error: no store"], "Error: no  store here") == []
    assert missing_lines(["Error: no store"], "Error: a store") == ["Error: no store"]
