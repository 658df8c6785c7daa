"""Problems (ITIL problem management): incidents with the same fingerprint that keep
recurring become one problem record, with root cause, known error and workaround.

The worker job only creates, links, counts and reopens; people edit the rest from the
CLI (`update_problem`), each edit with an audit row. Never touches incidents themselves.

A fingerprint (service + signal, see suite.incidents) with at least `[problems]
min_incidents` incidents opened within `window_days` gets a problem, linked to those
incidents; every later incident of the fingerprint is linked as it arrives and updates
`incident_count`/`last_seen`. An incident opened after the problem was resolved reopens
it (as 'known_error' when it is a known error, else 'open'): the fix did not hold.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from suite import audit
from suite.catalog_config import ProblemSettings
from suite.clock import naive_utc, utc_now
from suite.config import GatewayConfig
from suite.errors import AiopsError
from suite.store import Store

STATUSES = ("open", "known_error", "resolved")
PROBLEM_COLUMNS = (
    "id", "fingerprint", "title", "service", "status", "root_cause", "known_error",
    "workaround", "incident_count", "first_seen", "last_seen", "created_at", "updated_at",
    "resolved_at",
)  # fmt: skip
WORKER = "worker"


class ProblemError(AiopsError):
    """Unknown problem id or an edit that is not allowed (the CLI exits 2)."""

    exit_code = 2


@dataclass
class ProblemResult:
    created: int = 0
    linked: int = 0
    reopened: int = 0
    seconds: float = 0.0

    def __str__(self) -> str:
        return (
            f"{self.created} problems created, {self.linked} incidents linked, "
            f"{self.reopened} reopened in {self.seconds:.2f} s"
        )


# Fingerprints recurring often enough in the window, with no problem yet.
_CANDIDATES = """
SELECT fingerprint, arg_max(service, opened_at) AS service, arg_max(signal, opened_at) AS signal,
       count(*) AS n
FROM incidents
WHERE opened_at >= $since AND opened_at <= $now
  AND fingerprint NOT IN (SELECT fingerprint FROM problems)
GROUP BY fingerprint
HAVING count(*) >= $min_incidents
ORDER BY min(opened_at), fingerprint
"""

# Incidents of a problem's fingerprint not linked yet: those in the creating window
# (first_seen is set from them) and every one since.
_UNLINKED = """
SELECT p.id AS problem_id, i.id AS incident_id, i.opened_at, p.status, p.resolved_at,
       p.known_error
FROM problems p JOIN incidents i ON i.fingerprint = p.fingerprint
WHERE i.opened_at >= p.first_seen AND i.opened_at <= $now
  AND NOT EXISTS (SELECT 1 FROM problem_incidents l
                  WHERE l.problem_id = p.id AND l.incident_id = i.id)
"""


def run_problems(store: Store, config: GatewayConfig, now: datetime | None = None) -> ProblemResult:
    """The worker job: create problems for recurring fingerprints, link new incidents,
    refresh counts, reopen resolved problems that recur. One short write transaction
    (incidents and problems are small tables)."""
    t0 = time.perf_counter()
    at = naive_utc(now)
    settings: ProblemSettings = config.problems
    since = at - timedelta(days=settings.window_days)
    result = ProblemResult()
    with store.write() as con:
        con.execute("BEGIN TRANSACTION")
        try:
            candidates = con.execute(
                _CANDIDATES, {"since": since, "now": at, "min_incidents": settings.min_incidents}
            ).fetchall()
            next_id = audit.next_id(con, "problems")
            for fingerprint, service, signal, n in candidates:
                pid = next_id
                next_id += 1
                (first,) = con.execute(
                    "SELECT min(opened_at) FROM incidents WHERE fingerprint = ? AND opened_at >= ?",
                    [fingerprint, since],
                ).fetchall()[0]
                con.execute(
                    "INSERT INTO problems (id, fingerprint, title, service, status, known_error, "
                    "incident_count, first_seen, last_seen, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, 'open', false, 0, ?, ?, ?, ?)",
                    [pid, fingerprint, f"Recurring {signal} incidents on {service}", service,
                     first, first, at, at],
                )  # fmt: skip
                audit.record(
                    con, "problem.create", "problem", pid, actor=WORKER, source="worker",
                    detail={"fingerprint": fingerprint, "incidents": n,
                            "window_days": settings.window_days},
                )  # fmt: skip
                result.created += 1
            unlinked = con.execute(_UNLINKED, {"now": at}).fetchall()
            if unlinked:
                con.executemany(
                    "INSERT INTO problem_incidents VALUES (?, ?)", [(r[0], r[1]) for r in unlinked]
                )
                result.linked = len(unlinked)
            # A resolved problem whose fingerprint comes back after the resolve: reopened.
            reopen: dict[int, tuple[bool, list[int]]] = {}
            for pid, iid, opened_at, status, resolved_at, known in unlinked:
                if status == "resolved" and resolved_at is not None and opened_at > resolved_at:
                    reopen.setdefault(pid, (known, []))[1].append(iid)
            for pid, (known, incident_ids) in reopen.items():
                new_status = "known_error" if known else "open"
                con.execute(
                    "UPDATE problems SET status = ?, resolved_at = NULL, updated_at = ? WHERE id = ?",
                    [new_status, at, pid],
                )
                audit.record(
                    con, "problem.reopen", "problem", pid, actor=WORKER, source="worker",
                    detail={"status": {"from": "resolved", "to": new_status},
                            "incidents": incident_ids},
                )  # fmt: skip
                result.reopened += 1
            if unlinked or candidates:
                con.execute(
                    """
                    UPDATE problems SET incident_count = s.n, first_seen = s.f, last_seen = s.l,
                        updated_at = ?
                    FROM (SELECT l.problem_id, count(*) AS n, min(i.opened_at) AS f,
                                 max(i.opened_at) AS l
                          FROM problem_incidents l JOIN incidents i ON i.id = l.incident_id
                          GROUP BY l.problem_id) s
                    WHERE problems.id = s.problem_id AND (problems.incident_count <> s.n
                          OR problems.last_seen <> s.l OR problems.first_seen <> s.f)
                    """,
                    [at],
                )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    result.seconds = time.perf_counter() - t0
    return result


def list_problems(store: Store, status: str | None = None) -> pl.DataFrame:
    """Problems by recurrence: most incidents first, then most recent."""
    if status is not None and status not in STATUSES:
        raise ProblemError(f"status {status!r} is not one of {', '.join(STATUSES)}")
    where = "WHERE status = ?" if status else ""
    return store.query(
        f"SELECT {', '.join(PROBLEM_COLUMNS)} FROM problems {where} "
        "ORDER BY incident_count DESC, last_seen DESC, id",
        [status] if status else None,
    )


def _fetch(con: Any, problem_id: int) -> dict[str, Any]:
    df = con.sql(
        f"SELECT {', '.join(PROBLEM_COLUMNS)} FROM problems WHERE id = ?", params=[problem_id]
    ).pl()
    if df.is_empty():
        raise ProblemError(f"no problem with id {problem_id} (see `aiops problems list`)")
    row: dict[str, Any] = df.row(0, named=True)
    return row


def get_problem(store: Store, problem_id: int) -> dict[str, Any]:
    """One problem, its linked incidents (newest first) under "incidents" and its audit
    history under "history"."""
    with store.read() as con:
        row = _fetch(con, problem_id)
        row["incidents"] = (
            con.sql(
                "SELECT i.id, i.title, i.severity, i.status, i.opened_at, i.resolved_at "
                "FROM problem_incidents l JOIN incidents i ON i.id = l.incident_id "
                "WHERE l.problem_id = ? ORDER BY i.opened_at DESC, i.id DESC",
                params=[problem_id],
            )
            .pl()
            .to_dicts()
        )
        row["history"] = (
            con.sql(
                "SELECT ts, actor, action, detail, source FROM audit_log "
                "WHERE target_kind = 'problem' AND target_id = ? ORDER BY id",
                params=[str(problem_id)],
            )
            .pl()
            .to_dicts()
        )
    return row


def update_problem(
    store: Store,
    problem_id: int,
    *,
    root_cause: str | None = None,
    workaround: str | None = None,
    known_error: bool | None = None,
    status: str | None = None,
    actor: str | None = None,
    source: str = "cli",
) -> dict[str, Any]:
    """Edit a problem; an empty root cause or workaround clears it. Marking it a known
    error moves an open problem to 'known_error'; a known error needs a root cause or a
    workaround on record. Writes one audit row with each field's old and new value."""
    if status is not None and status not in STATUSES:
        raise ProblemError(f"status {status!r} is not one of {', '.join(STATUSES)}")
    if root_cause is None and workaround is None and known_error is None and status is None:
        raise ProblemError(
            "nothing to update: pass --root-cause, --workaround, --known-error or --status"
        )
    who = actor or audit.current_actor()
    now = utc_now()
    with store.write() as con:
        row = _fetch(con, problem_id)
        sets: dict[str, Any] = {}
        if root_cause is not None:
            sets["root_cause"] = root_cause.strip() or None
        if workaround is not None:
            sets["workaround"] = workaround.strip() or None
        if known_error is not None:
            sets["known_error"] = known_error
        if status is None and known_error and row["status"] == "open":
            status = "known_error"
        if status == "known_error":
            sets["known_error"] = True
        if status is not None:
            sets["status"] = status
            if status == "resolved" and row["status"] != "resolved":
                sets["resolved_at"] = now
            elif status != "resolved":
                sets["resolved_at"] = None
        merged = {**row, **sets}
        if merged["status"] == "known_error" and not (merged["root_cause"] or merged["workaround"]):
            raise ProblemError(
                f"problem {problem_id}: a known error needs a root cause or a workaround on "
                "record (pass --root-cause or --workaround)"
            )
        changed = {k: v for k, v in sets.items() if row.get(k) != v}
        if not changed:
            return row
        con.execute("BEGIN TRANSACTION")
        try:
            assignments = ", ".join(f"{c} = ?" for c in changed)
            con.execute(
                f"UPDATE problems SET {assignments}, updated_at = ? WHERE id = ?",
                [*changed.values(), now, problem_id],
            )
            audit.record(
                con,
                "problem.update",
                "problem",
                problem_id,
                detail={k: {"from": row.get(k), "to": v} for k, v in changed.items()},
                actor=who,
                source=source,
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return _fetch(con, problem_id)


def problems_job(store: Store, config: GatewayConfig) -> ProblemResult:
    """`aiops worker` job `problems`."""
    return run_problems(store, config)
