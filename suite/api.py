"""The functions behind `suite.query`, `suite.requests`, `suite.incidents`, ... (see suite/__init__.py).

`suite.incidents` and `suite.changes` are also the modules that manage incidents and
changes; calling them (`suite.incidents(status="open")`) runs the functions here.
"""

from __future__ import annotations

import os
import re
import sys
import types
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from suite.clock import naive_utc, utc_now
from suite.errors import AiopsError
from suite.store import Store

_default_store: Store | None = None
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d|w)$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class ApiError(AiopsError):
    exit_code = 2


def connect(home: str | os.PathLike[str] | None = None) -> Store:
    """Use this home (else `$AIOPS_HOME`, else `~/.aiops`) for later calls; returns its Store."""
    global _default_store
    _default_store = Store(home)
    return _default_store


def _store() -> Store:
    return _default_store or connect()


def query(sql: str, params: Any = None) -> pl.DataFrame:
    """Run read-only SQL against the suite's DuckDB store; returns a polars DataFrame."""
    return _store().query(sql, params)


def _when(value: datetime | str | None, name: str) -> datetime | None:
    """A datetime, an ISO time, or a duration back from now ("90m", "24h", "7d")."""
    if value is None or isinstance(value, datetime):
        return naive_utc(value) if value is not None else None
    if isinstance(value, str):
        m = _DURATION.match(value.strip())
        if m:
            return utc_now() - timedelta(**{_UNITS[m.group(2)]: float(m.group(1))})
        try:
            return naive_utc(datetime.fromisoformat(value))
        except ValueError:
            pass
    raise ApiError(f"{name}={value!r}: give a datetime, an ISO time or a duration like '24h'")


def _filters(time_col: str, since: Any, until: Any, equal: dict[str, Any]) -> tuple[str, list[Any]]:
    where: list[str] = ["TRUE"]
    params: list[Any] = []
    start, end = _when(since, "since"), _when(until, "until")
    if start is not None:
        where.append(f"{time_col} >= ?")
        params.append(start)
    if end is not None:
        where.append(f"{time_col} < ?")
        params.append(end)
    for col, value in equal.items():
        if value is None:
            continue
        if isinstance(value, list | tuple | set):
            where.append(f"{col} IN (SELECT unnest(?))")
            params.append(list(value))
        else:
            where.append(f"{col} = ?")
            params.append(value)
    return " AND ".join(where), params


def requests(
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    *,
    service: str | list[str] | None = None,
    kind: str | None = None,
    tenant: str | None = None,
    status: int | list[int] | None = None,
    columns: list[str] | None = None,
    limit: int | None = 100_000,
) -> pl.DataFrame:
    """Recorded calls, newest first: `service` is the route name, `kind` http|llm|mcp."""
    where, params = _filters(
        "ts", since, until, {"route": service, "kind": kind, "tenant": tenant, "status": status}
    )
    cols = ", ".join(_identifiers(columns)) if columns else "*"
    lim = f" LIMIT {int(limit)}" if limit is not None else ""
    return query(f"SELECT {cols} FROM requests WHERE {where} ORDER BY ts DESC{lim}", params)


def incidents(
    status: str | list[str] | None = None,
    *,
    service: str | None = None,
    since: datetime | str | None = None,
) -> pl.DataFrame:
    """Incidents, newest first (`status` open|acknowledged|resolved)."""
    where, params = _filters("opened_at", since, None, {"status": status, "service": service})
    return query(f"SELECT * FROM incidents WHERE {where} ORDER BY opened_at DESC", params)


def changes(
    since: datetime | str | None = None,
    *,
    service: str | None = None,
    kind: str | None = None,
    status: str | None = None,
) -> pl.DataFrame:
    """Changes (deploys, config, flags, chaos drills...), newest first."""
    where, params = _filters(
        "ts", since, None, {"service": service, "kind": kind, "status": status}
    )
    return query(f"SELECT * FROM changes WHERE {where} ORDER BY ts DESC", params)


def metrics(
    service: str | None = None,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    *,
    dimension: str = "service",
) -> pl.DataFrame:
    """Per-minute rollups (`metrics_1m`): requests, errors, latency percentiles, tokens, cost."""
    where, params = _filters("minute", since, until, {"service": service, "dimension": dimension})
    return query(f"SELECT * FROM metrics_1m WHERE {where} ORDER BY service, key, minute", params)


def _identifiers(columns: list[str]) -> list[str]:
    bad = [c for c in columns if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", c)]
    if bad:
        raise ApiError(f"not column names: {bad}")
    return columns


class _CallableModule(types.ModuleType):
    """A module that can also be called: `suite.incidents(...)` is `suite.api.incidents(...)`."""

    def __call__(self, *args: Any, **kwargs: Any) -> pl.DataFrame:
        return _CALLS[self.__name__](*args, **kwargs)


_CALLS: dict[str, Any] = {}


def make_module_callable(module_name: str, func: Any) -> None:
    """Let the module `module_name` be called like `func` (it keeps all its attributes)."""
    _CALLS[module_name] = func
    sys.modules[module_name].__class__ = _CallableModule
