"""Detection end to end, in real time: clients -> `aiops gateway` -> an upstream that starts
failing and slowing mid-run -> `aiops worker --once` -> one incident on the right service,
told once to a real webhook receiver and a real SMTP server; the fault ends -> the
incident resolves by itself and the resolution is told once.

The detector needs a baseline (hours of minutes), which a test cannot wait for: the first
live minute is recorded, then hours of history are made by resampling that minute's real
requests, so the baseline looks exactly like this machine's traffic. Takes ~6 minutes.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pytest

from suite.ingest import ingest_spool
from suite.store import Store
from tests.conftest import write_config
from tests.integration.helpers import query_json, run_worker_once
from tests.procs import Proc, start_emulator, start_gateway
from tests.receivers import Mailbox, WebhookReceiver

pytestmark = [pytest.mark.integration, pytest.mark.serial]

RATE = 8.0  # requests per second, paced: far below what the gateway can take
HISTORY_MINUTES = 8 * 60


class PacedTraffic(threading.Thread):
    """GETs at a steady rate until stopped; counts what it sent and what came back."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.base, self.stop_event = base, threading.Event()
        self.statuses: list[int] = []

    def run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=10) as c:
            t0, i = time.monotonic(), 0
            while not self.stop_event.is_set():
                self.statuses.append(c.get(f"/claims/CLM-{i % 5000}").status_code)
                i += 1
                delay = t0 + i / RATE - time.monotonic()
                if delay > 0:
                    self.stop_event.wait(delay)


def wait_until(when: datetime) -> None:
    time.sleep(max(0.0, (when - datetime.now(UTC)).total_seconds()))


def minute_floor(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


def seed_history_like(store: Store, minute: datetime, minutes: int) -> int:
    """Hours before `minute`, made of that minute's real rows: per past minute a Poisson
    number of calls around its count, each a random one of its rows moved in time."""
    live = store.query(
        "SELECT * FROM requests WHERE date_trunc('minute', ts) = ?", [minute.replace(tzinfo=None)]
    ).to_arrow()
    assert live.num_rows > RATE * 40, f"only {live.num_rows} calls in the first full minute"
    rng = np.random.default_rng(1)
    counts = rng.poisson(live.num_rows, minutes)
    picks = rng.integers(0, live.num_rows, int(counts.sum()))
    rows = live.take(pa.array(picks))
    start_us = int(minute.timestamp() * 1e6) - minutes * 60_000_000
    offsets = np.repeat(np.arange(minutes, dtype=np.int64), counts) * 60_000_000
    ts = start_us + offsets + rng.integers(0, 60_000_000, len(picks))
    rows = rows.set_column(
        rows.schema.get_field_index("ts"), "ts", pa.array(ts).cast(pa.timestamp("us"))
    )
    ids = pa.array([f"hist-{k}" for k in range(len(picks))])
    rows = rows.set_column(rows.schema.get_field_index("id"), "id", ids)
    with store.write() as con:
        con.execute("BEGIN")
        con.register("history", rows)
        con.execute("INSERT INTO requests BY NAME SELECT * FROM history")
        con.execute(
            "INSERT INTO rollup_dirty_minutes SELECT DISTINCT date_trunc('minute', ts) "
            "FROM history ON CONFLICT DO NOTHING"
        )
        con.execute("COMMIT")
    return rows.num_rows


def diagnosis(home: Path, t: datetime) -> str:
    """The live minutes' signals and what the detector made of them, for a failure message."""
    since = (t - timedelta(minutes=3)).replace(tzinfo=None).isoformat(sep=" ")
    minutes = query_json(
        home,
        "SELECT minute, requests, errors_5xx, round(latency_p95_ms, 1) AS p95 FROM metrics_1m "
        f"WHERE dimension = 'service' AND minute >= '{since}' ORDER BY minute",
    )
    anomalies = query_json(
        home,
        "SELECT ts, signal, round(value, 4) AS value, round(score, 3) AS score FROM anomalies "
        "ORDER BY ts",
    )
    return f"t={t:%H:%M}\nminutes: {minutes}\nanomalies: {anomalies}"


# Real time: up to a minute to reach a minute boundary, then about seven minutes of traffic.
@pytest.mark.timeout(900)
def test_fault_opens_one_incident_notifies_and_resolves(
    tmp_path: Path, home: Path, procs: list[Proc], webhook: WebhookReceiver, smtp: Mailbox
) -> None:
    emu, upstream = start_emulator()
    procs.append(emu)
    config = write_config(
        tmp_path / "gateway.toml",
        f"""
[gateway]
flush_interval_seconds = 0.2

[[routes]]
name = "claims"
prefix = "/claims"
upstreams = ["{upstream}"]

[incidents]
quiet_minutes = 2

[[notify.webhooks]]
name = "ops-slack"
url = "{webhook.url}"

[[notify.email]]
name = "ops-mail"
smtp_host = "127.0.0.1"
smtp_port = {smtp.port}
from = "aiops@example.org"
to = ["oncall@example.org"]
""",
    )
    gw, base = start_gateway(home, config)
    procs.append(gw)
    cfg = ["--config", str(config)]

    # Start on a minute boundary, so every minute of live traffic is a whole one.
    t = minute_floor(datetime.now(UTC)) + timedelta(minutes=1)
    wait_until(t)
    traffic = PacedTraffic(base)
    traffic.start()
    try:
        # Minute t is normal traffic; then the baseline is made from it.
        wait_until(t + timedelta(minutes=1, seconds=3))
        store = Store(home)
        ingest_spool(store)
        assert seed_history_like(store, t, HISTORY_MINUTES) > HISTORY_MINUTES * RATE * 40

        # Minutes t+1 normal; t+2 and t+3 the upstream fails half the calls, slowly.
        wait_until(t + timedelta(minutes=2))
        fault = httpx.get(f"{upstream}/_emulator/fault?error_ratio=0.5&delay_ms=120").json()
        assert fault["error_ratio"] == 0.5
        wait_until(t + timedelta(minutes=4))
        httpx.get(f"{upstream}/_emulator/fault")  # the fault ends

        # Minutes up to t+3 are complete and settled at t+4:35.
        wait_until(t + timedelta(minutes=4, seconds=35))
        run_worker_once(home, *cfg)
        incidents = query_json(home, "SELECT * FROM incidents")
        assert len(incidents) == 1, (incidents, diagnosis(home, t))
        inc = incidents[0]
        assert inc["service"] == "claims" and inc["status"] == "open", inc
        assert inc["signal"] in ("error_ratio", "latency_p95_ms"), inc
        opened = datetime.fromisoformat(str(inc["opened_at"]))
        assert t + timedelta(minutes=2) <= opened.replace(tzinfo=UTC) < t + timedelta(minutes=4), (
            inc,
            diagnosis(home, t),
        )
        anomalies = query_json(
            home, "SELECT DISTINCT service, signal FROM anomalies ORDER BY signal"
        )
        assert {a["service"] for a in anomalies} == {"claims"}
        assert webhook.kinds() == ["opened"] and smtp.kinds() == ["opened"]
        assert "claims" in webhook.received[0]["text"]

        # Quiet for two minutes after the last anomalous minute: resolved by itself.
        wait_until(t + timedelta(minutes=6, seconds=35))
        run_worker_once(home, *cfg)
        inc = query_json(home, f"SELECT * FROM incidents WHERE id = {inc['id']}")[0]
        assert inc["status"] == "resolved", (inc, diagnosis(home, t))
        events = query_json(
            home, f"SELECT kind FROM incident_events WHERE incident_id = {inc['id']} ORDER BY ts"
        )
        assert "auto_resolved" in [e["kind"] for e in events]
        assert query_json(home, "SELECT count(*) AS n FROM incidents") == [{"n": 1}]
        assert webhook.kinds() == ["opened", "resolved"]
        assert smtp.kinds() == ["opened", "resolved"]
    finally:
        traffic.stop_event.set()
        traffic.join(15)
    # The clients saw the fault: about half the calls in the faulty minutes failed.
    assert 0 < traffic.statuses.count(503) < len(traffic.statuses) / 2
