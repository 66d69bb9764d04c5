"""`insync ui`: serve the catalog with uvicorn until interrupted."""

from __future__ import annotations

import errno
import ipaddress
import socket
import sys
from collections.abc import Iterable

from .. import ConfigError, EventStore
from ._app import LOOPBACK_HOSTS, _allowed_host, create_app

__all__ = ["serve"]


def serve(
    url: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8765,
    *,
    allow_hosts: Iterable[str] = (),
) -> None:
    """Serve the asset catalog for the store at `url` (resolved like `EventStore(url)`).

    Blocks until Ctrl-C. The page is read-only and has no authentication: a non-loopback `host`
    prints a warning on stderr, since anyone who reaches the port sees every asset, run id and
    version in the store. Requests must name this server in their Host header (see
    `allowed_hosts`); `allow_hosts` adds names, such as the one a reverse proxy forwards.

    :raises StoreError: the store cannot be opened (checked before the server starts).
    :raises ConfigError: `port` is outside 1-65535, is in use, or `host` cannot be bound; an
        entry of `allow_hosts` is not a host name or IP address.
    """
    if not 0 < port < 65536:
        raise ConfigError(f"port {port} is not a TCP port; pass --port between 1 and 65535")
    names, any_ip_host = allowed_hosts(host, allow_hosts)
    with EventStore(url, read_only=True) as store:  # a catalog never creates or migrates a store
        app = create_app(store, allowed_hosts=names, any_ip_host=any_ip_host)
        sock = _bind(host, port)
        try:
            shown = f"[{host}]" if ":" in host else host
            if not _is_loopback(host):
                print(
                    f"insync ui: warning: {host} is not a loopback address and the catalog has no "
                    f"authentication: anyone who can reach port {port} can read every asset, run id "
                    f"and version in the store",
                    file=sys.stderr,
                    flush=True,
                )
            print(f"insync ui: {store} on http://{shown}:{port}/ (Ctrl-C to stop)", flush=True)
            # No websockets or lifespan: plain HTTP polling keeps the server dependency-light.
            import uvicorn  # only when serving: it imports click

            config = uvicorn.Config(app, log_level="warning", lifespan="off", ws="none")
            uvicorn.Server(config).run(sockets=[sock])
        finally:
            sock.close()


def allowed_hosts(host: str, extra: Iterable[str] = ()) -> tuple[tuple[str, ...], bool]:
    """The Host names `insync ui --host HOST --allow-host EXTRA...` answers, and whether it also
    answers any IP address: the loopback names for a loopback bind; the bound name or address
    otherwise; for 0.0.0.0 or ::, the loopback names, this machine's name, and any address (a
    DNS-rebinding page always sends its own name, so an address is safe)."""
    names = [extra] if isinstance(extra, str) else [*extra]  # one name, not its letters
    if _is_loopback(host):
        names += LOOPBACK_HOSTS
    unspecified = _is_unspecified(host)
    if unspecified:
        names += [*LOOPBACK_HOSTS, *_valid_names([socket.gethostname()])]
    else:
        names.append(host)
    return tuple(dict.fromkeys(names)), unspecified


def _valid_names(names: Iterable[str]) -> list[str]:
    """The entries of `names` that are host names (a machine may be named something else)."""
    valid = []
    for name in names:
        try:
            _allowed_host(name)
        except ConfigError:
            continue
        valid.append(name)
    return valid


def _bind(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port) as uvicorn would bind it, handed to uvicorn so nothing can
    take the port in between.

    :raises ConfigError: the port is in use, or `host` is not an address of this machine.
    """
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    # As uvicorn does: a port left in TIME_WAIT by a previous `insync ui` can be bound again.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"port {port} on {host} is in use by another program; pass another port, "
                f"like --port {port + 1 if port < 65535 else 8765}"
            ) from None
        raise ConfigError(
            f"cannot listen on {host} port {port}: {exc.strerror or exc}; pass --host an address "
            f"of this machine, like --host 127.0.0.1"
        ) from None
    return sock


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_unspecified(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False
