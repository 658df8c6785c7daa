"""Multivariate detector over several signals of one service at once (rate, error
ratio, p95 latency, tokens): scikit-learn IsolationForest refit on past points only.

Causal: the model that scores point t was fitted on points before the last refit, all
earlier than t; refits happen at fixed point counts so live and replay agree.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from suite.detect.base import DetectorError, FloatArray, State, _as_inputs

_MULTI: dict[str, type[MultiDetector]] = {}


class MultiDetector:
    """Scores an n_points x n_signals matrix; same state contract as Detector."""

    name: ClassVar[str] = ""
    threshold: float = 0.5
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, **params: Any) -> None:
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise DetectorError(
                f"detector {self.name!r}: unknown parameter(s) {', '.join(unknown)}"
            )
        self.params = {**self.defaults, **params}
        self.threshold = float(self.params.get("threshold", self.threshold))
        self._carry: State = {}
        self._models: dict[int, Any] = {}

    def score_frame(self, timestamps: Any, matrix: Any) -> FloatArray:
        ts_ns, x = _as_matrix(timestamps, matrix)
        saved, self._models = self._models, {}
        try:
            return self._score(ts_ns, x, {})[0]
        finally:
            self._models = saved

    def extend_frame(self, timestamps: Any, matrix: Any) -> FloatArray:
        ts_ns, x = _as_matrix(timestamps, matrix)
        scores, self._carry = self._score(ts_ns, x, self._carry)
        return scores

    def update(self, timestamp: Any, row: Any) -> float:
        return float(self.extend_frame(np.array([timestamp], dtype="datetime64[ns]"), [row])[0])

    def get_state(self) -> State:
        return {"detector": self.name, "params": dict(self.params), "carry": dict(self._carry)}

    def set_state(self, state: State) -> None:
        if state.get("detector") != self.name:
            raise DetectorError(f"state belongs to {state.get('detector')!r}, not {self.name!r}")
        self._carry = dict(state["carry"])
        self._models = {}

    def reset(self) -> None:
        self._carry = {}
        self._models = {}

    def _score(self, ts_ns: np.ndarray, x: FloatArray, carry: State) -> tuple[FloatArray, State]:
        raise NotImplementedError


def _as_matrix(timestamps: Any, matrix: Any) -> tuple[np.ndarray, FloatArray]:
    x = np.asarray(matrix, dtype=np.float64)
    if x.ndim != 2:
        raise DetectorError(f"matrix must be 2-D (n_points x n_signals), got shape {x.shape}")
    ts_ns, _ = _as_inputs(timestamps, np.zeros(len(x)))
    return ts_ns, x


def register_multi_detector(name: str) -> Any:
    def add(cls: type[MultiDetector]) -> type[MultiDetector]:
        cls.name = name
        _MULTI[name] = cls
        return cls

    return add


def get_multi_detector(name: str = "robust_covariance", **params: Any) -> MultiDetector:
    cls = _MULTI.get(name)
    if cls is None:
        raise DetectorError(
            f"unknown multivariate detector {name!r}; known: {', '.join(multi_detector_names())}"
        )
    return cls(**params)


def multi_detector_names() -> list[str]:
    return sorted(_MULTI)


class RefitDetector(MultiDetector):
    """Refits a model every `refit_every` points on the last `train_points` complete
    past rows (robustly standardised) and scores the next rows with it."""

    defaults: ClassVar[dict[str, Any]] = {
        "train_points": 2000,
        "refit_every": 500,
        "min_train": 200,
        "threshold": 0.5,
    }

    def _fit(self, z: FloatArray) -> Any:
        raise NotImplementedError

    def _score_rows(self, model: Any, z: FloatArray) -> FloatArray:
        raise NotImplementedError

    def _score(self, ts_ns: np.ndarray, x: FloatArray, carry: State) -> tuple[FloatArray, State]:
        p = self.params
        hist = carry.get("hist", np.zeros((0, x.shape[1])))
        if hist.shape[1] != x.shape[1]:
            raise DetectorError(
                f"matrix has {x.shape[1]} signals but the state was built with {hist.shape[1]}"
            )
        n0 = int(carry.get("n", 0))
        full = np.vstack([hist, x])
        offset = n0 - len(hist)  # global index of full[0]
        out = np.zeros(len(x))
        train, every = int(p["train_points"]), int(p["refit_every"])
        epoch = (n0 + np.arange(len(x))) // every
        for e in np.unique(epoch):
            fit_end = int(e) * every  # the model for this epoch sees rows before this one
            rows = np.flatnonzero(epoch == e)
            # The fit is a pure function of past rows, so live updates reuse it (not
            # part of the saved state: a restored detector refits once).
            cached = self._models.get(fit_end)
            if cached is None:
                past = full[max(0, fit_end - train - offset) : max(0, fit_end - offset)]
                past = past[~np.isnan(past).any(axis=1)]
                if len(past) < int(p["min_train"]):
                    continue
                med = np.median(past, axis=0)
                mad = np.median(np.abs(past - med), axis=0) * 1.4826
                scale = np.where(mad > 0, mad, np.std(past, axis=0))
                scale = np.where(scale > 0, scale, 1.0)
                cached = (med, scale, self._fit((past - med) / scale))
                self._models = {fit_end: cached}
            med, scale, model = cached
            cur = x[rows]
            ok = ~np.isnan(cur).any(axis=1)
            if ok.any():
                out[rows[ok]] = np.clip(self._score_rows(model, (cur[ok] - med) / scale), 0, 1)
        keep = train + every
        return out, {"hist": full[-keep:].copy(), "n": n0 + len(x)}


@register_multi_detector("robust_covariance")
class RobustCovarianceDetector(RefitDetector):
    """Mahalanobis distance under a trimmed (MCD-style) covariance of past rows; the
    score is the chi-square tail probability on a log scale (0.5 = a 1e-5 chance), so it
    grows with the distance instead of saturating."""

    def _fit(self, z: FloatArray) -> Any:
        from scipy.stats import chi2

        # Concentration steps as in MCD: refit on the 90% of rows closest under the
        # current fit. A small ridge keeps collinear signals (tokens ~ rate) invertible.
        k = z.shape[1]
        keep = np.sum(z * z, axis=1) <= np.quantile(np.sum(z * z, axis=1), 0.9)
        for _ in range(3):
            mean = z[keep].mean(axis=0)
            cov = np.atleast_2d(np.cov(z[keep], rowvar=False)) + 1e-3 * np.eye(k)
            prec = np.linalg.inv(cov)
            d2 = np.einsum("ij,jk,ik->i", z - mean, prec, z - mean)
            keep = d2 <= np.quantile(d2, 0.9)
        # Consistency: on clean rows the median distance should be chi2's median.
        factor = float(np.median(d2)) / float(chi2.ppf(0.5, k))
        return mean, prec / max(factor, 1e-12)

    def _score_rows(self, model: Any, z: FloatArray) -> FloatArray:
        from scipy.stats import chi2

        mean, prec = model
        d2 = np.einsum("ij,jk,ik->i", z - mean, prec, z - mean)
        log_tail = -chi2.logsf(d2, z.shape[1]) / np.log(10.0)  # -log10 P(chance)
        return np.asarray(log_tail / 10.0)


@register_multi_detector("isolation_forest")
class IsolationForestDetector(RefitDetector):
    """IsolationForest; 0.5 at the training rows' `contamination` tail. It isolates
    points beyond the training range at the depth of the outermost training points, so
    its scores saturate: prefer robust_covariance when the size of an excursion matters."""

    defaults: ClassVar[dict[str, Any]] = {
        **RefitDetector.defaults,
        "n_estimators": 50,
        "contamination": 0.005,
        "random_state": 0,
    }

    def _fit(self, z: FloatArray) -> Any:
        from sklearn.ensemble import IsolationForest

        p = self.params
        model = IsolationForest(
            n_estimators=int(p["n_estimators"]), random_state=int(p["random_state"])
        ).fit(z)
        train = -model.score_samples(z)
        cut = float(np.quantile(train, 1 - float(p["contamination"])))
        return model, cut, max(cut - float(np.median(train)), 1e-9)

    def _score_rows(self, model: Any, z: FloatArray) -> FloatArray:
        forest, cut, spread = model
        return np.asarray(0.5 + 0.5 * np.tanh((-forest.score_samples(z) - cut) / spread))
