"""JSON text of results: numpy scalars and arrays converted, NaN and infinities written as null."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np


def jsonable(obj: Any) -> Any:
    """``obj`` with numpy scalars and arrays as Python numbers and lists, dict keys as strings, NaN/inf as None."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    return obj


def to_json(obj: Any) -> str:
    """JSON text of ``obj`` with numpy scalars/arrays converted and NaN/inf as null."""
    return json.dumps(jsonable(obj), indent=2, default=str)
