"""Regenerate the README's screenshot of the asset catalog from this example's real store.

    .venv/bin/python examples/cross_orchestrator/screenshot.py [--out examples/ui-screenshot.png]

Runs pass 1 of `run.py` (Airflow loads the CSV files, dbt builds the models, Prefect writes the
reports: about a minute, mostly the frameworks' cold starts), appends a new order to the raw file
and lets Airflow's watch DAG observe it, exactly as `run.py` does. At that moment `raw/orders` is
Unsynced and the dbt models and the Prefect report below it are Synced with a pending change.
Then `insync ui` serves the store and Debian's chromium (`apt-get install -y chromium`), driven by
Playwright, captures the page with the panel of `--asset` open. `--workdir DIR` keeps the
example's files (default: a temporary folder, removed at the end).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser

HERE = Path(__file__).resolve().parent
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
VIEWPORT = {"width": 1920, "height": 820}


def prepare(workdir: Path) -> None:
    """The example's store as it is after the raw orders file changed (run.py up to that point)."""
    sys.path.insert(0, str(HERE))
    import run  # the example itself: same steps, same store layout

    run.configure(workdir, None)
    from airflow.utils.db import upgradedb

    print("screenshot: migrating Airflow's metadata DB", flush=True)
    upgradedb()
    run.run_pass(1, workdir, {}, {})
    orders = workdir / "data" / "orders.csv"
    orders.write_text(orders.read_text() + run.NEW_ORDER)
    print(f"screenshot: appended to {orders}: {run.NEW_ORDER.strip()}", flush=True)
    run.run_airflow("watch_raw_files")


def capture(browser: Browser, url: str, out: Path, asset: str) -> None:
    """Screenshot of the catalog at `url` with `asset`'s panel open and the graph fitted beside it."""
    page = browser.new_page(viewport=VIEWPORT)
    try:
        page.goto(url)
        page.wait_for_selector("svg#graph[data-state=ready]", timeout=60_000)
        page.locator(f'#nodes [data-key="{asset}"]').click()
        page.wait_for_selector("#panel .explain li")
        page.click("#fit")  # the whole graph in the part of the window the panel leaves
        page.wait_for_timeout(300)
        page.screenshot(path=str(out))
    finally:
        page.close()
    print(f"screenshot: wrote {out}", flush=True)


def capture_in_chromium(url: str, out: Path, asset: str) -> None:
    """`capture` in Debian's chromium, driven by Playwright (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise SystemExit(f"screenshot: {CHROMIUM} not found: apt-get update && apt-get install -y chromium")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox"])
        try:
            capture(browser, url, out, asset)
        finally:
            browser.close()


def serve_and_capture(database_url: str, out: Path, asset: str) -> None:
    """`insync ui` on a free port for the store at `database_url`, captured, then stopped."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # The `insync` command of this environment (next to its python), as a user would start it.
    insync = Path(sys.executable).with_name("insync")
    command = [str(insync) if insync.exists() else "insync", "--database-url", database_url]
    command += ["ui", "--port", str(port)]
    server = subprocess.Popen(command)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url + "api/changes", timeout=5) as response:
                    json.load(response)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"screenshot: `insync ui` did not start: {' '.join(command)}") from None
                time.sleep(0.2)
        capture_in_chromium(url, out, asset)
    finally:
        server.terminate()
        server.wait(timeout=30)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE.parent / "ui-screenshot.png", help="PNG to write")
    parser.add_argument("--asset", default="raw/orders", help="asset whose panel is open")
    parser.add_argument("--workdir", type=Path, help="empty or missing folder to work in (kept)")
    args = parser.parse_args(argv)
    workdir = args.workdir.resolve() if args.workdir else Path(tempfile.mkdtemp(prefix="insync-screenshot-"))
    if args.workdir and workdir.exists() and any(workdir.iterdir()):
        parser.error(f"--workdir {workdir} is not empty; give a new folder")
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        prepare(workdir)
        serve_and_capture(f"sqlite:///{workdir / 'insync' / 'insync.db'}", args.out.resolve(), args.asset)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
