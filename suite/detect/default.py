"""The default detector: seasonal residuals, EWMA level shifts, new extremes, jumps and
flatlines, turned into one score by an anomaly likelihood so one threshold fits all.

Causal and streaming like its parts; tuned on NAB and on operational scenarios together,
never per series. A point only alarms when it deviates itself, by a minimum effect.
"""

from __future__ import annotations

import numpy as np

from suite.detect.base import Detector, DetectorError, FloatArray, State
from suite.detect.features import (
    flatness,
    level_shift_z,
    range_excess,
    recent_excess,
    residual_z,
    run_baseline,
)
from suite.detect.postprocess import alarm_once_per_episode, anomaly_likelihood
from suite.detect.registry import register_detector
from suite.detect.seasonal import BASELINE_DEFAULTS, check_baseline_params


@register_detector("default")
class DefaultDetector(Detector):
    """max(anomaly likelihood of the combined surprise, new-extreme or jump alarm), only
    where the point itself deviates by a minimum effect; then one alarm per episode."""

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
        "gate_z": 3.0,  # a point alarms only this many sigmas from the baseline ...
        "min_rel": 0.03,  # ... and this fraction of the typical |value| away from it ...
        "min_abs": 0.0,  # ... and this much in the series' own units (per signal)
        "effect_floor": 0.05,  # extremes and jumps: sigma at least this fraction of |value|
        "jump_z": 10.0,  # a point this many (floored) sigmas off ...
        "jump_window": 1440,  # ... and beyond the range of this many points before it ...
        "jump_excess": 2.0,  # ... by this many times that range alarms at once
        "rearm": 10,  # normal points in a row that end an episode (next alarm is told)
        "escalate": 3.0,  # within one, a jump or extreme this many times larger is told too
        "threshold": 0.5,
    }

    def _check_params(self) -> None:
        p = self.params
        check_baseline_params(self.name, p)
        for key in ("short", "long", "extreme_window", "flat_points", "rearm", "jump_window"):
            if int(p[key]) < 1:
                raise DetectorError(f"detector {self.name!r}: {key} must be >= 1")
        for key in ("gate_z", "jump_z"):
            if not float(p[key]) > 0:
                raise DetectorError(f"detector {self.name!r}: {key} must be > 0")
        if int(p["jump_window"]) > int(p["extreme_window"]):
            raise DetectorError(f"detector {self.name!r}: jump_window must be <= extreme_window")
        if not 0 < self.threshold <= 1:
            raise DetectorError(f"detector {self.name!r}: threshold must be in (0, 1]")

    def _score(
        self, ts_ns: np.ndarray, values: FloatArray, carry: State
    ) -> tuple[FloatArray, State]:
        p = self.params
        carry = dict(carry)
        res = residual_z(ts_ns, values, carry, p)
        z = res.z
        if p["creep_weight"] > 0:
            z = np.maximum(z, p["creep_weight"] * res.z_creep)
        z_shift = level_shift_z(values, carry, p)
        if p["shift_weight"] > 0:
            z = np.maximum(z, p["shift_weight"] * z_shift)
        flat = flatness(values, carry, p)
        z = np.where(flat, 1e3, z)
        raw = 1.0 - np.exp(-z / float(p["z_scale"]))
        score = anomaly_likelihood(
            raw,
            carry,
            short=int(p["short"]),
            long=int(p["long"]),
            warmup=int(p["warmup"]),
            sd_floor=float(p["sd_floor"]),
        )
        # The point's own deviation, from the baseline as it stood before the current
        # run of surprising points: an anomaly ends when the values are back.
        gate_z = float(p["gate_z"])
        candidate = np.abs(values - res.base) >= gate_z * res.scale
        base, scale, level = run_baseline(res.base, res.scale, res.level, candidate, carry)
        dev = np.abs(values - base)
        effect = np.maximum(float(p["min_rel"]) * level, float(p["min_abs"]))
        anomalous = (candidate & (dev >= gate_z * scale) & (dev > effect)) | flat
        # Extremes and jumps alarm on one point: there a sigma is at least a fraction of
        # the level, so a quiet series does not alarm on a small blip.
        floored = np.maximum(scale, float(p["effect_floor"]) * level)
        remembered = carry.get("ext_tail", np.zeros(0))
        excess = range_excess(values, carry, int(p["extreme_window"]))
        # A new extreme must also be far from some baseline: noise sets records too.
        far = np.maximum(res.z_any, float(p["extreme_shift_gate"]) * z_shift)
        extreme = (excess > float(p["extreme_tolerance"])) & (far >= float(p["extreme_min_z"]))
        extreme &= dev >= float(p["extreme_min_z"]) * floored
        # A creep sets records by small steps, but far from yesterday's shape.
        extreme |= (excess > 0) & (res.z_creep >= float(p["creep_min_z"]))
        # A jump far beyond a flat or near-constant recent past (errors from 0) is told at
        # once, even when the long window holds an old excursion.
        big = np.flatnonzero(anomalous & (dev >= float(p["jump_z"]) * floored))
        if len(big):
            full = np.concatenate([remembered, values])
            recent = recent_excess(full, len(remembered), big, int(p["jump_window"]))
            extreme[big[recent >= float(p["jump_excess"])]] = True
        warm = np.arange(len(values)) + int(carry["lk_n"]) - len(values) >= int(p["warmup"])
        score = np.where(extreme & anomalous & warm, 1.0, score)
        return alarm_once_per_episode(
            score,
            anomalous,
            carry,
            threshold=self.threshold,
            rearm=int(p["rearm"]),
            severity=dev / floored,
            escalate=float(p["escalate"]),
        ), carry
