"""SLOs: burn rates, error budgets and multi-window multi-burn-rate alerts (SRE workbook),
turned into incidents and written to `slo_status` for the dashboards.

It never writes incidents itself (suite.incidents does) and never alerts on no traffic.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from suite import incidents
from suite.clock import naive_utc
from suite.config import SLO, GatewayConfig
from suite.incidents import Observation
from suite.store import Store

if TYPE_CHECKING:
    from duckdb import DuckDBPyConnection

log = logging.getLogger("aiops.slo")

# The short and long windows of the workbook's alerting table (chapter 5, "Alerting on SLOs").
WINDOWS: dict[str, timedelta] = {
    "5m": timedelta(minutes=5),
    "30m": timedelta(minutes=30),
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "3d": timedelta(days=3),
}


class BurnRule(NamedTuple):
    level: str  # 'page' | 'ticket'
    factor: float
    long_window: str
    short_window: str


# Both windows must burn: the long one proves it is significant, the short one that it is
# still happening (so the alert stops soon after the problem does).
BURN_RULES: tuple[BurnRule, ...] = (
    BurnRule("page", 14.4, "1h", "5m"),  # 2% of a 30-day budget in one hour
    BurnRule("page", 6.0, "6h", "30m"),  # 5% in six hours
    BurnRule("ticket", 1.0, "3d", "6h"),  # 10% in three days
)
LEVEL_SEVERITY = {"page": "critical", "ticket": "warning"}
SLO_SOURCE = "slo"


def slo_signal(name: str) -> str:
    """The incident signal of an SLO: one incident per SLO, whatever its level."""
    return f"slo_burn:{name}"


def burn_rate(bad: int, total: int, objective: float) -> float:
    """How many times faster than allowed the budget is spent: 1.0 spends it exactly over
    the SLO window. No traffic burns nothing."""
    if total <= 0:
        return 0.0
    allowed = 1.0 - objective / 100.0
    return (bad / total) / allowed


def error_budget_remaining(bad: int, total: int, objective: float) -> float:
    """Fraction of the window's error budget left: 1.0 untouched, 0.0 spent, below 0 overspent."""
    return 1.0 - burn_rate(bad, total, objective)


def alert_level(burns: Mapping[str, float]) -> str:
    """'page', 'ticket' or 'none' from the burn rate of each window in WINDOWS."""
    for level in ("page", "ticket"):
        for rule in BURN_RULES:
            if rule.level != level:
                continue
            if burns[rule.long_window] >= rule.factor and burns[rule.short_window] >= rule.factor:
                return level
    return "none"


@dataclass
class SLOStatus:
    slo: str
    service: str
    kind: str
    objective: float
    window_days: int
    computed_at: datetime
    burns: dict[str, float]
    burn_window: float
    events_window: int
    bad_events_window: int
    budget_remaining: float
    alert_level: str
    incident_id: int | None = None


@dataclass
class SLOResult:
    slos: int = 0
    paging: list[str] = field(default_factory=list)
    ticketing: list[str] = field(default_factory=list)
    resolved: int = 0
    seconds: float = 0.0

    def __str__(self) -> str:
        return (
            f"{self.slos} SLOs evaluated; page: {', '.join(self.paging) or 'none'}; "
            f"ticket: {', '.join(self.ticketing) or 'none'}; {self.resolved} resolved "
            f"in {self.seconds:.2f} s"
        )


# Both sources give per-minute (total, bad) counts; each window sums the minutes that
# start in [now - window, now), so a window never reads the future.
_AVAILABILITY_MINUTES = """
    SELECT minute, requests AS total, errors_5xx AS bad FROM metrics_1m
    WHERE dimension = 'service' AND key = '' AND service = $service
      AND minute >= $start AND minute < $now
"""
# metrics_1m has only percentiles, so a latency SLO counts slow calls in the raw rows.
_LATENCY_MINUTES = """
    SELECT date_trunc('minute', ts) AS minute, count(*) AS total,
           count(*) FILTER (WHERE duration_ms > $threshold) AS bad
    FROM requests
    WHERE route = $service AND ts >= $start AND ts < $now
    GROUP BY 1
"""


def slo_event_counts(
    con: DuckDBPyConnection, slo: SLO, now: datetime
) -> dict[str, tuple[int, int]]:
    """(total, bad) events per window name, plus 'window' for the SLO's own window."""
    starts = {name: now - span for name, span in WINDOWS.items()}
    starts["window"] = now - timedelta(days=slo.window_days)
    earliest = min(starts.values()).replace(second=0, microsecond=0)
    params: dict[str, Any] = {"service": slo.service, "start": earliest, "now": now}
    if slo.kind == "latency":
        source = _LATENCY_MINUTES
        params["threshold"] = slo.latency_threshold_ms
    else:
        source = _AVAILABILITY_MINUTES
    sums = []
    for name, start in starts.items():
        params[f"s_{name}"] = start
        sums.append(
            f"coalesce(sum(total) FILTER (WHERE minute >= $s_{name}), 0)::BIGINT, "
            f"coalesce(sum(bad) FILTER (WHERE minute >= $s_{name}), 0)::BIGINT"
        )
    sql = f"WITH m AS ({source}) SELECT {', '.join(sums)} FROM m"
    row = con.execute(sql, params).fetchone()
    assert row is not None
    return {name: (int(row[2 * i]), int(row[2 * i + 1])) for i, name in enumerate(starts)}


def evaluate_slo(store: Store, slo: SLO, now: datetime | None = None) -> SLOStatus:
    """Burn rates, budget and alert level of one SLO at `now` (naive UTC or aware)."""
    at = naive_utc(now)
    with store.read() as con:
        return _evaluate(con, slo, at)


def _evaluate(con: DuckDBPyConnection, slo: SLO, at: datetime) -> SLOStatus:
    counts = slo_event_counts(con, slo, at)
    burns = {name: burn_rate(counts[name][1], counts[name][0], slo.objective) for name in WINDOWS}
    total, bad = counts["window"]
    return SLOStatus(
        slo=slo.name,
        service=slo.service,
        kind=slo.kind,
        objective=slo.objective,
        window_days=slo.window_days,
        computed_at=at,
        burns=burns,
        burn_window=burn_rate(bad, total, slo.objective),
        events_window=total,
        bad_events_window=bad,
        budget_remaining=error_budget_remaining(bad, total, slo.objective),
        alert_level=alert_level(burns),
    )


def _incident_title(status: SLOStatus) -> str:
    worst = max(status.burns.values())
    what = "availability" if status.kind == "availability" else "latency"
    return (
        f"SLO {status.slo} ({what} {status.objective:g}% on {status.service}) burning its "
        f"error budget at {worst:.1f}x"
    )


def _observation(status: SLOStatus) -> Observation:
    burns = ", ".join(f"{name} {burn:.1f}x" for name, burn in status.burns.items())
    return Observation(
        service=status.service,
        signal=slo_signal(status.slo),
        ts=status.computed_at,
        value=max(status.burns.values()),
        severity=LEVEL_SEVERITY[status.alert_level],
        source=SLO_SOURCE,
        title=_incident_title(status),
        detail=f"{status.alert_level}: burn rates {burns}; budget left "
        f"{status.budget_remaining:.0%} of {status.window_days} days",
        actor=SLO_SOURCE,
    )


_INSERT_STATUS = """
    INSERT OR REPLACE INTO slo_status (slo, service, kind, objective, computed_at, window_days,
        burn_5m, burn_30m, burn_1h, burn_6h, burn_3d, burn_window, events_window,
        bad_events_window, budget_remaining, alert_level, incident_id)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""


def run_slo(store: Store, config: GatewayConfig, now: datetime | None = None) -> SLOResult:
    """The worker job: evaluate every configured SLO, open, refresh or resolve its incident
    (suite.incidents) and record its status."""
    t0 = time.perf_counter()
    at = naive_utc(now)
    result = SLOResult(slos=len(config.slos))
    if not config.slos:
        return result
    # Compute everything under one shared lock, then write in one short transaction.
    with store.read() as con:
        statuses = [_evaluate(con, slo, at) for slo in config.slos]
        active = {
            r[0]
            for r in con.execute(
                "SELECT fingerprint FROM incidents WHERE source = ? "
                "AND status IN ('open', 'acknowledged')",
                [SLO_SOURCE],
            ).fetchall()
        }
    for status in statuses:
        fingerprint = incidents.incident_fingerprint(status.service, slo_signal(status.slo))
        if status.alert_level == "none" and fingerprint in active:
            status.incident_id = incidents.resolve_signal_incident(
                store,
                service=status.service,
                signal=slo_signal(status.slo),
                now=at,
                actor=SLO_SOURCE,
                reason=f"SLO {status.slo} no longer burns its budget fast enough to alert",
            )
            result.resolved += status.incident_id is not None
        elif status.alert_level == "page":
            result.paging.append(status.slo)
        elif status.alert_level == "ticket":
            result.ticketing.append(status.slo)
    firing = [s for s in statuses if s.alert_level != "none"]
    rows = [
        (
            s.slo, s.service, s.kind, s.objective, s.computed_at, s.window_days,
            s.burns["5m"], s.burns["30m"], s.burns["1h"], s.burns["6h"], s.burns["3d"],
            s.burn_window, s.events_window, s.bad_events_window, s.budget_remaining,
            s.alert_level,
        )
        for s in statuses
    ]  # fmt: skip
    with store.write() as con:
        con.execute("BEGIN TRANSACTION")
        try:
            # One call for all firing SLOs: it refreshes each incident while the burn lasts.
            if firing:
                observations = [_observation(s) for s in firing]
                updates = incidents.record_observations(con, observations, now=at)
                for s, update in zip(firing, updates, strict=True):
                    s.incident_id = update.incident_id
            con.executemany(
                _INSERT_STATUS,
                [(*row, s.incident_id) for row, s in zip(rows, statuses, strict=True)],
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    result.seconds = time.perf_counter() - t0
    if result.paging or result.ticketing:
        log.warning("slo: %s", result)
    return result


def latest_slo_status(store: Store) -> list[dict[str, Any]]:
    """The newest status row of each SLO, for dashboards and the CLI."""
    df = store.query(
        "SELECT * FROM slo_status QUALIFY row_number() OVER "
        "(PARTITION BY slo ORDER BY computed_at DESC) = 1 ORDER BY slo"
    )
    return df.to_dicts()
