"""The service catalog: [[services]] validation, services and dependencies (declared and
observed in traffic), the monthly SLA report, and `aiops services ...` - on a real DuckDB
file, plus one run through a real gateway, emulators and `aiops worker --once`."""

from __future__ import annotations

import json
import sys
import threading
import tomllib
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from proxy_addons.caller import parse_caller
from suite.catalog import (
    CatalogError,
    dependencies,
    dependents,
    get_service,
    month_bounds,
    run_catalog,
    sla_report,
    transitive,
)
from suite.config import GatewayConfig, load_gateway_config, parse_gateway_config
from suite.errors import ConfigError
from suite.store import Store
from tests.conftest import write_config
from tests.integration.helpers import run_worker_once, wait_gateway_received
from tests.procs import Proc, run_aiops, start_gateway

NOW = datetime(2026, 11, 28, 12, 0)
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
OTHER_TRACE = "0af7651916cd43dd8448eb211c80319c"

ROUTES = """
[[routes]]
name = "claims-assistant"
prefix = "/assistant"
upstreams = ["http://127.0.0.1:9001"]

[[routes]]
name = "llm"
prefix = "/llm"
upstreams = ["http://127.0.0.1:9100"]
llm_provider = "openai"

[[routes]]
name = "policy-tools"
prefix = "/tools"
upstreams = ["http://127.0.0.1:9200"]
mcp = true

[[routes]]
name = "quotes-api"
prefix = "/quotes"
upstreams = ["http://127.0.0.1:9002"]
"""

SERVICES = """
[[services]]
name = "claims-assistant"
owner = "claims-team"
tier = "tier-1"
description = "LLM assistant for claims handlers"
depends_on = ["policy-db"]

[[services]]
name = "policy-db"
tier = "tier-2"
sla_target = 99.95

[[services]]
name = "claims-portal"
owner = "web-team"
tier = "tier-3"
"""


def config(text: str = ROUTES + SERVICES) -> GatewayConfig:
    return parse_gateway_config(tomllib.loads(text), "gateway.toml")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "h")


def add_requests(store: Store, rows: list[tuple[object, ...]]) -> None:
    """rows: (id, ts, route, duration_ms, trace_id, parent_span_id, caller)."""
    with store.write() as con:
        con.executemany(
            "INSERT INTO requests (id, ts, route, duration_ms, trace_id, parent_span_id, caller, "
            "status) VALUES (?, ?, ?, ?, ?, ?, ?, 200)",
            rows,
        )


def span(n: int) -> str:
    return f"{n:016x}"


def edges(store: Store) -> dict[tuple[str, str], tuple[str, int]]:
    rows = store.query("SELECT service, depends_on, source, calls FROM service_dependencies")
    return {(r["service"], r["depends_on"]): (r["source"], r["calls"]) for r in rows.to_dicts()}


# -- config -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("services", "expected"),
    [
        ('name = "a"\ndepends_on = ["nowhere"]', "services[0].depends_on[0]: 'nowhere' is neither"),
        (
            'name = "quotes-api"\ndepends_on = ["quotes-api"]',
            "services[0].depends_on[0]: 'quotes-api' is the service itself",
        ),
        ('name = "a"\ntier = "gold"', "services[0].tier: 'gold' is not one of tier-1, tier-2"),
        ('name = "a"\nsla_target = 100', "services[0].sla_target: 100 is out of range"),
        ('name = "a"\nsla_target = 0', "services[0].sla_target: 0 is out of range"),
        ('name = "a"\nsla_target = "99.9"', "services[0].sla_target: '99.9' is not a number"),
        ('name = "a"\ndepends_on = "llm"', "services[0].depends_on: 'llm' must be a list"),
        ('name = "a b"', "services[0].name: 'a b' is not a valid service name"),
        ('owner = "x"', "services[0].name: is required"),
        ('name = "a"\ncolour = "red"', "services[0].colour: unknown key"),
    ],
)
def test_service_config_mistakes_name_file_and_key(services: str, expected: str) -> None:
    with pytest.raises(ConfigError) as e:
        config(ROUTES + "[[services]]\n" + services + "\n")
    assert f"gateway.toml: {expected}" in str(e.value)


def test_every_mistake_is_reported_at_once_and_the_cli_exits_2(tmp_path: Path) -> None:
    text = (
        ROUTES
        + """
[[services]]
name = "quotes-api"
tier = "platinum"
depends_on = ["quotes-api", "ghost"]

[[services]]
name = "quotes-api"

[problems]
min_incidents = 1
"""
    )
    cfg = write_config(tmp_path / "gw.toml", text)
    with pytest.raises(ConfigError) as e:
        load_gateway_config(cfg)
    message = str(e.value)
    for part in (
        "services[0].tier: 'platinum'",
        "services[0].depends_on[0]: 'quotes-api' is the service itself",
        "services[0].depends_on[1]: 'ghost' is neither a route nor a declared service",
        "services[1].name: 'quotes-api' is already declared by services[0]",
        "problems.min_incidents: 1 is out of range",
    ):
        assert part in message
    r = run_aiops("services", "sla", "--home", str(tmp_path / "h"), "--config", str(cfg))
    assert r.returncode == 2 and "'ghost' is neither a route" in r.stderr


def test_a_dependency_may_name_a_route_or_a_declared_external_service() -> None:
    c = config()
    specs = {s.name: s for s in c.services}
    assert specs["claims-assistant"].depends_on == ("policy-db",)
    # A tier without its own target gets the tier's default; an explicit one wins.
    assert specs["claims-assistant"].effective_sla_target == 99.9
    assert specs["policy-db"].effective_sla_target == 99.95
    assert c.catalog.downtime_error_ratio == 0.05 and c.problems.min_incidents == 3


def test_caller_header_values_must_be_service_names() -> None:
    assert parse_caller(" claims-portal ") == "claims-portal"
    assert parse_caller("bad name!") is None
    assert parse_caller("") is None and parse_caller(None) is None


# -- services and declared dependencies ---------------------------------------------------
def test_routes_and_declared_services_become_the_catalog(store: Store) -> None:
    run_catalog(store, config(), now=NOW)
    rows = {r["name"]: r for r in store.query("SELECT * FROM services").to_dicts()}
    assert set(rows) == {"claims-assistant", "llm", "policy-tools", "quotes-api", "policy-db",
                         "claims-portal"}  # fmt: skip
    assert (rows["claims-assistant"]["source"], rows["claims-assistant"]["owner"]) == (
        "config",
        "claims-team",
    )
    assert (rows["claims-assistant"]["kind"], rows["claims-assistant"]["sla_target"]) == (
        "http",
        99.9,
    )
    assert (rows["llm"]["source"], rows["llm"]["kind"], rows["llm"]["tier"]) == (
        "route",
        "llm",
        None,
    )
    assert rows["policy-tools"]["kind"] == "mcp"
    assert (rows["policy-db"]["kind"], rows["policy-db"]["sla_target"]) == ("external", 99.95)
    assert edges(store) == {("claims-assistant", "policy-db"): ("config", 0)}
    # A route that leaves the config is retired (kept for its SLA history); its declared
    # edges go with it.
    run_catalog(store, config(ROUTES.split('[[routes]]\nname = "quotes-api"')[0]), now=NOW)
    gone = store.query("SELECT source FROM services WHERE name = 'quotes-api'")
    assert gone["source"].to_list() == ["retired"]
    run_catalog(store, config(ROUTES), now=NOW)
    assert edges(store) == {}
    assert store.query("SELECT source FROM services WHERE name = 'claims-assistant'")[
        "source"
    ].to_list() == ["route"]


# -- observed dependencies ------------------------------------------------------------------
def test_trace_enclosure_finds_the_innermost_caller_and_skips_siblings(store: Store) -> None:
    t = NOW - timedelta(minutes=30)
    ms = timedelta(milliseconds=1)
    add_requests(
        store,
        [
            # claims-assistant (2 s) calls llm, which calls policy-tools while it runs:
            # assistant -> llm and llm -> policy-tools, never assistant -> policy-tools.
            ("a", t, "claims-assistant", 2000.0, TRACE, span(1), None),
            ("b", t + 100 * ms, "llm", 1000.0, TRACE, span(2), None),
            ("c", t + 300 * ms, "policy-tools", 200.0, TRACE, span(3), None),
            # Sent from the same span as the assistant's own call: a sibling, not a callee.
            ("d", t + 50 * ms, "quotes-api", 20.0, TRACE, span(1), None),
            # Inside the assistant's time span but in another trace: unrelated.
            ("e", t + 500 * ms, "quotes-api", 20.0, OTHER_TRACE, span(9), None),
            # Starts inside, ends after the assistant: not enclosed.
            ("f", t + 1990 * ms, "quotes-api", 50.0, TRACE, span(4), None),
        ],
    )
    run_catalog(store, config(ROUTES), now=NOW)
    assert edges(store) == {
        ("claims-assistant", "llm"): ("observed", 1),
        ("llm", "policy-tools"): ("observed", 1),
    }
    assert dependencies(store) == {"claims-assistant": {"llm"}, "llm": {"policy-tools"}}
    assert dependents(store) == {"llm": {"claims-assistant"}, "policy-tools": {"llm"}}
    assert transitive(dependencies(store), "claims-assistant") == {"llm", "policy-tools"}


def test_caller_header_wins_and_names_an_external_service(store: Store) -> None:
    t = NOW - timedelta(minutes=10)
    add_requests(
        store,
        [
            ("a", t, "claims-assistant", 1000.0, TRACE, span(1), None),
            # Enclosed by the assistant, but the client says who called: the header wins.
            ("b", t + timedelta(milliseconds=10), "llm", 10.0, TRACE, span(2), "claims-portal"),
            ("c", t + timedelta(seconds=5), "llm", 10.0, None, None, "claims-portal"),
            ("d", t + timedelta(seconds=6), "quotes-api", 10.0, None, None, "batch-rater"),
            ("e", t + timedelta(seconds=7), "quotes-api", 10.0, None, None, "quotes-api"),
        ],
    )
    run_catalog(store, config(), now=NOW)
    got = edges(store)
    assert got[("claims-portal", "llm")] == ("observed", 2)
    assert got[("batch-rater", "quotes-api")] == ("observed", 1)
    assert ("claims-assistant", "llm") not in got and ("quotes-api", "quotes-api") not in got
    caller = store.query("SELECT source, kind, last_seen FROM services WHERE name = 'batch-rater'")
    assert caller.to_dicts() == [
        {"source": "observed", "kind": "external", "last_seen": t + timedelta(seconds=6)}
    ]
    # A declared service keeps its declared data when it is also seen calling.
    portal = get_service(store, "claims-portal")
    assert (portal["source"], portal["owner"]) == ("config", "web-team")
    assert [e["service"] for e in portal["depends_on"]] == ["llm"]


def test_observed_counts_are_incremental_and_never_double_counted(store: Store) -> None:
    t = NOW - timedelta(hours=3)
    add_requests(store, [(f"h{i}", t + timedelta(minutes=i), "llm", 5.0, None, None, "claims-portal")
                         for i in range(3)])  # fmt: skip
    c = config()
    run_catalog(store, c, now=NOW)
    run_catalog(store, c, now=NOW)
    assert edges(store)[("claims-portal", "llm")] == ("observed", 3)
    # New calls, and a late row (older than the newest seen, within the lookback).
    add_requests(
        store,
        [("n1", t + timedelta(minutes=30), "llm", 5.0, None, None, "claims-portal"),
         ("n2", t + timedelta(minutes=1, seconds=30), "llm", 5.0, None, None, "claims-portal")],
    )  # fmt: skip
    result = run_catalog(store, c, now=NOW)
    assert edges(store)[("claims-portal", "llm")] == ("observed", 5)
    assert result.hours_recomputed >= 1
    # A declared edge that traffic confirms stays 'config', with the observed count.
    add_requests(store, [("p1", t + timedelta(minutes=40), "policy-tools", 5.0, None, None,
                          "claims-assistant")])  # fmt: skip
    c2 = config(ROUTES + SERVICES.replace('["policy-db"]', '["policy-db", "policy-tools"]'))
    run_catalog(store, c2, now=NOW)
    assert edges(store)[("claims-assistant", "policy-tools")] == ("config", 1)
    # Without the declaration it is an observed edge again.
    run_catalog(store, c, now=NOW)
    assert edges(store)[("claims-assistant", "policy-tools")] == ("observed", 1)
    # Not seen for observed_ttl_days: dropped; a declared edge never is.
    run_catalog(store, c, now=NOW + timedelta(days=31))
    assert edges(store) == {("claims-assistant", "policy-db"): ("config", 0)}


def test_observed_edges_in_one_sql_pass_over_many_requests(store: Store) -> None:
    """Cheap on big tables: one SQL pass, whatever the number of rows."""
    with store.write() as con:
        con.execute(
            """
            INSERT INTO requests (id, ts, route, duration_ms, trace_id, parent_span_id, status)
            SELECT 'r' || i,
                   TIMESTAMP '2026-11-28 00:00:00' + to_milliseconds((i // 2) * 80 + (i % 2) * 10),
                   CASE i % 2 WHEN 0 THEN 'claims-assistant' ELSE 'llm' END,
                   CASE i % 2 WHEN 0 THEN 30.0 ELSE 5.0 END,
                   (i // 2)::VARCHAR, i::VARCHAR, 200
            FROM range(200000) t(i)
            """
        )
        # A batch job reusing one trace id for 1,500 calls: skipped, not a quadratic join.
        con.execute(
            """
            INSERT INTO requests (id, ts, route, duration_ms, trace_id, parent_span_id, status)
            SELECT 'q' || i, TIMESTAMP '2026-11-28 06:00:00' + to_milliseconds(i + 1),
                   CASE i WHEN -1 THEN 'claims-assistant' ELSE 'quotes-api' END,
                   CASE i WHEN -1 THEN 60000.0 ELSE 1.0 END, 'batch', i::VARCHAR, 200
            FROM range(-1, 1500) t(i)
            """
        )
    run_catalog(store, config(ROUTES), now=NOW)
    assert edges(store) == {("claims-assistant", "llm"): ("observed", 100000)}


# -- SLA report ----------------------------------------------------------------------------
def seed_month(store: Store) -> None:
    """October 2026 (44,640 minutes), 100 calls a minute for claims-assistant and
    quotes-api: 30 minutes at 20% errors (downtime), 100 minutes at 2% (not downtime),
    plus policy refusals (429 gateway errors) that are not failures."""
    with store.write() as con:
        con.execute(
            """
            INSERT INTO metrics_1m (minute, service, dimension, key, requests, errors_4xx,
                errors_5xx, gateway_errors, error_ratio, computed_at)
            SELECT m, s, 'service', '', 100, 5,
                   CASE WHEN i < 30 THEN 20 WHEN i < 130 THEN 2 ELSE 0 END,
                   CASE WHEN i < 30 THEN 20 ELSE 0 END + 5, 0, now()::TIMESTAMP
            FROM (SELECT TIMESTAMP '2026-10-01' + to_minutes(i) AS m, i
                  FROM range(44640) t(i)) x,
                 (VALUES ('claims-assistant'), ('quotes-api'), ('(unrouted)')) v(s)
            """
        )
        # Outside the month: must not count.
        con.execute(
            "INSERT INTO metrics_1m (minute, service, dimension, key, requests, errors_4xx, "
            "errors_5xx, gateway_errors, error_ratio, computed_at) VALUES "
            "('2026-11-01 00:00', 'claims-assistant', 'service', '', 100, 0, 100, 0, 1, now()), "
            "('2026-09-30 23:59', 'claims-assistant', 'service', '', 100, 0, 100, 0, 1, now())"
        )


def test_sla_report_on_a_month_with_known_downtime(store: Store) -> None:
    text = ROUTES + SERVICES + '\n[[services]]\nname = "quotes-api"\nsla_target = 99.99\n'
    run_catalog(store, config(text), now=NOW)
    seed_month(store)
    rows = {r["service"]: r for r in sla_report(store, "2026-10", now=NOW).to_dicts()}
    assert "(unrouted)" not in rows
    total, bad = 4_464_000, 30 * 20 + 100 * 2
    a = rows["claims-assistant"]
    assert (a["requests"], a["bad_requests"], a["downtime_minutes"]) == (total, bad, 30)
    assert a["minutes_with_traffic"] == 44_640 and a["gateway_errors"] == 30 * 20 + 44_640 * 5
    assert a["availability_pct"] == pytest.approx(100 * (total - bad) / total)  # 99.98208
    assert a["uptime_pct"] == pytest.approx(100 * (44_640 - 30) / 44_640)
    assert a["error_budget_requests"] == pytest.approx(total * 0.001)
    assert a["error_budget_used"] == pytest.approx(bad / (total * 0.001))  # ~18% spent
    assert (a["sla_target"], a["status"]) == (99.9, "met")
    q = rows["quotes-api"]  # the same traffic against 99.99%: budget 446.4, 800 spent
    assert q["status"] == "breached" and q["error_budget_used"] == pytest.approx(800 / 446.4)
    assert rows["llm"]["status"] == "no_traffic" and rows["llm"]["sla_target"] is None
    assert rows["policy-db"]["status"] == "no_traffic"
    # `services show` carries the month's row.
    shown = get_service(store, "claims-assistant", now=datetime(2026, 10, 31, 23, 59))
    assert shown["sla"] is not None
    assert (shown["sla"]["month"], shown["sla"]["downtime_minutes"]) == ("2026-10", 30)
    # A stricter downtime threshold counts the 2% minutes too.
    strict = sla_report(store, "2026-10", downtime_error_ratio=0.01, now=NOW)
    assert strict.filter(service="claims-assistant")["downtime_minutes"].item() == 130


def test_sla_report_without_target_and_bad_months(store: Store) -> None:
    seed_month(store)  # no catalog run: services come from metrics alone
    rows = {r["service"]: r for r in sla_report(store, "2026-10", now=NOW).to_dicts()}
    assert rows["quotes-api"]["status"] == "no_target"
    assert rows["quotes-api"]["error_budget_used"] is None
    for bad in ("2026-13", "26-10", "october", ""):
        with pytest.raises(CatalogError, match="is not a month like 2026-11"):
            month_bounds(bad)
    with pytest.raises(CatalogError, match="has not started"):
        sla_report(store, "2027-01", now=NOW)
    assert month_bounds("2024-02") == (datetime(2024, 2, 1), datetime(2024, 3, 1))


# -- CLI -------------------------------------------------------------------------------------
def aiops(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The CLI in-process (its parsing and printing); one test below runs the real binary."""
    from suite.cli import main

    try:
        code = main(list(args))
    except SystemExit as e:  # argparse rejects bad arguments with exit 2
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_services_cli_list_show_sla_graph(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "h"
    store = Store(home)
    cfg = write_config(tmp_path / "gw.toml", ROUTES + SERVICES)
    add_requests(store, [("x", NOW, "llm", 5.0, None, None, "claims-portal")])
    run_catalog(store, load_gateway_config(cfg), now=NOW)
    seed_month(store)
    h = ["--home", str(home)]

    code, out, _ = aiops(capsys, "services", "list", *h, "--json")
    assert code == 0
    listed = {s["name"]: s for s in json.loads(out)}
    assert listed["claims-assistant"]["tier"] == "tier-1"
    assert listed["llm"]["dependents"] == 1 and listed["claims-portal"]["depends_on"] == 1
    code, out, _ = aiops(capsys, "services", "list", *h)
    assert code == 0 and out.splitlines()[1].split()[:3] == ["claims-assistant", "http", "tier-1"]
    code, out, _ = aiops(capsys, "services", "show", "claims-assistant", *h)
    assert code == 0
    assert "owner:       claims-team" in out and "policy-db" in out
    code, _, err = aiops(capsys, "services", "show", "nope", *h)
    assert code == 2 and "no service named 'nope'" in err

    code, out, _ = aiops(capsys, "services", "sla", *h, "--month", "2026-10", "--json")
    assert code == 0
    sla = {s["service"]: s for s in json.loads(out)}
    assert sla["claims-assistant"]["downtime_minutes"] == 30
    assert sla["claims-assistant"]["status"] == "met"
    code, out, _ = aiops(capsys, "services", "sla", *h, "--month", "2026-10")
    line = next(x for x in out.splitlines() if x.startswith("claims-assistant"))
    assert code == 0 and line.split()[-1] == "met" and "99.982" in line

    code, out, _ = aiops(capsys, "services", "graph", *h)
    assert code == 0 and out.startswith("digraph services {")
    assert '"claims-assistant" -> "policy-db";' in out
    assert '"claims-portal" -> "llm" [style=dashed, label="1 calls"];' in out
    code, out, _ = aiops(capsys, "services", "graph", *h, "--format", "json")
    assert {(e["service"], e["depends_on"], e["source"]) for e in json.loads(out)} == {
        ("claims-assistant", "policy-db", "config"),
        ("claims-portal", "llm", "observed"),
    }
    code, out, _ = aiops(capsys, "services", "graph", *h, "--format", "mermaid")
    assert 's_claims_portal["claims-portal"] -.-> s_llm["llm"]' in out
    code, _, err = aiops(capsys, "services", "graph", *h, "--format", "svg")
    assert code == 2 and "invalid choice" in err
    # The real binary: a bad month is a clear error and exit status 2.
    r = run_aiops("services", "sla", *h, "--month", "10/2026")
    assert r.returncode == 2 and "'10/2026' is not a month like 2026-11" in r.stderr


# -- end to end ------------------------------------------------------------------------------
class HeldUpstream(ThreadingHTTPServer):
    """The assistant's own upstream: a request to .../hold is answered only once the test
    releases it, so the calls the assistant "makes" meanwhile lie inside its time span
    whatever the machine's load; anything else is answered at once."""

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.release = threading.Event()
        super().__init__(("127.0.0.1", 0), _HeldHandler)


class _HeldHandler(BaseHTTPRequestHandler):
    server: HeldUpstream

    def do_GET(self) -> None:
        if self.path.endswith("/hold"):
            self.server.arrived.set()
            self.server.release.wait(60)
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def held() -> Iterator[HeldUpstream]:
    server = HeldUpstream()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()


def test_observed_dependency_through_a_real_gateway(
    tmp_path: Path, procs: list[Proc], held: HeldUpstream
) -> None:
    """An LLM assistant behind the gateway calls the LLM and an MCP server (sharing its
    trace); a portal names itself with x-aiops-caller. After `aiops worker --once`,
    `aiops services show` lists the observed edges."""
    import anyio
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client
    from openai import OpenAI

    emulators = {  # started side by side
        name: Proc([sys.executable, "-m", f"suite.emulators.{name}", "--port", "0"])
        for name in ("llm", "mcp_server")
    }
    procs.extend(emulators.values())
    llm_url, mcp_url = (
        p.wait_for(r"emulator listening on (http://\S+)").group(1) for p in emulators.values()
    )
    home = tmp_path / "home"
    text = (
        ROUTES.replace("http://127.0.0.1:9001", f"http://127.0.0.1:{held.server_address[1]}")
        .replace("http://127.0.0.1:9100", llm_url)
        .replace("http://127.0.0.1:9200", mcp_url)
        .replace('prefix = "/llm"', 'prefix = "/llm"\nstrip_prefix = true')
        .replace('prefix = "/tools"', 'prefix = "/tools"\nstrip_prefix = true')
    )
    cfg = write_config(tmp_path / "gateway.toml", text + SERVICES)
    gw, base = start_gateway(home, cfg)
    procs.append(gw)

    outer_span, inner_span = span(0xA1), span(0xB2)
    outer: dict[str, int] = {}

    def assistant_request() -> None:  # the assistant's own call, held open upstream
        r = httpx.get(
            f"{base}/assistant/hold",
            headers={"traceparent": f"00-{TRACE}-{outer_span}-01"},
            timeout=60,
        )
        outer["status"] = r.status_code

    async def call_tool(headers: dict[str, str]) -> None:
        async with httpx.AsyncClient(headers=headers, timeout=30) as http:
            async with streamable_http_client(f"{base}/tools/mcp", http_client=http) as (
                read,
                write,
                _,
            ):
                async with ClientSession(read, write) as s:
                    await s.initialize()
                    res = await s.call_tool("get_policy", {"policy_id": "POL-1001"})
                    assert not res.isError

    thread = threading.Thread(target=assistant_request)
    thread.start()
    try:
        assert held.arrived.wait(30), "the assistant's call never reached its upstream"
        # What the assistant does while handling its call, in the same trace.
        inner = {"traceparent": f"00-{TRACE}-{inner_span}-01"}
        client = OpenAI(base_url=f"{base}/llm/v1", api_key="x", default_headers=inner)
        answer = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "summarise CLM-1"}]
        )
        assert answer.choices[0].message.content
        anyio.run(call_tool, inner)
    finally:
        held.release.set()
        thread.join(60)
    assert outer == {"status": 200}
    r = httpx.get(f"{base}/assistant/claims/CLM-1", headers={"x-aiops-caller": "claims-portal"})
    assert r.status_code == 200
    assert wait_gateway_received(home, 6) >= 6

    out = run_worker_once(home, "--config", str(cfg))
    assert "catalog: " in out and "problems: " in out
    r = run_aiops("services", "show", "claims-assistant", "--home", str(home), "--json")
    assert r.returncode == 0, r.stderr
    svc = json.loads(r.stdout)[0]
    deps = {e["service"]: e for e in svc["depends_on"]}
    assert deps["llm"]["source"] == "observed" and deps["llm"]["calls"] == 1
    assert deps["policy-tools"]["source"] == "observed" and deps["policy-tools"]["calls"] >= 2
    assert deps["policy-db"]["source"] == "config"
    assert {e["service"]: e["source"] for e in svc["dependents"]} == {"claims-portal": "observed"}
    r = run_aiops("services", "show", "claims-assistant", "--home", str(home))
    assert r.returncode == 0
    assert any(
        line.split()[:2] == ["policy-tools", "observed,"] for line in r.stdout.splitlines()
    ), r.stdout


def test_a_config_without_routes_or_services_keeps_the_catalog(store: Store) -> None:
    """A worker started without its config file knows nothing about the catalog: it must
    not retire every service nor drop the declared dependencies."""
    empty = GatewayConfig(path="gateway.toml")
    assert (run_catalog(store, empty, now=NOW).services, dependencies(store)) == (0, {})
    assert sla_report(store, "2026-11", now=NOW).is_empty()
    run_catalog(store, config(), now=NOW)
    before = store.query("SELECT name, source FROM services ORDER BY name")
    run_catalog(store, empty, now=NOW)
    assert store.query("SELECT name, source FROM services ORDER BY name").equals(before)
    assert edges(store) == {("claims-assistant", "policy-db"): ("config", 0)}
