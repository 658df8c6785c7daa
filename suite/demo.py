"""`aiops demo`: the whole loop on one machine, no accounts, no internet.

It starts, as real processes: emulated insurance REST services (policy administration,
claims, quotes, payments), OpenAI- and Anthropic-compatible LLM emulators (a primary
that rate-limits and a backup behind one model alias), the MCP tools server, the
gateway (routes, gateway keys, the alias with its fallback, an SLO), the worker and the
dashboard; plus, inside this process, a traffic generator (tenants, apps, plain and
streamed LLM calls, MCP tool calls, some client errors) and a webhook receiver that
plays the on-call channel.

The timeline:
  1. Traffic starts on a minute boundary. After its first full minute, 14 days of history
     are seeded: every past minute is that live minute's calls, resampled (a Poisson
     count shaped by the sample data's daily and weekly cycle, `suite.sample_data`),
     so baselines and forecasts stand on traffic that looks like this machine's.
  2. The worker starts on that history. A chaos drill (50% of claims calls fail with
     503 for a minute) is recorded as a change and applied by the gateway.
  3. Detection opens an incident on claims-api, the webhook receives the page, the drill
     ranks first among the incident's suspect changes; the drill ends, the incident
     resolves by itself.

Ctrl-C stops every process it started (the gateway flushes its spool first) and the last
ingest leaves the home consistent.
"""

from __future__ import annotations

import json
import os
import random
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
from rich.console import Console
from rich.live import Live
from rich.table import Table

from suite.clock import utc_now
from suite.errors import AiopsError
from suite.home import Home
from suite.sample_data import SERVICES as PROFILES
from suite.sample_data import _daily_shape
from suite.store import Store

TENANTS = ("acme-motor", "northwind-home", "contoso-life")
ALIAS = "claims-summarizer"
DRILL_ROUTE = "claims-api"
DRILL_ERROR_RATE = 0.5
HISTORY_DAYS = 14
# Calls per second the demo sends at the current hour (its shape follows the sample's cycle).
DEFAULT_RATE = 6.0
KEYED_ROUTES = ("claims-api", "openai", "claude")


class DemoError(AiopsError):
    """A demo process did not start: names it and its log."""


@dataclass
class DemoService:
    name: str
    prefix: str
    kind: str
    path: str  # what clients call, under the prefix
    weight: float  # the sample profile's peak calls per minute
    latency_ms: float


def demo_services() -> list[DemoService]:
    out = []
    for p in PROFILES:
        prefix = "/" + p.path.strip("/").split("/")[0]
        out.append(DemoService(p.name, prefix, p.kind, p.path, p.peak_rpm, p.latency_ms))
    return out


# -- processes ---------------------------------------------------------------------------------
def _spawn(
    argv: list[str], log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    fh = open(log, "ab")  # noqa: SIM115 - the child owns it for its lifetime
    return subprocess.Popen(
        argv, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )


def _argv(proc: subprocess.Popen[bytes]) -> str:
    args = proc.args
    return " ".join(str(a) for a in args) if isinstance(args, list | tuple) else str(args)


def _wait_for_line(
    log: Path, pattern: str, proc: subprocess.Popen[bytes], timeout: float = 60
) -> str:
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists():
            m = rx.search(log.read_text(errors="replace"))
            if m:
                return m.group(1)
        if proc.poll() is not None:
            raise DemoError(f"{_argv(proc)} exited early; see {log}")
        time.sleep(0.05)
    raise DemoError(f"{_argv(proc)} did not start in {timeout:.0f} s; see {log}")


def _wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise DemoError(f"{url} did not answer in {timeout:.0f} s")


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """Gateway first (it flushes its spool), then the worker, then upstreams: newest first."""
    for p in reversed(procs):
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


# -- the on-call channel -----------------------------------------------------------------------
class WebhookReceiver:
    """A local HTTP server that records every JSON notice the worker posts."""

    def __init__(self) -> None:
        self.notices: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                try:
                    receiver.notices.append(json.loads(body))
                except ValueError:
                    receiver.notices.append({"raw": body.decode(errors="replace")})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/oncall"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- config ------------------------------------------------------------------------------------
def demo_config(services: list[DemoService], upstreams: dict[str, str], webhook: str) -> str:
    parts = []
    for s in services:
        lines = [
            "[[routes]]",
            f'name = "{s.name}"',
            f'prefix = "{s.prefix}"',
            f'upstreams = ["{upstreams[s.name]}"]',
        ]
        if s.name == "openai":
            lines += ['llm_provider = "openai"', 'provider_key = "${AIOPS_DEMO_OPENAI_KEY}"']
        if s.name == "claude":
            lines += ['llm_provider = "anthropic"', 'provider_key = "${AIOPS_DEMO_ANTHROPIC_KEY}"']
        if s.kind == "mcp":
            lines.append("mcp = true")
        if s.kind in ("llm", "mcp"):
            lines.append("strip_prefix = true")
        if s.name in KEYED_ROUTES:
            lines.append('auth = "key"')
        parts.append("\n".join(lines))
    parts.append(
        "\n".join(
            [
                "[[routes]]",
                'name = "openai-backup"',
                'prefix = "/openai-backup"',
                "strip_prefix = true",
                f'upstreams = ["{upstreams["openai-backup"]}"]',
                'llm_provider = "openai"',
                'provider_key = "${AIOPS_DEMO_OPENAI_KEY}"',
            ]
        )
    )
    parts.append(
        f'[[llm_aliases]]\nname = "{ALIAS}"\n'
        'targets = ["openai:gpt-4o-mini", "openai-backup:gpt-4o-mini"]'
    )
    parts.append(
        '[[slos]]\nname = "claims-availability"\nservice = "claims-api"\n'
        'objective = 99.5\nkind = "availability"\nwindow_days = 30'
    )
    parts.append(
        f'[[notify.webhooks]]\nname = "oncall"\nurl = "{webhook}"\n'
        'severities = ["critical", "warning"]'
    )
    parts.append(
        "[[services]]\n"
        'name = "claims-api"\nowner = "claims-platform"\ntier = "tier-1"\nsla_target = 99.5\n'
        'depends_on = ["policy-admin", "payments-api"]'
    )
    parts.append("[changes]\ninterval_seconds = 5")
    # The seeded history is scored too: its anomalies are kept but page nobody.
    parts.append(
        "[incidents]\nquiet_minutes = 2\ngroup_window_minutes = 5\nmax_anomaly_age_minutes = 10"
    )
    parts.append(
        "[worker]\ningest_interval_seconds = 1\nrollup_interval_seconds = 3\n"
        "detect_interval_seconds = 5\ndetect_settle_seconds = 6\nslo_interval_seconds = 15\n"
        "notify_interval_seconds = 2"
    )
    return "\n\n".join(parts) + "\n"


# -- traffic -----------------------------------------------------------------------------------
@dataclass
class DemoCounters:
    sent: int = 0
    failed_to_send: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    by_kind: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, kind: str, status: int | None) -> None:
        with self.lock:
            self.sent += 1
            self.by_kind[kind] = self.by_kind.get(kind, 0) + 1
            if status is None:
                self.failed_to_send += 1
            else:
                self.by_status[status] = self.by_status.get(status, 0) + 1


def _traceparent(rng: random.Random) -> str:
    return f"00-{rng.getrandbits(128):032x}-{rng.getrandbits(64):016x}-01"


class Traffic:
    """One thread per service, Poisson arrivals at that service's share of `rate`."""

    def __init__(
        self, base: str, services: list[DemoService], keys: dict[str, str], rate: float
    ) -> None:
        self.base, self.services, self.keys = base, services, keys
        self.stop = threading.Event()
        self.counters = DemoCounters()
        total = sum(s.weight for s in services)
        self.rates = {s.name: rate * s.weight / total for s in services}
        self.threads = [
            threading.Thread(target=self._run, args=(s, i), daemon=True)
            for i, s in enumerate(services)
        ]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(15)

    def _run(self, svc: DemoService, seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=self.base, timeout=30) as client:
            while not self.stop.is_set():
                statuses: list[int | None]
                try:
                    statuses = list(self._call(client, svc, rng))
                except httpx.HTTPError:
                    statuses = [None]
                for status in statuses:
                    self.counters.count(svc.kind, status)
                self.stop.wait(rng.expovariate(self.rates[svc.name]))

    def _headers(self, svc: DemoService, rng: random.Random) -> dict[str, str]:
        tenant = rng.choice(TENANTS)
        headers = {"traceparent": _traceparent(rng), "user-agent": f"{tenant}-app/1.4"}
        if svc.name in KEYED_ROUTES and rng.random() > 0.01:  # 1%: a client forgot its key
            if svc.name == "claude":
                headers["x-api-key"] = self.keys[tenant]
            else:
                headers["authorization"] = f"Bearer {self.keys[tenant]}"
        return headers

    def _call(self, client: httpx.Client, svc: DemoService, rng: random.Random) -> list[int]:
        """One client action; the statuses of every HTTP call it made."""
        headers = self._headers(svc, rng)
        n = rng.randint(1000, 9999)
        if rng.random() < 0.02:  # a client on an old URL: the gateway's 404
            return [client.get(f"{svc.prefix}-v0/{n}", headers=headers).status_code]
        if svc.kind == "http":
            path = svc.path.replace("{n}", str(n))
            if "quote" in path or "pay" in path:
                body = {"product": "motor", "driver_age": rng.randint(18, 80), "ref": n}
                return [client.post(path, json=body, headers=headers).status_code]
            return [client.get(path, headers=headers).status_code]
        if svc.kind == "mcp":
            return self._mcp(client, svc, rng, headers)
        return [self._llm(client, svc, rng, headers)]

    def _llm(
        self, client: httpx.Client, svc: DemoService, rng: random.Random, headers: dict[str, str]
    ) -> int:
        stream = rng.random() < 0.3
        prompt = f"Summarise claim CLM-{rng.randint(1000, 9999)} in two sentences."
        if svc.name == "claude":
            body: dict[str, Any] = {
                "model": "claude-3-5-haiku-20241022",
                "max_tokens": 120,
                "messages": [{"role": "user", "content": prompt}],
            }
        else:
            model = ALIAS if rng.random() < 0.6 else "gpt-4o-mini"
            body = {"model": model, "messages": [{"role": "user", "content": prompt}]}
        if stream:
            body["stream"] = True
            if svc.name != "claude":
                body["stream_options"] = {"include_usage": True}
            with client.stream("POST", svc.path, json=body, headers=headers) as r:
                for _ in r.iter_bytes():
                    pass
                return r.status_code
        return client.post(svc.path, json=body, headers=headers).status_code

    def _mcp(
        self, client: httpx.Client, svc: DemoService, rng: random.Random, headers: dict[str, str]
    ) -> list[int]:
        """An MCP session: initialize, initialized, one tool call, close."""
        h = {**headers, "accept": "application/json, text/event-stream"}
        init = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-03-26",
                "capabilities": {},
                "clientInfo": {"name": "aiops-demo", "version": "1"},
            },
        }
        r = client.post(svc.path, json=init, headers=h)
        session = r.headers.get("mcp-session-id")
        if r.status_code != 200 or not session:
            return [r.status_code]
        h["mcp-session-id"] = session
        notified = client.post(
            svc.path, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=h
        ).status_code
        tool, args = rng.choice(
            [
                ("get_policy", {"policy_id": f"POL-100{rng.randint(1, 4)}"}),
                ("get_claim_status", {"claim_id": f"CLM-200{rng.randint(1, 4)}"}),
                ("quote_premium", {"product": "auto", "driver_age": rng.randint(18, 80)}),
            ]
        )
        call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                "params": {"name": tool, "arguments": args}}  # fmt: skip
        called = client.post(svc.path, json=call, headers=h).status_code
        closed = client.delete(svc.path, headers=h).status_code
        return [r.status_code, notified, called, closed]


# -- history -----------------------------------------------------------------------------------
HISTORY_SQL = """
WITH src AS (
    SELECT p.minute, l.*, coalesce(l.route, '(unrouted)') AS service
    FROM demo_picks p JOIN demo_live l ON l.route = p.route AND l.k = p.k
)
SELECT minute, service, 'service' AS dimension, '' AS key, {agg}, now()::TIMESTAMP
FROM src GROUP BY minute, service
UNION ALL
SELECT minute, service, 'model', llm_model, {agg}, now()::TIMESTAMP
FROM src WHERE llm_model IS NOT NULL GROUP BY minute, service, llm_model
UNION ALL
SELECT minute, service, 'tenant', tenant, {agg}, now()::TIMESTAMP
FROM src WHERE tenant IS NOT NULL GROUP BY minute, service, tenant
"""


def seed_history(
    store: Store, live_minute: datetime, days: int = HISTORY_DAYS, seed: int = 7
) -> int:
    """Minute rollups for `days` before `live_minute`, made of that minute's real calls:
    per past minute and route, a Poisson number of them (scaled by the sample data's daily
    and weekly cycle relative to now), drawn with replacement. Returns rollup rows written."""
    from suite.rollup import _AGGREGATES

    with store.read() as con:
        live = con.sql(
            "SELECT *, (row_number() OVER (PARTITION BY route ORDER BY id) - 1)::BIGINT AS k "
            "FROM requests WHERE ts >= $start AND ts < $end AND route IS NOT NULL",
            params={"start": live_minute, "end": live_minute + timedelta(minutes=1)},
        ).to_arrow_table()
    if live is None or live.num_rows == 0:
        return 0
    rng = np.random.default_rng(seed)
    n_min = days * 1440
    epoch_min = int((live_minute - datetime(1970, 1, 1)).total_seconds() // 60)
    past = np.arange(epoch_min - n_min, epoch_min, dtype=np.int64)
    shape = _daily_shape(past) / float(_daily_shape(np.array([epoch_min]))[0])
    routes = live.column("route").to_pylist()
    counts_live: dict[str, int] = {}
    for r in routes:
        counts_live[r] = counts_live.get(r, 0) + 1
    minute_col, route_col, k_col = [], [], []
    for route, n in counts_live.items():
        draws = rng.poisson(n * shape)
        total = int(draws.sum())
        minute_col.append(np.repeat(past, draws))
        route_col.append(np.full(total, route, dtype=object))
        k_col.append(rng.integers(0, n, total))
    picks = pa.table(
        {
            "minute": pa.array(np.concatenate(minute_col) * 60_000_000).cast(pa.timestamp("us")),
            "route": pa.array(np.concatenate(route_col), pa.string()),
            "k": pa.array(np.concatenate(k_col), pa.int64()),
        }
    )
    with store.write() as con:
        con.register("demo_live", live)
        con.register("demo_picks", picks)
        con.execute("BEGIN TRANSACTION")
        con.execute(f"INSERT INTO metrics_1m {HISTORY_SQL.format(agg=_AGGREGATES)}")
        (rows,) = con.execute(
            "SELECT count(*) FROM metrics_1m WHERE minute < ?", [live_minute]
        ).fetchone() or (0,)
        con.execute("COMMIT")
        con.unregister("demo_live")
        con.unregister("demo_picks")
    return int(rows)


# -- the run -----------------------------------------------------------------------------------
@dataclass
class DemoSummary:
    requests_by_kind: dict[str, int]
    incidents_opened: int
    drill_incidents: list[dict[str, Any]]
    drill_change: str | None
    drill_ranked_first: bool
    notifications: int
    sent: int
    recorded: int

    @property
    def lost(self) -> int:
        return max(0, self.sent - self.recorded)


def _next_minute(now: datetime) -> datetime:
    return now.replace(second=0, microsecond=0) + timedelta(minutes=1)


def _sleep_until(when: datetime, stop: threading.Event | None = None) -> None:
    delay = (when - utc_now()).total_seconds()
    if delay > 0:
        (stop or threading.Event()).wait(delay)


class Demo:
    def __init__(
        self,
        home: Home,
        *,
        minutes: float,
        headless: bool,
        rate: float = DEFAULT_RATE,
        dashboard_port: int = 8501,
        console: Console | None = None,
    ) -> None:
        self.home, self.minutes, self.headless = home.ensure(), minutes, headless
        self.rate, self.dashboard_port = rate, dashboard_port
        self.console = console or Console()
        self.procs: list[subprocess.Popen[bytes]] = []
        self.exe = Path(sys.executable)
        self.aiops = str(self.exe.parent / "aiops")
        self.services = demo_services()
        self.env = {
            **os.environ,
            # Fake provider keys: the gateway injects them, clients never see them.
            "AIOPS_DEMO_OPENAI_KEY": "sk-demo-" + secrets.token_hex(12),
            "AIOPS_DEMO_ANTHROPIC_KEY": "sk-ant-demo-" + secrets.token_hex(12),
            "AIOPS_USER": os.environ.get("AIOPS_USER", "aiops-demo"),
        }
        self.store = Store(self.home)
        self.config_path = self.home.root / "demo-gateway.toml"
        self.webhook: WebhookReceiver | None = None
        self.traffic: Traffic | None = None
        self.drill_change: str | None = None
        self.drill_started: datetime | None = None

    # processes
    def _start(self, name: str, argv: list[str], ready: str, timeout: float = 60) -> str:
        log = self.home.logs_dir / f"demo-{name}.log"
        log.write_text("")
        p = _spawn(argv, log, self.env)
        self.procs.append(p)
        return _wait_for_line(log, ready, p, timeout)

    def _start_upstreams(self) -> dict[str, str]:
        py = str(self.exe)
        urls: dict[str, str] = {}
        for s in self.services:
            if s.kind == "http":
                url = self._start(
                    s.name,
                    [
                        py,
                        "-m",
                        "suite.emulators.rest_upstream",
                        "--port",
                        "0",
                        "--api-version",
                        "1.4.2",
                    ],
                    r"emulator listening on (http://\S+)",
                )
                # Each service answers in about its sample profile's median latency.
                httpx.get(f"{url}/_emulator/fault?delay_ms={s.latency_ms / 4:.0f}", timeout=5)
                urls[s.name] = url
            elif s.kind == "mcp":
                urls[s.name] = self._start(
                    s.name,
                    [py, "-m", "suite.emulators.mcp_server", "--port", "0"],
                    r"listening on (http://\S+)",
                )
        llm = [py, "-m", "suite.emulators.llm", "--port", "0", "--latency-ms", "120",
               "--token-interval-ms", "4"]  # fmt: skip
        ready = r"llm emulator listening on (http://\S+)"
        # The primary provider rate-limits: calls to the alias fall back to the backup.
        urls["openai"] = self._start("openai", [*llm, "--rate-limit-rpm", "12"], ready)
        urls["openai-backup"] = self._start("openai-backup", llm, ready)
        urls["claude"] = self._start("claude", llm, ready)
        for s in self.services:
            if s.kind == "mcp":
                urls[s.name] = urls[s.name].rstrip("/")
        return urls

    def _create_keys(self) -> dict[str, str]:
        from suite.keys import create_key

        self.store.ensure_schema()
        keys = {}
        for tenant in TENANTS:
            _key_id, full = create_key(
                self.store, tenant=tenant, name=f"{tenant} demo app", actor="aiops-demo"
            )
            keys[tenant] = full
        return keys

    def run(self) -> int:
        c = self.console
        self.webhook = WebhookReceiver()
        try:
            c.print(f"[bold]aiops demo[/] in {self.home.root}")
            upstreams = self._start_upstreams()
            self.config_path.write_text(demo_config(self.services, upstreams, self.webhook.url))
            keys = self._create_keys()
            base = self._start(
                "gateway",
                [self.aiops, "gateway", "--home", str(self.home.root), "--config",
                 str(self.config_path), "--listen-port", "0"],
                r"aiops gateway listening on (http://\S+)",
            )  # fmt: skip
            if not self.headless:
                url = self._start(
                    "dashboard",
                    [self.aiops, "dashboard", "--home", str(self.home.root), "--port",
                     str(self.dashboard_port)],
                    r"(http://127\.0\.0\.1:\d+)",
                    timeout=90,
                )  # fmt: skip
                _wait_http(f"{url}/_stcore/health", timeout=60)
                c.print(
                    f"[bold green]dashboard[/] {url}  (Overview, then Incidents once the drill starts)"
                )
            c.print(f"[bold]gateway[/] {base}   [bold]webhook[/] {self.webhook.url}")
            return self._timeline(base, keys)
        except KeyboardInterrupt:
            c.print("interrupted: stopping everything and keeping what was recorded")
            return 130
        finally:
            if self.traffic:
                self.traffic.close()
            _stop(self.procs)
            self._final_pass()
            self.webhook.close()

    def _timeline(self, base: str, keys: dict[str, str]) -> int:
        c = self.console
        first = _next_minute(utc_now())
        c.print(f"traffic starts on the minute boundary ({first:%H:%M:%S} UTC)")
        _sleep_until(first)
        self.traffic = Traffic(base, self.services, keys, self.rate)
        self.traffic.start()
        started = time.monotonic()
        end_at = started + self.minutes * 60
        hard_end = end_at + 6 * 60  # headless: wait this long at most for the drill to resolve
        phase = "warm-up: recording the first live minute"
        with Live(self._table(phase, started), console=c, refresh_per_second=2,
                  transient=self.headless) as live:  # fmt: skip
            _sleep_until(first + timedelta(minutes=1, seconds=3), self.traffic.stop)
            from suite.ingest import ingest_spool

            ingest_spool(self.store)
            rows = seed_history(self.store, first)
            c.print(f"seeded {HISTORY_DAYS} days of history ({rows:,} minute rollups)")
            self._start(
                "worker",
                [self.aiops, "worker", "--home", str(self.home.root), "--config",
                 str(self.config_path)],
                r"(aiops worker)",
            )  # fmt: skip
            drill_at = first + timedelta(minutes=2)
            phase = f"baseline: chaos drill on {DRILL_ROUTE} at {drill_at:%H:%M:%S} UTC"
            while utc_now() < drill_at:
                live.update(self._table(phase, started))
                time.sleep(0.5)
            self._start_drill()
            phase = f"drill: {DRILL_ERROR_RATE:.0%} of {DRILL_ROUTE} calls fail for a minute"
            if not self.headless:
                c.print("Running until Ctrl-C: traffic keeps flowing, the worker keeps working.")
            while True:
                now = time.monotonic()
                done = self._drill_resolved()
                if self.headless and now >= end_at and done:
                    break
                if self.headless and now >= hard_end:
                    c.print("[yellow]the drill's incident did not resolve in time[/]")
                    break
                if done:
                    phase = "resolved: the drill's incident closed by itself"
                elif self._drill_opened():
                    phase = "incident open: see the Incidents page (suspects: the drill)"
                live.update(self._table(phase, started))
                time.sleep(1)
        return 0

    def _start_drill(self) -> None:
        from suite.chaos import start_drill
        from suite.config import load_gateway_config

        os.environ.update(
            {k: v for k, v in self.env.items() if k.startswith("AIOPS_DEMO_")}
        )  # the config names them
        config = load_gateway_config(self.config_path)
        drill = start_drill(
            self.store,
            self.home,
            config,
            route=DRILL_ROUTE,
            error_rate=DRILL_ERROR_RATE,
            status=503,
            duration_seconds=60,
            reason="aiops demo: rehearse a claims outage",
            actor="aiops-demo",
        )
        self.drill_change = drill.id
        self.drill_started = utc_now()
        self.console.print(
            f"[bold red]chaos drill started[/] on {DRILL_ROUTE} ({self.drill_change})"
        )

    def _drill_incidents(self) -> list[dict[str, Any]]:
        """Incidents on the drilled service active since the drill started."""
        if self.drill_started is None:
            return []
        try:
            return self.store.query(
                "SELECT id, status, opened_at, resolved_at, signal, signals FROM incidents "
                "WHERE service = ? AND last_seen_at >= ? ORDER BY id",
                [DRILL_ROUTE, self.drill_started - timedelta(minutes=1)],
            ).to_dicts()
        except Exception:  # the store is busy or not migrated yet: ask again next time
            return []

    def _drill_opened(self) -> bool:
        return bool(self._drill_incidents())

    def _drill_resolved(self) -> bool:
        found = self._drill_incidents()
        return bool(found) and all(i["status"] == "resolved" for i in found)

    def _table(self, phase: str, started: float) -> Table:
        t = Table(title=f"aiops demo — {time.monotonic() - started:4.0f} s — {phase}")
        counters = self.traffic.counters if self.traffic else DemoCounters()
        t.add_column("calls sent", justify="right")
        for kind in sorted(counters.by_kind):
            t.add_column(kind, justify="right")
        for code in sorted(counters.by_status):
            t.add_column(str(code), justify="right")
        t.add_column("notices", justify="right")
        t.add_row(
            str(counters.sent),
            *(str(counters.by_kind[k]) for k in sorted(counters.by_kind)),
            *(str(counters.by_status[s]) for s in sorted(counters.by_status)),
            str(len(self.webhook.notices) if self.webhook else 0),
        )
        return t

    def _final_pass(self) -> None:
        """Load what the gateway flushed at exit, so the home is consistent."""
        from suite.ingest import ingest_spool

        try:
            ingest_spool(self.store)
        except Exception as e:  # report, never hide the demo's own outcome
            self.console.print(f"[yellow]final ingest failed: {e}[/]")

    def summary(self) -> DemoSummary:
        by_kind = {
            r["kind"]: r["n"]
            for r in self.store.query(
                "SELECT kind, count(*) AS n FROM requests GROUP BY kind"
            ).to_dicts()
            if r["kind"]
        }
        recorded = int(self.store.query("SELECT count(*) AS n FROM requests").item())
        opened = int(self.store.query("SELECT count(*) AS n FROM incidents").item())
        ranked_first = False
        if self.drill_change:
            top = self.store.query(
                "SELECT s.incident_id, s.change_id FROM incident_suspects s "
                "JOIN incidents i ON i.id = s.incident_id "
                "WHERE i.service = ? AND s.rank = 1",
                [DRILL_ROUTE],
            )
            ranked_first = self.drill_change in top["change_id"].to_list()
        sent = (
            self.traffic.counters.sent - self.traffic.counters.failed_to_send if self.traffic else 0
        )
        return DemoSummary(
            requests_by_kind=by_kind,
            incidents_opened=opened,
            drill_incidents=self._drill_incidents(),
            drill_change=self.drill_change,
            drill_ranked_first=ranked_first,
            notifications=len(self.webhook.notices) if self.webhook else 0,
            sent=sent,
            recorded=recorded,
        )


def run_demo(
    home: Home,
    *,
    minutes: float,
    headless: bool,
    rate: float = DEFAULT_RATE,
    dashboard_port: int = 8501,
    summary_json: Path | None = None,
) -> int:
    demo = Demo(home, minutes=minutes, headless=headless, rate=rate, dashboard_port=dashboard_port)
    code = demo.run()
    s = demo.summary()
    c = demo.console
    table = Table(title="aiops demo: what happened")
    table.add_column("what")
    table.add_column("value", justify="right")
    for kind, n in sorted(s.requests_by_kind.items()):
        table.add_row(f"requests recorded ({kind})", f"{n:,}")
    table.add_row("calls answered / recorded / lost", f"{s.sent:,} / {s.recorded:,} / {s.lost:,}")
    table.add_row("incidents opened (all services)", str(s.incidents_opened))
    for i in s.drill_incidents:
        table.add_row(f"incident #{i['id']} on {DRILL_ROUTE} ({i['signal']})", i["status"])
    table.add_row("drill recorded as change", s.drill_change or "-")
    table.add_row("drill ranked first among suspects", "yes" if s.drill_ranked_first else "no")
    table.add_row("notifications delivered to the webhook", str(s.notifications))
    c.print(table)
    c.print(
        f"Explore: aiops incidents list --home {home.root}   ·   aiops dashboard --home {home.root}"
    )
    if summary_json:
        summary_json.write_text(json.dumps({**s.__dict__, "lost": s.lost}, default=str, indent=2))
    if code:
        return code
    return 0 if s.lost == 0 else 1
