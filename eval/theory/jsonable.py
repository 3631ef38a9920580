"""Strict JSON for theory results: diverging curves and singular estimates produce infinities and NaNs, which plain
``json.dumps`` writes as the non-standard ``Infinity``/``NaN``."""

from __future__ import annotations

import math
from typing import Any


def json_safe(value: Any) -> Any:
    """The same data with every non-finite float replaced by the string ``"inf"``, ``"-inf"`` or ``"nan"``."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
