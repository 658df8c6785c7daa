"""Chaos drills: faults (latency, errors) a person turns on for a route for a while, so
detection and incident response can be rehearsed on purpose.

Active drills live in `<home>/run/chaos.json` (written atomically, read by gateways);
each drill is also a `changes` row (kind 'chaos') opened at start and closed at stop or
expiry, with audit rows. The drill file is light to read: the gateway imports `Drill`
and `read_drills` only, and never the store.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from suite.errors import AiopsError

if TYPE_CHECKING:
    from suite.config import GatewayConfig
    from suite.home import Home
    from suite.store import Store

log = logging.getLogger("aiops.chaos")

CHAOS_FILE = "chaos.json"
DEFAULT_STATUS = 503
MAX_LATENCY_MS = 600_000
MAX_DURATION_SECONDS = 7 * 24 * 3600


class ChaosError(AiopsError):
    """A drill that cannot start or stop as asked; nothing was changed (exit 2)."""

    exit_code = 2


@dataclass(frozen=True)
class Drill:
    id: str  # the change id (CHG-...)
    route: str
    latency_ms: float
    error_rate: float
    status: int
    started_at: float  # Unix seconds
    expires_at: float | None
    reason: str | None = None
    created_by: str | None = None

    def active(self, now: float) -> bool:
        return self.expires_at is None or now < self.expires_at

    def describe(self) -> str:
        parts = []
        if self.error_rate > 0:
            parts.append(f"error {self.error_rate:.0%} (status {self.status})")
        if self.latency_ms > 0:
            parts.append(f"latency +{self.latency_ms:g} ms")
        return ", ".join(parts)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Drill:
        return cls(
            id=str(data["id"]),
            route=str(data["route"]),
            latency_ms=float(data.get("latency_ms") or 0),
            error_rate=float(data.get("error_rate") or 0),
            status=int(data.get("status") or DEFAULT_STATUS),
            started_at=float(data["started_at"]),
            expires_at=None if data.get("expires_at") is None else float(data["expires_at"]),
            reason=data.get("reason"),
            created_by=data.get("created_by"),
        )


def chaos_path(home: Home) -> Path:
    return home.run_dir / CHAOS_FILE


def parse_drills(text: str) -> list[Drill]:
    data = json.loads(text)
    return [Drill.from_json(d) for d in data.get("drills", [])]


def read_drills(path: Path) -> list[Drill]:
    """Every drill in the file (expired ones too); [] when there is none. A damaged file
    is logged and read as no drills: a drill must never take the gateway down."""
    try:
        return parse_drills(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError, KeyError, TypeError) as e:
        log.error("chaos: cannot read %s (%s); no drill applied", path, e)
        return []


def write_drills(path: Path, drills: list[Drill]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"version": 1, "drills": [asdict(d) for d in drills]}, indent=1))
    os.replace(tmp, path)


@contextmanager
def _transaction(store: Store) -> Iterator[Any]:
    """A write connection whose statements commit together or not at all."""
    from suite.store import transaction  # not at import: the gateway imports this module

    with store.write() as con, transaction(con):
        yield con


@contextmanager
def drills_lock(home: Home) -> Iterator[None]:
    """Serialises read-modify-write of the drill file between CLI commands and the worker."""
    home.run_dir.mkdir(parents=True, exist_ok=True)
    with open(home.run_dir / ".chaos.lock", "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _ts(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)


def check_drill(
    config: GatewayConfig, route: str, latency_ms: float, error_rate: float, status: int
) -> None:
    names = sorted(r.name for r in config.routes)
    if route not in names:
        raise ChaosError(
            f"--route: {route!r} is not a route of {config.path or 'the config'} "
            f"(routes: {', '.join(names) or 'none'})"
        )
    if not 0 <= error_rate <= 1:
        raise ChaosError(f"--error-rate: {error_rate:g} must be between 0 and 1 (0.3 = 30%)")
    if not 0 <= latency_ms <= MAX_LATENCY_MS:
        raise ChaosError(f"--latency-ms: {latency_ms:g} must be between 0 and {MAX_LATENCY_MS}")
    if not 400 <= status <= 599:
        raise ChaosError(f"--status: {status} must be an HTTP error status (400-599)")
    if error_rate == 0 and latency_ms == 0:
        raise ChaosError("no fault given: pass --latency-ms N and/or --error-rate P")


def start_drill(
    store: Store,
    home: Home,
    config: GatewayConfig,
    *,
    route: str,
    latency_ms: float = 0,
    error_rate: float = 0,
    status: int = DEFAULT_STATUS,
    duration_seconds: float | None = 600,
    reason: str | None = None,
    actor: str,
) -> Drill:
    """Validate, record the change, then publish the drill to the gateways."""
    from suite.audit import record
    from suite.change_spool import new_change_id

    check_drill(config, route, latency_ms, error_rate, status)
    if duration_seconds is not None and not 0 < duration_seconds <= MAX_DURATION_SECONDS:
        raise ChaosError("--for: must be longer than zero and at most 7d")
    with drills_lock(home):
        _close_expired_locked(store, home, time.time())
        drills = read_drills(chaos_path(home))
        busy = [d for d in drills if d.route == route]
        if busy:
            raise ChaosError(
                f"route {route!r} already has drill {busy[0].id} ({busy[0].describe()}); "
                f"stop it first: aiops chaos stop --route {route}"
            )
        now = time.time()
        drill = Drill(
            id=new_change_id(),
            route=route,
            latency_ms=float(latency_ms),
            error_rate=float(error_rate),
            status=int(status),
            started_at=now,
            expires_at=None if duration_seconds is None else now + duration_seconds,
            reason=reason,
            created_by=actor,
        )
        until = f" until {_ts(drill.expires_at):%Y-%m-%d %H:%M:%S} UTC" if drill.expires_at else ""
        summary = f"chaos drill on {route}: {drill.describe()}{until}"
        if reason:
            summary += f" ({reason})"
        detail = {
            "drill": "chaos", "latency_ms": drill.latency_ms, "error_rate": drill.error_rate,
            "status": drill.status, "duration_seconds": duration_seconds, "reason": reason,
        }  # fmt: skip
        started = _ts(now)
        with _transaction(store) as con:
            con.execute(
                "INSERT INTO changes (id, ts, service, kind, summary, status, source, risk, "
                "change_type, window_start, window_end, requested_by, implemented_at, detail, "
                "created_at, updated_at) VALUES (?, ?, ?, 'chaos', ?, 'implemented', 'cli', "
                "'medium', 'standard', ?, ?, ?, ?, ?, ?, ?)",
                [drill.id, started, route, summary[:500], started,
                 _ts(drill.expires_at) if drill.expires_at else None, actor, started,
                 json.dumps(detail), started, started],
            )  # fmt: skip
            _change_event(con, drill.id, None, "implemented", actor, "chaos drill started")
            record(con, "chaos.start", "change", drill.id, detail={"route": route, **detail},
                   actor=actor, source="cli")  # fmt: skip
        write_drills(chaos_path(home), [*drills, drill])
    return drill


def _change_event(
    con: Any, change_id: str, from_status: str | None, to_status: str, actor: str, note: str
) -> None:
    from suite.audit import next_id
    from suite.clock import utc_now

    con.execute(
        "INSERT INTO change_events VALUES (?, ?, ?, ?, ?, ?, ?)",
        [next_id(con, "change_events"), change_id, utc_now(), from_status, to_status, actor, note],
    )


def _close_in_store(
    store: Store, drills: list[Drill], how: str, actor: str, source: str, ended: dict[str, float]
) -> None:
    """Mark each drill's change verified + closed, with an event and an audit row."""
    from suite.audit import record

    if not drills:
        return
    with _transaction(store) as con:
        for d in drills:
            at = _ts(ended[d.id])
            note = f"chaos drill ended ({how})"
            con.execute(
                "UPDATE changes SET status = 'verified', closed_at = ?, updated_at = ?, "
                "window_end = ? WHERE id = ? AND closed_at IS NULL",
                [at, at, at, d.id],
            )
            _change_event(con, d.id, "implemented", "verified", actor, note)
            record(con, f"chaos.{how}", "change", d.id, detail={"route": d.route},
                   actor=actor, source=source)  # fmt: skip


def _close_expired_locked(
    store: Store, home: Home, now: float, *, actor: str = "aiops", source: str = "cli"
) -> list[Drill]:
    drills = read_drills(chaos_path(home))
    expired = [d for d in drills if not d.active(now)]
    if not expired:
        return []
    _close_in_store(
        store, expired, "expired", actor, source, {d.id: d.expires_at or now for d in expired}
    )
    write_drills(chaos_path(home), [d for d in drills if d.active(now)])
    return expired


def close_expired(
    store: Store, home: Home, *, source: str = "worker", now: float | None = None
) -> list[Drill]:
    """Drills past their end: changes closed, removed from the file (the worker's job)."""
    if not chaos_path(home).exists():
        return []
    at = time.time() if now is None else now
    with drills_lock(home):
        return _close_expired_locked(store, home, at, actor="aiops-worker", source=source)


def stop_drills(
    store: Store, home: Home, *, route: str | None, actor: str
) -> tuple[list[Drill], list[Drill]]:
    """Stop the drills of `route` (all when None). Returns (stopped, expired meanwhile)."""
    with drills_lock(home):
        expired = _close_expired_locked(store, home, time.time())
        drills = read_drills(chaos_path(home))
        stopping = [d for d in drills if route is None or d.route == route]
        if route is not None and not stopping and not any(d.route == route for d in expired):
            active = ", ".join(sorted(d.route for d in drills)) or "none"
            raise ChaosError(f"--route: no active drill on {route!r} (active drills: {active})")
        # The file first: gateways stop injecting even if the store is busy right now.
        write_drills(chaos_path(home), [d for d in drills if d not in stopping])
        now = time.time()
        _close_in_store(store, stopping, "stopped", actor, "cli", {d.id: now for d in stopping})
    return stopping, expired


def list_drills(store: Store, home: Home) -> list[dict[str, Any]]:
    """Active drills as rows (expired ones are closed first)."""
    with drills_lock(home):
        _close_expired_locked(store, home, time.time())
        drills = read_drills(chaos_path(home))
    now = time.time()
    return [
        {
            "id": d.id,
            "route": d.route,
            "latency_ms": d.latency_ms,
            "error_rate": d.error_rate,
            "status": d.status,
            "started_at": _ts(d.started_at),
            "expires_at": _ts(d.expires_at) if d.expires_at else None,
            "remaining_seconds": None if d.expires_at is None else round(d.expires_at - now, 1),
            "reason": d.reason,
            "created_by": d.created_by,
        }
        for d in drills
    ]


def chaos_job(store: Store, config: GatewayConfig) -> str:
    """Worker job: close drills that have run out."""
    ended = close_expired(store, store.home)
    return f"{len(ended)} drill(s) ended" if ended else "no drill ended"
