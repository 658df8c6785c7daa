from __future__ import annotations

from pathlib import Path

import pytest

from suite.config import load_gateway_config, parse_upstream_url
from suite.errors import ConfigError
from tests.procs import run_aiops

GOOD = """
[[routes]]
name = "claims-api"
prefix = "/claims"
upstreams = ["http://127.0.0.1:9001"]

[[routes]]
name = "openai"
prefix = "/openai/"
strip_prefix = true
upstreams = ["http://127.0.0.1:9100", "https://llm.internal:8443/v1"]
"""


def test_minimal_contract_config_loads(tmp_path: Path) -> None:
    f = tmp_path / "gateway.toml"
    f.write_text(GOOD)
    cfg = load_gateway_config(f)
    assert [r.name for r in cfg.routes] == ["claims-api", "openai"]
    openai = cfg.routes[1]
    assert openai.prefix == "/openai"  # trailing slash normalised
    assert openai.strip_prefix is True
    assert openai.upstreams[1].scheme == "https"
    assert openai.upstreams[1].port == 8443
    assert openai.upstreams[1].base_path == "/v1"
    assert cfg.gateway.mode == "reverse"


def test_route_matching_respects_segment_boundaries(tmp_path: Path) -> None:
    f = tmp_path / "g.toml"
    f.write_text(GOOD)
    claims = load_gateway_config(f).routes[0]
    assert claims.matches("/claims")
    assert claims.matches("/claims/42")
    assert not claims.matches("/claimsX")
    assert not claims.matches("/other/claims")


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('[[routes]]\nprefix = "/a"\nupstreams = ["http://x:1"]', "routes[0].name: is required"),
        ('[[routes]]\nname = "a b"\nprefix = "/a"\nupstreams = ["http://x:1"]', "routes[0].name: 'a b' is not a valid route name"),
        ('[[routes]]\nname = "a"\nupstreams = ["http://x:1"]', "routes[0].prefix: is required"),
        ('[[routes]]\nname = "a"\nprefix = "a"\nupstreams = ["http://x:1"]', "routes[0].prefix: 'a' must be a path starting with '/'"),
        ('[[routes]]\nname = "a"\nprefix = "/a"', "routes[0].upstreams: is required"),
        ('[[routes]]\nname = "a"\nprefix = "/a"\nupstreams = []', "routes[0].upstreams: must be a non-empty list"),
        ('[[routes]]\nname = "a"\nprefix = "/a"\nupstreams = ["htp://x"]', "routes[0].upstreams[0]: 'htp://x' is not an http(s) URL"),
        ('[[routes]]\nname = "a"\nprefix = "/a"\nupstreams = ["http://"]', "routes[0].upstreams[0]: 'http://' has no host"),
        ('[[routes]]\nname = "a"\nprefix = "/a"\nupstreams = ["http://x:99999"]', "routes[0].upstreams[0]: 'http://x:99999' has an invalid port"),
        ('[[routes]]\nname = "a"\nprefix = "/a"\nupstreams = ["http://x:1"]\nstrip_prefix = "yes"', "routes[0].strip_prefix: 'yes' must be true or false"),
        ('[[routes]]\nname = "a"\nprefix = "/a"\nupstreams = ["http://x:1"]\nupstream = "http://y"', "routes[0].upstream: unknown key"),
        ('[[routes]]\nname = "a"\nprefix = "/a"\nupstreams = ["http://x:1"]\n[[routes]]\nname = "a"\nprefix = "/b"\nupstreams = ["http://x:1"]', "routes[1].name: 'a' is already used by routes[0]"),
        ('[[routes]]\nname = "a"\nprefix = "/a"\nupstreams = ["http://x:1"]\n[[routes]]\nname = "b"\nprefix = "/a/"\nupstreams = ["http://x:1"]', "routes[1].prefix: '/a' is already used by routes[0]"),
        ('routes = "x"', "routes: must be an array of tables"),
        ('[gateway]\nmode = "transparent"', "gateway.mode: 'transparent' is not one of reverse, regular"),
        ('[gateway]\nlisten_port = 70000', "gateway.listen_port: 70000 is out of range"),
        ('[gateway]\nflush_rows = "many"', "gateway.flush_rows: 'many' is not a number"),
        ('[worker]\ningest_interval_seconds = 0', "worker.ingest_interval_seconds: 0 is out of range"),
        ('[routing]\nx = 1', "routing: unknown key"),
        ("[[routes]\nname=", "not valid TOML"),
    ],
)  # fmt: skip
def test_each_mistake_has_its_own_message(tmp_path: Path, toml: str, expected: str) -> None:
    f = tmp_path / "gateway.toml"
    f.write_text(toml)
    with pytest.raises(ConfigError) as e:
        load_gateway_config(f)
    assert str(f) in str(e.value)
    assert expected in str(e.value)


def test_all_mistakes_reported_at_once(tmp_path: Path) -> None:
    f = tmp_path / "gateway.toml"
    f.write_text(
        '[[routes]]\nname = "a"\nprefix = "x"\nupstreams = ["ftp://h"]\n[gateway]\nmode = "x"\n'
    )
    with pytest.raises(ConfigError) as e:
        load_gateway_config(f)
    lines = str(e.value).splitlines()
    assert len(lines) == 3
    assert all(line.startswith(f"{f}: ") for line in lines)


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope.toml: file not found"):
        load_gateway_config(tmp_path / "nope.toml")


def test_parse_upstream_url_rejects_query() -> None:
    assert isinstance(parse_upstream_url("http://h:1/?x=1"), str)
    up = parse_upstream_url("http://h")
    assert not isinstance(up, str) and up.port == 80


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            '[[routes]]\nname = "a"\nprefix = "/a"\nupstreams = ["htp://x"]',
            "routes[0].upstreams[0]",
        ),
        ('[[routes]]\nname = ""\nprefix = "/a"\nupstreams = ["http://x:1"]', "routes[0].name"),
        ("[[routes]]\n", "routes[0].name: is required"),
        ("not toml at all [", "not valid TOML"),
    ],
)
def test_gateway_command_exits_2_with_the_message(tmp_path: Path, toml: str, expected: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(toml)
    r = run_aiops(
        "gateway",
        "--home",
        str(tmp_path / "h"),
        "--config",
        str(f),
        "--listen-port",
        "0",
        timeout=60,
    )
    assert r.returncode == 2, r.stderr
    assert expected in r.stderr
    assert str(f) in r.stderr
    assert "Traceback" not in r.stderr


def test_gateway_without_config_explains_how_to_make_one(tmp_path: Path) -> None:
    r = run_aiops("gateway", "--home", str(tmp_path / "h"), timeout=60)
    assert r.returncode == 2
    assert "gateway.toml: file not found" in r.stderr
    assert "[[routes]]" in r.stderr


def test_reverse_mode_needs_a_route(tmp_path: Path) -> None:
    f = tmp_path / "empty.toml"
    f.write_text("[gateway]\nlisten_port = 0\n")
    r = run_aiops("gateway", "--home", str(tmp_path / "h"), "--config", str(f), timeout=60)
    assert r.returncode == 2
    assert "reverse mode needs at least one [[routes]]" in r.stderr


def test_llm_mcp_and_capture_keys(tmp_path: Path) -> None:
    f = tmp_path / "g.toml"
    f.write_text(
        '[[routes]]\nname = "claude"\nprefix = "/anthropic"\nupstreams = ["http://x:1"]\nllm_provider = "anthropic"\n'
        '[[routes]]\nname = "local"\nprefix = "/vllm"\nupstreams = ["http://x:2"]\nllm_provider = "vllm"\ncapture_bodies = "redacted"\n'
        '[[routes]]\nname = "tools"\nprefix = "/tools"\nupstreams = ["http://x:3"]\nmcp = true\n'
        "[capture]\nmax_body_bytes = 1000\n"
        '[[redaction.patterns]]\nname = "policy_number"\nregex = "POL-\\\\d{6}"\n'
    )
    cfg = load_gateway_config(f)
    claude, local, tools = cfg.routes
    assert (claude.llm_api_family, local.llm_api_family) == ("anthropic", "openai")
    assert local.capture_bodies == "redacted" and tools.mcp and not claude.mcp
    assert cfg.capture.max_body_bytes == 1000
    assert cfg.redaction_patterns[0]["name"] == "policy_number"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ('llm_api = "gemini"', "routes[0].llm_api: 'gemini' is not one of openai, anthropic"),
        ('llm_provider = "open ai"', "routes[0].llm_provider: 'open ai' is not a provider name"),
        ('mcp = "yes"', "routes[0].mcp: 'yes' must be true or false"),
        (
            'capture_bodies = "all"',
            "routes[0].capture_bodies: 'all' is not one of none, metadata, redacted, full",
        ),
        ("[capture]\nmax_body_bytes = -1", "capture.max_body_bytes: -1 is out of range"),
        ('[[redaction.patterns]]\nname = "x"\nregex = "("', "redaction.patterns[0].regex"),
        ('[[redaction.patterns]]\nregex = "a"', "redaction.patterns[0].name"),
    ],
)
def test_llm_mcp_and_capture_mistakes(tmp_path: Path, extra: str, expected: str) -> None:
    f = tmp_path / "g.toml"
    f.write_text(f'[[routes]]\nname = "a"\nprefix = "/a"\nupstreams = ["http://x:1"]\n{extra}\n')
    with pytest.raises(ConfigError) as e:
        load_gateway_config(f)
    assert expected in str(e.value)
    assert str(f) in str(e.value)
