"""Gateway and worker configuration: one TOML file, validated before anything starts.

Every mistake is reported with the file, the key path and what is wrong; nothing here
starts a process or touches the store.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit

from suite.catalog_config import CatalogSettings, ProblemSettings, ServiceSpec  # [catalog]
from suite.changes_config import GATEWAY_ADMIN_KEYS, ChangesSettings, parse_changes_settings
from suite.errors import ConfigError
from suite.pool_config import (  # [pool]
    CircuitBreaker,
    LlmAlias,
    Retries,
    parse_llm_aliases,
    parse_route_pool,
    parse_upstream_entry,
)
from suite.prompt_routes import PromptRoute  # [llm-routing]
from suite.response_cache import CacheSettings  # [llm-routing]

if TYPE_CHECKING:
    from suite.capacity_config import CapacityLimit

ROUTE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
ROUTE_KEYS = {
    "name", "prefix", "upstreams", "strip_prefix",
    "llm_provider", "llm_api", "mcp", "capture_bodies",
    "provider_key",
    # [keys] route keys
    "auth", "rpm", "tpm",
    # [pool] route keys
    "strategy", "timeout_seconds", "circuit_breaker", "retries",
    # [llm-routing] route keys
    "cache",
    # [ops] route keys
    "version", "deprecated", "sunset", "deprecation_link", "request_headers", "response_headers",
    # [catalog] route keys
}  # fmt: skip
CAPTURE_POLICIES = ("none", "metadata", "redacted", "full")
LLM_APIS = ("openai", "anthropic")
CAPTURE_KEYS = {"max_body_bytes"}
REDACTION_KEYS = {"patterns"}
GATEWAY_KEYS = {
    "listen_host",
    "listen_port",
    "mode",
    "upstream_ca_file",
    "flush_interval_seconds",
    "flush_rows",
    "max_backlog_rows",
    *GATEWAY_ADMIN_KEYS,  # [changes] admin endpoint: admin_port, admin_token
}
WORKER_KEYS = {
    "ingest_interval_seconds",
    "rollup_interval_seconds",
    "detect_interval_seconds",
    "slo_interval_seconds",
    "notify_interval_seconds",
    "retention_interval_seconds",
    "retention_days",
    "rollup_retention_days",
    "forecast_interval_seconds",  # [capacity]
    "detect_settle_seconds",
}
TOP_LEVEL_KEYS = {
    "routes", "gateway", "worker", "capture", "redaction", "slos", "notify", "incidents",
    "detect",
    # [keys] top-level keys
    # [pool] top-level keys
    "llm_aliases",
    # [llm-routing] top-level keys
    "prompts",
    # [ops] top-level keys
    # [changes] top-level keys
    "changes",
    # [catalog] top-level keys
    "services", "catalog", "problems",
    # [capacity] top-level keys
    "capacity",
}  # fmt: skip
INCIDENTS_KEYS = {
    "group_window_minutes", "quiet_minutes", "reopen_window_minutes", "max_anomaly_age_minutes",
}  # fmt: skip
MODES = ("reverse", "regular")


class Upstream(NamedTuple):
    url: str
    scheme: str
    host: str
    port: int
    base_path: str  # "" or "/v2": prepended to the forwarded path
    # [pool] upstream fields (a table upstream sets them; a plain URL string keeps these)
    weight: int = 1  # share of traffic under strategy = "weighted"
    timeout_seconds: float | None = None  # this upstream's timeout; None: the route's


@dataclass(frozen=True)
class Route:
    name: str
    prefix: str
    upstreams: tuple[Upstream, ...]
    strip_prefix: bool = False
    llm_provider: str | None = None  # names the provider in rows; None: guessed per call
    llm_api: str | None = None  # 'openai' | 'anthropic' wire format; None: from provider
    mcp: bool = False  # parse JSON-RPC (MCP) on every call of this route
    capture_bodies: str = "none"
    # The provider's own key, resolved from "${ENV_VAR}" at load: injected by the gateway so
    # clients never hold it. Never printed (repr=False), never written anywhere.
    provider_key: str | None = field(default=None, repr=False)
    # [keys] route fields
    auth: str = "none"  # "key": callers must present a gateway key (suite.keys)
    rpm: int | None = None  # requests per minute on this route, all callers together
    tpm: int | None = None  # LLM tokens per minute on this route, all callers together
    # [pool] route fields
    strategy: str = "round_robin"  # 'round_robin' | 'weighted' | 'least_latency'
    timeout_seconds: float | None = None  # default per-upstream timeout (None: no cut-off)
    circuit_breaker: CircuitBreaker | None = None  # None: passive health off
    retries: Retries | None = None  # None: no retries
    # [llm-routing] route fields
    cache: CacheSettings | None = None  # [routes.cache]; None: this route's answers are not cached
    # [ops] route fields
    version: str | None = None  # API version label, on every row as route_version
    deprecated: bool = False
    deprecated_since: datetime | None = None  # None with deprecated: since the gateway saw it
    sunset: datetime | None = None
    deprecation_link: str | None = None
    # (action, name, value) in order remove, set, add; values may hold resolved ${ENV}.
    request_headers: tuple[tuple[str, str, str], ...] = field(default=(), repr=False)
    response_headers: tuple[tuple[str, str, str], ...] = field(default=(), repr=False)
    # [catalog] route fields

    @property
    def llm_api_family(self) -> str:
        if self.llm_api:
            return self.llm_api
        return "anthropic" if self.llm_provider == "anthropic" else "openai"

    def matches(self, path: str) -> bool:
        """Prefix match on a path-segment boundary: /claims matches /claims/1, not /claimsX."""
        if self.prefix == "/":
            return True
        if not path.startswith(self.prefix):
            return False
        rest = path[len(self.prefix) : len(self.prefix) + 1]
        return rest in ("", "/", "?")


@dataclass(frozen=True)
class GatewaySettings:
    listen_host: str = "127.0.0.1"
    listen_port: int = 8080
    mode: str = "reverse"
    upstream_ca_file: str | None = None
    flush_interval_seconds: float = 1.0
    flush_rows: int = 5000
    max_backlog_rows: int = 1_000_000


@dataclass(frozen=True)
class WorkerSettings:
    ingest_interval_seconds: float = 2.0
    rollup_interval_seconds: float = 10.0
    detect_interval_seconds: float = 60.0
    slo_interval_seconds: float = 60.0
    notify_interval_seconds: float = 15.0
    retention_interval_seconds: float = 3600.0
    # A minute is scored once this long has passed since it ended (late rows settle).
    detect_settle_seconds: float = 30.0
    forecast_interval_seconds: float = 3600.0  # [capacity] hourly forecasts
    # Raw requests (and bodies) are kept this long, but only once their minute is rolled up.
    retention_days: int = 30
    rollup_retention_days: int = 400


@dataclass(frozen=True)
class CaptureSettings:
    max_body_bytes: int = 64 * 1024


SLO_KINDS = ("availability", "latency")
SLO_KEYS = {"name", "service", "objective", "kind", "latency_threshold_ms", "window_days"}
NOTIFY_KEYS = {"repeat_interval_minutes", "webhooks", "email"}
WEBHOOK_KEYS = {"name", "url", "severities", "services", "timeout_seconds"}
EMAIL_KEYS = {
    "name", "smtp_host", "smtp_port", "from", "to", "severities", "services",
    "starttls", "username", "password", "timeout_seconds",
}  # fmt: skip
SEVERITIES = ("critical", "warning", "info")
ENV_REFERENCE_RE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


@dataclass(frozen=True)
class SLO:
    name: str
    service: str  # a route name
    objective: float  # percent, e.g. 99.9
    kind: str = "availability"  # 'availability' | 'latency'
    latency_threshold_ms: float | None = None
    window_days: int = 30


@dataclass(frozen=True)
class WebhookChannel:
    name: str
    url: str  # a URL or an env reference "${VAR}" (webhook URLs often carry a token)
    severities: tuple[str, ...] = ()  # empty: every severity
    services: tuple[str, ...] = ()  # empty: every service
    timeout_seconds: float = 10.0


@dataclass(frozen=True)
class EmailChannel:
    name: str
    smtp_host: str
    smtp_port: int
    sender: str  # the TOML key is `from`
    to: tuple[str, ...]
    severities: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    starttls: bool = False
    username: str | None = None  # literal or "${VAR}"
    password: str | None = None  # only ever "${VAR}": resolved at send time, never stored
    timeout_seconds: float = 10.0


@dataclass(frozen=True)
class NotifySettings:
    repeat_interval_minutes: float = 60.0
    webhooks: tuple[WebhookChannel, ...] = ()
    email: tuple[EmailChannel, ...] = ()


DETECT_KEYS = {"detector", "plugins"}


@dataclass(frozen=True)
class DetectSettings:
    """[detect]: which registered detector the worker runs, and modules that register more."""

    detector: str = "default"
    # Python modules ("pkg.mod") or .py files imported by the worker before it detects;
    # they call suite.detectors.register(...). Paths are relative to the config file.
    plugins: tuple[str, ...] = ()


@dataclass(frozen=True)
class IncidentSettings:
    """[incidents]: how anomalies group into incidents and when they resolve or reopen."""

    group_window_minutes: float = 5.0  # other signals of a service within this: one incident
    quiet_minutes: float = 15.0  # no anomaly for this long: auto-resolved
    reopen_window_minutes: float = 60.0  # recurs within this after resolve: reopened
    # Anomalies older than this when first scored (history imports, backfills) are kept
    # but open no incident; None: every anomaly counts, however old.
    max_anomaly_age_minutes: float | None = None


@dataclass(frozen=True)
class GatewayConfig:
    path: str
    routes: tuple[Route, ...] = ()
    gateway: GatewaySettings = field(default_factory=GatewaySettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    capture: CaptureSettings = field(default_factory=CaptureSettings)
    # Raw [[redaction.patterns]] tables; compiled by suite.redact (validated at load).
    redaction_patterns: tuple[dict[str, Any], ...] = ()
    slos: tuple[SLO, ...] = ()
    notify: NotifySettings = field(default_factory=NotifySettings)
    incidents: IncidentSettings = field(default_factory=IncidentSettings)
    detect: DetectSettings = field(default_factory=DetectSettings)
    # [keys] config fields
    # [pool] config fields
    llm_aliases: tuple[LlmAlias, ...] = ()  # [[llm_aliases]]: model aliases with fallbacks
    # [llm-routing] config fields
    prompts: tuple[PromptRoute, ...] = ()  # [[prompts]]: POST /prompts/<name>
    # [ops] config fields
    # [changes] config fields
    changes: ChangesSettings = field(default_factory=ChangesSettings)
    # [catalog] config fields
    services: tuple[ServiceSpec, ...] = ()  # [[services]] (suite.catalog_config)
    catalog: CatalogSettings = field(default_factory=CatalogSettings)
    problems: ProblemSettings = field(default_factory=ProblemSettings)
    # [capacity] config fields
    capacity: tuple[CapacityLimit, ...] = ()  # [[capacity]] limits (suite.capacity_config)

    def routes_by_specificity(self) -> tuple[Route, ...]:
        """Longest prefix first, so /claims/v2 wins over /claims."""
        return tuple(sorted(self.routes, key=lambda r: len(r.prefix), reverse=True))


class _Problems:
    """Collects every mistake in a file so the user fixes them in one pass."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.items: list[str] = []

    def add(self, key: str, message: str) -> None:
        self.items.append(f"{self.path}: {key}: {message}")

    def raise_if_any(self) -> None:
        if self.items:
            raise ConfigError("\n".join(self.items))


def parse_upstream_url(value: object) -> Upstream | str:
    """An Upstream, or the reason the value is not an http(s) URL."""
    if not isinstance(value, str) or not value.strip():
        return f"{value!r} is not a URL (expected a string like 'http://127.0.0.1:9001')"
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https"):
        return f"{value!r} is not an http(s) URL (scheme must be http or https)"
    if not parts.hostname:
        return f"{value!r} has no host"
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return f"{value!r} has an invalid port"
    if parts.query or parts.fragment:
        return f"{value!r} must not have a query string or fragment"
    return Upstream(value.strip(), parts.scheme, parts.hostname, port, parts.path.rstrip("/"))


def _check_keys(problems: _Problems, where: str, table: dict[str, Any], known: set[str]) -> None:
    for key in table:
        if key not in known:
            problems.add(
                f"{where}{key}" if where else key,
                f"unknown key (known keys: {', '.join(sorted(known))})",
            )


def _number(
    problems: _Problems,
    key: str,
    value: object,
    *,
    minimum: float,
    integer: bool = False,
    maximum: float | None = None,
) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        problems.add(key, f"{value!r} is not a number")
        return None
    if integer and not isinstance(value, int):
        problems.add(key, f"{value!r} is not a whole number")
        return None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        problems.add(key, f"{value!r} is out of range (must be {bound})")
        return None
    return value


def _table(
    problems: _Problems, name: str, raw: object, known: set[str], form: str = ""
) -> dict[str, Any] | None:
    """The top-level table `name`, its unknown keys reported; None when it is absent or
    not a table (reported too), so the caller falls back to the defaults."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.add(name, f"must be a table ({form or f'[{name}]'})")
        return None
    _check_keys(problems, f"{name}.", raw, known)
    return raw


def _parse_route(problems: _Problems, i: int, raw: object) -> Route | None:
    where = f"routes[{i}]"
    if not isinstance(raw, dict):
        problems.add(where, "must be a table ([[routes]] with name, prefix, upstreams)")
        return None
    _check_keys(problems, f"{where}.", raw, ROUTE_KEYS)
    ok = True
    name = raw.get("name")
    if name is None:
        problems.add(f"{where}.name", "is required")
        ok = False
    elif not isinstance(name, str) or not ROUTE_NAME_RE.match(name):
        problems.add(
            f"{where}.name",
            f"{name!r} is not a valid route name (letters, digits, '_', '.', '-'; at most 64)",
        )
        ok = False
    prefix = raw.get("prefix")
    if prefix is None:
        problems.add(f"{where}.prefix", "is required")
        ok = False
    elif not isinstance(prefix, str) or not prefix.startswith("/") or re.search(r"[\s?#]", prefix):
        problems.add(
            f"{where}.prefix",
            f"{prefix!r} must be a path starting with '/' (no spaces, '?' or '#')",
        )
        ok = False
    else:
        prefix = prefix.rstrip("/") or "/"
    upstreams_raw = raw.get("upstreams")
    upstreams: list[Upstream] = []
    if upstreams_raw is None:
        problems.add(f"{where}.upstreams", "is required (a list of http(s) URLs)")
        ok = False
    elif not isinstance(upstreams_raw, list) or not upstreams_raw:
        problems.add(f"{where}.upstreams", "must be a non-empty list of http(s) URLs")
        ok = False
    else:
        for j, u in enumerate(upstreams_raw):
            parsed = parse_upstream_entry(u)  # [pool] a URL string or { url, weight, ... }
            if isinstance(parsed, str):
                problems.add(f"{where}.upstreams[{j}]", parsed)
                ok = False
            else:
                upstreams.append(parsed)
    strip = raw.get("strip_prefix", False)
    if not isinstance(strip, bool):
        problems.add(f"{where}.strip_prefix", f"{strip!r} must be true or false")
        ok = False
    provider = raw.get("llm_provider")
    if provider is not None and (
        not isinstance(provider, str) or not ROUTE_NAME_RE.match(provider)
    ):
        problems.add(
            f"{where}.llm_provider", f"{provider!r} is not a provider name (e.g. 'openai', 'vllm')"
        )
        ok = False
    api = raw.get("llm_api")
    if api is not None and api not in LLM_APIS:
        problems.add(f"{where}.llm_api", f"{api!r} is not one of {', '.join(LLM_APIS)}")
        ok = False
    mcp = raw.get("mcp", False)
    if not isinstance(mcp, bool):
        problems.add(f"{where}.mcp", f"{mcp!r} must be true or false")
        ok = False
    capture = raw.get("capture_bodies", "none")
    if capture not in CAPTURE_POLICIES:
        problems.add(
            f"{where}.capture_bodies", f"{capture!r} is not one of {', '.join(CAPTURE_POLICIES)}"
        )
        ok = False
    extra: dict[str, Any] = {}  # more Route fields, by area:
    if "provider_key" in raw:
        ref = raw["provider_key"]
        m = ENV_REFERENCE_RE.match(ref) if isinstance(ref, str) else None
        if m is None:
            problems.add(
                f"{where}.provider_key",
                'must be an environment reference like "${OPENAI_API_KEY}" '
                "(a literal key in a config file would be a secret on disk)",
            )
            ok = False
        elif not os.environ.get(m.group(1)):
            problems.add(
                f"{where}.provider_key", f"environment variable {m.group(1)} is not set or empty"
            )
            ok = False
        else:
            extra["provider_key"] = os.environ[m.group(1)]
    # [keys] route parsing
    from suite.keys import parse_route_policy

    extra.update(parse_route_policy(problems, where, raw))
    # [pool] route parsing
    ok = parse_route_pool(problems, where, raw, extra, upstreams) and ok
    # [llm-routing] route parsing
    if "cache" in raw:
        from suite.response_cache import parse_route_cache

        extra["cache"] = parse_route_cache(problems, where, raw["cache"])
    # [ops] route parsing
    from suite.api_versions import parse_route_keys as parse_ops_route_keys

    parse_ops_route_keys(problems, where, raw, extra)
    # [catalog] route parsing
    if not ok:
        return None
    assert isinstance(name, str) and isinstance(prefix, str)
    return Route(
        name=name,
        prefix=prefix,
        upstreams=tuple(upstreams),
        strip_prefix=strip,
        llm_provider=provider,
        llm_api=api,
        mcp=mcp,
        capture_bodies=capture,
        **extra,
    )


def _parse_gateway(problems: _Problems, raw: object) -> GatewaySettings:
    raw = _table(problems, "gateway", raw, GATEWAY_KEYS)
    if raw is None:
        return GatewaySettings()
    values: dict[str, Any] = {}
    if "listen_host" in raw:
        if isinstance(raw["listen_host"], str) and raw["listen_host"]:
            values["listen_host"] = raw["listen_host"]
        else:
            problems.add("gateway.listen_host", f"{raw['listen_host']!r} is not a host name")
    if "listen_port" in raw:
        v = _number(
            problems,
            "gateway.listen_port",
            raw["listen_port"],
            minimum=0,
            maximum=65535,
            integer=True,
        )
        if v is not None:
            values["listen_port"] = int(v)
    if "mode" in raw:
        if raw["mode"] in MODES:
            values["mode"] = raw["mode"]
        else:
            problems.add("gateway.mode", f"{raw['mode']!r} is not one of {', '.join(MODES)}")
    if "upstream_ca_file" in raw:
        ca = raw["upstream_ca_file"]
        if not isinstance(ca, str) or not Path(ca).expanduser().is_file():
            problems.add("gateway.upstream_ca_file", f"{ca!r} is not a readable file")
        else:
            values["upstream_ca_file"] = str(Path(ca).expanduser())
    for key, minimum, integer in (
        ("flush_interval_seconds", 0.05, False),
        ("flush_rows", 1, True),
        ("max_backlog_rows", 1000, True),
    ):
        if key in raw:
            v = _number(problems, f"gateway.{key}", raw[key], minimum=minimum, integer=integer)
            if v is not None:
                values[key] = v
    return GatewaySettings(**values)


def _parse_worker(problems: _Problems, raw: object) -> WorkerSettings:
    raw = _table(problems, "worker", raw, WORKER_KEYS)
    if raw is None:
        return WorkerSettings()
    values: dict[str, Any] = {}
    for key in (
        "ingest_interval_seconds",
        "rollup_interval_seconds",
        "detect_interval_seconds",
        "slo_interval_seconds",
        "notify_interval_seconds",
        "retention_interval_seconds",
        "forecast_interval_seconds",
        "detect_settle_seconds",
    ):
        if key in raw:
            v = _number(problems, f"worker.{key}", raw[key], minimum=0.1)
            if v is not None:
                values[key] = float(v)
    for key in ("retention_days", "rollup_retention_days"):
        if key in raw:
            v = _number(problems, f"worker.{key}", raw[key], minimum=1, integer=True)
            if v is not None:
                values[key] = int(v)
    return WorkerSettings(**values)


def parse_gateway_config(data: dict[str, Any], path: str) -> GatewayConfig:
    """Validate a parsed TOML document; raises ConfigError listing every mistake."""
    problems = _Problems(path)
    _check_keys(problems, "", data, TOP_LEVEL_KEYS)
    routes: list[Route] = []
    raw_routes = data.get("routes", [])
    if not isinstance(raw_routes, list):
        problems.add("routes", "must be an array of tables ([[routes]])")
        raw_routes = []
    for i, raw in enumerate(raw_routes):
        route = _parse_route(problems, i, raw)
        if route is not None:
            routes.append(route)
    seen_names: dict[str, int] = {}
    seen_prefixes: dict[str, int] = {}
    for i, route in enumerate(routes):
        if route.name in seen_names:
            problems.add(
                f"routes[{i}].name",
                f"{route.name!r} is already used by routes[{seen_names[route.name]}]",
            )
        seen_names.setdefault(route.name, i)
        if route.prefix in seen_prefixes:
            problems.add(
                f"routes[{i}].prefix",
                f"{route.prefix!r} is already used by routes[{seen_prefixes[route.prefix]}]",
            )
        seen_prefixes.setdefault(route.prefix, i)
    gateway = _parse_gateway(problems, data.get("gateway"))
    worker = _parse_worker(problems, data.get("worker"))
    capture = _parse_capture(problems, data.get("capture"))
    patterns = _parse_redaction(problems, data.get("redaction"), path)
    slos = _parse_slos(problems, data.get("slos"), routes, worker)
    notify = _parse_notify(problems, data.get("notify"))
    incidents = _parse_incidents(problems, data.get("incidents"))
    extra: dict[str, Any] = {}  # more GatewayConfig fields, by area:
    extra["detect"] = _parse_detect(problems, data.get("detect"), path)
    # [keys] config parsing
    # [pool] config parsing
    extra["llm_aliases"] = parse_llm_aliases(
        problems,
        data.get("llm_aliases"),
        routes,
        {r.get("name") for r in raw_routes if isinstance(r, dict)},
    )
    # [llm-routing] config parsing
    from suite.prompt_routes import parse_prompts

    extra["prompts"] = parse_prompts(
        problems, data.get("prompts"), routes, extra.get("llm_aliases", ())
    )
    # [ops] config parsing
    # [changes] config parsing
    extra["changes"] = parse_changes_settings(problems, data)
    # [catalog] config parsing
    from suite.catalog_config import parse_catalog

    extra.update(parse_catalog(problems, data, routes))
    # [capacity] config parsing
    from suite.capacity_config import parse_capacity_limits

    extra["capacity"] = parse_capacity_limits(problems, data.get("capacity"), routes)
    problems.raise_if_any()
    return GatewayConfig(
        path=path,
        routes=tuple(routes),
        gateway=gateway,
        worker=worker,
        capture=capture,
        redaction_patterns=patterns,
        slos=slos,
        notify=notify,
        incidents=incidents,
        **extra,
    )


def _parse_detect(problems: _Problems, raw: object, path: str) -> DetectSettings:
    raw = _table(problems, "detect", raw, DETECT_KEYS)
    if raw is None:
        return DetectSettings()
    detector = raw.get("detector", "default")
    if not isinstance(detector, str) or not re.match(r"^[A-Za-z0-9_-]+$", detector):
        problems.add("detect.detector", f"{detector!r} is not a detector name")
        detector = "default"
    plugins: list[str] = []
    listed = _string_list(problems, "detect.plugins", raw.get("plugins", [])) or ()
    for i, plugin in enumerate(listed):
        if plugin.endswith(".py"):
            file = Path(plugin).expanduser()
            if not file.is_absolute():
                file = Path(path).resolve().parent / file
            if not file.is_file():
                problems.add(f"detect.plugins[{i}]", f"{plugin!r}: no such file ({file})")
                continue
            plugins.append(str(file))
        elif re.match(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$", plugin):
            plugins.append(plugin)
        else:
            problems.add(
                f"detect.plugins[{i}]", f"{plugin!r} is neither a module name nor a .py file"
            )
    return DetectSettings(detector=detector, plugins=tuple(plugins))


def _parse_incidents(problems: _Problems, raw: object) -> IncidentSettings:
    raw = _table(problems, "incidents", raw, INCIDENTS_KEYS)
    if raw is None:
        return IncidentSettings()
    values: dict[str, float] = {}
    for key in sorted(INCIDENTS_KEYS & set(raw)):
        v = _number(problems, f"incidents.{key}", raw[key], minimum=0, maximum=7 * 24 * 60)
        if v is not None:
            values[key] = float(v)
    return IncidentSettings(**values)


def _parse_capture(problems: _Problems, raw: object) -> CaptureSettings:
    raw = _table(problems, "capture", raw, CAPTURE_KEYS)
    if raw is None:
        return CaptureSettings()
    if "max_body_bytes" in raw:
        v = _number(
            problems, "capture.max_body_bytes", raw["max_body_bytes"], minimum=0, integer=True
        )
        if v is not None:
            return CaptureSettings(max_body_bytes=int(v))
    return CaptureSettings()


def _parse_redaction(problems: _Problems, raw: object, path: str) -> tuple[dict[str, Any], ...]:
    raw = _table(
        problems, "redaction", raw, REDACTION_KEYS, "[redaction] or [[redaction.patterns]]"
    )
    if raw is None:
        return ()
    specs = raw.get("patterns", [])
    if not isinstance(specs, list) or not all(isinstance(x, dict) for x in specs):
        problems.add(
            "redaction.patterns",
            "must be an array of tables ([[redaction.patterns]] with name, regex)",
        )
        return ()
    from suite.redact import compile_custom_patterns

    try:
        compile_custom_patterns(specs, f"{path}: redaction.patterns")
    except ConfigError as e:
        problems.items.append(str(e))
        return ()
    return tuple(specs)


def load_gateway_config(path: str | Path, *, missing_ok: bool = False) -> GatewayConfig:
    """Read and validate a gateway TOML file. A missing file is an error unless missing_ok."""
    p = Path(path)
    if not p.exists():
        if missing_ok:
            return GatewayConfig(path=str(p))
        raise ConfigError(f"{p}: file not found (pass --config FILE or create it)")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: cannot read: {e}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML: {e}") from None
    return parse_gateway_config(data, str(p))


# -- SLOs and notifications ---------------------------------------------------------------
def _parse_slos(
    problems: _Problems, raw: object, routes: list[Route], worker: WorkerSettings
) -> tuple[SLO, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        problems.add("slos", "must be an array of tables ([[slos]] with name, service, objective)")
        return ()
    route_names = {r.name for r in routes}
    slos: list[SLO] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(raw):
        where = f"slos[{i}]"
        if not isinstance(item, dict):
            problems.add(where, "must be a table ([[slos]] with name, service, objective)")
            continue
        _check_keys(problems, f"{where}.", item, SLO_KEYS)
        before = len(problems.items)
        name = item.get("name")
        if name is None:
            problems.add(f"{where}.name", "is required")
        elif not isinstance(name, str) or not ROUTE_NAME_RE.match(name):
            problems.add(
                f"{where}.name",
                f"{name!r} is not a valid SLO name (letters, digits, '_', '.', '-'; at most 64)",
            )
        elif name in seen:
            problems.add(f"{where}.name", f"{name!r} is already used by slos[{seen[name]}]")
        else:
            seen[name] = i
        service = item.get("service")
        if service is None:
            problems.add(f"{where}.service", "is required (the name of a route)")
        elif service not in route_names:
            known = ", ".join(sorted(route_names)) or "none defined"
            problems.add(f"{where}.service", f"{service!r} is not a route name (routes: {known})")
        objective = item.get("objective")
        if objective is None:
            problems.add(f"{where}.objective", "is required (a percentage such as 99.9)")
        elif isinstance(objective, bool) or not isinstance(objective, int | float):
            problems.add(f"{where}.objective", f"{objective!r} is not a number")
        elif not 0 < objective < 100:
            problems.add(
                f"{where}.objective",
                f"{objective!r} is out of range (a percentage strictly between 0 and 100)",
            )
        kind = item.get("kind", "availability")
        if kind not in SLO_KINDS:
            problems.add(f"{where}.kind", f"{kind!r} is not one of {', '.join(SLO_KINDS)}")
        threshold = item.get("latency_threshold_ms")
        if kind == "latency" and threshold is None:
            problems.add(f"{where}.latency_threshold_ms", "is required for a latency SLO")
        elif kind != "latency" and threshold is not None:
            problems.add(f"{where}.latency_threshold_ms", 'only applies to kind = "latency"')
        elif threshold is not None:
            _number(problems, f"{where}.latency_threshold_ms", threshold, minimum=0.001)
        window = item.get("window_days", 30)
        _number(problems, f"{where}.window_days", window, minimum=1, maximum=400, integer=True)
        # A latency SLO counts raw requests, so its window must still be on disk.
        if (
            kind == "latency"
            and isinstance(window, int)
            and not isinstance(window, bool)
            and window > worker.retention_days
        ):
            problems.add(
                f"{where}.window_days",
                f"{window} is longer than worker.retention_days ({worker.retention_days}): a "
                "latency SLO is computed from raw requests, so raise retention_days",
            )
        if len(problems.items) > before:
            continue
        assert isinstance(name, str) and isinstance(service, str)
        assert isinstance(objective, int | float) and isinstance(window, int)
        slos.append(
            SLO(
                name=name,
                service=service,
                objective=float(objective),
                kind=kind,
                latency_threshold_ms=None if threshold is None else float(threshold),
                window_days=window,
            )
        )
    return tuple(slos)


def _string_list(
    problems: _Problems, key: str, value: object, *, allowed: tuple[str, ...] | None = None
) -> tuple[str, ...] | None:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        problems.add(key, f"{value!r} must be a list of strings")
        return None
    if allowed is not None:
        bad = [v for v in value if v not in allowed]
        if bad:
            problems.add(key, f"{bad[0]!r} is not one of {', '.join(allowed)}")
            return None
    return tuple(value)


def _channel_common(
    problems: _Problems, where: str, item: dict[str, Any], seen: dict[str, str]
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    name = item.get("name")
    if name is None:
        problems.add(f"{where}.name", "is required")
    elif not isinstance(name, str) or not ROUTE_NAME_RE.match(name):
        problems.add(f"{where}.name", f"{name!r} is not a valid channel name")
    elif name in seen:
        problems.add(f"{where}.name", f"{name!r} is already used by {seen[name]}")
    else:
        seen[name] = where
        values["name"] = name
    if "severities" in item:
        sev = _string_list(problems, f"{where}.severities", item["severities"], allowed=SEVERITIES)
        if sev is not None:
            values["severities"] = sev
    if "services" in item:
        svc = _string_list(problems, f"{where}.services", item["services"])
        if svc is not None:
            values["services"] = svc
    if "timeout_seconds" in item:
        t = _number(problems, f"{where}.timeout_seconds", item["timeout_seconds"], minimum=0.1)
        if t is not None:
            values["timeout_seconds"] = float(t)
    return values


def _parse_notify(problems: _Problems, raw: object) -> NotifySettings:
    raw = _table(
        problems, "notify", raw, NOTIFY_KEYS, "[notify], [[notify.webhooks]], [[notify.email]]"
    )
    if raw is None:
        return NotifySettings()
    repeat = 60.0
    if "repeat_interval_minutes" in raw:
        v = _number(
            problems, "notify.repeat_interval_minutes", raw["repeat_interval_minutes"], minimum=1
        )
        repeat = float(v) if v is not None else repeat
    seen: dict[str, str] = {}
    webhooks: list[WebhookChannel] = []
    raw_hooks = raw.get("webhooks", [])
    if not isinstance(raw_hooks, list):
        problems.add("notify.webhooks", "must be an array of tables ([[notify.webhooks]])")
        raw_hooks = []
    for i, item in enumerate(raw_hooks):
        where = f"notify.webhooks[{i}]"
        if not isinstance(item, dict):
            problems.add(where, "must be a table with name and url")
            continue
        _check_keys(problems, f"{where}.", item, WEBHOOK_KEYS)
        before = len(problems.items)
        values = _channel_common(problems, where, item, seen)
        url = item.get("url")
        if url is None:
            problems.add(f"{where}.url", 'is required (an http(s) URL or "${ENV_VAR}")')
        elif not (isinstance(url, str) and ENV_REFERENCE_RE.match(url)):
            parsed = parse_upstream_url(url)
            if isinstance(parsed, str):
                problems.add(f"{where}.url", parsed)
        if len(problems.items) == before:
            webhooks.append(WebhookChannel(url=str(url), **values))
    emails: list[EmailChannel] = []
    raw_email = raw.get("email", [])
    if not isinstance(raw_email, list):
        problems.add("notify.email", "must be an array of tables ([[notify.email]])")
        raw_email = []
    for i, item in enumerate(raw_email):
        where = f"notify.email[{i}]"
        if not isinstance(item, dict):
            problems.add(where, "must be a table with name, smtp_host, from, to")
            continue
        _check_keys(problems, f"{where}.", item, EMAIL_KEYS)
        before = len(problems.items)
        values = _channel_common(problems, where, item, seen)
        host = item.get("smtp_host")
        if not isinstance(host, str) or not host:
            problems.add(f"{where}.smtp_host", f"{host!r} is required (a host name)")
        port = _number(
            problems,
            f"{where}.smtp_port",
            item.get("smtp_port", 25),
            minimum=1,
            maximum=65535,
            integer=True,
        )
        sender = item.get("from")
        if not isinstance(sender, str) or "@" not in sender:
            problems.add(f"{where}.from", f"{sender!r} is required (an email address)")
        to = _string_list(problems, f"{where}.to", item.get("to"))
        if to is not None and (not to or not all("@" in t for t in to)):
            problems.add(f"{where}.to", f"{list(to)!r} must be a non-empty list of addresses")
        starttls = item.get("starttls", False)
        if not isinstance(starttls, bool):
            problems.add(f"{where}.starttls", f"{starttls!r} must be true or false")
        username = item.get("username")
        if username is not None and (not isinstance(username, str) or not username):
            problems.add(f"{where}.username", f"{username!r} must be a string")
        password = item.get("password")
        # A password written into the file would end up in backups and shell history;
        # only a reference to the environment is accepted.
        if password is not None and not (
            isinstance(password, str) and ENV_REFERENCE_RE.match(password)
        ):
            problems.add(
                f"{where}.password",
                'must be an environment reference such as "${SMTP_PASSWORD}", not the password',
            )
        if len(problems.items) == before:
            emails.append(
                EmailChannel(
                    smtp_host=str(host),
                    smtp_port=int(port or 25),
                    sender=str(sender),
                    to=tuple(to or ()),
                    starttls=starttls,
                    username=username,
                    password=password,
                    **values,
                )
            )
    return NotifySettings(
        repeat_interval_minutes=repeat, webhooks=tuple(webhooks), email=tuple(emails)
    )
