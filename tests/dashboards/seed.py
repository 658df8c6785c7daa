"""A small, exactly known home for the dashboard tests: requests (rolled up by the real
rollup job), a captured body, incidents with events, anomalies and suspects, changes in
every lifecycle state, the service catalog, forecasts, SLO history, gateway keys, a
chaos drill and a gateway config. Times are relative to now, so "today" pages show them."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import pyarrow as pa

from suite.clock import utc_now
from suite.home import Home
from suite.incidents import open_or_update_incident, resolve
from suite.rollup import rollup_dirty_minutes
from suite.store import Store

CLAIMS_UPSTREAM = "http://127.0.0.1:9001"
OPENAI_UPSTREAM = "http://127.0.0.1:9100"
MCP_UPSTREAM = "http://127.0.0.1:9200"
IDLE_UPSTREAM = "http://127.0.0.1:9002"  # configured, never called
FALLBACK_CHAIN = "openai:gpt-4o-mini(429) > openai-backup:gpt-4o-mini(ok)"
BODY_REQUEST_ID = "req-body-1"
KEY_SALT = "SALT-must-never-show"
KEY_HASH = "HASH-must-never-show"

GATEWAY_TOML = f"""
[[routes]]
name = "claims-api"
prefix = "/claims"
upstreams = ["{CLAIMS_UPSTREAM}", "{IDLE_UPSTREAM}"]

[[routes]]
name = "openai"
prefix = "/openai"
strip_prefix = true
llm_provider = "openai"
upstreams = ["{OPENAI_UPSTREAM}"]

[[routes]]
name = "mcp-tools"
prefix = "/mcp"
mcp = true
upstreams = ["{MCP_UPSTREAM}"]
"""


class Seeded(NamedTuple):
    now: datetime
    incident_id: int  # open, on claims-api, with anomalies, a suspect and failed calls
    resolved_incident_id: int
    incident_failed_calls: int  # claims-api 5xx inside the incident's window
    llm_calls: int
    llm_cost: float
    key_a_spent_today: float
    proposed_change: str
    approved_change: str
    implemented_change: str  # the suspect of the incident
    chaos_change: str


def _rows(now: datetime) -> tuple[list[dict[str, object]], int]:
    rows: list[dict[str, object]] = []
    start = now - timedelta(minutes=120)
    failed_in_window = 0
    # claims-api: 10 calls a minute for two hours; half fail 40 to 30 minutes ago.
    for m in range(120):
        minute = start + timedelta(minutes=m)
        burst = now - timedelta(minutes=40) <= minute < now - timedelta(minutes=30)
        for i in range(10):
            fail = burst and i < 5
            failed_in_window += fail
            rows.append(
                {
                    "id": f"c-{m}-{i}",
                    "ts": minute + timedelta(seconds=i * 5),
                    "route": "claims-api",
                    "method": "GET",
                    "path": f"/claims/CLM-{m:03d}{i}",
                    "status": 503 if fail else (404 if i == 9 and m % 2 == 0 else 200),
                    "duration_ms": 400.0 if burst else 50.0 + i,
                    "ttfb_ms": 30.0,
                    "upstream": CLAIMS_UPSTREAM,
                    "tenant": "acme" if i % 2 else "globex",
                    "kind": "http",
                    "route_version": "v1" if i < 3 else "v2",
                }
            )
    # openai: 40 priced calls over two hours (4 cache hits, 3 fallbacks)...
    for n in range(40):
        rows.append(
            {
                "id": f"l-{n}",
                "ts": start + timedelta(minutes=3 * n, seconds=7),
                "route": "openai",
                "method": "POST",
                "path": "/openai/v1/chat/completions",
                "status": 200,
                "duration_ms": 900.0,
                "upstream": OPENAI_UPSTREAM,
                "tenant": "globex",
                "kind": "llm",
                "llm_provider": "openai",
                "llm_model": "gpt-4o-mini",
                "llm_requested_model": "gpt-4o-mini",
                "prompt_tokens": 100,
                "completion_tokens": 50,
                "cost_usd": 0.001,
                "ttft_ms": 300.0,
                "output_tokens_per_s": 50.0,
                "cache_hit": n < 4,
                "fallback_chain": FALLBACK_CHAIN if 4 <= n < 7 else None,
                "llm_alias": "claims-summarizer" if 4 <= n < 7 else None,
            }
        )
    # ...10 calls with gateway key key-a today, and 5 of a model with no price.
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    key_ts = max(now - timedelta(minutes=2), midnight + timedelta(seconds=1))
    for n in range(15):
        unpriced = n >= 10
        rows.append(
            {
                "id": f"k-{n}",
                "ts": key_ts + timedelta(seconds=n),
                "route": "openai",
                "method": "POST",
                "path": "/openai/v1/chat/completions",
                "status": 200,
                "duration_ms": 700.0,
                "upstream": OPENAI_UPSTREAM,
                "api_key_id": None if unpriced else "key-a",
                "tenant": "acme",
                "kind": "llm",
                "llm_provider": "selfhosted" if unpriced else "openai",
                "llm_model": "mystery-model" if unpriced else "gpt-4o-mini",
                "prompt_tokens": 100,
                "completion_tokens": 50,
                "cost_usd": None if unpriced else 0.01,
                "llm_unpriced": unpriced,
                "ttft_ms": 200.0,
                "output_tokens_per_s": 80.0,
            }
        )
    for n in range(30):
        rows.append(
            {
                "id": f"m-{n}",
                "ts": start + timedelta(minutes=4 * n, seconds=11),
                "route": "mcp-tools",
                "method": "POST",
                "path": "/mcp",
                "status": 200,
                "duration_ms": 20.0,
                "upstream": MCP_UPSTREAM,
                "kind": "mcp",
                "mcp_method": "tools/call",
                "mcp_tool": "get_claim_status",
            }
        )
    rows.append(
        {
            "id": BODY_REQUEST_ID,
            "ts": now - timedelta(minutes=5),
            "route": "claims-api",
            "method": "POST",
            "path": "/claims/new",
            "status": 201,
            "duration_ms": 80.0,
            "upstream": CLAIMS_UPSTREAM,
            "kind": "http",
            "body_capture": "redacted",
        }
    )
    return rows, failed_in_window


def _insert_requests(store: Store, rows: list[dict[str, object]], now: datetime) -> None:
    columns = sorted({k for r in rows for k in r})
    table = pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in rows])
    body = pa.Table.from_pylist(
        [
            {
                "request_id": BODY_REQUEST_ID,
                "ts": now - timedelta(minutes=5),
                "route": "claims-api",
                "policy": "redacted",
                "request_headers": json.dumps(
                    {"content-type": "application/json", "authorization": "[REDACTED]"}
                ),
                "response_headers": json.dumps({"content-type": "application/json"}),
                "request_content_type": "application/json",
                "response_content_type": "application/json",
                "request_body": json.dumps({"claimant": "[REDACTED:email]", "amount": 1200}),
                "response_body": json.dumps({"id": "CLM-9"}),
                "request_body_bytes": 52,
                "response_body_bytes": 15,
                "request_truncated": False,
                "response_truncated": False,
                "redactions": json.dumps({"email": 1}),
                "gateway_id": "gw1",
            }
        ]
    )
    with store.write() as con:
        con.execute("BEGIN")
        con.register("seed_rows", table)
        con.register("seed_body", body)
        con.execute("INSERT INTO requests BY NAME SELECT * FROM seed_rows")
        con.execute("INSERT INTO request_bodies BY NAME SELECT * FROM seed_body")
        con.execute(
            "INSERT INTO rollup_dirty_minutes SELECT DISTINCT date_trunc('minute', ts) "
            "FROM seed_rows ON CONFLICT DO NOTHING"
        )
        con.execute("COMMIT")
        con.unregister("seed_rows")
        con.unregister("seed_body")


def seed_home(root: Path) -> Seeded:
    home = Home(root).ensure()
    store = Store(home)
    now = utc_now().replace(second=0, microsecond=0)
    rows, failed = _rows(now)
    _insert_requests(store, rows, now)
    rollup_dirty_minutes(store)

    incident_id = open_or_update_incident(
        store, service="claims-api", signal="error_ratio", now=now - timedelta(minutes=38),
        score=0.97, value=0.5, detail="error_ratio=0.5, score 0.970",
    )  # fmt: skip
    resolved_id = open_or_update_incident(
        store, service="openai", signal="latency_p95_ms", now=now - timedelta(minutes=100),
        score=0.95, value=2400.0,
    )  # fmt: skip
    resolve(store, resolved_id, "seed", note="provider recovered", source="cli")

    ids = ("CHG-SEED000001", "CHG-SEED000002", "CHG-SEED000003", "CHG-SEED000004")
    implemented, proposed, approved, chaos = ids
    with store.write() as con:
        con.execute("BEGIN")
        changes = [
            (implemented, now - timedelta(minutes=45), "claims-api", "deploy",
             "claims-api 2.4.1: new fraud rules", "implemented", "cli", "medium", "normal",
             None, None, "dev-1", "lead-1", now - timedelta(minutes=60), now - timedelta(minutes=45)),
            (proposed, now - timedelta(minutes=20), "openai", "config",
             "raise the openai timeout to 60 s", "proposed", "cli", "low", "normal",
             now + timedelta(hours=2), now + timedelta(hours=3), "dev-2", None, None, None),
            (approved, now - timedelta(minutes=15), "mcp-tools", "flag",
             "enable the claim-status cache", "approved", "cli", "low", "normal",
             now + timedelta(hours=1), now + timedelta(hours=2), "dev-3", "lead-1",
             now - timedelta(minutes=10), None),
            (chaos, now - timedelta(minutes=3), "claims-api", "chaos",
             "chaos drill: error 20% (status 503)", "implemented", "cli", None, "standard",
             now - timedelta(minutes=3), now + timedelta(minutes=7), "sre-1", None, None,
             now - timedelta(minutes=3)),
        ]  # fmt: skip
        for c in changes:
            con.execute(
                "INSERT INTO changes (id, ts, service, kind, summary, status, source, risk, "
                "change_type, window_start, window_end, requested_by, approved_by, approved_at, "
                "implemented_at, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [*c, c[1], c[1]],
            )
            con.execute(
                "INSERT INTO change_events VALUES ((SELECT coalesce(max(id), 0) + 1 FROM "
                "change_events), ?, ?, NULL, ?, ?, NULL)",
                [c[0], c[1], c[5], c[11]],
            )
        con.execute(
            "INSERT INTO incident_suspects VALUES (?, ?, 1, 0.92, ?, ?)",
            [incident_id, implemented, "deploy to claims-api 7 min before", now],
        )
        for n in range(3):
            con.execute(
                "INSERT INTO anomalies VALUES (?, ?, 'claims-api', 'error_ratio', 'service', '', "
                "0.5, ?, 'default', 0.9, ?, ?)",
                [n + 1, now - timedelta(minutes=38 - n), 0.95 + n / 100, incident_id, now],
            )
        for name, owner, tier, sla in (
            ("claims-api", "team-claims", "1", 99.9),
            ("openai", "team-ai", "2", 99.5),
            ("mcp-tools", "team-claims", "2", None),
        ):
            con.execute(
                "INSERT INTO services (name, owner, tier, sla_target, description, source, "
                "first_seen, updated_at) VALUES (?, ?, ?, ?, ?, 'config', ?, ?)",
                [name, owner, tier, sla, f"{name} service", now - timedelta(days=30), now],
            )
        con.execute(
            "INSERT INTO service_dependencies VALUES ('claims-api', 'mcp-tools', 'traffic', ?, ?, 30), "
            "('claims-api', 'openai', 'config', NULL, NULL, NULL)",
            [now - timedelta(hours=2), now],
        )
        run_at = now - timedelta(minutes=30)
        run_columns = (
            "run_at, service, dimension, key, metric, model, history_points, horizon_days, "
            "interval, mape_backtest, limit_value, limit_name, crosses_at, hours_to_limit"
        )
        con.execute(
            f"INSERT INTO forecast_runs ({run_columns}) VALUES (?, 'claims-api', 'service', '', "
            "'rps', 'seasonal_linear', 2880, 14, 0.8, 0.08, 20.0, 'max_rps', ?, 120.0)",
            [run_at, run_at + timedelta(hours=120)],
        )
        con.execute(
            f"INSERT INTO forecast_runs ({run_columns}) VALUES (?, 'openai', 'model', "
            "'gpt-4o-mini', 'tokens', 'seasonal_linear', 2880, 14, 0.8, 0.15, NULL, NULL, "
            "NULL, NULL)",
            [run_at],
        )
        # The busiest minute at 5 rps against a 20 rps limit: 25% used (Overview).
        con.execute(
            f"INSERT INTO forecast_runs ({run_columns}, current_value) VALUES (?, 'claims-api', "
            "'service', '', 'rps_peak', 'seasonal_linear', 2880, 14, 0.8, NULL, 20.0, "
            "'max_rps', NULL, NULL, 5.0)",
            [run_at],
        )
        con.execute(
            "INSERT INTO forecasts (run_at, service, dimension, key, metric, ts, yhat, lower, "
            "upper) SELECT ?, 'claims-api', 'service', '', 'rps', "
            "? + to_hours(h), 10 + h * 0.1, 8 + h * 0.1, 12 + h * 0.1 FROM range(0, 336) t(h)",
            [run_at, run_at],
        )
        for i, (budget, level) in enumerate(((0.9, "none"), (0.6, "none"), (0.42, "ticket"))):
            con.execute(
                "INSERT INTO slo_status VALUES ('claims-availability', 'claims-api', "
                "'availability', 99.9, ?, 30, 2.0, 1.5, 1.2, 1.1, 1.05, 0.58, 1000, 2, ?, ?, NULL)",
                [now - timedelta(minutes=10 * (2 - i)), budget, level],
            )
        cols = {
            r[0]
            for r in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'api_keys'"
            ).fetchall()
        }
        if cols:
            values = {
                "key_id": "key-a", "tenant": "acme", "name": "claims batch", "routes": ["openai"],
                "rpm": 60, "tpm": 10000, "budget_usd_day": 0.5, "budget_usd_month": 10.0,
                "created_at": now - timedelta(days=3), "created_by": "seed", "salt": KEY_SALT,
                "hash": KEY_HASH, "display_prefix": "agw_ab12", "last4": "wxyz",
            }  # fmt: skip
            values = {k: v for k, v in values.items() if k in cols}
            con.execute(
                f"INSERT INTO api_keys ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
                list(values.values()),
            )
        con.execute("COMMIT")

    now_s = time.time()
    (home.run_dir / "chaos.json").write_text(
        json.dumps(
            {
                "version": 1,
                "drills": [
                    {"id": chaos, "route": "claims-api", "latency_ms": 0, "error_rate": 0.2,
                     "status": 503, "started_at": now_s - 180, "expires_at": now_s + 420,
                     "reason": "game day", "created_by": "sre-1"},
                ],
            }
        )
    )  # fmt: skip
    home.gateway_config.write_text(GATEWAY_TOML)
    return Seeded(
        now=now,
        incident_id=incident_id,
        resolved_incident_id=resolved_id,
        incident_failed_calls=failed,
        llm_calls=55,
        llm_cost=40 * 0.001 + 10 * 0.01,
        key_a_spent_today=10 * 0.01,
        proposed_change=proposed,
        approved_change=approved,
        implemented_change=implemented,
        chaos_change=chaos,
    )
