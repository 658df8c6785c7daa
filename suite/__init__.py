"""AIOps Suite: the Python API that notebooks and scripts use.

Everything returns polars DataFrames, read through the same store (and the same
cross-process lock) as the worker and the dashboards; nothing here keeps DuckDB open.

    import suite
    suite.connect(home="~/.aiops")            # else $AIOPS_HOME, else ~/.aiops
    suite.query("SELECT route, count(*) FROM requests GROUP BY route")
    suite.requests(since="24h", service="claims", kind="llm")
    suite.incidents(status="open")
    suite.changes(since="7d")
    suite.metrics(service="claims", since="6h")
    suite.detectors.register("mine", MyDetector)      # see suite.detectors
"""

from __future__ import annotations

import importlib
from typing import Any

from suite.api import ApiError, connect, metrics, query, requests
from suite.store import Store

__version__ = "0.1.0"
__all__ = [
    "ApiError",
    "Store",
    "changes",
    "connect",
    "detectors",
    "incidents",
    "metrics",
    "query",
    "requests",
]

# `suite.incidents`, `suite.changes` and `suite.detectors` are modules, imported on first
# use (so `import suite` stays light); the first two are also callable: see suite.api.
_LAZY = ("incidents", "changes", "detectors")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return importlib.import_module(f"suite.{name}")
    raise AttributeError(f"module 'suite' has no attribute {name!r}")
