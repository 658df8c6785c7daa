"""Detectors for notebooks and plugins: register your own, run any on a polars frame.

    import suite.detectors as detectors

    @detectors.register("spike")
    class Spike(detectors.Detector): ...

    scored = detectors.score(frame, "spike")      # adds anomaly_score and anomaly

A detector registered in a notebook lives in that Python process. For the worker to run
it, put the class in a module or .py file and name it in the config:

    [detect]
    detector = "spike"
    plugins = ["my_detectors.py"]     # imported by `aiops worker` before it detects
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from suite.detect import DEFAULT_DETECTOR, Detector, DetectorError
from suite.detect.registry import detector_names, get_detector, register_detector
from suite.errors import AiopsError

__all__ = [
    "DEFAULT_DETECTOR",
    "Detector",
    "DetectorError",
    "get",
    "load_plugins",
    "names",
    "register",
    "score",
]

register = register_detector
get = get_detector
names = detector_names

_loaded: set[str] = set()


class PluginError(AiopsError):
    exit_code = 2


def load_plugins(plugins: Iterable[str]) -> list[str]:
    """Import detector plugins (module names or .py paths) once per process; returns the
    names newly imported. A plugin that fails to import is an error naming it."""
    done: list[str] = []
    for plugin in plugins:
        if plugin in _loaded:
            continue
        try:
            if plugin.endswith(".py"):
                path = Path(plugin)
                digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]
                name = f"aiops_plugin_{path.stem}_{digest}"
                spec = importlib.util.spec_from_file_location(name, path)
                if spec is None or spec.loader is None:
                    raise ImportError(f"cannot load {path}")
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                spec.loader.exec_module(module)
            else:
                importlib.import_module(plugin)
        except Exception as e:  # a plugin's own error, whatever it is
            raise PluginError(
                f"detector plugin {plugin!r} failed to import: {type(e).__name__}: {e}"
            ) from e
        _loaded.add(plugin)
        done.append(plugin)
    return done


def score(
    frame: pl.DataFrame,
    detector: str = DEFAULT_DETECTOR,
    *,
    timestamp: str = "timestamp",
    value: str = "value",
    **params: Any,
) -> pl.DataFrame:
    """The frame with `anomaly_score` (0..1, causal) and `anomaly` (at the detector's own
    threshold) added, scoring `value` over `timestamp` (sorted ascending)."""
    for col in (timestamp, value):
        if col not in frame.columns:
            raise DetectorError(f"score: the frame has no column {col!r} ({frame.columns})")
    det = get_detector(detector, **params)
    ts = frame[timestamp].cast(pl.Datetime("ns")).to_numpy()
    values = frame[value].cast(pl.Float64).to_numpy()
    if len(ts) > 1 and np.any(np.diff(ts.astype("int64")) < 0):
        raise DetectorError("score: timestamps must be sorted ascending")
    scores = det.score_series(ts, values)
    return frame.with_columns(
        pl.Series("anomaly_score", scores), pl.Series("anomaly", scores >= det.threshold)
    )
