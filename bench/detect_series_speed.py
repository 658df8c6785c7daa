"""Detector throughput: the default detector over 30 days of minute data for 200 series,
the load of one detect job, plus per-point live update() cost.

Series are made like minute rollups (daily cycle, noise, a few incidents), generation is
not timed. The design target is the whole job under 5 s including DuckDB I/O, so scoring
itself should stay near 3 s on the 2-core reference machine.

Usage: .venv/bin/python bench/detect_series_speed.py [--series 200] [--days 30]
       [--detector default] [--updates 2000] [--json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from suite.detect import get_detector, score_many


def make_series(n_series: int, n_points: int, seed: int = 0) -> tuple[np.ndarray, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    t = np.datetime64("2026-01-01T00:00:00", "ns") + np.arange(n_points) * np.timedelta64(60, "s")
    minute = np.arange(n_points) % 1440
    out = []
    for _ in range(n_series):
        level = rng.uniform(10, 1000)
        v = level * (1 + 0.3 * np.sin(2 * np.pi * minute / 1440 + rng.uniform(0, 6)))
        v += rng.normal(0, 0.05 * level, n_points)
        at = rng.integers(n_points // 4, n_points - 100)
        v[at : at + 60] += 0.5 * level  # one incident per series
        out.append(v)
    return t, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=int, default=200)
    ap.add_argument("--days", type=float, default=30)
    ap.add_argument("--detector", default="default")
    ap.add_argument("--updates", type=int, default=2000, help="live update() calls to time")
    ap.add_argument("--workers", type=int, default=None, help="score_many threads")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    n_points = int(a.days * 1440)
    t, series = make_series(a.series, n_points)
    det = get_detector(a.detector)
    det.score_series(t[:2000], series[0][:2000])  # warm imports and caches
    t0 = time.perf_counter()
    alarms = 0
    for v in series:
        alarms += int(np.sum(det.score_series(t, v) >= det.threshold))
    serial_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    scored = score_many([(t, v) for v in series], a.detector, workers=a.workers)
    seconds = time.perf_counter() - t0
    assert sum(int(np.sum(s >= det.threshold)) for s in scored) == alarms
    points = a.series * n_points

    live = get_detector(a.detector)
    live.extend(t[: -a.updates], series[0][: -a.updates])
    u0 = time.perf_counter()
    for ts, x in zip(t[-a.updates :], series[0][-a.updates :], strict=True):
        live.update(ts, float(x))
    per_update = (time.perf_counter() - u0) / a.updates

    result = {
        "detector": a.detector,
        "series": a.series,
        "points_per_series": n_points,
        "points": points,
        "seconds": round(seconds, 3),
        "serial_seconds": round(serial_seconds, 3),
        "points_per_second": round(points / seconds),
        "alarms": alarms,
        "update_ms": round(per_update * 1000, 3),
    }
    if a.json:
        print(json.dumps(result))
    else:
        print(
            f"{a.detector}: {points:,} points ({a.series} series x {n_points:,}) in "
            f"{seconds:.2f} s with score_many = {points / seconds / 1e6:.2f} M points/s "
            f"(one thread: {serial_seconds:.2f} s; {alarms} alarms); "
            f"live update(): {per_update * 1000:.2f} ms/point"
        )


if __name__ == "__main__":
    main()
