"""insync.core.ui: the read-only asset catalog served by `insync ui`.

Needs the `ui` extra (Starlette and uvicorn); the page and its graph-layout library are packaged
static files, so it works offline.
"""

from __future__ import annotations

try:
    import starlette  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError as exc:
    raise ImportError(f"the insync asset catalog needs {exc.name}: pip install 'insync[ui]'") from exc

from ._app import create_app
from ._serve import serve

__all__ = ["create_app", "serve"]
