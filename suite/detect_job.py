"""The detect job: score every service's minute series in `metrics_1m` with the default
detector, continuing from each series' saved state, and turn anomalies into incidents.

It never rescores a minute it already scored and never holds the write lock while scoring:
one read, the scoring outside any lock, then one short write transaction.

Series are per service (dimension 'service'): request_rate (requests per minute; a missing
minute after traffic counts as 0, so a traffic drop is seen), error_ratio, latency_p95_ms
and tokens (prompt + completion, only for services that report them); a missing minute is
NaN for all but request_rate. Only minutes that are complete are scored: before
`now - settle_seconds`, rounded down to the minute, since the newest minute's requests may
still be on their way through the spool.

A minute is anomalous when the detector flags it: at or over its threshold (an alarm: an
`anomalies` row, opens or refreshes an incident), or a repeat it holds back within the
same anomalous episode (score one float step under the threshold: it refreshes the
incident of its signal without counting, and opens or reopens one when there is none, e.g.
after a resolve by hand). An incident's quiet period counts from its last anomalous minute.
Signals get a minimum absolute effect (SIGNAL_PARAMS) where the detector accepts one.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple, Protocol

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from suite.config import GatewayConfig
from suite.incidents import (
    IncidentBook,
    IncidentPolicy,
    IncidentUpdate,
    Observation,
    incident_policy,
    naive_utc,
    utc_now,
)
from suite.store import Store

if TYPE_CHECKING:
    import duckdb

log = logging.getLogger("aiops.detect")

SIGNALS = ("request_rate", "error_ratio", "latency_p95_ms", "tokens")
DIMENSION = "service"
KEY = ""
# Requests of the newest minute can still be in the spool (flush 1 s, ingest 2 s, rollup
# 10 s by default): it is scored once this much time has passed after the minute ended.
DEFAULT_SETTLE_SECONDS = 30.0
_MINUTE_US = 60_000_000
_PARALLEL_POINTS = 50_000  # below this a thread pool costs more than it saves
# The smallest change worth an incident, in each signal's own units: without it a series
# that sat at exactly 0 (errors) or barely moved alarms on any wobble.
SIGNAL_PARAMS: dict[str, dict[str, float]] = {
    "error_ratio": {"min_abs": 0.01},  # one percentage point of errors
    "latency_p95_ms": {"min_abs": 2.0},  # milliseconds
}


class SeriesDetector(Protocol):
    """What the job needs from a detector of suite.detect (one instance per series):
    `extend` scores the next points continuing from the detector's state."""

    threshold: float

    def extend(self, timestamps: np.ndarray, values: np.ndarray) -> np.ndarray: ...


class SeriesKey(NamedTuple):
    service: str
    signal: str


@dataclass
class DetectResult:
    series: int = 0
    points: int = 0
    anomalies: int = 0
    incidents: list[int] = field(default_factory=list)
    skipped_concurrent: bool = False
    read_seconds: float = 0.0
    score_seconds: float = 0.0
    write_seconds: float = 0.0
    seconds: float = 0.0

    def __str__(self) -> str:
        if self.skipped_concurrent:
            return "skipped: another detect run wrote first"
        return (
            f"{self.points} points in {self.series} series scored, {self.anomalies} anomalies, "
            f"{len(set(self.incidents))} incidents touched in {self.seconds:.2f} s"
        )


class DetectorKit(NamedTuple):
    """How the job makes a detector for one series and saves and restores its state;
    `make_for_signal`, when given, makes one with that signal's parameters."""

    name: str
    make: Callable[[], SeriesDetector]
    save_state: Callable[[SeriesDetector], bytes]
    restore_state: Callable[[SeriesDetector, bytes], SeriesDetector]
    make_for_signal: Callable[[str], SeriesDetector] | None = None

    def make_detector(self, signal: str) -> SeriesDetector:
        return self.make_for_signal(signal) if self.make_for_signal else self.make()


def detector_kit(name: str | None = None) -> DetectorKit:
    """The kit for a detector of suite.detect (default: its DEFAULT_DETECTOR), imported
    late so commands that never detect do not pay for the numerical imports."""
    from suite.detect import DEFAULT_DETECTOR, Detector, dump_state, get_detector, load_state

    chosen = name or DEFAULT_DETECTOR
    accepted = get_detector(chosen).params  # an unknown name fails now, with its message

    # zlib level 1: a state holds weeks of history (~400 KB); compressed to ~40% it is
    # cheaper to compress in the scoring threads than to write to DuckDB every run.
    def save(det: SeriesDetector) -> bytes:
        assert isinstance(det, Detector)
        return zlib.compress(dump_state(det.get_state()), 1)

    def restore(det: SeriesDetector, blob: bytes) -> SeriesDetector:
        assert isinstance(det, Detector)
        det.set_state(load_state(zlib.decompress(blob)))
        return det

    def make_for_signal(signal: str) -> SeriesDetector:
        own = {k: v for k, v in SIGNAL_PARAMS.get(signal, {}).items() if k in accepted}
        return get_detector(chosen, **own)

    return DetectorKit(chosen, lambda: get_detector(chosen), save, restore, make_for_signal)


def minute_floor(ts: datetime) -> datetime:
    return ts.replace(second=0, microsecond=0)


# -- live detectors ----------------------------------------------------------------------------
# A saved state holds weeks of history: loading and saving it costs ~8x the scoring of a
# minute. So the worker keeps each series' detector in memory between runs and writes its
# state only every STATE_PERSIST_INTERVAL; `scored_until` records which minutes already
# have their anomalies. A fresh process restores the saved state and scores again from
# there, dropping what was recorded: the scores are the same (causal, deterministic), so
# nothing is lost or counted twice.
STATE_PERSIST_INTERVAL = timedelta(minutes=15)


@dataclass
class _Live:
    last_ts: datetime  # the minute the saved state in the store covers
    scored_until: datetime  # the minute this detector has seen, as recorded in the store
    detector: SeriesDetector


_LIVE: dict[tuple[str, str, SeriesKey], _Live] = {}
_LIVE_LOCK = threading.Lock()


def clear_live_detectors() -> None:
    """Forget the in-memory detectors: the next run restores them from the store."""
    with _LIVE_LOCK:
        _LIVE.clear()


# -- reading ----------------------------------------------------------------------------------
class _Saved(NamedTuple):
    last_ts: datetime
    scored_until: datetime


_SAVED_SQL = """
SELECT service, signal, last_ts, scored_until FROM detector_state
WHERE detector = ? AND dimension = 'service' AND key = ''
"""

_BLOBS_SQL = """
SELECT service, signal, state FROM detector_state
WHERE detector = $detector AND dimension = 'service' AND key = ''
  AND list_contains($series, service || chr(31) || signal)
"""

# One query for every service, with no join and no sort (either one doubles the read of a
# month): minutes after the oldest position a series continues from, plus all of any
# service without state yet. Rows before a series' own position are dropped in its grid.
_POINTS_SQL = """
SELECT service, epoch_us(minute) AS minute_us, requests::DOUBLE AS request_rate,
       error_ratio, latency_p95_ms,
       CASE WHEN prompt_tokens IS NULL AND completion_tokens IS NULL THEN NULL
            ELSE coalesce(prompt_tokens, 0) + coalesce(completion_tokens, 0) END::DOUBLE AS tokens
FROM metrics_1m
WHERE dimension = 'service' AND key = '' AND minute < $horizon
  AND (minute > $since OR NOT list_contains($known, service))
"""


@dataclass
class _Snapshot:
    saved: dict[SeriesKey, _Saved]
    live: dict[SeriesKey, _Live]  # taken out of _LIVE; put back after a successful write
    blobs: dict[SeriesKey, bytes]  # saved states of the series with no live detector
    points: pa.Table
    quiet_incidents: int  # active detector incidents due to auto-resolve by the horizon
    unused_live: list[tuple[SeriesKey, _Live]] = field(default_factory=list)


def _read(store: Store, detector: str, horizon: datetime, policy: IncidentPolicy) -> _Snapshot:
    with store.read() as con:
        ((quiet,),) = con.execute(
            "SELECT count(*) FROM incidents WHERE status IN ('open', 'acknowledged') "
            "AND list_contains(?, source) AND last_seen_at <= ?",
            [list(policy.auto_resolve_sources), horizon - policy.quiet_period],
        ).fetchall()
        saved = {
            SeriesKey(s, g): _Saved(ts, until)
            for s, g, ts, until in con.execute(_SAVED_SQL, [detector]).fetchall()
        }
        live: dict[SeriesKey, _Live] = {}
        with _LIVE_LOCK:
            for key, row in saved.items():
                entry = _LIVE.pop((str(store.path), detector, key), None)
                if entry and (entry.last_ts, entry.scored_until) == row:
                    live[key] = entry
        cold = [f"{k.service}\x1f{k.signal}" for k in saved if k not in live]
        blobs = {}
        if cold:
            rows = con.execute(_BLOBS_SQL, {"detector": detector, "series": cold}).fetchall()
            blobs = {SeriesKey(s, g): blob for s, g, blob in rows if blob is not None}
        since = min(
            (live[k].scored_until if k in live else row.last_ts for k, row in saved.items()),
            default=horizon,
        )
        known = sorted({k.service for k in saved})
        points = con.sql(
            _POINTS_SQL, params={"horizon": horizon, "since": since, "known": known}
        ).to_arrow_table()
    return _Snapshot(saved, live, blobs, points, int(quiet))


# -- scoring ----------------------------------------------------------------------------------
@dataclass
class _Scored:
    key: SeriesKey
    detector: SeriesDetector
    last_ts: datetime  # of the state in the store after this run
    scored_until: datetime
    state: bytes | None  # a new saved state, or None to keep the stored one
    points: int
    anomaly_ts_us: np.ndarray
    anomaly_values: np.ndarray
    anomaly_scores: np.ndarray
    threshold: float
    held_ts_us: np.ndarray
    held_values: np.ndarray
    held_scores: np.ndarray


def _service_columns(points: pa.Table) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
    """Per service: its minutes (epoch µs, in no particular order) and one float array per
    signal (NaN = null). Grouped by a stable sort of dictionary codes, not by string."""
    if points.num_rows == 0:
        return
    encoded = pc.dictionary_encode(points.column("service")).combine_chunks()
    codes = encoded.indices.to_numpy()
    names = encoded.dictionary.to_pylist()
    order = np.argsort(codes.astype(np.int16 if len(names) < 2**15 else np.int32), kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=len(names)))])
    df = pl.from_arrow(points.drop_columns(["service"]))
    assert isinstance(df, pl.DataFrame)
    # Float columns come out with NaN for null.
    columns = {c: df[c].to_numpy()[order] for c in ("minute_us", *SIGNALS)}
    for i, name in enumerate(names):
        part = slice(int(bounds[i]), int(bounds[i + 1]))
        yield str(name), {c: v[part] for c, v in columns.items()}


def _grid(
    minute_us: np.ndarray, values: np.ndarray, start_us: int, end_us: int, fill: float
) -> tuple[np.ndarray, np.ndarray]:
    """Every minute in [start, end) with the known values placed and `fill` elsewhere."""
    n = (end_us - start_us) // _MINUTE_US
    grid = np.full(n, fill, dtype=np.float64)
    keep = (minute_us >= start_us) & (minute_us < end_us)
    grid[(minute_us[keep] - start_us) // _MINUTE_US] = values[keep]
    ts = (start_us + np.arange(n, dtype=np.int64) * _MINUTE_US).astype("datetime64[us]")
    return ts, grid


class _Task(NamedTuple):
    key: SeriesKey
    saved: _Saved | None
    live: _Live | None
    blob: bytes | None
    ts: np.ndarray
    values: np.ndarray


def _tasks(snapshot: _Snapshot, end_us: int) -> list[_Task]:
    """One task per series with minutes to score: its grid from where its detector stands
    (live, saved, or before its first value) up to the horizon."""
    services = dict(_service_columns(snapshot.points))
    tasks: list[_Task] = []
    empty = np.empty(0, dtype=np.float64)
    for service in sorted(set(services) | {k.service for k in snapshot.saved}):
        cols = services.get(service)
        minute_us = cols["minute_us"] if cols else np.empty(0, dtype=np.int64)
        for signal in SIGNALS:
            key = SeriesKey(service, signal)
            saved, live = snapshot.saved.get(key), snapshot.live.get(key)
            blob = snapshot.blobs.get(key)
            values = cols[signal] if cols else empty
            if live is not None:
                start_us = _epoch_us(live.scored_until) + _MINUTE_US
            elif saved is not None and blob is not None:
                start_us = _epoch_us(saved.last_ts) + _MINUTE_US
            else:
                saved = None  # no usable state: start this series afresh
                present = ~np.isnan(values)
                if not present.any():
                    continue  # a series starts at its first value (tokens: LLM services)
                start_us = int(minute_us[present].min())
            if start_us >= end_us:
                if live is not None:  # nothing new: keep it for the next run
                    snapshot.unused_live.append((key, live))
                continue
            fill = 0.0 if signal == "request_rate" else np.nan
            ts, grid = _grid(minute_us, values, start_us, end_us, fill)
            tasks.append(_Task(key, saved, live, blob, ts, grid))
    return tasks


def _score_one(task: _Task, kit: DetectorKit, end: datetime) -> _Scored:
    if task.live is not None:
        det = task.live.detector
    else:
        det = kit.make_detector(task.key.signal)
        if task.blob is not None:
            det = kit.restore_state(det, task.blob)
    scores = np.nan_to_num(np.asarray(det.extend(task.ts, task.values), dtype=np.float64), nan=0.0)
    threshold = float(det.threshold)
    hit = scores >= threshold
    # suite.detect raises one alarm per anomalous episode and scores the episode's later
    # anomalous minutes one step under the threshold: they are anomalous too.
    held = (scores == np.nextafter(threshold, 0.0)) & ~hit
    if task.live is None and task.saved is not None:
        # Restored from an older saved state: minutes up to scored_until are on record.
        fresh = task.ts > np.datetime64(task.saved.scored_until, "us")
        hit, held = hit & fresh, held & fresh
    persist = task.saved is None or end - task.saved.last_ts >= STATE_PERSIST_INTERVAL
    return _Scored(
        key=task.key,
        detector=det,
        last_ts=end if persist or task.saved is None else task.saved.last_ts,
        scored_until=end,
        state=kit.save_state(det) if persist else None,
        points=len(task.values),
        anomaly_ts_us=task.ts[hit].astype(np.int64),
        anomaly_values=task.values[hit],
        anomaly_scores=scores[hit],
        threshold=threshold,
        held_ts_us=task.ts[held].astype(np.int64),
        held_values=task.values[held],
        held_scores=scores[held],
    )


def _score_all(snapshot: _Snapshot, kit: DetectorKit, horizon: datetime) -> list[_Scored]:
    end_us = _epoch_us(horizon)
    tasks = _tasks(snapshot, end_us)
    end = _from_epoch_us(end_us - _MINUTE_US)
    workers = min(len(tasks), os.cpu_count() or 1)
    if workers <= 1 or sum(len(t.values) for t in tasks) < _PARALLEL_POINTS:
        return [_score_one(t, kit, end) for t in tasks]
    # Series are independent and the detectors spend their time in numpy, which releases
    # the GIL: threads use every core without copying the series to other processes.
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="aiops-detect") as pool:
        return list(pool.map(lambda t: _score_one(t, kit, end), tasks))


def _epoch_us(ts: datetime) -> int:
    return int((ts - datetime(1970, 1, 1)) // timedelta(microseconds=1))


def _from_epoch_us(us: int) -> datetime:
    return datetime(1970, 1, 1) + timedelta(microseconds=int(us))


# -- writing ----------------------------------------------------------------------------------
_ANOMALY_SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("ts", pa.timestamp("us")),
        ("service", pa.string()),
        ("signal", pa.string()),
        ("dimension", pa.string()),
        ("key", pa.string()),
        ("value", pa.float64()),
        ("score", pa.float64()),
        ("detector", pa.string()),
        ("threshold", pa.float64()),
        ("incident_id", pa.int64()),
        ("created_at", pa.timestamp("us")),
    ]
)
_STATE_SCHEMA = pa.schema(
    [
        ("service", pa.string()),
        ("signal", pa.string()),
        ("dimension", pa.string()),
        ("key", pa.string()),
        ("detector", pa.string()),
        ("last_ts", pa.timestamp("us")),
        ("scored_until", pa.timestamp("us")),
        ("state", pa.binary()),
        ("updated_at", pa.timestamp("us")),
    ]
)


def _anomalous_minutes(scored: list[_Scored]) -> pl.DataFrame:
    """Every anomalous minute of the run in time order, alarms before held repeats of the
    same minute (ties by service and signal, so one run and several incremental runs feed
    incidents in the same order)."""
    schema = {
        "ts_us": pl.Int64,
        "held": pl.Boolean,
        "service": pl.String,
        "signal": pl.String,
        "value": pl.Float64,
        "score": pl.Float64,
        "threshold": pl.Float64,
    }
    frames = [
        pl.DataFrame(
            {
                "ts_us": ts,
                "held": np.full(len(ts), held),
                "service": [s.key.service] * len(ts),
                "signal": [s.key.signal] * len(ts),
                "value": values,
                "score": scores,
                "threshold": np.full(len(ts), s.threshold),
            },
            schema=schema,
        )
        for s in scored
        for ts, values, scores, held in (
            (s.anomaly_ts_us, s.anomaly_values, s.anomaly_scores, False),
            (s.held_ts_us, s.held_values, s.held_scores, True),
        )
        if len(ts)
    ]
    if not frames:
        return pl.DataFrame(schema=schema)
    return pl.concat(frames).sort("ts_us", "held", "service", "signal")


def _record_minutes(
    con: duckdb.DuckDBPyConnection,
    observations: list[Observation],
    horizon: datetime,
    policy: IncidentPolicy,
) -> tuple[list[IncidentUpdate], np.ndarray]:
    """Feed the anomalous minutes (in time order) into incidents, then auto-resolve what is
    quiet at the horizon. A held repeat refreshes the active incident of its signal; with
    none it opens, groups or reopens one like an alarm, since its minute is as anomalous.
    Returns the updates and which minutes count (alarms, and held ones that did that)."""
    book = IncidentBook.load(con, policy, min((o.ts for o in observations), default=horizon))
    updates: list[IncidentUpdate] = []
    counted = np.zeros(len(observations), dtype=bool)
    too_old = horizon - policy.max_anomaly_age if policy.max_anomaly_age is not None else None
    for i, obs in enumerate(observations):
        if too_old is not None and obs.ts < too_old:
            # History, not news: the anomaly is stored, nobody is paged for it.
            updates.append(IncidentUpdate(None, "too_old"))
            counted[i] = not obs.refresh_only
            continue
        update = book.observe(obs)
        if obs.refresh_only and update.incident_id is None:
            update = book.observe(obs._replace(refresh_only=False))
        counted[i] = not obs.refresh_only or update.action != "refreshed"
        updates.append(update)
    book.auto_resolve(horizon)
    book.save(con)
    return updates, counted


def _write(
    store: Store,
    snapshot: _Snapshot,
    scored: list[_Scored],
    detector: str,
    horizon: datetime,
    policy: IncidentPolicy,
    result: DetectResult,
) -> None:
    now = utc_now()
    minutes = _anomalous_minutes(scored)
    observations = [
        Observation(
            service=r["service"],
            signal=r["signal"],
            ts=_from_epoch_us(r["ts_us"]),
            score=r["score"],
            value=None if np.isnan(r["value"]) else r["value"],
            detector=detector,
            threshold=r["threshold"],
            refresh_only=r["held"],
        )
        for r in minutes.iter_rows(named=True)
    ]
    states = pa.table(
        {
            "service": [s.key.service for s in scored],
            "signal": [s.key.signal for s in scored],
            "dimension": [DIMENSION] * len(scored),
            "key": [KEY] * len(scored),
            "detector": [detector] * len(scored),
            "last_ts": [s.last_ts for s in scored],
            "scored_until": [s.scored_until for s in scored],
            "state": [s.state for s in scored],
            "updated_at": [now] * len(scored),
        },
        schema=_STATE_SCHEMA,
    )
    saved_states = states.filter(pc.is_valid(states.column("state")))
    moved_only = states.filter(pc.is_null(states.column("state"))).drop_columns(["state"])
    with store.write() as con:
        con.execute("BEGIN TRANSACTION")
        try:
            # Another run (a second worker, a manual one) may have scored these minutes
            # since we read: then its results stand and ours are dropped.
            current = {
                SeriesKey(s, g): _Saved(ts, until)
                for s, g, ts, until in con.execute(_SAVED_SQL, [detector]).fetchall()
            }
            if current != snapshot.saved:
                con.execute("ROLLBACK")
                result.skipped_concurrent = True
                log.warning("detect: another run saved detector state first; results dropped")
                return
            updates, counted = _record_minutes(con, observations, horizon, policy)
            anomalies = minutes.filter(pl.Series(counted))
            ids = [u.incident_id for u, c in zip(updates, counted, strict=True) if c]
            if anomalies.height:
                ((max_id,),) = con.execute("SELECT coalesce(max(id), 0) FROM anomalies").fetchall()
                n = anomalies.height
                table = pa.table(
                    {
                        "id": np.arange(max_id + 1, max_id + 1 + n, dtype=np.int64),
                        "ts": anomalies["ts_us"].to_numpy().astype("datetime64[us]"),
                        "service": anomalies["service"].to_arrow(),
                        "signal": anomalies["signal"].to_arrow(),
                        "dimension": [DIMENSION] * n,
                        "key": [KEY] * n,
                        "value": anomalies["value"].to_numpy(),
                        "score": anomalies["score"].to_numpy(),
                        "detector": [detector] * n,
                        "threshold": anomalies["threshold"].to_numpy(),
                        "incident_id": ids,
                        "created_at": [now] * n,
                    },
                    schema=_ANOMALY_SCHEMA,
                )
                con.register("_new_anomalies", table)
                con.execute("INSERT INTO anomalies BY NAME SELECT * FROM _new_anomalies")
                con.unregister("_new_anomalies")
            if saved_states.num_rows:
                con.register("_new_states", saved_states)
                con.execute(
                    "INSERT OR REPLACE INTO detector_state BY NAME SELECT * FROM _new_states"
                )
                con.unregister("_new_states")
            if moved_only.num_rows:
                con.register("_moved_states", moved_only)
                con.execute(
                    "UPDATE detector_state SET scored_until = m.scored_until, "
                    "updated_at = m.updated_at FROM _moved_states m "
                    "WHERE detector_state.service = m.service AND detector_state.signal = m.signal "
                    "AND detector_state.dimension = m.dimension AND detector_state.key = m.key "
                    "AND detector_state.detector = m.detector"
                )
                con.unregister("_moved_states")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    with _LIVE_LOCK:
        for sc in scored:
            _LIVE[(str(store.path), detector, sc.key)] = _Live(
                sc.last_ts, sc.scored_until, sc.detector
            )
    result.anomalies = anomalies.height
    result.incidents = [u.incident_id for u in updates if u.incident_id is not None]


def run_detect(
    store: Store,
    config: GatewayConfig | None = None,
    now: datetime | None = None,
    *,
    detector: str | DetectorKit | None = None,
    settle_seconds: float = DEFAULT_SETTLE_SECONDS,
    policy: IncidentPolicy | None = None,
) -> DetectResult:
    """The worker job: score the minutes not scored yet, save anomalies (and detector state
    every STATE_PERSIST_INTERVAL), open or refresh incidents, and auto-resolve the quiet
    ones as of the newest minute. `detector` is a suite.detect name (default: its default)
    or a DetectorKit; the incident windows come from `policy`, else config [incidents]."""
    t0 = time.perf_counter()
    result = DetectResult()
    kit = detector if isinstance(detector, DetectorKit) else detector_kit(detector)
    policy = policy or incident_policy(config)
    at = naive_utc(now) if now else utc_now()
    horizon = minute_floor(at - timedelta(seconds=settle_seconds))
    snapshot = _read(store, kit.name, horizon, policy)
    t1 = time.perf_counter()
    scored = _score_all(snapshot, kit, horizon)
    t2 = time.perf_counter()
    result.series = len(scored)
    result.points = sum(s.points for s in scored)
    if scored or snapshot.quiet_incidents:  # else nothing to write: no exclusive lock
        _write(store, snapshot, scored, kit.name, horizon, policy, result)
    with _LIVE_LOCK:  # detectors with no new minute stay live as they were
        for key, live in snapshot.unused_live:
            _LIVE[(str(store.path), kit.name, key)] = live
    t3 = time.perf_counter()
    result.read_seconds, result.score_seconds, result.write_seconds = t1 - t0, t2 - t1, t3 - t2
    result.seconds = t3 - t0
    if result.points or result.anomalies:
        log.info("detect: %s", result)
    return result
