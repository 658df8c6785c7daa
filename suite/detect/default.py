"""The default detector: seasonal residuals, EWMA level shifts, new extremes and
flatlines, turned into one score by an anomaly likelihood so one threshold fits all.

Causal and streaming like its parts; tuned on NAB and on operational scenarios together,
never per series.
"""

from __future__ import annotations

import numpy as np

from suite.detect.base import Detector, DetectorError, FloatArray, State
from suite.detect.features import flatness, level_shift_z, range_excess, residual_z
from suite.detect.postprocess import anomaly_likelihood, suppress_repeats
from suite.detect.registry import register_detector
from suite.detect.seasonal import BASELINE_DEFAULTS, check_baseline_params


@register_detector("default")
class DefaultDetector(Detector):
    """max(anomaly likelihood of the combined surprise, new-extreme alarm), then one
    alarm per `hold` points."""

    threshold = 0.5
    defaults = {
        **BASELINE_DEFAULTS,
        "mean_abs": 1.0,
        "fast_span": 5.0,
        "slow_span": 300.0,
        "shift_noise": "slow",
        "shift_weight": 0.3,  # level-shift z counts this much against the residual z
        "creep_weight": 0.0,  # seasonal creep z counts this much
        "z_scale": 15.0,  # raw = 1 - exp(-z / z_scale)
        "short": 15,  # likelihood: points in the short-term mean
        "long": 1000,  # likelihood: points in the long-term distribution
        "warmup": 300,  # points before any alarm
        "sd_floor": 0.02,  # likelihood: smallest spread of the short-term means
        "extreme_window": 5000,  # points: a value beyond their range is an extreme ...
        "extreme_tolerance": 0.05,  # ... by this fraction of that range ...
        "extreme_min_z": 5.0,  # ... and this many robust sigmas from some baseline ...
        "extreme_shift_gate": 0.0,  # ... where the level-shift z counts this much
        "creep_min_z": 8.0,  # a record with this much seasonal creep is an alarm too
        "flat_points": 30,  # points without any change that make a flatline
        "flat_max_repeat": 0.05,  # ... in a series that repeats itself less often than this
        "hold": 50,  # points: alarms suppressed after an alarm
        "threshold": 0.5,
    }

    def _check_params(self) -> None:
        p = self.params
        check_baseline_params(self.name, p)
        for key in ("short", "long", "extreme_window", "flat_points"):
            if int(p[key]) < 1:
                raise DetectorError(f"detector {self.name!r}: {key} must be >= 1")
        if not 0 < self.threshold <= 1:
            raise DetectorError(f"detector {self.name!r}: threshold must be in (0, 1]")

    def _score(
        self, ts_ns: np.ndarray, values: FloatArray, carry: State
    ) -> tuple[FloatArray, State]:
        p = self.params
        carry = dict(carry)
        z, z_any, z_creep = residual_z(ts_ns, values, carry, p)
        if p["creep_weight"] > 0:
            z = np.maximum(z, p["creep_weight"] * z_creep)
        z_shift = level_shift_z(values, carry, p)
        if p["shift_weight"] > 0:
            z = np.maximum(z, p["shift_weight"] * z_shift)
        z = np.where(flatness(values, carry, p), 1e3, z)
        raw = 1.0 - np.exp(-z / float(p["z_scale"]))
        score = anomaly_likelihood(
            raw,
            carry,
            short=int(p["short"]),
            long=int(p["long"]),
            warmup=int(p["warmup"]),
            sd_floor=float(p["sd_floor"]),
        )
        excess = range_excess(values, carry, int(p["extreme_window"]))
        # A new extreme must also be far from some baseline: noise sets records too.
        far = np.maximum(z_any, float(p["extreme_shift_gate"]) * z_shift)
        extreme = (excess > float(p["extreme_tolerance"])) & (far >= float(p["extreme_min_z"]))
        # A creep sets records by small steps, but far from yesterday's shape.
        extreme |= (excess > 0) & (z_creep >= float(p["creep_min_z"]))
        warm = np.arange(len(values)) + int(carry["lk_n"]) - len(values) >= int(p["warmup"])
        score = np.where(extreme & warm, 1.0, score)
        if p["hold"] > 0:
            score = suppress_repeats(score, carry, threshold=self.threshold, hold=int(p["hold"]))
        return score, carry
