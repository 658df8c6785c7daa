from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from suite.config import SLO, GatewayConfig, load_gateway_config, parse_gateway_config
from suite.errors import ConfigError
from suite.incidents import list_incidents
from suite.slo import (
    alert_level,
    burn_rate,
    error_budget_remaining,
    evaluate_slo,
    latest_slo_status,
    run_slo,
)
from suite.store import Store
from suite.worker import JOBS
from tests.conftest import write_config

NOW = datetime(2026, 3, 10, 12, 0, 0)
ROUTES = """
[[routes]]
name = "claims-api"
prefix = "/claims"
upstreams = ["http://127.0.0.1:9001"]
"""


def add_minutes(
    store: Store,
    start: datetime,
    end: datetime,
    *,
    requests: int,
    errors_5xx: int,
    service: str = "claims-api",
) -> None:
    """metrics_1m rows (dimension 'service') for every minute in [start, end)."""
    with store.write() as con:
        con.execute(
            """
            INSERT INTO metrics_1m (minute, service, dimension, key, requests, errors_4xx,
                errors_5xx, gateway_errors, error_ratio, computed_at)
            SELECT m, ?, 'service', '', ?, 0, ?, 0, ?::DOUBLE / ?, now()::TIMESTAMP
            FROM generate_series(?::TIMESTAMP, ?::TIMESTAMP - INTERVAL 1 MINUTE,
                                 INTERVAL 1 MINUTE) t(m)
            """,
            [service, requests, errors_5xx, errors_5xx, requests, start, end],
        )


def config_with(slos: str, extra: str = "") -> GatewayConfig:
    return parse_gateway_config(_toml(ROUTES + slos + extra), "gw.toml")


def _toml(text: str) -> dict[str, object]:
    import tomllib

    return tomllib.loads(text)


AVAILABILITY = """
[[slos]]
name = "claims-availability"
service = "claims-api"
objective = 99.9
"""


def test_burn_rate_and_budget_math() -> None:
    # 99.9%: 0.1% may fail; 2% failing spends it 20 times too fast.
    assert burn_rate(20, 1000, 99.9) == pytest.approx(20.0)
    assert burn_rate(0, 0, 99.9) == 0.0  # no traffic burns nothing
    assert error_budget_remaining(5, 1000, 99.0) == pytest.approx(0.5)
    assert error_budget_remaining(20, 1000, 99.0) == pytest.approx(-1.0)
    calm = {"5m": 0.0, "30m": 0.0, "1h": 0.0, "6h": 0.0, "3d": 0.0}
    assert alert_level(calm) == "none"
    assert alert_level({**calm, "1h": 14.4, "5m": 14.4}) == "page"
    assert alert_level({**calm, "1h": 14.4, "5m": 14.3}) == "none"
    assert alert_level({**calm, "6h": 6.0, "30m": 6.0}) == "page"
    assert alert_level({**calm, "3d": 1.0, "6h": 1.0}) == "ticket"
    assert alert_level({**calm, "3d": 1.0, "6h": 0.9}) == "none"


def test_page_fires_for_a_20x_burn_over_the_hour_and_opens_a_critical_incident(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path)
    add_minutes(
        store, NOW - timedelta(days=3), NOW - timedelta(hours=1), requests=1000, errors_5xx=0
    )
    add_minutes(store, NOW - timedelta(hours=1), NOW, requests=1000, errors_5xx=20)
    config = config_with(AVAILABILITY)
    status = evaluate_slo(store, config.slos[0], NOW)
    assert status.burns["1h"] == pytest.approx(20.0)
    assert status.burns["5m"] == pytest.approx(20.0)
    assert status.alert_level == "page"
    # 60 bad minutes out of 3 days of data: 1200 bad of 4_320_000 events.
    assert status.events_window == 3 * 24 * 60 * 1000
    assert status.bad_events_window == 1200
    assert status.budget_remaining == pytest.approx(1 - 1200 / 4_320_000 / 0.001)

    result = run_slo(store, config, NOW)
    assert result.paging == ["claims-availability"] and result.ticketing == []
    incidents = list_incidents(store).to_dicts()
    assert len(incidents) == 1
    inc = incidents[0]
    assert (inc["signal"], inc["source"], inc["severity"], inc["status"]) == (
        "slo_burn:claims-availability",
        "slo",
        "critical",
        "open",
    )
    assert inc["service"] == "claims-api" and "20.0x" in inc["title"]
    (row,) = latest_slo_status(store)
    assert row["alert_level"] == "page" and row["incident_id"] == inc["id"]
    assert row["burn_1h"] == pytest.approx(20.0) and row["window_days"] == 30

    # A minute later, still burning: the same incident, refreshed, not a second one.
    run_slo(store, config, NOW + timedelta(minutes=1))
    assert list_incidents(store).height == 1
    assert store.query("SELECT count(*) AS n FROM slo_status").item() == 2

    # Four clean days later nothing burns any more: the incident resolves.
    add_minutes(store, NOW, NOW + timedelta(days=4), requests=1000, errors_5xx=0)
    later = run_slo(store, config, NOW + timedelta(days=4))
    assert later.resolved == 1 and later.paging == []
    inc = list_incidents(store).to_dicts()[0]
    assert inc["status"] == "resolved" and inc["resolved_at"] == NOW + timedelta(days=4)


def test_no_page_when_only_the_short_window_burns(tmp_path: Path) -> None:
    store = Store(tmp_path)
    add_minutes(
        store, NOW - timedelta(hours=6), NOW - timedelta(minutes=5), requests=1000, errors_5xx=0
    )
    add_minutes(store, NOW - timedelta(minutes=5), NOW, requests=1000, errors_5xx=20)
    config = config_with(AVAILABILITY)
    status = evaluate_slo(store, config.slos[0], NOW)
    assert status.burns["5m"] == pytest.approx(20.0)
    assert status.burns["1h"] == pytest.approx(20.0 * 5 / 60)
    assert status.alert_level == "none"
    run_slo(store, config, NOW)
    assert list_incidents(store).is_empty()


def test_slow_burn_raises_a_ticket_not_a_page(tmp_path: Path) -> None:
    store = Store(tmp_path)
    # 2x for three days: the budget would last 15 of its 30 days.
    add_minutes(store, NOW - timedelta(days=3), NOW, requests=1000, errors_5xx=2)
    config = config_with(AVAILABILITY)
    status = evaluate_slo(store, config.slos[0], NOW)
    assert status.burns["3d"] == pytest.approx(2.0) and status.burns["6h"] == pytest.approx(2.0)
    assert status.alert_level == "ticket"
    result = run_slo(store, config, NOW)
    assert result.ticketing == ["claims-availability"]
    (inc,) = list_incidents(store).to_dicts()
    assert inc["severity"] == "warning" and inc["signal"] == "slo_burn:claims-availability"


def test_window_reads_no_future_minutes(tmp_path: Path) -> None:
    store = Store(tmp_path)
    add_minutes(store, NOW, NOW + timedelta(hours=1), requests=1000, errors_5xx=1000)
    status = evaluate_slo(store, config_with(AVAILABILITY).slos[0], NOW)
    assert status.alert_level == "none" and status.events_window == 0
    assert status.budget_remaining == 1.0


def test_latency_slo_counts_requests_over_the_threshold(tmp_path: Path) -> None:
    store = Store(tmp_path)
    rows = []
    for minute in range(60):
        ts = NOW - timedelta(minutes=60 - minute)
        for i in range(10):
            # 2 of 10 over 500 ms (20%); one exactly at it, which is fast enough.
            ms = 900.0 if i < 2 else (500.0 if i == 2 else 40.0)
            rows.append((f"r{minute}-{i}", ts + timedelta(seconds=i), "claims-api", 200, ms))
    rows.append(("other", NOW - timedelta(minutes=3), "other-api", 200, 9000.0))
    with store.write() as con:
        con.executemany(
            "INSERT INTO requests (id, ts, route, status, duration_ms) VALUES (?, ?, ?, ?, ?)", rows
        )
    config = config_with(
        """
[[slos]]
name = "claims-fast"
service = "claims-api"
objective = 99
kind = "latency"
latency_threshold_ms = 500
window_days = 7
"""
    )
    slo = config.slos[0]
    assert slo == SLO("claims-fast", "claims-api", 99.0, "latency", 500.0, 7)
    status = evaluate_slo(store, slo, NOW)
    assert status.events_window == 600 and status.bad_events_window == 120
    assert status.burns["1h"] == pytest.approx(20.0) and status.burns["5m"] == pytest.approx(20.0)
    assert status.alert_level == "page"


@pytest.mark.parametrize(
    ("slos", "expected"),
    [
        (
            '[[slos]]\nname = "a"\nservice = "nope"\nobjective = 99.9\n',
            "gw.toml: slos[0].service: 'nope' is not a route name (routes: claims-api)",
        ),
        (
            '[[slos]]\nname = "a"\nservice = "claims-api"\nobjective = 100\n',
            "gw.toml: slos[0].objective: 100 is out of range",
        ),
        (
            '[[slos]]\nname = "a"\nservice = "claims-api"\nobjective = 0\n',
            "gw.toml: slos[0].objective: 0 is out of range",
        ),
        (
            '[[slos]]\nname = "a"\nservice = "claims-api"\nobjective = "high"\n',
            "gw.toml: slos[0].objective: 'high' is not a number",
        ),
        (
            '[[slos]]\nname = "a"\nservice = "claims-api"\n',
            "gw.toml: slos[0].objective: is required",
        ),
        (
            '[[slos]]\nname = "a"\nservice = "claims-api"\nobjective = 99\nkind = "latency"\n',
            "gw.toml: slos[0].latency_threshold_ms: is required for a latency SLO",
        ),
        (
            '[[slos]]\nname = "a"\nservice = "claims-api"\nobjective = 99\n'
            "latency_threshold_ms = 300\n",
            'gw.toml: slos[0].latency_threshold_ms: only applies to kind = "latency"',
        ),
        (
            '[[slos]]\nname = "a"\nservice = "claims-api"\nobjective = 99\nkind = "speed"\n',
            "gw.toml: slos[0].kind: 'speed' is not one of availability, latency",
        ),
        (
            '[[slos]]\nname = "a"\nservice = "claims-api"\nobjective = 99\nwindow_days = 0\n',
            "gw.toml: slos[0].window_days: 0 is out of range",
        ),
        (
            '[[slos]]\nname = "a"\nservice = "claims-api"\nobjective = 99\nkind = "latency"\n'
            "latency_threshold_ms = 300\nwindow_days = 60\n",
            "gw.toml: slos[0].window_days: 60 is longer than worker.retention_days (30)",
        ),
        (
            '[[slos]]\nname = "a"\nservice = "claims-api"\nobjective = 99\n'
            '[[slos]]\nname = "a"\nservice = "claims-api"\nobjective = 98\n',
            "gw.toml: slos[1].name: 'a' is already used by slos[0]",
        ),
        (
            '[[slos]]\nname = "a"\nservice = "claims-api"\nobjective = 99\ntarget = 1\n',
            "gw.toml: slos[0].target: unknown key",
        ),
    ],
)
def test_slo_config_mistakes_name_file_and_key(slos: str, expected: str) -> None:
    with pytest.raises(ConfigError) as e:
        config_with(slos)
    assert expected in str(e.value)


def test_slos_must_be_an_array_of_tables() -> None:
    with pytest.raises(ConfigError, match="gw.toml: slos: must be an array of tables"):
        parse_gateway_config({"slos": "x"}, "gw.toml")


def test_slo_config_from_a_file_with_worker_keys(tmp_path: Path) -> None:
    path = write_config(
        tmp_path / "gateway.toml",
        ROUTES
        + AVAILABILITY
        + "[worker]\nslo_interval_seconds = 30\nretention_days = 90\n"
        + '[[slos]]\nname = "fast"\nservice = "claims-api"\nobjective = 95\n'
        + 'kind = "latency"\nlatency_threshold_ms = 250\nwindow_days = 60\n',
    )
    config = load_gateway_config(path)
    assert [s.name for s in config.slos] == ["claims-availability", "fast"]
    assert config.slos[0].window_days == 30 and config.slos[0].kind == "availability"
    assert config.worker.slo_interval_seconds == 30.0
    assert config.worker.retention_days == 90


def test_worker_runs_slo_notify_retention_after_rollup() -> None:
    names = [j.name for j in JOBS]
    assert names.index("rollup") < names.index("slo") < names.index("notify")
    assert names.index("notify") < names.index("retention")
    config = config_with("", "[worker]\nslo_interval_seconds = 5\nnotify_interval_seconds = 7\n")
    intervals = {j.name: j.interval_seconds(config) for j in JOBS}
    assert (intervals["slo"], intervals["notify"], intervals["retention"]) == (5.0, 7.0, 3600.0)
    with pytest.raises(ConfigError, match="worker.slo_interval: unknown key"):
        config_with("", "[worker]\nslo_interval = 5\n")
