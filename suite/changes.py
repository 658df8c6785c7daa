"""Changes: recording them (CLI, admin endpoint via the spool, traffic), their ITSM
lifecycle, suspect changes per incident, and the change failure rate per service.

Opens DuckDB only through `suite.store`; every lifecycle step is checked before anything
is written, then the change, its `change_events` row, its audit row and any maintenance
window commit in one transaction, so a refused step changes nothing.

Lifecycle: proposed -> approved -> scheduled -> implemented -> verified | rolled_back,
and cancelled before implemented. Standard changes are pre-approved (proposed ->
scheduled or implemented directly); high-risk and emergency changes are approved by a
named person who is not the requester; scheduling is optional (approved -> implemented).
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import duckdb
import polars as pl

from suite import audit
from suite.change_model import (
    DONE_STATUSES,
    KINDS,
    STATUSES,
    ChangeError,
    NewChange,
    named_person,
    needs_named_approver,
    parse_time,
)
from suite.change_spool import new_change_id
from suite.changes_config import ChangesSettings
from suite.clock import naive_utc, utc_now
from suite.config import GatewayConfig
from suite.errors import ConfigError
from suite.store import Store, transaction

log = logging.getLogger("aiops.changes")

CHANGE_COLUMNS = (
    "id", "ts", "service", "kind", "summary", "status", "source", "risk", "change_type",
    "window_start", "window_end", "requested_by", "approved_by", "approved_at",
    "implemented_at", "closed_at", "detail", "created_at", "updated_at",
)  # fmt: skip

# action -> (the status it leads to, the statuses it may start from)
ACTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "approve": ("approved", ("proposed",)),
    "schedule": ("scheduled", ("proposed", "approved")),
    "implement": ("implemented", ("proposed", "approved", "scheduled")),
    "verify": ("verified", ("implemented",)),
    "rollback": ("rolled_back", ("implemented", "verified")),
    "cancel": ("cancelled", ("proposed", "approved", "scheduled")),
}

# -- correlation weights: score = relation x proximity x kind x risk, each in (0, 1] ------
KIND_WEIGHT = {
    "deploy": 1.0, "chaos": 1.0, "config": 0.9, "schema": 0.9, "infra": 0.8, "flag": 0.7,
}  # fmt: skip
RISK_WEIGHT = {"high": 1.0, "medium": 0.85, "low": 0.7, None: 0.8}
SAME_SERVICE = 1.0
DEPENDENCY_WEIGHT = {1: 0.6, 2: 0.4, 3: 0.3}  # by hops along service_dependencies
GATEWAY_WIDE = 0.5  # a change to service '*' or 'gateway' touches every route
UNRELATED = 0.1
PROXIMITY_HALF_HOURS = 1.0  # a change this long before the incident scores half
FIRST_MINUTE = timedelta(minutes=1)
DURING_INCIDENT = 0.3  # changes after it opened rarely caused it (often they are fixes)
MAX_SUSPECTS = 20
GATEWAY_SERVICES = ("*", "gateway")

# -- traffic observation -------------------------------------------------------------------
OBSERVE_SCAN = "observe"
# Rows are ingested a little after their ts: each scan re-reads this much before its
# watermark (safe: observing the same rows twice records nothing twice).
LATE_MARGIN = timedelta(minutes=15)


# -- recording -----------------------------------------------------------------------------
def _transaction(con: duckdb.DuckDBPyConnection) -> AbstractContextManager[object]:
    return transaction(con)


def _event(
    con: duckdb.DuckDBPyConnection,
    change_id: str,
    at: datetime,
    from_status: str | None,
    to_status: str,
    actor: str,
    note: str | None,
) -> None:
    con.execute(
        "INSERT INTO change_events VALUES (?, ?, ?, ?, ?, ?, ?)",
        [audit.next_id(con, "change_events"), change_id, at, from_status, to_status, actor, note],
    )


def _insert_change(con: duckdb.DuckDBPyConnection, row: Mapping[str, Any]) -> None:
    con.execute(
        f"INSERT INTO changes ({', '.join(CHANGE_COLUMNS)}) VALUES "
        f"({', '.join('?' for _ in CHANGE_COLUMNS)})",
        [row.get(c) for c in CHANGE_COLUMNS],
    )


def record_change(
    store: Store,
    change: NewChange,
    *,
    source: str = "cli",
    actor: str | None = None,
    now: datetime | None = None,
) -> str:
    """Record a new change (already checked by `check_new_change`); returns its id."""
    at = naive_utc(now)
    who = actor or change.requested_by or audit.current_actor()
    done = change.status == "implemented"
    when = change.ts or (change.window_start if not done and change.window_start else at)
    cid = new_change_id()
    row = {
        **change._asdict(),
        "id": cid,
        "ts": when,
        "source": source,
        "requested_by": change.requested_by or who,
        "approved_at": at if change.approved_by else None,
        "implemented_at": when if done else None,
        "detail": json.dumps(change.detail, sort_keys=True, default=str) if change.detail else None,
        "created_at": at,
        "updated_at": at,
    }
    with store.write() as con, _transaction(con):
        _insert_change(con, row)
        _event(con, cid, at, None, change.status, who, "recorded")
        if done:
            _open_window(con, row, at)
        audit.record(
            con,
            "change.add",
            "change",
            cid,
            detail={k: row[k] for k in ("service", "kind", "status", "risk", "change_type")},
            actor=who,
            source=_audit_source(source),
        )
    log.info("change %s recorded: %s %s %s", cid, change.service, change.kind, change.status)
    return cid


def _audit_source(source: str) -> str:
    return source if source in audit.SOURCES else "worker" if source == "observed" else "gateway"


class Step(NamedTuple):
    """A checked lifecycle step: the new status, the columns to set, who does it."""

    to_status: str
    sets: dict[str, Any]
    actor: str


def plan_step(
    change: Mapping[str, Any],
    action: str,
    *,
    by: str | None,
    now: datetime,
    window: tuple[datetime, datetime] | None = None,
) -> Step:
    """Check one lifecycle step against a change (a dict of its columns); pure. Raises
    ChangeError saying why a step is refused."""
    if action not in ACTIONS:
        raise ChangeError(f"action {action!r} is not one of {', '.join(ACTIONS)}")
    to_status, allowed_from = ACTIONS[action]
    cid, status, ctype = change["id"], change["status"], change.get("change_type") or "normal"
    named = named_person(by)
    actor = named or audit.current_actor()
    if status not in allowed_from:
        if status == to_status:
            raise ChangeError(f"change {cid} is already {status}")
        hint = {
            "cancel": "only a change not yet implemented can be cancelled; roll it back instead",
            "verify": "only an implemented change can be verified",
            "rollback": "only an implemented (or verified) change can be rolled back",
        }.get(action, f"{action} needs a change that is {' or '.join(allowed_from)}")
        raise ChangeError(f"change {cid} is {status}: {hint}")
    if action == "approve" and ctype == "standard":
        raise ChangeError(
            f"change {cid} is a standard change: it is pre-approved; schedule or implement it"
        )
    if action in ("schedule", "implement") and status == "proposed" and ctype != "standard":
        raise ChangeError(
            f"change {cid} is a {ctype} change and still proposed: it must be approved first "
            f"(aiops changes approve {cid} --by NAME)"
        )
    sets: dict[str, Any] = {"status": to_status, "updated_at": now}
    if action == "approve":
        if needs_named_approver(change.get("risk"), ctype):
            why = "a high-risk" if change.get("risk") == "high" else "an emergency"
            if named is None:
                raise ChangeError(
                    f"change {cid} is {why} change: it needs a named approver (--by NAME)"
                )
            if named == change.get("requested_by"):
                raise ChangeError(
                    f"change {cid} is {why} change: {named} requested it and cannot approve it"
                )
        sets.update(approved_by=actor, approved_at=now)
    elif action == "schedule":
        if window is not None:
            sets.update(window_start=window[0], window_end=window[1])
        elif change.get("window_start") is None:
            raise ChangeError(
                f"change {cid} has no window: schedule it with --window-start and --window-end"
            )
    elif action == "implement":
        sets.update(implemented_at=now, ts=now)
    elif action in ("verify", "rollback", "cancel"):
        sets["closed_at"] = now
    return Step(to_status, sets, actor)


def _open_window(con: duckdb.DuckDBPyConnection, change: Mapping[str, Any], now: datetime) -> None:
    """A maintenance window for an approved/scheduled change with a window (notify keeps
    the service's incidents quiet during it); one per change."""
    start, end = change.get("window_start"), change.get("window_end")
    if start is None or end is None or end <= now:
        return
    exists = con.execute(
        "SELECT count(*) FROM maintenance_windows WHERE change_id = ?", [change["id"]]
    ).fetchone()
    if exists and exists[0]:
        return
    con.execute(
        "INSERT INTO maintenance_windows VALUES (?, ?, ?, ?, ?, 'change', ?, ?)",
        [
            audit.next_id(con, "maintenance_windows"),
            change["service"],
            start,
            end,
            f"change {change['id']}: {change['summary']}"[:300],
            change["id"],
            now,
        ],
    )


def _close_window(con: duckdb.DuckDBPyConnection, change_id: str, now: datetime) -> None:
    """End the change's maintenance window now: drop one not started, cut one running."""
    con.execute(
        "DELETE FROM maintenance_windows WHERE change_id = ? AND starts_at > ?", [change_id, now]
    )
    con.execute(
        "UPDATE maintenance_windows SET ends_at = ? WHERE change_id = ? AND ends_at > ?",
        [now, change_id, now],
    )


def _fetch_change(con: duckdb.DuckDBPyConnection, change_id: str) -> dict[str, Any]:
    df = con.sql(
        f"SELECT {', '.join(CHANGE_COLUMNS)} FROM changes WHERE id = ?", params=[change_id]
    ).pl()
    if df.is_empty():
        raise ChangeError(f"no change with id {change_id!r} (see `aiops changes list` for the ids)")
    return df.row(0, named=True)


def transition(
    store: Store,
    change_id: str,
    action: str,
    *,
    by: str | None = None,
    note: str | None = None,
    window: tuple[datetime, datetime] | None = None,
    source: str = "cli",
    now: datetime | None = None,
) -> dict[str, Any]:
    """One lifecycle step (approve, schedule, implement, verify, rollback, cancel), checked
    and written in one transaction; returns the change after it."""
    at = naive_utc(now)
    if window is not None and window[1] <= window[0]:
        raise ChangeError("window_end must be after window_start")
    cid = change_id.strip().upper()
    with store.write() as con:
        change = _fetch_change(con, cid)
        step = plan_step(change, action, by=by, now=at, window=window)
        after = {**change, **step.sets}
        with _transaction(con):
            assignments = ", ".join(f"{c} = ?" for c in step.sets)
            con.execute(
                f"UPDATE changes SET {assignments} WHERE id = ?", [*step.sets.values(), cid]
            )
            _event(con, cid, at, change["status"], step.to_status, step.actor, note)
            if action in ("approve", "schedule", "implement"):
                _open_window(con, after, at)
            elif action in ("cancel", "verify"):
                _close_window(con, cid, at)
            audit.record(
                con,
                f"change.{action}",
                "change",
                cid,
                detail={"from": change["status"], "to": step.to_status, "note": note},
                actor=step.actor,
                source=_audit_source(source),
            )
        return _fetch_change(con, cid)


def get_change(store: Store, change_id: str) -> dict[str, Any]:
    """One change with its lifecycle events ("events") and the incidents that list it as a
    suspect ("suspect_of")."""
    cid = change_id.strip().upper()
    with store.read() as con:
        change = _fetch_change(con, cid)
        change["events"] = (
            con.sql(
                "SELECT ts, from_status, to_status, actor, note FROM change_events "
                "WHERE change_id = ? ORDER BY id",
                params=[cid],
            )
            .pl()
            .to_dicts()
        )
        change["suspect_of"] = (
            con.sql(
                "SELECT s.incident_id, s.rank, s.score, i.title FROM incident_suspects s "
                "JOIN incidents i ON i.id = s.incident_id WHERE s.change_id = ? "
                "ORDER BY s.incident_id DESC",
                params=[cid],
            )
            .pl()
            .to_dicts()
        )
        windows = con.sql(
            "SELECT id, starts_at, ends_at FROM maintenance_windows WHERE change_id = ? "
            "ORDER BY id",
            params=[cid],
        ).pl()
        change["maintenance_windows"] = windows.to_dicts()
    return change


def list_changes(
    store: Store,
    *,
    service: str | None = None,
    since: datetime | None = None,
    status: str | None = None,
    kind: str | None = None,
    limit: int | None = None,
) -> pl.DataFrame:
    """Changes, newest first, optionally filtered."""
    if status is not None and status not in STATUSES:
        raise ChangeError(f"status {status!r} is not one of {', '.join(STATUSES)}")
    if kind is not None and kind not in KINDS:
        raise ChangeError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    where: list[str] = []
    params: list[Any] = []
    for column, value in (("service", service), ("status", status), ("kind", kind)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if since is not None:
        where.append("ts >= ?")
        params.append(naive_utc(since))
    sql = f"SELECT {', '.join(CHANGE_COLUMNS)} FROM changes"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY ts DESC, created_at DESC, id"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return store.query(sql, params)


def backfill_events(store: Store, now: datetime | None = None) -> int:
    """Give changes loaded from the spool (admin endpoint, reloads, drills) their first
    lifecycle event and audit row; returns how many."""
    at = naive_utc(now)
    with store.write() as con:
        rows = con.execute(
            "SELECT id, status, source, requested_by, service, kind FROM changes c "
            "WHERE NOT EXISTS (SELECT 1 FROM change_events e WHERE e.change_id = c.id) "
            "ORDER BY created_at, id"
        ).fetchall()
        if not rows:
            return 0
        with _transaction(con):
            for cid, status, source, requested_by, service, kind in rows:
                actor = requested_by or source
                _event(con, cid, at, None, status, actor, f"recorded by {source}")
                audit.record(
                    con,
                    "change.add",
                    "change",
                    cid,
                    detail={"service": service, "kind": kind, "status": status, "via": source},
                    actor=actor,
                    source=_audit_source(source),
                )
    return len(rows)


# -- suspects (change-incident correlation) ------------------------------------------------
class Suspect(NamedTuple):
    change_id: str
    score: float
    reason: str
    at: datetime


def dependency_hops(
    deps: Iterable[tuple[str, str]], service: str, max_hops: int = 3
) -> dict[str, int]:
    """Services `service` depends on (directly: 1, through one other: 2, ...)."""
    graph: dict[str, set[str]] = {}
    for s, d in deps:
        graph.setdefault(s, set()).add(d)
    hops: dict[str, int] = {}
    queue = deque([(service, 0)])
    while queue:
        s, n = queue.popleft()
        if n >= max_hops:
            continue
        for d in sorted(graph.get(s, ())):
            if d != service and d not in hops:
                hops[d] = n + 1
                queue.append((d, n + 1))
    return hops


def _human(delta: timedelta) -> str:
    minutes = abs(delta.total_seconds()) / 60
    if minutes < 90:
        return f"{minutes:.0f} min"
    if minutes < 48 * 60:
        return f"{minutes / 60:.1f} h"
    return f"{minutes / 1440:.1f} d"


def score_suspect(
    change: Mapping[str, Any], incident_service: str, opened_at: datetime, hops: Mapping[str, int]
) -> Suspect:
    """Score one candidate change for an incident; the reason spells out every factor."""
    service = change["service"]
    if service == incident_service:
        relation, rel_text = SAME_SERVICE, "same service"
    elif service in hops:
        n = hops[service]
        relation = DEPENDENCY_WEIGHT.get(n, UNRELATED)
        rel_text = f"{incident_service} depends on {service}" + (f" ({n} hops)" if n > 1 else "")
    elif service in GATEWAY_SERVICES:
        relation, rel_text = GATEWAY_WIDE, "gateway-wide change"
    else:
        relation, rel_text = UNRELATED, f"unrelated service {service}"
    at: datetime = change["at"]
    # An incident opens at the start of its first anomalous minute, and a change made
    # during that minute may have caused it: it counts as "before".
    delta = opened_at - at
    hours = max(0.0, delta.total_seconds() / 3600)
    if at < opened_at + FIRST_MINUTE:
        proximity = 1.0 / (1.0 + hours / PROXIMITY_HALF_HOURS)
        when = f"{_human(delta)} before it opened" if at <= opened_at else "in its first minute"
    else:
        hours = delta.total_seconds() / 3600
        proximity = DURING_INCIDENT / (1.0 + -hours / PROXIMITY_HALF_HOURS)
        when = f"{_human(delta)} after it opened"
    if change.get("pending"):
        when += f" (its window started then; still {change['status']})"
    kind_w = KIND_WEIGHT.get(change["kind"], 0.7)
    risk = change.get("risk")
    risk_w = RISK_WEIGHT.get(risk, RISK_WEIGHT[None])
    score = relation * proximity * kind_w * risk_w
    reason = (
        f"{rel_text} (x{relation:g}); {when} (x{proximity:.2f}); {change['kind']} "
        f"(x{kind_w:g}); risk {risk or 'unknown'} (x{risk_w:g}) = {score:.3f}"
    )
    return Suspect(change["id"], round(score, 6), reason, at)


def rank_suspects(
    incident: Mapping[str, Any],
    changes: Iterable[Mapping[str, Any]],
    deps: Iterable[tuple[str, str]],
    *,
    lookback: timedelta,
    now: datetime,
) -> list[Suspect]:
    """The incident's suspect changes, best first: every change that took effect from
    `lookback` before it opened until it was resolved (or now), and approved/scheduled
    changes whose window had started by then. Pure."""
    opened: datetime = incident["opened_at"]
    end = incident.get("resolved_at") or now
    hops = dependency_hops(deps, incident["service"])
    out = []
    for c in changes:
        if not opened - lookback <= c["at"] <= end:
            continue
        out.append(score_suspect(c, incident["service"], opened, hops))
    out.sort(key=lambda s: (-s.score, abs((opened - s.at).total_seconds()), s.change_id))
    return out[:MAX_SUSPECTS]


def _candidate_changes(con: duckdb.DuckDBPyConnection, since: datetime) -> list[dict[str, Any]]:
    done = ", ".join(f"'{s}'" for s in DONE_STATUSES)
    return (
        con.sql(
            f"""
            SELECT id, service, kind, risk, status, coalesce(implemented_at, ts) AS at,
                   false AS pending
            FROM changes WHERE status IN ({done}) AND coalesce(implemented_at, ts) >= $since
            UNION ALL
            SELECT id, service, kind, risk, status, window_start AS at, true AS pending
            FROM changes WHERE status IN ('approved', 'scheduled')
              AND window_start IS NOT NULL AND window_end >= $since
            """,
            params={"since": since},
        )
        .pl()
        .to_dicts()
    )


def compute_suspects(
    store: Store,
    settings: ChangesSettings | None = None,
    *,
    now: datetime | None = None,
    incident_ids: Sequence[int] | None = None,
) -> int:
    """Rank suspect changes for open and recent incidents (or `incident_ids`) and store them
    in `incident_suspects`; returns how many incidents were scored."""
    s = settings or ChangesSettings()
    at = naive_utc(now)
    lookback = timedelta(hours=s.lookback_hours)
    params: list[Any]
    with store.read() as con:
        if incident_ids is not None:
            where, params = "id IN (SELECT unnest(?::BIGINT[]))", [list(incident_ids) or [-1]]
        else:
            where = "status <> 'resolved' OR resolved_at >= ? OR opened_at >= ?"
            params = [at - lookback, at - lookback]
        incidents = con.execute(
            f"SELECT id, service, opened_at, resolved_at FROM incidents WHERE {where}", params
        ).fetchall()
        if not incidents:
            return 0
        earliest = min(r[2] for r in incidents) - lookback
        changes = _candidate_changes(con, earliest)
        deps = con.execute("SELECT service, depends_on FROM service_dependencies").fetchall()
    rows = []
    for iid, service, opened_at, resolved_at in incidents:
        incident = {"service": service, "opened_at": opened_at, "resolved_at": resolved_at}
        ranked = rank_suspects(incident, changes, deps, lookback=lookback, now=at)
        rows += [(iid, x.change_id, i + 1, x.score, x.reason, at) for i, x in enumerate(ranked)]
    ids = [r[0] for r in incidents]
    with store.write() as con, _transaction(con):
        con.execute(
            "DELETE FROM incident_suspects WHERE incident_id IN (SELECT unnest(?::BIGINT[]))", [ids]
        )
        if rows:
            con.executemany("INSERT INTO incident_suspects VALUES (?, ?, ?, ?, ?, ?)", rows)
    return len(ids)


def suspects(store: Store, incident_id: int) -> pl.DataFrame:
    """The ranked suspect changes of one incident, best first, with the change's columns."""
    return store.query(
        """
        SELECT s.rank, s.score, s.change_id, c.service, c.kind, c.summary, c.status,
               c.risk, coalesce(c.implemented_at, c.ts) AS changed_at, c.source, s.reason,
               s.computed_at
        FROM incident_suspects s JOIN changes c ON c.id = s.change_id
        WHERE s.incident_id = ? ORDER BY s.rank
        """,
        [incident_id],
    )


# -- change failure rate -------------------------------------------------------------------
def failure_rate(
    store: Store,
    *,
    window_hours: float = 24.0,
    since: datetime | None = None,
    now: datetime | None = None,
) -> pl.DataFrame:
    """Per service: changes that took effect since `since` (default 30 days), how many were
    followed by an incident on that service within `window_hours` (failed), the share,
    and how many were rolled back. Chaos drills are left out: they are meant to hurt."""
    if not window_hours > 0:
        raise ChangeError(f"--hours: {window_hours!r} must be more than 0")
    at = naive_utc(now)
    start = naive_utc(since) if since else at - timedelta(days=30)
    done = ", ".join(f"'{s}'" for s in DONE_STATUSES)
    return store.query(
        f"""
        WITH c AS (
            SELECT id, service, status, coalesce(implemented_at, ts) AS at FROM changes
            WHERE status IN ({done}) AND kind <> 'chaos'
              AND coalesce(implemented_at, ts) >= $start AND coalesce(implemented_at, ts) <= $now
        ), per_change AS (
            SELECT c.id, c.service, c.status, count(i.id) > 0 AS failed
            FROM c LEFT JOIN incidents i ON i.service = c.service AND i.opened_at > c.at
                 AND i.opened_at <= c.at + to_microseconds($window_us)
            GROUP BY c.id, c.service, c.status
        )
        SELECT service, count(*) AS changes, count(*) FILTER (WHERE failed) AS failed,
               round(count(*) FILTER (WHERE failed) / count(*), 4) AS failure_rate,
               count(*) FILTER (WHERE status = 'rolled_back') AS rolled_back,
               $hours AS window_hours
        FROM per_change GROUP BY service ORDER BY failure_rate DESC, service
        """,
        {
            "start": start,
            "now": at,
            "window_us": int(window_hours * 3_600_000_000),
            "hours": float(window_hours),
        },
    )


# -- changes seen in traffic ---------------------------------------------------------------
class Observed(NamedTuple):
    """One row of the traffic summary: a value seen on a route from `first` to `last`."""

    service: str
    key: str
    value: str | None
    first: datetime
    last: datetime
    requests: int


@dataclass
class ObservePlan:
    state: list[tuple[Any, ...]] = field(default_factory=list)  # change_observations rows
    changes: list[dict[str, Any]] = field(default_factory=list)  # new `changes` rows


def plan_observed_changes(
    state: Iterable[Mapping[str, Any]],
    routes: Iterable[Observed],
    versions: Iterable[Observed],
    models: Iterable[Observed],
    *,
    now: datetime,
) -> ObservePlan:
    """Compare what traffic showed with what was seen before; pure. The first observation
    of a route's version or models (and of any route at all) is the baseline; later a new
    version is a 'deploy', a newly served model a 'config', a new route an 'infra' change."""
    known: dict[tuple[str, str, str], Mapping[str, Any]] = {
        (s["service"], s["aspect"], s["key"]): s for s in state
    }
    plan = ObservePlan()
    any_route = any(k[1] == "route" for k in known)
    model_routes = {k[0] for k in known if k[1] == "model"}

    def change(service: str, kind: str, summary: str, at: datetime, detail: dict[str, Any]) -> str:
        cid = new_change_id()
        plan.changes.append(
            {
                "id": cid, "ts": at, "service": service, "kind": kind, "summary": summary,
                "status": "implemented", "source": "observed", "change_type": "standard",
                "implemented_at": at, "detail": json.dumps(detail, sort_keys=True, default=str),
                "created_at": now, "updated_at": now,
            }
        )  # fmt: skip
        return cid

    def keep(aspect: str, o: Observed, value: str | None, cid: str | None) -> None:
        old = known.get((o.service, aspect, o.key))
        first = min(o.first, old["first_seen"]) if old else o.first
        last = max(o.last, old["last_seen"]) if old else o.last
        kept_cid = cid or (old["change_id"] if old else None)
        plan.state.append((o.service, aspect, o.key, value, first, last, kept_cid))

    for o in routes:
        cid = None
        if any_route and (o.service, "route", "") not in known:
            cid = change(
                o.service, "infra", f"new route {o.service} seen in traffic", o.first,
                {"first_seen": o.first, "requests": o.requests},
            )  # fmt: skip
        keep("route", o, None, cid)

    by_key: dict[tuple[str, str], list[Observed]] = {}
    for o in versions:
        by_key.setdefault((o.service, o.key), []).append(o)
    for (service, upstream), seen in by_key.items():
        latest = max(seen, key=lambda o: (o.last, o.first))
        old = known.get((service, "version", upstream))
        cid = None
        if old is not None and latest.value != old["value"] and latest.last > old["last_seen"]:
            others = sorted({o.value or "" for o in seen} - {latest.value or "", old["value"]})
            mixed = f" (also seen: {', '.join(others)})" if others else ""
            cid = change(
                service, "deploy",
                f"{upstream} now reports version {latest.value} (was {old['value']}){mixed}",
                latest.first,
                {"upstream": upstream, "from": old["value"], "to": latest.value,
                 "first_seen": latest.first, "requests": latest.requests},
            )  # fmt: skip
        span = Observed(
            service,
            upstream,
            latest.value,
            min(o.first for o in seen),
            max(o.last for o in seen),
            sum(o.requests for o in seen),
        )
        keep("version", span, latest.value, cid)

    for o in models:
        cid = None
        if o.service in model_routes and (o.service, "model", o.key) not in known:
            cid = change(
                o.service, "config", f"{o.service} serves LLM model {o.key} (first seen)", o.first,
                {"model": o.key, "first_seen": o.first, "requests": o.requests},
            )  # fmt: skip
        keep("model", o, None, cid)
    return plan


@dataclass
class ObserveResult:
    rows_scanned: int = 0
    changes: list[str] = field(default_factory=list)
    backfilled: int = 0
    seconds: float = 0.0

    def __str__(self) -> str:
        return (
            f"{len(self.changes)} changes seen in traffic ({self.rows_scanned} requests read), "
            f"{self.backfilled} spooled changes recorded, in {self.seconds:.2f} s"
        )


def observe_changes(store: Store, now: datetime | None = None) -> ObserveResult:
    """The worker job: read requests since the watermark, record changes seen in traffic
    (upstream version, newly served LLM model, new route)."""
    t0 = time.perf_counter()
    at = naive_utc(now)
    result = ObserveResult()
    with store.read() as con:
        row = con.execute(
            "SELECT watermark FROM change_scan_state WHERE name = ?", [OBSERVE_SCAN]
        ).fetchone()
        floor = row[0] - LATE_MARGIN if row and row[0] else datetime(1970, 1, 1)
        (count, max_ts) = con.execute(
            "SELECT count(*), max(ts) FROM requests WHERE ts > ?", [floor]
        ).fetchone() or (0, None)
        result.rows_scanned = int(count)
        if not count:
            result.seconds = time.perf_counter() - t0
            return result

        def summary(key: str, value: str, where: str) -> list[Observed]:
            rows = con.execute(
                f"SELECT route, {key}, {value}, min(ts), max(ts), count(*) FROM requests "
                f"WHERE ts > ? AND route IS NOT NULL {where} GROUP BY ALL",
                [floor],
            ).fetchall()
            return [Observed(*r) for r in rows]

        routes = summary("''", "NULL::VARCHAR", "")
        versions = summary(
            "upstream",
            "upstream_version",
            "AND upstream IS NOT NULL AND upstream_version IS NOT NULL",
        )
        models = summary("llm_model", "NULL::VARCHAR", "AND llm_model IS NOT NULL")
        state = con.sql("SELECT * FROM change_observations").pl().to_dicts()
    plan = plan_observed_changes(state, routes, versions, models, now=at)
    with store.write() as con, _transaction(con):
        if plan.state:
            con.executemany(
                "INSERT OR REPLACE INTO change_observations VALUES (?, ?, ?, ?, ?, ?, ?)",
                plan.state,
            )
        for c in plan.changes:
            _insert_change(con, c)
            _event(con, c["id"], at, None, "implemented", "observed", "seen in traffic")
            audit.record(
                con, "change.observe", "change", c["id"],
                detail={"service": c["service"], "kind": c["kind"], "summary": c["summary"]},
                actor="worker", source="worker",
            )  # fmt: skip
        con.execute(
            "INSERT OR REPLACE INTO change_scan_state VALUES (?, ?, ?)", [OBSERVE_SCAN, max_ts, at]
        )
    result.changes = [c["id"] for c in plan.changes]
    result.seconds = time.perf_counter() - t0
    for c in plan.changes:
        log.info(
            "change %s seen in traffic: %s %s: %s", c["id"], c["service"], c["kind"], c["summary"]
        )
    return result


# -- worker jobs ---------------------------------------------------------------------------
def run_changes_job(store: Store, config: GatewayConfig) -> ObserveResult:
    """Changes from the spool get their events; changes seen in traffic get recorded."""
    t0 = time.perf_counter()
    backfilled = backfill_events(store)
    result = observe_changes(store)
    result.backfilled = backfilled
    result.seconds = time.perf_counter() - t0
    return result


@dataclass
class SuspectsResult:
    incidents: int
    seconds: float

    def __str__(self) -> str:
        return f"suspect changes ranked for {self.incidents} incidents in {self.seconds:.2f} s"


def run_suspects_job(store: Store, config: GatewayConfig) -> SuspectsResult:
    t0 = time.perf_counter()
    n = compute_suspects(store, config.changes)
    return SuspectsResult(n, time.perf_counter() - t0)


def parse_since(text: str) -> datetime:
    """'24h', '7d', '90m' ago, or an ISO time."""
    from suite.notify import parse_duration

    value = text.strip()
    if value and value[-1].lower() in "smhdw" and value[0].isdigit():
        try:
            return utc_now() - parse_duration(value)
        except ConfigError:
            pass
    return parse_time(value, "--since")


def _api_changes(*args: Any, **kwargs: Any) -> Any:
    from suite.api import changes

    return changes(*args, **kwargs)


def _make_callable() -> None:
    from suite.api import make_module_callable

    # `suite.changes(since="7d")`: the notebook API's frame of changes (suite.api).
    make_module_callable(__name__, _api_changes)


_make_callable()
