"""The Overview page on an empty and on a seeded home (Streamlit AppTest), and the real
`aiops dashboard` server answering on a loopback port."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from streamlit.testing.v1 import AppTest

from suite.rollup import rollup_dirty_minutes
from suite.sample_data import generate, load_into_store
from suite.store import Store
from tests.procs import AIOPS, Proc, free_port

APP = str(Path(__file__).resolve().parents[2] / "dashboards" / "app.py")


def run_app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_empty_home_says_no_data_yet(home: Path) -> None:
    at = run_app()
    assert any("No data yet" in i.value for i in at.info)


def test_seeded_home_shows_the_golden_signals(home: Path) -> None:
    store = Store(home)
    requests, faults = generate(days=1.2, seed=2, end=datetime(2026, 11, 1))
    load_into_store(store, requests, faults)
    rollup_dirty_minutes(store)
    last_day = store.query(
        "SELECT count(*) FROM requests WHERE ts >= TIMESTAMP '2026-11-01' - INTERVAL 1 DAY"
    ).item()

    at = run_app()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Calls"] == f"{last_day:,}"  # the default range: the last 24 hours
    assert metrics["Open incidents"] == "0"
    table = at.dataframe[0].value
    assert set(table["service"]) == set(requests.column("route").to_pylist())
    assert int(table["calls"].sum()) == last_day

    at.segmented_control[0].set_value("Last hour").run()
    assert not at.exception
    last_hour = store.query(
        "SELECT count(*) FROM requests WHERE ts >= TIMESTAMP '2026-11-01' - INTERVAL 1 HOUR"
    ).item()
    assert {m.label: m.value for m in at.metric}["Calls"] == f"{last_hour:,}"


@pytest.mark.integration
def test_aiops_dashboard_serves_the_app(home: Path, procs: list[Proc]) -> None:
    port = free_port()
    dash = Proc([AIOPS, "dashboard", "--home", str(home), "--port", str(port)])
    procs.append(dash)
    dash.wait_for(rf"aiops dashboard on http://127.0.0.1:{port}")
    deadline = time.monotonic() + 60
    while True:
        try:
            r = httpx.get(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
            if r.status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, dash.output
        time.sleep(0.3)
    assert r.text == "ok"
    page = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
    assert page.status_code == 200 and "<title>" in page.text
