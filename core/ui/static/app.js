/* insync asset catalog: read-only view of the store's asset graph, causes and history.
 *
 * Data flow: /api/graph -> filters -> layout (layered at once, dagre in a worker when small)
 * -> SVG. Only what is on screen is in the DOM, and far zoom draws plain boxes, so 5,000 assets
 * stay responsive. /api/changes is polled; a new cursor refetches the graph and the open panel.
 * A partitioned asset's node shows how many of its partitions are Synced; its panel lists the
 * Unsynced and never materialized ones, and clicking one explains it (/api/assets/KEY/partitions/P).
 * A Synced asset with a pending upstream change (an ancestor's change will unsync it once that
 * ancestor is materialized) gets a dashed amber outline and a "pending" badge. From GROUP_MIN
 * assets on, the graph is drawn by key prefix: folders with their counts by status, opened on click.
 * The panel is built with DOM nodes: store data only ever becomes text, never markup.
 */
"use strict";
(function () {
  const L = InsyncLayout;
  const params = new URLSearchParams(location.search);
  const POLL_MS = Math.max(200, Number(params.get("poll")) || 2000);
  const DETAIL_MIN_ZOOM = 0.45; // below this, nodes are plain boxes: text would be unreadable anyway
  const DAGRE_TIMEOUT_MS = 20000;
  const PARTITIONS_LISTED = 60; // per group; any other partition opens through the key field
  const GROUP_MIN = 2000; // from this many shown assets on, the graph is folders by key prefix

  const $ = (id) => document.getElementById(id);
  const svg = $("graph");
  const viewport = $("viewport");
  const edgeLayer = $("edges");
  const nodeLayer = $("nodes");
  const metrics = (window.insyncMetrics = { polls: 0, graphLoads: 0 });

  const state = {
    graph: null, // last /api/graph payload
    cursor: null,
    units: [], // what is drawn, layout order: { id: key, node } or a folder { id, folder, counts }
    shown: new Set(), // keys of the assets the filters keep (some may be inside folders)
    edges: [], // [parentIndex, childIndex] among `units`
    grouped: false, // the shown assets are many: units are folders by key prefix
    expanded: new Set(), // folder prefixes ("raw/", "raw/sales/") the user opened
    structure: null, // never equal to a real graph's, so the first load always lays out
    layout: null,
    edgeBoxes: null,
    layoutId: 0,
    t: { x: 0, y: 0, k: 1 },
    drawn: null, // world rectangle and detail level last drawn
    selected: null,
    partition: null, // { key, partition } explained in the open panel
    autoFit: true, // until the user pans or zooms, resizing the window refits
    moved: false, // the user panned or zoomed since the last layout from scratch
    focus: null, // the asset a link centred on: a refined layout centres on it again
  };

  const esc = (s) =>
    String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  const short = (v, n = 12) => (v == null ? "—" : v.length > n ? v.slice(0, n - 2) + "…" : v);
  const fmtTime = (iso) => iso.replace("T", " ").replace(/\.\d+/, "").replace(/(\+00:00|Z)$/, "");

  // A DOM element; strings among `children` become text nodes, so data is never parsed as HTML.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value != null && value !== false) node.setAttribute(name, value);
    }
    for (const child of children.flat()) if (child != null) node.append(child);
    return node;
  }

  const assetURL = (key) => "api/assets/" + key.split("/").map(encodeURIComponent).join("/");
  const partitionURL = (key, partition) => assetURL(key) + "/partitions/" + encodeURIComponent(partition);
  const synced = (p) => `${p.synced}/${p.total} synced`;
  const isPending = (n) => n.status === "FRESH" && n.pending > 0;
  const plural = (count, word) => `${count} ${word}${count === 1 ? "" : "s"}`;

  async function getJSON(url) {
    const response = await fetch(url, { cache: "no-store" });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    return body;
  }

  // ------------------------------------------------------------------ loading and filtering
  async function loadGraph() {
    const started = performance.now();
    const graph = await getJSON("api/graph");
    metrics.fetchMs = performance.now() - started;
    metrics.graphLoads += 1;
    state.graph = graph;
    state.cursor = graph.cursor;
    state.byKey = new Map(graph.nodes.map((n) => [n.key, n]));
    fillFrameworks(graph);
    showCounts(graph.nodes);
    applyFilters(true);
    setLive();
  }

  function fillFrameworks(graph) {
    const select = $("filter-framework");
    const current = select.value;
    const options = [...graph.frameworks];
    if (graph.nodes.some((n) => !n.framework)) options.push("(none)");
    select.innerHTML =
      '<option value="">All frameworks</option>' +
      options.map((f) => `<option value="${esc(f)}">${esc(f)}</option>`).join("");
    select.value = options.includes(current) ? current : "";
  }

  function statusCounts(nodes) {
    const counts = { FRESH: 0, STALE: 0, MISSING: 0, pending: 0 };
    for (const n of nodes) {
      counts[n.status] += 1;
      if (isPending(n)) counts.pending += 1;
    }
    return counts;
  }

  function showCounts(nodes) {
    const counts = statusCounts(nodes);
    $("counts").innerHTML =
      `<span class="count st-FRESH" data-status="FRESH">${counts.FRESH} Synced</span>` +
      `<span class="count st-STALE" data-status="STALE">${counts.STALE} Unsynced</span>` +
      `<span class="count st-MISSING" data-status="MISSING">${counts.MISSING} Never materialized</span>` +
      `<span class="count pending" data-pending="1" title="Synced, with an upstream change pending">` +
      `${counts.pending} pending</span>`;
  }

  // `fromRefresh`: new store data, not a user action, so a user's pan and zoom are kept.
  function applyFilters(fromRefresh) {
    const framework = $("filter-framework").value;
    const status = $("filter-status").value;
    const pendingOnly = $("filter-pending").checked;
    const text = $("filter-text").value.trim().toLowerCase();
    const keep = state.graph.nodes.filter(
      (n) =>
        (!framework || (n.framework || "(none)") === framework) &&
        (!status || n.status === status) &&
        (!pendingOnly || isPending(n)) &&
        (!text || n.key.toLowerCase().includes(text))
    );
    state.shown = new Set(keep.map((n) => n.key));
    if (state.selected != null && !state.shown.has(state.selected)) closePanel();
    state.grouped = keep.length >= GROUP_MIN;
    const { units, unitOf } = state.grouped ? groupUnits(keep) : { units: keep.map((n) => ({ id: n.key, node: n })) };
    const index = new Map(units.map((u, i) => [u.id, i]));
    const at = unitOf ? (key) => index.get(unitOf.get(key)) : (key) => index.get(key);
    const edges = [];
    const seen = new Set();
    for (const n of keep) {
      const c = at(n.key);
      for (const d of n.deps) {
        const p = state.shown.has(d) ? at(d) : undefined;
        if (p === undefined || p === c || seen.has(p * units.length + c)) continue;
        seen.add(p * units.length + c); // folders: one edge however many assets it stands for
        edges.push([p, c]);
      }
    }
    const structure = units.map((u) => u.id).join("\n") + "\n|" + edges.join(";");
    state.units = units;
    state.index = index;
    showFolderBar();
    const empty = $("empty");
    empty.hidden = keep.length > 0;
    empty.textContent = state.graph.nodes.length
      ? "No asset matches these filters."
      : "No assets in this store yet: run a pipeline with an insync adapter, or register assets.";
    if (structure !== state.structure) {
      state.structure = structure;
      state.edges = edges;
      relayout(fromRefresh === true && state.layout !== null && !state.autoFit);
    } else {
      draw(true); // same graph, new labels: keep positions and the user's view
    }
  }

  function clearFilters() {
    $("filter-framework").value = "";
    $("filter-status").value = "";
    $("filter-pending").checked = false;
    $("filter-text").value = "";
  }

  // ------------------------------------------------------------------------------ folders
  // Each asset is drawn as the outermost folder of its key that is closed, or as itself once every
  // folder of its key is open. A folder opens by itself when it is its parent's only entry (so a
  // catalog whose keys all start with "asset/" is not one lonely folder) or holds one entry only.
  function groupUnits(keep) {
    const entries = new Map([["", new Set()]]); // folder prefix -> names of what it holds
    const parent = new Map();
    for (const n of keep) {
      const parts = n.key.split("/");
      let prefix = "";
      for (let d = 0; d < parts.length; d++) {
        const child = d < parts.length - 1 ? prefix + parts[d] + "/" : n.key;
        entries.get(prefix).add(child);
        if (d === parts.length - 1) break;
        if (!entries.has(child)) {
          entries.set(child, new Set());
          parent.set(child, prefix);
        }
        prefix = child;
      }
    }
    const open = (folder) =>
      state.expanded.has(folder) || entries.get(parent.get(folder)).size === 1 || entries.get(folder).size === 1;
    const unitOf = new Map();
    const units = [];
    const folders = new Map();
    for (const n of keep) {
      const parts = n.key.split("/");
      let id = n.key;
      let prefix = "";
      for (let d = 0; d < parts.length - 1; d++) {
        prefix += parts[d] + "/";
        if (!open(prefix)) { id = "folder:" + prefix; break; }
      }
      unitOf.set(n.key, id);
      if (id === n.key) { units.push({ id, node: n }); continue; }
      let folder = folders.get(id);
      if (!folder) {
        folder = { id, folder: prefix, nodes: [] };
        folders.set(id, folder);
        units.push(folder);
      }
      folder.nodes.push(n);
    }
    for (const folder of folders.values()) {
      folder.counts = statusCounts(folder.nodes);
      folder.total = folder.nodes.length;
      delete folder.nodes;
    }
    return { units, unitOf };
  }

  function folderText(f) {
    return `${f.counts.FRESH} synced, ${f.counts.STALE} unsynced, ${f.counts.MISSING} never`;
  }

  function openFolder(prefix) {
    state.expanded.add(prefix);
    applyFilters();
  }

  function showFolderBar() {
    const bar = $("folders");
    const open = [...state.expanded].filter((f) => state.units.some((u) => (u.node ? u.node.key : u.folder).startsWith(f)));
    bar.hidden = !state.grouped;
    if (!state.grouped) return;
    const chips = open.sort().map((f) =>
      el("button", { type: "button", class: "folder-chip", "data-close": f, title: `Close ${f}` }, f + " ×")
    );
    if (chips.length) chips.push(el("button", { type: "button", class: "folder-chip all", "data-close": "" }, "Close all"));
    const note = `${state.shown.size} assets by key prefix: click a folder to open it.`;
    bar.replaceChildren(el("span", { class: "folders-note" }, note), ...chips);
  }

  // ------------------------------------------------------------------------------- layout
  let worker = null;
  let workerTimer = null;

  function relayout(keepView) {
    const id = ++state.layoutId;
    const n = state.units.length;
    const started = performance.now();
    setLayout(L.layered(n, state.edges));
    metrics.layoutMs = performance.now() - started;
    metrics.nodes = n;
    metrics.assets = state.shown.size;
    metrics.edges = state.edges.length;
    if (!keepView) {
      state.moved = false;
      state.focus = null;
      initialView();
    }
    draw(true);
    if (n > 1 && n <= L.DAGRE_MAX_NODES && !state.layout.wrapped) {
      svg.dataset.state = "refining";
      refineWithDagre(id, n, state.edges, keepView);
    } else {
      svg.dataset.state = "ready";
      layoutInfo(n > L.DAGRE_MAX_NODES ? `fast layered layout (over ${L.DAGRE_MAX_NODES} assets)` : n > 1 ? "fast layered layout" : "");
    }
    svg.dataset.grouped = state.grouped ? "folders" : "assets";
  }

  function refineWithDagre(id, n, edges, keepView) {
    stopWorker();
    worker = new Worker("static/layout-worker.js");
    worker.onmessage = (event) => {
      const { result, error, ms } = event.data;
      stopWorker();
      if (event.data.id !== id || id !== state.layoutId) return; // superseded by a newer filter
      if (error) {
        layoutInfo("dagre failed, showing the layered layout: " + error);
      } else {
        metrics.dagreMs = ms;
        setLayout(result);
        // A user who already moved around the first layout keeps their viewport.
        if (state.focus != null) centerOn(state.focus);
        else if (!keepView && !state.moved) initialView();
        draw(true);
        layoutInfo("");
      }
      svg.dataset.state = "ready";
    };
    worker.postMessage({ id, n, edges });
    workerTimer = setTimeout(() => {
      stopWorker();
      if (id === state.layoutId) {
        svg.dataset.state = "ready";
        layoutInfo("dagre took too long, showing the layered layout");
      }
    }, DAGRE_TIMEOUT_MS);
  }

  function stopWorker() {
    if (worker) worker.terminate();
    clearTimeout(workerTimer);
    worker = null;
  }

  function setLayout(layout) {
    state.layout = layout;
    state.edgeBoxes = layout.points.map((pts) => {
      let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
      for (const [x, y] of pts) {
        x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x); y1 = Math.max(y1, y);
      }
      return [x0, y0, x1, y1];
    });
    svg.dataset.layout = layout.engine;
  }

  function layoutInfo(text) {
    $("layout-info").textContent = text;
  }

  // ------------------------------------------------------------------------ view and draw
  function size() {
    const box = svg.getBoundingClientRect();
    return { w: Math.max(1, box.width), h: Math.max(1, box.height) };
  }

  function fitZoom() {
    const { w, h } = size();
    const lay = state.layout;
    return Math.min(1, w / Math.max(1, lay.width), h / Math.max(1, lay.height));
  }

  function fit() {
    const { w, h } = size();
    const k = Math.max(0.01, fitZoom());
    state.t = { k, x: (w - state.layout.width * k) / 2, y: Math.max(0, (h - state.layout.height * k) / 2) };
    draw();
  }

  function initialView() {
    // Big graphs open readable at their top-left corner rather than as an unreadable speck.
    state.autoFit = fitZoom() >= DETAIL_MIN_ZOOM;
    if (state.autoFit) fit();
    else state.t = { k: 0.8, x: 0, y: 0 };
  }

  function resized() {
    if (state.autoFit && state.layout) fit();
    else redraw();
  }

  // The panel opened or closed: the graph keeps its scale (labels never shrink); a fitted drawing
  // is centred again in the area left, and the selected asset is moved into view.
  function panelToggled() {
    if (!state.layout) return;
    if (state.autoFit) {
      const { w } = size();
      state.t = { ...state.t, x: (w - state.layout.width * state.t.k) / 2 };
    }
    if (state.selected != null) reveal(state.selected);
    draw(true);
  }

  // Pans as little as needed to show the unit of `key` whole, with a margin.
  function reveal(key) {
    const i = state.index.get(key);
    if (i == null) return;
    const { w, h } = size();
    const { k, x, y } = state.t;
    const pad = 16;
    const shift = (centre, half, room) => {
      const lo = centre - half * k;
      const hi = centre + half * k;
      if (hi - lo > room - 2 * pad || lo < pad) return pad - lo;
      return hi > room - pad ? room - pad - hi : 0;
    };
    state.t = {
      k,
      x: x + shift(x + state.layout.xs[i] * k, L.NODE_W / 2, w),
      y: y + shift(y + state.layout.ys[i] * k, L.NODE_H / 2, h),
    };
  }

  function zoomAt(factor, cx, cy) {
    state.autoFit = false;
    state.moved = true;
    state.focus = null;
    const t = state.t;
    const k = Math.min(2, Math.max(0.01, t.k * factor));
    state.t = { k, x: cx - ((cx - t.x) * k) / t.k, y: cy - ((cy - t.y) * k) / t.k };
    draw();
  }

  // Draws only what intersects the window (plus a margin, so small pans need no redraw).
  function draw(force) {
    const { k, x, y } = state.t;
    viewport.setAttribute("transform", `translate(${x},${y}) scale(${k})`);
    if (!state.layout) return;
    const { w, h } = size();
    const view = [-x / k, -y / k, (w - x) / k, (h - y) / k];
    const detail = k >= DETAIL_MIN_ZOOM;
    const d = state.drawn;
    if (!force && d && d.detail === detail && d.k === k &&
        view[0] >= d.rect[0] && view[1] >= d.rect[1] && view[2] <= d.rect[2] && view[3] <= d.rect[3]) {
      return;
    }
    const started = performance.now();
    const mx = (view[2] - view[0]) * 0.5;
    const my = (view[3] - view[1]) * 0.5;
    const rect = [view[0] - mx, view[1] - my, view[2] + mx, view[3] + my];
    state.drawn = { rect, detail, k };
    const { xs, ys, points } = state.layout;
    const hw = L.NODE_W / 2;
    const hh = L.NODE_H / 2;
    const nodes = [];
    for (let i = 0; i < state.units.length; i++) {
      if (xs[i] + hw < rect[0] || xs[i] - hw > rect[2] || ys[i] + hh < rect[1] || ys[i] - hh > rect[3]) continue;
      const unit = state.units[i];
      const [x0, y0] = [xs[i] - hw, ys[i] - hh];
      if (unit.node) nodes.push(detail ? nodeSVG(unit.node, x0, y0) : boxSVG(unit.node, x0, y0));
      else nodes.push(detail ? folderSVG(unit, x0, y0) : folderBoxSVG(unit, x0, y0));
    }
    const selected = state.selected == null ? -1 : state.index.get(state.selected);
    const edges = [];
    const plain = []; // far zoom: every edge in one path element, thousands of elements less to paint
    state.edgeBoxes.forEach((b, e) => {
      if (b[2] < rect[0] || b[0] > rect[2] || b[3] < rect[1] || b[1] > rect[3]) return;
      const [p, c] = state.edges[e];
      const hl = p === selected || c === selected;
      if (!detail && !hl) plain.push(pathOf(points[e]));
      else edges.push(`<path class="${hl ? "edge hl" : "edge"}" d="${pathOf(points[e])}"${detail ? ' marker-end="url(#arrow)"' : ""}></path>`);
    });
    if (plain.length) edges.unshift(`<path class="edge all" d="${plain.join(" ")}"></path>`);
    edgeLayer.innerHTML = edges.join("");
    nodeLayer.innerHTML = nodes.join("");
    svg.dataset.detail = detail ? "full" : "boxes";
    metrics.drawnNodes = nodes.length;
    metrics.drawnEdges = edges.length + plain.length - (plain.length ? 1 : 0);
    metrics.drawMs = performance.now() - started;
  }

  function pathOf(pts) {
    if (pts.length === 2) {
      const [[x0, y0], [x1, y1]] = pts;
      const c = Math.max(30, (x1 - x0) / 2);
      return `M${x0},${y0} C${x0 + c},${y0} ${x1 - c},${y1} ${x1},${y1}`;
    }
    return "M" + pts.map(([px, py]) => `${px},${py}`).join(" L");
  }

  // Long keys keep their tail: `…/marts/orders_by_customer` says more than `analytics/sch…`.
  function nodeSVG(n, x, y) {
    const pending = isPending(n);
    const sel = (n.key === state.selected ? " selected" : "") + (pending ? " pending" : "");
    const fw = n.framework || n.kind;
    const pillW = n.label.length * 6.6 + 16;
    const second = n.partitions
      ? `<tspan class="parts">${esc(synced(n.partitions))}</tspan>`
      : `<tspan class="data">data ${esc(short(n.data_version, 14))}</tspan>`;
    const title =
      (n.partitions ? `${n.label}, ${synced(n.partitions)}` : n.label) +
      (pending ? `, ${plural(n.pending, "upstream change")} pending` : "");
    const fwW = fw.length * 6.6 + 14;
    const badgeX = 28 + pillW + fwW;
    return (
      `<g class="node st-${n.status}${sel}" data-key="${esc(n.key)}" transform="translate(${x},${y})" tabindex="0" role="button">` +
      `<title>${esc(n.key)} (${esc(title)})</title>` +
      `<rect class="box" width="${L.NODE_W}" height="${L.NODE_H}" rx="8"></rect>` +
      `<rect class="bar" width="6" height="${L.NODE_H}" rx="3"></rect>` +
      `<text class="key" x="16" y="22">${esc(n.key.length > 32 ? "…" + n.key.slice(-31) : n.key)}</text>` +
      `<rect class="pill" x="16" y="31" width="${pillW}" height="18" rx="9"></rect>` +
      `<text class="status" x="${16 + pillW / 2}" y="44" text-anchor="middle">${esc(n.label)}</text>` +
      `<rect class="fw-badge fw-${esc(fw)}" x="${22 + pillW}" y="31" width="${fwW}" height="18" rx="4"></rect>` +
      `<text class="fw" x="${22 + pillW + fwW / 2}" y="44" text-anchor="middle">${esc(fw)}</text>` +
      (pending
        ? `<rect class="pending-badge" x="${badgeX}" y="31" width="60" height="18" rx="9"></rect>` +
          `<text class="pending-text" x="${badgeX + 30}" y="44" text-anchor="middle">pending</text>`
        : "") +
      `<text class="versions" x="16" y="67"><tspan class="code">code ${esc(short(n.code_version, 14))}</tspan>` +
      `<tspan class="sep"> · </tspan>${second}</text>` +
      `</g>`
    );
  }

  // No <title> here: at far zoom thousands of them double the DOM; hovering names the asset in the footer.
  function boxSVG(n, x, y) {
    const sel = (n.key === state.selected ? " selected" : "") + (isPending(n) ? " pending" : "");
    return (
      `<rect class="node-box st-${n.status}${sel}" data-key="${esc(n.key)}" x="${x}" y="${y}" ` +
      `width="${L.NODE_W}" height="${L.NODE_H}" rx="8"></rect>`
    );
  }

  // A folder: its prefix, how many assets it holds, a bar of their statuses and the counts.
  function folderSVG(f, x, y) {
    const c = f.counts;
    const label = f.folder.length > 24 ? "…" + f.folder.slice(-23) : f.folder;
    const barW = L.NODE_W - 32;
    let left = 16;
    const bar = [["FRESH", c.FRESH], ["STALE", c.STALE], ["MISSING", c.MISSING]]
      .filter(([, count]) => count)
      .map(([status, count]) => {
        const width = (barW * count) / f.total;
        const part = `<rect class="seg st-${status}" x="${left}" y="30" width="${width}" height="9"></rect>`;
        left += width;
        return part;
      })
      .join("");
    const pending = c.pending ? `${c.pending} synced with a change pending` : "";
    return (
      `<g class="folder${c.pending ? " pending" : ""}" data-folder="${esc(f.folder)}" transform="translate(${x},${y})" tabindex="0" role="button">` +
      `<title>${esc(f.folder)} ${f.total}: ${esc(folderText(f))}${c.pending ? `, ${c.pending} pending` : ""} (click to open)</title>` +
      `<rect class="tab" x="10" y="-7" width="64" height="14" rx="4"></rect>` +
      `<rect class="box" width="${L.NODE_W}" height="${L.NODE_H}" rx="8"></rect>` +
      `<text class="key" x="16" y="21">${esc(label)}</text>` +
      `<text class="total" x="${L.NODE_W - 14}" y="21" text-anchor="end">${f.total}</text>` +
      bar +
      `<text class="folder-counts" x="16" y="55">${esc(folderText(f))}</text>` +
      (pending ? `<text class="folder-pending" x="16" y="70">${esc(pending)}</text>` : "") +
      `</g>`
    );
  }

  function folderBoxSVG(f, x, y) {
    return (
      `<rect class="folder-box${f.counts.pending ? " pending" : ""}" data-folder="${esc(f.folder)}" x="${x}" y="${y}" ` +
      `width="${L.NODE_W}" height="${L.NODE_H}" rx="8"></rect>`
    );
  }

  function centerOn(key) {
    const i = state.index.get(key);
    if (i == null) return;
    const { w, h } = size();
    const k = Math.max(state.t.k, DETAIL_MIN_ZOOM);
    state.autoFit = false;
    state.focus = key;
    state.t = { k, x: w / 2 - state.layout.xs[i] * k, y: h / 2 - state.layout.ys[i] * k };
    draw(true);
  }

  // ------------------------------------------------------------------------- side panel
  async function select(key) {
    if (state.selected !== key) state.partition = null;
    state.selected = key;
    const opening = $("panel").hidden;
    $("panel").hidden = false;
    if (opening) panelToggled();
    else draw(true);
    await showAsset(key);
  }

  function closePanel() {
    state.selected = null;
    state.partition = null;
    if ($("panel").hidden) return;
    $("panel").hidden = true;
    panelToggled();
  }

  // Shows `key` whatever the view: filters that hide it are cleared, folders holding it opened.
  function goTo(key) {
    if (!state.byKey.has(key)) return;
    if (!state.shown.has(key)) clearFilters();
    if (!state.index.has(key)) {
      const parts = key.split("/");
      for (let d = 1; d < parts.length; d++) state.expanded.add(parts.slice(0, d).join("/") + "/");
      applyFilters();
    }
    select(key);
    centerOn(key);
  }

  async function showAsset(key) {
    let a;
    try {
      a = await getJSON(assetURL(key));
    } catch (error) {
      if (state.selected === key) $("panel-body").replaceChildren(el("p", { class: "error" }, error.message));
      return;
    }
    if (state.selected !== key) return; // the user clicked another asset meanwhile
    const deps = a.deps.length
      ? a.deps.flatMap((d, i) => [i ? ", " : null, el("a", { href: "#", class: "dep", "data-key": d }, d)])
      : ["none"];
    const previous = $("partition-detail"); // kept across a refresh, so it does not flicker
    $("panel-body").replaceChildren(el("div", { class: "asset" },
      el("h2", { class: "panel-key" }, a.key),
      el(
        "div",
        { class: "badges" },
        el("span", { class: `badge status st-${a.status}` }, a.label),
        el("span", { class: "badge fw" }, a.framework || "no framework"),
        el("span", { class: "badge kind" }, a.kind)
      ),
      el(
        "dl",
        {},
        el("dt", {}, "Code version"),
        el("dd", { class: "mono code-version" }, a.code_version || "unknown"),
        el("dt", {}, "Data version"),
        el("dd", { class: "mono data-version" }, a.partitions ? "per partition" : a.data_version),
        parameterRows(a.parameters),
        el("dt", {}, "Depends on"),
        el("dd", { class: "deps" }, deps)
      ),
      el("h3", {}, "Why"),
      explainList(a.explain, a),
      a.partitions ? partitionsSection(a) : null,
      el("h3", {}, "Cause tree"),
      causeTree(a.causes),
      el("h3", {}, "History ", el("small", {}, `(newest first, up to ${a.history_limit})`)),
      historyTable(a.history)
    )); // one wrapper element: `el` leaves out the sections an asset does not have
    const open = state.partition;
    if (a.partitions && open && open.key === key) {
      if (previous) $("partition-detail").replaceWith(previous);
      markPartition();
      await showPartition(key, open.partition);
    }
  }

  function parameterRows(parameters) {
    const names = Object.keys(parameters || {});
    if (!names.length) return null;
    return [
      el("dt", {}, "Parameters"),
      el(
        "dd",
        { class: "mono parameters" },
        names.map((name) => el("div", { title: parameters[name] }, `${name} = ${short(parameters[name], 18)}`))
      ),
    ];
  }

  // Each WHY line names assets (a root cause's, a pending ancestor): those names become links.
  function explainList(lines, status) {
    const named = new Set();
    const add = (cause) => {
      named.add(cause.key);
      if (cause.dependency) named.add(cause.dependency);
    };
    status.root_causes.forEach(add);
    for (const u of status.upstream) named.add(u.key);
    named.delete(status.key);
    const keys = [...named].filter((k) => state.byKey.has(k)).sort((a, b) => b.length - a.length);
    return el("ul", { class: "explain" }, lines.map((line) => el("li", {}, linked(line.trim(), keys))));
  }

  // `text` as strings and links: each key of `keys` (longest first) where it stands as a whole name.
  function linked(text, keys) {
    const parts = [];
    let rest = text;
    for (;;) {
      let best = null;
      for (const key of keys) {
        let at = rest.indexOf(key);
        while (at >= 0 && !wholeName(rest, at, key.length)) at = rest.indexOf(key, at + 1);
        if (at >= 0 && (best === null || at < best.at)) best = { at, key };
      }
      if (best === null) break;
      parts.push(rest.slice(0, best.at), el("a", { href: "#", class: "asset-link", "data-key": best.key }, best.key));
      rest = rest.slice(best.at + best.key.length);
    }
    parts.push(rest);
    return parts.filter((part) => part !== "");
  }

  function wholeName(text, at, length) {
    const before = at === 0 ? " " : text[at - 1];
    const after = at + length === text.length ? " " : text[at + length];
    return /[\s(]/.test(before) && /[\s)\[,:]/.test(after);
  }

  function causeTree(causes) {
    return causes.length ? el("ul", { class: "cause-tree" }, causes.map(causeNode)) : el("p", {}, "No causes.");
  }

  function causeNode(c) {
    return el(
      "li",
      {},
      el("span", { class: `cat cat-${c.category}` }, c.category),
      " ",
      el("span", { class: "text" }, c.text),
      c.children.length ? el("ul", {}, c.children.map(causeNode)) : null
    );
  }

  // `ofPartition`: every event is of the partition shown, so no partition column.
  function historyTable(events, ofPartition) {
    if (!events.length) return el("p", {}, "No events yet.");
    const partitioned = !ofPartition && events.some((e) => e.partition);
    const withParameters = events.some((e) => Object.keys(e.parameters || {}).length);
    const heads = ["Time (UTC)", "Kind", partitioned ? "Partition" : null, "Run id", "Framework", "Code version", "Data version"];
    if (withParameters) heads.push("Parameters");
    const rows = events.map((e) => {
      const parameters = Object.entries(e.parameters || {});
      return el(
        "tr",
        { class: "event" },
        el("td", {}, fmtTime(e.timestamp)),
        el("td", {}, e.kind),
        partitioned ? el("td", { class: "partition-cell" }, e.partition || "—") : null,
        el("td", { class: "run-id" }, e.run_id || "—"),
        el("td", {}, e.framework || "—"),
        el("td", { title: e.code_version || "" }, short(e.code_version, 14)),
        el("td", { title: e.data_version }, short(e.data_version, 14) + (e.user_provided ? " (user)" : "")),
        withParameters
          ? el("td", { class: "parameter-names", title: parameters.map(([n, f]) => `${n}=${f}`).join("\n") }, parameters.map(([n]) => n).join(", ") || "—")
          : null
      );
    });
    return el(
      "div",
      { class: "history-wrap" },
      el(
        "table",
        { class: "history" },
        el("thead", {}, el("tr", {}, heads.filter((h) => h).map((h) => el("th", {}, h)))),
        el("tbody", {}, rows)
      )
    );
  }

  // The rollup's Unsynced and never materialized partitions, each a button that explains it.
  function partitionsSection(a) {
    const p = a.partitions;
    const groups = [
      ["Unsynced", "STALE", p.unsynced],
      ["Never materialized", "MISSING", p.missing],
    ].filter(([, , keys]) => keys.length);
    return el(
      "section",
      { class: "partitions" },
      el("h3", {}, "Partitions"),
      el(
        "p",
        { class: "partition-counts" },
        `${synced(p)}, ${p.unsynced.length} unsynced, ${p.missing.length} never materialized`
      ),
      groups.map(([title, status, keys]) =>
        el(
          "div",
          { class: `partition-group group-${status}` },
          el("h4", {}, `${title} (${keys.length})`),
          el(
            "div",
            { class: "partition-list" },
            keys.slice(0, PARTITIONS_LISTED).map((k) =>
              el("button", { type: "button", class: `partition st-${status}`, "data-partition": k }, k)
            ),
            keys.length > PARTITIONS_LISTED ? el("span", { class: "more" }, `… ${keys.length - PARTITIONS_LISTED} more`) : null
          )
        )
      ),
      el(
        "form",
        { class: "partition-open" },
        el("input", { type: "search", name: "partition", placeholder: "Partition key, e.g. " + (p.unsynced[0] || p.missing[0] || "2026-12-01"), "aria-label": "Partition key" }),
        el("button", { type: "submit" }, "Explain")
      ),
      el("div", { id: "partition-detail" })
    );
  }

  function markPartition() {
    const open = state.partition;
    for (const button of $("panel-body").querySelectorAll("button.partition")) {
      button.classList.toggle("active", open != null && button.dataset.partition === open.partition);
    }
  }

  async function showPartition(key, partition) {
    state.partition = { key, partition };
    markPartition();
    const current = () => state.selected === key && state.partition && state.partition.partition === partition;
    let p;
    try {
      p = await getJSON(partitionURL(key, partition));
    } catch (error) {
      if (current() && $("partition-detail")) {
        $("partition-detail").replaceChildren(el("p", { class: "error" }, error.message));
      }
      return;
    }
    if (!current() || !$("partition-detail")) return; // another partition or asset was opened meanwhile
    $("partition-detail").replaceChildren(
      el(
        "div",
        { class: "partition-head" },
        el("h4", { class: "partition-label" }, `${p.key}[${p.partition}]`),
        el("span", { class: `badge status st-${p.status}` }, p.label)
      ),
      el(
        "dl",
        {},
        el("dt", {}, "Data version"),
        el("dd", { class: "mono data-version" }, p.data_version),
        parameterRows(p.parameters)
      ),
      explainList(p.explain, p),
      causeTree(p.causes),
      el("h4", {}, "History of this partition"),
      historyTable(p.history, true)
    );
  }

  // ------------------------------------------------------------------------ live refresh
  function setLive(error) {
    const live = $("live");
    live.className = error ? "error" : "ok";
    const events = state.cursor ? state.cursor.split("-")[0] : "?";
    live.textContent = error
      ? `store unreachable (${error}); retrying`
      : `live · ${state.graph.nodes.length} assets · last event #${events} · checked ${new Date().toLocaleTimeString()}`;
  }

  async function poll() {
    if (document.hidden) return;
    try {
      const { cursor } = await getJSON("api/changes");
      metrics.polls += 1;
      if (cursor !== state.cursor) {
        await loadGraph();
        if (state.selected) {
          if (state.byKey.has(state.selected)) await showAsset(state.selected);
          else closePanel();
        }
      } else {
        setLive();
      }
    } catch (error) {
      setLive(error.message);
    }
  }

  // --------------------------------------------------------------------------- wiring
  const activate = (target) => {
    if (target.dataset.folder != null) openFolder(target.dataset.folder);
    else select(target.dataset.key);
  };
  nodeLayer.addEventListener("click", (event) => {
    const target = event.target.closest("[data-key], [data-folder]");
    if (target) activate(target);
  });
  nodeLayer.addEventListener("keydown", (event) => {
    const target = event.target.closest("[data-key], [data-folder]");
    if (target && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault();
      activate(target);
    }
  });
  nodeLayer.addEventListener("mouseover", (event) => {
    const target = event.target.closest(".node-box, .folder-box");
    const n = target && state.byKey.get(target.dataset.key);
    const f = target && target.dataset.folder != null && state.units[state.index.get("folder:" + target.dataset.folder)];
    $("hover").textContent = n
      ? `${n.key}: ${n.label}` + (n.partitions ? `, ${synced(n.partitions)}` : "") + (isPending(n) ? ", pending" : "")
      : f ? `${f.folder} ${f.total}: ${folderText(f)}` : "";
  });
  $("folders").addEventListener("click", (event) => {
    const chip = event.target.closest("[data-close]");
    if (!chip) return;
    const prefix = chip.dataset.close;
    for (const f of [...state.expanded]) if (f.startsWith(prefix)) state.expanded.delete(f);
    applyFilters();
  });
  $("panel-body").addEventListener("click", (event) => {
    const partition = event.target.closest("button.partition");
    if (partition && state.selected) {
      showPartition(state.selected, partition.dataset.partition);
      return;
    }
    const link = event.target.closest("a[data-key]");
    if (!link) return;
    event.preventDefault();
    goTo(link.dataset.key);
  });
  $("panel-body").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = event.target.elements.partition.value.trim();
    if (key && state.selected) showPartition(state.selected, key);
  });
  $("panel-close").addEventListener("click", closePanel);
  for (const id of ["filter-framework", "filter-status", "filter-pending"]) $(id).addEventListener("change", applyFilters);
  let typing = null;
  $("filter-text").addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(applyFilters, 150);
  });
  $("counts").addEventListener("click", (event) => {
    if (event.target.closest("[data-pending]")) {
      $("filter-pending").checked = !$("filter-pending").checked;
      applyFilters();
      return;
    }
    const count = event.target.closest("[data-status]");
    if (!count) return;
    const select = $("filter-status");
    select.value = select.value === count.dataset.status ? "" : count.dataset.status;
    applyFilters();
  });
  $("fit").addEventListener("click", () => { state.autoFit = true; state.focus = null; fit(); });
  $("zoom-in").addEventListener("click", () => { const { w, h } = size(); zoomAt(1.25, w / 2, h / 2); });
  $("zoom-out").addEventListener("click", () => { const { w, h } = size(); zoomAt(0.8, w / 2, h / 2); });

  let frame = 0;
  const redraw = () => {
    if (!frame) frame = requestAnimationFrame(() => { frame = 0; draw(); });
  };
  svg.addEventListener("wheel", (event) => {
    event.preventDefault();
    state.autoFit = false;
    state.moved = true;
    state.focus = null;
    const box = svg.getBoundingClientRect();
    const factor = Math.exp(-event.deltaY * (event.ctrlKey ? 0.01 : 0.0015));
    const t = state.t;
    const k = Math.min(2, Math.max(0.01, t.k * factor));
    const cx = event.clientX - box.left;
    const cy = event.clientY - box.top;
    state.t = { k, x: cx - ((cx - t.x) * k) / t.k, y: cy - ((cy - t.y) * k) / t.k };
    viewport.setAttribute("transform", `translate(${state.t.x},${state.t.y}) scale(${k})`);
    redraw();
  }, { passive: false });
  let drag = null;
  svg.addEventListener("pointerdown", (event) => {
    if (event.target.closest("[data-key], [data-folder]")) return;
    state.autoFit = false;
    state.moved = true;
    state.focus = null;
    drag = { x: event.clientX - state.t.x, y: event.clientY - state.t.y };
    svg.setPointerCapture(event.pointerId);
    svg.classList.add("dragging");
  });
  svg.addEventListener("pointermove", (event) => {
    if (!drag) return;
    state.t = { ...state.t, x: event.clientX - drag.x, y: event.clientY - drag.y };
    viewport.setAttribute("transform", `translate(${state.t.x},${state.t.y}) scale(${state.t.k})`);
    redraw();
  });
  const endDrag = () => { drag = null; svg.classList.remove("dragging"); };
  svg.addEventListener("pointerup", endDrag);
  svg.addEventListener("pointercancel", endDrag);
  window.addEventListener("resize", resized);

  loadGraph()
    .then(() => { metrics.readyMs = performance.now(); })
    .catch((error) => setLive(error.message))
    .finally(() => setInterval(poll, POLL_MS));
})();
