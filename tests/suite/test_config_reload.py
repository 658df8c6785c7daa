from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from suite.config import parse_gateway_config
from suite.config_reload import (
    diff_configs,
    pid_file,
    report_reload,
    request_reload,
    route_snapshot,
    running_gateways,
    write_json_atomically,
)
from suite.errors import AiopsError, ConfigError
from suite.home import Home


def config(routes: list[dict[str, object]], **extra: object):  # type: ignore[no-untyped-def]
    return parse_gateway_config({"routes": routes, **extra}, "gw.toml")


CLAIMS = {"name": "claims", "prefix": "/claims", "upstreams": ["http://127.0.0.1:9001"]}
QUOTES = {"name": "quotes", "prefix": "/quotes", "upstreams": ["http://127.0.0.1:9002"]}


def test_diff_names_added_removed_and_changed_routes_with_their_keys() -> None:
    old = config([CLAIMS, QUOTES])
    new = config(
        [{**CLAIMS, "upstreams": ["http://127.0.0.1:9005"], "version": "v2"},
         {"name": "policies", "prefix": "/policies", "upstreams": ["http://127.0.0.1:9003"]}]
    )  # fmt: skip
    diff = diff_configs(old, new)
    by_route = {c.route: c for c in diff.routes}
    assert by_route["quotes"].action == "removed"
    assert by_route["policies"].action == "added"
    assert by_route["claims"].action == "changed"
    assert by_route["claims"].keys == ("upstreams", "version")
    assert by_route["claims"].summary == "config reload: route claims changed (upstreams, version)"
    assert by_route["claims"].before is not None and by_route["claims"].after is not None
    assert by_route["claims"].before["upstreams"] == ["http://127.0.0.1:9001"]
    assert by_route["claims"].after["upstreams"] == ["http://127.0.0.1:9005"]
    assert diff.restart_needed == () and diff.global_sections == ()
    assert diff_configs(old, config([CLAIMS, QUOTES])).empty


def test_listen_and_global_settings_are_reported() -> None:
    old = config([CLAIMS])
    new = config([CLAIMS], gateway={"listen_port": 9999}, incidents={"quiet_minutes": 5})
    diff = diff_configs(old, new)
    assert diff.routes == ()
    assert diff.restart_needed == ("gateway.listen_port 8080 -> 9999",)
    assert diff.global_sections == ("incidents",)
    assert "needs a restart to take effect: gateway.listen_port 8080 -> 9999" in diff.lines()


def test_snapshots_never_hold_secret_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_PROVIDER_KEY", "sk-live-123")
    monkeypatch.setenv("SECRET_HEADER", "hdr-456")
    r = config(
        [{**CLAIMS, "provider_key": "${SECRET_PROVIDER_KEY}",
          "request_headers": {"set": {"X-Token": "${SECRET_HEADER}"}}}]
    ).routes[0]  # fmt: skip
    snap = json.dumps(route_snapshot(r))
    assert "sk-live-123" not in snap and "hdr-456" not in snap
    assert route_snapshot(r)["provider_key"] == "(set)"
    assert route_snapshot(r)["request_headers"] == ["set X-Token"]


def test_reload_without_a_running_gateway_says_so(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    # A pid file left by a gateway that died: ignored and tidied.
    write_json_atomically(pid_file(home, 2**22 + 12345), {"pid": 2**22 + 12345})
    with pytest.raises(AiopsError, match="no running gateway found"):
        request_reload(home)
    assert running_gateways(home) == []
    assert not pid_file(home, 2**22 + 12345).exists()


def test_a_process_that_is_not_a_gateway_is_not_signalled(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    write_json_atomically(pid_file(home, os.getpid()), {"pid": os.getpid()})
    # This pytest process's command line does not say "gateway": a reused pid.
    assert running_gateways(home) == []


def test_report_reload_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    ok = {"ok": True, "config": "gw.toml", "routes": 2, "changes": ["route quotes added"]}
    assert report_reload([ok, ok]) == 0
    out = capsys.readouterr().out
    assert "gateway reloaded gw.toml (2 processes, 2 routes)" in out
    assert "route quotes added" in out
    with pytest.raises(ConfigError, match="keeps running the previous config:\ngw.toml: bad"):
        report_reload([{"ok": False, "error": "gw.toml: bad"}])


def test_snapshots_drop_credentials_in_upstream_urls() -> None:
    r = config([{**CLAIMS, "upstreams": ["https://svc:pa55@claims.internal/api"]}]).routes[0]
    assert route_snapshot(r)["upstreams"] == ["https://claims.internal/api"]
