"""`aiops demo`: the whole loop on one machine, no accounts, no internet.

Starts emulated insurance upstreams, the gateway and the worker as real processes, sends
realistic traffic through the gateway, and prints what landed in DuckDB. Stops every
process it started, however it ends.
"""

from __future__ import annotations

import random
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from rich.console import Console
from rich.live import Live
from rich.table import Table

from suite.home import Home
from suite.store import Store

SERVICES = ("policy-admin", "claims", "quotes", "payments")
# (weight, path template) per service; {n} is a random id
PATHS = {
    "policy-admin": [(6, "/policy/policies/POL-{n}"), (2, "/policy/policies?holder=H{n}"), (1, "/policy/policies/POL-{n}/documents")],
    "claims": [(5, "/claims/claims/CLM-{n}"), (2, "/claims/claims/CLM-{n}/status"), (1, "/claims/delay/120")],
    "quotes": [(6, "/quotes/quote?product=motor&age={n}"), (1, "/quotes/delay/60")],
    "payments": [(5, "/payments/payments/PAY-{n}"), (1, "/payments/status/503")],
}  # fmt: skip


@dataclass
class DemoCounters:
    sent: int = 0
    failed_to_send: int = 0
    by_status: dict[int, int] = field(default_factory=dict)


def _spawn(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    fh = open(log, "ab")  # noqa: SIM115 - the child owns it for its lifetime
    return subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT)


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
            raise RuntimeError(f"{proc.args!r} exited early; see {log}")
        time.sleep(0.05)
    raise RuntimeError(f"{proc.args!r} did not start in {timeout:.0f} s; see {log}")


def demo_config(upstreams: dict[str, str]) -> str:
    prefixes = {
        "policy-admin": "/policy",
        "claims": "/claims",
        "quotes": "/quotes",
        "payments": "/payments",
    }
    parts = []
    for name in SERVICES:
        parts.append(
            f'[[routes]]\nname = "{name}"\nprefix = "{prefixes[name]}"\n'
            f'upstreams = ["{upstreams[name]}"]\n'
        )
    # A second claims backend that is down: some claims calls get the gateway's 502.
    parts.append(
        '[[routes]]\nname = "documents"\nprefix = "/documents"\nupstreams = ["http://127.0.0.1:9"]\n'
    )
    parts.append("[worker]\ningest_interval_seconds = 2\n")
    return "\n".join(parts)


def _traffic(
    base: str, stop: threading.Event, counters: DemoCounters, rate: float, seed: int
) -> None:
    rng = random.Random(seed)
    choices = [(svc, w, p) for svc, paths in PATHS.items() for w, p in paths]
    weights = [w for _, w, _ in choices]
    with httpx.Client(base_url=base, timeout=10) as client:
        while not stop.is_set():
            _svc, _w, template = rng.choices(choices, weights)[0]
            r = rng.random()
            if r < 0.02:
                path = "/unknown/route"
            elif r < 0.04:
                path = "/documents/DOC-1"
            else:
                path = template.format(n=rng.randint(1000, 9999))
            try:
                if "quote" in path:
                    resp = client.post(
                        path, json={"product": "motor", "driver_age": rng.randint(18, 80)}
                    )
                else:
                    resp = client.get(
                        path,
                        headers={
                            "traceparent": f"00-{rng.getrandbits(128):032x}-{rng.getrandbits(64):016x}-01"
                        },
                    )
                counters.by_status[resp.status_code] = (
                    counters.by_status.get(resp.status_code, 0) + 1
                )
            except httpx.HTTPError:
                counters.failed_to_send += 1
            counters.sent += 1
            stop.wait(rng.expovariate(rate))


def _status_table(counters: DemoCounters, elapsed: float, total: float) -> Table:
    t = Table(title=f"aiops demo: {elapsed:5.0f} s of {total:.0f} s")
    t.add_column("requests sent", justify="right")
    for code in sorted(counters.by_status):
        t.add_column(str(code), justify="right")
    t.add_row(str(counters.sent), *(str(counters.by_status[c]) for c in sorted(counters.by_status)))
    return t


SUMMARY_SQL = """
SELECT coalesce(route, '(no route)') AS route, count(*) AS requests,
       count(*) FILTER (WHERE status >= 500) AS errors_5xx,
       count(*) FILTER (WHERE status BETWEEN 400 AND 499) AS errors_4xx,
       round(quantile_cont(duration_ms, 0.95), 1) AS p95_ms
FROM requests GROUP BY ALL ORDER BY requests DESC
"""


def run_demo(home: Home, *, minutes: float, headless: bool, rate: float = 25.0) -> int:
    console = Console()
    home.ensure()
    logs = home.logs_dir
    procs: list[subprocess.Popen[bytes]] = []
    exe = Path(sys.executable)
    aiops = str(exe.parent / "aiops")
    counters = DemoCounters()
    stop = threading.Event()
    try:
        upstreams = {}
        for name in SERVICES:
            log = logs / f"demo-{name}.log"
            log.write_text("")
            p = _spawn([str(exe), "-m", "suite.emulators.rest_upstream", "--port", "0"], log)
            procs.append(p)
            upstreams[name] = _wait_for_line(log, r"emulator listening on (http://\S+)", p)
        config = home.root / "demo-gateway.toml"
        config.write_text(demo_config(upstreams))
        gw_log = logs / "demo-gateway.out"
        gw_log.write_text("")
        gateway = _spawn(
            [
                aiops,
                "gateway",
                "--home",
                str(home.root),
                "--config",
                str(config),
                "--listen-port",
                "0",
            ],
            gw_log,
        )
        procs.append(gateway)
        base = _wait_for_line(gw_log, r"aiops gateway listening on (http://\S+)", gateway)
        worker = _spawn(
            [aiops, "worker", "--home", str(home.root), "--config", str(config)],
            logs / "demo-worker.out",
        )
        procs.append(worker)
        console.print(
            f"[bold]gateway[/] {base}  (routes: /policy /claims /quotes /payments /documents)"
        )
        console.print(
            f'[bold]home[/] {home.root}  — try: aiops query --home {home.root} "SELECT route, count(*) FROM requests GROUP BY 1"'
        )
        if not headless:
            console.print(
                "The dashboards arrive with a later release; until then the data is in DuckDB (aiops query, notebooks)."
            )

        threads = [
            threading.Thread(target=_traffic, args=(base, stop, counters, rate / 4, i), daemon=True)
            for i in range(4)
        ]
        for t in threads:
            t.start()
        total = minutes * 60
        t0 = time.monotonic()
        with Live(
            _status_table(counters, 0, total),
            console=console,
            refresh_per_second=2,
            transient=headless,
        ) as live:
            while time.monotonic() - t0 < total:
                time.sleep(0.5)
                live.update(_status_table(counters, time.monotonic() - t0, total))
        stop.set()
        for t in threads:
            t.join(15)
    except KeyboardInterrupt:
        console.print("interrupted: stopping everything and keeping what was recorded")
        stop.set()
    finally:
        stop.set()
        # Gateway first (it flushes its spool), then the worker, then the upstreams.
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)

    from suite.ingest import ingest_spool

    store = Store(home)
    ingest_spool(store)
    df = store.query(SUMMARY_SQL)
    recorded = int(df["requests"].sum()) if df.height else 0
    table = Table(title="recorded in DuckDB (requests)")
    for c in df.columns:
        table.add_column(c, justify="right" if c != "route" else "left")
    for row in df.iter_rows():
        table.add_row(*(str(v) for v in row))
    console.print(table)
    lost = counters.sent - counters.failed_to_send - recorded
    console.print(
        f"requests sent: {counters.sent}, answered: {counters.sent - counters.failed_to_send}, "
        f"recorded: {recorded}, lost: {max(lost, 0)}"
    )
    return 0 if lost <= 0 else 1
