from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from mitmproxy import http

from suite.api_versions import (
    apply_header_rules,
    deprecation_value,
    http_date,
    lifecycle_headers,
    parse_when,
)
from suite.cli import main
from suite.config import parse_gateway_config
from suite.errors import ConfigError


def route(**keys: object) -> dict[str, object]:
    return {"name": "claims", "prefix": "/claims", "upstreams": ["http://127.0.0.1:9001"], **keys}


def parse(**keys: object):  # type: ignore[no-untyped-def]
    return parse_gateway_config({"routes": [route(**keys)]}, "gw.toml").routes[0]


def problems(**keys: object) -> str:
    with pytest.raises(ConfigError) as e:
        parse_gateway_config({"routes": [route(**keys)]}, "gw.toml")
    return str(e.value)


def test_dates_in_the_formats_a_config_writes_them() -> None:
    assert parse_when(date(2027, 6, 30)) == datetime(2027, 6, 30, tzinfo=UTC)
    assert parse_when("2027-06-30") == datetime(2027, 6, 30, tzinfo=UTC)
    assert parse_when("2027-06-30T12:00:00+02:00") == datetime(2027, 6, 30, 10, tzinfo=UTC)
    assert isinstance(parse_when("30/06/2027"), str)


def test_rfc_header_formats() -> None:
    when = datetime(2027, 6, 30, tzinfo=UTC)
    assert http_date(when) == "Wed, 30 Jun 2027 00:00:00 GMT"  # IMF-fixdate
    assert deprecation_value(when) == f"@{int(when.timestamp())}"  # RFC 9745 sf-date
    headers = lifecycle_headers(
        deprecated=True, deprecated_since=when, sunset=when, link="https://x.example/m"
    )
    assert headers == [
        ("Deprecation", f"@{int(when.timestamp())}"),
        ("Sunset", "Wed, 30 Jun 2027 00:00:00 GMT"),
        ("Link", '<https://x.example/m>; rel="deprecation"; type="text/html"'),
    ]
    assert lifecycle_headers(deprecated=False, deprecated_since=None, sunset=None, link=None) == []


def test_route_version_and_lifecycle_keys() -> None:
    r = parse(version="v1", deprecated=date(2026, 1, 15), sunset=date(2027, 6, 30),
              deprecation_link="https://dev.example/claims")  # fmt: skip
    assert r.version == "v1" and r.deprecated
    assert r.deprecated_since == datetime(2026, 1, 15, tzinfo=UTC)
    assert r.sunset == datetime(2027, 6, 30, tzinfo=UTC)
    plain = parse(deprecated=True)
    assert plain.deprecated and plain.deprecated_since is None


def test_lifecycle_mistakes_are_named() -> None:
    text = problems(version="v 1", deprecated="soon", sunset="never", deprecation_link="ftp://x")
    assert "routes[0].version: 'v 1' is not a version label" in text
    assert "routes[0].deprecated: must be true/false or a date" in text
    assert "routes[0].sunset: 'never' is not a date" in text
    assert "routes[0].deprecation_link: 'ftp://x' is not an http(s) URL" in text
    text = problems(deprecated=date(2027, 1, 1), sunset=date(2026, 1, 1))
    assert "routes[0].sunset: 2026-01-01 is before the deprecation date 2027-01-01" in text


def test_header_rules_parse_in_order_and_resolve_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARTNER_TOKEN", "tok-123")
    r = parse(
        request_headers={
            "add": {"X-Extra": "1"},
            "set": {"X-Token": "Bearer ${PARTNER_TOKEN}"},
            "remove": ["X-Debug"],
        }
    )
    assert r.request_headers == (
        ("remove", "X-Debug", ""),
        ("set", "X-Token", "Bearer tok-123"),
        ("add", "X-Extra", "1"),
    )
    assert "tok-123" not in repr(r)  # resolved values are never printed


def test_header_rule_mistakes_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOPE_TOKEN", raising=False)
    text = problems(
        response_headers={
            "set": {"Bad Name": "1", "Content-Length": "5", "X-T": "${NOPE_TOKEN}", "X-N": 3},
            "remove": "X-A",
            "rename": {},
        }
    )
    assert "routes[0].response_headers.set.Bad Name: 'Bad Name' is not a valid header name" in text
    assert "routes[0].response_headers.set.Content-Length: 'Content-Length' frames" in text
    assert "routes[0].response_headers.set.X-T: environment variable NOPE_TOKEN is not set" in text
    assert "routes[0].response_headers.set.X-N: 3 must be a string" in text
    assert "routes[0].response_headers.remove: 'X-A' must be a list" in text
    assert "routes[0].response_headers.rename: unknown key" in text
    assert "routes[0].request_headers: must be a table" in problems(request_headers=["x"])
    assert "line breaks" in problems(request_headers={"set": {"X-A": "a\r\nX-B: b"}})


def test_apply_header_rules_remove_set_add() -> None:
    headers = http.Headers([(b"X-Debug", b"1"), (b"X-Token", b"old"), (b"X-Extra", b"0")])
    apply_header_rules(
        headers,
        (("remove", "x-debug", ""), ("set", "X-Token", "new"), ("add", "X-Extra", "1")),
    )
    assert "X-Debug" not in headers
    assert headers.get_all("X-Token") == ["new"]
    assert headers.get_all("X-Extra") == ["0", "1"]


def test_routes_list_shows_versions_lifecycle_and_rule_names_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RULE_SECRET", "s3cr3t-value")
    config = tmp_path / "gw.toml"
    config.write_text(
        '[[routes]]\nname = "claims"\nprefix = "/claims"\nupstreams = ["http://127.0.0.1:1"]\n'
        'version = "v1"\ndeprecated = 2026-01-15\nsunset = 2027-06-30\n'
        'request_headers = { set = { "X-Token" = "${RULE_SECRET}" } }\n'
    )
    assert main(["routes", "list", "--config", str(config), "--json"]) == 0
    out = capsys.readouterr().out
    assert "s3cr3t-value" not in out
    [row] = json.loads(out)
    assert row["route"] == "claims" and row["version"] == "v1" and row["deprecated"] is True
    assert row["deprecated_since"] == "2026-01-15" and row["sunset"] == "2027-06-30"
    assert row["request_header_rules"] == ["set X-Token"]
    assert main(["routes", "usage", "--config", str(config), "--since", "often"]) == 2
    assert "--since: 'often' is not a duration" in capsys.readouterr().err
