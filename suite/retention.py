"""Retention: drop raw requests (and captured bodies) after `retention_days`, minute
rollups after `rollup_retention_days`, one day per short write.

It never deletes a raw row whose minute is not rolled up yet: dirty or missing rollups
keep their rows, so nothing is lost from metrics_1m.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from suite.clock import naive_utc
from suite.config import GatewayConfig
from suite.store import Store

if TYPE_CHECKING:
    from duckdb import DuckDBPyConnection

log = logging.getLogger("aiops.retention")

# A raw row may go only when its minute has a rollup and no pending recompute.
_ROLLED_UP_MINUTE = """
    date_trunc('minute', ts) IN (SELECT minute FROM metrics_1m
                                 WHERE dimension = 'service' AND minute >= $day AND minute < $end)
    AND date_trunc('minute', ts) NOT IN (SELECT minute FROM rollup_dirty_minutes)
"""


@dataclass
class RetentionResult:
    requests_deleted: int = 0
    bodies_deleted: int = 0
    metrics_deleted: int = 0
    slo_status_deleted: int = 0
    requests_kept_not_rolled_up: int = 0
    seconds: float = 0.0

    def __str__(self) -> str:
        kept = (
            f", {self.requests_kept_not_rolled_up} old requests kept (not rolled up yet)"
            if self.requests_kept_not_rolled_up
            else ""
        )
        return (
            f"deleted {self.requests_deleted} requests, {self.bodies_deleted} bodies, "
            f"{self.metrics_deleted} metrics_1m rows, {self.slo_status_deleted} slo_status rows"
            f"{kept} in {self.seconds:.2f} s"
        )


def _changes(con: DuckDBPyConnection, sql: str, params: dict[str, object]) -> int:
    row = con.execute(sql, params).fetchone()
    return int(row[0]) if row else 0


def run_retention(
    store: Store, config: GatewayConfig, now: datetime | None = None
) -> RetentionResult:
    """The worker job; returns how many rows of each table went."""
    t0 = time.perf_counter()
    at = naive_utc(now)
    raw_cutoff = at - timedelta(days=config.worker.retention_days)
    rollup_cutoff = at - timedelta(days=config.worker.rollup_retention_days)
    result = RetentionResult()
    with store.read() as con:
        days = [
            r[0]
            for r in con.execute(
                "SELECT DISTINCT date_trunc('day', ts) AS d FROM requests WHERE ts < ? "
                "UNION SELECT DISTINCT date_trunc('day', ts) FROM request_bodies WHERE ts < ? "
                "ORDER BY 1",
                [raw_cutoff, raw_cutoff],
            ).fetchall()
        ]
    # One day per transaction keeps each exclusive lock short on a large backlog.
    for day in days:
        end = min(day + timedelta(days=1), raw_cutoff)
        params: dict[str, object] = {"day": day, "end": end}
        with store.write() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                result.bodies_deleted += _changes(
                    con,
                    f"DELETE FROM request_bodies WHERE ts >= $day AND ts < $end AND {_ROLLED_UP_MINUTE}",
                    params,
                )
                result.requests_deleted += _changes(
                    con,
                    f"DELETE FROM requests WHERE ts >= $day AND ts < $end AND {_ROLLED_UP_MINUTE}",
                    params,
                )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
    with store.write() as con:
        result.metrics_deleted = _changes(
            con, "DELETE FROM metrics_1m WHERE minute < $cutoff", {"cutoff": rollup_cutoff}
        )
        result.slo_status_deleted = _changes(
            con, "DELETE FROM slo_status WHERE computed_at < $cutoff", {"cutoff": rollup_cutoff}
        )
        row = con.execute("SELECT count(*) FROM requests WHERE ts < ?", [raw_cutoff]).fetchone()
        result.requests_kept_not_rolled_up = int(row[0]) if row else 0
    result.seconds = time.perf_counter() - t0
    if result.requests_deleted or result.metrics_deleted or result.bodies_deleted:
        log.info("retention: %s", result)
    if result.requests_kept_not_rolled_up:
        log.warning(
            "retention: %d requests older than %d days are kept because their minutes are "
            "not rolled up yet (is the rollup job running?)",
            result.requests_kept_not_rolled_up,
            config.worker.retention_days,
        )
    return result
