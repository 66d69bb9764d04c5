"""Asset catalog UI at scale: load, layout and draw times of N assets in headless Chromium.

Run: `python -m benchmarks.bench_ui [--sizes 1000 5000] [--prefixed-sizes 5000]` (needs Debian's
`chromium`: `apt-get install -y chromium`). The graph is the core benchmark's shape, the worst case
for a layered layout: each asset depends on up to 3 random earlier ones. Frameworks rotate over
airflow/prefect/dbt, one asset in 50 gets a new code version (Unsynced), the last tenth is never
materialized. `--sizes` keys every asset `asset/I` (one flat folder: the page draws every asset);
`--prefixed-sizes` keys them `LAYER/dD/aI` (4 layers, 10 domains), which the page draws as
folders by key prefix from 2,000 assets on; opening one folder is timed too. Prints a Markdown
table; benchmarks/README.md records a run.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import uvicorn
from insync.core import AssetSpec, EventStore, Materialization
from insync.core.ui import create_app

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
FRAMEWORKS = ("airflow", "dbt", "prefect")
LAYERS = ("raw", "staging", "marts", "reports")

# Long tasks (main thread busy > 50 ms) are what a user feels as a frozen page.
LONG_TASKS = """
window.longTasks = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) window.longTasks.push(e.duration);
}).observe({ type: "longtask", buffered: true });
"""

# Culling draws a margin around the window: pick a node that is really on screen.
VISIBLE_NODE = """
(() => {
  const box = document.getElementById("graph").getBoundingClientRect();
  for (const el of document.querySelectorAll("#nodes [data-key]")) {
    const r = el.getBoundingClientRect();
    if (r.left >= box.left && r.right <= box.right && r.top >= box.top && r.bottom <= box.bottom) {
      return el.dataset.key;
    }
  }
  return null;
})()
"""


def seed(store: EventStore, n: int, rng: random.Random, prefixed: bool = False) -> None:
    # Layers follow the index, so a dependency (an earlier asset) is in the same or an earlier layer.
    keys = [f"{LAYERS[i * 4 // n]}/d{i % 10}/a{i}" if prefixed else f"asset/{i}" for i in range(n)]
    specs = []
    for i in range(n):
        deps = sorted({keys[rng.randrange(i)] for _ in range(min(i, 3))}) if i else []
        specs.append(AssetSpec(keys[i], code_version="1", deps=deps, framework=FRAMEWORKS[i % 3]))
    store.register(specs)
    done = specs[: n - n // 10]
    for lo in range(0, len(done), 5000):
        store.record_materializations([Materialization(s.key, run_id="seed") for s in done[lo : lo + 5000]])
    bumped = [s for s in done if rng.random() < 0.02]
    store.register([AssetSpec(s.key, code_version="2", deps=s.deps, framework=s.framework) for s in bumped])


def start_server(store: EventStore) -> tuple[str, uvicorn.Server, threading.Thread]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(store), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    return f"http://127.0.0.1:{sock.getsockname()[1]}/", server, thread


def timed_get(url: str) -> tuple[float, int]:
    start = time.perf_counter()
    with urllib.request.urlopen(url) as response:
        size = len(response.read())
    return time.perf_counter() - start, size


def measure(n: int, workdir: Path, prefixed: bool = False) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    store = EventStore(f"sqlite:///{workdir / f'ui-{n}-{prefixed}.db'}")
    seed(store, n, random.Random(11), prefixed)
    url, server, thread = start_server(store)
    timed_get(url + "api/graph")  # warm the store's statement cache
    graph_s, graph_bytes = timed_get(url + "api/graph")
    changes_s, _ = timed_get(url + "api/changes")
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1500, "height": 900})
            page.add_init_script(LONG_TASKS)
            start = time.perf_counter()
            page.goto(url)
            page.wait_for_selector("svg#graph[data-state=ready]", timeout=120_000)
            wall = time.perf_counter() - start
            m = page.evaluate("window.insyncMetrics")
            load_tasks = page.evaluate("window.longTasks.slice()")
            # Interactions: overview of every asset, a status filter, opening a node's panel.
            page.evaluate("window.longTasks = []")
            t0 = time.perf_counter()
            page.click("#fit")
            page.wait_for_function("insyncMetrics.drawnNodes > 0")
            fit_draw = page.evaluate("insyncMetrics.drawMs")
            fit_nodes = page.evaluate("insyncMetrics.drawnNodes")
            t1 = time.perf_counter()
            page.select_option("#filter-status", "STALE")
            page.wait_for_selector("svg#graph[data-state=ready]")
            filter_s = time.perf_counter() - t1
            stale = page.evaluate("insyncMetrics.nodes")
            page.select_option("#filter-status", "")
            page.wait_for_selector("svg#graph[data-state=ready]")
            folder_s = None
            if prefixed:  # open the first folder, then the first folder inside it: assets to click
                t3 = time.perf_counter()
                for _ in range(2):
                    page.locator("#nodes [data-folder]").first.click()
                    page.wait_for_selector("svg#graph[data-state=ready]")
                folder_s = (time.perf_counter() - t3) / 2
                page.click("#fit")
            t2 = time.perf_counter()
            key = page.evaluate(VISIBLE_NODE)
            page.locator(f'#nodes [data-key="{key}"]').click()
            page.wait_for_selector("#panel .explain li")
            panel_s = time.perf_counter() - t2
            interact_tasks = page.evaluate("window.longTasks.slice()")
            interactions = time.perf_counter() - t0
            browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        store.close()
    return {
        "assets": f"{n} {'prefixed' if prefixed else 'flat'}",
        "drawn_units": m["nodes"],  # folders and assets after grouping (before: every asset)
        "edges": m["edges"],
        "api_graph_ms": graph_s * 1000,
        "api_graph_kb": graph_bytes / 1024,
        "api_changes_ms": changes_s * 1000,
        "fetch_ms": m["fetchMs"],
        "layout_ms": m["layoutMs"],
        "first_draw_ms": m["drawMs"],
        "drawn_nodes": m["drawnNodes"],
        "ready_ms": m["readyMs"],
        "wall_ms": wall * 1000,
        "max_long_task_load_ms": max(load_tasks, default=0.0),
        "fit_all_draw_ms": fit_draw,
        "fit_all_nodes": fit_nodes,
        "filter_unsynced_ms": filter_s * 1000,
        "unsynced": stale,
        "panel_ms": panel_s * 1000,
        "open_folder_ms": "-" if folder_s is None else folder_s * 1000,
        "max_long_task_interactions_ms": max(interact_tasks, default=0.0),
        "interactions_s": interactions,
        "layout_engine": "dagre" if m.get("dagreMs") else "layered",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000], help="flat keys asset/I")
    parser.add_argument("--prefixed-sizes", type=int, nargs="*", default=[5000], help="keys LAYER/dD/aI")
    parser.add_argument("--json", action="store_true", help="print raw JSON instead of a table")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(n, Path(tmp)) for n in args.sizes]
        rows += [measure(n, Path(tmp), prefixed=True) for n in args.prefixed_sizes]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print("| metric | " + " | ".join(f"{r['assets']} assets" for r in rows) + " |")
    print("|---|" + "---|" * len(rows))
    for name in rows[0]:
        if name == "assets":
            continue
        cells = [f"{r[name]:.1f}" if isinstance(r[name], float) else str(r[name]) for r in rows]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
