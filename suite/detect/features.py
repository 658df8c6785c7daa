"""Causal per-point features shared by the univariate detectors: robust residual
z-scores against a seasonal or rolling baseline, EWMA level shifts, new extremes, flatness.

Each feature takes the new chunk plus a `carry` dict (what earlier chunks left behind) and
updates the carry in place; none may read a value later than the point it scores.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from scipy.ndimage import maximum_filter1d, minimum_filter1d

from suite.detect.base import (
    DAY_NS,
    WEEK_NS,
    FloatArray,
    State,
    ewm_prev,
    ewm_prev_adjusted,
    lag_values,
    nan_median_columns,
    regular_step,
)

# exp(E[log|N(0,1)|]) = 0.530; dividing by it turns a geometric mean of |residual| into sigma.
_GEO_TO_SIGMA = 1.0 / 0.5298


def robust_log_scale(
    r: FloatArray, span: float, eps: FloatArray, carry: State, key: str, mean_abs: float = 0.0
) -> FloatArray:
    """Causal robust scale of residuals r: the EWMA of log|r| (a geometric mean), so one
    huge outlier moves it by log(outlier)/span instead of outlier/span.

    Counts and quantised metrics have many exact-zero residuals, which drag a geometric
    mean toward 0; `mean_abs` times the EWMA of |r| then floors it."""
    absr = np.abs(r)
    lr = absr + eps
    np.log(lr, out=lr)
    prev = ewm_prev_adjusted(lr, span, carry, key)
    scale = np.exp(prev, out=lr)
    scale *= _GEO_TO_SIGMA
    if mean_abs > 0:
        # A plain EWMA is enough here: it only ever raises the scale.
        mean_r, carry[key + "_abs"] = ewm_prev(absr, span, carry.get(key + "_abs", 0.0))
        mean_r *= mean_abs
        np.maximum(scale, mean_r, out=scale)
    # No scale before the second point: infinite, so nothing there looks surprising.
    head = np.isnan(prev[:2])
    scale[:2][head] = np.inf
    return scale


def seasonal_history(
    ti: np.ndarray, v: FloatArray, carry: State, keep_ns: int
) -> tuple[np.ndarray, FloatArray, int]:
    """Concatenate the remembered history with the chunk; remember the last keep_ns of it."""
    ht = carry.get("hist_t", np.zeros(0, dtype=np.int64))
    hv = carry.get("hist_v", np.zeros(0))
    full_t = np.concatenate([ht, ti])
    full_v = np.concatenate([hv, v])
    start = len(ht)
    if len(full_t):
        cut = int(np.searchsorted(full_t, full_t[-1] - keep_ns, side="left"))
        carry["hist_t"], carry["hist_v"] = full_t[cut:].copy(), full_v[cut:].copy()
    return full_t, full_v, start


def seasonal_median(
    full_t: np.ndarray,
    full_v: FloatArray,
    start: int,
    lags: int,
    period_ns: int,
    step_ns: int = 0,
) -> tuple[FloatArray, np.ndarray]:
    """Median of the values at the same time of day (or week) over the last `lags` periods."""
    n_new = len(full_t) - start
    if lags <= 0 or n_new == 0:
        return np.full(n_new, np.nan), np.zeros(n_new, dtype=int)
    cols = [lag_values(full_t, full_v, start, k * period_ns, step_ns) for k in range(1, lags + 1)]
    return nan_median_columns(cols)


class Residuals(NamedTuple):
    """What residual_z finds per point."""

    z: FloatArray  # |residual| / scale against the baseline in use
    z_any: FloatArray  # the largest such z against any ready baseline
    z_creep: FloatArray  # slow creep away from the seasonal shape, in its own sigmas
    base: FloatArray  # the baseline in use (its forecast of the value)
    scale: FloatArray  # ... and its robust scale
    level: FloatArray  # typical |value| before the point (EWMA of |v|)


def residual_z(ti: np.ndarray, v: FloatArray, carry: State, p: dict[str, Any]) -> Residuals:
    """Robust z of each value against the best causal baseline available at that point.

    Baselines: an EWMA forecast (always), the median of the same time on the last
    `days` days, and on the last `weeks` weeks. A seasonal baseline is used once it has
    `min_lags` past values and its recent error scale beats the EWMA's by `season_gain`.
    Also tracks an EWMA (span `creep_span`) of the seasonal residual: a slow creep away
    from yesterday's shape, in units of what that EWMA shows on noise.
    Returns the z against the chosen baseline, the largest z against any ready baseline,
    the creep z, and the chosen baseline with its scale (see Residuals).
    """
    # Monotone time: a timestamp that steps back (clock fix) is treated as "now".
    t_last = carry.get("t_last")
    ti = np.maximum.accumulate(ti if t_last is None else np.maximum(ti, t_last))
    if len(ti):
        carry["t_last"] = int(ti[-1])
    # A scale floor so exact repeats (integers, quantised metrics) give finite z.
    level, carry["lvl_abs"] = ewm_prev(np.abs(v), 1000.0, carry.get("lvl_abs"))
    eps = p["eps_rel"] * (level + 1e-9)
    floor = p["scale_floor"] * (level + 1e-12)
    if p["range_floor"] > 0 and len(v):
        # Range of everything seen before each point: 1% of it is a sane smallest sigma.
        hi = np.maximum.accumulate(np.concatenate([[carry.get("seen_hi", v[0])], v]))
        lo = np.minimum.accumulate(np.concatenate([[carry.get("seen_lo", v[0])], v]))
        carry["seen_hi"], carry["seen_lo"] = float(hi[-1]), float(lo[-1])
        floor = np.maximum(floor, p["range_floor"] * (hi[:-1] - lo[:-1]))

    pred, carry["ewm"] = ewm_prev(v, p["span"], carry.get("ewm"))
    r = v - pred
    s = np.maximum(robust_log_scale(r, p["scale_span"], eps, carry, "ls_ewm", p["mean_abs"]), floor)
    z = np.abs(r) / s
    z_any = z
    base, scale = pred, s
    z_creep = np.zeros(len(v))
    keep = max(p["days"] * DAY_NS, p["weeks"] * WEEK_NS) + DAY_NS // 48
    if p["days"] > 0 or p["weeks"] > 0:
        full_t, full_v, start = seasonal_history(ti, v, carry, keep)
        step_ns = regular_step(full_t)
        best_s = np.full(len(v), np.inf)  # scale of the seasonal baseline in use
        for lags, period, key in ((p["days"], DAY_NS, "ls_day"), (p["weeks"], WEEK_NS, "ls_week")):
            if lags <= 0:
                continue
            seas, cnt = seasonal_median(full_t, full_v, start, lags, period, step_ns)
            ok = cnt >= min(p["min_lags"], lags)
            rs = np.where(ok, v - seas, r)
            ss = np.maximum(
                robust_log_scale(rs, p["scale_span"], eps, carry, key, p["mean_abs"]), floor
            )
            use = ok & (ss < p["season_gain"] * s) & (ss < best_s)
            zs = np.abs(rs) / ss
            # season_min: surprising under both baselines, not just the one in favour.
            take = use & (zs < z) if p["season_min"] else use
            z = np.where(take, zs, z)
            base = np.where(take, seas, base)
            scale = np.where(take, ss, scale)
            z_any = np.where(ok, np.maximum(z_any, zs), z_any)
            a = 2.0 / (p["creep_span"] + 1.0)
            drift_prev, carry[key + "_drift"] = ewm_prev(
                np.where(ok, rs, 0.0), p["creep_span"], carry.get(key + "_drift", 0.0)
            )
            drift = a * np.where(ok, rs, 0.0) + (1 - a) * drift_prev
            zc = np.abs(drift) / (ss * np.sqrt(a / (2 - a)))
            z_creep = np.maximum(z_creep, np.where(ok, zc, 0.0))
            best_s = np.where(use, ss, best_s)
    return Residuals(z, z_any, z_creep, base, scale, level)


def level_shift_z(v: FloatArray, carry: State, p: dict[str, Any]) -> FloatArray:
    """EWMA control chart: a fast EWMA against the slow one-step forecast, in units of
    the slow robust scale times the noise a fast EWMA of white noise would show."""
    level, carry["ls_lvl_abs"] = ewm_prev(np.abs(v), 1000.0, carry.get("ls_lvl_abs"))
    eps = 1e-6 * (level + 1e-9)
    slow, carry["slow"] = ewm_prev(v, p["slow_span"], carry.get("slow"))
    fast_prev, carry["fast"] = ewm_prev(v, p["fast_span"], carry.get("fast"))
    a = 2.0 / (p["fast_span"] + 1.0)
    fast = a * v + (1 - a) * fast_prev  # includes the current point
    if p["shift_noise"] == "step":
        # Noise from the one-step residual: a shift or a ramp barely moves it, so it
        # does not excuse itself by inflating the scale.
        s = robust_log_scale(v - fast_prev, p["slow_span"], eps, carry, "ls_fast")
    else:
        # Spread around the slow level: seasonal swings count as normal movement.
        s = robust_log_scale(v - slow, p["slow_span"], eps, carry, "ls_slow")
    s = np.maximum(s, p["scale_floor"] * (level + 1e-12))
    return np.abs(fast - slow) / (s * np.sqrt(a / (2 - a)))


def range_excess(v: FloatArray, carry: State, window: int) -> FloatArray:
    """How far each value lies beyond the range (max - min) of the `window` points before
    it, as a fraction of that range: 0 inside the range, 0.1 = 10% of the range above the
    maximum or below the minimum. NaN until there is a previous point; infinite for any
    change after a window that never moved (a jump from a constant, like errors from 0)."""
    tail = carry.get("ext_tail", np.zeros(0))
    full = np.concatenate([tail, v])
    start = len(tail)
    carry["ext_tail"] = full[-window:].copy()
    if len(v) == 0:
        return np.zeros(0)
    origin = (window - 1) // 2
    pad = np.concatenate([np.full(window, np.nan), full])
    # Max/min of the window ending just before each index (NaN padding never wins).
    hi = maximum_filter1d(np.where(np.isnan(pad), -np.inf, pad), window, origin=origin)
    lo = minimum_filter1d(np.where(np.isnan(pad), np.inf, pad), window, origin=origin)
    hi, lo = hi[window - 1 : -1][start:], lo[window - 1 : -1][start:]
    rng = hi - lo
    beyond = np.maximum(v - hi, lo - v)
    with np.errstate(invalid="ignore", divide="ignore"):
        excess = np.where(rng > 0, beyond / np.where(rng > 0, rng, 1.0), np.inf)
    excess = np.where(beyond > 0, excess, 0.0)
    return np.where(np.isfinite(rng), excess, np.nan)


def recent_excess(
    full: FloatArray, start: int, at: np.ndarray, window: int, vectorised_above: int = 2000
) -> FloatArray:
    """range_excess over the `window` points before each chunk index in `at` only (the
    few points that need it), where full[start:] is the chunk and full[:start] the points
    remembered before it (at least `window` of them, once there were that many)."""
    if len(at) > vectorised_above:  # many: one pass of min/max filters is cheaper
        return range_excess(full[start:], {"ext_tail": full[:start]}, window)[at]
    out = np.full(len(at), np.nan)
    for k, i in enumerate((at + start).tolist()):
        past = full[max(0, i - window) : i]
        if len(past):
            hi, lo, x = float(past.max()), float(past.min()), float(full[i])
            beyond = max(x - hi, lo - x)
            out[k] = 0.0 if beyond <= 0 else (beyond / (hi - lo) if hi > lo else np.inf)
    return out


def run_baseline(
    base: FloatArray, scale: FloatArray, level: FloatArray, candidate: np.ndarray, carry: State
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """The baseline, scale and level as they stood when the current run of `candidate`
    points began (the point's own values outside runs).

    An anomaly drags an EWMA baseline with it, so right after a fault the recovered values
    look far from the (contaminated) forecast; measured from the baseline frozen at the run
    start they are back to normal, and the anomaly ends with the fault."""
    n = len(base)
    prev = np.asarray(carry.get("run_frozen", np.full(3, np.nan)), dtype=np.float64)
    at = np.flatnonzero(candidate)  # few: only the candidates need work
    if n:
        carry["run_frozen"] = np.full(3, np.nan)
    if len(at) == 0:
        return base, scale, level
    # A candidate starts a run unless the point before it was one (or, for the chunk's
    # first point, unless a run was open when the last chunk ended).
    starts = np.empty(len(at), dtype=bool)
    starts[1:] = np.diff(at) != 1
    starts[0] = at[0] > 0 or not bool(np.isfinite(prev[0]))
    first = np.maximum.accumulate(np.where(starts, np.arange(len(at)), -1))
    frozen = []
    for k, arr in enumerate((base, scale, level)):
        # Points of a run that began in an earlier chunk (first == -1) take the carried value.
        at_start = np.where(first >= 0, arr[at[np.maximum(first, 0)]], prev[k])
        out = arr.copy()
        out[at] = at_start
        frozen.append(out)
    if at[-1] == n - 1:
        carry["run_frozen"] = np.array([f[n - 1] for f in frozen])
    return frozen[0], frozen[1], frozen[2]


def flatness(v: FloatArray, carry: State, p: dict[str, Any]) -> np.ndarray:
    """True where the last `flat_points` changes were all ~0 although the series
    normally moves (few exact repeats before): a stuck metric (exporter dead, cache frozen)."""
    dv = np.abs(np.diff(np.concatenate([carry.get("flat_last", v[:1]), v])))
    if len(v):
        carry["flat_last"] = v[-1:].copy()
    still = (dv <= 1e-9 * (np.abs(v) + 1e-12)).astype(float)
    # How often the series repeated itself exactly, over a long memory: counts and
    # quantised metrics repeat all the time and are never "flat".
    repeat_rate, carry["flat_rate"] = ewm_prev(still, 2000.0, carry.get("flat_rate", 0.0))
    tail = carry.get("flat_tail", np.zeros(0))
    full = np.concatenate([tail, still])
    w = int(p["flat_points"])
    c = np.concatenate([[0.0], np.cumsum(full)])
    i = np.arange(len(tail) + 1, len(full) + 1)
    run = (c[i] - c[np.maximum(0, i - w)]) >= w
    carry["flat_tail"] = full[-(w - 1) :].copy() if w > 1 else full[:0]
    return run & (repeat_rate < p["flat_max_repeat"])
