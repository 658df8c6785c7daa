"""The [ops] addons with mitmproxy's test flows: chaos drills, route headers, reload."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from mitmproxy import http
from mitmproxy.test import tflow

from proxy_addons.chaos import CHAOS_HEADER, ChaosDrills
from proxy_addons.headers import RouteHeaders
from proxy_addons.reload import apply_config, config_addons
from suite.chaos import Drill, chaos_path, write_drills
from suite.config import GatewayConfig, parse_gateway_config
from suite.home import Home


def make_config(**claims: object) -> GatewayConfig:
    return parse_gateway_config(
        {"routes": [
            {"name": "claims", "prefix": "/claims", "upstreams": ["http://127.0.0.1:9001"],
             **claims},
            {"name": "quotes", "prefix": "/quotes", "upstreams": ["http://127.0.0.1:9002"]},
        ]},
        "gw.toml",
    )  # fmt: skip


def routed_flow(config: GatewayConfig, name: str) -> http.HTTPFlow:
    f = tflow.tflow()
    route = next(r for r in config.routes if r.name == name)
    f.metadata["aiops_route"] = name
    f.metadata["aiops_route_cfg"] = route
    return f


def drills_addon(tmp_path: Path, *drills: Drill) -> ChaosDrills:
    home = Home(tmp_path / "home").ensure()
    write_drills(chaos_path(home), list(drills))
    addon = ChaosDrills(home)
    addon.refresh()
    return addon


def drill(**kw: object) -> Drill:
    values: dict[str, object] = dict(
        id="CHG-AAAA", route="claims", latency_ms=0.0, error_rate=0.0, status=503,
        started_at=time.time(), expires_at=time.time() + 600,
    )  # fmt: skip
    values.update(kw)
    return Drill(**values)  # type: ignore[arg-type]


def test_error_drill_fails_exactly_the_fraction_on_its_route_only(tmp_path: Path) -> None:
    config = make_config()
    addon = drills_addon(tmp_path, drill(error_rate=0.3, status=502))
    failed = 0
    for _ in range(1000):
        f = routed_flow(config, "claims")
        assert addon.requestheaders(f) is None  # no latency: nothing to await
        if f.response is not None:
            failed += 1
            assert f.response.status_code == 502
            assert f.metadata["aiops_error"] == "chaos"
            assert f.metadata["aiops_fields"]["chaos"] == "error:502"
            assert b'"type": "chaos"' in f.response.content
            addon.responseheaders(f)
            assert f.response.headers[CHAOS_HEADER] == "CHG-AAAA; error:502"
        else:
            assert "chaos" not in f.metadata.get("aiops_fields", {})
    assert failed == 300
    other = routed_flow(config, "quotes")
    addon.requestheaders(other)
    assert other.response is None and "aiops_fields" not in other.metadata


def test_latency_drill_returns_an_awaitable_sleep(tmp_path: Path) -> None:
    config = make_config()
    addon = drills_addon(tmp_path, drill(latency_ms=50, error_rate=1.0))
    f = routed_flow(config, "claims")
    pending = addon.requestheaders(f)
    assert pending is not None and f.response is None  # the error comes after the delay
    started = time.monotonic()
    asyncio.run(pending)  # type: ignore[arg-type]
    assert time.monotonic() - started >= 0.05
    assert f.response is not None and f.response.status_code == 503
    assert f.metadata["aiops_fields"]["chaos"] == "latency:50ms,error:503"


def test_expired_drills_and_file_changes(tmp_path: Path) -> None:
    config = make_config()
    addon = drills_addon(tmp_path, drill(error_rate=1.0, expires_at=time.time() - 1))
    f = routed_flow(config, "claims")
    addon.requestheaders(f)
    assert f.response is None  # past its end: not applied
    assert addon.home is not None
    chaos_path(addon.home).unlink()
    addon.refresh()
    assert addon.drills == {}
    chaos_path(addon.home).write_text("{broken")
    addon.refresh()
    assert addon.drills == {}  # a damaged file never breaks the proxy


def test_route_headers_version_rules_and_lifecycle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_TOKEN", "tok")
    config = make_config(
        version="v1",
        deprecated=date(2026, 1, 15),
        sunset=date(2027, 6, 30),
        deprecation_link="https://dev.example/m",
        request_headers={"set": {"X-Token": "${T_TOKEN}"}, "remove": ["X-Debug"]},
        response_headers={"add": {"X-Served-By": "gw"}, "remove": ["Server"]},
    )
    addon = RouteHeaders(config)
    f = routed_flow(config, "claims")
    f.request.headers["X-Debug"] = "1"
    addon.requestheaders(f)
    assert f.metadata["aiops_fields"]["route_version"] == "v1"
    assert f.request.headers["X-Token"] == "tok" and "X-Debug" not in f.request.headers
    f.response = tflow.tresp()
    f.response.headers["Server"] = "upstream/1"
    f.response.headers["Link"] = "<https://a.example>; rel=next"
    addon.responseheaders(f)
    h = f.response.headers
    assert "Server" not in h and h["X-Served-By"] == "gw"
    assert h["Deprecation"] == f"@{int(datetime(2026, 1, 15, tzinfo=UTC).timestamp())}"
    assert h["Sunset"] == "Wed, 30 Jun 2027 00:00:00 GMT"
    assert h.get_all("Link") == [
        "<https://a.example>; rel=next",
        '<https://dev.example/m>; rel="deprecation"; type="text/html"',
    ]
    other = routed_flow(config, "quotes")
    other.response = tflow.tresp()
    addon.requestheaders(other)
    addon.responseheaders(other)
    assert "Deprecation" not in other.response.headers
    assert "route_version" not in other.metadata.get("aiops_fields", {})


def test_deprecated_without_a_date_keeps_its_first_seen_time_across_reloads() -> None:
    addon = RouteHeaders(make_config(deprecated=True))
    first = addon._lifecycle["claims"]
    addon.set_config(make_config(deprecated=True, version="v9"))
    assert addon._lifecycle["claims"] == first
    assert first[0][0] == "Deprecation" and first[0][1].startswith("@")


def test_apply_config_is_all_or_nothing() -> None:
    old, new = make_config(), make_config(version="v2")

    class Holder:
        def __init__(self) -> None:
            self.config = old

        def set_config(self, config: GatewayConfig) -> None:
            self.config = config

    class Refuses(Holder):
        def set_config(self, config: GatewayConfig) -> None:
            if config is new:
                raise ValueError("cannot take it")
            self.config = config

    class Parent:
        def __init__(self, *children: object) -> None:
            self.addons = list(children)

    a, b, bad = Holder(), Holder(), Refuses()
    addons = config_addons([a, Parent(b), object()])
    assert addons == [a, b]
    apply_config(addons, old, new)
    assert a.config is new and b.config is new
    a.config = b.config = old
    with pytest.raises(ValueError):
        apply_config([a, b, bad], old, new)
    assert a.config is old and b.config is old and bad.config is old
