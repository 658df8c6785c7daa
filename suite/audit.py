"""The audit log: who did what, when, from where (CLI, dashboard, API).

`record` takes an open write connection, so the action and its audit row commit together.
"""

from __future__ import annotations

import getpass
import json
import os
from typing import Any

from suite.clock import utc_now

SOURCES = ("cli", "dashboard", "api", "gateway", "worker")


def current_actor() -> str:
    """$AIOPS_USER, else the OS user, else "unknown"."""
    env = os.environ.get("AIOPS_USER", "").strip()
    if env:
        return env
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def next_id(con: Any, table: str) -> int:
    """The next integer id of `table`; call it under the store's write lock."""
    (n,) = con.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {table}").fetchone()
    return int(n)


def record(
    con: Any,
    action: str,
    target_kind: str,
    target_id: object = None,
    *,
    detail: dict[str, Any] | str | None = None,
    actor: str | None = None,
    source: str = "cli",
) -> int:
    """Append one audit row in the caller's transaction; returns its id."""
    if source not in SOURCES:
        raise ValueError(f"audit source must be one of {SOURCES}, not {source!r}")
    text = detail if isinstance(detail, str) or detail is None else json.dumps(detail, default=str)
    aid = next_id(con, "audit_log")
    con.execute(
        "INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            aid,
            utc_now(),
            actor or current_actor(),
            action,
            target_kind,
            None if target_id is None else str(target_id),
            text,
            source,
        ],
    )
    return aid
