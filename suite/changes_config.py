"""The `[changes]` table (correlation and failure-rate windows) and the gateway's admin
endpoint keys in `[gateway]` (admin_port, admin_token), checked like the rest of the config.

Never reads the store; suite.config calls `parse_changes_settings` at its `[changes]` anchor.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

CHANGES_KEYS = {"lookback_hours", "failure_window_hours", "interval_seconds"}
GATEWAY_ADMIN_KEYS = {"admin_port", "admin_token"}
_ENV_REFERENCE_RE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


class _Problems(Protocol):
    def add(self, key: str, message: str) -> None: ...


@dataclass(frozen=True)
class ChangesSettings:
    """[changes] and the admin endpoint of [gateway]."""

    lookback_hours: float = 24.0  # suspects: changes this long before an incident opened
    failure_window_hours: float = 24.0  # failure rate: an incident this soon after = failed
    interval_seconds: float = 60.0  # how often the worker's change jobs run
    admin_port: int = 0  # 0: no admin endpoint
    # Bearer token the admin endpoint requires, from "${ENV}"; never printed or written.
    admin_token: str | None = field(default=None, repr=False)


def _positive(problems: _Problems, key: str, value: object, maximum: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        problems.add(key, f"{value!r} is not a number")
        return None
    if not 0 < value <= maximum:
        problems.add(key, f"{value!r} is out of range (must be more than 0 and at most {maximum})")
        return None
    return float(value)


def parse_changes_settings(problems: _Problems, data: dict[str, Any]) -> ChangesSettings:
    values: dict[str, Any] = {}
    raw = data.get("changes")
    if raw is not None and not isinstance(raw, dict):
        problems.add("changes", "must be a table ([changes])")
    elif raw is not None:
        for key in raw:
            if key not in CHANGES_KEYS:
                problems.add(
                    f"changes.{key}", f"unknown key (known keys: {', '.join(sorted(CHANGES_KEYS))})"
                )
        for key, maximum in (
            ("lookback_hours", 24 * 90),
            ("failure_window_hours", 24 * 90),
            ("interval_seconds", 86400),
        ):
            if key in raw:
                v = _positive(problems, f"changes.{key}", raw[key], maximum)
                if v is not None:
                    values[key] = v
    gateway = data.get("gateway")
    if isinstance(gateway, dict):
        port = gateway.get("admin_port")
        if port is not None:
            if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
                problems.add(
                    "gateway.admin_port", f"{port!r} is not a port (0-65535; 0 = no endpoint)"
                )
            else:
                values["admin_port"] = port
        token = gateway.get("admin_token")
        if token is not None:
            m = _ENV_REFERENCE_RE.match(token) if isinstance(token, str) else None
            if m is None:
                problems.add(
                    "gateway.admin_token",
                    'must be an environment reference like "${AIOPS_ADMIN_TOKEN}" '
                    "(a literal token in a config file would be a secret on disk)",
                )
            elif not os.environ.get(m.group(1)):
                problems.add(
                    "gateway.admin_token", f"environment variable {m.group(1)} is not set or empty"
                )
            else:
                values["admin_token"] = os.environ[m.group(1)]
    return ChangesSettings(**values)
