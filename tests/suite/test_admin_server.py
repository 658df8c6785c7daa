"""The admin endpoint in-process (the gateway path is in tests/integration): limits, wrong
paths and methods, keep-alive after a refusal, and what it writes to the spool."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest

from suite.admin_server import MAX_BODY_BYTES, AdminEndpoint, with_admin_port
from suite.changes_config import ChangesSettings
from suite.config import GatewayConfig
from suite.errors import ConfigError
from suite.home import Home
from tests.procs import free_port

TOKEN = "admin-unit-token-42"


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[tuple[str, Home]]:
    home = Home(tmp_path / "home").ensure()
    config = GatewayConfig(
        path="gw.toml", changes=ChangesSettings(admin_port=free_port(), admin_token=TOKEN)
    )
    addon = AdminEndpoint(config, home, "127.0.0.1")
    addon.running()
    try:
        yield f"http://127.0.0.1:{config.changes.admin_port}", home
    finally:
        addon.done()


def test_limits_paths_methods_and_spooled_row(endpoint: tuple[str, Home]) -> None:
    url, home = endpoint
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=url) as client:
        r = client.post("/changes", headers=auth, content=b"x" * (MAX_BODY_BYTES + 1))
        assert r.status_code == 413 and "at most" in r.json()["error"]["message"]
        assert client.get("/changes").status_code == 405
        assert client.post("/deploys", headers=auth, json={}).status_code == 404
        # A refused request whose body was never read must not poison the next one.
        assert client.post("/changes", json={"service": "x"}).status_code == 401
        r = client.post(
            "/changes",
            headers=auth,
            json={"service": "claims", "kind": "config", "summary": "timeout 5s -> 3s",
                  "status": "proposed", "type": "standard",
                  "window_start": "2026-03-10T22:00+01:00", "window_end": "2026-03-10T22:30+01:00"},
        )  # fmt: skip
        assert r.status_code == 201, r.text
        assert r.headers["location"] == f"/changes/{r.json()['id']}"
    (segment,) = (home.spool_dir / "changes").glob("*.parquet")
    (row,) = pq.read_table(segment).to_pylist()
    assert (row["id"], row["service"], row["kind"], row["status"], row["source"]) == (
        r.json()["id"], "claims", "config", "proposed", "api",
    )  # fmt: skip
    assert row["change_type"] == "standard" and row["window_start"].hour == 21  # UTC
    assert TOKEN.encode() not in segment.read_bytes()


def test_port_taken_and_bad_port_are_config_errors(tmp_path: Path) -> None:
    home = Home(tmp_path).ensure()
    config = GatewayConfig(path="gw.toml", changes=ChangesSettings(admin_port=free_port()))
    first = AdminEndpoint(config, home, "127.0.0.1")
    try:
        with pytest.raises(ConfigError, match="gateway.admin_port: cannot listen on 127.0.0.1"):
            AdminEndpoint(config, home, "127.0.0.1")
    finally:
        first.done()
    with pytest.raises(ConfigError, match="--admin-port: 70000 is not a port"):
        with_admin_port(config, 70000)
    off = with_admin_port(config, 0)
    assert AdminEndpoint(off, home, "127.0.0.1").server is None
    assert dataclasses.replace(off.changes, admin_port=1).admin_port == 1
