"""Hardening of `insync ui`: Host allow-list (DNS rebinding), security headers, bounded asset
responses with paged history, and the pre-flight checks of `serve` (port in use, open bind)."""

from __future__ import annotations

import http.client
import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from _ui_seed import Served
from insync.core import AssetKey, AssetSpec, ConfigError, EventStore, Materialization
from insync.core.ui import create_app, serve
from insync.core.ui._app import BODY_MAX, HISTORY_DEFAULT, METADATA_MAX, VALUE_MAX
from insync.core.ui._serve import allowed_hosts

CLI = [sys.executable, "-c", "from insync.core.cli import main; main()"]
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


def fetch(url: str, host: str | None = None) -> tuple[int, dict[str, str], bytes]:
    """(status, lowercased headers, body) of a GET, with `host` as the Host header if given."""
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def get_json(url: str) -> tuple[int, Any, int]:
    """(status, parsed body, body size in bytes)."""
    code, _, body = fetch(url)
    return code, json.loads(body), len(body)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served_store(tmp_path: Path, serve_store: Callable[[EventStore], str]) -> Iterator[Served]:
    """An empty store of this test's own, served on 127.0.0.1."""
    store = EventStore(f"sqlite:///{tmp_path / 'security.db'}")
    yield Served(serve_store(store), store)
    store.close()


# ------------------------------------------------------------------------- Host allow-list


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8765", "127.0.0.1.nip.io", "localhost.evil"])
def test_dns_rebinding_host_is_refused(seeded: Served, host: str) -> None:
    """A page at http://evil.example:PORT whose name now resolves to 127.0.0.1 sends its own name."""
    for path in ("", "api/graph", "api/assets/raw/orders", "static/app.js"):
        code, headers, body = fetch(seeded.url + path, host=host)
        assert code == 400, path
        name = host.partition(":")[0]
        assert body.decode() == (
            f"insync ui does not answer for Host {name!r}: a page on another site may be reading the "
            f"catalog through DNS rebinding. If you opened it by this name, restart it with "
            f"--allow-host {name}"
        )
        assert headers["x-frame-options"] == "DENY" and "raw/orders" not in body.decode()


def test_missing_or_malformed_host_is_refused(seeded: Served) -> None:
    port = urlsplit(seeded.url).port
    for header in (None, "a b", "[::1", "[not-v6]:80", "user@127.0.0.1"):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.putrequest("GET", "/api/graph", skip_host=True)
        if header is not None:
            conn.putheader("Host", header)
        conn.endheaders()
        response = conn.getresponse()
        assert (response.status, response.read()) == (400, b"insync ui: missing or malformed Host header")
        conn.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "LocalHost:80", "[::1]", "[0:0::1]:8765"])
def test_loopback_names_are_served_by_default(seeded: Served, host: str) -> None:
    code, _, body = fetch(seeded.url + "api/graph", host=host)
    assert code == 200 and json.loads(body)["nodes"]


def test_allowed_hosts_follow_the_bind_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "build-box")
    loopback = ("127.0.0.1", "localhost", "::1")
    assert allowed_hosts("127.0.0.1") == (loopback, False)
    assert allowed_hosts("localhost") == (loopback, False)
    assert allowed_hosts("::1") == (loopback, False)
    assert allowed_hosts("127.0.0.2") == ((*loopback, "127.0.0.2"), False)
    assert allowed_hosts("192.168.1.5", ["catalog.example"]) == (("catalog.example", "192.168.1.5"), False)
    assert allowed_hosts("0.0.0.0") == ((*loopback, "build-box"), True)
    assert allowed_hosts("::", ["a.example"]) == (("a.example", *loopback, "build-box"), True)
    assert allowed_hosts("::1", "a.example") == (("a.example", *loopback), False)  # a name, not letters
    monkeypatch.setattr(socket, "gethostname", lambda: "not a host name")
    assert allowed_hosts("0.0.0.0") == (loopback, True)


@pytest.mark.parametrize("bad", ["http://catalog.example", "catalog.example:8765", "*.example.com", "*", ""])
def test_allow_host_takes_names_only(bad: str) -> None:
    message = f"allowed host {bad!r} is not a host name or IP address; pass the name alone"
    with EventStore("sqlite://") as store, pytest.raises(ConfigError, match=re.escape(message)):
        create_app(store, allowed_hosts=[bad])
    with pytest.raises(ConfigError, match=r"--allow-host catalog\.example\.com"):
        serve("sqlite://", allow_hosts=[bad])


# ------------------------------------------------------------------------- security headers


@pytest.mark.parametrize(
    "path",
    [
        "",
        "api/graph",
        "api/changes",
        "api/assets/raw/orders",
        "api/assets/x",  # 404
        "api/assets/raw/orders?limit=0",  # 400
        "static/app.js",
        "static/style.css",
        "static/vendor/dagre.min.js",
        "static/nope.js",  # 404
    ],
)
def test_security_headers_on_every_response(seeded: Served, path: str) -> None:
    _, headers, _ = fetch(seeded.url + path)
    for name, value in SECURITY_HEADERS.items():
        assert headers[name] == value, name
    csp = {d.split()[0]: d.split()[1:] for d in headers["content-security-policy"].split("; ")}
    assert csp["default-src"] == ["'self'"] and csp["frame-ancestors"] == ["'none'"]
    assert "'unsafe-inline'" not in headers["content-security-policy"]
    assert "'unsafe-eval'" not in headers["content-security-policy"]


def test_page_needs_no_inline_script_or_style() -> None:
    """The CSP forbids inline code: index.html loads its script and style from files."""
    from importlib.resources import files

    html = (files("insync.core.ui") / "static" / "index.html").read_text(encoding="utf-8")
    assert "<script>" not in html and "<style" not in html
    assert not re.search(r"\s(style|on[a-z]+)=", html)  # no style or event-handler attributes


# ------------------------------------------------------------------ bounded asset responses


def test_a_big_metadata_value_becomes_a_marker(served_store: Served) -> None:
    served_store.store.register([AssetSpec("a", metadata={"blob": "x" * 2_000_000, "rows": 12})])
    code, body, size = get_json(served_store.url + "api/assets/a")
    assert code == 200 and size < 10_000
    assert body["metadata"] == {
        "blob": {"truncated": True, "json_bytes": 2_000_002, "limit_bytes": VALUE_MAX},
        "rows": 12,
    }
    assert body["metadata_omitted"] == 0
    # A value just under the cap is shown whole.
    served_store.store.register([AssetSpec("b", metadata={"text": "y" * (VALUE_MAX - 2)})])
    assert get_json(served_store.url + "api/assets/b")[1]["metadata"] == {"text": "y" * (VALUE_MAX - 2)}


def test_fifty_one_megabyte_values_stay_small(served_store: Served) -> None:
    """The report behind the cap: one asset with 50 x 1 MB metadata was a 50 MB response."""
    metadata = {f"m{i:02}": "z" * 1_000_000 for i in range(50)}
    served_store.store.register([AssetSpec("big", metadata=metadata)])
    code, body, size = get_json(served_store.url + "api/assets/big")
    assert code == 200 and size < 20_000
    assert sorted(body["metadata"]) == sorted(metadata)
    assert {v["json_bytes"] for v in body["metadata"].values()} == {1_000_002}


def test_metadata_past_the_total_cap_leaves_keys_out(served_store: Served) -> None:
    metadata = {f"part{i:02}": "p" * 60_000 for i in range(20)}  # each under VALUE_MAX
    served_store.store.register([AssetSpec("wide", metadata=metadata)])
    code, body, size = get_json(served_store.url + "api/assets/wide")
    assert code == 200 and size < METADATA_MAX + 10_000
    shown = list(body["metadata"])
    assert shown == [f"part{i:02}" for i in range(len(shown))] and 0 < len(shown) < 20
    assert body["metadata_omitted"] == 20 - len(shown)


def test_event_metadata_in_history_is_capped(served_store: Served) -> None:
    store = served_store.store
    store.register([AssetSpec("a", code_version="1")])
    store.record_materialization("a", run_id="r1", metadata={"preview": "q" * 500_000, "rows": 3})
    code, body, size = get_json(served_store.url + "api/assets/a")
    assert code == 200 and size < 10_000
    (event,) = body["history"]
    assert event["metadata"] == {
        "preview": {"truncated": True, "json_bytes": 500_002, "limit_bytes": VALUE_MAX},
        "rows": 3,
    }
    assert event["metadata_omitted"] == 0


# ------------------------------------------------------------------------- history paging


def test_history_pages_with_limit_and_before(served_store: Served) -> None:
    store = served_store.store
    store.register([AssetSpec("a", code_version="1"), AssetSpec("other", code_version="1")])
    for i in range(45):  # interleaved with another asset's events: ids are not contiguous
        store.record_materialization("a", run_id=f"run-{i}")
        store.record_materialization("other", run_id=f"other-{i}")
    expected = [e.id for e in store.history("a")]
    url = served_store.url + "api/assets/a"

    code, body, _ = get_json(url)
    assert code == 200 and body["history_limit"] == HISTORY_DEFAULT == 20
    assert [e["id"] for e in body["history"]] == expected[:20]
    assert body["history_next"] == expected[19]

    seen: list[int] = []
    cursor = ""
    while True:
        code, body, _ = get_json(url + "?limit=7" + cursor)
        assert code == 200 and len(body["history"]) <= 7
        seen += [e["id"] for e in body["history"]]
        if body["history_next"] is None:
            break
        cursor = f"&before={body['history_next']}"
    assert seen == expected
    assert [e["run_id"] for e in body["history"]] == ["run-2", "run-1", "run-0"]

    # Exactly a page left: the last page says there is nothing older.
    code, body, _ = get_json(f"{url}?limit=5&before={expected[39]}")
    assert [e["id"] for e in body["history"]] == expected[40:] and body["history_next"] is None
    code, body, _ = get_json(f"{url}?before={expected[-1]}")
    assert (code, body["history"], body["history_next"]) == (200, [], None)


def test_partition_history_pages_too(partitioned: Served) -> None:
    url = partitioned.url + "api/assets/raw/orders/partitions/2026-11-28"
    code, body, _ = get_json(url + "?limit=1")
    assert code == 200 and [e["run_id"] for e in body["history"]] == ["ingest-2"]
    code, body, _ = get_json(f"{url}?limit=1&before={body['history_next']}")
    assert code == 200 and [e["run_id"] for e in body["history"]] == ["ingest-1"]
    assert body["history_next"] is None


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("limit=0", "?limit='0' is not a whole number from 1 to 200"),
        ("limit=201", "?limit='201' is not a whole number from 1 to 200"),
        ("limit=ten", "?limit='ten' is not a whole number from 1 to 200"),
        ("limit=%C2%B2", "?limit='²' is not a whole number from 1 to 200"),
        ("before=-4", "?before='-4' is not a whole number of at least 1"),
        ("before=", "?before='' is not a whole number of at least 1"),
    ],
)
def test_bad_paging_parameters_are_400(seeded: Served, query: str, message: str) -> None:
    for path in ("api/assets/raw/orders", "api/assets/raw/orders/partitions/p"):
        code, body, _ = get_json(f"{seeded.url}{path}?{query}")
        assert (code, body) == (400, {"error": message})


def test_a_history_page_ends_before_the_body_cap(served_store: Served) -> None:
    store = served_store.store
    store.register([AssetSpec("a", code_version="1")])
    metadata = {f"chunk{j}": "c" * 60_000 for j in range(4)}  # ~240 KB per event, all under the caps
    store.record_materializations(
        [Materialization(AssetKey("a"), run_id=f"r{i}", metadata=metadata) for i in range(10)]
    )
    expected = [e.id for e in store.history("a")]
    url = served_store.url + "api/assets/a?limit=10"
    seen: list[int] = []
    cursor = ""
    while True:
        code, body, size = get_json(url + cursor)
        assert code == 200 and size <= BODY_MAX and 0 < len(body["history"]) < 10
        assert all(e["metadata_omitted"] == 0 for e in body["history"])
        seen += [e["id"] for e in body["history"]]
        if body["history_next"] is None:
            break
        cursor = f"&before={body['history_next']}"
    assert seen == expected


# ------------------------------------------------------------------------ serve pre-flight


def test_port_in_use_is_a_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [*CLI, "--database-url", _store(tmp_path / "p.db"), "ui", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"Error: ConfigError: port {port} on 127.0.0.1 is in use by another program; "
        f"pass another port, like --port {port + 1}"
    ]


def test_unbindable_host_is_a_one_line_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [*CLI, "--database-url", _store(tmp_path / "h.db"), "ui", "--host", "192.0.2.1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("Error: ConfigError: cannot listen on 192.0.2.1 port 8765: ")
    assert line.endswith("pass --host an address of this machine, like --host 127.0.0.1")


def test_non_loopback_bind_warns_and_still_checks_the_host(tmp_path: Path) -> None:
    url = _store(tmp_path / "open.db")
    with EventStore(url) as store:
        store.register([AssetSpec("raw/a")])
    port = free_port()
    options = ["--host", "0.0.0.0", "--port", str(port), "--allow-host", "catalog.example"]
    proc = subprocess.Popen(
        [*CLI, "--database-url", url, "ui", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}/api/graph"
        deadline = time.monotonic() + 60
        while True:
            try:
                code, _, _ = fetch(base)
                break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "insync ui did not answer within 60 s"
                time.sleep(0.1)
        assert code == 200
        assert fetch(base, host=f"catalog.example:{port}")[0] == 200
        assert fetch(base, host=f"{socket.gethostname()}:{port}")[0] == 200
        assert fetch(base, host=f"10.1.2.3:{port}")[0] == 200  # an address: never a rebinding page
        assert fetch(base, host=f"evil.example:{port}")[0] == 400
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert err.splitlines()[0] == (
        f"insync ui: warning: 0.0.0.0 is not a loopback address and the catalog has no authentication: "
        f"anyone who can reach port {port} can read every asset, run id and version in the store"
    )
    assert f"on http://0.0.0.0:{port}/" in out


def test_loopback_bind_does_not_warn(tmp_path: Path) -> None:
    port = free_port()
    url = _store(tmp_path / "l.db")
    proc = subprocess.Popen(
        [*CLI, "--database-url", url, "ui", "--host", "::1", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                code, _, _ = fetch(f"http://[::1]:{port}/api/changes")
                break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "insync ui did not answer within 60 s"
                time.sleep(0.1)
        assert code == 200
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert "warning" not in err
    assert f"on http://[::1]:{port}/" in out


def _store(path: Path) -> str:
    """The URL of a new, empty store: the catalog reads stores, it never creates one."""
    url = f"sqlite:///{path}"
    EventStore(url).close()
    return url
