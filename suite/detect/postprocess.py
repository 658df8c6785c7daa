"""Anomaly-likelihood post-processing and alarm suppression for raw detector scores.

Causal like everything else here: the likelihood at t compares the recent raw scores
with the distribution of earlier ones, never with later ones.
"""

from __future__ import annotations

import numpy as np

from suite.detect.base import FloatArray, State, rolling_mean_with_tail, tail_probability_score


def anomaly_likelihood(
    raw: FloatArray,
    carry: State,
    *,
    short: int,
    long: int,
    warmup: int,
    sd_floor: float,
    key: str = "lk",
) -> FloatArray:
    """Numenta's anomaly likelihood: the mean of the last `short` raw scores against the
    mean and spread of those short means over the last `long` points, as a log-scaled
    tail probability (0.5 = 1e-5 chance). One threshold then fits very different series."""
    empty = np.zeros(0)
    m, carry[key + "_raw"] = rolling_mean_with_tail(raw, carry.get(key + "_raw", empty), short)
    mu, carry[key + "_m"] = rolling_mean_with_tail(m, carry.get(key + "_m", empty), long)
    m2, carry[key + "_m2"] = rolling_mean_with_tail(m * m, carry.get(key + "_m2", empty), long)
    sd = np.maximum(np.sqrt(np.maximum(m2 - mu * mu, 0.0)), sd_floor)
    score = tail_probability_score(m, mu, sd)
    n0 = int(carry.get(key + "_n", 0))
    carry[key + "_n"] = n0 + len(raw)
    score[np.arange(n0, n0 + len(raw)) < warmup] = 0.0
    return score


def suppress_repeats(score: FloatArray, carry: State, *, threshold: float, hold: int) -> FloatArray:
    """After an alarm, cap scores at np.nextafter(threshold, 0) for `hold` points: one
    incident, one alarm (the held points stay recognisable). Loops only over the few points at or above the threshold."""
    since = int(carry.get("since_alarm", 1 << 40))
    out = score.copy()
    last = -since  # index of the last alarm, relative to this chunk
    # One float step under: callers recognise held points as score == nextafter(thr, 0).
    cap = np.nextafter(threshold, 0.0)
    for i in np.flatnonzero(score >= threshold):
        if i - last < hold:
            out[i] = min(out[i], cap)
        else:
            last = int(i)
    carry["since_alarm"] = int(len(score) - last)
    return out
