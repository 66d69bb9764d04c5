"""Prefect's temporary server, started where a person sees it start.

With no PREFECT_API_URL, Prefect starts a local server (uvicorn in a subprocess) on the first
API call of a process and waits for it in silence: 12-25 s here, longer on a busy machine, and
when it misses PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS (20 s by default) it fails with
a bare `RuntimeError("Timed out while attempting to connect to ephemeral Prefect API server...")`.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from insync.core import InsyncError

_TIMED_OUT = "Timed out while attempting to connect to ephemeral Prefect API server"


def ensure_prefect_api(out: TextIO | None = None) -> str:
    """The Prefect API this process talks to: PREFECT_API_URL when set, else Prefect's temporary
    server, started now with a line on `out` (stderr by default) saying so and how long it took.

    Call it before the first flow run of a script, so the wait is announced instead of silent;
    later flow runs of the process reuse the same server.

    :raises InsyncError: the temporary server did not start in time (a busy machine), with what
        to do instead: a `prefect server start` and PREFECT_API_URL, or a longer timeout.
    """
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_SERVER_ALLOW_EPHEMERAL_MODE,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
    )

    url = PREFECT_API_URL.value()
    if url or not PREFECT_SERVER_ALLOW_EPHEMERAL_MODE.value():
        return str(url or "")
    server = SubprocessASGIServer()  # one per process: the one Prefect's clients will use
    if server.running:
        return str(server.api_url)
    stream = out if out is not None else sys.stderr
    timeout = PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()
    print(
        f"starting Prefect's temporary server (no PREFECT_API_URL set; 10-30 s, Prefect gives up after "
        f"{timeout} s)...",
        file=stream,
        flush=True,
    )
    started = time.monotonic()
    try:
        server.start()
    except RuntimeError as exc:
        if _TIMED_OUT not in str(exc):
            raise
        raise InsyncError(
            f"Prefect's temporary server did not answer within {timeout} s (a busy machine starts it "
            f"slowly). Start one server and point every run at it: `prefect server start` in another "
            f"terminal, then `export PREFECT_API_URL=http://127.0.0.1:4200/api`; or allow a longer "
            f"start: `export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=90`"
        ) from None
    print(
        f"Prefect's temporary server is up ({time.monotonic() - started:.0f} s) at {server.api_url}",
        file=stream,
        flush=True,
    )
    return str(server.api_url)
