"""The declared half of the service catalog: `[[services]]`, `[catalog]` and `[problems]`
in the gateway config, validated with the rest of the file (every mistake reported).

Pure parsing: never touches the store. `suite.catalog` turns it into table rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from suite.config import Route, _Problems

# Tiers, most critical first; a service without its own sla_target gets its tier's.
TIERS = ("tier-1", "tier-2", "tier-3")
TIER_DEFAULT_SLA: dict[str, float] = {"tier-1": 99.9, "tier-2": 99.5, "tier-3": 99.0}
SERVICE_KEYS = {"name", "owner", "tier", "sla_target", "description", "depends_on", "runbook"}
CATALOG_KEYS = {
    "interval_seconds",
    "downtime_error_ratio",
    "trace_lookback_minutes",
    "observed_ttl_days",
}
PROBLEMS_KEYS = {"min_incidents", "window_days", "interval_seconds"}


@dataclass(frozen=True)
class ServiceSpec:
    """One `[[services]]` entry: a route's catalog data, or an external service."""

    name: str
    owner: str | None = None
    tier: str | None = None
    sla_target: float | None = None  # percent, 0 < x < 100; None: the tier's default
    description: str | None = None
    depends_on: tuple[str, ...] = ()
    runbook: str | None = None

    @property
    def effective_sla_target(self) -> float | None:
        if self.sla_target is not None:
            return self.sla_target
        return TIER_DEFAULT_SLA.get(self.tier) if self.tier else None


@dataclass(frozen=True)
class CatalogSettings:
    """[catalog]: the catalog job and the SLA report."""

    interval_seconds: float = 60.0
    # A minute whose error ratio (errors_5xx / requests) is over this is a minute of
    # downtime in the SLA report (the 5% of Google Cloud's SLA definitions).
    downtime_error_ratio: float = 0.05
    # Observed dependencies: hours re-examined on each run (late rows, long callers).
    trace_lookback_minutes: float = 60.0
    # An observed dependency not seen for this long is dropped (a declared one never is).
    observed_ttl_days: int = 30


@dataclass(frozen=True)
class ProblemSettings:
    """[problems]: when recurring incidents become a problem record."""

    min_incidents: int = 3
    window_days: int = 30
    interval_seconds: float = 300.0


def _text(problems: _Problems, key: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        problems.add(key, f"{value!r} must be a non-empty string")
        return None
    return value.strip()


def parse_services(
    problems: _Problems, raw: object, routes: list[Route] | tuple[Route, ...]
) -> tuple[ServiceSpec, ...]:
    """`[[services]]`: names unique, tiers known, targets in (0, 100), every dependency a
    route or a declared service, none on itself."""
    from suite.config import ROUTE_NAME_RE

    if raw is None:
        return ()
    if not isinstance(raw, list):
        problems.add("services", "must be an array of tables ([[services]] with name, ...)")
        return ()
    route_names = {r.name for r in routes}
    declared = {
        item["name"] for item in raw if isinstance(item, dict) and isinstance(item.get("name"), str)
    }
    known = route_names | declared
    seen: dict[str, int] = {}
    specs: list[ServiceSpec] = []
    for i, item in enumerate(raw):
        where = f"services[{i}]"
        if not isinstance(item, dict):
            problems.add(where, "must be a table ([[services]] with name, owner, tier, ...)")
            continue
        before = len(problems.items)
        for key in item:
            if key not in SERVICE_KEYS:
                problems.add(
                    f"{where}.{key}", f"unknown key (known keys: {', '.join(sorted(SERVICE_KEYS))})"
                )
        name = item.get("name")
        if name is None:
            problems.add(f"{where}.name", "is required (a route name or an external service)")
        elif not isinstance(name, str) or not ROUTE_NAME_RE.match(name):
            problems.add(
                f"{where}.name",
                f"{name!r} is not a valid service name (letters, digits, '_', '.', '-'; at most 64)",
            )
        elif name in seen:
            problems.add(f"{where}.name", f"{name!r} is already declared by services[{seen[name]}]")
        else:
            seen[name] = i
        owner = _text(problems, f"{where}.owner", item.get("owner"))
        description = _text(problems, f"{where}.description", item.get("description"))
        runbook = _text(problems, f"{where}.runbook", item.get("runbook"))
        tier = item.get("tier")
        if tier is not None and tier not in TIERS:
            problems.add(f"{where}.tier", f"{tier!r} is not one of {', '.join(TIERS)}")
        target = item.get("sla_target")
        if target is not None:
            if isinstance(target, bool) or not isinstance(target, int | float):
                problems.add(f"{where}.sla_target", f"{target!r} is not a number")
            elif not 0 < target < 100:
                problems.add(
                    f"{where}.sla_target",
                    f"{target!r} is out of range (a percentage strictly between 0 and 100, "
                    "e.g. 99.9)",
                )
        deps_raw = item.get("depends_on", [])
        deps: list[str] = []
        if not isinstance(deps_raw, list) or not all(isinstance(d, str) for d in deps_raw):
            problems.add(f"{where}.depends_on", f"{deps_raw!r} must be a list of service names")
        else:
            for j, dep in enumerate(deps_raw):
                if dep == name:
                    problems.add(f"{where}.depends_on[{j}]", f"{dep!r} is the service itself")
                elif dep not in known:
                    names = ", ".join(sorted(known)) or "none"
                    problems.add(
                        f"{where}.depends_on[{j}]",
                        f"{dep!r} is neither a route nor a declared service (known: {names})",
                    )
                elif dep not in deps:
                    deps.append(dep)
        if len(problems.items) > before:
            continue
        assert isinstance(name, str)
        specs.append(
            ServiceSpec(
                name=name,
                owner=owner,
                tier=tier,
                sla_target=None if target is None else float(target),
                description=description,
                depends_on=tuple(deps),
                runbook=runbook,
            )
        )
    return tuple(specs)


def _table(problems: _Problems, name: str, raw: object, known: set[str]) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.add(name, f"must be a table ([{name}])")
        return None
    for key in raw:
        if key not in known:
            problems.add(f"{name}.{key}", f"unknown key (known keys: {', '.join(sorted(known))})")
    return raw


def parse_catalog_settings(problems: _Problems, raw: object) -> CatalogSettings:
    from suite.config import _number

    table = _table(problems, "catalog", raw, CATALOG_KEYS)
    if table is None:
        return CatalogSettings()
    values: dict[str, Any] = {}
    bounds: dict[str, tuple[float, float, bool]] = {
        "interval_seconds": (1, 86400, False),
        "downtime_error_ratio": (0, 1, False),
        "trace_lookback_minutes": (1, 7 * 24 * 60, False),
        "observed_ttl_days": (1, 3650, True),
    }
    for key in sorted(CATALOG_KEYS & set(table)):
        low, high, integer = bounds[key]
        v = _number(
            problems, f"catalog.{key}", table[key], minimum=low, maximum=high, integer=integer
        )
        if v is not None:
            values[key] = int(v) if integer else float(v)
    return CatalogSettings(**values)


def parse_problem_settings(problems: _Problems, raw: object) -> ProblemSettings:
    from suite.config import _number

    table = _table(problems, "problems", raw, PROBLEMS_KEYS)
    if table is None:
        return ProblemSettings()
    values: dict[str, Any] = {}
    for key, low, high, integer in (
        ("min_incidents", 2, 1000, True),
        ("window_days", 1, 400, True),
        ("interval_seconds", 1, 86400, False),
    ):
        if key in table:
            v = _number(
                problems, f"problems.{key}", table[key], minimum=low, maximum=high, integer=integer
            )
            if v is not None:
                values[key] = int(v) if integer else float(v)
    return ProblemSettings(**values)


def parse_catalog(
    problems: _Problems, data: dict[str, Any], routes: list[Route] | tuple[Route, ...]
) -> dict[str, Any]:
    """The GatewayConfig fields of the catalog area, from the whole TOML document."""
    return {
        "services": parse_services(problems, data.get("services"), routes),
        "catalog": parse_catalog_settings(problems, data.get("catalog")),
        "problems": parse_problem_settings(problems, data.get("problems")),
    }
