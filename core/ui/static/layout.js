/* insync asset catalog: graph layouts, left to right. Loaded by the page and by the layout worker.
 *
 * Two layouts over the same input (node count n, edges as [parentIndex, childIndex]):
 * - layered(): a linear-time layered layout (longest-path ranks, barycenter ordering, packed
 *   coordinates). It draws 5,000 assets in milliseconds, so the page is never blank or frozen.
 * - withDagre(): the vendored dagre (network simplex + crossing minimisation + edge routing),
 *   nicer but super-linear: measured 2 s for 500 and 43 s for 1,000 random assets in Node, so the
 *   page runs it in a Web Worker and only for graphs up to DAGRE_MAX_NODES whose layered layout
 *   did not have to wrap a layer (dagre cannot wrap, so it would draw a needle-thin column).
 * Both return node centres (xs, ys), edge polylines (points) and the drawing size.
 */
"use strict";
var InsyncLayout = (function () {
  const NODE_W = 250;
  const NODE_H = 78;
  const RANK_SEP = 90;
  const NODE_SEP = 18;
  const MARGIN = 30;
  const DAGRE_MAX_NODES = 400;
  const SWEEPS = 6;

  function adjacency(n, edges) {
    const parents = Array.from({ length: n }, () => []);
    const children = Array.from({ length: n }, () => []);
    for (const [p, c] of edges) {
      parents[c].push(p);
      children[p].push(c);
    }
    return { parents, children };
  }

  // Kahn's algorithm with a stack: a depth-first flavour keeps related assets next to each other.
  function topoOrder(n, parents, children) {
    const indeg = parents.map((ps) => ps.length);
    const stack = [];
    for (let i = n - 1; i >= 0; i--) if (indeg[i] === 0) stack.push(i);
    const order = [];
    const seen = new Uint8Array(n);
    while (order.length < n) {
      if (!stack.length) {
        // The store refuses cycles; if one slipped through, break it rather than loop forever.
        for (let i = 0; i < n; i++) if (!seen[i]) { stack.push(i); break; }
      }
      const v = stack.pop();
      if (seen[v]) continue;
      seen[v] = 1;
      order.push(v);
      const cs = children[v];
      for (let j = cs.length - 1; j >= 0; j--) if (--indeg[cs[j]] === 0) stack.push(cs[j]);
    }
    return order;
  }

  function layered(n, edges) {
    const { parents, children } = adjacency(n, edges);
    const order = topoOrder(n, parents, children);
    const rank = new Int32Array(n);
    for (const v of order) for (const p of parents[v]) rank[v] = Math.max(rank[v], rank[p] + 1);
    // Sources sit just left of their first consumer instead of all piling up in column 0.
    for (const v of order) {
      if (parents[v].length || !children[v].length) continue;
      let r = Infinity;
      for (const c of children[v]) r = Math.min(r, rank[c]);
      rank[v] = r - 1;
    }
    let ranks = 0;
    for (let i = 0; i < n; i++) ranks = Math.max(ranks, rank[i] + 1);
    const layers = Array.from({ length: ranks }, () => []);
    for (const v of order) layers[rank[v]].push(v);

    // Barycenter sweeps on positions normalised to [0, 1], so wide and narrow layers compare.
    const pos = new Float64Array(n);
    const renumber = (layer) => layer.forEach((v, i) => { pos[v] = (i + 0.5) / layer.length; });
    layers.forEach(renumber);
    const key = new Float64Array(n);
    const sweep = (layer, nbrs) => {
      for (const v of layer) {
        const ns = nbrs[v];
        if (!ns.length) { key[v] = pos[v]; continue; }
        let s = 0;
        for (const u of ns) s += pos[u];
        key[v] = s / ns.length;
      }
      layer.sort((a, b) => key[a] - key[b] || pos[a] - pos[b]);
      renumber(layer);
    };
    for (let it = 0; it < SWEEPS; it++) {
      for (let r = 1; r < ranks; r++) sweep(layers[r], parents);
      for (let r = ranks - 2; r >= 0; r--) sweep(layers[r], children);
    }

    // Coordinates: each node as near its parents' mean height as the packing allows. A layer
    // taller than `rows` wraps into sub-columns: a random 5,000-asset graph has layers of a
    // thousand assets, which would otherwise draw as one needle-thin column.
    const pitch = NODE_H + NODE_SEP;
    const colW = NODE_W + RANK_SEP;
    const rows = Math.max(30, Math.ceil(Math.sqrt((n * colW) / pitch)));
    const xs = new Float64Array(n);
    const ys = new Float64Array(n);
    const pack = (layer, want) => {
      let prev = -Infinity;
      for (const v of layer) {
        ys[v] = Math.max(prev + pitch, want(v));
        prev = ys[v];
      }
    };
    const mean = (ns) => { let s = 0; for (const u of ns) s += ys[u]; return s / ns.length; };
    const wrapped = layers.map((layer) => layer.length > rows);
    let column = 0;
    layers.forEach((layer, r) => {
      if (wrapped[r]) {
        layer.forEach((v, i) => {
          xs[v] = MARGIN + NODE_W / 2 + (column + Math.floor(i / rows)) * colW;
          ys[v] = MARGIN + NODE_H / 2 + (i % rows) * pitch;
        });
        column += Math.ceil(layer.length / rows);
        return;
      }
      for (const v of layer) xs[v] = MARGIN + NODE_W / 2 + column * colW;
      column += 1;
      pack(layer, (v) => (parents[v].length ? mean(parents[v]) : MARGIN + NODE_H / 2));
    });
    // Second pass right to left: parentless nodes move level with the assets they feed.
    for (let r = ranks - 1; r >= 0; r--) {
      if (wrapped[r]) continue;
      pack(layers[r], (v) => (!parents[v].length && children[v].length ? mean(children[v]) : ys[v]));
    }
    let width = 0;
    let height = 0;
    for (let i = 0; i < n; i++) {
      width = Math.max(width, xs[i] + NODE_W / 2 + MARGIN);
      height = Math.max(height, ys[i] + NODE_H / 2 + MARGIN);
    }
    const points = edges.map(([p, c]) => [[xs[p] + NODE_W / 2, ys[p]], [xs[c] - NODE_W / 2, ys[c]]]);
    return { engine: "layered", xs, ys, points, width, height, wrapped: wrapped.some(Boolean) };
  }

  function withDagre(dagre, n, edges) {
    const g = new dagre.graphlib.Graph({ multigraph: false });
    g.setGraph({ rankdir: "LR", nodesep: NODE_SEP, ranksep: RANK_SEP, marginx: MARGIN, marginy: MARGIN });
    g.setDefaultEdgeLabel(() => ({}));
    for (let i = 0; i < n; i++) g.setNode(String(i), { width: NODE_W, height: NODE_H });
    for (const [p, c] of edges) g.setEdge(String(p), String(c));
    dagre.layout(g);
    const xs = new Float64Array(n);
    const ys = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const node = g.node(String(i));
      xs[i] = node.x;
      ys[i] = node.y;
    }
    const points = edges.map(([p, c]) => g.edge(String(p), String(c)).points.map((q) => [q.x, q.y]));
    const size = g.graph();
    return { engine: "dagre", xs, ys, points, width: size.width, height: size.height };
  }

  return { NODE_W, NODE_H, DAGRE_MAX_NODES, layered, withDagre };
})();
