"""Times as the store keeps them: naive datetimes in UTC (DuckDB TIMESTAMP).

Every job that takes a `now` for replays converts it here; nothing here reads the store.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def naive_utc(ts: datetime | None = None) -> datetime:
    """`ts` (aware, or naive and taken as UTC) as naive UTC; None means now."""
    if ts is None:
        return utc_now()
    return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo else ts
