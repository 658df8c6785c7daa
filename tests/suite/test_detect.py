from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from suite.detect import (
    DEFAULT_DETECTOR,
    Detector,
    DetectorError,
    detector_names,
    dump_state,
    get_detector,
    get_multi_detector,
    load_state,
    multi_detector_names,
    register_detector,
    score_many,
)
from suite.detect.base import z_to_score

MINUTE = np.timedelta64(60, "s")
START = np.datetime64("2026-03-02T00:00:00", "ns")
DAYS = 4
N = DAYS * 1440
ONSET = int(3.5 * 1440)  # anomalies start in the afternoon of the fourth day


def seasonal_series(seed: int = 1, n: int = N, noise: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Minute data: a daily cycle (amplitude 10) plus Gaussian noise, like a request rate."""
    rng = np.random.default_rng(seed)
    t = START + np.arange(n) * MINUTE
    minutes = np.arange(n) % 1440
    v = 100 + 10 * np.sin(2 * np.pi * minutes / 1440) + rng.normal(0, noise, n)
    return t, v


def alarms(det: Detector, t: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.flatnonzero(det.score_series(t, v) >= det.threshold)


def with_anomaly(kind: str, seasonal: bool = True) -> np.ndarray:
    _, v = seasonal_series()
    v = v.copy()
    if not seasonal:  # the same noise around a flat level
        v -= 10 * np.sin(2 * np.pi * (np.arange(N) % 1440) / 1440)
    k = np.arange(N - ONSET)
    if kind == "step":  # latency step after a deploy
        v[ONSET:] += 8
    elif kind == "spike":  # one huge outlier
        v[ONSET] += 40
    elif kind == "ramp":  # latency creep, 0.1 per minute (6 sigma an hour)
        v[ONSET:] += 0.1 * k
    elif kind == "flatline":  # exporter stuck on its last value
        v[ONSET:] = v[ONSET - 1]
    elif kind == "variance":  # jitter: noise x6
        v[ONSET:] += np.random.default_rng(7).normal(0, 6, N - ONSET)
    elif kind == "drop":  # traffic drop to a third
        v[ONSET:] = v[ONSET:] / 3
    return v


UNIVARIATE_ALARMS = {
    "default": ["step", "spike", "ramp", "flatline", "variance", "drop"],
    "seasonal": ["step", "spike", "ramp", "variance", "drop"],
    "level_shift": ["step", "ramp", "drop"],
}
# The EWMA chart has no seasonal baseline: it is meant for series without a daily cycle.
FLAT_LEVEL = {"level_shift"}


@pytest.mark.parametrize(
    ("name", "kind"), [(n, k) for n, kinds in UNIVARIATE_ALARMS.items() for k in kinds]
)
def test_detector_alarms_soon_after_the_anomaly_and_not_before(name: str, kind: str) -> None:
    t, _ = seasonal_series()
    v = with_anomaly(kind, seasonal=name not in FLAT_LEVEL)
    det = get_detector(name)
    found = alarms(det, t, v)
    assert len(found), f"{name} missed the {kind}"
    assert found[0] >= ONSET, f"{name} alarmed at {found[0]} before the {kind} at {ONSET}"
    late = 300 if kind == "ramp" else 60
    assert found[0] <= ONSET + late, f"{name} took {found[0] - ONSET} min to see the {kind}"


@pytest.mark.parametrize("name", sorted(UNIVARIATE_ALARMS))
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_pure_seasonal_noise_does_not_alarm(name: str, seed: int) -> None:
    t, v = seasonal_series(seed)
    if name in FLAT_LEVEL:
        v = v - 10 * np.sin(2 * np.pi * (np.arange(N) % 1440) / 1440)
    assert alarms(get_detector(name), t, v).tolist() == []


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_default_ignores_short_single_blips(seed: int) -> None:
    t, v = seasonal_series(seed)
    v = v.copy()
    v[ONSET] += 5  # one 5-sigma minute
    v[ONSET + 300 : ONSET + 302] += 4  # two 4-sigma minutes
    assert alarms(get_detector("default"), t, v).tolist() == []


def test_default_alarms_once_per_incident() -> None:
    t, _ = seasonal_series()
    for kind in ("step", "spike", "drop", "variance"):
        found = alarms(get_detector("default"), t, with_anomaly(kind))
        assert len(found) == 1, (kind, found)


HELD = float(np.nextafter(0.5, 0.0))


def quiet_minutes(
    n: int = 600, level: float = 4.5, sd: float = 0.03
) -> tuple[np.ndarray, np.ndarray]:
    """Minutes of a steady, low-variance metric (a p95 of ~4.5 ms)."""
    v = level + np.random.default_rng(21).normal(0, sd, n)
    return START + np.arange(n) * MINUTE, v


@pytest.mark.parametrize("rise", [1.1, 1.17, 1.2])
def test_default_needs_a_minimum_effect_in_a_quiet_series(rise: float) -> None:
    t, v = quiet_minutes()
    v[450] = 4.5 * rise  # a new extreme by many of its tiny sigmas, but only 10-20%
    det = get_detector("default")
    scores = det.score_series(t, v)
    assert np.all(scores < HELD), np.flatnonzero(scores >= HELD)
    v[450] = 4.5 * 3  # a real spike
    assert alarms(det, t, v).tolist() == [450]
    # An absolute floor in the series' units (the detect job's per-signal min_abs).
    v[450:460] = 4.5 * 1.4
    assert 450 in alarms(det, t, v)
    assert alarms(get_detector("default", min_abs=2.0), t, v).tolist() == []


@pytest.mark.parametrize("before", ["zero", "constant", "near_constant"])
def test_default_alarms_at_once_on_a_jump_from_a_flat_baseline(before: str) -> None:
    n = 600
    t = START + np.arange(n) * MINUTE
    rng = np.random.default_rng(3)
    v = {
        "zero": np.zeros(n),
        "constant": np.full(n, 0.02),
        "near_constant": 0.02 + rng.normal(0, 0.0005, n),
    }[before]
    v[500:510] = 0.5  # error ratio 0 -> 50%
    det = get_detector("default")
    assert alarms(det, t, v).tolist() == [500]
    scores = det.score_series(t, v)
    assert np.all(scores[501:510] == HELD)  # the episode goes on: held, not told again
    assert np.all(scores[510:] < HELD)  # ... and ends with the fault


def test_default_anomaly_ends_when_the_values_are_back() -> None:
    t, v = quiet_minutes()
    v[450:452] = 125.0  # a two-minute fault: the EWMA baseline is dragged up by it
    scores = get_detector("default").score_series(t, v)
    assert scores[450] >= 0.5 and scores[451] == HELD
    # Back to ~4.5 ms: far from the dragged forecast, but not from the baseline before.
    assert np.all(scores[452:] < HELD)
    # Live, one minute at a time through the fault, from a saved state: the same.
    first = get_detector("default")
    first.extend(t[:400], v[:400])
    live = get_detector("default")
    live.set_state(load_state(dump_state(first.get_state())))
    got = np.array([live.update(ts, x) for ts, x in zip(t[400:], v[400:], strict=True)])
    np.testing.assert_allclose(got, scores[400:], rtol=1e-9, atol=1e-9)


def test_a_false_alarm_never_blinds_the_default_to_a_larger_anomaly() -> None:
    t, v = quiet_minutes()
    v[450] = 18.0  # a one-minute spike: alarms
    v[460:462] = 125.0  # ten minutes later, a real fault
    v[560] = 300.0  # and later again, larger still
    det = get_detector("default")
    assert alarms(det, t, v).tolist() == [450, 460, 560]
    # A fault that goes on is one episode, held (not told again) while it deviates.
    v2 = v.copy()
    v2[450:520] = 125.0 + np.random.default_rng(5).normal(0, 3, 70)
    scores = det.score_series(t, v2)
    assert alarms(det, t, v2)[0] == 450 and np.sum(scores[450:520] >= 0.5) == 1
    assert np.all(scores[451:465] == HELD)


def test_default_scores_under_the_threshold_where_the_point_itself_is_normal() -> None:
    t, _ = seasonal_series()
    v = with_anomaly("variance")
    det = get_detector("default")
    scores = det.score_series(t, v)
    # Jitter: the likelihood stays high for the whole stretch, but only points that are
    # far (3 sigmas of the usual noise) from the daily curve themselves reach it.
    truth = 100 + 10 * np.sin(2 * np.pi * (np.arange(N) % 1440) / 1440)
    flagged = scores >= HELD
    assert flagged[ONSET:].sum() > 0 and not flagged[:ONSET].any()
    assert np.all(np.abs(v - truth)[flagged] > 3.0)


def test_default_sees_an_error_burst_and_runaway_tokens() -> None:
    rng = np.random.default_rng(4)
    t = START + np.arange(N) * MINUTE
    errors = rng.binomial(200, 0.01, N) / 200  # error ratio around 1%
    errors[ONSET : ONSET + 15] = rng.binomial(200, 0.2, 15) / 200
    found = alarms(get_detector("default"), t, errors)
    assert len(found) and ONSET <= found[0] <= ONSET + 15
    # Tokens per minute: ~50 calls a minute, each lognormal (long prompts are rare).
    calls = rng.poisson(50, N)
    tokens = np.array([rng.lognormal(6, 0.8, c).sum() for c in calls])
    tokens[ONSET:] *= np.linspace(1, 6, N - ONSET)  # an agent loop burning tokens
    found = alarms(get_detector("default"), t, tokens)
    assert np.any((found >= ONSET) & (found <= ONSET + 120))
    # Sums of lognormal calls are skewed: at most one record minute in 3.5 days alarms.
    assert np.sum(found < ONSET) <= 1


def test_scores_are_in_unit_interval_and_missing_values_score_zero() -> None:
    t, v = seasonal_series()
    v = with_anomaly("spike")
    v[100:130] = np.nan
    for name in detector_names():
        s = get_detector(name).score_series(t, v)
        assert s.shape == v.shape and np.all((s >= 0) & (s <= 1)), name
        assert np.all(s[100:130] == 0), name


@pytest.mark.parametrize("name", detector_names())
def test_every_detector_is_causal(name: str) -> None:
    t, _ = seasonal_series()
    v = with_anomaly("step")
    full = get_detector(name).score_series(t, v)
    for k in (1, 2, 500, ONSET + 30):
        cut = get_detector(name).score_series(t[:k], v[:k])
        np.testing.assert_array_equal(cut, full[:k], err_msg=f"{name} cut at {k}")


def _service_signals() -> tuple[np.ndarray, np.ndarray]:
    """Rate, error ratio, p95 latency and tokens of one service; at 2500 errors and
    latency rise together for ten minutes."""
    rng = np.random.default_rng(5)
    n = 3000
    t = START + np.arange(n) * MINUTE
    rate = rng.normal(100, 5, n)
    x = np.column_stack(
        [rate, rng.normal(0.01, 0.002, n), 200 + rate + rng.normal(0, 5, n), 50 * rate]
    )
    x[2500:2510, 1] = 0.05
    x[2500:2510, 2] += 150
    x[100, 0] = np.nan  # a missing minute
    return t, x


@pytest.mark.parametrize("name", multi_detector_names())
def test_multivariate_detector_is_causal_and_continues_from_state(name: str) -> None:
    t, x = _service_signals()
    full = get_multi_detector(name).score_frame(t, x)
    assert np.all((full >= 0) & (full <= 1)) and full[100] == 0
    for k in (10, 1200, 2505):
        cut = get_multi_detector(name).score_frame(t[:k], x[:k])
        np.testing.assert_array_equal(cut, full[:k])
    live = get_multi_detector(name)
    got = [live.extend_frame(t[:1700], x[:1700])]
    again = get_multi_detector(name)
    again.set_state(live.get_state())
    got += [again.extend_frame(t[1700:2600], x[1700:2600])]
    got += [np.array([again.update(ts, row) for ts, row in zip(t[2600:], x[2600:], strict=True)])]
    np.testing.assert_allclose(np.concatenate(got), full)


def test_robust_covariance_sees_a_joint_anomaly_and_is_quiet_otherwise() -> None:
    t, x = _service_signals()
    det = get_multi_detector("robust_covariance")
    scores = det.score_frame(t, x)
    assert np.all(scores[2500:2510] >= det.threshold)
    assert np.mean(scores[:2500] >= det.threshold) < 0.005


def test_multivariate_rejects_a_1d_input() -> None:
    with pytest.raises(DetectorError, match="2-D"):
        get_multi_detector().score_frame(START + np.arange(3) * MINUTE, [1.0, 2.0, 3.0])


def _irregular_series() -> tuple[np.ndarray, np.ndarray]:
    """Five-minute points with gaps, a clock step back and missing values: the awkward case."""
    rng = np.random.default_rng(9)
    n = 2400
    steps = rng.choice([300, 300, 300, 600, 60], n).astype("timedelta64[s]")
    t = START + np.cumsum(steps).astype("timedelta64[ns]")
    t[1500] = t[1499] - np.timedelta64(600, "s")
    v = 50 + 5 * np.sin(np.arange(n) / 40) + rng.normal(0, 1, n)
    v[1800:] += 12
    v[[10, 700, 701]] = np.nan
    return t, v


@pytest.mark.parametrize("name", detector_names())
def test_update_equals_score_series(name: str) -> None:
    t, v = _irregular_series()
    replay = get_detector(name).score_series(t, v)
    live = get_detector(name)
    got = np.array([live.update(ts, x) for ts, x in zip(t, v, strict=True)])
    np.testing.assert_allclose(got, replay, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", detector_names())
def test_saved_state_continues_identically(name: str) -> None:
    t, v = _irregular_series()
    replay = get_detector(name).score_series(t, v)
    first = get_detector(name)
    part1 = first.extend(t[:1000], v[:1000])
    blob = dump_state(first.get_state())  # what a worker job stores between runs
    second = get_detector(name)
    second.set_state(load_state(blob))
    part2 = second.extend(t[1000:1750], v[1000:1750])
    part3 = second.extend(t[1750:], v[1750:])
    np.testing.assert_allclose(np.concatenate([part1, part2, part3]), replay, rtol=1e-9, atol=1e-9)
    # score_series starts afresh and leaves the state alone.
    np.testing.assert_array_equal(second.score_series(t, v), replay)


def test_state_of_one_detector_is_refused_by_another() -> None:
    state = get_detector("seasonal").get_state()
    with pytest.raises(DetectorError, match="belongs to detector 'seasonal'"):
        get_detector("default").set_state(state)


def test_registry_accepts_a_custom_detector() -> None:
    @register_detector("test_abs_value")
    class AbsValue(Detector):
        defaults: dict[str, Any] = {"threshold": 0.5, "half": 10.0}

        def _score(self, ts_ns: np.ndarray, values: np.ndarray, carry: dict[str, Any]):  # type: ignore[no-untyped-def]
            return z_to_score(np.abs(values), self.params["half"]), carry

    assert "test_abs_value" in detector_names()
    det = get_detector("test_abs_value", half=1.0)
    assert isinstance(det, AbsValue) and det.params["half"] == 1.0
    s = det.score_series(START + np.arange(3) * MINUTE, [0.0, 1.0, np.nan])
    np.testing.assert_allclose(s, [0.0, 0.5, 0.0])
    assert det.update(START, 3.0) == pytest.approx(0.75)


def test_registry_function_form_and_errors() -> None:
    class Half(Detector):
        defaults: dict[str, Any] = {}

        def _score(self, ts_ns: np.ndarray, values: np.ndarray, carry: dict[str, Any]):  # type: ignore[no-untyped-def]
            return np.full(len(values), 0.5), carry

    register_detector("test_half", Half)
    assert get_detector("test_half").score_series(
        START + np.arange(2) * MINUTE, [1, 2]
    ).tolist() == [0.5, 0.5]
    assert DEFAULT_DETECTOR == "default" and DEFAULT_DETECTOR in detector_names()
    with pytest.raises(DetectorError, match="unknown detector 'nope'; known: .*default"):
        get_detector("nope")
    with pytest.raises(DetectorError, match="unknown parameter"):
        get_detector("default", colour="red")
    with pytest.raises(DetectorError, match="gate_z must be > 0"):
        get_detector("default", gate_z=0)
    with pytest.raises(DetectorError, match="jump_window must be <= extreme_window"):
        get_detector("default", jump_window=6000)
    with pytest.raises(DetectorError, match="fast_span < slow_span"):
        get_detector("level_shift", fast_span=500)
    with pytest.raises(DetectorError, match="not a Detector subclass"):
        register_detector("bad", object)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", detector_names())
def test_empty_and_all_missing_series_score_nothing(name: str) -> None:
    det = get_detector(name)
    assert det.score_series(np.array([], dtype="datetime64[ns]"), []).shape == (0,)
    assert det.extend(START + np.arange(3) * MINUTE, [np.nan] * 3).tolist() == [0.0, 0.0, 0.0]
    assert det.update(START + 3 * MINUTE, 1.0) == 0.0


def test_mismatched_inputs_are_refused() -> None:
    with pytest.raises(DetectorError, match="same length"):
        get_detector().score_series(START + np.arange(3) * MINUTE, [1.0, 2.0])


def test_score_many_matches_one_by_one_in_order() -> None:
    t, _ = seasonal_series()
    series = [(t, with_anomaly(kind)) for kind in ("step", "spike", "drop")]
    got = score_many(series, "default", workers=2)
    for (ts, v), s in zip(series, got, strict=True):
        np.testing.assert_array_equal(s, get_detector("default").score_series(ts, v))
    with pytest.raises(DetectorError, match="unknown detector"):
        score_many(series, "nope")
