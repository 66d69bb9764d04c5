/* insync asset catalog: runs dagre off the main thread so a slow layout never freezes the page. */
"use strict";
importScripts("layout.js", "vendor/dagre.min.js");

self.onmessage = (event) => {
  const { id, n, edges } = event.data;
  const started = performance.now();
  try {
    const result = InsyncLayout.withDagre(dagre, n, edges);
    self.postMessage({ id, result, ms: performance.now() - started });
  } catch (error) {
    self.postMessage({ id, error: String(error) });
  }
};
