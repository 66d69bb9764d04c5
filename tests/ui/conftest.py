"""Fixtures for the asset catalog UI: a seeded store, the app on a real port, system Chromium.

The browser is Debian's `chromium` driven by Playwright (never a downloaded browser); install it
with `apt-get update && apt-get install -y chromium`. One browser per test file; each test gets a
fresh page. The server runs uvicorn in a daemon thread on a free 127.0.0.1 port.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import uvicorn
from _ui_seed import Served, seed, seed_partitions
from insync.core import EventStore
from insync.core.ui import create_app
from playwright.sync_api import Browser, Page

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


class _ThreadServer(uvicorn.Server):
    """uvicorn in a thread: `started` is set once it listens; `should_exit` stops it."""


@pytest.fixture(scope="session")
def serve_store() -> Iterator[Callable[[EventStore], str]]:
    """Start the app for a store; every server started this way stops at session end."""
    running: list[tuple[_ThreadServer, threading.Thread]] = []

    def start(store: EventStore) -> str:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(create_app(store), log_level="warning", lifespan="off", ws="none")
        server = _ThreadServer(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the insync ui server did not start within 20 s")
            time.sleep(0.02)
        running.append((server, thread))
        return f"http://127.0.0.1:{port}/"

    yield start
    for server, thread in running:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def seeded(
    tmp_path_factory: pytest.TempPathFactory, serve_store: Callable[[EventStore], str]
) -> Iterator[Served]:
    url = f"sqlite:///{tmp_path_factory.mktemp('ui-store') / 'insync.db'}"
    store = EventStore(url)
    seed(store)
    yield Served(serve_store(store), store)
    store.close()


@pytest.fixture(scope="session")
def partitioned(
    tmp_path_factory: pytest.TempPathFactory, serve_store: Callable[[EventStore], str]
) -> Iterator[Served]:
    """A store with partitioned assets (see `seed_partitions`), served once for the session."""
    store = EventStore(f"sqlite:///{tmp_path_factory.mktemp('ui-partitions') / 'insync.db'}")
    seed_partitions(store)
    yield Served(serve_store(store), store)
    store.close()


# Per file, not per session: Playwright's sync API keeps an asyncio loop marked running in the
# main thread while it is open, and a test file that a worker runs after this one (an Airflow
# trigger's `asyncio.run()`, Prefect's sync calls) must find none.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists() and not shutil.which(CHROMIUM):
        message = f"{CHROMIUM} not found: apt-get update && apt-get install -y chromium"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def browser_errors() -> list[str]:
    """JavaScript and console errors of the test's page; a test that provokes one on purpose (an
    HTTP 400 logs "Failed to load resource") checks it and removes it."""
    return []


@pytest.fixture
def page(browser: Browser, browser_errors: list[str]) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1500, "height": 900})
    page = context.new_page()
    errors = browser_errors
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    yield page
    context.close()
    # A JavaScript error anywhere fails the test that caused it.
    assert not errors, f"browser errors: {errors}"
