"""Config reload through a real `aiops gateway`: routes added and upstreams changed while
keep-alive clients keep sending, the reload recorded as changes, and a bad config refused
with the reason while the old one keeps serving."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.helpers import query_json, wait_gateway_received
from tests.procs import Proc, run_aiops, start_emulator, start_gateway

pytestmark = pytest.mark.integration


def config_text(
    claims_upstream: str, *, quotes_upstream: str | None = None, extra: str = ""
) -> str:
    text = f"""
[[routes]]
name = "claims"
prefix = "/claims"
upstreams = ["{claims_upstream}"]
"""
    if quotes_upstream:
        text += f"""
[[routes]]
name = "quotes"
prefix = "/quotes"
upstreams = ["{quotes_upstream}"]
"""
    return text + extra


def worker_once(home: Path, jobs: tuple[str, ...] = ("ingest",)) -> str:
    """`aiops worker --once`; asserts the jobs these tests depend on succeeded (other
    areas' jobs are checked by their own tests)."""
    r = run_aiops("worker", "--once", "--home", str(home), timeout=180)
    out = r.stdout + r.stderr
    for job in jobs:
        line = next((x for x in r.stdout.splitlines() if x.startswith(f"{job}: ")), None)
        assert line is not None and "FAILED" not in line, f"worker job {job}:\n{out}"
    return out


class Setup:
    def __init__(self, home: Path, config: Path, gateway: str, e1: str, e2: str) -> None:
        self.home, self.config, self.gateway, self.e1, self.e2 = home, config, gateway, e1, e2


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("reload")
    home = root / "home"
    procs: list[Proc] = []
    try:
        p1, e1 = start_emulator()
        procs.append(p1)
        p2, e2 = start_emulator()
        procs.append(p2)
        config = root / "gateway.toml"
        config.write_text(config_text(e1))
        gw, url = start_gateway(home, config)
        procs.append(gw)
        yield Setup(home, config, url, e1, e2)
    finally:
        for p in reversed(procs):
            p.stop()


def raw_get(sock: socket.socket, path: str) -> int:
    """One HTTP/1.1 keep-alive request on an open socket; the status (body read fully)."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: gateway\r\n\r\n".encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        assert chunk, "the gateway closed the keep-alive connection"
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = next(
        int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "the gateway closed the keep-alive connection mid-body"
        body += chunk
    assert "connection: close" not in head.decode("latin-1").lower()
    return int(lines[0].split()[1])


def test_reload_adds_route_and_changes_upstream_without_dropping_connections(setup: Setup) -> None:
    host, port = setup.gateway.removeprefix("http://").rsplit(":", 1)
    held = socket.create_connection((host, int(port)), timeout=10)
    assert raw_get(held, "/claims/held/1") == 200
    # /quotes does not exist yet: the gateway answers 404 itself.
    assert httpx.get(f"{setup.gateway}/quotes/1").status_code == 404

    statuses: list[int] = []
    failures: list[str] = []
    stop = threading.Event()

    def keep_sending() -> None:
        with httpx.Client(base_url=setup.gateway, timeout=10) as client:
            i = 0
            while not stop.is_set():
                try:
                    statuses.append(client.get(f"/claims/items/{i}").status_code)
                except httpx.HTTPError as e:
                    failures.append(f"{type(e).__name__}: {e}")
                i += 1

    sender = threading.Thread(target=keep_sending)
    sender.start()
    try:
        while len(statuses) < 20 and sender.is_alive():
            time.sleep(0.05)
        before = len(statuses)
        setup.config.write_text(config_text(setup.e2, quotes_upstream=setup.e1))
        r = run_aiops("gateway", "reload", "--home", str(setup.home), timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "route quotes added" in r.stdout
        assert "route claims changed (upstreams)" in r.stdout
        deadline = time.monotonic() + 30
        while len(statuses) < before + 40 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        sender.join(30)
    assert not failures, failures[:5]
    assert len(statuses) >= before + 40
    assert set(statuses) == {200}
    # The connection opened before the reload still answers, with the new config.
    assert raw_get(held, "/claims/held/2") == 200
    assert raw_get(held, "/quotes/held/3") == 200
    held.close()
    assert httpx.get(f"{setup.gateway}/quotes/2").status_code == 200

    assert wait_gateway_received(setup.home, len(statuses) + 5) >= len(statuses) + 5
    worker_once(setup.home)
    changes = query_json(
        setup.home,
        "SELECT service, kind, source, status, summary, detail FROM changes "
        "WHERE kind = 'config' ORDER BY service",
    )
    assert [(c["service"], c["source"]) for c in changes] == [
        ("claims", "gateway"),
        ("quotes", "gateway"),
    ]
    claims, quotes = changes
    assert "claims" in claims["summary"] and "upstreams" in claims["summary"]
    assert "quotes" in quotes["summary"] and "added" in quotes["summary"]
    detail = json.loads(claims["detail"])
    assert detail["before"]["upstreams"] == [setup.e1]
    assert detail["after"]["upstreams"] == [setup.e2]
    # Calls on claims went to the old upstream before the reload, the new one after.
    rows = query_json(
        setup.home,
        "SELECT upstream, count(*) AS n, max(ts) AS last FROM requests "
        "WHERE route = 'claims' GROUP BY 1 ORDER BY last",
    )
    assert [r["upstream"] for r in rows] == [setup.e1, setup.e2]


def test_bad_reload_is_refused_with_the_reason_and_old_config_keeps_serving(setup: Setup) -> None:
    good = setup.config.read_text()
    setup.config.write_text(
        config_text(
            "htp://127.0.0.1:1", quotes_upstream=setup.e1, extra='\n[gateway]\nmode = "x"\n'
        )
    )
    try:
        r = run_aiops("gateway", "reload", "--home", str(setup.home), timeout=60)
    finally:
        setup.config.write_text(good)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "reload refused" in r.stderr
    assert "routes[0].upstreams[0]: 'htp://127.0.0.1:1' is not an http(s) URL" in r.stderr
    assert "gateway.mode" in r.stderr
    # Both routes from the previous (good) config still answer.
    assert httpx.get(f"{setup.gateway}/claims/after-bad").status_code == 200
    assert httpx.get(f"{setup.gateway}/quotes/after-bad").status_code == 200
    log = (setup.home / "logs" / "gateway.log").read_text()
    assert "config reload refused, still running the previous config" in log


def test_reload_reports_settings_that_need_a_restart(setup: Setup) -> None:
    good = setup.config.read_text()
    setup.config.write_text(good + "\n[gateway]\nlisten_port = 18080\n")
    try:
        r = run_aiops("gateway", "reload", "--home", str(setup.home), timeout=60)
    finally:
        setup.config.write_text(good)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "needs a restart to take effect: gateway.listen_port 8080 -> 18080" in r.stdout
    assert httpx.get(f"{setup.gateway}/claims/still").status_code == 200
