"""The asset catalog in a real headless Chromium against a real store and server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from _ui_seed import EXPECTED_LABELS, Served, seed
from insync.core import AssetSpec, EventStore, StaleStatus
from insync.core._render import explain
from playwright.sync_api import Page, expect

FRAMEWORKS = {
    "raw/orders": "airflow",
    "raw/customers": "external",  # no framework: the badge shows the kind
    "staging/orders": "dbt",
    "staging/customers": "dbt",
    "marts/customer_orders": "dbt",
    "reports/weekly": "prefect",
    "reports/adhoc": "prefect",
}


def node(page: Page, key: str):  # type: ignore[no-untyped-def]
    return page.locator(f'#nodes [data-key="{key}"]')


def open_catalog(page: Page, url: str, query: str = "") -> None:
    page.goto(url + query)
    page.wait_for_selector("svg#graph[data-state=ready]")


def short(version: str, n: int = 14) -> str:
    return version if len(version) <= n else version[: n - 2] + "…"


def test_graph_shows_status_framework_and_versions(seeded: Served, page: Page) -> None:
    open_catalog(page, seeded.url)
    statuses = seeded.store.statuses()
    assert {str(k): s.status.label for k, s in statuses.items()} == EXPECTED_LABELS
    expect(page.locator("#nodes .node")).to_have_count(len(EXPECTED_LABELS))
    for key, label in EXPECTED_LABELS.items():
        box = node(page, key)
        expect(box.locator(".key")).to_have_text(key)
        expect(box.locator(".status")).to_have_text(label)
        expect(box.locator(".fw")).to_have_text(FRAMEWORKS[key])
        status = statuses[next(k for k in statuses if str(k) == key)]
        code = status.code_version or "—"
        expect(box.locator(".code")).to_have_text(f"code {short(code)}")
        expect(box.locator(".data")).to_have_text(f"data {short(str(status.data_version))}")
    expect(node(page, "staging/customers").locator(".code")).to_have_text("code v2")
    expect(node(page, "raw/orders").locator(".data")).to_have_text("data rows-120")
    expect(node(page, "raw/customers").locator(".data")).to_have_text("data INITIAL")
    expect(page.locator("#counts")).to_have_text("4 Synced2 Unsynced1 Never materialized2 pending")


def test_graph_is_laid_out_left_to_right(seeded: Served, page: Page) -> None:
    open_catalog(page, seeded.url)
    assert page.locator("svg#graph").get_attribute("data-layout") == "dagre"

    def x_of(key: str) -> float:
        return float(node(page, key).bounding_box()["x"])  # type: ignore[index]

    chain = ["raw/orders", "staging/orders", "marts/customer_orders", "reports/weekly"]
    xs = [x_of(k) for k in chain]
    assert xs == sorted(xs) and len(set(xs)) == len(xs), xs
    # Every dependency is drawn as one edge.
    expect(page.locator("#edges path.edge")).to_have_count(6)


def test_clicking_a_node_shows_causes_in_the_words_of_insync_why(seeded: Served, page: Page) -> None:
    open_catalog(page, seeded.url)
    node(page, "staging/customers").click()
    panel = page.locator("#panel")
    expect(panel.locator(".panel-key")).to_have_text("staging/customers")
    expect(panel.locator(".badge.status")).to_have_text("Unsynced")
    why = [line.strip() for line in explain(seeded.store.status("staging/customers"))]
    assert "root cause: staging/customers has a new code version" in why
    expect(panel.locator(".explain li")).to_have_text(why)
    expect(panel.locator(".cause-tree > li > .cat")).to_have_text(["CODE"])

    # A DATA cause carries its child: the dependency's own change.
    node(page, "staging/orders").click()
    expect(panel.locator(".panel-key")).to_have_text("staging/orders")
    expect(panel.locator(".cause-tree > li > .text")).to_have_text(
        ["staging/orders has a new dependency data version"]
    )
    expect(panel.locator(".cause-tree li li .text")).to_have_text(["raw/orders has a new data version"])
    expect(panel.locator(".explain li")).to_have_text(
        [line.strip() for line in explain(seeded.store.status("staging/orders"))]
    )

    # Keyboard users reach the same panel.
    node(page, "raw/customers").focus()
    page.keyboard.press("Enter")
    expect(panel.locator(".panel-key")).to_have_text("raw/customers")
    expect(panel.locator(".explain li")).to_have_text(["raw/customers: Synced"])
    expect(panel.locator(".cause-tree")).to_have_count(0)

    # Pending upstream changes are explained too, and the dependency links navigate.
    node(page, "marts/customer_orders").click()
    expect(panel.locator(".explain li")).to_contain_text(
        ["will be unsynced after staging/orders is materialized (Unsynced)"]
    )
    panel.locator("a.dep", has_text="staging/customers").click()
    expect(panel.locator(".panel-key")).to_have_text("staging/customers")
    expect(node(page, "staging/customers")).to_have_class("node st-STALE selected")


def test_zoom_and_pan(seeded: Served, page: Page) -> None:
    open_catalog(page, seeded.url)
    graph = page.locator("svg#graph")
    box = graph.bounding_box()
    assert box is not None
    before = node(page, "marts/customer_orders").bounding_box()
    page.mouse.move(box["x"] + 40, box["y"] + 40)  # empty background, top-left corner
    page.mouse.down()
    page.mouse.move(box["x"] + 140, box["y"] + 90, steps=5)
    page.mouse.up()
    after = node(page, "marts/customer_orders").bounding_box()
    assert before and after
    assert (round(after["x"] - before["x"]), round(after["y"] - before["y"])) == (100, 50)
    # Far out, nodes become plain boxes that still open the panel.
    for _ in range(8):
        page.click("#zoom-out")
    expect(graph).to_have_attribute("data-detail", "boxes")
    page.locator('#nodes .node-box[data-key="staging/orders"]').click()
    expect(page.locator("#panel .panel-key")).to_have_text("staging/orders")
    page.click("#fit")
    expect(graph).to_have_attribute("data-detail", "full")


def test_panel_lists_materialization_and_observation_history(seeded: Served, page: Page) -> None:
    open_catalog(page, seeded.url)
    node(page, "raw/orders").click()
    rows = page.locator("#panel table.history tbody tr")
    events = seeded.store.history("raw/orders")
    expect(rows).to_have_count(len(events))
    assert [e.run_id for e in events] == ["airflow-run-2", "airflow-run-1"]
    for row, event in zip(rows.all(), events, strict=True):
        cells = row.locator("td")
        expect(cells.nth(0)).to_have_text(event.timestamp.format("YYYY-MM-DD HH:mm:ss"))
        expect(cells.nth(1)).to_have_text("observation")
        expect(cells.nth(2)).to_have_text(event.run_id or "")
        expect(cells.nth(3)).to_have_text("airflow")
        expect(cells.nth(5)).to_have_text(f"{event.data_version} (user)")

    node(page, "staging/customers").click()
    row = page.locator("#panel table.history tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator("td").nth(1)).to_have_text("materialization")
    expect(row.locator("td").nth(2)).to_have_text("dbt-run-1")
    expect(row.locator("td").nth(4)).to_have_text("v1")  # the code version it ran with, not v2
    page.locator("#panel-close").click()
    expect(page.locator("#panel")).to_be_hidden()


def test_filters_by_framework_status_and_key(seeded: Served, page: Page) -> None:
    open_catalog(page, seeded.url)
    shown = page.locator("#nodes .node")
    page.select_option("#filter-framework", "dbt")
    expect(shown).to_have_count(3)
    assert sorted(shown.evaluate_all("ns => ns.map(n => n.dataset.key)")) == [
        "marts/customer_orders",
        "staging/customers",
        "staging/orders",
    ]
    page.select_option("#filter-status", "STALE")
    expect(shown).to_have_count(2)
    page.select_option("#filter-framework", "prefect")
    expect(shown).to_have_count(0)
    expect(page.locator("#empty")).to_have_text("No asset matches these filters.")
    page.select_option("#filter-status", "MISSING")
    expect(shown).to_have_count(1)
    expect(node(page, "reports/adhoc")).to_be_visible()
    page.select_option("#filter-framework", "(none)")
    page.select_option("#filter-status", "")
    expect(shown).to_have_count(1)
    expect(node(page, "raw/customers")).to_be_visible()
    page.select_option("#filter-framework", "")
    page.fill("#filter-text", "staging/")
    expect(shown).to_have_count(2)
    page.fill("#filter-text", "")
    # The header counts double as status filters.
    page.locator("#counts [data-status=FRESH]").click()
    expect(shown).to_have_count(4)
    assert page.input_value("#filter-status") == "FRESH"
    page.locator("#counts [data-status=FRESH]").click()
    expect(shown).to_have_count(len(EXPECTED_LABELS))


def test_refreshes_without_reload_on_new_events_and_definitions(
    tmp_path: Path, serve_store: Callable[[EventStore], str], page: Page
) -> None:
    store = EventStore(f"sqlite:///{tmp_path / 'live.db'}")
    seed(store)
    url = serve_store(store)
    open_catalog(page, url, "?poll=250")
    page.evaluate("window.notReloaded = true")
    node(page, "reports/adhoc").click()
    expect(page.locator("#panel table.history tbody tr")).to_have_count(0)

    store.record_materialization("reports/adhoc", run_id="prefect-run-7", framework="prefect")
    expect(node(page, "reports/adhoc").locator(".status")).to_have_text("Synced")
    expect(page.locator("#panel table.history tbody tr td").nth(2)).to_have_text("prefect-run-7")
    expect(page.locator("#counts")).to_have_text("5 Synced2 Unsynced0 Never materialized3 pending")

    # A new code version emits no event: the definitions are part of the change marker.
    store.register(
        [AssetSpec("reports/weekly", code_version="v2", deps=["marts/customer_orders"], framework="prefect")]
    )
    expect(node(page, "reports/weekly").locator(".status")).to_have_text("Unsynced")
    expect(node(page, "reports/weekly").locator(".code")).to_have_text("code v2")

    # A new asset appears in the graph (keys are shown literally, never as markup).
    odd = "odd/<b>&amp; key"
    store.register([AssetSpec(odd, code_version="v1", deps=["reports/weekly"], framework="prefect")])
    expect(node(page, odd).locator(".key")).to_have_text(odd)
    assert page.evaluate("window.notReloaded") is True
    assert store.status(odd).status is StaleStatus.MISSING
    store.close()


def test_page_loads_nothing_from_outside_the_server(seeded: Served, page: Page) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    open_catalog(page, seeded.url)
    assert requested, "no requests seen"
    outside = [u for u in requested if not u.startswith(seeded.url) and not u.startswith("data:")]
    assert not outside, outside
    assert any(u.endswith("/static/vendor/dagre.min.js") for u in requested)


def test_partitioned_asset_shows_counts_and_opens_a_partitions_causes(
    partitioned: Served, page: Page, browser_errors: list[str]
) -> None:
    open_catalog(page, partitioned.url)
    expect(node(page, "daily/revenue").locator(".parts")).to_have_text("27/30 synced")
    expect(node(page, "raw/orders").locator(".parts")).to_have_text("30/30 synced")
    expect(node(page, "sales/by_region").locator(".parts")).to_have_text("0/2 synced")
    expect(node(page, "legacy/partitions/old").locator(".data")).to_have_text("data NULL")

    node(page, "daily/revenue").click()
    panel = page.locator("#panel")
    expect(panel.locator(".panel-key")).to_have_text("daily/revenue")
    expect(panel.locator(".partition-counts")).to_have_text("27/30 synced, 2 unsynced, 1 never materialized")
    expect(panel.locator("button.partition.st-STALE")).to_have_text(["2026-11-28", "2026-11-29"])
    expect(panel.locator("button.partition.st-MISSING")).to_have_text(["2026-11-30"])
    expect(panel.locator(".explain").first.locator("li")).to_have_text(
        [line.strip() for line in explain(partitioned.store.status("daily/revenue"))]
    )

    panel.locator("button.partition", has_text="2026-11-29").click()
    detail = panel.locator("#partition-detail")
    expect(detail.locator(".partition-label")).to_have_text("daily/revenue[2026-11-29]")
    expect(detail.locator(".badge.status")).to_have_text("Unsynced")
    one = partitioned.store.status("daily/revenue", partition="2026-11-29")
    expect(detail.locator(".explain li")).to_have_text([line.strip() for line in explain(one)])
    expect(detail.locator(".cause-tree > li > .text")).to_have_text(
        ["daily/revenue[2026-11-29] has a new dependency data version"]
    )
    expect(detail.locator(".cause-tree li li .text")).to_have_text(
        ["raw/orders[2026-11-29] has a new data version"]
    )
    expect(detail.locator(".parameters")).to_contain_text("day = ")
    expect(detail.locator("table.history tbody tr")).to_have_count(1)
    expect(detail.locator("table.history td").nth(2)).to_have_text("revenue-1")
    newest = panel.locator("table.history").last.locator("tbody tr").first
    expect(newest.locator(".partition-cell")).to_have_text("2026-11-29")  # the asset's own history
    expect(panel.locator("button.partition.active")).to_have_text("2026-11-29")

    # Any partition by key; a key that does not fit shows the store's message.
    panel.locator(".partition-open input").fill("2026-11-31")
    panel.locator(".partition-open button").click()
    expect(detail.locator(".error")).to_have_text(
        "InvalidPartitionKey: partition '2026-11-31' is not a daily window key in UTC; "
        "write keys like '2026-11-01'"
    )
    assert browser_errors == [
        "Failed to load resource: the server responded with a status of 400 (Bad Request)"
    ]
    browser_errors.clear()
    panel.locator(".partition-open input").fill("2026-11-02")
    panel.locator(".partition-open input").press("Enter")
    expect(detail.locator(".partition-label")).to_have_text("daily/revenue[2026-11-02]")
    expect(detail.locator(".badge.status")).to_have_text("Synced")

    # A key with "/" is one partition; its panel keeps the keys literal.
    node(page, "sales/by_region").click()
    expect(panel.locator(".panel-key")).to_have_text("sales/by_region")
    expect(panel.locator("#partition-detail")).to_be_empty()
    panel.locator("button.partition", has_text="us/east").click()
    expect(detail.locator(".partition-label")).to_have_text("sales/by_region[us/east]")
    expect(detail.locator(".cause-tree > li > .cat")).to_have_text(["CODE"])
