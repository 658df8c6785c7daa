"""The service catalog (a small CMDB): services from routes and `[[services]]`, their
dependencies (declared in the config and observed in traffic) and the monthly SLA report.

Heavy lifting is SQL in DuckDB; Python only handles the config's few rows. Never opens
DuckDB except through `suite.store`, and never writes `requests` or `metrics_1m`.

Tables (migration 0007):
- `services`: one row per service. `source` is 'config' (declared in [[services]]; the
  declared fields win), 'route' (a route not declared), 'observed' (named only as a caller
  in traffic) or 'retired' (was a route or declared, no longer in the config; kept for
  the SLA history).
- `service_dependencies`: one row per edge `service -> depends_on`, meaning "service calls
  (needs) depends_on": a change or an outage of depends_on can hurt service. `source` is
  'config' when declared (declared wins) or 'observed' when only seen in traffic;
  `first_seen`/`last_seen`/`calls` count the observed calls either way (NULL/0: never
  seen). An observed-only edge not seen for `[catalog] observed_ttl_days` is dropped.
- `service_dependency_calls`: observed calls per hour and edge, and `via` = 'header' or
  'trace' (how the caller was known), from which the observed edges are summed.

How a call's caller is known (one caller per call, the header first):
1. `x-aiops-caller: <service>` on the request (proxy_addons/caller.py -> requests.caller):
   the client names itself, e.g. an agent calling an LLM route and an MCP route.
2. W3C trace enclosure: within one `trace_id`, a call B (route b) is a child of the
   innermost call A (route a != b) whose time span [ts, ts + duration] encloses B's,
   unless A and B carry the same `parent_span_id` (then both were sent from one span:
   siblings, not caller and callee). The gateway sees both calls only when the calling
   service is itself behind the gateway. Traces with more than MAX_TRACE_CALLS calls in
   a run's window are skipped (a batch job reusing one trace id would be quadratic).
Each run re-examines the hours from `[catalog] trace_lookback_minutes` before the newest
request it saw (late rows, long callers recorded when they end) and rewrites those hours'
counts, so a call is never counted twice.
"""

from __future__ import annotations

import calendar
import logging
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from suite.catalog_config import CatalogSettings, ServiceSpec
from suite.clock import naive_utc
from suite.config import GatewayConfig, Route
from suite.errors import AiopsError
from suite.store import Store

log = logging.getLogger("aiops.catalog")

SOURCES = ("config", "route", "observed", "retired")
EDGE_SOURCES = ("config", "observed")
MAX_TRACE_CALLS = 1000
UNROUTED = "(unrouted)"
_WATERMARK_CALLS = "dependency_calls"  # newest requests.ts examined for observed edges
_WATERMARK_METRICS = "service_metrics"  # newest metrics_1m minute folded into first/last seen


class CatalogError(AiopsError):
    """Unknown service, bad month, bad format: the CLI exits 2."""

    exit_code = 2


@dataclass
class CatalogResult:
    services: int = 0
    declared_edges: int = 0
    observed_edges: int = 0
    hours_recomputed: int = 0
    seconds: float = 0.0

    def __str__(self) -> str:
        return (
            f"{self.services} services, {self.declared_edges} declared and "
            f"{self.observed_edges} observed-only dependencies ({self.hours_recomputed} hours "
            f"of traffic re-examined) in {self.seconds:.2f} s"
        )


# -- the declared half --------------------------------------------------------------------
def route_kind(route: Route) -> str:
    if route.llm_provider or route.llm_api:
        return "llm"
    return "mcp" if route.mcp else "http"


def declared_services(config: GatewayConfig) -> list[dict[str, Any]]:
    """Every route and every [[services]] entry as a `services` row (declared fields win)."""
    specs = {s.name: s for s in config.services}
    rows: dict[str, dict[str, Any]] = {}
    for route in config.routes:
        rows[route.name] = {
            "name": route.name,
            "owner": None,
            "tier": None,
            "sla_target": None,
            "description": None,
            "source": "route",
            "kind": route_kind(route),
            "runbook": None,
        }
    for name, spec in specs.items():
        row = rows.get(name) or {"name": name, "kind": "external"}
        row.update(
            owner=spec.owner,
            tier=spec.tier,
            sla_target=spec.effective_sla_target,
            description=spec.description,
            source="config",
            runbook=spec.runbook,
        )
        rows[name] = row
    return list(rows.values())


def declared_edges(services: Iterable[ServiceSpec]) -> list[tuple[str, str]]:
    return [(s.name, dep) for s in services for dep in s.depends_on]


# -- observed edges (SQL) -----------------------------------------------------------------
# $parent_start <= parents' ts; $child_start <= children's ts (whole hours are recomputed).
OBSERVED_CALLS_SQL = f"""
WITH base AS (
    SELECT id, ts, route, trace_id, parent_span_id, caller,
           coalesce(duration_ms, 0) AS dur,
           ts + to_microseconds(CAST(round(coalesce(duration_ms, 0) * 1000) AS BIGINT)) AS te
    FROM requests
    WHERE ts >= $parent_start AND route IS NOT NULL
      AND (trace_id IS NOT NULL OR caller IS NOT NULL)
),
small_traces AS (
    SELECT trace_id FROM base WHERE trace_id IS NOT NULL
    GROUP BY trace_id HAVING count(*) BETWEEN 2 AND {MAX_TRACE_CALLS}
),
traced AS (SELECT * FROM base WHERE trace_id IN (SELECT trace_id FROM small_traces)),
header_edges AS (
    SELECT caller AS service, route AS depends_on, 'header' AS via, ts
    FROM base WHERE ts >= $child_start AND caller IS NOT NULL AND caller <> route
),
trace_pairs AS (
    SELECT c.id, c.ts, c.route AS depends_on, p.route AS service, p.dur AS parent_dur
    FROM traced c JOIN traced p
      ON p.trace_id = c.trace_id
     AND p.id <> c.id
     AND p.ts <= c.ts AND p.te >= c.te
     AND (p.ts < c.ts OR p.te > c.te)
     AND p.parent_span_id IS DISTINCT FROM c.parent_span_id
    WHERE c.ts >= $child_start AND c.caller IS NULL
),
trace_edges AS (
    SELECT arg_min(service, parent_dur) AS service, any_value(depends_on) AS depends_on,
           'trace' AS via, any_value(ts) AS ts
    FROM trace_pairs GROUP BY id
)
SELECT date_trunc('hour', ts) AS hour, service, depends_on, via,
       count(*) AS calls, min(ts) AS first_seen, max(ts) AS last_seen
FROM (
    SELECT * FROM header_edges
    UNION ALL
    SELECT * FROM trace_edges WHERE service <> depends_on
)
GROUP BY ALL
"""

# Declared edges win; observed counts are summed over the hours kept.
REBUILD_DEPENDENCIES_SQL = """
INSERT INTO service_dependencies
WITH observed AS (
    SELECT service, depends_on, min(first_seen) AS first_seen, max(last_seen) AS last_seen,
           sum(calls)::BIGINT AS calls
    FROM service_dependency_calls GROUP BY service, depends_on
),
declared AS (
    SELECT d.service, d.depends_on FROM declared_edges d
)
SELECT coalesce(d.service, o.service), coalesce(d.depends_on, o.depends_on),
       CASE WHEN d.service IS NOT NULL THEN 'config' ELSE 'observed' END,
       o.first_seen, o.last_seen, coalesce(o.calls, 0)
FROM declared d FULL OUTER JOIN observed o
  ON d.service = o.service AND d.depends_on = o.depends_on
"""

_UPSERT_SERVICE = """
INSERT INTO services (name, owner, tier, sla_target, description, source, first_seen,
                      updated_at, kind, runbook, last_seen)
VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, NULL)
ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, tier = excluded.tier,
    sla_target = excluded.sla_target, description = excluded.description,
    source = excluded.source, kind = excluded.kind, runbook = excluded.runbook,
    updated_at = excluded.updated_at
"""


def _state(con: Any, name: str) -> datetime | None:
    rows = con.execute("SELECT ts FROM catalog_state WHERE name = ?", [name]).fetchall()
    return rows[0][0] if rows else None


def run_catalog(store: Store, config: GatewayConfig, now: datetime | None = None) -> CatalogResult:
    """The worker job: services from routes and config, declared and observed dependencies,
    first/last traffic per service. Incremental; safe to run as often as wanted."""
    t0 = time.perf_counter()
    at = naive_utc(now)
    settings: CatalogSettings = config.catalog
    lookback = timedelta(minutes=settings.trace_lookback_minutes)
    wanted = declared_services(config)
    edges = declared_edges(config.services)
    declared_known = bool(config.routes or config.services)

    # Compute under the shared lock; write the (small) results under the exclusive one.
    with store.read() as con:
        wm_calls = _state(con, _WATERMARK_CALLS)
        wm_metrics = _state(con, _WATERMARK_METRICS)
        if wm_calls is None:
            row = con.execute(
                "SELECT min(ts) FROM requests WHERE trace_id IS NOT NULL OR caller IS NOT NULL"
            ).fetchall()[0]
            first = row[0] if row else None
            child_start = first.replace(minute=0, second=0, microsecond=0) if first else None
        else:
            child_start = (wm_calls - lookback).replace(minute=0, second=0, microsecond=0)
        calls = None
        new_wm_calls = wm_calls
        if child_start is not None:
            calls = con.sql(
                OBSERVED_CALLS_SQL,
                params={"parent_start": child_start - lookback, "child_start": child_start},
            ).to_arrow_table()
            row = con.execute(
                "SELECT max(ts) FROM requests WHERE ts >= ?", [child_start]
            ).fetchall()[0]
            new_wm_calls = max([t for t in (wm_calls, row[0] if row else None) if t], default=None)
        metrics_since = (wm_metrics - timedelta(hours=1)) if wm_metrics else datetime(1970, 1, 1)
        seen = con.execute(
            "SELECT service, min(minute), max(minute) FROM metrics_1m "
            "WHERE dimension = 'service' AND key = '' AND minute >= ? AND service <> ? "
            "GROUP BY service",
            [metrics_since, UNROUTED],
        ).fetchall()
    new_wm_metrics = max([t for t in [wm_metrics, *(r[2] for r in seen)] if t], default=None)

    result = CatalogResult(services=len(wanted), declared_edges=len(edges))
    if not declared_known:
        log.info("catalog: the config has no routes or services; keeping the declared catalog")
    ttl_start = at - timedelta(days=settings.observed_ttl_days)
    with store.write() as con:
        con.execute("BEGIN TRANSACTION")
        try:
            # Services: upsert what the config says; what it no longer says is retired.
            # A config with neither routes nor services (a worker started without its
            # file) says nothing about the catalog: the declared half is left as it is.
            if declared_known:
                con.executemany(
                    _UPSERT_SERVICE,
                    [
                        (r["name"], r["owner"], r["tier"], r["sla_target"], r["description"],
                         r["source"], at, r["kind"], r["runbook"])
                        for r in wanted
                    ],
                )  # fmt: skip
                con.execute(
                    "UPDATE services SET source = 'retired', updated_at = ? WHERE source IN "
                    "('config', 'route') AND name NOT IN (SELECT unnest(?::VARCHAR[]))",
                    [at, [r["name"] for r in wanted]],
                )
            if seen:
                con.execute(
                    "UPDATE services SET first_seen = least(coalesce(first_seen, s.f), s.f), "
                    "last_seen = greatest(coalesce(last_seen, s.l), s.l) "
                    "FROM (SELECT unnest(?::VARCHAR[]) AS n, unnest(?::TIMESTAMP[]) AS f, "
                    "unnest(?::TIMESTAMP[]) AS l) s WHERE services.name = s.n",
                    [[r[0] for r in seen], [r[1] for r in seen], [r[2] for r in seen]],
                )
            # Observed calls: rewrite the hours re-examined, drop those past the TTL.
            if calls is not None and child_start is not None:
                (before,) = con.execute(
                    "SELECT count(DISTINCT hour) FROM service_dependency_calls WHERE hour >= ?",
                    [child_start],
                ).fetchall()[0]
                con.execute("DELETE FROM service_dependency_calls WHERE hour >= ?", [child_start])
                con.register("new_calls", calls)
                con.execute("INSERT INTO service_dependency_calls SELECT * FROM new_calls")
                con.unregister("new_calls")
                result.hours_recomputed = max(
                    int(before), len(set(calls.column("hour").to_pylist()))
                )
            con.execute("DELETE FROM service_dependency_calls WHERE last_seen < ?", [ttl_start])
            # Dependencies: declared edges plus observed ones, rebuilt from the hourly counts.
            con.execute("CREATE TEMP TABLE declared_edges (service VARCHAR, depends_on VARCHAR)")
            if not declared_known:
                con.execute(
                    "INSERT INTO declared_edges SELECT service, depends_on "
                    "FROM service_dependencies WHERE source = 'config'"
                )
            elif edges:
                con.executemany("INSERT INTO declared_edges VALUES (?, ?)", edges)
            con.execute("DELETE FROM service_dependencies")
            con.execute(REBUILD_DEPENDENCIES_SQL)
            con.execute("DROP TABLE declared_edges")
            # Callers seen only in traffic become services too (source 'observed').
            con.execute(
                "INSERT INTO services (name, source, updated_at, kind, first_seen, last_seen) "
                "SELECT service, 'observed', ?, 'external', min(first_seen), max(last_seen) "
                "FROM service_dependency_calls GROUP BY service "
                "ON CONFLICT (name) DO UPDATE SET "
                "last_seen = greatest(coalesce(services.last_seen, excluded.last_seen), "
                "excluded.last_seen), "
                "first_seen = least(coalesce(services.first_seen, excluded.first_seen), "
                "excluded.first_seen) "
                # A route's own traffic (metrics_1m) says when it was seen, not its calls.
                "WHERE services.source = 'observed'",
                [at],
            )
            for name, value in (
                (_WATERMARK_CALLS, new_wm_calls),
                (_WATERMARK_METRICS, new_wm_metrics),
            ):
                if value is not None:
                    con.execute("INSERT OR REPLACE INTO catalog_state VALUES (?, ?)", [name, value])
            (result.observed_edges,) = con.execute(
                "SELECT count(*) FROM service_dependencies WHERE source = 'observed'"
            ).fetchall()[0]
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    result.seconds = time.perf_counter() - t0
    return result


# -- reading the catalog --------------------------------------------------------------------
def dependencies(store: Store) -> dict[str, set[str]]:
    """service -> the services it depends on (declared or observed)."""
    out: dict[str, set[str]] = {}
    with store.read() as con:
        for service, dep in con.execute(
            "SELECT service, depends_on FROM service_dependencies"
        ).fetchall():
            out.setdefault(service, set()).add(dep)
    return out


def dependents(store: Store) -> dict[str, set[str]]:
    """service -> the services that depend on it (the reverse of `dependencies`)."""
    out: dict[str, set[str]] = {}
    for service, deps in dependencies(store).items():
        for dep in deps:
            out.setdefault(dep, set()).add(service)
    return out


def transitive(graph: Mapping[str, set[str]], service: str) -> set[str]:
    """Everything reachable from `service` in `graph` (e.g. all it depends on, however
    indirectly); cycles are fine, the service itself is not included."""
    seen: set[str] = set()
    todo = [service]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen and nxt != service:
                seen.add(nxt)
                todo.append(nxt)
    return seen


SERVICE_COLUMNS = (
    "name", "kind", "owner", "tier", "sla_target", "description", "runbook", "source",
    "first_seen", "last_seen", "updated_at",
)  # fmt: skip


def list_services(store: Store) -> pl.DataFrame:
    """Every service with its dependency counts, most critical tier first."""
    cols = ", ".join(f"s.{c}" for c in SERVICE_COLUMNS)
    return store.query(
        f"""
        SELECT {cols},
            (SELECT count(*) FROM service_dependencies d WHERE d.service = s.name) AS depends_on,
            (SELECT count(*) FROM service_dependencies d WHERE d.depends_on = s.name)
                AS dependents
        FROM services s
        ORDER BY s.source = 'retired', coalesce(s.tier, 'tier-9'), s.name
        """
    )


def get_service(
    store: Store,
    name: str,
    *,
    incidents: int = 10,
    downtime_error_ratio: float = CatalogSettings.downtime_error_ratio,
    now: datetime | None = None,
) -> dict[str, Any]:
    """One service: its row, dependencies both ways, recent incidents, open problems and
    its SLA report row for the current month (under "sla")."""
    with store.read() as con:
        df = con.sql(
            f"SELECT {', '.join(SERVICE_COLUMNS)} FROM services WHERE name = ?", params=[name]
        ).pl()
        if df.is_empty():
            known = [
                r[0] for r in con.execute("SELECT name FROM services ORDER BY name").fetchall()
            ]
            hint = f" (services: {', '.join(known)})" if known else " (the catalog is empty)"
            raise CatalogError(f"no service named {name!r}{hint}")
        row: dict[str, Any] = df.row(0, named=True)
        edge_cols = "source, calls, first_seen, last_seen"
        row["depends_on"] = (
            con.sql(
                f"SELECT depends_on AS service, {edge_cols} FROM service_dependencies "
                "WHERE service = ? ORDER BY depends_on",
                params=[name],
            )
            .pl()
            .to_dicts()
        )
        row["dependents"] = (
            con.sql(
                f"SELECT service, {edge_cols} FROM service_dependencies "
                "WHERE depends_on = ? ORDER BY service",
                params=[name],
            )
            .pl()
            .to_dicts()
        )
        row["recent_incidents"] = (
            con.sql(
                "SELECT id, title, severity, status, opened_at, resolved_at FROM incidents "
                "WHERE service = ? ORDER BY opened_at DESC, id DESC LIMIT ?",
                params=[name, incidents],
            )
            .pl()
            .to_dicts()
        )
        row["problems"] = (
            con.sql(
                "SELECT id, title, status, incident_count, last_seen FROM problems "
                "WHERE service = ? AND status <> 'resolved' ORDER BY incident_count DESC",
                params=[name],
            )
            .pl()
            .to_dicts()
        )
    month = sla_report(store, downtime_error_ratio=downtime_error_ratio, now=now)
    this = month.filter(pl.col("service") == name).to_dicts()
    row["sla"] = this[0] if this else None
    return row


def dependency_graph(store: Store) -> pl.DataFrame:
    return store.query(
        "SELECT service, depends_on, source, calls, first_seen, last_seen "
        "FROM service_dependencies ORDER BY service, depends_on"
    )


def _dot_id(name: str) -> str:
    # Service names are [A-Za-z0-9_.-]; only a label's quotes need escaping.
    return '"' + name.replace('"', '\\"') + '"'


def graph_dot(services: pl.DataFrame, edges: pl.DataFrame) -> str:
    """Graphviz: declared edges solid, observed-only ones dashed with their call counts."""
    lines = ["digraph services {", "  rankdir=LR;", "  node [shape=box, style=rounded];"]
    for s in services.iter_rows(named=True):
        label = s["name"] + (f"\\n{s['tier']}" if s["tier"] else "")
        style = ', style="rounded,dashed"' if s["kind"] == "external" else ""
        lines.append(f"  {_dot_id(s['name'])} [label={_dot_id(label)}{style}];")
    for e in edges.iter_rows(named=True):
        attrs = []
        if e["source"] == "observed":
            attrs.append("style=dashed")
        if e["calls"]:
            attrs.append(f'label="{e["calls"]} calls"')
        tail = f" [{', '.join(attrs)}]" if attrs else ""
        lines.append(f"  {_dot_id(e['service'])} -> {_dot_id(e['depends_on'])}{tail};")
    lines.append("}")
    return "\n".join(lines) + "\n"


# -- SLA report -------------------------------------------------------------------------------
_MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """[first instant, first instant of the next month) of 'YYYY-MM' (UTC)."""
    m = _MONTH_RE.match(month or "")
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise CatalogError(f"month {month!r} is not a month like 2026-11 (YYYY-MM)")
    year, mon = int(m.group(1)), int(m.group(2))
    start = datetime(year, mon, 1)
    days = calendar.monthrange(year, mon)[1]
    return start, start + timedelta(days=days)


SLA_SQL = """
WITH m AS (
    SELECT service, requests, errors_5xx, gateway_errors,
           errors_5xx::DOUBLE / requests AS ratio
    FROM metrics_1m
    WHERE dimension = 'service' AND key = '' AND minute >= $start AND minute < $end
      AND service <> $unrouted AND requests > 0
),
agg AS (
    SELECT service, sum(requests)::BIGINT AS requests, sum(errors_5xx)::BIGINT AS bad_requests,
           sum(gateway_errors)::BIGINT AS gateway_errors, count(*) AS minutes_with_traffic,
           count(*) FILTER (WHERE ratio > $threshold) AS downtime_minutes
    FROM m GROUP BY service
)
SELECT coalesce(s.name, a.service) AS service, s.kind, s.tier, s.owner, s.sla_target,
       coalesce(a.requests, 0) AS requests, coalesce(a.bad_requests, 0) AS bad_requests,
       coalesce(a.gateway_errors, 0) AS gateway_errors,
       coalesce(a.minutes_with_traffic, 0) AS minutes_with_traffic,
       coalesce(a.downtime_minutes, 0) AS downtime_minutes
FROM (SELECT * FROM services WHERE source <> 'retired' OR name IN (SELECT service FROM agg)) s
FULL OUTER JOIN agg a ON s.name = a.service
ORDER BY coalesce(s.tier, 'tier-9'), 1
"""


def sla_report(
    store: Store,
    month: str | None = None,
    *,
    downtime_error_ratio: float = CatalogSettings.downtime_error_ratio,
    now: datetime | None = None,
) -> pl.DataFrame:
    """Availability per service for one month (default: the current one) against its SLA
    target, one row per service.

    Counted as the SLO job counts availability (suite.slo), from `metrics_1m`:
    availability = (requests - bad_requests) / requests, where bad = `errors_5xx`, i.e.
    5xx answers, including the gateway's own (upstream unreachable, reset, timeout) and
    calls that failed with no status. Gateway refusals by policy (401/403/429) are in
    `gateway_errors` but, like 4xx, are not failures of the service. A minute of downtime
    is a minute with traffic whose error ratio is over `downtime_error_ratio` (default
    5%); `uptime_pct` is the share of the month's minutes (elapsed minutes, for the
    current month) that were not downtime. The error budget is the bad requests the target
    allows, (1 - target) x requests: `error_budget_used` 1.0 spends it exactly.
    `status`: met | breached | no_target (no SLA target) | no_traffic.
    """
    at = naive_utc(now)
    month = month or f"{at:%Y-%m}"
    start, end = month_bounds(month)
    if start > at:
        raise CatalogError(f"month {month} has not started yet")
    period_end = min(end, at.replace(second=0, microsecond=0))
    df = store.query(
        SLA_SQL,
        {
            "start": start,
            "end": end,
            "threshold": downtime_error_ratio,
            "unrouted": UNROUTED,
        },
    )
    minutes = max(int((period_end - start).total_seconds() // 60), 1)
    rows = []
    for r in df.iter_rows(named=True):
        total, bad, target = r["requests"], r["bad_requests"], r["sla_target"]
        availability = 100.0 * (total - bad) / total if total else None
        allowed = total * (1 - target / 100.0) if target is not None else None
        used = None
        if allowed is not None and total:
            used = bad / allowed if allowed > 0 else (0.0 if bad == 0 else float("inf"))
        if not total:
            status = "no_traffic"
        elif target is None:
            status = "no_target"
        else:
            assert availability is not None
            status = "met" if availability >= target else "breached"
        rows.append(
            {
                "month": month,
                **r,
                "availability_pct": availability,
                "uptime_pct": 100.0 * (minutes - r["downtime_minutes"]) / minutes,
                "error_budget_requests": allowed,
                "error_budget_used": used,
                "status": status,
                "period_start": start,
                "period_end": period_end,
            }
        )
    schema: dict[str, Any] = {
        "month": pl.String, "service": pl.String, "kind": pl.String, "tier": pl.String,
        "owner": pl.String, "sla_target": pl.Float64, "requests": pl.Int64,
        "bad_requests": pl.Int64, "gateway_errors": pl.Int64, "minutes_with_traffic": pl.Int64,
        "downtime_minutes": pl.Int64, "availability_pct": pl.Float64, "uptime_pct": pl.Float64,
        "error_budget_requests": pl.Float64, "error_budget_used": pl.Float64,
        "status": pl.String, "period_start": pl.Datetime("us"), "period_end": pl.Datetime("us"),
    }  # fmt: skip
    return pl.DataFrame(rows, schema=schema)


def catalog_job(store: Store, config: GatewayConfig) -> CatalogResult:
    """`aiops worker` job `catalog`."""
    return run_catalog(store, config)
