"""Seasonal robust baseline detector: a point is anomalous when it is far, in robust
sigmas, from the median of the same time of day (or week) on earlier days.

It falls back to a rolling EWMA baseline until the seasonal one has enough history, and
it never reads a value later than the point it scores.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from suite.detect.base import Detector, DetectorError, FloatArray, State, warm_only, z_to_score
from suite.detect.features import residual_z
from suite.detect.registry import register_detector

BASELINE_DEFAULTS: dict[str, Any] = {
    "span": 30.0,  # points: EWMA fallback baseline
    "scale_span": 300.0,  # points: robust scale memory
    "days": 7,  # same time of day on the last N days
    "weeks": 2,  # same time of week on the last N weeks
    "min_lags": 2,  # seasonal values needed before a seasonal baseline is trusted
    "season_gain": 0.8,  # seasonal scale must beat the EWMA's by this factor
    "season_min": False,
    "creep_span": 60.0,  # points: EWMA of the seasonal residual that shows a slow creep
    "scale_floor": 1e-4,  # scale never below this fraction of the series' typical level
    "range_floor": 0.01,  # scale never below this fraction of the range seen so far
    "mean_abs": 0.0,  # scale >= this times the mean |residual| (for counts; 1.25 = sigma)
    "eps_rel": 1e-6,  # added to |residual| before the log, as a fraction of the level
}


def check_baseline_params(name: str, p: dict[str, Any]) -> None:
    for key in ("span", "scale_span"):
        if not float(p[key]) >= 1:
            raise DetectorError(f"detector {name!r}: {key} must be >= 1 (got {p[key]!r})")
    for key in ("days", "weeks", "min_lags"):
        if int(p[key]) < 0 or int(p[key]) != p[key]:
            raise DetectorError(f"detector {name!r}: {key} must be a whole number >= 0")


@register_detector("seasonal")
class SeasonalRobustDetector(Detector):
    """Score = z / (z + z_half), z = robust distance from the seasonal (or EWMA) median."""

    threshold = 0.5
    # Standalone, it uses the seasonal baseline whenever it has one, with a day-long scale.
    defaults = {
        **BASELINE_DEFAULTS,
        "season_gain": 1e9,
        "scale_span": 1440.0,
        "z_half": 5.0,
        "warmup": 60,
        "threshold": 0.5,
    }

    def _check_params(self) -> None:
        check_baseline_params(self.name, self.params)

    def _score(
        self, ts_ns: np.ndarray, values: FloatArray, carry: State
    ) -> tuple[FloatArray, State]:
        carry = dict(carry)
        z = residual_z(ts_ns, values, carry, self.params).z
        return warm_only(z_to_score(z, float(self.params["z_half"])), carry, self.params), carry
