"""`[[capacity]]` limits: per service (a route) and optionally per LLM model on it.

Parsed and validated with the rest of the gateway config (suite.config calls
`parse_capacity_limits`); the forecast job compares its forecasts against these. Nothing
here reads the store or imports the numerical stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from suite.config import Route, _Problems

# The limits a [[capacity]] table may set, each compared against one forecast metric.
LIMIT_KEYS = ("max_rps", "max_p95_ms", "token_quota_per_day", "monthly_budget_usd")
CAPACITY_KEYS = {"service", "model", *LIMIT_KEYS}
# The forecast metrics (suite.forecast.METRICS), here so the CLI needs no numerical imports.
METRIC_NAMES = ("rps", "rps_peak", "p95_ms", "tokens", "cost_usd")


@dataclass(frozen=True)
class CapacityLimit:
    """Limits of one service (`model` None) or of one LLM model served by that route."""

    service: str
    model: str | None = None
    max_rps: float | None = None  # requests per second, against the busiest minute
    max_p95_ms: float | None = None  # p95 latency in milliseconds
    token_quota_per_day: float | None = None  # prompt + completion tokens per UTC day
    monthly_budget_usd: float | None = None  # spend per calendar month (UTC)

    @property
    def series(self) -> tuple[str, str, str]:
        """(service, dimension, key) of the metrics_1m series these limits apply to."""
        if self.model is None:
            return (self.service, "service", "")
        return (self.service, "model", self.model)

    def limits(self) -> dict[str, float]:
        return {k: v for k in LIMIT_KEYS if (v := getattr(self, k)) is not None}


def parse_capacity_limits(
    problems: _Problems, raw: object, routes: list[Route] | tuple[Route, ...]
) -> tuple[CapacityLimit, ...]:
    """Every [[capacity]] table, each mistake reported with its key path."""
    from suite.config import _check_keys

    if raw is None:
        return ()
    form = "[[capacity]] with service and at least one of " + ", ".join(LIMIT_KEYS)
    if not isinstance(raw, list):
        problems.add("capacity", f"must be an array of tables ({form})")
        return ()
    route_names = {r.name for r in routes}
    seen: dict[tuple[str, str | None], int] = {}
    out: list[CapacityLimit] = []
    for i, item in enumerate(raw):
        where = f"capacity[{i}]"
        if not isinstance(item, dict):
            problems.add(where, f"must be a table ({form})")
            continue
        before = len(problems.items)
        _check_keys(problems, f"{where}.", item, CAPACITY_KEYS)
        service = item.get("service")
        if service is None:
            problems.add(f"{where}.service", "is required (the name of a route)")
        elif not isinstance(service, str) or service not in route_names:
            known = ", ".join(sorted(route_names)) or "none defined"
            problems.add(f"{where}.service", f"{service!r} is not a route name (routes: {known})")
        model = item.get("model")
        if model is not None and (not isinstance(model, str) or not model.strip()):
            problems.add(f"{where}.model", f"{model!r} must be an LLM model name (a string)")
        values: dict[str, Any] = {}
        for key in LIMIT_KEYS:
            if key not in item:
                continue
            v = item[key]
            if isinstance(v, bool) or not isinstance(v, int | float):
                problems.add(f"{where}.{key}", f"{v!r} is not a number")
            elif not v > 0 or v != v or v == float("inf"):
                problems.add(f"{where}.{key}", f"{v!r} must be a positive number")
            else:
                values[key] = float(v)
        if not any(k in item for k in LIMIT_KEYS):
            problems.add(where, f"sets no limit (give at least one of {', '.join(LIMIT_KEYS)})")
        if len(problems.items) > before:
            continue
        assert isinstance(service, str)
        ident = (service, model)
        if ident in seen:
            what = f"service {service!r}" + (f" model {model!r}" if model else "")
            problems.add(where, f"{what} already has limits in capacity[{seen[ident]}]")
            continue
        seen[ident] = i
        out.append(CapacityLimit(service=service, model=model, **values))
    return tuple(out)
