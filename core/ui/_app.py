"""The Starlette app behind `insync ui`: one static page and a few read-only JSON endpoints.

Every endpoint is a plain `def`: Starlette runs it in its thread pool, so the store's blocking
SQLAlchemy reads never stall the event loop. The page polls `/api/changes` (two cheap queries)
and refetches `/api/graph` only when the store moved on. A partitioned asset's node carries its
partition counts; its panel lists the keys of the partitions that are not Synced, and
`/api/assets/{key}/partitions/{partition}` explains one of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .. import (
    AssetKey,
    AssetSpec,
    AssetStatus,
    EventStore,
    InsyncError,
    InvalidAssetKey,
    InvalidPartitionKey,
    PartitionCounts,
    UnknownAssetError,
)
from ..cli import event_to_json, explain, status_to_json

__all__ = ["STATIC_DIR", "create_app"]

STATIC_DIR = Path(__file__).parent / "static"
HISTORY_LIMIT = 50


def create_app(store: EventStore) -> Starlette:
    """A read-only asset catalog over `store` (the caller owns and closes the store).

    Routes: `/` (the page), `/static/...`, `/api/graph`, `/api/assets/{key}`,
    `/api/assets/{key}/partitions/{partition}`, `/api/changes`.
    """

    def index(_: Request) -> Response:
        # no-cache: a new insync version's page must not run against a stale cached copy.
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    def graph(_: Request) -> Response:
        # Marker first: an event landing while we read shows up as a change on the next poll.
        last_event, revision = store.last_event_id(), store.definitions_revision()
        specs = store.definitions()
        statuses = store.statuses(upstream=False)
        return JSONResponse(
            {
                "cursor": f"{last_event}-{revision}",
                "nodes": [_node(spec, statuses[key]) for key, spec in sorted(specs.items())],
                "frameworks": sorted({s.framework for s in specs.values() if s.framework}),
            }
        )

    def asset(request: Request) -> Response:
        return asset_view(request.path_params["key"])

    def asset_view(raw: str) -> Response:
        try:
            key = AssetKey.parse(raw)
            status = store.status(key)
            spec = store.definitions()[key]
        except (UnknownAssetError, InvalidAssetKey, KeyError) as exc:
            return JSONResponse({"error": f"no asset {raw!r} in this store: {exc}"}, status_code=404)
        body = status_to_json(status)
        body["explain"] = explain(status)
        body["deps"] = [str(d) for d in spec.deps]
        body["metadata"] = spec.metadata
        body["history"] = [event_to_json(e) for e in store.history(key, limit=HISTORY_LIMIT)]
        body["history_limit"] = HISTORY_LIMIT
        return JSONResponse(body)

    def partition(request: Request) -> Response:
        raw_key, raw_partition = _split_partition_path(request)
        try:
            key = AssetKey.parse(raw_key)
            status = store.status(key, partition=raw_partition)
        except (UnknownAssetError, InvalidAssetKey, InvalidPartitionKey) as exc:
            # `a/partitions/b` may also be an asset whose key has a part named "partitions".
            whole = f"{raw_key}/partitions/{raw_partition}"
            if whole in {str(k) for k in store.definitions()}:
                return asset_view(whole)
            if isinstance(exc, InvalidPartitionKey):
                return JSONResponse({"error": f"{type(exc).__name__}: {exc}"}, status_code=400)
            return JSONResponse({"error": f"no asset {raw_key!r} in this store: {exc}"}, status_code=404)
        body = status_to_json(status)
        body["explain"] = explain(status)
        body["history"] = [
            event_to_json(e) for e in store.history(key, limit=HISTORY_LIMIT, partition=raw_partition)
        ]
        body["history_limit"] = HISTORY_LIMIT
        return JSONResponse(body)

    def changes(_: Request) -> Response:
        return JSONResponse({"cursor": f"{store.last_event_id()}-{store.definitions_revision()}"})

    async def store_error(_: Request, exc: Exception) -> Response:
        return JSONResponse({"error": f"{type(exc).__name__}: {exc}"}, status_code=503)

    return Starlette(
        routes=[
            Route("/", index),
            Route("/api/graph", graph),
            Route("/api/changes", changes),
            Route("/api/assets/{key:path}/partitions/{partition:path}", partition),
            Route("/api/assets/{key:path}", asset),
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        ],
        exception_handlers={InsyncError: store_error},
    )


def _split_partition_path(request: Request) -> tuple[str, str]:
    """(asset key, partition key) of `.../assets/{key}/partitions/{partition}`, split on the raw
    path: the page encodes a partition key's `/` as `%2F`, so `2026/12` stays one partition and a
    key with a part named "partitions" (`a/partitions/b/partitions/p`) splits at the last one."""
    raw = request.scope.get("raw_path")
    if isinstance(raw, bytes) and b"/partitions/" in raw:
        head, _, tail = raw.partition(b"?")[0].rpartition(b"/partitions/")
        prefix = b"/api/assets/"
        if prefix in head:
            key = head[head.index(prefix) + len(prefix) :]
            return _unquote(key), _unquote(tail)
    return str(request.path_params["key"]), str(request.path_params["partition"])


def _unquote(raw: bytes) -> str:
    return unquote(raw.decode("latin-1"), encoding="utf-8")


def _node(spec: AssetSpec, status: AssetStatus) -> Mapping[str, Any]:
    return {
        "key": str(spec.key),
        "label": status.status.label,
        "status": status.status.value,
        "kind": spec.kind,
        "framework": spec.framework,
        "code_version": spec.code_version,
        "data_version": str(status.data_version),
        "deps": [str(d) for d in spec.deps],
        "causes": len(status.causes),
        "partitions": _node_counts(status.partitions),
    }


def _node_counts(counts: PartitionCounts | None) -> Mapping[str, int] | None:
    """Numbers only: the key lists of every partitioned asset would swell the graph payload."""
    if counts is None:
        return None
    return {
        "total": counts.total,
        "synced": counts.synced,
        "unsynced": len(counts.unsynced),
        "missing": len(counts.missing),
    }
