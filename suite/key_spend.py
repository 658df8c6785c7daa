"""What each gateway key has spent today and this month (UTC), for budgets.

The worker writes a snapshot per key from the recorded `cost_usd` of its calls
(`<home>/run/key_spend.json`, with the time it is complete up to); a gateway loads it at
start and on change and adds the cost it charged itself since then (`SpendLedger`). The
gateway side never opens DuckDB; the worker side never runs in the gateway.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from suite.home import Home

SPEND_SNAPSHOT_NAME = "key_spend.json"
SPEND_FORMAT = 1
# Rows a gateway charged shortly before the last ingest may or may not be in the store
# yet: counting them twice for a few seconds is better than not at all.
AS_OF_MARGIN_SECONDS = 2.0


def spend_snapshot_path(home: Home) -> Path:
    return home.run_dir / SPEND_SNAPSHOT_NAME


def day_key(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d")


def month_key(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m")


def day_number(t: float) -> int:
    """UTC days since the epoch: a cheap key for the proxy's per-request budget check."""
    return int(t // 86400)


@lru_cache(maxsize=64)
def _month_of_day(day: int) -> int:
    d = datetime.fromtimestamp(day * 86400, UTC)
    return d.year * 12 + d.month - 1


def month_number(t: float) -> int:
    """year * 12 + month - 1 (UTC), cached per day."""
    return _month_of_day(day_number(t))


def _parse_day(text: str) -> int:
    return day_number(datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC).timestamp())


def _parse_month(text: str) -> int:
    year, month = text.split("-")
    return int(year) * 12 + int(month) - 1


def next_day_start(t: float) -> datetime:
    d = datetime.fromtimestamp(t, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return d + timedelta(days=1)


def next_month_start(t: float) -> datetime:
    d = datetime.fromtimestamp(t, UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return d.replace(year=d.year + 1, month=1) if d.month == 12 else d.replace(month=d.month + 1)


# -- worker side -----------------------------------------------------------------------------
SPEND_SQL = """
SELECT api_key_id,
       coalesce(sum(cost_usd) FILTER (WHERE ts >= $day), 0) AS day_usd,
       coalesce(sum(cost_usd), 0) AS month_usd
FROM requests
WHERE api_key_id IS NOT NULL AND ts >= $month AND cost_usd IS NOT NULL
  AND NOT coalesce(cache_hit, false)
GROUP BY api_key_id
"""


def compute_spend_snapshot(con: Any, now: float | None = None) -> dict[str, Any]:
    """Spend per key from the store (inside a read unit of work)."""
    now = time.time() if now is None else now
    today = datetime.fromtimestamp(now, UTC).replace(tzinfo=None)
    day = today.replace(hour=0, minute=0, second=0, microsecond=0)
    # Complete up to the last ingest (ages compared in the store's own clock).
    age = con.execute(
        "SELECT epoch(now()::TIMESTAMP) - epoch(max(loaded_at)) FROM ingested_segments"
    ).fetchone()[0]
    as_of = now - (float(age) if age is not None else 0.0) - AS_OF_MARGIN_SECONDS
    rows = con.execute(SPEND_SQL, {"day": day, "month": day.replace(day=1)}).fetchall()
    return {
        "format": SPEND_FORMAT,
        "as_of": as_of,
        "day": day_key(now),
        "month": month_key(now),
        "keys": {r[0]: {"day_usd": float(r[1]), "month_usd": float(r[2])} for r in rows},
    }


def write_spend_snapshot(store: Any, now: float | None = None) -> dict[str, Any]:
    """The worker job: keys snapshot refreshed if stale, spend snapshot rewritten."""
    from suite.keys import refresh_keys_snapshot, write_json_atomically

    with store.read() as con:
        snap = compute_spend_snapshot(con, now)
    write_json_atomically(spend_snapshot_path(store.home), snap)
    refreshed = refresh_keys_snapshot(store)
    return {"keys_with_spend": len(snap["keys"]), "keys_snapshot_rewritten": refreshed}


def read_spend_snapshot(path: Path) -> SpendSnapshot:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("format") != SPEND_FORMAT:
        raise ValueError(f"{path}: not a key spend snapshot of format {SPEND_FORMAT}")
    return SpendSnapshot(
        as_of=float(data["as_of"]),
        day=str(data["day"]),
        month=str(data["month"]),
        keys={
            k: (float(v.get("day_usd", 0.0)), float(v.get("month_usd", 0.0)))
            for k, v in data.get("keys", {}).items()
        },
    )


# -- gateway side -----------------------------------------------------------------------------
@dataclass(frozen=True)
class SpendSnapshot:
    as_of: float
    day: str  # "YYYY-MM-DD" (UTC) the day totals are for
    month: str  # "YYYY-MM"
    keys: dict[str, tuple[float, float]] = field(default_factory=dict)  # id -> (day, month)

    @property
    def day_no(self) -> int:
        return _parse_day(self.day) if self.day else -1

    @property
    def month_no(self) -> int:
        return _parse_month(self.month) if self.month else -1


class SpendLedger:
    """Spend per key = the worker's snapshot + what this process charged since its as-of
    time. Charged from the spool writer's thread, read on the proxy loop: O(1) per read."""

    def __init__(self) -> None:
        self.snapshot = SpendSnapshot(as_of=0.0, day="", month="")
        self._snap_day, self._snap_month = -1, -1
        # key id -> {whole second: usd}: charges not yet covered by a snapshot.
        self._bins: dict[str, dict[int, float]] = {}
        self._day: dict[tuple[str, int], float] = {}
        self._month: dict[tuple[str, int], float] = {}
        self._lock = threading.Lock()

    def load(self, snapshot: SpendSnapshot) -> None:
        with self._lock:
            self.snapshot = snapshot
            self._snap_day, self._snap_month = snapshot.day_no, snapshot.month_no
            # A bin overlapping as_of is kept: counted twice for under a second rather
            # than not at all.
            cutoff = int(snapshot.as_of)
            day: dict[tuple[str, int], float] = {}
            month: dict[tuple[str, int], float] = {}
            for key_id, bins in list(self._bins.items()):
                kept = {s: usd for s, usd in bins.items() if s >= cutoff}
                if not kept:
                    del self._bins[key_id]
                    continue
                self._bins[key_id] = kept
                for s, usd in kept.items():
                    dk, mk = (key_id, day_number(s)), (key_id, month_number(s))
                    day[dk] = day.get(dk, 0.0) + usd
                    month[mk] = month.get(mk, 0.0) + usd
            self._day, self._month = day, month

    def charge(self, key_id: str, usd: float, t: float) -> None:
        if usd <= 0:
            return
        s = int(t)
        with self._lock:
            bins = self._bins.setdefault(key_id, {})
            bins[s] = bins.get(s, 0.0) + usd
            dk, mk = (key_id, day_number(s)), (key_id, month_number(s))
            self._day[dk] = self._day.get(dk, 0.0) + usd
            self._month[mk] = self._month.get(mk, 0.0) + usd

    def spent(self, key_id: str, now: float) -> tuple[float, float]:
        """(USD today, USD this month), UTC."""
        d, m = day_number(now), month_number(now)
        snap_day, snap_month = self.snapshot.keys.get(key_id, (0.0, 0.0))
        day = (snap_day if self._snap_day == d else 0.0) + self._day.get((key_id, d), 0.0)
        month = (snap_month if self._snap_month == m else 0.0) + self._month.get((key_id, m), 0.0)
        return day, month


def key_spend_job(store: Any, config: Any) -> dict[str, Any]:
    """Worker job: spend per key (and the keys snapshot) for the gateways' budgets."""
    return write_spend_snapshot(store)
