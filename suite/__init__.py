"""AIOps Suite: the Python API that notebooks and scripts use.

`suite.query(sql)` returns a polars DataFrame read through the same store (and the same
cross-process lock) as the worker and the dashboards; nothing here keeps DuckDB open.
"""

from __future__ import annotations

import os
from typing import Any

import polars as pl

from suite.store import Store

__version__ = "0.1.0"
__all__ = ["Store", "connect", "query"]

_default_store: Store | None = None


def connect(home: str | os.PathLike[str] | None = None) -> Store:
    """Use this home (else `$AIOPS_HOME`, else `~/.aiops`) for later `suite.query` calls."""
    global _default_store
    _default_store = Store(home)
    return _default_store


def query(sql: str, params: Any = None) -> pl.DataFrame:
    """Run read-only SQL against the suite's DuckDB store; returns a polars DataFrame."""
    store = _default_store or connect()
    return store.query(sql, params)
