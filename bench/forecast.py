"""Forecast job time: one `run_forecast` over 30 days of minute rollups for 200 series.

Seeds `metrics_1m` of a temporary home through Arrow: 160 services plus 40 LLM model
series (on the first 40 services), each a minute series with a trend, daily and weekly
seasonality and Poisson noise; LLM series also carry tokens and cost. Every series gets
[[capacity]] limits, so the time-to-limit path (including the extrapolation past the
horizon) is part of the figure. Then times one forecast job end to end on that home: the
hourly read, the back-tests and fits of every metric, and the write of `forecasts` and
`forecast_runs`. Seeding is timed separately and is not part of the figure.

Target (issue 6): under 10 s. Prints seconds per stage, the series and rows, the
back-test MAPE and the ratio to the target.

Usage: .venv/bin/python bench/forecast.py [--days 30] [--services 160] [--models 40] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

from suite.capacity_config import CapacityLimit
from suite.config import GatewayConfig
from suite.forecast import run_forecast
from suite.store import Store

TARGET_SECONDS = 10.0
START = datetime(2026, 1, 5)  # a Monday


def series_table(service: str, dimension: str, key: str, s: int, m0: int, m1: int) -> pa.Table:
    """Minutes [m0, m1) of one series; the noise is seeded by series and range, so any
    chunking gives the same data."""
    rng = np.random.default_rng([s, m0, 0 if dimension == "service" else 1])
    m = np.arange(m0, m1)
    n = m.size
    hod = (m / 60.0) % 24
    weekend = ((m // 1440) % 7) >= 5
    level = base_rpm(s) * growth(s, m) * (1 + 0.6 * np.sin(2 * np.pi * (hod - 9 + s % 5) / 24))
    requests = rng.poisson(level * np.where(weekend, 0.55, 1.0))
    llm = dimension == "model" or s < 40
    p95 = 120 + s + 25 * np.sin(2 * np.pi * hod / 24) + rng.normal(0, 6, n)
    zeros = np.zeros(n, dtype=np.int64)
    return pa.table(
        {
            "minute": np.datetime64(START, "us") + m.astype("timedelta64[m]"),
            "service": pa.array([service]).take(np.zeros(n, np.int64)),
            "dimension": pa.array([dimension]).take(np.zeros(n, np.int64)),
            "key": pa.array([key]).take(np.zeros(n, np.int64)),
            "requests": requests,
            "errors_4xx": zeros,
            "errors_5xx": zeros,
            "gateway_errors": zeros,
            "error_ratio": np.zeros(n),
            "latency_p95_ms": p95,
            "prompt_tokens": pa.array(requests * 400) if llm else pa.nulls(n, pa.int64()),
            "completion_tokens": pa.array(requests * 120) if llm else pa.nulls(n, pa.int64()),
            "cost_usd": pa.array(requests * 0.0009) if llm else pa.nulls(n, pa.float64()),
            "computed_at": pa.array([START]).take(np.zeros(n, np.int64)).cast(pa.timestamp("us")),
        }
    )


def base_rpm(s: int) -> float:
    return 5.0 + 3.0 * (s % 17)


def growth(s: int, minute: np.ndarray | int) -> np.ndarray | float:
    return 1 + (0.002 + 0.0005 * (s % 9)) * np.asarray(minute) / 1440  # 0.2% .. 0.6% a day


def seed(store: Store, days: int, services: int, models: int) -> tuple[int, list[CapacityLimit]]:
    specs = [(f"svc-{s:03d}", "service", "", s) for s in range(services)]
    specs += [(f"svc-{s:03d}", "model", f"model-{s % 4}", s + 7) for s in range(models)]
    rows = 0
    # Chunks of a few days for every series, in key order: the primary-key index of
    # metrics_1m takes rows in order much faster than series after series.
    chunk = 3 * 1440
    for m0 in range(0, days * 1440, chunk):
        m1 = min(m0 + chunk, days * 1440)
        table = pa.concat_tables(series_table(*spec, m0, m1) for spec in specs)
        table = table.sort_by([("minute", "ascending"), ("service", "ascending")])
        with store.write() as con:
            con.register("seed", table)
            con.execute("INSERT INTO metrics_1m BY NAME SELECT * FROM seed")
            con.unregister("seed")
        rows += table.num_rows
    limits = []
    end = days * 1440
    for service, dimension, key, s in specs:
        llm = dimension == "model" or s < 40
        mean_rpm = base_rpm(s) * float(growth(s, end)) * (5 + 2 * 0.55) / 7
        peak_rps = base_rpm(s) * float(growth(s, end)) * 1.6 / 60
        limits.append(
            CapacityLimit(
                service=service,
                model=key or None,
                # Some are crossed within 14 days, some later, some already.
                max_rps=peak_rps * (0.98 + 0.04 * (s % 6)),
                max_p95_ms=300.0,
                token_quota_per_day=mean_rpm * 1440 * 520 * (1.0 + 0.05 * (s % 5)) if llm else None,
                monthly_budget_usd=mean_rpm * 1440 * 0.0009 * 31 * (0.9 + 0.1 * (s % 4))
                if llm
                else None,
            )
        )
    return rows, limits


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--services", type=int, default=160)
    ap.add_argument("--models", type=int, default=40, help="LLM model series (default 40)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="aiops-bench-forecast-"))
    try:
        store = Store(root)
        t0 = time.perf_counter()
        rows, limits = seed(store, args.days, args.services, args.models)
        seed_seconds = time.perf_counter() - t0
        config = GatewayConfig(path="bench", capacity=tuple(limits))
        now = START + timedelta(days=args.days, minutes=5)
        # pyarrow imports pandas lazily on first use: a once-per-process cost the worker
        # has paid long before (ingest uses arrow), so it is paid here before timing.
        pa.Table.from_pylist([{"x": 1}]).to_pandas()
        result = run_forecast(store, config, now=now)
        stats = store.query(
            "SELECT metric, count(*) AS n, 100 * median(mape_backtest) AS mape_median, "
            "count(*) FILTER (WHERE crossing = 'forecast') AS within_14d, "
            "count(*) FILTER (WHERE crossing = 'extrapolated') AS extrapolated "
            "FROM forecast_runs GROUP BY 1 ORDER BY 1"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)

    by_metric = stats.to_dicts()
    out = {
        "series": result.series,
        "forecasts": result.forecasts,
        "metrics_rows": rows,
        "forecast_rows": result.rows,
        "seed_seconds": round(seed_seconds, 2),
        "seconds": round(result.seconds, 3),
        "read_seconds": round(result.read_seconds, 3),
        "fit_seconds": round(result.fit_seconds, 3),
        "write_seconds": round(result.write_seconds, 3),
        "by_metric": by_metric,
        "target_seconds": TARGET_SECONDS,
        "ratio_to_target": round(TARGET_SECONDS / result.seconds, 2),
    }
    if args.json:
        print(json.dumps(out))
    else:
        print(
            f"forecast: {out['series']} series ({args.days} days of minutes, "
            f"{rows:,} metrics_1m rows) -> {out['forecasts']} forecasts, "
            f"{out['forecast_rows']:,} hourly rows in {out['seconds']:.2f} s"
        )
        print(
            f"  read {out['read_seconds']:.2f} s, fit {out['fit_seconds']:.2f} s, "
            f"write {out['write_seconds']:.2f} s (seeding {out['seed_seconds']:.1f} s, not counted)"
        )
        print(f"  {'metric':<10}{'series':>8}{'median MAPE %':>15}{'limit <14d':>12}{'later':>8}")
        for r in by_metric:
            mape = "-" if r["mape_median"] is None else f"{r['mape_median']:.1f}"
            print(
                f"  {r['metric']:<10}{r['n']:>8}{mape:>15}{r['within_14d']:>12}"
                f"{r['extrapolated']:>8}"
            )
        verdict = "OK" if result.seconds < TARGET_SECONDS else "SLOWER THAN TARGET"
        print(
            f"  target < {TARGET_SECONDS:g} s: {verdict}, "
            f"{out['ratio_to_target']:.2f}x faster than needed"
        )
    return 0 if result.seconds < TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
