"""The Starlette app behind `insync ui`: one static page and a few read-only JSON endpoints.

Every endpoint is a plain `def`: Starlette runs it in its thread pool, so the store's blocking
SQLAlchemy reads never stall the event loop. The page polls `/api/changes` (two cheap queries)
and refetches `/api/graph` only when the store moved on.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

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
    UnknownAssetError,
)
from ..cli import event_to_json, explain, status_to_json

__all__ = ["STATIC_DIR", "create_app"]

STATIC_DIR = Path(__file__).parent / "static"
HISTORY_LIMIT = 50


def create_app(store: EventStore) -> Starlette:
    """A read-only asset catalog over `store` (the caller owns and closes the store).

    Routes: `/` (the page), `/static/...`, `/api/graph`, `/api/assets/{key}`, `/api/changes`.
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
        raw = request.path_params["key"]
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

    def changes(_: Request) -> Response:
        return JSONResponse({"cursor": f"{store.last_event_id()}-{store.definitions_revision()}"})

    async def store_error(_: Request, exc: Exception) -> Response:
        return JSONResponse({"error": f"{type(exc).__name__}: {exc}"}, status_code=503)

    return Starlette(
        routes=[
            Route("/", index),
            Route("/api/graph", graph),
            Route("/api/changes", changes),
            Route("/api/assets/{key:path}", asset),
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        ],
        exception_handlers={InsyncError: store_error},
    )


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
    }
