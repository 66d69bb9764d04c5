"""insync.core.ui: the read-only asset catalog served by `insync ui`.

Needs the `ui` extra (Starlette and uvicorn); the page and its graph-layout library are packaged
static files, so it works offline.
"""

from __future__ import annotations

import importlib.util

# Checked without importing: uvicorn pulls in click, which the app itself never needs.
for _needed in ("starlette", "uvicorn"):
    if importlib.util.find_spec(_needed) is None:
        raise ImportError(f"the insync asset catalog needs {_needed}: pip install 'insync[ui]'")

from ._app import create_app  # noqa: E402 - after the check, so a missing extra says how to install it
from ._serve import serve  # noqa: E402

__all__ = ["create_app", "serve"]
