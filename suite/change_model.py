"""What a change is (kinds, lifecycle states, types, risk) and the checks that every way of
recording one shares: the CLI, the gateway's admin endpoint and the worker.

Light on purpose: the gateway imports it, so nothing here opens the store or imports
polars or DuckDB.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple

from suite.clock import naive_utc, utc_now
from suite.errors import AiopsError

KINDS = ("deploy", "config", "flag", "schema", "infra", "chaos")
STATUSES = (
    "proposed", "approved", "scheduled", "implemented", "verified", "rolled_back", "cancelled",
)  # fmt: skip
# A new change is either planned (proposed) or recorded after the fact (implemented).
INITIAL_STATUSES = ("proposed", "implemented")
# The change took effect: it can cause incidents and counts in the failure rate.
DONE_STATUSES = ("implemented", "verified", "rolled_back")
CHANGE_TYPES = ("normal", "standard", "emergency")
RISKS = ("low", "medium", "high")
SERVICE_RE = re.compile(r"^[A-Za-z0-9*][A-Za-z0-9_.:/*-]{0,127}$")
MAX_SUMMARY_CHARS = 500
MAX_DETAIL_CHARS = 8000
# Field names a new change accepts (CLI options and the admin endpoint's JSON keys);
# aliases map to their canonical name.
FIELDS = (
    "service", "kind", "summary", "status", "risk", "change_type", "window_start",
    "window_end", "ts", "requested_by", "approved_by", "detail",
)  # fmt: skip
ALIASES = {"type": "change_type", "at": "ts", "by": "requested_by"}
NOBODY = ("", "unknown")


class ChangeError(AiopsError):
    """A change that cannot be recorded, an unknown id, or a lifecycle step that is not
    allowed; nothing was written (the CLI exits 2, the admin endpoint answers 400)."""

    exit_code = 2


class NewChange(NamedTuple):
    service: str
    kind: str
    summary: str
    status: str = "proposed"
    risk: str | None = None
    change_type: str = "normal"
    window_start: datetime | None = None
    window_end: datetime | None = None
    ts: datetime | None = None  # when it took effect (implemented) or None: now
    requested_by: str | None = None
    approved_by: str | None = None
    detail: dict[str, Any] | None = None


def parse_time(value: object, what: str) -> datetime:
    """An ISO 8601 time ('2026-03-10T12:00', '...Z', '...+02:00'; naive = UTC) or 'now',
    as naive UTC; ChangeError naming `what` otherwise."""
    if isinstance(value, datetime):
        return naive_utc(value)
    if not isinstance(value, str) or not value.strip():
        raise ChangeError(f"{what}: {value!r} is not a time (e.g. 2026-03-10T22:00Z)")
    text = value.strip()
    if text.lower() == "now":
        return utc_now()
    try:
        return naive_utc(datetime.fromisoformat(text))
    except ValueError:
        raise ChangeError(
            f"{what}: {value!r} is not an ISO 8601 time (e.g. 2026-03-10T22:00Z)"
        ) from None


def named_person(value: object) -> str | None:
    """A stripped name, or None for nothing / 'unknown' (not a named person)."""
    if not isinstance(value, str):
        return None
    name = value.strip()
    return None if name.lower() in NOBODY else name


def needs_named_approver(risk: str | None, change_type: str | None) -> bool:
    """High-risk and emergency changes are approved by a named person, not the requester
    (the CAB / emergency CAB of ITSM practice)."""
    return risk == "high" or change_type == "emergency"


def check_new_change(fields: Mapping[str, Any], *, default_status: str = "proposed") -> NewChange:
    """Validate the fields of a new change (CLI options or an admin endpoint JSON body);
    raises one ChangeError listing every problem."""
    problems: list[str] = []
    values: dict[str, Any] = {}
    for key, value in fields.items():
        name = ALIASES.get(key, key)
        if name not in FIELDS:
            problems.append(f"unknown field {key!r} (known: {', '.join(FIELDS)})")
        elif value is not None:
            values[name] = value

    def text(name: str, required: bool, limit: int = 200) -> str | None:
        value = values.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                problems.append(f"{name} is required")
            return None
        if not isinstance(value, str):
            problems.append(f"{name}: {value!r} must be a string")
            return None
        if len(value) > limit:
            problems.append(f"{name}: longer than {limit} characters")
            return None
        return value.strip()

    service = text("service", True, 128)
    if service is not None and not SERVICE_RE.match(service):
        problems.append(
            f"service: {service!r} is not a service name (letters, digits, '_', '.', '-')"
        )
    kind = text("kind", True)
    if kind is not None and kind not in KINDS:
        problems.append(f"kind: {kind!r} is not one of {', '.join(KINDS)}")
    summary = text("summary", True, MAX_SUMMARY_CHARS)
    status = text("status", False) or default_status
    if status not in INITIAL_STATUSES:
        problems.append(
            f"status: {status!r} is not one of {', '.join(INITIAL_STATUSES)} "
            "(a new change is planned, or recorded after the fact)"
        )
    risk = text("risk", False)
    if risk is not None and risk not in RISKS:
        problems.append(f"risk: {risk!r} is not one of {', '.join(RISKS)}")
    change_type = text("change_type", False) or "normal"
    if change_type not in CHANGE_TYPES:
        problems.append(f"type: {change_type!r} is not one of {', '.join(CHANGE_TYPES)}")
    times: dict[str, datetime | None] = {}
    for name in ("window_start", "window_end", "ts"):
        times[name] = None
        if name in values:
            try:
                times[name] = parse_time(values[name], name)
            except ChangeError as e:
                problems.append(str(e))
    start, end = times["window_start"], times["window_end"]
    if ("window_start" in values) != ("window_end" in values):
        problems.append("window_start and window_end go together: give both or neither")
    elif start is not None and end is not None and end <= start:
        problems.append(f"window_end ({end:%Y-%m-%d %H:%M}) must be after window_start")
    requested_by = text("requested_by", False)
    approved_by = text("approved_by", False)
    if "approved_by" in values and named_person(approved_by) is None:
        problems.append("approved_by: must name a person (not empty or 'unknown')")
    if status == "implemented" and risk == "high" and change_type != "standard":
        if named_person(approved_by) is None:
            problems.append(
                "a high-risk change needs a named approver: record it as proposed and "
                "approve it (approve --by NAME), or give approved_by"
            )
        elif requested_by and approved_by == requested_by:
            problems.append("approved_by: the requester cannot approve their own high-risk change")
    detail = values.get("detail")
    if detail is not None:
        if not isinstance(detail, dict):
            problems.append("detail: must be a JSON object")
            detail = None
        elif len(json.dumps(detail, default=str)) > MAX_DETAIL_CHARS:
            problems.append(f"detail: longer than {MAX_DETAIL_CHARS} characters as JSON")
            detail = None
    if problems:
        raise ChangeError("; ".join(problems))
    assert service is not None and kind is not None and summary is not None
    return NewChange(
        service=service,
        kind=kind,
        summary=summary,
        status=status,
        risk=risk,
        change_type=change_type,
        window_start=start,
        window_end=end,
        ts=times["ts"],
        requested_by=requested_by,
        approved_by=approved_by,
        detail=detail,
    )
