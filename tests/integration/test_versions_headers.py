"""API versions, deprecation and header rules through a real `aiops gateway`: the
Deprecation / Sunset / Link headers on the deprecated route only, `route_version` on
rows, usage by version and tenant in `aiops routes usage`, and request/response header
rules as the upstream (the emulator's header echo) and the client see them."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.integration.helpers import query_json, wait_gateway_received
from tests.integration.test_reload import worker_once
from tests.procs import Proc, run_aiops, start_emulator, start_gateway

pytestmark = pytest.mark.integration

TOKEN = "partner-token-5f2c"
DEPRECATED_SINCE = int(datetime(2026, 1, 15, tzinfo=UTC).timestamp())


class Setup:
    def __init__(self, home: Path, gateway: str, keys: dict[str, str], config: Path) -> None:
        self.home, self.gateway, self.keys, self.config = home, gateway, keys, config


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("versions")
    home = root / "home"
    procs: list[Proc] = []
    old_env = os.environ.get("AIOPS_TEST_PARTNER_TOKEN")
    os.environ["AIOPS_TEST_PARTNER_TOKEN"] = TOKEN
    try:
        emu, upstream = start_emulator()
        procs.append(emu)
        config = root / "gateway.toml"
        config.write_text(
            f"""
[[routes]]
name = "claims-v1"
prefix = "/v1/claims"
upstreams = ["{upstream}"]
auth = "key"
version = "v1"
deprecated = 2026-01-15
sunset = 2027-06-30
deprecation_link = "https://developer.example.com/claims/v2-migration"

[[routes]]
name = "claims-v2"
prefix = "/v2/claims"
upstreams = ["{upstream}"]
auth = "key"
version = "v2"
request_headers = {{ set = {{ "X-Partner-Token" = "Bearer ${{AIOPS_TEST_PARTNER_TOKEN}}", "X-Api-Version" = "2" }}, add = {{ "X-Forwarded-Client" = "aiops" }}, remove = ["X-Debug"] }}
response_headers = {{ set = {{ "Cache-Control" = "no-store" }}, add = {{ "X-Served-By" = "aiops-gateway" }}, remove = ["Server"] }}
"""
        )
        keys = {}
        for tenant in ("acme", "globex"):
            r = run_aiops("keys", "create", "--home", str(home), "--tenant", tenant, "--json")
            assert r.returncode == 0, r.stdout + r.stderr
            keys[tenant] = json.loads(r.stdout)[0]["key"]
        gw, url = start_gateway(home, config)
        procs.append(gw)
        yield Setup(home, url, keys, config)
    finally:
        for p in reversed(procs):
            p.stop()
        if old_env is None:
            os.environ.pop("AIOPS_TEST_PARTNER_TOKEN", None)
        else:
            os.environ["AIOPS_TEST_PARTNER_TOKEN"] = old_env


def client(setup: Setup, tenant: str) -> httpx.Client:
    return httpx.Client(
        base_url=setup.gateway,
        headers={"Authorization": f"Bearer {setup.keys[tenant]}"},
        timeout=30,
    )


def test_deprecated_route_carries_deprecation_sunset_and_link_headers(setup: Setup) -> None:
    with client(setup, "acme") as c:
        old = c.get("/v1/claims/CLM-1")
        new = c.get("/v2/claims/CLM-1")
    assert old.status_code == 200 and new.status_code == 200
    assert old.headers["Deprecation"] == f"@{DEPRECATED_SINCE}"
    assert old.headers["Sunset"] == "Wed, 30 Jun 2027 00:00:00 GMT"
    assert old.headers["Link"] == (
        '<https://developer.example.com/claims/v2-migration>; rel="deprecation"; type="text/html"'
    )
    for name in ("Deprecation", "Sunset", "Link"):
        assert name not in new.headers


def test_header_rules_reach_the_upstream_and_the_client(setup: Setup) -> None:
    with client(setup, "acme") as c:
        r = c.get(
            "/v2/claims/_emulator/headers",
            headers={"X-Debug": "1", "X-Api-Version": "1", "X-Forwarded-Client": "app"},
        )
        untouched = c.get("/v1/claims/_emulator/headers", headers={"X-Debug": "1"})
    assert r.status_code == 200
    seen = r.json()["headers"]
    names = [n.lower() for n, _ in seen]
    assert "x-debug" not in names  # removed
    assert [v for n, v in seen if n.lower() == "x-api-version"] == ["2"]  # set replaces
    assert [v for n, v in seen if n.lower() == "x-forwarded-client"] == ["app", "aiops"]  # add
    # The ${ENV} reference was resolved in the gateway's environment at load.
    assert [v for n, v in seen if n.lower() == "x-partner-token"] == [f"Bearer {TOKEN}"]
    # Response rules, as the client sees them.
    assert r.headers["Cache-Control"] == "no-store"
    assert r.headers["X-Served-By"] == "aiops-gateway"
    assert "Server" not in r.headers
    # Rules are per route: the v1 route forwards X-Debug and keeps the upstream's Server.
    assert ["X-Debug", "1"] in untouched.json()["headers"]
    assert untouched.headers["Server"] == "aiops-emulator/1"
    # The resolved value never reaches the spool or the log.
    assert TOKEN not in (setup.home / "logs" / "gateway.log").read_text()


def test_rows_carry_route_version_and_usage_shows_version_by_tenant(setup: Setup) -> None:
    plan = {("acme", "/v1/claims"): 3, ("globex", "/v1/claims"): 2, ("globex", "/v2/claims"): 4}
    for (tenant, prefix), n in plan.items():
        with client(setup, tenant) as c:
            for i in range(n):
                assert c.get(f"{prefix}/usage/{i}").status_code == 200
    wait_gateway_received(setup.home, sum(plan.values()))
    worker_once(setup.home)
    rows = query_json(
        setup.home,
        "SELECT route, route_version, count(*) AS n FROM requests "
        "WHERE path LIKE '%/usage/%' GROUP BY ALL ORDER BY route",
    )
    assert [(r["route"], r["route_version"], r["n"]) for r in rows] == [
        ("claims-v1", "v1", 5),
        ("claims-v2", "v2", 4),
    ]
    r = run_aiops(
        "routes", "usage", "--home", str(setup.home), "--config", str(setup.config),
        "--since", "1d", "--json",
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    usage = json.loads(r.stdout)
    calls = {(u["route"], u["version"], u["tenant"]): u for u in usage}
    # Earlier tests in this module called as acme too: at least the planned counts.
    assert calls[("claims-v1", "v1", "acme")]["calls"] >= 3
    assert calls[("claims-v1", "v1", "globex")]["calls"] == 2
    assert calls[("claims-v2", "v2", "globex")]["calls"] == 4
    old = calls[("claims-v1", "v1", "globex")]
    assert old["deprecated"] is True and old["sunset"] == "2027-06-30"
    assert old["api_key_id"] and old["last_seen"]
    assert calls[("claims-v2", "v2", "globex")]["deprecated"] is False
