"""Progress lines for the phases a person waits through: what starts, and a reminder every
10 s while it lasts, so that a long parse or warehouse query is never silent.

Lines are log records of `insync.adapters.dbt` marked as progress (`PROGRESS` in `extra`): in
a task's log they read like any other line; the `insync dbt` command prints them on stderr.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

__all__ = ["PROGRESS", "is_progress", "note", "phase"]

log = logging.getLogger("insync.adapters.dbt")

PROGRESS: Final = {"insync_progress": True}
REMIND_EVERY: Final = 10.0  # seconds


def is_progress(record: logging.LogRecord) -> bool:
    return bool(getattr(record, "insync_progress", False))


def note(message: str, *args: object) -> None:
    """One progress line."""
    log.info(message, *args, extra=PROGRESS)


@contextmanager
def phase(message: str, *args: object) -> Iterator[None]:
    """Say that `message` starts, then `still ...` every REMIND_EVERY seconds until it ends."""
    note(message, *args)
    what = message % args if args else message
    started = time.monotonic()
    done = threading.Event()

    def remind() -> None:
        while not done.wait(REMIND_EVERY):
            note("still busy with %s (%d s)", what, time.monotonic() - started)

    reminder = threading.Thread(target=remind, name="insync-dbt-progress", daemon=True)
    reminder.start()
    try:
        yield
    finally:
        done.set()
        reminder.join()
