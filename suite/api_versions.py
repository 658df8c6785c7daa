"""Route API versions, deprecation and sunset, and per-route header rules: parsing and
the pure helpers the gateway's header addon calls.

Parsing reports every mistake through the config's problem list; nothing here does I/O
except reading `${ENV}` references at load. Resolved header values are never printed.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, date, datetime, time
from email.utils import format_datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

ROUTE_KEYS = {
    "version",
    "deprecated",
    "sunset",
    "deprecation_link",
    "request_headers",
    "response_headers",
}
HEADER_RULE_KEYS = {"set", "add", "remove"}
# RFC 9110 token characters: what a header field name may be made of.
HEADER_NAME_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
ENV_IN_VALUE_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Headers that frame or route the message: a rule changing them would break the
# connection or bypass the router, so they are refused at load.
PROTECTED_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer"}
)
# (action, header name, value): actions in the order they apply: remove, set, add.
HeaderRule = tuple[str, str, str]


class ProblemSink(Protocol):
    def add(self, key: str, message: str) -> None: ...


def parse_when(value: object) -> datetime | str:
    """A UTC datetime from a TOML date/datetime or an ISO string, else why not."""
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(0, 0), tzinfo=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            return f"{value!r} is not a date (expected e.g. 2027-06-30 or 2027-06-30T00:00:00Z)"
        return parse_when(parsed)
    return f"{value!r} is not a date (expected e.g. 2027-06-30)"


def http_date(when: datetime) -> str:
    """IMF-fixdate (RFC 9110), as the Sunset header wants: 'Wed, 30 Jun 2027 00:00:00 GMT'."""
    return format_datetime(when.astimezone(UTC), usegmt=True)


def deprecation_value(when: datetime) -> str:
    """RFC 9745 Deprecation header: a structured-field date, '@' and Unix seconds."""
    return f"@{int(when.timestamp())}"


def lifecycle_headers(
    *,
    deprecated: bool,
    deprecated_since: datetime | None,
    sunset: datetime | None,
    link: str | None,
) -> list[tuple[str, str]]:
    """The Deprecation / Sunset / Link headers a route's responses carry."""
    out: list[tuple[str, str]] = []
    if deprecated and deprecated_since is not None:
        out.append(("Deprecation", deprecation_value(deprecated_since)))
    if sunset is not None:
        out.append(("Sunset", http_date(sunset)))
    if link and (deprecated or sunset is not None):
        rel = "deprecation" if deprecated else "sunset"
        out.append(("Link", f'<{link}>; rel="{rel}"; type="text/html"'))
    return out


def resolve_env_references(value: str) -> tuple[str, list[str]]:
    """`value` with every ${VAR} replaced from the environment; and the missing names."""
    missing: list[str] = []

    def sub(m: re.Match[str]) -> str:
        v = os.environ.get(m.group(1))
        if not v:
            missing.append(m.group(1))
            return ""
        return v

    return ENV_IN_VALUE_RE.sub(sub, value), missing


def parse_header_rules(problems: ProblemSink, where: str, raw: object) -> tuple[HeaderRule, ...]:
    """`{set = {...}, add = {...}, remove = [...]}` -> rules in application order."""
    if not isinstance(raw, dict):
        problems.add(where, "must be a table (set = {...}, add = {...}, remove = [...])")
        return ()
    for key in raw:
        if key not in HEADER_RULE_KEYS:
            problems.add(
                f"{where}.{key}", f"unknown key (known keys: {', '.join(sorted(HEADER_RULE_KEYS))})"
            )
    rules: list[HeaderRule] = []

    def name_ok(key: str, name: object) -> bool:
        if not isinstance(name, str) or not HEADER_NAME_RE.match(name):
            problems.add(key, f"{name!r} is not a valid header name (RFC 9110 token characters)")
            return False
        if name.lower() in PROTECTED_HEADERS:
            problems.add(
                key,
                f"{name!r} frames or routes the message and cannot be changed by a rule "
                f"(protected: {', '.join(sorted(PROTECTED_HEADERS))})",
            )
            return False
        return True

    remove = raw.get("remove", [])
    if not isinstance(remove, list):
        problems.add(f"{where}.remove", f"{remove!r} must be a list of header names")
        remove = []
    for i, name in enumerate(remove):
        if name_ok(f"{where}.remove[{i}]", name):
            rules.append(("remove", name, ""))
    for action in ("set", "add"):
        table = raw.get(action, {})
        if not isinstance(table, dict):
            problems.add(f"{where}.{action}", f'{table!r} must be a table {{ "Name" = "value" }}')
            continue
        for name, value in table.items():
            key = f"{where}.{action}.{name}"
            if not name_ok(key, name):
                continue
            if not isinstance(value, str):
                problems.add(key, f"{value!r} must be a string")
                continue
            resolved, missing = resolve_env_references(value)
            if missing:
                problems.add(key, f"environment variable {', '.join(missing)} is not set or empty")
                continue
            if "\r" in resolved or "\n" in resolved or "\0" in resolved:
                problems.add(key, "a header value must not contain line breaks or NUL")
                continue
            rules.append((action, name, resolved))
    return tuple(rules)


def apply_header_rules(headers: Any, rules: tuple[HeaderRule, ...]) -> None:
    """Apply rules to mitmproxy Headers (remove, then set, then add)."""
    for action, name, value in rules:
        if action == "remove":
            headers.pop(name, None)
        elif action == "set":
            headers[name] = value
        else:
            headers.add(name, value)


def parse_route_keys(
    problems: ProblemSink, where: str, raw: dict[str, Any], extra: dict[str, Any]
) -> None:
    """The [ops] keys of one [[routes]] table into `extra` (Route fields)."""
    if "version" in raw:
        v = raw["version"]
        if isinstance(v, str) and VERSION_RE.match(v):
            extra["version"] = v
        else:
            problems.add(
                f"{where}.version",
                f'{v!r} is not a version label (e.g. "v1", "2024-06"; at most 32 characters)',
            )
    if "deprecated" in raw:
        d = raw["deprecated"]
        if isinstance(d, bool):
            extra["deprecated"] = d
        else:
            when = parse_when(d)
            if isinstance(when, str):
                problems.add(f"{where}.deprecated", f"must be true/false or a date: {when}")
            else:
                extra["deprecated"] = True
                extra["deprecated_since"] = when
    if "sunset" in raw:
        when = parse_when(raw["sunset"])
        if isinstance(when, str):
            problems.add(f"{where}.sunset", when)
        else:
            extra["sunset"] = when
            since = extra.get("deprecated_since")
            if since is not None and when < since:
                problems.add(
                    f"{where}.sunset",
                    f"{when:%Y-%m-%d} is before the deprecation date {since:%Y-%m-%d}",
                )
    if "deprecation_link" in raw:
        link = raw["deprecation_link"]
        parts = urlsplit(link) if isinstance(link, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            problems.add(f"{where}.deprecation_link", f"{link!r} is not an http(s) URL")
        elif not (raw.get("deprecated") or "sunset" in raw):
            problems.add(
                f"{where}.deprecation_link", "only applies to a route with deprecated or sunset"
            )
        else:
            extra["deprecation_link"] = link
    for key in ("request_headers", "response_headers"):
        if key in raw:
            extra[key] = parse_header_rules(problems, f"{where}.{key}", raw[key])
