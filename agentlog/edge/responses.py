"""JSON responses rendered by orjson (the hot path): FastAPI's own ORJSONResponse is deprecated.

A JSONResponse by type, so FastAPI documents a route answering with it as JSON (a schema from
the route's declarations), not as a string.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse


class FastJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
