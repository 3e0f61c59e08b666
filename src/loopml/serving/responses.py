"""JSON responses serialized by orjson, numpy values included.

FastAPI deprecated its ORJSONResponse; this is the same few lines, with numpy support.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse

__all__ = ["JSONBytesResponse"]

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


class JSONBytesResponse(JSONResponse):
    """``application/json`` rendered by orjson (NaN and Infinity become null)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=_OPTIONS, default=str)
