"""The catalog shows what is about to change: pending marks and filter, WHY links, a panel that
keeps the graph's scale, filters that refit, folders by key prefix for large catalogs."""

from __future__ import annotations

import importlib.util
import struct
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from _ui_seed import Served, seed, seed_prefixed
from insync.core import AssetStatus, EventStore, StaleStatus
from playwright.sync_api import Browser, Page, expect
from test_ui_catalog import node, open_catalog

# In the seeded scenario, both staging models are Unsynced: the mart and the weekly report read
# them, are Synced, and will be unsynced once staging is rebuilt.
PENDING = ["marts/customer_orders", "reports/weekly"]
CLOSE = "\N{MULTIPLICATION SIGN}"  # on the chip of an open folder


def is_pending(status: AssetStatus) -> bool:
    return status.status is StaleStatus.FRESH and bool(status.upstream)


def pending_keys(store: EventStore) -> list[str]:
    return sorted(str(k) for k, s in store.statuses().items() if is_pending(s))


def box_of(page: Page, selector: str) -> dict[str, float]:
    box = page.locator(selector).bounding_box()
    assert box is not None, selector
    return box


def boxes(page: Page, selector: str, count: int | None = None) -> list[dict[str, float]]:
    """The drawn boxes; with `count`, wait (up to 10 s) until that many are drawn: a redraw after a
    filter replaces the nodes, and a node not yet laid out has no box."""
    for _ in range(100):
        shown = [b for b in (one.bounding_box() for one in page.locator(selector).all()) if b is not None]
        if count is None or len(shown) == count:
            break
        page.wait_for_timeout(100)
    return shown


def inside(inner: dict[str, float], outer: dict[str, float]) -> bool:
    return (
        inner["x"] >= outer["x"] - 0.5
        and inner["y"] >= outer["y"] - 0.5
        and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + 0.5
        and inner["y"] + inner["height"] <= outer["y"] + outer["height"] + 0.5
    )


def test_pending_assets_are_marked_and_filtered(seeded: Served, page: Page) -> None:
    assert pending_keys(seeded.store) == PENDING
    open_catalog(page, seeded.url)
    marked = page.locator("#nodes .node.pending")
    expect(marked).to_have_count(2)
    assert sorted(marked.evaluate_all("ns => ns.map(n => n.dataset.key)")) == PENDING
    expect(marked.locator(".pending-text")).to_have_text(["pending", "pending"])
    expect(node(page, "marts/customer_orders").locator("title")).to_contain_text("2 upstream changes pending")
    # Unsynced assets and plain Synced ones carry no mark.
    expect(node(page, "staging/orders").locator(".pending-text")).to_have_count(0)
    expect(node(page, "raw/customers").locator(".pending-text")).to_have_count(0)
    expect(page.locator("#counts [data-pending]")).to_have_text("2 pending")

    shown = page.locator("#nodes .node")
    page.check("#filter-pending")
    expect(shown).to_have_count(2)
    assert sorted(shown.evaluate_all("ns => ns.map(n => n.dataset.key)")) == PENDING
    page.select_option("#filter-framework", "prefect")
    expect(shown).to_have_count(1)
    expect(node(page, "reports/weekly")).to_be_visible()
    page.select_option("#filter-framework", "")
    page.uncheck("#filter-pending")
    expect(shown).to_have_count(7)
    # The header count toggles the same filter.
    page.locator("#counts [data-pending]").click()
    expect(shown).to_have_count(2)
    assert page.is_checked("#filter-pending")

    # Far out, the plain boxes keep the mark.
    page.locator("#counts [data-pending]").click()
    for _ in range(8):
        page.click("#zoom-out")
    expect(page.locator("svg#graph")).to_have_attribute("data-detail", "boxes")
    expect(page.locator("#nodes .node-box.pending")).to_have_count(2)


def test_an_asset_named_in_a_why_line_is_a_link(seeded: Served, page: Page) -> None:
    open_catalog(page, seeded.url)
    node(page, "marts/customer_orders").click()
    panel = page.locator("#panel")
    links = panel.locator(".explain a.asset-link")
    expect(links).to_have_text(["staging/orders", "staging/customers"])  # the order of `insync why`
    expect(panel.locator(".explain li").nth(1)).to_have_text(
        "will be unsynced after staging/orders is materialized (Unsynced)"
    )
    links.nth(0).click()
    expect(panel.locator(".panel-key")).to_have_text("staging/orders")
    expect(node(page, "staging/orders")).to_have_class("node st-STALE selected")
    # Centred in the part of the canvas the panel leaves.
    canvas = box_of(page, "svg#graph")
    target = box_of(page, '#nodes [data-key="staging/orders"] .box')
    assert abs(target["x"] + target["width"] / 2 - (canvas["x"] + canvas["width"] / 2)) < 2
    assert abs(target["y"] + target["height"] / 2 - (canvas["y"] + canvas["height"] / 2)) < 2
    # A root cause names another asset: its link goes there too.
    panel.locator(".explain a.asset-link", has_text="raw/orders").click()
    expect(panel.locator(".panel-key")).to_have_text("raw/orders")

    # A link to an asset the filters hide clears them, so the asset can be shown.
    page.check("#filter-pending")
    expect(page.locator("#panel")).to_be_hidden()  # raw/orders is not pending
    node(page, "reports/weekly").click()
    panel.locator(".explain a.asset-link", has_text="staging/customers").click()
    expect(panel.locator(".panel-key")).to_have_text("staging/customers")
    assert not page.is_checked("#filter-pending")
    expect(page.locator("#nodes .node")).to_have_count(7)


def test_history_stays_inside_the_panel(
    tmp_path: Path, serve_store: Callable[[EventStore], str], page: Page
) -> None:
    store = EventStore(f"sqlite:///{tmp_path / 'long.db'}")
    seed(store)
    run_id = "scheduled__2026-12-01T00:00:00.123456+00:00__" + "backfill-" * 8
    store.record_materialization("reports/adhoc", run_id=run_id, framework="prefect", data_version="d" * 64)
    open_catalog(page, serve_store(store))
    node(page, "reports/adhoc").click()
    expect(page.locator("#panel table.history td").nth(2)).to_have_text(run_id)
    sizes = page.evaluate(
        """() => {
          const panel = document.getElementById("panel");
          const wrap = panel.querySelector(".history-wrap");
          const table = wrap.querySelector("table");
          return { panel: panel.clientWidth, panelScroll: panel.scrollWidth, wrap: wrap.clientWidth,
                   wrapScroll: wrap.scrollWidth, table: table.scrollWidth };
        }"""
    )
    assert sizes["wrapScroll"] <= sizes["wrap"], sizes
    assert sizes["table"] <= sizes["panel"], sizes
    assert sizes["panelScroll"] <= sizes["panel"], sizes
    store.close()


def test_opening_the_panel_keeps_the_label_size(seeded: Served, page: Page) -> None:
    open_catalog(page, seeded.url)
    label = '#nodes [data-key="reports/weekly"] .key'
    before = box_of(page, label)
    node(page, "reports/weekly").click()
    expect(page.locator("#panel .panel-key")).to_have_text("reports/weekly")
    after = box_of(page, label)
    assert (round(after["width"], 1), round(after["height"], 1)) == (
        round(before["width"], 1),
        round(before["height"], 1),
    )
    # The selected asset is in the part of the canvas left visible, not under the panel.
    assert inside(box_of(page, '#nodes [data-key="reports/weekly"] .box'), box_of(page, "svg#graph"))
    page.locator("#panel-close").click()
    expect(page.locator("#panel")).to_be_hidden()
    closed = box_of(page, label)
    assert round(closed["width"], 1) == round(before["width"], 1)


def test_a_filter_refits_the_view_and_closes_a_hidden_assets_panel(seeded: Served, page: Page) -> None:
    open_catalog(page, seeded.url)
    for _ in range(4):
        page.click("#zoom-in")
    node(page, "staging/customers").click()
    expect(page.locator("#panel .panel-key")).to_have_text("staging/customers")
    canvas = box_of(page, "svg#graph")
    assert not all(inside(b, canvas) for b in boxes(page, "#nodes .node .box"))

    page.select_option("#filter-status", "FRESH")
    expect(page.locator("#nodes .node")).to_have_count(4)
    expect(page.locator("#panel")).to_be_hidden()  # staging/customers is Unsynced: filtered out
    canvas = box_of(page, "svg#graph")
    shown = boxes(page, "#nodes .node .box", count=4)
    assert len(shown) == 4 and all(inside(b, canvas) for b in shown), (shown, canvas)

    # An asset the filter keeps keeps its panel.
    node(page, "reports/weekly").click()
    page.select_option("#filter-framework", "prefect")
    expect(page.locator("#panel .panel-key")).to_have_text("reports/weekly")
    expect(page.locator("#panel")).to_be_visible()


def test_five_thousand_assets_are_drawn_as_folders_by_key_prefix(
    tmp_path: Path, serve_store: Callable[[EventStore], str], page: Page
) -> None:
    store = EventStore(f"sqlite:///{tmp_path / 'folders.db'}")
    seed_prefixed(store, 5000)
    statuses = store.statuses()
    url = serve_store(store)
    page.goto(url)
    page.wait_for_selector("svg#graph[data-state=ready]", timeout=60_000)
    expect(page.locator("svg#graph")).to_have_attribute("data-grouped", "folders")

    def counts(prefix: str) -> tuple[int, str]:
        found = Counter(s.status for k, s in statuses.items() if str(k).startswith(prefix))
        text = (
            f"{found[StaleStatus.FRESH]} synced, {found[StaleStatus.STALE]} unsynced, "
            f"{found[StaleStatus.MISSING]} never"
        )
        return sum(found.values()), text

    folders = page.locator("#nodes .folder")
    expect(folders).to_have_count(4)
    assert folders.evaluate_all("fs => fs.map(f => f.dataset.folder)") == [
        "marts/",
        "raw/",
        "reports/",
        "staging/",
    ]
    for prefix in ("raw/", "staging/", "marts/", "reports/"):
        total, text = counts(prefix)
        folder = page.locator(f'#nodes .folder[data-folder="{prefix}"]')
        expect(folder.locator(".key")).to_have_text(prefix)
        expect(folder.locator(".total")).to_have_text(str(total))
        expect(folder.locator(".folder-counts")).to_have_text(text)
    assert counts("reports/")[1].endswith(" 250 never")  # the last 5% never ran
    pending_staging = sum(1 for k, s in statuses.items() if str(k).startswith("staging/") and is_pending(s))
    assert pending_staging > 0
    expect(page.locator('#nodes .folder[data-folder="staging/"] .folder-pending')).to_have_text(
        f"{pending_staging} synced with a change pending"
    )
    expect(page.locator("#nodes .node")).to_have_count(0)

    # Opening raw/ shows its ten domains next to the other layers; a domain shows its assets.
    page.locator('#nodes .folder[data-folder="raw/"]').click()
    page.wait_for_selector("svg#graph[data-state=ready]")
    expect(folders).to_have_count(13)
    total, text = counts("raw/d3/")
    expect(page.locator('#nodes .folder[data-folder="raw/d3/"] .folder-counts')).to_have_text(text)
    page.locator('#nodes .folder[data-folder="raw/d3/"]').click()
    page.wait_for_selector("svg#graph[data-state=ready]")
    expect(folders).to_have_count(12)
    assert page.evaluate("insyncMetrics.nodes") == 12 + total
    page.click("#fit")  # every unit on screen (as plain boxes, so both kinds carry data-key)
    keys = page.locator("#nodes [data-key]").evaluate_all("ns => ns.map(n => n.dataset.key)")
    assert len(keys) == total and all(k.startswith("raw/d3/") for k in keys)
    chips = page.locator("#folders .folder-chip")
    expect(chips).to_have_text([f"raw/ {CLOSE}", f"raw/d3/ {CLOSE}", "Close all"])

    # A WHY link into a closed folder opens the folders that hold its asset.
    pending = next(
        str(k) for k, s in sorted(statuses.items()) if str(k).startswith("staging/d5/") and is_pending(s)
    )
    page.locator("#folders .folder-chip", has_text="Close all").click()
    expect(folders).to_have_count(4)
    page.locator('#nodes .folder[data-folder="staging/"]').click()
    page.locator('#nodes .folder[data-folder="staging/d5/"]').click()
    node(page, pending).click()
    ancestor = str(statuses[next(k for k in statuses if str(k) == pending)].upstream[0].key)
    page.locator("#panel .explain a.asset-link", has_text=ancestor).first.click()
    expect(page.locator("#panel .panel-key")).to_have_text(ancestor)
    expect(node(page, ancestor)).to_be_visible()
    store.close()


def test_the_readme_screenshot_script_captures_the_catalog(
    seeded: Served, browser: Browser, tmp_path: Path
) -> None:
    """examples/cross_orchestrator/screenshot.py's capture step (its other step is the example's
    own pass 1, tested with the example) on the seeded store."""
    path = Path(__file__).parents[2] / "examples" / "cross_orchestrator" / "screenshot.py"
    spec = importlib.util.spec_from_file_location("cross_orchestrator_screenshot", path)
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "ui-screenshot.png"
    script.capture(browser, seeded.url, out, "staging/orders")
    png = out.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (script.VIEWPORT["width"], script.VIEWPORT["height"])
