"""Capacity forecasts: per service and per LLM model, the hourly request rate, p95 latency,
tokens and cost over the next 14 days, with an 80% band, a back-test error and the time
until each `[[capacity]]` limit is crossed. Results go to `forecasts` and `forecast_runs`.

One read of `metrics_1m`, the fitting outside any lock, one short write. It never uses
data after `now`, so a replay with the same `now` gives the same forecast.

The model (per series and metric, all series of a metric fitted together): ridge
regression of the hourly value on a linear trend, daily and weekly Fourier terms and a
weekend-by-hour-of-day interaction, fitted on the raw values ("additive") and on their
logarithm ("log", i.e. multiplicative seasonality); the back-test picks the better one.
Histories shorter than 14 days drop the weekly terms (keeping a weekend level and
shape once they hold a weekend day), shorter than 7 days the trend.

- Back-test: fit on all but the last 7 days, forecast those; MAPE (a fraction, 0.05 = 5%) over the
  hours whose actual exceeds 5% of the series' mean (quiet hours would make a percentage
  meaningless); NULL when fewer than 24 such hours or history < 9 days. The stored
  forecast is a refit on everything.
- Band: the 10%/90% quantiles of the in-sample residuals, scaled by the parameter
  uncertainty at each future hour (so it widens with the horizon as the trend is
  extrapolated) and by a factor from the back-test that makes the band cover 80% of the
  held-back week (never below 1; 1.25 when there is no back-test).
- Time to limit: the first future hour whose forecast (yhat) goes over the limit: the
  busiest minute's rate (`rps_peak`) and the hourly mean (`rps`) against `max_rps`,
  `p95_ms` against `max_p95_ms`, the running total of the UTC day's tokens (actuals so
  far today included) against `token_quota_per_day`, the running total of the calendar
  month's cost (month-to-date included) against `monthly_budget_usd`. Past the 14-day
  horizon the fitted trend and seasonality are extrapolated up to a year
  (`crossing = 'extrapolated'`). The upper edge of the band gives `upper_crosses_at`, the
  pessimistic date, within the horizon only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import polars as pl
import pyarrow as pa
from threadpoolctl import threadpool_limits

from suite.capacity_config import METRIC_NAMES
from suite.clock import naive_utc
from suite.store import Store

if TYPE_CHECKING:
    from suite.capacity_config import CapacityLimit
    from suite.config import GatewayConfig

log = logging.getLogger("aiops.forecast")

HORIZON_DAYS = 14
BACKTEST_DAYS = 7
HISTORY_DAYS = 56  # eight weeks: enough for the weekly pattern, recent enough for the trend
MIN_HISTORY_HOURS = 48
INTERVAL = 0.80
KEEP_RUNS = 3
EXTRAPOLATE_DAYS = 365
# The newest hour is used once its minutes have been through spool, ingest and rollup.
SETTLE_SECONDS = 120.0
DEFAULT_WIDEN = 1.25  # band factor when there is no back-test to calibrate it
TRIVIAL_SHARE = 0.05  # MAPE skips hours whose actual is under 5% of the series' mean
MIN_MAPE_POINTS = 24
RIDGE = 1.0

FloatArray = np.ndarray[Any, np.dtype[np.floating[Any]]]


class MetricSpec(NamedTuple):
    name: str
    unit: str
    basis: str  # how current / 7d / 14d summarise a day: 'daily peak' | 'daily total'
    limit_key: str | None
    crossing_mode: str  # 'peak' | 'daily' | 'monthly'


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("rps", "requests/s, hourly mean", "daily peak", "max_rps", "peak"),
    MetricSpec("rps_peak", "requests/s, busiest minute", "daily peak", "max_rps", "peak"),
    MetricSpec("p95_ms", "ms, p95 latency", "daily peak", "max_p95_ms", "peak"),
    MetricSpec("tokens", "tokens per hour", "daily total", "token_quota_per_day", "daily"),
    MetricSpec("cost_usd", "USD per hour", "daily total", "monthly_budget_usd", "monthly"),
)
assert tuple(m.name for m in METRICS) == METRIC_NAMES

HOURLY_SQL = """
SELECT service, dimension, key, date_trunc('hour', minute) AS hour,
       sum(requests) / 3600.0 AS rps,
       max(requests) / 60.0 AS rps_peak,
       sum(latency_p95_ms * requests)
           / nullif(sum(requests) FILTER (WHERE latency_p95_ms IS NOT NULL), 0) AS p95_ms,
       sum(coalesce(prompt_tokens, 0) + coalesce(completion_tokens, 0))::DOUBLE AS tokens,
       count(prompt_tokens) + count(completion_tokens) AS token_obs,
       sum(cost_usd)::DOUBLE AS cost_usd,
       count(cost_usd) AS cost_obs
FROM metrics_1m
WHERE dimension IN ('service', 'model') AND minute >= ? AND minute < ? {filter}
GROUP BY ALL
"""


def load_hourly(
    store: Store,
    start: datetime,
    end: datetime,
    series: tuple[str, str, str] | None = None,
) -> pl.DataFrame:
    """Hourly aggregates of metrics_1m per (service, dimension, key) in [start, end).
    p95_ms is the request-weighted mean of the minutes' p95 (the hour's typical p95)."""
    params: list[Any] = [start, end]
    extra = ""
    if series is not None:
        extra = "AND service = ? AND dimension = ? AND key = ?"
        params += list(series)
    return store.query(HOURLY_SQL.format(filter=extra), params)


def series_label(service: str, dimension: str, key: str) -> str:
    return service if dimension == "service" else f"{service}/{key}"


# -- the design matrix ----------------------------------------------------------------------
def _is_weekend(hours: np.ndarray) -> np.ndarray:
    return np.mod(hours + 72, 168) >= 120  # hour of the week (Monday 00:00 = 0) >= Sat


def feature_set_for(hours: np.ndarray) -> str:
    """The terms a history on these (absolute) hours can support: the weekly terms from
    14 days, the trend from 7, a weekend level and daily shape once it holds a day of
    each (so a 10-day history already knows Saturday is quiet)."""
    span = int(hours[-1] - hours[0]) + 1 if hours.size else 0
    weekend = int(_is_weekend(hours).sum())
    parts = ["trend"] if span >= 7 * 24 else []
    parts.append("daily")
    if span >= 14 * 24:
        parts.append("weekly")
    elif weekend >= 24 and hours.size - weekend >= 24:
        parts.append("weekend")
    return "+".join(parts)


def design_matrix(hours: np.ndarray, anchor: int, feature_set: str) -> FloatArray:
    """Rows for absolute hour numbers (hours since 1970-01-01 UTC, a Thursday).
    `feature_set`: '+'-joined parts of trend, daily, weekend, weekly ('weekly' includes
    the weekend terms)."""
    parts = set(feature_set.split("+"))
    h = hours.astype(np.float64)
    cols: list[FloatArray] = [np.ones_like(h)]
    if "trend" in parts:
        cols.append((h - anchor) / 168.0)  # in weeks from the end of the history
    hod = np.mod(h, 24.0)
    how = np.mod(h + 72.0, 168.0)
    k_daily = 6 if "trend" in parts else 4
    for k in range(1, k_daily + 1):
        cols += [np.sin(2 * np.pi * k * hod / 24), np.cos(2 * np.pi * k * hod / 24)]
    if "weekly" in parts:
        for k in range(1, 4):
            cols += [np.sin(2 * np.pi * k * how / 168), np.cos(2 * np.pi * k * how / 168)]
    if "weekly" in parts or "weekend" in parts:
        weekend = _is_weekend(hours).astype(np.float64)
        cols.append(weekend)
        for k in range(1, 4):
            cols += [
                weekend * np.sin(2 * np.pi * k * hod / 24),
                weekend * np.cos(2 * np.pi * k * hod / 24),
            ]
    return np.column_stack(cols)


def _ridge(x: FloatArray, z: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Coefficients (p x m) for every column of z at once, and (X'X + R)^-1 for the
    parameter uncertainty; the intercept is not penalised."""
    g = x.T @ x
    penalty = np.full(x.shape[1], RIDGE)
    penalty[0] = 0.0
    g[np.diag_indices_from(g)] += penalty
    g_inv = np.linalg.pinv(g)
    return g_inv @ (x.T @ z), g_inv


def _leverage(x: FloatArray, g_inv: FloatArray) -> FloatArray:
    return np.einsum("ij,jk,ik->i", x, g_inv, x)


# -- per metric fitting ---------------------------------------------------------------------
@dataclass
class MetricFit:
    """One metric for S series on the H future hours (NaN rows: not forecast)."""

    model: list[str]
    history_points: np.ndarray
    mape: FloatArray
    backtest_points: np.ndarray
    yhat: FloatArray
    lower: FloatArray
    upper: FloatArray
    # Per series flagged to extend: computes yhat past the horizon (only when asked: most
    # limits are settled within the horizon).
    beyond: dict[int, Callable[[], FloatArray]] = field(default_factory=dict)
    notes: list[list[str]] = field(default_factory=list)


class _Transform:
    """Raw values, or log(y + offset) with a per-series offset so zeros are allowed."""

    def __init__(self, kind: str, y: FloatArray, valid: np.ndarray) -> None:
        self.kind = kind
        if kind == "log":
            mean = np.nanmean(np.where(valid, y, np.nan), axis=1)
            self.offset = np.nan_to_num(0.05 * np.abs(mean)) + 1e-9
        else:
            self.offset = np.zeros(y.shape[0])

    def forward(self, y: FloatArray, rows: np.ndarray | slice) -> FloatArray:
        if self.kind == "additive":
            return y
        return np.log(np.maximum(y, 0.0) + self.offset[rows][:, None])

    def back(self, z: FloatArray, rows: np.ndarray | slice) -> FloatArray:
        if self.kind == "additive":
            return np.maximum(z, 0.0)
        return np.maximum(np.exp(np.minimum(z, 80.0)) - self.offset[rows][:, None], 0.0)


def _mape(
    actual: FloatArray, pred: FloatArray, threshold: FloatArray
) -> tuple[FloatArray, np.ndarray]:
    ok = np.isfinite(actual) & (actual > threshold[:, None])
    n = ok.sum(axis=1)
    err = np.where(ok, np.abs(pred - actual) / np.where(ok, actual, 1.0), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mape = err.sum(axis=1) / n
    mape[n < MIN_MAPE_POINTS] = np.nan
    return mape, n


def _band_factor(
    err: FloatArray, q_lo: FloatArray, q_hi: FloatArray, scale: FloatArray
) -> FloatArray:
    """Per series (rows of err): the smallest factor with which [q_lo, q_hi] * scale
    covers INTERVAL of the held-back errors, never below 1."""
    hi = np.maximum(q_hi, 1e-12)[:, None] * scale[None, :]
    lo = np.minimum(q_lo, -1e-12)[:, None] * scale[None, :]
    need = np.where(err >= 0, err / hi, err / lo)
    # Rows of one group share their hours, so err has no gaps.
    factor = np.quantile(need, INTERVAL, axis=1)
    return np.clip(np.nan_to_num(factor, nan=DEFAULT_WIDEN), 1.0, 20.0)


def _beyond(
    design: Callable[[str, str], FloatArray], fs: str, coef: FloatArray, tr: _Transform, r: int
) -> Callable[[], FloatArray]:
    def compute() -> FloatArray:
        return tr.back((design("ext", fs) @ coef)[None, :], np.array([r]))[0]

    return compute


def _rows_by_mask(valid: np.ndarray) -> list[np.ndarray]:
    """Row indices grouped by identical validity mask (one least-squares solve each)."""
    groups: dict[bytes, list[int]] = {}
    for r, packed in enumerate(np.packbits(valid, axis=1)):
        groups.setdefault(packed.tobytes(), []).append(r)
    return [np.asarray(g) for g in groups.values()]


def fit_metric(
    y: FloatArray,
    valid: np.ndarray,
    hours: np.ndarray,
    horizon: int,
    *,
    extend: np.ndarray | None = None,
    extend_hours: int = 0,
) -> MetricFit:
    """Forecast every row of y (S x T hourly values on `hours`, valid where `valid`) for
    the `horizon` hours after the last; rows flagged in `extend` also get yhat for
    `extend_hours` beyond the horizon. Rows sharing a validity mask are fitted together."""
    s_count, t_count = y.shape
    end = int(hours[-1]) + 1
    fut = np.arange(end, end + horizon)
    ext = np.arange(end + horizon, end + horizon + extend_hours)
    bt = BACKTEST_DAYS * 24
    out = MetricFit(
        model=["none"] * s_count,
        history_points=valid.sum(axis=1),
        mape=np.full(s_count, np.nan),
        backtest_points=np.zeros(s_count, dtype=np.int64),
        yhat=np.full((s_count, horizon), np.nan),
        lower=np.full((s_count, horizon), np.nan),
        upper=np.full((s_count, horizon), np.nan),
        notes=[[] for _ in range(s_count)],
    )
    transforms = [_Transform(k, y, valid) for k in ("additive", "log")]
    designs: dict[tuple[str, str], FloatArray] = {}

    def design(which: str, fs: str) -> FloatArray:
        if (which, fs) not in designs:
            h = {"all": hours, "fut": fut, "ext": ext}[which]
            designs[(which, fs)] = design_matrix(h, end, fs)
        return designs[(which, fs)]

    for rows in _rows_by_mask(valid):
        idx = np.flatnonzero(valid[rows[0]])
        span = t_count - int(idx[0]) if idx.size else 0
        if idx.size < MIN_HISTORY_HOURS or span < MIN_HISTORY_HOURS:
            for r in rows:
                out.notes[r].append(
                    f"not enough history: {idx.size} hours with data (needs {MIN_HISTORY_HOURS})"
                )
            continue
        yg = y[rows][:, idx]  # k x n actuals
        mean = yg.mean(axis=1)
        threshold = TRIVIAL_SHARE * np.abs(mean)
        zs = [tr.forward(yg, rows) for tr in transforms]
        # Back-test: everything before the last week -> the last week.
        train = idx < t_count - bt
        test = ~train
        bt_span = t_count - bt - int(idx[0])
        factor = [np.full(rows.size, DEFAULT_WIDEN) for _ in transforms]
        mapes = [np.full(rows.size, np.nan) for _ in transforms]
        npts: np.ndarray[Any, Any] = np.zeros(rows.size, dtype=np.int64)
        bt_fs = ""
        if bt_span >= MIN_HISTORY_HOURS and train.sum() >= MIN_HISTORY_HOURS and test.sum() >= 24:
            fs = bt_fs = feature_set_for(hours[idx[train]])
            x_all = design("all", fs)[idx]
            x_tr, x_te = x_all[train], x_all[test]
            z_tr = np.concatenate([z[:, train] for z in zs]).T  # n_train x 2k
            coef, g_inv = _ridge(x_tr, z_tr)
            resid = z_tr - x_tr @ coef
            q_lo, q_hi = np.quantile(resid, [(1 - INTERVAL) / 2, (1 + INTERVAL) / 2], axis=0)
            pred_z = (x_te @ coef).T  # 2k x n_test
            scale = np.sqrt(1.0 + _leverage(x_te, g_inv))
            k = rows.size
            for i, tr in enumerate(transforms):
                part = slice(i * k, (i + 1) * k)
                pz = pred_z[part]
                pred = tr.back(pz, rows)
                mapes[i], npts = _mape(yg[:, test], pred, threshold)
                err = zs[i][:, test] - pz
                factor[i] = _band_factor(err, q_lo[part], q_hi[part], scale)
        else:
            for r in rows:
                out.notes[r].append(
                    f"no back-test: needs {BACKTEST_DAYS * 24 + MIN_HISTORY_HOURS} hours of "
                    f"history, has {span}; band widened by {DEFAULT_WIDEN:g}"
                )
        # The stored forecast: refit on everything.
        fs = feature_set_for(hours[idx])
        x = design("all", fs)[idx]
        z_all = np.concatenate(zs).T
        coef, g_inv = _ridge(x, z_all)
        resid = z_all - x @ coef
        q_lo, q_hi = np.quantile(resid, [(1 - INTERVAL) / 2, (1 + INTERVAL) / 2], axis=0)
        x_f = design("fut", fs)
        pred_z = (x_f @ coef).T
        scale = np.sqrt(1.0 + _leverage(x_f, g_inv))
        k = rows.size
        # Per series: the transform with the lower back-test MAPE (log when there is none:
        # traffic, tokens and latency vary multiplicatively more often than not).
        m_add, m_log = mapes
        use_log = ~(m_add < m_log)
        for i, tr in enumerate(transforms):
            part = slice(i * k, (i + 1) * k)
            chosen = use_log if tr.kind == "log" else ~use_log
            if not chosen.any():
                continue
            sel = np.flatnonzero(chosen)
            rr = rows[sel]
            pz = pred_z[part][sel]
            f = factor[i][sel][:, None]
            lo = pz + q_lo[part][sel][:, None] * f * scale[None, :]
            hi = pz + q_hi[part][sel][:, None] * f * scale[None, :]
            out.yhat[rr] = tr.back(pz, rr)
            out.lower[rr] = tr.back(lo, rr)
            out.upper[rr] = tr.back(hi, rr)
            out.mape[rr] = mapes[i][sel]
            out.backtest_points[rr] = npts[sel]
            for j, r in zip(sel, rr, strict=True):
                out.model[r] = f"ridge-{tr.kind}/{fs}"
                if extend is not None and extend[r] and extend_hours:
                    out.beyond[int(r)] = _beyond(design, fs, coef[:, i * k + j], tr, int(r))
        for r in rows:
            if np.isfinite(out.mape[r]) and bt_fs and bt_fs != fs:
                out.notes[r].append(
                    f"the back-test model ({bt_fs}, on {train.sum()} hours) had fewer terms than "
                    f"the forecast's ({fs}): its MAPE is pessimistic"
                )
            if np.isfinite(out.mape[r]) or any(n.startswith("no back-test") for n in out.notes[r]):
                continue
            out.notes[r].append(
                f"no MAPE: fewer than {MIN_MAPE_POINTS} held-back hours above "
                f"{TRIVIAL_SHARE:.0%} of the mean"
            )
    return out


# -- limits ---------------------------------------------------------------------------------
def _period_ids(hours: np.ndarray, mode: str) -> np.ndarray:
    if mode == "daily":
        return hours // 24
    return np.asarray(hours.astype("datetime64[h]").astype("datetime64[M]").astype(np.int64))


def first_crossing(
    values: FloatArray, hours: np.ndarray, limit: float, mode: str, carry: float = 0.0
) -> int | None:
    """Index of the first hour whose value ('peak'), or running total within its UTC day
    ('daily') or calendar month ('monthly'), goes over `limit`. `carry` is the actual total
    of the day or month in progress before hours[0]."""
    if values.size == 0:
        return None
    if mode == "peak":
        over = values > limit
    else:
        period = _period_ids(hours, mode)
        total = np.cumsum(values)
        starts = np.r_[True, period[1:] != period[:-1]]
        start_idx = np.maximum.accumulate(np.where(starts, np.arange(values.size), 0))
        before = np.r_[0.0, total][start_idx]
        running = total - before
        running = running + np.where(period == period[0], carry, 0.0)
        over = running > limit
    hit = np.flatnonzero(over)
    return int(hit[0]) if hit.size else None


def _carry(actual: FloatArray, hours: np.ndarray, end: int, mode: str) -> float:
    """Actual total of the day/month in progress at `end` (an absolute hour)."""
    if mode == "peak":
        return 0.0
    current = _period_ids(np.array([end]), mode)[0]
    in_period = _period_ids(hours, mode) == current
    return float(np.nansum(np.where(in_period, actual, 0.0)))


# -- the job --------------------------------------------------------------------------------
@dataclass
class ForecastResult:
    run_at: datetime | None = None
    series: int = 0
    forecasts: int = 0  # series x metric forecast
    not_enough_history: int = 0
    rows: int = 0  # rows written to `forecasts`
    limits_crossed: list[str] = field(default_factory=list)
    read_seconds: float = 0.0
    fit_seconds: float = 0.0
    write_seconds: float = 0.0
    seconds: float = 0.0

    def __str__(self) -> str:
        if self.series == 0:
            return "no series with traffic in the last 8 weeks: nothing to forecast"
        crossed = ""
        if self.limits_crossed:
            more = len(self.limits_crossed) - 5
            crossed = "; limits to be crossed within the horizon (or already): " + ", ".join(
                self.limits_crossed[:5]
            )
            crossed += f" and {more} more" if more > 0 else ""
        return (
            f"{self.forecasts} forecasts for {self.series} series ({self.not_enough_history} "
            f"without enough history), {self.rows} hourly rows in {self.seconds:.2f} s{crossed}"
        )


Progress = Callable[[str], None]


def hour_floor(ts: datetime) -> datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


def _limits_by_series(config: GatewayConfig | None) -> dict[tuple[str, str, str], CapacityLimit]:
    limits = getattr(config, "capacity", ()) if config is not None else ()
    return {lim.series: lim for lim in limits}


def run_forecast(
    store: Store,
    config: GatewayConfig | None = None,
    *,
    now: datetime | None = None,
    horizon_days: int = HORIZON_DAYS,
    history_days: int = HISTORY_DAYS,
    keep_runs: int = KEEP_RUNS,
    progress: Progress | None = None,
    audit_actor: str | None = None,
) -> ForecastResult:
    """Forecast every service and LLM model series and store the run (see module doc).
    `audit_actor`: a person asked for this run (CLI); recorded in the audit log."""
    t0 = time.perf_counter()
    step = progress or (lambda _msg: None)
    run_at = naive_utc(now)
    history_end = hour_floor(run_at - timedelta(seconds=SETTLE_SECONDS))
    history_start = history_end - timedelta(days=history_days)
    result = ForecastResult(run_at=run_at)

    step("read")
    hourly = load_hourly(store, history_start, history_end)
    result.read_seconds = time.perf_counter() - t0

    t1 = time.perf_counter()
    # The matrices are small (hours x ~30 terms): one BLAS thread is faster, and on a busy
    # machine spinning BLAS threads make each product ~15x slower.
    with threadpool_limits(limits=1, user_api="blas"):
        runs, frames = _forecast_frames(
            hourly, history_start, history_end, run_at, config, horizon_days, step, result
        )
    result.fit_seconds = time.perf_counter() - t1

    step("write")
    t2 = time.perf_counter()
    runs_tbl = pa.Table.from_pylist(runs, schema=_RUNS_SCHEMA) if runs else None
    fc_tbl = pa.concat_tables(frames) if frames else None
    with store.write() as con:
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute("DELETE FROM forecasts WHERE run_at = ?", [run_at])
            con.execute("DELETE FROM forecast_runs WHERE run_at = ?", [run_at])
            if runs_tbl is not None:
                con.register("new_forecast_runs", runs_tbl)
                con.execute("INSERT INTO forecast_runs BY NAME SELECT * FROM new_forecast_runs")
                con.unregister("new_forecast_runs")
            if fc_tbl is not None:
                con.register("new_forecasts", fc_tbl)
                con.execute("INSERT INTO forecasts BY NAME SELECT * FROM new_forecasts")
                con.unregister("new_forecasts")
            # Retention: only the newest runs are kept.
            keep = "SELECT DISTINCT run_at FROM forecast_runs ORDER BY run_at DESC LIMIT ?"
            con.execute(f"DELETE FROM forecasts WHERE run_at NOT IN ({keep})", [keep_runs])
            con.execute(f"DELETE FROM forecast_runs WHERE run_at NOT IN ({keep})", [keep_runs])
            if audit_actor is not None:
                from suite.audit import record

                record(
                    con,
                    "capacity.forecast",
                    "forecast_run",
                    run_at.isoformat(sep=" "),
                    detail={"series": result.series, "forecasts": result.forecasts},
                    actor=audit_actor,
                    source="cli",
                )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    result.write_seconds = time.perf_counter() - t2
    result.seconds = time.perf_counter() - t0
    log.info("forecast: %s", result)
    return result


_RUNS_SCHEMA = pa.schema(
    [
        ("run_at", pa.timestamp("us")),
        ("service", pa.string()),
        ("dimension", pa.string()),
        ("key", pa.string()),
        ("metric", pa.string()),
        ("model", pa.string()),
        ("history_points", pa.int64()),
        ("horizon_days", pa.int32()),
        ("interval", pa.float64()),
        ("mape_backtest", pa.float64()),
        ("limit_value", pa.float64()),
        ("limit_name", pa.string()),
        ("crosses_at", pa.timestamp("us")),
        ("hours_to_limit", pa.float64()),
        ("history_start", pa.timestamp("us")),
        ("history_end", pa.timestamp("us")),
        ("backtest_points", pa.int64()),
        ("value_basis", pa.string()),
        ("current_value", pa.float64()),
        ("value_7d", pa.float64()),
        ("value_14d", pa.float64()),
        ("crossing", pa.string()),
        ("upper_crosses_at", pa.timestamp("us")),
        ("upper_hours_to_limit", pa.float64()),
        ("note", pa.string()),
    ]
)


def _hour_dt(h: int) -> datetime:
    return datetime(1970, 1, 1) + timedelta(hours=int(h))


def _finite(v: Any) -> float | None:
    return float(v) if np.isfinite(v) else None


def _forecast_frames(
    hourly: pl.DataFrame,
    history_start: datetime,
    history_end: datetime,
    run_at: datetime,
    config: GatewayConfig | None,
    horizon_days: int,
    step: Progress,
    result: ForecastResult,
) -> tuple[list[dict[str, Any]], list[pa.Table]]:
    """forecast_runs rows and forecasts tables for every series and metric."""
    runs: list[dict[str, Any]] = []
    frames: list[pa.Table] = []
    limits = _limits_by_series(config)
    if hourly.is_empty():
        for m in METRICS:
            step(m.name)
        runs += _no_traffic_rows(limits, set(), run_at, history_end, horizon_days)
        return runs, frames
    epoch = datetime(1970, 1, 1)
    h0 = int((history_start - epoch).total_seconds() // 3600)
    h_end = int((history_end - epoch).total_seconds() // 3600)
    hours = np.arange(h0, h_end)
    t_count = hours.size
    horizon = horizon_days * 24
    fut = np.arange(h_end, h_end + horizon)
    ext_hours = EXTRAPOLATE_DAYS * 24 - horizon

    keys = (
        hourly.select("service", "dimension", "key").unique().sort(["service", "dimension", "key"])
    )
    keys = keys.with_row_index("sid")
    df = hourly.join(keys, on=["service", "dimension", "key"], how="left").with_columns(
        ((pl.col("hour") - pl.lit(history_start)).dt.total_hours()).alias("t")
    )
    sid = df["sid"].to_numpy().astype(np.int64)
    t = df["t"].to_numpy().astype(np.int64)
    s_count = keys.height
    result.series = s_count
    first = np.full(s_count, t_count, dtype=np.int64)
    np.minimum.at(first, sid, t)
    since_first = np.arange(t_count)[None, :] >= first[:, None]
    obs = {
        "tokens": np.bincount(sid, weights=df["token_obs"].to_numpy(), minlength=s_count) > 0,
        "cost_usd": np.bincount(sid, weights=df["cost_obs"].to_numpy(), minlength=s_count) > 0,
    }
    series_keys: list[tuple[str, str, str]] = [
        (a, b, c) for a, b, c in keys.select("service", "dimension", "key").iter_rows()
    ]
    fut_ts = (fut.astype("datetime64[h]")).astype("datetime64[us]")
    day = 24

    for spec in METRICS:
        step(spec.name)
        col = df[spec.name].to_numpy().astype(np.float64)
        y = np.full((s_count, t_count), np.nan)
        y[sid, t] = col
        if spec.name == "p95_ms":
            valid = np.isfinite(y)
        else:
            valid = since_first.copy()
            y = np.where(valid, np.nan_to_num(y, nan=0.0), np.nan)
        rows = np.arange(s_count)
        if spec.name in obs:
            rows = np.flatnonzero(obs[spec.name])
        if rows.size == 0:
            continue
        yr, vr = y[rows], valid[rows]
        lim_vals = np.full(rows.size, np.nan)
        for i, r in enumerate(rows):
            lim = limits.get(series_keys[r])
            value = getattr(lim, spec.limit_key, None) if lim and spec.limit_key else None
            if value is not None:
                lim_vals[i] = value
        fit = fit_metric(
            yr,
            vr,
            hours,
            horizon,
            extend=np.isfinite(lim_vals),
            extend_hours=ext_hours,
        )
        fc_rows: list[int] = []
        for i, r in enumerate(rows):
            service, dimension, key = series_keys[r]
            actual = yr[i]
            forecast_ok = fit.model[i] != "none"
            last24 = actual[-day:]
            day7, day14 = fit.yhat[i, 6 * day : 7 * day], fit.yhat[i, 13 * day : 14 * day]
            if spec.basis == "daily peak":
                current = np.nanmax(last24) if np.isfinite(last24).any() else np.nan
                v7 = np.max(day7) if forecast_ok and day7.size else np.nan
                v14 = np.max(day14) if forecast_ok and day14.size else np.nan
            else:
                current = np.nansum(last24)
                v7 = np.sum(day7) if forecast_ok and day7.size else np.nan
                v14 = np.sum(day14) if forecast_ok and day14.size else np.nan
            row: dict[str, Any] = {
                "run_at": run_at,
                "service": service,
                "dimension": dimension,
                "key": key,
                "metric": spec.name,
                "model": fit.model[i],
                "history_points": int(fit.history_points[i]),
                "horizon_days": horizon_days,
                "interval": INTERVAL,
                "mape_backtest": _finite(fit.mape[i]),
                "limit_value": _finite(lim_vals[i]),
                "limit_name": spec.limit_key if np.isfinite(lim_vals[i]) else None,
                "crosses_at": None,
                "hours_to_limit": None,
                "history_start": _hour_dt(hours[int(np.argmax(vr[i]))]) if vr[i].any() else None,
                "history_end": history_end,
                "backtest_points": int(fit.backtest_points[i]),
                "value_basis": spec.basis,
                "current_value": _finite(current),
                "value_7d": _finite(v7),
                "value_14d": _finite(v14),
                "crossing": None,
                "upper_crosses_at": None,
                "upper_hours_to_limit": None,
                "note": None,
            }
            notes = list(fit.notes[i])
            if not forecast_ok:
                result.not_enough_history += 1
            else:
                result.forecasts += 1
                fc_rows.append(i)
            if np.isfinite(lim_vals[i]):
                notes += _time_to_limit(row, spec, lim_vals[i], actual, hours, h_end, fut, fit, i)
                if row["crossing"] in ("forecast", "already_over"):
                    result.limits_crossed.append(
                        f"{series_label(service, dimension, key)} {spec.name}"
                    )
            row["note"] = "; ".join(notes) or None
            runs.append(row)
        if fc_rows:
            sel = np.asarray(fc_rows)
            n = sel.size
            each = np.repeat(np.arange(n), horizon)
            frames.append(
                pa.table(
                    {
                        "run_at": pa.array([run_at] * (n * horizon), pa.timestamp("us")),
                        "service": pa.array([series_keys[rows[i]][0] for i in sel]).take(each),
                        "dimension": pa.array([series_keys[rows[i]][1] for i in sel]).take(each),
                        "key": pa.array([series_keys[rows[i]][2] for i in sel]).take(each),
                        "metric": pa.array([spec.name]).take(np.zeros(n * horizon, np.int64)),
                        "ts": pa.array(np.tile(fut_ts, n)),
                        "yhat": fit.yhat[sel].ravel(),
                        "lower": fit.lower[sel].ravel(),
                        "upper": fit.upper[sel].ravel(),
                    }
                )
            )
            result.rows += n * horizon
    runs += _no_traffic_rows(limits, set(series_keys), run_at, history_end, horizon_days)
    return runs, frames


def _no_traffic_rows(
    limits: dict[tuple[str, str, str], CapacityLimit],
    present: set[tuple[str, str, str]],
    run_at: datetime,
    history_end: datetime,
    horizon_days: int,
) -> list[dict[str, Any]]:
    """A row per configured limit whose series had no traffic, so `capacity show` still
    lists the limit and says why there is no forecast."""
    rows = []
    for series, lim in sorted(limits.items()):
        if series in present:
            continue
        for spec in METRICS:
            value = getattr(lim, spec.limit_key) if spec.limit_key else None
            if value is None:
                continue
            rows.append(
                {
                    "run_at": run_at,
                    "service": series[0],
                    "dimension": series[1],
                    "key": series[2],
                    "metric": spec.name,
                    "model": "none",
                    "history_points": 0,
                    "horizon_days": horizon_days,
                    "interval": INTERVAL,
                    "limit_value": float(value),
                    "limit_name": spec.limit_key,
                    "history_end": history_end,
                    "backtest_points": 0,
                    "value_basis": spec.basis,
                    "crossing": "unknown",
                    "note": f"no traffic in the last {HISTORY_DAYS // 7} weeks",
                }
            )
    return rows


def _time_to_limit(
    row: dict[str, Any],
    spec: MetricSpec,
    limit: float,
    actual: FloatArray,
    hours: np.ndarray,
    h_end: int,
    fut: np.ndarray,
    fit: MetricFit,
    i: int,
) -> list[str]:
    """Fill the crossing columns of `row`; returns notes for the row."""
    mode = spec.crossing_mode
    carry = _carry(actual, hours, h_end, mode)
    last = actual[np.isfinite(actual)]
    now_over = (carry > limit) if mode != "peak" else bool(last.size and last[-1] > limit)
    if now_over:
        row.update(crossing="already_over", crosses_at=_hour_dt(h_end), hours_to_limit=0.0)
        row.update(upper_crosses_at=_hour_dt(h_end), upper_hours_to_limit=0.0)
        return ["already over the limit in the period in progress"]
    if fit.model[i] == "none":
        row["crossing"] = "unknown"
        return []
    notes: list[str] = []
    hit = first_crossing(fit.yhat[i], fut, limit, mode, carry)
    up = first_crossing(fit.upper[i], fut, limit, mode, carry)
    if up is not None:
        row.update(upper_crosses_at=_hour_dt(fut[up]), upper_hours_to_limit=float(up))
    if hit is not None:
        row.update(crossing="forecast", crosses_at=_hour_dt(fut[hit]), hours_to_limit=float(hit))
        return notes
    ext = fit.beyond[i]() if i in fit.beyond else None
    if ext is not None:
        all_hours = np.arange(fut[0], fut[0] + fut.size + ext.size)
        hit = first_crossing(np.r_[fit.yhat[i], ext], all_hours, limit, mode, carry)
    if hit is not None:
        row.update(
            crossing="extrapolated",
            crosses_at=_hour_dt(all_hours[hit]),
            hours_to_limit=float(hit),
        )
        notes.append(
            f"limit crossed after the {fut.size // 24}-day forecast: extrapolated from the "
            "trend, indicative only"
        )
    else:
        row["crossing"] = "not_within_year"
    return notes


def forecast_job(store: Store, config: GatewayConfig) -> ForecastResult:
    """The worker's `forecast` job."""
    return run_forecast(store, config)
