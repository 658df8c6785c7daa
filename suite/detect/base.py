"""The detector base class and the vectorised, causal building blocks detectors share.

Nothing here may look ahead: every array helper returns, at index i, a value computed
from inputs at indices <= i (or < i where the name says `prev`).
"""

from __future__ import annotations

import io
from typing import Any, ClassVar

import numpy as np
from scipy.signal import lfilter
from scipy.special import ndtr

from suite.errors import AiopsError

FloatArray = np.ndarray
State = dict[str, Any]

DAY_NS = 86_400 * 10**9
WEEK_NS = 7 * DAY_NS


class DetectorError(AiopsError):
    """Bad detector name, parameter or input (wrong shapes, unknown state format)."""

    exit_code = 2


class Detector:
    """One causal, streaming anomaly detector over one series.

    Subclasses implement `_initial_carry()` and `_score(ts_ns, values, carry)`, which
    scores a chunk given everything remembered from earlier chunks (`carry`) and returns
    the new carry. Because replay is the same code fed in one chunk, live == replay.
    """

    name: ClassVar[str] = ""
    threshold: float = 0.5
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, **params: Any) -> None:
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise DetectorError(
                f"detector {self.name!r}: unknown parameter(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(self.defaults)) or 'none'}"
            )
        self.params: dict[str, Any] = {**self.defaults, **params}
        if "threshold" in self.params:
            self.threshold = float(self.params["threshold"])
        self._check_params()
        self._carry: State = self._initial_carry()

    # -- what subclasses provide ------------------------------------------------------
    def _check_params(self) -> None:
        """Reject impossible parameter values with a DetectorError."""

    def _initial_carry(self) -> State:
        return {}

    def _score(
        self, ts_ns: np.ndarray, values: FloatArray, carry: State
    ) -> tuple[FloatArray, State]:
        raise NotImplementedError

    # -- the public interface ---------------------------------------------------------
    def score_series(self, timestamps: Any, values: Any) -> FloatArray:
        """Scores in [0, 1] for a whole series from a fresh start; does not touch state."""
        ts_ns, v = _as_inputs(timestamps, values)
        return self._score_with_gaps(ts_ns, v, self._initial_carry())[0]

    def extend(self, timestamps: Any, values: Any) -> FloatArray:
        """Scores for the next chunk of points, continuing from the detector's state."""
        ts_ns, v = _as_inputs(timestamps, values)
        scores, self._carry = self._score_with_gaps(ts_ns, v, self._carry)
        return scores

    def update(self, timestamp: Any, value: float) -> float:
        """Score one new point (live use); equal to score_series over the same sequence."""
        return float(self.extend(np.array([timestamp], dtype="datetime64[ns]"), [value])[0])

    def get_state(self) -> State:
        """Everything needed to continue: a dict of numbers and numpy arrays (see dump_state)."""
        return {"detector": self.name, "params": dict(self.params), "carry": _copy(self._carry)}

    def set_state(self, state: State) -> None:
        if state.get("detector") != self.name:
            raise DetectorError(
                f"state belongs to detector {state.get('detector')!r}, not {self.name!r}"
            )
        self._carry = _copy(state["carry"])

    def reset(self) -> None:
        self._carry = self._initial_carry()

    def is_anomaly(self, scores: FloatArray) -> np.ndarray:
        return np.asarray(scores) >= self.threshold

    def _score_with_gaps(
        self, ts_ns: np.ndarray, v: FloatArray, carry: State
    ) -> tuple[FloatArray, State]:
        # Missing (NaN) and infinite values are skipped (score 0) so a gap never poisons
        # the baselines and live and replay see the same sequence of real points.
        if len(v) == 0:
            return np.zeros(0), carry
        ok = np.isfinite(v)
        if ok.all():
            return self._score(ts_ns, v, carry)
        out = np.zeros(len(v))
        if ok.any():
            out[ok], carry = self._score(ts_ns[ok], v[ok], carry)
        return out, carry


def _as_inputs(timestamps: Any, values: Any) -> tuple[np.ndarray, FloatArray]:
    ts = np.asarray(timestamps)
    if ts.dtype.kind != "M":
        try:
            ts = ts.astype("datetime64[ns]")
        except (ValueError, TypeError) as e:
            raise DetectorError(f"timestamps must be datetime64 values: {e}") from None
    ts_ns = ts.astype("datetime64[ns]").astype(np.int64)
    v = np.asarray(values, dtype=np.float64)
    if ts_ns.ndim != 1 or v.ndim != 1 or len(ts_ns) != len(v):
        raise DetectorError(
            f"timestamps and values must be 1-D and the same length (got {ts_ns.shape}, {v.shape})"
        )
    return ts_ns, v


def _copy(carry: State) -> State:
    return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in carry.items()}


def dump_state(state: State) -> bytes:
    """Serialise get_state() compactly (numpy .npz) for storing in a BLOB column."""
    flat: dict[str, Any] = {
        "detector": np.array(state["detector"]),
        "params": np.array(repr(sorted(state["params"].items()))),
    }
    for k, v in state["carry"].items():
        flat["c_" + k] = np.asarray(v)
    buf = io.BytesIO()
    np.savez(buf, **flat)
    return buf.getvalue()


def load_state(blob: bytes) -> State:
    import ast

    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        carry: State = {}
        for k in z.files:
            if k.startswith("c_"):
                a = z[k]
                carry[k[2:]] = a.item() if a.ndim == 0 else a
        params = dict(ast.literal_eval(str(z["params"])))
        return {"detector": str(z["detector"]), "params": params, "carry": carry}


# -- causal array helpers -------------------------------------------------------------
def ewm_prev(x: FloatArray, span: float, last: float | None) -> tuple[FloatArray, float]:
    """EWMA of x through index i-1 at index i (a one-step-ahead forecast), vectorised.

    `last` is the EWMA after the previous chunk (None at the start: seeded with x[0]).
    Returns the forecasts and the EWMA after this chunk.
    """
    if len(x) == 0:
        return x.copy(), (np.nan if last is None else last)
    a = 2.0 / (span + 1.0)
    y0 = float(x[0]) if last is None else float(last)
    y, _ = lfilter([a], [1.0, a - 1.0], x, zi=[(1.0 - a) * y0])
    out = np.empty_like(x)
    out[0] = y0
    out[1:] = y[:-1]
    return out, float(y[-1])


def ewm_prev_adjusted(
    x: FloatArray, span: float, carry: State, key: str, skip_first: bool = True
) -> FloatArray:
    """Bias-corrected EWMA of x through index i-1 (pandas' adjust=True): early on it is the
    weighted mean of the points seen so far rather than a pull toward a seed value.
    The series' very first point is skipped when skip_first (its residual is always 0).
    Before any point it returns NaN."""
    n = len(x)
    a = 2.0 / (span + 1.0)
    q = 1.0 - a
    fresh = key + "_den" not in carry
    num0, den0 = carry.get(key + "_num", 0.0), carry.get(key + "_den", 0.0)
    x0 = x
    if skip_first and fresh and n:
        x0 = x.copy()
        x0[0] = 0.0
    num, _ = lfilter([1.0], [1.0, -q], x0, zi=[q * num0])
    # The weights' sum follows q*den + 1 in closed form; it settles at 1/a to float
    # precision after ~37/a points, so it is only computed for that prefix.
    m = min(n, int(37.0 / a) + 2)
    qp = q ** np.arange(1, m + 1)
    den = qp * den0 + (1.0 - qp) / a
    if skip_first and fresh:
        den -= qp / q  # the skipped first point's weight, q**i
    last_den = float(den[-1]) if m == n else 1.0 / a
    if n:
        carry[key + "_num"], carry[key + "_den"] = float(num[-1]), last_den
    out = np.empty(n)
    if n:
        # The weights are 0 or 1, so a sum under 0.5 is "nothing seen" (float residue).
        out[0] = num0 / den0 if den0 >= 0.5 else np.nan
        with np.errstate(invalid="ignore", divide="ignore"):
            np.divide(num[: m - 1], den[: m - 1], out=out[1:m])
        np.multiply(num[m - 1 : -1], a, out=out[m:])
        if skip_first and fresh and n > 1:
            out[1] = np.nan  # only the skipped point seen so far
    return out


def rolling_mean_with_tail(
    x: FloatArray, tail: FloatArray, w: int
) -> tuple[FloatArray, FloatArray]:
    """Trailing mean over the last w values (fewer at the start), with the previous
    chunk's last w-1 values in `tail`. Returns the means for x and the new tail."""
    full = np.concatenate([tail, x])
    c = np.concatenate([[0.0], np.cumsum(full)])
    i = np.arange(len(tail) + 1, len(full) + 1)
    lo = np.maximum(0, i - w)
    means = (c[i] - c[lo]) / (i - lo)
    return means, full[-(w - 1) :] if w > 1 else full[:0]


def tail_probability_score(m: FloatArray, mu: FloatArray, sd: FloatArray) -> FloatArray:
    """Numenta-style anomaly likelihood on a log scale: 0.5 at 5 sigmas, 1.0 at ~6.4."""
    likelihood = ndtr((m - mu) / sd)
    return np.clip(np.log(1.0000000001 - likelihood) / np.log(1e-10), 0.0, 1.0)


def regular_step(ti: np.ndarray) -> int:
    """The sampling step in ns if the timestamps are strictly regular, else 0."""
    if len(ti) < 2:
        return 0
    step = np.diff(ti)
    s0 = int(step[0])
    return s0 if s0 > 0 and bool(np.all(step == s0)) else 0


def lag_values(
    ti: np.ndarray, v: FloatArray, start: int, lag_ns: int, step_ns: int = 0
) -> FloatArray:
    """For each index i >= start, the value at (about) time ti[i] - lag_ns, or NaN.

    Only indices < i are eligible (causal); a match must lie within 1/96 of the lag.
    `step_ns` is regular_step(ti), when known: on a regular grid the lag is a shift.
    """
    n = len(v)
    if step_ns and lag_ns % step_ns == 0:
        k = lag_ns // step_ns
        out = np.full(n - start, np.nan)
        first = max(start, k)  # first index whose lagged point exists
        if first < n:
            out[first - start :] = v[first - k : n - k]
        return out
    idx = np.arange(start, n)
    target = ti[start:] - lag_ns
    j = np.minimum(np.searchsorted(ti, target, side="left"), n - 1)
    jm = np.maximum(j - 1, 0)
    pick = np.where(np.abs(ti[jm] - target) < np.abs(ti[j] - target), jm, j)
    ok = (np.abs(ti[pick] - target) <= lag_ns // 96) & (pick < idx)
    return np.where(ok, v[pick], np.nan)


def nan_median_columns(cols: list[FloatArray]) -> tuple[FloatArray, np.ndarray]:
    """Row-wise median of equal-length columns ignoring NaN (NaN where all are NaN), and
    the count of non-NaN values per row."""
    k = len(cols)
    if k <= 2:
        # The median of one or two values is their mean: no sorting at all.
        with np.errstate(invalid="ignore"):
            if k == 1:
                return cols[0].copy(), (~np.isnan(cols[0])).astype(int)
            a, b = cols
            na, nb = np.isnan(a), np.isnan(b)
            med = np.where(na, b, np.where(nb, a, 0.5 * (a + b)))
            return med, 2 - na.astype(int) - nb.astype(int)
    nan = [np.isnan(c) for c in cols]
    cnt = k - np.sum(nan, axis=0)
    # An odd-even transposition network of min/max over whole columns: several times
    # faster than sorting rows. Rows with a NaN come out NaN and are redone below.
    work = list(cols)
    for rnd in range(k):
        for j in range(rnd % 2, k - 1, 2):
            lo = np.minimum(work[j], work[j + 1])
            work[j + 1] = np.maximum(work[j], work[j + 1])
            work[j] = lo
    med = 0.5 * (work[(k - 1) // 2] + work[k // 2])
    part = np.flatnonzero((cnt < k) & (cnt > 0))
    if len(part):
        s = np.sort(np.column_stack([c[part] for c in cols]), axis=1)  # NaN sorts last
        c = cnt[part]
        r = np.arange(len(part))
        med[part] = 0.5 * (s[r, (c - 1) // 2] + s[r, c // 2])
    return med, cnt


def z_to_score(z: FloatArray, half: float) -> FloatArray:
    """Map a non-negative surprise z to [0, 1): `half` sigmas gives 0.5."""
    z = np.maximum(np.nan_to_num(z, nan=0.0, posinf=1e6), 0.0)
    return z / (z + half)


def warm_only(scores: FloatArray, carry: State, params: dict[str, Any]) -> FloatArray:
    """Zero the scores of the first `warmup` points ever seen (counted in carry["n"])."""
    n0 = int(carry.get("n", 0))
    carry["n"] = n0 + len(scores)
    return np.where(np.arange(n0, n0 + len(scores)) < int(params["warmup"]), 0.0, scores)
