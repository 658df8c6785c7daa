"""The first try of an alias call goes out through mitmproxy itself (no httpx, no relay) and
the pool takes over only when it fails: a refused connection or a 5xx from the first
target still falls back, every target failing gives one clear error, and the failures of
native first tries feed the circuit breaker (an open first target is skipped)."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import write_config
from tests.integration.pool_support import rows, served_count, set_fault
from tests.procs import Proc, free_port, start_gateway

pytestmark = pytest.mark.integration

SQL = (
    "SELECT status, upstream, attempts, fallback_chain, llm_alias, llm_provider, "
    "llm_requested_model, completion_tokens, error FROM requests WHERE trace_id = ?"
)


@dataclass
class Setup:
    home: Path
    client: httpx.Client
    flaky: str  # LLM emulator behind route `flaky` (circuit breaker: 2 failures)
    backup: str  # LLM emulator behind route `backup`
    dead: str  # nothing listens there


def _llm_emulator() -> tuple[Proc, str]:
    proc = Proc([sys.executable, "-m", "suite.emulators.llm", "--port", "0"])
    try:
        return proc, proc.wait_for(r"llm emulator listening on (http://\S+)").group(1)
    except AssertionError:
        proc.stop()
        raise


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("native")
    started: list[Proc] = []
    dead = f"http://127.0.0.1:{free_port()}"
    try:
        p1, flaky = _llm_emulator()
        started.append(p1)
        p2, backup = _llm_emulator()
        started.append(p2)
        cfg = write_config(
            root / "gateway.toml",
            f"""
[gateway]
flush_interval_seconds = 0.2

[[routes]]
name = "dead"
prefix = "/dead"
strip_prefix = true
llm_provider = "openai"
upstreams = ["{dead}"]

[[routes]]
name = "flaky"
prefix = "/flaky"
strip_prefix = true
llm_provider = "openai"
upstreams = ["{flaky}"]
circuit_breaker = {{ failures = 2, cooldown_seconds = 300 }}

[[routes]]
name = "backup"
prefix = "/backup"
strip_prefix = true
llm_provider = "azure-openai"
upstreams = ["{backup}"]

[[llm_aliases]]
name = "via-dead"
targets = ["dead:gpt-4o-mini", "backup:gpt-4.1-mini"]

[[llm_aliases]]
name = "all-dead"
targets = ["dead:gpt-4o-mini", "dead:gpt-4.1-mini"]

[[llm_aliases]]
name = "via-flaky"
targets = ["flaky:gpt-4o-mini", "backup:gpt-4.1-mini"]
""",
        )
        home = root / "home"
        gw, base = start_gateway(home, cfg)
        started.append(gw)
        with httpx.Client(base_url=base, timeout=30) as client:
            yield Setup(home, client, flaky, backup, dead)
        assert gw.stop() == 0, gw.output
    finally:
        for p in reversed(started):
            p.stop()


def call(s: Setup, prefix: str, model: str, stream: bool = False) -> tuple[str, httpx.Response]:
    trace = secrets.token_hex(16)
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": "Summarise claim CLM-1 in one line"}],
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    r = s.client.post(
        f"/{prefix}/v1/chat/completions",
        json=body,
        headers={"traceparent": f"00-{trace}-{secrets.token_hex(8)}-01"},
    )
    return trace, r


def row(s: Setup, trace: str) -> dict[str, Any]:
    (got,) = rows(s.home, SQL, [trace], expect=1)
    return got


def test_refused_connection_on_the_first_target_falls_back(setup: Setup) -> None:
    before = served_count(setup.backup)
    trace, r = call(setup, "dead", "via-dead")
    assert r.status_code == 200, r.text
    assert r.json()["model"] == "gpt-4.1-mini-2025-04-14"
    assert served_count(setup.backup) - before == 1
    got = row(setup, trace)
    assert got["fallback_chain"] == "dead:gpt-4o-mini(connect_error) > backup:gpt-4.1-mini(ok)"
    assert got["attempts"] == 2 and got["llm_alias"] == "via-dead"
    assert got["upstream"] == setup.backup and got["llm_provider"] == "azure-openai"
    assert got["status"] == 200 and got["error"] is None


def test_streamed_call_after_a_refused_connection_is_an_event_stream(setup: Setup) -> None:
    trace, r = call(setup, "dead", "via-dead", stream=True)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.text.rstrip().endswith("data: [DONE]")
    got = row(setup, trace)
    assert got["fallback_chain"] == "dead:gpt-4o-mini(connect_error) > backup:gpt-4.1-mini(ok)"
    assert got["completion_tokens"] and got["completion_tokens"] > 0


def test_every_target_refusing_gives_one_json_error_with_the_chain(setup: Setup) -> None:
    trace, r = call(setup, "dead", "all-dead")
    assert r.status_code == 502
    error = r.json()["error"]
    assert error["type"] == "upstream_unreachable"
    chain = "dead:gpt-4o-mini(connect_error) > dead:gpt-4.1-mini(connect_error)"
    assert error["fallback_chain"] == chain
    got = row(setup, trace)
    assert got["fallback_chain"] == chain and got["attempts"] == 2
    assert got["status"] == 502 and got["error"] == "upstream_unreachable"


def test_native_5xx_feeds_the_circuit_breaker_then_the_target_is_skipped(setup: Setup) -> None:
    set_fault(setup.flaky, status=503)
    try:
        # Called through `backup` (a route whose own upstream stays healthy) so that the
        # router does not refuse the call itself once `flaky`'s circuit is open.
        for _ in range(2):  # two failures open the circuit of `flaky`
            trace, r = call(setup, "backup", "via-flaky")
            assert r.status_code == 200, r.text
            chain = row(setup, trace)["fallback_chain"]
            assert chain == "flaky:gpt-4o-mini(503) > backup:gpt-4.1-mini(ok)"
        served = served_count(setup.flaky)
        trace, r = call(setup, "backup", "via-flaky")
        assert r.status_code == 200, r.text
        assert served_count(setup.flaky) == served  # open: not even tried
        got = row(setup, trace)
        assert got["fallback_chain"] == "flaky:gpt-4o-mini(circuit_open) > backup:gpt-4.1-mini(ok)"
        assert got["attempts"] == 1 and got["upstream"] == setup.backup
    finally:
        set_fault(setup.flaky)
