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


def alarm_once_per_episode(
    score: FloatArray,
    anomalous: np.ndarray,
    carry: State,
    *,
    threshold: float,
    rearm: int,
    severity: FloatArray | None = None,
    escalate: float = 0.0,
) -> FloatArray:
    """One alarm per anomalous episode: the first point of an episode at or over the
    threshold keeps its score; the episode's later anomalous points are held, scored
    np.nextafter(threshold, 0) ("still anomalous, already told"). An episode is a stretch
    of anomalous points with fewer than `rearm` normal points between them, so the
    detector re-arms once the series has been back to normal for `rearm` points. Within
    an episode a point scoring 1 whose `severity` is `escalate` times the largest told so
    far is told again: a small false alarm never hides a much larger anomaly after it.
    Points that are not anomalous stay under the threshold."""
    cap = np.nextafter(threshold, 0.0)
    out = np.where(anomalous, score, np.minimum(score, threshold * 0.999))
    gap0 = int(carry.get("ep_gap", 1 << 40))  # normal points since the last anomalous one
    told0 = float(carry.get("ep_told", 0.0))  # largest severity told in the open episode
    idx = np.flatnonzero(anomalous)
    n = len(score)
    if len(idx) == 0:
        carry["ep_gap"] = min(gap0 + n, 1 << 40)
        return out
    gaps = np.diff(idx, prepend=idx[0] - 1) - 1
    gaps[0] = gap0 + idx[0]
    new = gaps >= rearm
    sev = severity[idx] if severity is not None else np.zeros(len(idx))
    # Which hits are alarms: a loop over the hits only (few; an episode's later hits are
    # mostly held), since each depends on what its episode told before.
    alarm = np.zeros(len(idx), dtype=bool)
    ep = np.cumsum(new)
    told, told_ep = told0, 0
    for k in np.flatnonzero(score[idx] >= threshold).tolist():
        if ep[k] != told_ep:
            told, told_ep = 0.0, int(ep[k])
        if told == 0.0 or (escalate > 0 and score[idx[k]] >= 1.0 and sev[k] >= escalate * told):
            alarm[k] = True
            told = max(float(sev[k]), 1e-300)
    if ep[-1] != told_ep:
        told = 0.0
    a = alarm.astype(np.int64)
    before = np.cumsum(a) - a  # alarms before each anomalous point, in the chunk
    # ... of which in earlier episodes: the count at the latest episode start (nondecreasing).
    at_start = np.maximum.accumulate(np.where(new, before, 0))
    told_before = (before - at_start > 0) | ((ep == 0) & (told0 > 0))
    out[idx[told_before & ~alarm]] = cap
    carry["ep_gap"] = int(n - 1 - idx[-1])
    carry["ep_told"] = float(told)
    return out
