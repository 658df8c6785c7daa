"""Capacity forecasts (suite.forecast, suite.capacity_config, `aiops capacity`): bands that
hold on held-back truth, time to limit on known trends, back-test MAPE, per-model series,
config errors, and the worker job and CLI on a real store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from suite.capacity_config import CapacityLimit
from suite.clock import utc_now
from suite.config import GatewayConfig, parse_gateway_config
from suite.errors import ConfigError
from suite.forecast import first_crossing, fit_metric, run_forecast
from suite.store import Store
from suite.worker import JOBS
from tests.integration.helpers import run_worker_once
from tests.procs import run_aiops

START = datetime(2026, 3, 2)  # a Monday, 00:00 UTC
EPOCH = datetime(1970, 1, 1)


def abs_hour(ts: datetime) -> int:
    return int((ts - EPOCH).total_seconds() // 3600)


def seasonal_truth(hours: np.ndarray, base: float, slope_per_day: float) -> np.ndarray:
    """Trend + daily + weekly seasonality (weekends lower), on absolute hours."""
    hod = hours % 24
    weekday = ((hours // 24) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    days = (hours - hours[0]) / 24.0
    daily = 0.25 * base * np.sin(2 * np.pi * (hod - 8) / 24)
    weekly = np.where(weekday >= 5, -0.3 * base, 0.0)
    return base + slope_per_day * days + daily + weekly


# -- the model on hourly series ---------------------------------------------------------------
def test_held_back_truth_stays_inside_the_80_percent_band_about_80_percent_of_the_time() -> None:
    rng = np.random.default_rng(7)
    hist, horizon = 35 * 24, 14 * 24
    hours = np.arange(abs_hour(START), abs_hour(START) + hist + horizon)
    series = [seasonal_truth(hours, 100 + 10 * i, 0.5 + 0.1 * i) for i in range(24)]
    noisy = np.array([s + rng.normal(0, 4 + i % 5, s.size) for i, s in enumerate(series)])
    y, truth = noisy[:, :hist], noisy[:, hist:]
    fit = fit_metric(y, np.ones_like(y, dtype=bool), hours[:hist], horizon)
    inside = (truth >= fit.lower) & (truth <= fit.upper)
    coverage = inside.mean()
    assert 0.70 <= coverage <= 0.95, coverage
    # Every series on its own is within reason too, and the band is not absurdly wide.
    assert inside.mean(axis=1).min() >= 0.55
    assert np.median(fit.upper - fit.lower) < 6 * 10  # noise sd <= 8: 80% band ~ 2.6 sd
    assert all(m.endswith("trend+daily+weekly") for m in fit.model)
    # The band widens with the horizon (the trend is less certain further out).
    width = fit.upper - fit.lower
    assert (width[:, -24:].mean(axis=1) > width[:, :24].mean(axis=1)).all()


def test_mape_is_small_on_clean_data_and_large_on_noise() -> None:
    rng = np.random.default_rng(3)
    hist = 28 * 24
    hours = np.arange(abs_hour(START), abs_hour(START) + hist)
    clean = seasonal_truth(hours, 200, 2) + rng.normal(0, 2, hist)
    noise = rng.exponential(10, hist)
    fit = fit_metric(np.array([clean, noise]), np.ones((2, hist), dtype=bool), hours, 24)
    assert fit.mape[0] < 0.03, fit.mape  # a fraction: 3%
    assert fit.mape[1] > 0.4, fit.mape
    assert fit.backtest_points[0] == 7 * 24


def test_short_history_gets_no_forecast_and_a_reason() -> None:
    hours = np.arange(abs_hour(START), abs_hour(START) + 30)
    fit = fit_metric(np.full((1, 30), 5.0), np.ones((1, 30), dtype=bool), hours, 24)
    assert fit.model == ["none"]
    assert np.isnan(fit.yhat).all()
    assert "not enough history" in fit.notes[0][0]


def test_first_crossing_peak_daily_and_monthly_totals() -> None:
    h0 = abs_hour(datetime(2026, 1, 30, 20))  # 4 hours before the end of a UTC day
    hours = np.arange(h0, h0 + 24 * 5)
    flat = np.full(hours.size, 10.0)
    assert first_crossing(flat, hours, 9.0, "peak") == 0
    assert first_crossing(flat, hours, 10.0, "peak") is None
    # Daily total: 240 a full day; the first (partial) day has 4 hours + 100 carried.
    assert first_crossing(flat, hours, 135.0, "daily", carry=100.0) == 3
    assert first_crossing(flat, hours, 235.0, "daily") == 4 + 23  # next full day, last hour
    # Monthly: January has 28 hours left (carry 500 spent); February starts from zero.
    assert first_crossing(flat, hours, 700.0, "monthly", carry=500.0) == 20
    assert first_crossing(flat, hours, 1100.0, "monthly", carry=800.0) is None  # resets


# -- the job on a real store ----------------------------------------------------------------
def minute_rows(
    service: str,
    dimension: str,
    key: str,
    start: datetime,
    rpm: np.ndarray,
    rng: np.random.Generator,
    *,
    tokens_per_request: float | None = None,
) -> pa.Table:
    n = rpm.size
    requests = rng.poisson(np.maximum(rpm, 0))
    minutes = np.datetime64(start, "us") + np.arange(n).astype("timedelta64[m]")
    llm = tokens_per_request is not None
    zeros = np.zeros(n, dtype=np.int64)
    return pa.table(
        {
            "minute": minutes,
            "service": pa.array([service] * n),
            "dimension": pa.array([dimension] * n),
            "key": pa.array([key] * n),
            "requests": requests,
            "errors_4xx": zeros,
            "errors_5xx": zeros,
            "gateway_errors": zeros,
            "error_ratio": np.zeros(n),
            "latency_p95_ms": 200 + rng.normal(0, 10, n),
            "prompt_tokens": pa.array((requests * (tokens_per_request or 0) * 0.75).astype(int))
            if llm
            else pa.nulls(n, pa.int64()),
            "completion_tokens": pa.array((requests * (tokens_per_request or 0) * 0.25).astype(int))
            if llm
            else pa.nulls(n, pa.int64()),
            "cost_usd": pa.array(requests * 0.002) if llm else pa.nulls(n, pa.float64()),
            "computed_at": pa.array([start] * n, pa.timestamp("us")),
        }
    )


def seed(store: Store, tables: list[pa.Table]) -> None:
    with store.write() as con:
        con.register("seed", pa.concat_tables(tables))
        con.execute("INSERT INTO metrics_1m BY NAME SELECT * FROM seed")
        con.unregister("seed")


def rpm_truth(start: datetime, minutes: int, base: float, slope_per_day: float) -> np.ndarray:
    """Requests per minute: a linear trend with daily and weekly seasonality."""
    m = np.arange(minutes)
    hours = abs_hour(start) + m / 60.0
    hod = hours % 24
    weekday = (np.floor(hours / 24) + 3) % 7
    return (
        base
        + slope_per_day * m / 1440
        + 0.2 * base * np.sin(2 * np.pi * (hod - 8) / 24)
        - np.where(weekday >= 5, 0.2 * base, 0.0)
    )


def hourly_truth(start: datetime, days: int, base: float, slope: float, horizon_days: int):
    """Noise-free hourly mean rps for the `horizon_days` after `days` of history."""
    total = (days + horizon_days) * 1440
    rpm = rpm_truth(start, total, base, slope)[days * 1440 :]
    return rpm.reshape(-1, 60).mean(axis=1) / 60.0


DAYS = 28


@pytest.fixture(scope="module")
def linear_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, dict]]:
    """Four weeks of minutes: two services with linear growth, one LLM model with tokens,
    one service with a day of history; limits for each; one forecast run."""
    root = tmp_path_factory.mktemp("forecast-home")
    store = Store(root)
    rng = np.random.default_rng(11)
    n = DAYS * 1440
    base, slope = 60.0, 3.0  # +3 requests/minute every day
    truth = hourly_truth(START, DAYS, base, slope, 60)
    day_peaks = truth.reshape(-1, 24).max(axis=1)
    near_limit = float(day_peaks[8] - 0.01)  # crossed on day 8 of the horizon
    far_limit = float(day_peaks[30] - 0.01)  # crossed after the 14-day horizon
    fresh_start = START + timedelta(days=DAYS - 1)
    tokens_truth = truth * 3600 * 50  # 50 tokens per request
    quota = float(tokens_truth.reshape(-1, 24).sum(axis=1)[5] - 1000)  # crossed on day 5
    seed(
        store,
        [
            minute_rows("orders", "service", "", START, rpm_truth(START, n, base, slope), rng),
            minute_rows("billing", "service", "", START, rpm_truth(START, n, base, slope), rng),
            minute_rows(
                "openai",
                "service",
                "",
                START,
                rpm_truth(START, n, base, slope),
                rng,
                tokens_per_request=50,
            ),
            minute_rows(
                "openai",
                "model",
                "gpt-4o-mini",
                START,
                rpm_truth(START, n, base, slope),
                rng,
                tokens_per_request=50,
            ),
            minute_rows("fresh", "service", "", fresh_start, np.full(1440, 30.0), rng),
        ],
    )
    config = GatewayConfig(
        path="test",
        capacity=(
            CapacityLimit("orders", max_rps=near_limit, max_p95_ms=150.0),
            CapacityLimit("billing", max_rps=far_limit),
            CapacityLimit("openai", model="gpt-4o-mini", token_quota_per_day=quota),
            CapacityLimit("fresh", max_rps=10.0),
            CapacityLimit("idle", max_rps=10.0),
        ),
    )
    now = START + timedelta(days=DAYS, minutes=5)
    result = run_forecast(store, config, now=now)
    yield (
        store,
        {
            "truth": truth,
            "tokens_truth": tokens_truth,
            "quota": quota,
            "near": near_limit,
            "far": far_limit,
            "now": now,
            "result": result,
        },
    )


def _run_row(store: Store, service: str, metric: str, key: str = "") -> dict:
    df = store.query(
        "SELECT * FROM forecast_runs WHERE service = ? AND key = ? AND metric = ?",
        [service, key, metric],
    )
    assert df.height == 1, (service, key, metric, df)
    return df.row(0, named=True)


def _truth_crossing(values: np.ndarray, limit: float, mode: str = "peak") -> int:
    h0 = abs_hour(START + timedelta(days=DAYS))
    hit = first_crossing(values, np.arange(h0, h0 + values.size), limit, mode)
    assert hit is not None
    return hit


def test_time_to_limit_within_a_day_on_a_linear_trend(linear_home: tuple[Store, dict]) -> None:
    store, k = linear_home
    row = _run_row(store, "orders", "rps")
    truth_hit = _truth_crossing(k["truth"], k["near"])
    assert row["crossing"] == "forecast", row
    assert row["limit_name"] == "max_rps" and row["limit_value"] == pytest.approx(k["near"])
    assert abs(row["hours_to_limit"] - truth_hit) <= 24, (row["hours_to_limit"], truth_hit)
    assert row["crosses_at"] == START + timedelta(days=DAYS, hours=row["hours_to_limit"])
    # The pessimistic (upper band) date comes no later than the forecast's own.
    assert row["upper_hours_to_limit"] is not None
    assert row["upper_hours_to_limit"] <= row["hours_to_limit"]


def test_time_to_limit_past_the_horizon_is_extrapolated_and_says_so(
    linear_home: tuple[Store, dict],
) -> None:
    store, k = linear_home
    row = _run_row(store, "billing", "rps")
    truth_hit = _truth_crossing(k["truth"], k["far"])
    assert row["crossing"] == "extrapolated"
    assert row["hours_to_limit"] > 14 * 24
    assert abs(row["hours_to_limit"] - truth_hit) <= 3 * 24, (row["hours_to_limit"], truth_hit)
    assert "extrapolated" in row["note"]


def test_daily_token_quota_is_crossed_on_the_right_day(linear_home: tuple[Store, dict]) -> None:
    store, k = linear_home
    row = _run_row(store, "openai", "tokens", key="gpt-4o-mini")
    truth_hit = _truth_crossing(k["tokens_truth"], k["quota"], "daily")
    assert row["dimension"] == "model" and row["limit_name"] == "token_quota_per_day"
    assert row["crossing"] == "forecast"
    assert abs(row["hours_to_limit"] - truth_hit) <= 24, (row["hours_to_limit"], truth_hit)


def test_mape_is_stored_with_every_forecast_and_small_on_clean_data(
    linear_home: tuple[Store, dict],
) -> None:
    store, _ = linear_home
    df = store.query("SELECT * FROM forecast_runs WHERE model <> 'none'")
    assert df["mape_backtest"].null_count() == 0
    assert (df["backtest_points"] > 100).all()
    rps = df.filter(df["metric"] == "rps")
    assert rps["mape_backtest"].max() < 0.05, rps["mape_backtest"]
    assert set(df["model"].str.split("/").list.first()) <= {"ridge-log", "ridge-additive"}


def test_per_service_and_per_model_series_with_the_metrics_they_have(
    linear_home: tuple[Store, dict],
) -> None:
    store, k = linear_home
    runs = store.query("SELECT service, dimension, key, metric FROM forecast_runs")
    got = {tuple(r) for r in runs.iter_rows()}
    for metric in ("rps", "rps_peak", "p95_ms", "tokens", "cost_usd"):
        assert ("openai", "model", "gpt-4o-mini", metric) in got
        assert ("openai", "service", "", metric) in got
    # A service without tokens gets no token or cost forecast.
    assert ("orders", "service", "", "rps") in got
    assert ("orders", "service", "", "tokens") not in got
    fc = store.query(
        "SELECT count(*) AS n, min(ts) AS first, max(ts) AS last, "
        "bool_and(lower <= yhat AND yhat <= upper) AS ordered FROM forecasts "
        "WHERE service = 'openai' AND key = 'gpt-4o-mini' AND metric = 'tokens'"
    ).row(0, named=True)
    end = START + timedelta(days=DAYS)
    assert fc["n"] == 14 * 24 and fc["ordered"]
    assert fc["first"] == end and fc["last"] == end + timedelta(days=14, hours=-1)
    assert k["result"].series == 5


def test_short_history_gets_a_not_enough_history_row(linear_home: tuple[Store, dict]) -> None:
    store, _ = linear_home
    row = _run_row(store, "fresh", "rps")
    assert row["model"] == "none" and row["history_points"] == 24
    assert "not enough history" in row["note"]
    assert row["crossing"] == "unknown" and row["limit_value"] == 10.0
    n = store.query("SELECT count(*) AS n FROM forecasts WHERE service = 'fresh'")["n"][0]
    assert n == 0
    # A limit on a route without any traffic is listed, with the reason.
    idle = store.query("SELECT * FROM forecast_runs WHERE service = 'idle' ORDER BY metric")
    assert idle["metric"].to_list() == ["rps", "rps_peak"]
    assert idle["note"].to_list() == ["no traffic in the last 8 weeks"] * 2
    assert idle["limit_value"].to_list() == [10.0, 10.0]


def test_p95_limit_already_over(linear_home: tuple[Store, dict]) -> None:
    store, _ = linear_home
    row = _run_row(store, "orders", "p95_ms")
    assert row["limit_name"] == "max_p95_ms" and row["crossing"] == "already_over"
    assert row["hours_to_limit"] == 0


def test_only_the_newest_runs_are_kept(tmp_path: Path) -> None:
    store = Store(tmp_path / "h")
    rng = np.random.default_rng(5)
    seed(store, [minute_rows("a", "service", "", START, np.full(4 * 1440, 20.0), rng)])
    for i in range(5):
        run_forecast(store, None, now=START + timedelta(days=4, hours=i, minutes=5), keep_runs=3)
    # A rerun with the same time replaces its rows instead of failing.
    run_forecast(store, None, now=START + timedelta(days=4, hours=4, minutes=5), keep_runs=3)
    runs = store.query("SELECT DISTINCT run_at FROM forecast_runs ORDER BY 1")["run_at"].to_list()
    assert runs == [START + timedelta(days=4, hours=h, minutes=5) for h in (2, 3, 4)]
    fc = store.query("SELECT run_at, count(*) AS n FROM forecasts GROUP BY 1 ORDER BY 1")
    assert fc["run_at"].to_list() == runs
    assert set(fc["n"].to_list()) == {3 * 14 * 24}  # rps, rps_peak, p95_ms


# -- config -----------------------------------------------------------------------------------
ROUTES = [
    {"name": "claims-api", "prefix": "/claims", "upstreams": ["http://127.0.0.1:9001"]},
    {"name": "openai", "prefix": "/openai", "upstreams": ["http://127.0.0.1:9100"]},
]


def test_capacity_limits_parse() -> None:
    cfg = parse_gateway_config(
        {
            "routes": ROUTES,
            "worker": {"forecast_interval_seconds": 600},
            "capacity": [
                {"service": "claims-api", "max_rps": 50, "max_p95_ms": 800},
                {
                    "service": "openai",
                    "model": "gpt-4o-mini",
                    "token_quota_per_day": 2_000_000,
                    "monthly_budget_usd": 500.5,
                },
            ],
        },
        "gw.toml",
    )
    assert cfg.worker.forecast_interval_seconds == 600
    job = next(j for j in JOBS if j.name == "forecast")
    assert job.interval_seconds(cfg) == 600
    assert [j.name for j in JOBS].index("rollup") < [j.name for j in JOBS].index("forecast")
    assert cfg.capacity == (
        CapacityLimit("claims-api", max_rps=50.0, max_p95_ms=800.0),
        CapacityLimit("openai", "gpt-4o-mini", token_quota_per_day=2e6, monthly_budget_usd=500.5),
    )
    assert cfg.capacity[1].series == ("openai", "model", "gpt-4o-mini")


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"service": "nope", "max_rps": 5}, "capacity[0].service: 'nope' is not a route name"),
        ({"max_rps": 5}, "capacity[0].service: is required"),
        ({"service": "openai", "max_rps": 0}, "capacity[0].max_rps: 0 must be a positive number"),
        ({"service": "openai", "max_rps": -3}, "max_rps: -3 must be a positive number"),
        ({"service": "openai", "monthly_budget_usd": "lots"}, "'lots' is not a number"),
        ({"service": "openai", "max_rps": True}, "max_rps: True is not a number"),
        ({"service": "openai", "max_rps": 5, "max_qps": 5}, "capacity[0].max_qps: unknown key"),
        ({"service": "openai"}, "capacity[0]: sets no limit"),
        ({"service": "openai", "model": 4, "max_rps": 1}, "capacity[0].model: 4 must be"),
    ],
)
def test_capacity_config_errors(item: dict, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_gateway_config({"routes": ROUTES, "capacity": [item]}, "gw.toml")
    assert message in str(e.value)
    assert "gw.toml: " in str(e.value)


def test_capacity_config_duplicates_and_shape() -> None:
    with pytest.raises(ConfigError, match=r"capacity\[1\]: service 'openai' already has limits"):
        parse_gateway_config(
            {
                "routes": ROUTES,
                "capacity": [
                    {"service": "openai", "max_rps": 1},
                    {"service": "openai", "max_rps": 2},
                ],
            },
            "gw.toml",
        )
    with pytest.raises(ConfigError, match=r"capacity: must be an array of tables"):
        parse_gateway_config({"routes": ROUTES, "capacity": {"service": "openai"}}, "gw.toml")
    with pytest.raises(ConfigError, match=r"worker.forecast_interval_seconds: 0 is out of range"):
        parse_gateway_config({"routes": ROUTES, "worker": {"forecast_interval_seconds": 0}}, "x")


# -- the worker and the CLI, as real processes -----------------------------------------------
GATEWAY_TOML = """
[[routes]]
name = "claims-api"
prefix = "/claims"
upstreams = ["http://127.0.0.1:9001"]

[[routes]]
name = "openai"
prefix = "/openai"
upstreams = ["http://127.0.0.1:9100"]

[[capacity]]
service = "claims-api"
max_rps = 0.1

[[capacity]]
service = "openai"
model = "gpt-4o-mini"
token_quota_per_day = 50_000_000
monthly_budget_usd = 100000
"""


@pytest.fixture(scope="module")
def worker_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with 10 days of recent minute rollups and a config with limits, after one
    `aiops worker --once`."""
    root = tmp_path_factory.mktemp("forecast-worker-home")
    (root / "gateway.toml").write_text(GATEWAY_TOML)
    end = utc_now().replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=10)
    n = 10 * 1440
    rng = np.random.default_rng(2)
    seed(
        Store(root),
        [
            minute_rows("claims-api", "service", "", start, rpm_truth(start, n, 20, 0.5), rng),
            minute_rows(
                "openai",
                "model",
                "gpt-4o-mini",
                start,
                rpm_truth(start, n, 10, 0.2),
                rng,
                tokens_per_request=300,
            ),
        ],
    )
    out = run_worker_once(root)
    assert "forecast: " in out
    return root


def test_worker_once_writes_the_forecast_tables(worker_home: Path) -> None:
    store = Store(worker_home)
    runs = store.query(
        "SELECT service, dimension, key, metric, model, mape_backtest, limit_name, crossing "
        "FROM forecast_runs ORDER BY ALL"
    ).to_dicts()
    got = {(r["service"], r["key"], r["metric"]): r for r in runs}
    assert got[("claims-api", "", "rps_peak")]["limit_name"] == "max_rps"
    assert got[("claims-api", "", "rps_peak")]["crossing"] == "already_over"
    assert got[("openai", "gpt-4o-mini", "cost_usd")]["limit_name"] == "monthly_budget_usd"
    assert all(r["mape_backtest"] is not None for r in runs)
    n = store.query("SELECT count(*) AS n FROM forecasts")["n"][0]
    assert n == len(runs) * 14 * 24


def test_cli_show_json_and_table(worker_home: Path) -> None:
    r = run_aiops("capacity", "show", "--home", str(worker_home), "--json", "--service", "openai")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert {row["metric"] for row in rows} == {"rps", "rps_peak", "p95_ms", "tokens", "cost_usd"}
    assert {(row["service"], row["dimension"], row["key"]) for row in rows} == {
        ("openai", "model", "gpt-4o-mini")
    }
    tokens = next(row for row in rows if row["metric"] == "tokens")
    assert tokens["limit_value"] == 50_000_000 and tokens["mape_backtest"] > 0
    assert tokens["value_basis"] == "daily total" and tokens["value_14d"] > 0
    r = run_aiops("capacity", "show", "--home", str(worker_home))
    assert r.returncode == 0, r.stderr
    assert "claims-api" in r.stdout and "openai/gpt-4o-mini" in r.stdout
    assert "ALREADY OVER" in r.stdout and "MAPE" in r.stdout
    r = run_aiops("capacity", "show", "--home", str(worker_home), "--service", "nope")
    assert r.returncode == 2 and "no forecast for it" in r.stderr


def test_cli_forecast_records_an_audit_row_and_plot_writes_html(worker_home: Path) -> None:
    r = run_aiops(
        "capacity", "forecast", "--home", str(worker_home), "--json", env={"AIOPS_USER": "ana"}
    )
    assert r.returncode == 0, r.stderr
    (summary,) = json.loads(r.stdout)
    assert summary["series"] == 2 and summary["forecasts"] == 8
    audit = (
        Store(worker_home)
        .query("SELECT actor, action, source FROM audit_log WHERE action LIKE 'capacity%'")
        .to_dicts()
    )
    assert audit == [{"actor": "ana", "action": "capacity.forecast", "source": "cli"}]
    out = worker_home / "fig.html"
    r = run_aiops(
        "capacity", "plot", "--home", str(worker_home), "--service", "claims-api",
        "--metric", "rps_peak", "--output", str(out),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    html = out.read_text()
    assert "80% band" in html and "forecast" in html and "limit" in html
