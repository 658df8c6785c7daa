"""Config of upstream pools (strategies, timeouts, circuit breakers, retries) and of LLM
model aliases with ordered fallback targets: the types and their validation.

Pure parsing: never starts anything; every mistake goes to the caller's problem list so
the whole file is reported in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from suite.config import GatewayConfig, Route, Upstream, _Problems

STRATEGIES = ("round_robin", "weighted", "least_latency")
UPSTREAM_TABLE_KEYS = {"url", "weight", "timeout_seconds"}
CIRCUIT_BREAKER_KEYS = {"failures", "cooldown_seconds"}
RETRY_KEYS = {"attempts", "backoff_ms"}
ALIAS_KEYS = {"name", "targets"}
MAX_WEIGHT = 1000


@dataclass(frozen=True)
class CircuitBreaker:
    """Passive health: open after `failures` consecutive failures (connect error, timeout,
    5xx), send nothing for `cooldown_seconds`, then let one probe request through."""

    failures: int = 5
    cooldown_seconds: float = 30.0


@dataclass(frozen=True)
class Retries:
    """Retry idempotent requests (GET/HEAD/PUT/DELETE/OPTIONS) on connect errors, timeouts
    and 502/503/504, on another upstream when there is one. `attempts` counts the retries
    after the first try (2: up to three tries); back-off doubles from `backoff_ms`."""

    attempts: int = 2
    backoff_ms: float = 100.0


@dataclass(frozen=True)
class AliasTarget:
    route: str  # a route name
    model: str  # the model name sent to that route's provider

    def __str__(self) -> str:
        return f"{self.route}:{self.model}"


@dataclass(frozen=True)
class LlmAlias:
    """`model = name` from a client is served by the first target that answers; the next
    one is tried on 429, 5xx, connect errors and timeouts."""

    name: str
    targets: tuple[AliasTarget, ...]
    api_family: str = "openai"  # the wire format every target speaks


def parse_upstream_table(value: dict[str, Any]) -> Upstream | str:
    """`{ url = "...", weight = 3, timeout_seconds = 5 }`: an Upstream, or what is wrong."""
    from suite.config import parse_upstream_url

    wrong: list[str] = []
    unknown = sorted(set(value) - UPSTREAM_TABLE_KEYS)
    if unknown:
        wrong.append(
            f"unknown key {unknown[0]!r} (known keys: {', '.join(sorted(UPSTREAM_TABLE_KEYS))})"
        )
    if "url" not in value:
        wrong.append("url is required (an http(s) URL)")
        parsed: Upstream | str = ""
    else:
        parsed = parse_upstream_url(value["url"])
        if isinstance(parsed, str):
            wrong.append(f"url: {parsed}")
    weight = value.get("weight", 1)
    if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= MAX_WEIGHT:
        wrong.append(f"weight: {weight!r} must be a whole number between 0 and {MAX_WEIGHT}")
    timeout = value.get("timeout_seconds")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
    ):
        wrong.append(f"timeout_seconds: {timeout!r} must be a number of seconds > 0")
    if wrong or isinstance(parsed, str):
        return "; ".join(wrong)
    return parsed._replace(
        weight=weight, timeout_seconds=None if timeout is None else float(timeout)
    )


def parse_upstream_entry(value: object) -> Upstream | str:
    """A plain URL string or an upstream table."""
    from suite.config import parse_upstream_url

    if isinstance(value, dict):
        return parse_upstream_table(value)
    return parse_upstream_url(value)


def _sub_table(
    problems: _Problems, key: str, raw: object, known: set[str]
) -> dict[str, Any] | None:
    from suite.config import _check_keys

    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.add(key, f"must be a table ([{key.split('.')[-1]}] under the route)")
        return None
    _check_keys(problems, f"{key}.", raw, known)
    return raw


def parse_route_pool(
    problems: _Problems,
    where: str,
    raw: dict[str, Any],
    extra: dict[str, Any],
    upstreams: list[Upstream],
) -> bool:
    """Validate the pool keys of one route into `extra` (Route fields); False on a mistake."""
    from suite.config import _number

    before = len(problems.items)
    strategy = raw.get("strategy", "round_robin")
    if strategy not in STRATEGIES:
        problems.add(f"{where}.strategy", f"{strategy!r} is not one of {', '.join(STRATEGIES)}")
    else:
        extra["strategy"] = strategy
    if upstreams and not any(u.weight > 0 for u in upstreams):
        problems.add(f"{where}.upstreams", "every upstream has weight 0: nothing could serve")
    if "timeout_seconds" in raw:
        t = _number(problems, f"{where}.timeout_seconds", raw["timeout_seconds"], minimum=0.001)
        if t is not None:
            extra["timeout_seconds"] = float(t)
    cb = _sub_table(
        problems, f"{where}.circuit_breaker", raw.get("circuit_breaker"), CIRCUIT_BREAKER_KEYS
    )
    if cb is not None:
        failures = _number(
            problems,
            f"{where}.circuit_breaker.failures",
            cb.get("failures", 5),
            minimum=1,
            maximum=10_000,
            integer=True,
        )
        cooldown = _number(
            problems,
            f"{where}.circuit_breaker.cooldown_seconds",
            cb.get("cooldown_seconds", 30),
            minimum=0.01,
            maximum=86_400,
        )
        if failures is not None and cooldown is not None:
            extra["circuit_breaker"] = CircuitBreaker(int(failures), float(cooldown))
    rt = _sub_table(problems, f"{where}.retries", raw.get("retries"), RETRY_KEYS)
    if rt is not None:
        attempts = _number(
            problems,
            f"{where}.retries.attempts",
            rt.get("attempts", 2),
            minimum=0,
            maximum=10,
            integer=True,
        )
        backoff = _number(
            problems,
            f"{where}.retries.backoff_ms",
            rt.get("backoff_ms", 100),
            minimum=0,
            maximum=60_000,
        )
        if attempts is not None and backoff is not None:
            extra["retries"] = Retries(int(attempts), float(backoff))
    return len(problems.items) == before


def parse_llm_aliases(
    problems: _Problems, raw: object, routes: list[Route], raw_route_names: set[object]
) -> tuple[LlmAlias, ...]:
    """[[llm_aliases]] tables. `raw_route_names` holds every route name written in the file,
    so a target naming a route that has its own mistake is not reported twice."""
    from suite.config import _check_keys

    if raw is None:
        return ()
    if not isinstance(raw, list):
        problems.add(
            "llm_aliases", "must be an array of tables ([[llm_aliases]] with name, targets)"
        )
        return ()
    by_name = {r.name: r for r in routes}
    aliases: list[LlmAlias] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(raw):
        where = f"llm_aliases[{i}]"
        if not isinstance(item, dict):
            problems.add(where, "must be a table with name and targets")
            continue
        _check_keys(problems, f"{where}.", item, ALIAS_KEYS)
        before = len(problems.items)
        name = item.get("name")
        if name is None:
            problems.add(f"{where}.name", "is required (the model name clients send)")
        elif not isinstance(name, str) or not name.strip() or ":" in name or len(name) > 128:
            problems.add(
                f"{where}.name",
                f"{name!r} is not a valid alias name (a model name without ':', which marks "
                "'<route>:<model>' targets)",
            )
        elif name in seen:
            problems.add(f"{where}.name", f"{name!r} is already used by llm_aliases[{seen[name]}]")
        else:
            seen[name] = i
        label = name if isinstance(name, str) else f"llm_aliases[{i}]"
        targets_raw = item.get("targets")
        targets: list[AliasTarget] = []
        families: dict[str, str] = {}
        if not isinstance(targets_raw, list) or not targets_raw:
            problems.add(
                f"{where}.targets",
                'must be a non-empty list of "<route name>:<model>" strings, in fallback order',
            )
            targets_raw = []
        for j, t in enumerate(targets_raw):
            key = f"{where}.targets[{j}]"
            route_name, sep, model = t.partition(":") if isinstance(t, str) else ("", "", "")
            if not sep or not route_name or not model.strip():
                problems.add(key, f'{t!r} must be "<route name>:<model>"')
                continue
            route = by_name.get(route_name)
            if route is None:
                if route_name in raw_route_names:
                    continue  # that route's own mistake is already reported
                known = ", ".join(sorted(by_name)) or "none defined"
                problems.add(
                    key,
                    f"alias {label} target {t}: no route named {route_name!r} (routes: {known})",
                )
                continue
            if route.mcp:
                problems.add(key, f"alias {label} target {t}: route {route_name!r} is an MCP route")
                continue
            families[str(t)] = route.llm_api_family
            targets.append(AliasTarget(route_name, model.strip()))
        if len(set(families.values())) > 1:
            spoken = ", ".join(f"{t} ({f})" for t, f in families.items())
            problems.add(
                f"{where}.targets",
                f"alias {label} mixes wire formats ({spoken}): every target must speak the "
                "client's format (openai or anthropic); make one alias per format",
            )
        if len(problems.items) > before:
            continue
        assert isinstance(name, str)
        family = next(iter(families.values()), "openai")
        aliases.append(LlmAlias(name, tuple(targets), family))
    return tuple(aliases)


def resolve_alias(config: GatewayConfig, name: str) -> list[tuple[Route, str]]:
    """The (route, model) targets of alias `name`, in fallback order; [] if no such alias.
    Also accepts a single "<route>:<model>" target (as prompt routes may name one)."""
    routes = {r.name: r for r in config.routes}
    for alias in config.llm_aliases:
        if alias.name == name:
            return [(routes[t.route], t.model) for t in alias.targets if t.route in routes]
    route_name, sep, model = name.partition(":")
    if sep and route_name in routes and model:
        return [(routes[route_name], model)]
    return []
