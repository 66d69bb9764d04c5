"""`insync ui`: serve the catalog with uvicorn until interrupted."""

from __future__ import annotations

import uvicorn

from .. import EventStore
from ._app import create_app

__all__ = ["serve"]


def serve(url: str | None = None, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve the asset catalog for the store at `url` (resolved like `EventStore(url)`).

    Blocks until Ctrl-C. The page is read-only; bind a non-loopback `host` only on a trusted
    network, since it shows every asset, run id and version in the store.

    :raises StoreError: the store cannot be opened (checked before the server starts).
    :raises ConfigError: `port` is outside 1-65535.
    """
    from .. import ConfigError

    if not 0 < port < 65536:
        raise ConfigError(f"port {port} is not a TCP port; pass --port between 1 and 65535")
    with EventStore(url) as store:
        print(f"insync ui: {store} on http://{host}:{port}/ (Ctrl-C to stop)", flush=True)
        # No websockets or lifespan: plain HTTP polling keeps the server dependency-light.
        uvicorn.run(create_app(store), host=host, port=port, log_level="warning", lifespan="off", ws="none")
