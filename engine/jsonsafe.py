"""JSON for reports: JSON has no inf/NaN, so metrics and parity reports write them as the strings "inf", "-inf",
"nan" (docs/metrics.md); numpy scalars become plain numbers. (The event stream and the bundle manifest write null
instead: engine.events.json_clean.)"""
from __future__ import annotations

import math

import numpy as np


def json_safe(obj):
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
