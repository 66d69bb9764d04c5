"""The Starlette app behind `insync ui`: one static page and a few read-only JSON endpoints.

Every endpoint is a plain `def`: Starlette runs it in its thread pool, so the store's blocking
SQLAlchemy reads never stall the event loop. The page polls `/api/changes` (two cheap queries)
and refetches `/api/graph` only when the store moved on. A partitioned asset's node carries its
partition counts; its panel lists the keys of the partitions that are not Synced, and
`/api/assets/{key}/partitions/{partition}` explains one of them.

The catalog has no authentication, so the app guards what it can: it answers only the Host names
it was started for (a page on another site that rebinds its own name to 127.0.0.1 is refused),
sends a strict Content-Security-Policy and no-framing headers, and keeps every asset response
small: metadata values are capped and history comes in pages (`?limit=&before=`).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import (
    AssetKey,
    AssetSpec,
    AssetStatus,
    ConfigError,
    Event,
    EventStore,
    InsyncError,
    InvalidAssetKey,
    InvalidPartitionKey,
    PartitionCounts,
    UnknownAssetError,
)
from .._render import event_to_json, explain, status_to_json

__all__ = ["LOOPBACK_HOSTS", "STATIC_DIR", "create_app"]

STATIC_DIR = Path(__file__).parent / "static"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
HISTORY_DEFAULT = 20  # events per history page unless ?limit= asks for more
HISTORY_MAX = 200
VALUE_MAX = 64 * 1024  # bytes of JSON of one metadata value; a bigger one becomes a marker
METADATA_MAX = 256 * 1024  # bytes of JSON of one asset's or event's metadata; later keys are left out
BODY_MAX = 1024 * 1024  # a history page ends before the response passes this

# The page is static files only: no inline script or style, no eval, nothing from elsewhere.
# `img-src data:` is the empty favicon in index.html (it keeps the browser from asking for one).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-resource-policy": "same-origin",
}


def create_app(
    store: EventStore, *, allowed_hosts: Iterable[str] = LOOPBACK_HOSTS, any_ip_host: bool = False
) -> Starlette:
    """A read-only asset catalog over `store` (the caller owns and closes the store).

    Routes: `/` (the page), `/static/...`, `/api/graph`, `/api/assets/{key}`,
    `/api/assets/{key}/partitions/{partition}`, `/api/changes`. Asset and partition responses
    page their history with `?limit=` (1-200, default 20) and `?before=` (an event id: the
    `history_next` of the previous page).

    A request whose Host header is not one of `allowed_hosts` (names or IP addresses, no port)
    gets 400: that is how a page on another site reading the catalog through DNS rebinding looks.
    `any_ip_host` also accepts any IP address as Host (for a server bound to 0.0.0.0 or ::): a
    rebinding page always sends its own name, so an address is safe to answer.

    :raises ConfigError: an entry of `allowed_hosts` is not a host name or IP address.
    """
    names = [allowed_hosts] if isinstance(allowed_hosts, str) else allowed_hosts  # one name, not its letters
    allowed = frozenset(_allowed_host(h) for h in names)

    def index(_: Request) -> Response:
        # no-cache: a new insync version's page must not run against a stale cached copy.
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    def graph(_: Request) -> Response:
        # Marker first: an event landing while we read shows up as a change on the next poll.
        last_event, revision = store.last_event_id(), store.definitions_revision()
        specs = store.definitions()
        # With the upstream view: a Synced asset whose ancestor changed is marked "pending".
        statuses = store.statuses(upstream=True)
        return JSONResponse(
            {
                "cursor": f"{last_event}-{revision}",
                "nodes": [_node(spec, statuses[key]) for key, spec in sorted(specs.items())],
                "frameworks": sorted({s.framework for s in specs.values() if s.framework}),
            }
        )

    def asset(request: Request) -> Response:
        return asset_view(request, request.path_params["key"])

    def asset_view(request: Request, raw: str) -> Response:
        try:
            limit, before = _page(request)
            key = AssetKey.parse(raw)
            status = store.status(key)
            spec = store.definitions()[key]
        except _BadQuery as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        except (UnknownAssetError, InvalidAssetKey, KeyError) as exc:
            return JSONResponse({"error": f"no asset {raw!r} in this store: {exc}"}, status_code=404)
        body = status_to_json(status)
        body["explain"] = explain(status)
        body["deps"] = [str(d) for d in spec.deps]
        body["metadata"], body["metadata_omitted"] = _capped(spec.metadata)
        return _with_history(body, store, key, None, limit, before)

    def partition(request: Request) -> Response:
        raw_key, raw_partition = _split_partition_path(request)
        try:
            limit, before = _page(request)
            key = AssetKey.parse(raw_key)
            status = store.status(key, partition=raw_partition)
        except _BadQuery as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        except (UnknownAssetError, InvalidAssetKey, InvalidPartitionKey) as exc:
            # `a/partitions/b` may also be an asset whose key has a part named "partitions".
            whole = f"{raw_key}/partitions/{raw_partition}"
            if whole in {str(k) for k in store.definitions()}:
                return asset_view(request, whole)
            if isinstance(exc, InvalidPartitionKey):
                return JSONResponse({"error": f"{type(exc).__name__}: {exc}"}, status_code=400)
            return JSONResponse({"error": f"no asset {raw_key!r} in this store: {exc}"}, status_code=404)
        body = status_to_json(status)
        body["explain"] = explain(status)
        try:
            return _with_history(body, store, key, raw_partition, limit, before)
        except InvalidPartitionKey as exc:  # `status` takes an empty key as "no partition"; history does not
            return JSONResponse({"error": f"{type(exc).__name__}: {exc}"}, status_code=400)

    def changes(_: Request) -> Response:
        return JSONResponse({"cursor": f"{store.last_event_id()}-{store.definitions_revision()}"})

    async def store_error(_: Request, exc: Exception) -> Response:
        return JSONResponse({"error": f"{type(exc).__name__}: {exc}"}, status_code=503)

    return _Catalog(
        allowed,
        any_ip_host,
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


class _Catalog(Starlette):
    """Starlette with `_Guard` outside everything, so even its own 500 page carries the headers."""

    def __init__(self, allowed: frozenset[str], any_ip_host: bool, **kwargs: Any) -> None:
        self._allowed, self._any_ip_host = allowed, any_ip_host
        super().__init__(**kwargs)

    def build_middleware_stack(self) -> ASGIApp:
        return _Guard(super().build_middleware_stack(), self._allowed, self._any_ip_host)


class _Guard:
    """Refuses a request for a Host outside the allow-list; adds SECURITY_HEADERS to every response."""

    def __init__(self, app: ASGIApp, allowed: frozenset[str], any_ip_host: bool) -> None:
        self.app, self.allowed, self.any_ip_host = app, allowed, any_ip_host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        refusal = self._refusal(Headers(scope=scope).get("host"))
        if refusal is not None:
            await PlainTextResponse(refusal, status_code=400)(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)

    def _refusal(self, header: str | None) -> str | None:
        """Why a request for this Host header is refused, or None to serve it."""
        host = _host_of(header or "")
        if host is None:
            return "insync ui: missing or malformed Host header"
        if host in self.allowed or (self.any_ip_host and _is_ip(host)):
            return None
        shown = host if len(host) <= 100 else host[:100] + "..."
        return (
            f"insync ui does not answer for Host {shown!r}: a page on another site may be reading the "
            f"catalog through DNS rebinding. If you opened it by this name, restart it with "
            f"--allow-host {shown}"
        )


_HOST_HEADER = re.compile(r"(?:\[(?P<v6>[0-9a-fA-F:.]+)\]|(?P<name>[^:\[\]/@\s]+))(?::\d{1,5})?")
_HOST_NAME = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*\.?")


def _host_of(header: str) -> str | None:
    """The host of a Host header, lowercased, without port or brackets (an IP address in its
    canonical form, so `[0:0::1]` is `::1`); None if the header is malformed."""
    match = _HOST_HEADER.fullmatch(header)
    if match is None:
        return None
    host = (match["v6"] or match["name"]).lower()
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None if match["v6"] else host


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _allowed_host(name: str) -> str:
    """`name` as `_host_of` gives it, for comparing with requests.

    :raises ConfigError: `name` is not a host name or IP address (a URL, a port, a wildcard).
    """
    bare = name.strip().lower()
    if bare.startswith("[") and bare.endswith("]"):
        bare = bare[1:-1]
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        pass
    if not _HOST_NAME.fullmatch(bare):
        raise ConfigError(
            f"allowed host {name!r} is not a host name or IP address; pass the name alone, "
            f"like --allow-host catalog.example.com (no scheme, port or wildcard)"
        )
    return bare


class _BadQuery(ValueError):
    """A query parameter out of range: the endpoint answers 400 with this message."""


def _page(request: Request) -> tuple[int, int | None]:
    """(limit, before) of a history page from `?limit=&before=`.

    :raises _BadQuery: either is not a whole number in range.
    """

    def number(name: str, high: int | None) -> int | None:
        raw = request.query_params.get(name)
        if raw is None:
            return None
        if not re.fullmatch(r"[0-9]{1,18}", raw) or int(raw) < 1 or (high is not None and int(raw) > high):
            allowed = f"from 1 to {high}" if high is not None else "of at least 1"
            raise _BadQuery(f"?{name}={raw[:40]!r} is not a whole number {allowed}")
        return int(raw)

    return number("limit", HISTORY_MAX) or HISTORY_DEFAULT, number("before", None)


def _with_history(
    body: dict[str, Any],
    store: EventStore,
    key: AssetKey,
    partition: str | None,
    limit: int,
    before: int | None,
) -> Response:
    """`body` plus one page of history: up to `limit` events older than event id `before`, newest
    first, ending early rather than passing BODY_MAX (but never empty while events remain, so a
    client paging with `history_next` always gets further). `history_next` is the `before` of the
    next page, or None at the oldest event."""
    events, more = _history_page(store, key, partition, limit, before)
    used = _json_size(body)
    page: list[dict[str, Any]] = []
    for event in events:
        item = event_to_json(event)
        item["metadata"], item["metadata_omitted"] = _capped(event.metadata)
        size = _json_size(item) + 1
        if page and used + size > BODY_MAX:
            more = True
            break
        page.append(item)
        used += size
    body["history"] = page
    body["history_limit"] = limit
    body["history_next"] = page[-1]["id"] if more and page else None
    return JSONResponse(body)


def _history_page(
    store: EventStore, key: AssetKey, partition: str | None, limit: int, before: int | None
) -> tuple[list[Event], bool]:
    """Up to `limit` events of `key` with ids below `before`, newest first, and whether older ones
    exist: one query (one more event than asked tells whether there is a next page)."""
    events = store.history(key, limit=limit + 1, partition=partition, before=before)
    return events[:limit], len(events) > limit


def _capped(metadata: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
    """`metadata` for a response, and how many of its keys were left out.

    A value whose JSON passes VALUE_MAX becomes `{"truncated": true, "json_bytes": N,
    "limit_bytes": VALUE_MAX}` (one asset with 50 values of 1 MB once made a 50 MB response);
    once the whole passes METADATA_MAX, the remaining keys are left out and counted. Python
    callers read the full metadata from `EventStore.definitions()` and `history()`.
    """
    out: dict[str, Any] = {}
    used = 2
    for index, (name, value) in enumerate(metadata.items()):
        size = _json_size(value)
        if size > VALUE_MAX:
            value = {"truncated": True, "json_bytes": size, "limit_bytes": VALUE_MAX}
            size = _json_size(value)
        used += _json_size(name) + size + 2
        if used > METADATA_MAX:
            return out, len(metadata) - index
        out[name] = value
    return out, 0


def _json_size(value: Any) -> int:
    """Bytes of `value` as JSONResponse renders it."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


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
        # How many ancestors have a change that will reach this asset once materialized (a count:
        # the keys of every ancestor would swell the payload; the asset's panel lists them).
        "pending": len(status.upstream),
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
