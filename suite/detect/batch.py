"""Score many series at once (the detect job's load): one fresh detector per series, run
on a small thread pool, since numpy and scipy release the GIL for the heavy loops.

It never shares a detector instance between threads, and it keeps input order.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from suite.detect.base import FloatArray
from suite.detect.registry import DEFAULT_DETECTOR, get_detector


def score_many(
    series: Sequence[tuple[Any, Any]],
    detector: str = DEFAULT_DETECTOR,
    *,
    params: dict[str, Any] | None = None,
    workers: int | None = None,
) -> list[FloatArray]:
    """score_series for each (timestamps, values) pair, in order, `workers` at a time
    (default: one per CPU core, at most 4)."""
    params = params or {}
    get_detector(detector, **params)  # bad names/params fail here, not in a thread

    def one(item: tuple[Any, Any]) -> FloatArray:
        return get_detector(detector, **params).score_series(*item)

    n = workers or min(4, os.cpu_count() or 1)
    if n <= 1 or len(series) <= 1:
        return [one(item) for item in series]
    with ThreadPoolExecutor(max_workers=n, thread_name_prefix="aiops-detect") as pool:
        return [np.asarray(s) for s in pool.map(one, series)]
