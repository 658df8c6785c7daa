from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from suite.config import GatewayConfig, parse_gateway_config
from suite.detect_job import DetectorKit, SeriesDetector, clear_live_detectors, run_detect
from suite.errors import ConfigError
from suite.incidents import list_incidents
from suite.store import Store
from suite.worker import JOBS

START = datetime(2026, 3, 2, 8, 0)


class StandInDetector:
    """Causal EWMA z-score: enough to test the job without suite.detect. NaN is skipped
    (score 0, state unchanged), as the real detectors must too."""

    threshold = 0.9

    def __init__(self) -> None:
        self.mean = 0.0
        self.var = 0.0
        self.n = 0

    def extend(self, timestamps: np.ndarray, values: np.ndarray) -> np.ndarray:
        assert timestamps.dtype.kind == "M" and len(timestamps) == len(values)
        out = np.zeros(len(values))
        for i, v in enumerate(values):
            if math.isnan(v):
                continue
            if self.n >= 20:
                sd = max(math.sqrt(self.var), 0.05 * abs(self.mean), 1e-6)
                out[i] = 1.0 - math.exp(-abs(v - self.mean) / sd / 4.0)
            if self.n == 0:
                self.mean = v
            delta = v - self.mean
            self.mean += 0.1 * delta
            self.var = 0.9 * (self.var + 0.1 * delta * delta)
            self.n += 1
        return out


def _save(det: SeriesDetector) -> bytes:
    assert isinstance(det, StandInDetector)
    return json.dumps([det.mean, det.var, det.n]).encode()


def _restore(det: SeriesDetector, blob: bytes) -> SeriesDetector:
    assert isinstance(det, StandInDetector)
    det.mean, det.var, det.n = json.loads(blob)
    return det


KIT = DetectorKit("stand-in", StandInDetector, _save, _restore)


def seed_metrics(
    store: Store,
    service: str,
    start: datetime,
    *,
    requests: Sequence[float],
    error_ratio: Sequence[float] | None = None,
    latency: Sequence[float] | None = None,
    tokens: Sequence[float] | None = None,
    skip: Sequence[int] = (),
) -> None:
    """One metrics_1m row per minute from `start` (dimension 'service'), except `skip`."""
    idx = [i for i in range(len(requests)) if i not in set(skip)]
    n = len(idx)
    req = [int(requests[i]) for i in idx]
    err = [float(error_ratio[i]) if error_ratio is not None else 0.01 for i in idx]
    table = pa.table(
        {
            "minute": pa.array([start + timedelta(minutes=i) for i in idx], pa.timestamp("us")),
            "service": [service] * n,
            "dimension": ["service"] * n,
            "key": [""] * n,
            "requests": req,
            "errors_4xx": [0] * n,
            "errors_5xx": [round(r * e) for r, e in zip(req, err, strict=True)],
            "gateway_errors": [0] * n,
            "error_ratio": err,
            "latency_p95_ms": [float(latency[i]) if latency is not None else 100.0 for i in idx],
            "prompt_tokens": pa.array(
                [int(tokens[i]) if tokens is not None else None for i in idx], pa.int64()
            ),
            "completion_tokens": pa.array(
                [0 if tokens is not None else None for _ in idx], pa.int64()
            ),
            "computed_at": pa.array([start] * n, pa.timestamp("us")),
        }
    )
    with store.write() as con:
        con.register("seed", table)
        con.execute("INSERT INTO metrics_1m BY NAME SELECT * FROM seed")
        con.unregister("seed")


def noise(n: int, level: float, sd: float, seed: int) -> np.ndarray:
    return level + np.random.default_rng(seed).normal(0, sd, n)


def seed_two_services(store: Store, minutes: int = 180, step_at: int = 120) -> None:
    latency = noise(minutes, 100, 2, 1)
    latency[step_at:] += 400  # a deploy made claims-api slow
    seed_metrics(
        store,
        "claims-api",
        START,
        requests=noise(minutes, 300, 5, 2),
        error_ratio=noise(minutes, 0.02, 0.001, 3),
        latency=latency,
    )
    seed_metrics(
        store,
        "quotes-api",
        START,
        requests=noise(minutes, 200, 4, 4),
        error_ratio=noise(minutes, 0.01, 0.0005, 5),
        latency=noise(minutes, 80, 1.5, 6),
        tokens=noise(minutes, 5000, 50, 7),
    )


def anomalies(store: Store) -> pl.DataFrame:
    return store.query(
        "SELECT ts, service, signal, value, score, incident_id FROM anomalies "
        "ORDER BY ts, service, signal"
    )


def test_latency_step_opens_exactly_one_incident_and_steady_series_none(tmp_path: Path) -> None:
    store = Store(tmp_path / "h")
    seed_two_services(store)
    result = run_detect(
        store, None, now=START + timedelta(minutes=180), detector=KIT, settle_seconds=0
    )
    # 2 services x (rate, errors, latency) + tokens for the LLM one, 180 minutes each.
    assert (result.series, result.points) == (7, 7 * 180)
    found = anomalies(store)
    assert found.height == result.anomalies > 0
    assert set(found["service"]) == {"claims-api"} and set(found["signal"]) == {"latency_p95_ms"}
    assert found["ts"].min() == START + timedelta(minutes=120)  # the step itself, not later
    incs = list_incidents(store)
    assert incs.height == 1
    inc = incs.row(0, named=True)
    assert (inc["service"], inc["signal"], inc["fingerprint"]) == (
        "claims-api",
        "latency_p95_ms",
        "claims-api:latency_p95_ms",
    )
    assert inc["opened_at"] == START + timedelta(minutes=120)
    assert inc["anomaly_count"] == found.height
    assert set(found["incident_id"]) == {inc["id"]}


def test_only_complete_minutes_are_scored_and_never_twice(tmp_path: Path) -> None:
    store = Store(tmp_path / "h")
    seed_metrics(store, "a", START, requests=noise(60, 100, 3, 1))
    now = START + timedelta(minutes=40, seconds=50)
    first = run_detect(store, None, now=now, detector=KIT, settle_seconds=0)
    assert first.points == 3 * 40  # minutes 0..39: minute 40 is still running
    again = run_detect(store, None, now=now, detector=KIT, settle_seconds=0)
    assert again.points == 0 and again.series == 0
    # The default settle time holds back a minute that ended less than 30 s ago.
    later = run_detect(store, None, now=START + timedelta(minutes=42, seconds=10), detector=KIT)
    assert later.points == 3 * 1  # minute 40 only; 41 ended 10 s ago
    states = store.query("SELECT last_ts, scored_until FROM detector_state")
    # Minute 40 is scored; the saved state stays at 39 until 15 minutes have gone by.
    assert set(states["scored_until"]) == {START + timedelta(minutes=40)}
    assert set(states["last_ts"]) == {START + timedelta(minutes=39)}


def test_incremental_runs_give_the_same_anomalies_and_incidents_as_one_run(tmp_path: Path) -> None:
    whole, steps = Store(tmp_path / "whole"), Store(tmp_path / "steps")
    for store in (whole, steps):
        seed_two_services(store, minutes=240, step_at=100)
        # A second blip later on, to exercise auto-resolve and reopen across run boundaries.
        seed_metrics(
            store,
            "docs-ai",
            START,
            requests=noise(240, 50, 2, 9),
            error_ratio=[0.3 if i in (90, 91, 150) else 0.01 for i in range(240)],
        )
    end = START + timedelta(minutes=240)
    run_detect(whole, None, now=end, detector=KIT, settle_seconds=0)
    for minute in (25, 26, 97, 101, 102, 140, 151, 180, 240):
        run_detect(
            steps, None, now=START + timedelta(minutes=minute), detector=KIT, settle_seconds=0
        )
    one, many = anomalies(whole), anomalies(steps)
    assert one.height > 0
    assert one.drop("incident_id").equals(many.drop("incident_id"))
    cols = "fingerprint, signals, status, opened_at, resolved_at, last_seen_at, anomaly_count, reopened_count"
    sql = f"SELECT {cols} FROM incidents ORDER BY opened_at, fingerprint"
    assert whole.query(sql).equals(steps.query(sql))
    docs = whole.query("SELECT * FROM incidents WHERE service = 'docs-ai'")
    assert docs.height == 1 and docs["reopened_count"][0] == 1  # 90 -> resolved at 106 -> 150


def test_a_missing_minute_is_zero_requests_so_a_traffic_drop_is_an_anomaly(tmp_path: Path) -> None:
    store = Store(tmp_path / "h")
    seed_metrics(store, "policy-api", START, requests=noise(120, 400, 5, 1), skip=range(100, 120))
    run_detect(store, None, now=START + timedelta(minutes=90), detector=KIT, settle_seconds=0)
    assert anomalies(store).height == 0
    # Minutes 100.. have no row at all: the service stopped answering.
    run_detect(store, None, now=START + timedelta(minutes=110), detector=KIT, settle_seconds=0)
    found = anomalies(store)
    assert set(found["signal"]) == {"request_rate"}  # NaN latency and errors raise nothing
    assert found["ts"].min() == START + timedelta(minutes=100)
    assert found["value"][0] == 0.0
    inc = list_incidents(store).row(0, named=True)
    assert (inc["signal"], inc["status"]) == ("request_rate", "open")


def test_anomalies_on_several_signals_of_a_service_group_into_one_incident(tmp_path: Path) -> None:
    store = Store(tmp_path / "h")
    latency = noise(120, 100, 2, 1)
    errors = noise(120, 0.02, 0.001, 2)
    latency[90:95] = 900
    errors[92:96] = 0.5  # two minutes after the latency spike
    seed_metrics(
        store,
        "claims-api",
        START,
        requests=noise(120, 300, 5, 3),
        error_ratio=errors,
        latency=latency,
    )
    run_detect(store, None, now=START + timedelta(minutes=120), detector=KIT, settle_seconds=0)
    incs = list_incidents(store)
    assert incs.height == 1
    inc = incs.row(0, named=True)
    assert inc["signal"] == "latency_p95_ms" and inc["signals"] == ["latency_p95_ms", "error_ratio"]
    assert "error_ratio" in inc["title"]
    # Quiet since minute 95 or so: resolved as of the newest scored minute.
    assert inc["status"] == "resolved" and inc["resolved_at"] <= START + timedelta(minutes=120)


def test_a_concurrent_run_that_saved_first_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import suite.detect_job as dj

    store = Store(tmp_path / "h")
    seed_metrics(store, "a", START, requests=noise(60, 100, 3, 1))
    real_score = dj._score_all
    raced: list[bool] = []

    def score_then_race(*args: object, **kwargs: object) -> object:
        out = real_score(*args, **kwargs)  # type: ignore[arg-type]
        if not raced:  # another run saves its state while this one is scoring
            raced.append(True)
            run_detect(
                store, None, now=START + timedelta(minutes=30), detector=KIT, settle_seconds=0
            )
        return out

    monkeypatch.setattr(dj, "_score_all", score_then_race)
    result = run_detect(
        store, None, now=START + timedelta(minutes=50), detector=KIT, settle_seconds=0
    )
    assert result.skipped_concurrent
    assert set(store.query("SELECT scored_until FROM detector_state")["scored_until"]) == {
        START + timedelta(minutes=29)
    }


def test_detect_is_a_worker_job_after_rollup_with_a_configurable_interval() -> None:
    names = [j.name for j in JOBS]
    assert names.index("detect") == names.index("rollup") + 1
    job = JOBS[names.index("detect")]
    assert job.interval_seconds(GatewayConfig(path="x")) == 60.0
    config = parse_gateway_config({"worker": {"detect_interval_seconds": 15}}, "g.toml")
    assert job.interval_seconds(config) == 15.0
    with pytest.raises(
        ConfigError, match=r"g.toml: worker.detect_interval_seconds: 0 is out of range"
    ):
        parse_gateway_config({"worker": {"detect_interval_seconds": 0}}, "g.toml")


class EchoDetector:
    """Scores are the values themselves (seed 0 requests so only latency scores): lets a
    test script exact scores, including the
    repeats suite.detect holds back one step under the threshold."""

    threshold = 0.5

    def extend(self, timestamps: np.ndarray, values: np.ndarray) -> np.ndarray:
        return np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0)


ECHO = DetectorKit("echo", EchoDetector, lambda d: b"", lambda d, b: d)
HELD = float(np.nextafter(0.5, 0.0))


def test_repeats_the_detector_holds_back_keep_the_incident_open(tmp_path: Path) -> None:
    store = Store(tmp_path / "h")
    scores = [0.1] * 200
    scores[50] = 1.0  # the alarm
    scores[51:81] = [HELD] * 30  # still anomalous, alarm held back
    scores[170] = 0.9  # 75 min after the resolve: a new incident, not a reopen
    seed_metrics(store, "claims-api", START, requests=[0] * 200, latency=scores)
    run_detect(store, None, now=START + timedelta(minutes=200), detector=ECHO, settle_seconds=0)
    found = anomalies(store)
    assert found["ts"].to_list() == [START + timedelta(minutes=50), START + timedelta(minutes=170)]
    first, second = list_incidents(store).sort("id").iter_rows(named=True)
    assert first["last_seen_at"] == START + timedelta(minutes=80)
    assert first["resolved_at"] == START + timedelta(minutes=95)  # 15 quiet minutes later
    assert first["anomaly_count"] == 1  # held-back minutes refresh, they do not count
    assert (second["opened_at"], second["reopened_count"]) == (START + timedelta(minutes=170), 0)


def test_held_repeats_reopen_an_incident_resolved_while_the_episode_goes_on(
    tmp_path: Path,
) -> None:
    from suite.incidents import get_incident, resolve

    store = Store(tmp_path / "h")
    scores = [0.1] * 120
    scores[50] = 1.0
    scores[51:81] = [HELD] * 30  # the same episode, still anomalous
    seed_metrics(store, "claims-api", START, requests=[0] * 120, latency=scores)
    run_detect(store, None, now=START + timedelta(minutes=60), detector=ECHO, settle_seconds=0)
    (first,) = list_incidents(store)["id"].to_list()
    resolve(store, first, "ops", "looks fine to me")  # by hand, mid-episode
    run_detect(store, None, now=START + timedelta(minutes=120), detector=ECHO, settle_seconds=0)
    # The next anomalous minute brings the incident back, and it is counted there.
    inc = get_incident(store, first)
    assert (inc["reopened_count"], inc["last_seen_at"]) == (1, START + timedelta(minutes=80))
    assert inc["resolved_at"] == START + timedelta(minutes=95)
    found = anomalies(store)
    assert found["ts"].to_list() == [START + timedelta(minutes=50), START + timedelta(minutes=60)]
    assert set(found["incident_id"]) == {first}


def _quiet_service_with_a_fault(store: Store, *, blip: float, fault_at: int, minutes: int) -> None:
    """Eight hours of a steady service (p95 ~4.5 ms with a little noise, no errors), one
    latency blip at minute 480, then a two-minute fault at `fault_at`: half the requests
    fail and p95 is 125 ms; then normal again."""
    rng = np.random.default_rng(11)
    latency = 4.5 + rng.normal(0, 0.03, minutes)
    latency[480] = blip
    errors = np.zeros(minutes)
    errors[fault_at : fault_at + 2] = 0.5
    latency[fault_at : fault_at + 2] = 125.0
    seed_metrics(
        store,
        "claims-api",
        START,
        requests=np.round(noise(minutes, 480, 8, 12)),
        error_ratio=errors,
        latency=latency,
    )


def test_a_small_blip_raises_nothing_and_the_fault_after_it_one_incident(tmp_path: Path) -> None:
    store = Store(tmp_path / "h")
    fault = 490
    _quiet_service_with_a_fault(store, blip=4.5 * 1.17, fault_at=fault, minutes=540)
    # Live: the worker runs every few minutes, around the blip and through the fault.
    for minute in (470, 481, 485, 490, 491, 492, 495, 500, 510, 540):
        run_detect(store, None, now=START + timedelta(minutes=minute), settle_seconds=0)
    found = anomalies(store)
    in_fault = {START + timedelta(minutes=fault + k) for k in range(2)}
    assert set(found["ts"]) <= in_fault
    # The error ratio jumps from a flat 0: told in its very first minute, as is the p95.
    first = found.filter(pl.col("ts") == START + timedelta(minutes=fault))
    assert set(first["signal"]) == {"error_ratio", "latency_p95_ms"}
    incs = list_incidents(store)
    assert incs.height == 1
    inc = incs.row(0, named=True)
    assert inc["opened_at"] == START + timedelta(minutes=fault)
    assert set(inc["signals"]) == {"error_ratio", "latency_p95_ms"}
    # Quiet from the last anomalous minute: resolved one quiet period after the fault.
    assert inc["last_seen_at"] in in_fault
    assert inc["status"] == "resolved"
    assert inc["resolved_at"] == inc["last_seen_at"] + timedelta(minutes=15)


def test_a_false_alarm_does_not_hide_a_fault_ten_minutes_later(tmp_path: Path) -> None:
    from suite.incidents import IncidentPolicy

    store = Store(tmp_path / "h")
    fault = 490
    # A blip big enough to alarm (p95 x4 for one minute), and a short quiet period, as in
    # the run that found the bug: the blip's incident resolves before the fault.
    _quiet_service_with_a_fault(store, blip=18.0, fault_at=fault, minutes=540)
    policy = IncidentPolicy(quiet_period=timedelta(minutes=2))
    for minute in (485, 495, 540):
        run_detect(
            store, None, now=START + timedelta(minutes=minute), settle_seconds=0, policy=policy
        )
    found = anomalies(store)
    blip = found.filter(pl.col("ts") == START + timedelta(minutes=480))
    assert blip["signal"].to_list() == ["latency_p95_ms"]
    fault_rows = found.filter(pl.col("ts") >= START + timedelta(minutes=fault))
    assert set(fault_rows["signal"]) == {"error_ratio", "latency_p95_ms"}
    assert fault_rows["ts"].min() == START + timedelta(minutes=fault)
    assert set(fault_rows["ts"]) <= {START + timedelta(minutes=fault + k) for k in range(2)}
    # The blip's incident resolved 2 minutes after it; the fault has its own, quiet again
    # 2 minutes after its last minute.
    blip_inc, fault_inc = list_incidents(store).sort("opened_at").iter_rows(named=True)
    assert blip_inc["resolved_at"] == START + timedelta(minutes=480 + 2)
    assert fault_inc["opened_at"] == START + timedelta(minutes=fault)
    assert set(fault_inc["signals"]) == {"error_ratio", "latency_p95_ms"}
    assert fault_inc["resolved_at"] == START + timedelta(minutes=fault + 1 + 2)


def _real_detector_data(store: Store) -> tuple[datetime, int]:
    n, step = 3 * 1440, 2 * 1440 + 600
    day = 20 * np.sin(np.arange(n) * 2 * np.pi / 1440)
    latency = noise(n, 120, 4, 1) + day / 4
    latency[step:] += 250  # a slow release, and it stays
    seed_metrics(
        store,
        "claims-api",
        START,
        requests=noise(n, 300, 8, 2) + day,
        error_ratio=noise(n, 0.02, 0.002, 3),
        latency=latency,
    )
    seed_metrics(
        store,
        "quotes-api",
        START,
        requests=noise(n, 200, 6, 4) + day,
        latency=noise(n, 80, 3, 5),
        tokens=noise(n, 5000, 100, 6) + 10 * day,
    )
    return START + timedelta(minutes=step), n


def test_default_detector_sees_the_latency_step_at_its_minute(tmp_path: Path) -> None:
    store = Store(tmp_path / "h")
    step, n = _real_detector_data(store)
    result = run_detect(store, None, now=START + timedelta(minutes=n), settle_seconds=0)
    assert (result.series, result.points) == (7, 7 * n)
    incs = list_incidents(store)
    at_step = incs.filter(pl.col("opened_at") == step)
    assert at_step.select("service", "signal").rows() == [("claims-api", "latency_p95_ms")]
    states = store.query("SELECT detector, octet_length(state) AS size FROM detector_state")
    assert set(states["detector"]) == {"default"} and states["size"].min() > 0


def test_default_detector_live_runs_equal_one_replay(tmp_path: Path) -> None:
    whole, steps = Store(tmp_path / "whole"), Store(tmp_path / "steps")
    for store in (whole, steps):
        _, n = _real_detector_data(store)
    run_detect(whole, None, now=START + timedelta(minutes=n), settle_seconds=0)
    for minute in (400, 401, 1500, 3480, 3481, 3500, n):
        run_detect(steps, None, now=START + timedelta(minutes=minute), settle_seconds=0)
    one, many = anomalies(whole), anomalies(steps)
    assert one.height > 0
    assert one.select("ts", "service", "signal").equals(many.select("ts", "service", "signal"))
    assert np.allclose(one["score"].to_numpy(), many["score"].to_numpy())
    cols = "fingerprint, status, opened_at, resolved_at, last_seen_at, anomaly_count"
    sql = f"SELECT {cols} FROM incidents ORDER BY opened_at, fingerprint"
    assert whole.query(sql).equals(steps.query(sql))


def test_quiet_incidents_resolve_even_when_there_is_nothing_to_score(tmp_path: Path) -> None:
    from suite.incidents import get_incident, open_or_update_incident

    store = Store(tmp_path / "h")
    i = open_or_update_incident(store, service="a", signal="error_ratio", now=START)
    quiet = run_detect(store, None, now=START + timedelta(minutes=10), detector=ECHO)
    assert quiet.points == 0 and get_incident(store, i)["status"] == "open"
    run_detect(store, None, now=START + timedelta(minutes=16), detector=ECHO, settle_seconds=0)
    row = get_incident(store, i)
    assert (row["status"], row["resolved_at"]) == ("resolved", START + timedelta(minutes=15))


def test_incident_windows_come_from_the_incidents_config_table(tmp_path: Path) -> None:
    from suite.incidents import get_incident, incident_policy, open_or_update_incident

    config = parse_gateway_config(
        {"incidents": {"quiet_minutes": 30, "group_window_minutes": 2}}, "g.toml"
    )
    policy = incident_policy(config)
    assert (policy.quiet_period, policy.group_window, policy.reopen_window) == (
        timedelta(minutes=30),
        timedelta(minutes=2),
        timedelta(minutes=60),
    )
    store = Store(tmp_path / "h")
    i = open_or_update_incident(store, service="a", signal="error_ratio", now=START)
    run_detect(store, config, now=START + timedelta(minutes=20), detector=ECHO, settle_seconds=0)
    assert get_incident(store, i)["status"] == "open"  # 15 quiet minutes are not enough here
    run_detect(store, config, now=START + timedelta(minutes=31), detector=ECHO, settle_seconds=0)
    assert get_incident(store, i)["resolved_at"] == START + timedelta(minutes=30)
    with pytest.raises(ConfigError, match=r"g.toml: incidents.quiet_minutes: -1 is out of range"):
        parse_gateway_config({"incidents": {"quiet_minutes": -1}}, "g.toml")
    with pytest.raises(ConfigError, match=r"g.toml: incidents.quiet: unknown key"):
        parse_gateway_config({"incidents": {"quiet": 5}}, "g.toml")


def test_a_restarted_worker_continues_from_the_saved_state_without_duplicates(
    tmp_path: Path,
) -> None:
    whole, steps = Store(tmp_path / "whole"), Store(tmp_path / "steps")
    for store in (whole, steps):
        _, n = _real_detector_data(store)
    run_detect(whole, None, now=START + timedelta(minutes=n), settle_seconds=0)
    # Runs a few minutes apart save no state; each restart (an empty process) goes back to
    # the saved state and scores those minutes again without recording them twice.
    for minute in (400, 405, 411, 3480, 3484, 3490, 3510, n):
        clear_live_detectors()
        run_detect(steps, None, now=START + timedelta(minutes=minute), settle_seconds=0)
        if minute == 411:
            states = steps.query("SELECT DISTINCT last_ts, scored_until FROM detector_state")
            assert states.rows() == [
                (START + timedelta(minutes=399), START + timedelta(minutes=410))
            ]
    one, many = anomalies(whole), anomalies(steps)
    assert one.height > 0
    assert many.select("ts", "service", "signal").is_duplicated().sum() == 0
    assert one.select("ts", "service", "signal").equals(many.select("ts", "service", "signal"))
    assert np.allclose(one["score"].to_numpy(), many["score"].to_numpy())
    cols = "fingerprint, status, opened_at, resolved_at, last_seen_at, anomaly_count"
    sql = f"SELECT {cols} FROM incidents ORDER BY opened_at, fingerprint"
    assert whole.query(sql).equals(steps.query(sql))
