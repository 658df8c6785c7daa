from __future__ import annotations

import json
from pathlib import Path

import pytest
from mitmproxy import exceptions
from mitmproxy.test import taddons, tflow

from proxy_addons.router import Router, forwarded_path, match_route
from suite.config import load_gateway_config

CONFIG = """
[[routes]]
name = "claims-api"
prefix = "/claims"
upstreams = ["http://10.0.0.1:9001", "http://10.0.0.2:9002"]

[[routes]]
name = "claims-v2"
prefix = "/claims/v2"
upstreams = ["https://claims2.internal/base"]
strip_prefix = true

[[routes]]
name = "openai"
prefix = "/openai"
strip_prefix = true
upstreams = ["http://127.0.0.1:9100"]
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    f = tmp_path / "gateway.toml"
    f.write_text(CONFIG)
    return f


def request_flow(path: str):  # type: ignore[no-untyped-def]
    f = tflow.tflow()
    f.request.path = path
    f.request.host_header = "gateway.local:8080"
    return f


def test_longest_prefix_wins(config_file: Path) -> None:
    routes = load_gateway_config(config_file).routes_by_specificity()
    assert match_route(routes, "/claims/v2/items?x=1").name == "claims-v2"  # type: ignore[union-attr]
    assert match_route(routes, "/claims/v1/items").name == "claims-api"  # type: ignore[union-attr]
    assert match_route(routes, "/claimsv2") is None


def test_forwarded_path_strips_and_prepends(config_file: Path) -> None:
    cfg = load_gateway_config(config_file)
    v2 = cfg.routes[1]
    assert forwarded_path(v2, v2.upstreams[0], "/claims/v2/items?a=1") == "/base/items?a=1"
    assert forwarded_path(v2, v2.upstreams[0], "/claims/v2") == "/base/"
    claims = cfg.routes[0]
    assert forwarded_path(claims, claims.upstreams[0], "/claims/1") == "/claims/1"


async def test_requests_are_rewritten_round_robin(config_file: Path) -> None:
    router = Router()
    with taddons.context(router) as tctx:
        tctx.configure(router, aiops_config=str(config_file), mode=["reverse:http://127.0.0.1:9"])
        seen = []
        for _ in range(4):
            f = request_flow("/claims/7")
            router.requestheaders(f)
            assert f.response is None
            assert f.metadata["aiops_route"] == "claims-api"
            assert f.metadata["aiops_client_path"] == "/claims/7"
            assert f.metadata["aiops_client_host"] == "gateway.local:8080"
            seen.append((f.request.host, f.request.port, f.request.host_header))
        assert (
            seen
            == [
                ("10.0.0.1", 9001, "10.0.0.1:9001"),
                ("10.0.0.2", 9002, "10.0.0.2:9002"),
            ]
            * 2
        )
        f = request_flow("/openai/v1/chat/completions")
        router.requestheaders(f)
        assert (f.request.scheme, f.request.path) == ("http", "/v1/chat/completions")
        f = request_flow("/claims/v2/x")
        router.requestheaders(f)
        assert (f.request.scheme, f.request.port, f.request.host_header) == (
            "https",
            443,
            "claims2.internal",
        )


async def test_no_route_is_a_json_404_from_the_gateway(config_file: Path) -> None:
    router = Router()
    with taddons.context(router) as tctx:
        tctx.configure(router, aiops_config=str(config_file), mode=["reverse:http://127.0.0.1:9"])
        f = request_flow("/unknown/thing?q=1")
        router.requestheaders(f)
        assert f.response is not None and f.response.status_code == 404
        body = json.loads(f.response.content or b"")
        assert body["error"]["type"] == "no_route"
        assert "/unknown/thing" in body["error"]["message"]
        assert f.metadata["aiops_error"] == "no_route"
        assert "aiops_route" not in f.metadata


async def test_regular_mode_names_the_route_from_the_upstream(config_file: Path) -> None:
    router = Router()
    with taddons.context(router) as tctx:
        tctx.configure(router, aiops_config=str(config_file), mode=["regular"])
        f = tflow.tflow()
        f.request.scheme, f.request.host, f.request.port = "https", "claims2.internal", 443
        router.requestheaders(f)
        assert f.metadata["aiops_route"] == "claims-v2"
        assert f.request.host == "claims2.internal"  # goes where the client sent it
        other = tflow.tflow()
        router.requestheaders(other)
        assert "aiops_route" not in other.metadata and other.response is None


async def test_bad_config_is_an_options_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[routes]]\nname = "x"\nprefix = "/x"\nupstreams = ["nope"]\n')
    router = Router()
    with taddons.context(router) as tctx:
        with pytest.raises(exceptions.OptionsError, match=r"routes\[0\]\.upstreams\[0\]"):
            tctx.configure(router, aiops_config=str(bad))
