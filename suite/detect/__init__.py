"""Anomaly detectors: small causal, streaming classes behind one interface, in a registry.

Nothing here opens the store or reads a value later than the point being scored.

The interface (``suite.detect.base.Detector``)::

    det = get_detector("default", **params)     # a fresh instance; detector_names() lists them
    scores = det.score_series(timestamps, values)
        # timestamps: numpy datetime64[ns] array; values: float64 array, NaN = missing
        # -> float array, one anomaly_score in [0, 1] per point (0 for missing points).
        # Causal: scores[:k] are the same whether the series is cut at k or not.
        # A fresh start every call; the instance's state is untouched.
    alarms = scores >= det.threshold             # each detector has its own threshold
    det.update(ts, value) -> float              # live: one point, continuing the state
    det.extend(timestamps, values) -> scores    # the same, a chunk at a time (vectorised)
    state = det.get_state(); det.set_state(state)   # persist between worker runs
    blob = dump_state(state); load_state(blob)      # ... as bytes (numpy .npz)
    det.reset()
    score_many([(timestamps, values), ...], "default")   # many series, threads, in order

``update``/``extend`` over a sequence give the scores ``score_series`` gives over the whole
sequence (to float rounding), so what a worker scored live is what a replay scores.

Multivariate detectors (one service's signals together: rate, error ratio, p95, tokens)::

    det = get_multi_detector("robust_covariance")   # multi_detector_names() lists them
    det.score_frame(timestamps, matrix)         # matrix: n_points x n_signals, NaN rows score 0
    det.extend_frame(...), det.update(ts, row), get_state()/set_state() as above

Built in: "default" (the one to use: seasonal residuals + EWMA level shifts + new extremes
+ jumps + flatlines, through an anomaly likelihood; a point alarms only when it deviates
itself by a minimum effect, once per anomalous episode: the episode's later anomalous
points score np.nextafter(threshold, 0), "held"), "seasonal" (robust
same-time-of-day/week median baseline), "level_shift" (EWMA chart); multivariate
"robust_covariance" (trimmed-covariance Mahalanobis) and "isolation_forest", both refit
every `refit_every` points on past points only. DEFAULT_DETECTOR == "default".

Adding your own (a notebook can do this)::

    @register_detector("my_detector")
    class Mine(Detector):
        defaults = {"threshold": 0.5, "k": 3.0}      # every accepted parameter
        def _score(self, ts_ns, values, carry):      # int64 ns, float64 without NaN
            ...                                      # use and update carry (a dict)
            return scores, carry
"""

from __future__ import annotations

from suite.detect import default as _default  # noqa: F401  (registers "default")
from suite.detect import level_shift as _level_shift  # noqa: F401
from suite.detect import multivariate as _multivariate  # noqa: F401
from suite.detect import seasonal as _seasonal  # noqa: F401
from suite.detect.base import Detector, DetectorError, dump_state, load_state
from suite.detect.batch import score_many
from suite.detect.multivariate import MultiDetector, get_multi_detector, multi_detector_names
from suite.detect.registry import (
    DEFAULT_DETECTOR,
    detector_names,
    get_detector,
    register_detector,
)

__all__ = [
    "DEFAULT_DETECTOR",
    "Detector",
    "DetectorError",
    "MultiDetector",
    "detector_names",
    "dump_state",
    "get_detector",
    "get_multi_detector",
    "load_state",
    "multi_detector_names",
    "register_detector",
    "score_many",
]
