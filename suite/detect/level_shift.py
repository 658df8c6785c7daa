"""Level-shift detector: an EWMA control chart that alarms when the recent level (fast
EWMA) leaves the long-run level (slow EWMA forecast) by many robust sigmas.

Causal: both EWMAs and the scale are recursive filters over past points only.
"""

from __future__ import annotations

import numpy as np

from suite.detect.base import Detector, DetectorError, FloatArray, State, warm_only, z_to_score
from suite.detect.features import level_shift_z
from suite.detect.registry import register_detector


@register_detector("level_shift")
class LevelShiftDetector(Detector):
    """Score = z / (z + z_half) of the fast-minus-slow EWMA gap."""

    threshold = 0.5
    defaults = {
        "fast_span": 5.0,
        "slow_span": 300.0,
        "scale_floor": 1e-4,
        "shift_noise": "step",  # scale from one-step residuals ("step") or around the slow level
        "z_half": 8.0,
        "warmup": 60,  # points scored 0 while the scale settles
        "threshold": 0.5,
    }

    def _check_params(self) -> None:
        p = self.params
        if not 1 <= float(p["fast_span"]) < float(p["slow_span"]):
            raise DetectorError(
                f"detector {self.name!r}: need 1 <= fast_span < slow_span "
                f"(got {p['fast_span']!r}, {p['slow_span']!r})"
            )

    def _score(
        self, ts_ns: np.ndarray, values: FloatArray, carry: State
    ) -> tuple[FloatArray, State]:
        carry = dict(carry)
        return warm_only(
            z_to_score(level_shift_z(values, carry, self.params), float(self.params["z_half"])),
            carry,
            self.params,
        ), carry
