"""Incidents: anomalies and SLO pages deduplicated (fingerprint = service + signal) and grouped
into incidents with a lifecycle (open -> acknowledged -> resolved, auto-resolve, reopen).

Never sends notifications and never opens DuckDB except through `suite.store`.

Writers (the detect job, the SLO job) call `open_or_update_incident()` or, for many
observations in one transaction, `record_observations()`; people call `acknowledge()`,
`resolve()`, `add_note()` and `assign()`. Every change is an `incident_events` row.
Times are naive UTC, like every TIMESTAMP in the store. An active incident is refreshed
by every new observation; a detector incident with none for `quiet_period` is
auto-resolved, while the SLO job resolves its own with `resolve_signal_incident()`.
The lifecycle logic is `IncidentBook`, pure and in memory, loaded and saved inside one
write transaction, so a month of anomalies and a single one take the same path.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import duckdb
import polars as pl
import pyarrow as pa

from suite import audit
from suite.api import make_module_callable
from suite.clock import naive_utc, utc_now
from suite.config import GatewayConfig
from suite.errors import AiopsError
from suite.store import Store, transaction

STATUSES = ("open", "acknowledged", "resolved")
ACTIVE_STATUSES = ("open", "acknowledged")
# The same scale notification channels filter on (suite.config), lowest first.
SEVERITIES = ("info", "warning", "critical")
EVENT_KINDS = (
    "opened", "anomaly", "acknowledged", "resolved", "auto_resolved", "reopened",
    "note", "assigned", "severity", "notified",
)  # fmt: skip

# How much a signal matters on its own; a score at or over SURE_SCORE raises it one step.
SIGNAL_SEVERITY = {
    "error_ratio": "warning",
    "request_rate": "warning",  # a traffic drop usually means callers cannot reach us
    "latency_p95_ms": "warning",
    "tokens": "info",
}
SURE_SCORE = 0.99
# The audit_log action of each person's step ("incident.acknowledge", ...).
_AUDIT_ACTIONS = {"acknowledged": "acknowledge", "resolved": "resolve", "assigned": "assign"}


class IncidentError(AiopsError):
    """Unknown incident id or a lifecycle step that is not allowed (the CLI exits 2)."""

    exit_code = 2


@dataclass(frozen=True)
class IncidentPolicy:
    """Grouping and lifecycle windows (defaults: 5 min, 15 min, 60 min). Only incidents of
    `auto_resolve_sources` auto-resolve: SLO incidents are resolved by the SLO job, which
    knows when the budget stops burning."""

    group_window: timedelta = timedelta(minutes=5)
    quiet_period: timedelta = timedelta(minutes=15)
    reopen_window: timedelta = timedelta(minutes=60)
    auto_resolve_sources: tuple[str, ...] = ("detector",)
    # Anomalies older than this at the horizon (a backfill, seeded history) open nothing.
    max_anomaly_age: timedelta | None = None


DEFAULT_POLICY = IncidentPolicy()


def incident_policy(config: GatewayConfig | None) -> IncidentPolicy:
    """The policy of a config's [incidents] table (the defaults without a config)."""
    if config is None:
        return DEFAULT_POLICY
    c = config.incidents
    return IncidentPolicy(
        group_window=timedelta(minutes=c.group_window_minutes),
        quiet_period=timedelta(minutes=c.quiet_minutes),
        reopen_window=timedelta(minutes=c.reopen_window_minutes),
        max_anomaly_age=None
        if c.max_anomaly_age_minutes is None
        else timedelta(minutes=c.max_anomaly_age_minutes),
    )


class Observation(NamedTuple):
    """One reason to open or refresh an incident: an anomaly, an SLO page, ..."""

    service: str
    signal: str
    ts: datetime
    score: float | None = None
    value: float | None = None
    severity: str | None = None  # None: from the signal and score (incident_severity)
    source: str = "detector"  # 'detector' | 'slo' | ...
    detector: str | None = None
    threshold: float | None = None
    title: str | None = None  # None: "<service>: <signal> anomaly"
    detail: str | None = None  # None: built from value, score, detector
    actor: str = "detector"
    # Only keeps an active incident of this signal alive (its problem is still there but
    # the detector holds back repeat alarms): never opens, groups, reopens or counts.
    refresh_only: bool = False


class IncidentUpdate(NamedTuple):
    incident_id: int | None  # None only for a refresh_only observation with no incident
    action: str  # opened | updated | grouped | reopened | refreshed | ignored | too_old


def incident_fingerprint(service: str, signal: str) -> str:
    """The dedup key: repeats of one service's signal refresh one incident."""
    return f"{service}:{signal}"


def incident_severity(signal: str, score: float | None = None, source: str = "detector") -> str:
    """critical for SLO pages; otherwise by signal, one step up for a near-certain score.
    A detector alone never pages as critical: that is kept for error-budget burn."""
    if source == "slo":
        return "critical"
    level = SEVERITIES.index(SIGNAL_SEVERITY.get(signal, "warning"))
    if score is not None and score >= SURE_SCORE:
        level += 1
    return SEVERITIES[min(level, SEVERITIES.index("warning"))]


def default_actor() -> str:
    """$AIOPS_USER, else the OS user (suite.audit.current_actor)."""
    return audit.current_actor()


# -- the in-memory book: pure lifecycle logic, loaded and saved in one transaction ----------
@dataclass
class Incident:
    id: int
    fingerprint: str
    title: str
    service: str
    signal: str
    severity: str
    status: str
    opened_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    assignee: str | None
    last_seen_at: datetime
    anomaly_count: int
    source: str
    reopened_count: int
    signals: list[str]
    max_score: float | None
    updated_at: datetime


INCIDENT_COLUMNS = tuple(f.name for f in fields(Incident))
_INCIDENT_SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("fingerprint", pa.string()),
        ("title", pa.string()),
        ("service", pa.string()),
        ("signal", pa.string()),
        ("severity", pa.string()),
        ("status", pa.string()),
        ("opened_at", pa.timestamp("us")),
        ("acknowledged_at", pa.timestamp("us")),
        ("resolved_at", pa.timestamp("us")),
        ("assignee", pa.string()),
        ("last_seen_at", pa.timestamp("us")),
        ("anomaly_count", pa.int64()),
        ("source", pa.string()),
        ("reopened_count", pa.int32()),
        ("signals", pa.list_(pa.string())),
        ("max_score", pa.float64()),
        ("updated_at", pa.timestamp("us")),
    ]
)
_EVENT_SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("incident_id", pa.int64()),
        ("ts", pa.timestamp("us")),
        ("kind", pa.string()),
        ("actor", pa.string()),
        ("detail", pa.string()),
    ]
)


class Event(NamedTuple):
    incident_id: int
    ts: datetime
    kind: str
    actor: str
    detail: str | None


def _title(service: str, signals: Sequence[str]) -> str:
    more = f" (with {', '.join(signals[1:])})" if len(signals) > 1 else ""
    return f"{service}: {signals[0]} anomaly{more}"


def _describe(obs: Observation) -> str:
    if obs.detail:
        return obs.detail
    parts = [obs.signal]
    if obs.value is not None:
        parts[0] += f"={obs.value:.6g}"
    if obs.score is not None:
        parts.append(f"score {obs.score:.3f}")
    if obs.detector:
        at = f" at threshold {obs.threshold:.3g}" if obs.threshold is not None else ""
        parts.append(f"detector {obs.detector}{at}")
    if obs.source != "detector":
        parts.append(f"source {obs.source}")
    return ", ".join(parts)


@dataclass
class IncidentBook:
    """The incidents that new observations can touch (active, or resolved recently enough
    to reopen), changed in memory and written back by `save()`."""

    policy: IncidentPolicy
    incidents: dict[int, Incident]
    next_id: int
    new_ids: set[int] = field(default_factory=set)
    changed_ids: set[int] = field(default_factory=set)
    events: list[Event] = field(default_factory=list)
    # Indexes so one observation looks only at its service and the active incidents:
    # a backfill feeds thousands of observations through here.
    _by_service: dict[str, list[Incident]] = field(default_factory=dict)
    _active: dict[int, Incident] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for inc in self.incidents.values():
            self._index(inc)

    def _index(self, inc: Incident) -> None:
        self._by_service.setdefault(inc.service, []).append(inc)
        if inc.status in ACTIVE_STATUSES:
            self._active[inc.id] = inc

    @classmethod
    def load(
        cls,
        con: duckdb.DuckDBPyConnection,
        policy: IncidentPolicy = DEFAULT_POLICY,
        since: datetime | None = None,
    ) -> IncidentBook:
        """Active incidents plus those resolved at or after `since` minus the reopen window."""
        cutoff = (since or utc_now()) - policy.reopen_window
        df = con.sql(
            f"SELECT {', '.join(INCIDENT_COLUMNS)} FROM incidents "
            "WHERE status <> 'resolved' OR resolved_at >= ?",
            params=[cutoff],
        ).pl()
        incidents = {row["id"]: Incident(**row) for row in df.iter_rows(named=True)}
        ((max_id,),) = con.execute("SELECT coalesce(max(id), 0) FROM incidents").fetchall()
        return cls(policy, incidents, int(max_id) + 1)

    # -- lifecycle ------------------------------------------------------------------------
    def _event(
        self, inc: Incident, ts: datetime, kind: str, actor: str, detail: str | None
    ) -> None:
        self.events.append(Event(inc.id, ts, kind, actor, detail))
        inc.updated_at = max(inc.updated_at, ts)
        self._touch(inc)

    def _touch(self, inc: Incident) -> None:
        if inc.id not in self.new_ids:
            self.changed_ids.add(inc.id)

    def auto_resolve(self, now: datetime) -> list[int]:
        """Resolve active incidents with no observation for the quiet period; the resolve
        time is when they went quiet, so a replay gives the same times as a live run."""
        done = []
        for inc in list(self._active.values()):
            quiet_since = inc.last_seen_at + self.policy.quiet_period
            if quiet_since <= now and inc.source in self.policy.auto_resolve_sources:
                del self._active[inc.id]
                inc.status = "resolved"
                inc.resolved_at = quiet_since
                minutes = self.policy.quiet_period.total_seconds() / 60
                self._event(
                    inc, quiet_since, "auto_resolved", "detector",
                    f"no anomaly for {minutes:g} min",
                )  # fmt: skip
                done.append(inc.id)
        return done

    def _find_active(self, obs: Observation) -> tuple[Incident | None, bool]:
        """(incident, same_signal): the active incident for this fingerprint or signal, else
        an active one of the same service and source seen within the group window."""
        fp = incident_fingerprint(obs.service, obs.signal)
        group: Incident | None = None
        for inc in self._by_service.get(obs.service, ()):
            if inc.status not in ACTIVE_STATUSES or inc.source != obs.source:
                continue
            if inc.fingerprint == fp or obs.signal in inc.signals:
                return inc, True
            if obs.ts - inc.last_seen_at <= self.policy.group_window and (
                group is None or inc.last_seen_at > group.last_seen_at
            ):
                group = inc
        return group, False

    def _find_reopenable(self, obs: Observation) -> Incident | None:
        fp = incident_fingerprint(obs.service, obs.signal)
        best: Incident | None = None
        for inc in self._by_service.get(obs.service, ()):
            if inc.status != "resolved" or inc.resolved_at is None or inc.source != obs.source:
                continue
            if inc.fingerprint != fp and obs.signal not in inc.signals:
                continue
            if obs.ts - inc.resolved_at <= self.policy.reopen_window and (
                best is None or inc.resolved_at > (best.resolved_at or inc.resolved_at)
            ):
                best = inc
        return best

    def observe(self, obs: Observation) -> IncidentUpdate:
        """Open, refresh, group into or reopen an incident for one observation. Call in time
        order; quiet incidents are auto-resolved first, as they would have been live."""
        obs = obs._replace(ts=naive_utc(obs.ts))
        self.auto_resolve(obs.ts)
        if obs.refresh_only:
            return self._refresh(obs)
        severity = obs.severity or incident_severity(obs.signal, obs.score, obs.source)
        if severity not in SEVERITIES:
            raise IncidentError(f"severity {severity!r} is not one of {', '.join(SEVERITIES)}")
        inc, same_signal = self._find_active(obs)
        action = "updated" if same_signal else "grouped"
        if inc is None:
            inc = self._find_reopenable(obs)
            if inc is not None:
                inc.status = "open"
                self._active[inc.id] = inc
                inc.reopened_count += 1
                inc.acknowledged_at = None
                gap = inc.resolved_at
                inc.resolved_at = None
                self._event(
                    inc, obs.ts, "reopened", obs.actor,
                    f"{obs.signal} again after resolve at {gap:%Y-%m-%d %H:%M}",
                )  # fmt: skip
                action = "reopened"
        if inc is None:
            return self._open(obs, severity)
        if obs.signal not in inc.signals:
            inc.signals = [*inc.signals, obs.signal]
            inc.title = _title(inc.service, inc.signals)
        elif obs.title and len(inc.signals) == 1 and obs.title != inc.title:
            inc.title = obs.title  # the caller's own title, e.g. the current burn rate
        inc.last_seen_at = max(inc.last_seen_at, obs.ts)
        inc.anomaly_count += 1
        if obs.score is not None:
            inc.max_score = max(inc.max_score or 0.0, obs.score)
        self._touch(inc)
        if obs.source == "detector" or action != "updated":
            # Other sources refresh every run while their condition holds: counted, but
            # an event only when something changes.
            self._event(inc, obs.ts, "anomaly", obs.actor, _describe(obs))
        if SEVERITIES.index(severity) > SEVERITIES.index(inc.severity):
            self._event(inc, obs.ts, "severity", obs.actor, f"{inc.severity} -> {severity}")
            inc.severity = severity
        return IncidentUpdate(inc.id, action)

    def _refresh(self, obs: Observation) -> IncidentUpdate:
        inc, same_signal = self._find_active(obs)
        if inc is None or not same_signal:
            return IncidentUpdate(None, "ignored")
        if obs.ts > inc.last_seen_at:
            inc.last_seen_at = obs.ts
            self._touch(inc)
        return IncidentUpdate(inc.id, "refreshed")

    def _open(self, obs: Observation, severity: str) -> IncidentUpdate:
        inc = Incident(
            id=self.next_id,
            fingerprint=incident_fingerprint(obs.service, obs.signal),
            title=obs.title or _title(obs.service, [obs.signal]),
            service=obs.service,
            signal=obs.signal,
            severity=severity,
            status="open",
            opened_at=obs.ts,
            acknowledged_at=None,
            resolved_at=None,
            assignee=None,
            last_seen_at=obs.ts,
            anomaly_count=1,
            source=obs.source,
            reopened_count=0,
            signals=[obs.signal],
            max_score=obs.score,
            updated_at=obs.ts,
        )
        self.next_id += 1
        self.incidents[inc.id] = inc
        self._index(inc)
        self.new_ids.add(inc.id)
        self._event(inc, obs.ts, "opened", obs.actor, f"{severity}: {_describe(obs)}")
        return IncidentUpdate(inc.id, "opened")

    # -- persistence ----------------------------------------------------------------------
    def save(self, con: duckdb.DuckDBPyConnection) -> None:
        """Write new and changed incidents and the events, inside the caller's transaction."""
        new = [self.incidents[i] for i in sorted(self.new_ids)]
        changed = [self.incidents[i] for i in sorted(self.changed_ids - self.new_ids)]
        if new:
            con.register("_new_incidents", _incidents_arrow(new))
            con.execute("INSERT INTO incidents BY NAME SELECT * FROM _new_incidents")
            con.unregister("_new_incidents")
        if changed:
            con.register("_changed_incidents", _incidents_arrow(changed))
            sets = ", ".join(f"{c} = u.{c}" for c in INCIDENT_COLUMNS if c != "id")
            con.execute(
                f"UPDATE incidents SET {sets} FROM _changed_incidents u WHERE incidents.id = u.id"
            )
            con.unregister("_changed_incidents")
        if self.events:
            save_events(con, self.events)
        self.new_ids.clear()
        self.changed_ids.clear()
        self.events = []


def _incidents_arrow(rows: Iterable[Incident]) -> pa.Table:
    rows = list(rows)
    return pa.table(
        {c: [getattr(r, c) for r in rows] for c in INCIDENT_COLUMNS}, schema=_INCIDENT_SCHEMA
    )


def save_events(con: duckdb.DuckDBPyConnection, events: Sequence[Event]) -> None:
    ((max_id,),) = con.execute("SELECT coalesce(max(id), 0) FROM incident_events").fetchall()
    table = pa.table(
        {
            "id": list(range(int(max_id) + 1, int(max_id) + 1 + len(events))),
            "incident_id": [e.incident_id for e in events],
            "ts": [e.ts for e in events],
            "kind": [e.kind for e in events],
            "actor": [e.actor for e in events],
            "detail": [e.detail for e in events],
        },
        schema=_EVENT_SCHEMA,
    )
    con.register("_new_incident_events", table)
    con.execute("INSERT INTO incident_events BY NAME SELECT * FROM _new_incident_events")
    con.unregister("_new_incident_events")


# -- the function API -----------------------------------------------------------------------
def record_observations(
    con: duckdb.DuckDBPyConnection,
    observations: Iterable[Observation],
    *,
    now: datetime | None = None,
    policy: IncidentPolicy = DEFAULT_POLICY,
) -> list[IncidentUpdate]:
    """Feed observations into incidents in time order (refreshes after anomalies of the same
    minute), then auto-resolve what is quiet at `now`; runs inside the caller's write
    transaction. The updates come back in the order of `observations`."""
    obs = list(observations)
    order = sorted(range(len(obs)), key=lambda i: (naive_utc(obs[i].ts), obs[i].refresh_only))
    since = min((naive_utc(o.ts) for o in obs), default=now or utc_now())
    book = IncidentBook.load(con, policy, since)
    updates: list[IncidentUpdate] = [IncidentUpdate(None, "ignored")] * len(obs)
    for i in order:
        updates[i] = book.observe(obs[i])
    book.auto_resolve(naive_utc(now) if now else utc_now())
    book.save(con)
    return updates


def open_or_update_incident(
    store: Store,
    *,
    service: str,
    signal: str,
    now: datetime | None = None,
    score: float | None = None,
    value: float | None = None,
    severity: str | None = None,
    source: str = "detector",
    title: str | None = None,
    detail: str | None = None,
    actor: str | None = None,
    policy: IncidentPolicy = DEFAULT_POLICY,
) -> int:
    """Open an incident for (service, signal) observed at `now`, or refresh, group into or
    reopen the one that exists; returns its id. SLO pages pass source='slo' (severity
    critical unless given) and call again on every run while the condition holds."""
    when = naive_utc(now) if now else utc_now()
    ob = Observation(
        service=service,
        signal=signal,
        ts=when,
        score=score,
        value=value,
        severity=severity,
        source=source,
        title=title,
        detail=detail,
        actor=actor or source,
    )
    with store.write() as con, _transaction(con):
        (update,) = record_observations(con, [ob], now=when, policy=policy)
    assert update.incident_id is not None
    return update.incident_id


def resolve_signal_incident(
    store: Store,
    *,
    service: str,
    signal: str,
    now: datetime | None = None,
    actor: str | None = None,
    reason: str | None = None,
) -> int | None:
    """Resolve the active incident of (service, signal) when its condition cleared (an SLO
    no longer burning); returns its id, or None when none was active."""
    when = naive_utc(now) if now else utc_now()
    fp = incident_fingerprint(service, signal)
    with store.write() as con:
        rows = con.execute(
            "SELECT id FROM incidents WHERE fingerprint = ? AND status IN ('open', 'acknowledged') "
            "ORDER BY id",
            [fp],
        ).fetchall()
        if not rows:
            return None
        with _transaction(con):
            for (incident_id,) in rows:
                con.execute(
                    "UPDATE incidents SET status = 'resolved', resolved_at = ?, updated_at = ? "
                    "WHERE id = ?",
                    [when, when, incident_id],
                )
            save_events(
                con,
                [Event(i, when, "resolved", actor or default_actor(), reason) for (i,) in rows],
            )
    return int(rows[-1][0])


def _transaction(con: duckdb.DuckDBPyConnection) -> AbstractContextManager[object]:
    return transaction(con)


def auto_resolve_quiet(
    store: Store, now: datetime | None = None, policy: IncidentPolicy = DEFAULT_POLICY
) -> list[int]:
    """Resolve incidents quiet for the policy's quiet period; returns their ids."""
    when = naive_utc(now) if now else utc_now()
    with store.write() as con, _transaction(con):
        book = IncidentBook.load(con, policy, when)
        done = book.auto_resolve(when)
        book.save(con)
    return done


def _change(
    store: Store,
    incident_id: int,
    actor: str | None,
    kind: str,
    detail: str | None,
    source: str | None = None,
) -> dict[str, Any]:
    """One lifecycle step for one incident, checked and written in one transaction; with a
    `source` (a person's action from the CLI or the dashboard) an audit row goes with it."""
    who = actor or default_actor()
    now = utc_now()
    with store.write() as con:
        row = _fetch_one(con, incident_id)
        status = row["status"]
        sets: dict[str, Any] = {}
        if kind == "acknowledged":
            if status != "open":
                raise IncidentError(
                    f"incident {incident_id} is {status}; only an open incident can be acknowledged"
                )
            sets = {"status": "acknowledged", "acknowledged_at": now}
            if not row["assignee"]:
                sets["assignee"] = who
        elif kind == "resolved":
            if status == "resolved":
                when = row["resolved_at"]
                raise IncidentError(
                    f"incident {incident_id} is already resolved (at {when:%Y-%m-%d %H:%M}); "
                    "it reopens by itself if the problem comes back"
                )
            sets = {"status": "resolved", "resolved_at": now}
        elif kind == "assigned":
            assert detail is not None
            sets = {"assignee": detail}
        elif kind == "note" and not (detail or "").strip():
            raise IncidentError("a note needs some text")
        elif kind not in EVENT_KINDS:
            raise IncidentError(f"event kind {kind!r} is not one of {', '.join(EVENT_KINDS)}")
        sets["updated_at"] = now
        with _transaction(con):
            assignments = ", ".join(f"{c} = ?" for c in sets)
            con.execute(
                f"UPDATE incidents SET {assignments} WHERE id = ?", [*sets.values(), incident_id]
            )
            save_events(con, [Event(incident_id, now, kind, who, detail)])
            if source is not None:
                audit.record(
                    con,
                    f"incident.{_AUDIT_ACTIONS.get(kind, kind)}",
                    "incident",
                    incident_id,
                    detail={"detail": detail} if detail else None,
                    actor=who,
                    source=source,
                )
        return _fetch_one(con, incident_id)


def _fetch_one(con: duckdb.DuckDBPyConnection, incident_id: int) -> dict[str, Any]:
    df = con.sql(
        f"SELECT {', '.join(INCIDENT_COLUMNS)} FROM incidents WHERE id = ?", params=[incident_id]
    ).pl()
    if df.is_empty():
        raise IncidentError(
            f"no incident with id {incident_id} (see `aiops incidents list` for the ids)"
        )
    return df.row(0, named=True)


def acknowledge(
    store: Store, incident_id: int, actor: str | None = None, *, source: str = "cli"
) -> dict[str, Any]:
    """open -> acknowledged; the actor becomes the assignee unless one is set. Like every
    action a person takes, audited with its `source` ('cli', 'dashboard', 'api')."""
    return _change(store, incident_id, actor, "acknowledged", None, source)


def resolve(
    store: Store,
    incident_id: int,
    actor: str | None = None,
    note: str | None = None,
    *,
    source: str = "cli",
) -> dict[str, Any]:
    """open or acknowledged -> resolved; the note goes into the event."""
    return _change(store, incident_id, actor, "resolved", note, source)


def add_note(
    store: Store, incident_id: int, actor: str | None, text: str, *, source: str = "cli"
) -> dict[str, Any]:
    return _change(store, incident_id, actor, "note", text, source)


def add_event(
    store: Store, incident_id: int, kind: str, actor: str | None, detail: str | None = None
) -> dict[str, Any]:
    """Record something that happened to an incident without changing it, e.g. kind
    'notified' from suite.notify."""
    if kind in ("acknowledged", "resolved", "assigned", "note"):
        raise IncidentError(f"use {kind}() for a {kind!r} event: it changes the incident")
    return _change(store, incident_id, actor, kind, detail)


def assign(
    store: Store, incident_id: int, actor: str | None, assignee: str, *, source: str = "cli"
) -> dict[str, Any]:
    if not assignee.strip():
        raise IncidentError("assignee must not be empty")
    return _change(store, incident_id, actor, "assigned", assignee.strip(), source)


def list_incidents(store: Store, status: str | None = None) -> pl.DataFrame:
    """Incidents, newest first; `status` one of open, acknowledged, resolved."""
    if status is not None and status not in STATUSES:
        raise IncidentError(f"status {status!r} is not one of {', '.join(STATUSES)}")
    where = "WHERE status = ?" if status else ""
    return store.query(
        f"SELECT {', '.join(INCIDENT_COLUMNS)} FROM incidents {where} "
        "ORDER BY opened_at DESC, id DESC",
        [status] if status else None,
    )


def get_incident(store: Store, incident_id: int) -> dict[str, Any]:
    """One incident as a dict, with its events in the order they were recorded under "events"."""
    with store.read() as con:
        row = _fetch_one(con, incident_id)
        events = con.sql(
            "SELECT id, ts, kind, actor, detail FROM incident_events WHERE incident_id = ? "
            "ORDER BY id",
            params=[incident_id],
        ).pl()
    row["events"] = events.to_dicts()
    return row


def _api_incidents(*args: Any, **kwargs: Any) -> Any:
    from suite.api import incidents

    return incidents(*args, **kwargs)


# `suite.incidents(status="open")`: the notebook API's frame of incidents (suite.api).
make_module_callable(__name__, _api_incidents)
