"""Upstream pools through a real `aiops gateway`: round robin, weighted and least-latency
splits counted on real emulator upstreams, a circuit opening and closing, retries of
idempotent requests (and none for POST), per-upstream timeouts, bad pool configs."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import write_config
from tests.integration.pool_support import ResettingUpstream, rows, served_count, set_fault
from tests.procs import Proc, run_aiops, start_emulator, start_gateway

pytestmark = pytest.mark.integration


@dataclass
class Pool:
    home: Path
    base: str
    a: str
    b: str
    c: str
    resetter: ResettingUpstream
    client: httpx.Client


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pool]:
    root = tmp_path_factory.mktemp("pools")
    started: list[Proc] = []
    resetter = ResettingUpstream()
    try:
        urls = []
        for _ in range(3):
            proc, url = start_emulator()
            started.append(proc)
            urls.append(url)
        a, b, c = urls
        cfg = write_config(
            root / "gateway.toml",
            f"""
[gateway]
flush_interval_seconds = 0.2

[[routes]]
name = "rr"
prefix = "/rr"
upstreams = ["{a}", "{b}", "{c}"]

[[routes]]
name = "weighted"
prefix = "/w"
strategy = "weighted"
upstreams = [{{ url = "{a}", weight = 3 }}, "{b}"]

[[routes]]
name = "fastest"
prefix = "/ll"
strategy = "least_latency"
upstreams = ["{a}", "{b}"]

[[routes]]
name = "breaker"
prefix = "/cb"
upstreams = ["{a}", "{b}"]
circuit_breaker = {{ failures = 3, cooldown_seconds = 1 }}

[[routes]]
name = "lonely"
prefix = "/cb1"
upstreams = ["{c}"]
[routes.circuit_breaker]
failures = 2
cooldown_seconds = 60

[[routes]]
name = "retry"
prefix = "/retry"
upstreams = ["{resetter.url}", "{b}"]
retries = {{ attempts = 1, backoff_ms = 10 }}

[[routes]]
name = "slow"
prefix = "/slow"
upstreams = [{{ url = "{c}", timeout_seconds = 0.3 }}]

[[routes]]
name = "slowfb"
prefix = "/slowfb"
upstreams = [{{ url = "{a}", timeout_seconds = 0.3 }}, "{b}"]
retries = {{ attempts = 1, backoff_ms = 0 }}
""",
        )
        home = root / "home"
        gw, base = start_gateway(home, cfg)
        started.append(gw)
        with httpx.Client(base_url=base, timeout=30) as client:
            yield Pool(home, base, a, b, c, resetter, client)
        assert gw.stop() == 0, gw.output
    finally:
        for p in reversed(started):
            p.stop()
        resetter.close()


def traceparent() -> tuple[str, dict[str, str]]:
    trace = secrets.token_hex(16)
    return trace, {"traceparent": f"00-{trace}-{secrets.token_hex(8)}-01"}


def counts(pool: Pool) -> dict[str, int]:
    return {name: served_count(url) for name, url in (("a", pool.a), ("b", pool.b), ("c", pool.c))}


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before[k] for k in before}


def test_round_robin_is_exact(pool: Pool) -> None:
    before = counts(pool)
    for i in range(300):
        assert pool.client.get(f"/rr/claims/{i}").status_code == 200
    assert delta(before, counts(pool)) == {"a": 100, "b": 100, "c": 100}


def test_weighted_split_over_1000_calls(pool: Pool) -> None:
    before = counts(pool)
    for i in range(1000):
        assert pool.client.get(f"/w/claims/{i}").status_code == 200
    d = delta(before, counts(pool))
    assert d["a"] + d["b"] == 1000 and d["c"] == 0
    assert 710 <= d["a"] <= 790, d  # weights 3:1 -> 75% +/- 4%


def test_least_latency_prefers_the_fast_upstream_and_follows_a_recovery(pool: Pool) -> None:
    try:
        set_fault(pool.b, delay_ms=40)
        before = counts(pool)
        for i in range(100):
            assert pool.client.get(f"/ll/quotes/{i}").status_code == 200
        d = delta(before, counts(pool))
        assert d["a"] >= 80 and d["b"] >= 1, d  # fast one preferred; slow one still probed
        set_fault(pool.a, delay_ms=40)
        set_fault(pool.b)
        before = counts(pool)
        for i in range(100):
            assert pool.client.get(f"/ll/quotes/{i}").status_code == 200
        d = delta(before, counts(pool))
        assert d["b"] >= 60, d  # exploration noticed b recovered and a slowed down
    finally:
        set_fault(pool.a)
        set_fault(pool.b)


def test_circuit_opens_after_failures_and_closes_after_cooldown(pool: Pool) -> None:
    try:
        set_fault(pool.a, error_ratio=1, status=503)
        statuses = [pool.client.get(f"/cb/policies/{i}").status_code for i in range(6)]
        assert sorted(statuses) == [200, 200, 200, 503, 503, 503], statuses
        dead = served_count(pool.a)
        statuses = [pool.client.get(f"/cb/policies/{i}").status_code for i in range(20)]
        assert statuses == [200] * 20
        assert served_count(pool.a) == dead  # open: no traffic to the failing upstream
        set_fault(pool.a)  # it recovers
        time.sleep(1.2)  # the cool-down (1 s) passes
        statuses = [pool.client.get(f"/cb/policies/{i}").status_code for i in range(20)]
        assert statuses == [200] * 20
        assert served_count(pool.a) - dead >= 8  # probe succeeded: closed, back in rotation
    finally:
        set_fault(pool.a)


def test_every_circuit_open_gives_503_no_healthy_upstream(pool: Pool) -> None:
    for _ in range(2):
        assert pool.client.get("/cb1/status/503").status_code == 503
    before = served_count(pool.c)
    r = pool.client.get("/cb1/claims/1")
    assert r.status_code == 503
    error = r.json()["error"]
    assert error["type"] == "no_healthy_upstream" and error["route"] == "lonely"
    assert error["upstreams"][0]["circuit"] == "open"
    assert int(r.headers["retry-after"]) >= 1
    assert served_count(pool.c) == before


def test_idempotent_get_is_retried_on_another_upstream_post_is_not(pool: Pool) -> None:
    resetter = pool.resetter
    traces = []
    for i in range(4):
        trace, headers = traceparent()
        traces.append(trace)
        r = pool.client.get(f"/retry/claims/{i}", headers=headers)
        assert r.status_code == 200, r.text
    assert resetter.accepted >= 1
    got = rows(
        pool.home,
        "SELECT attempts, fallback_chain, upstream, status FROM requests "
        "WHERE trace_id IN (SELECT unnest(?::VARCHAR[]))",
        [traces],
        expect=4,
    )
    assert len(got) == 4
    retried = [g for g in got if g["attempts"] == 2]
    assert retried, got
    for g in retried:
        assert g["fallback_chain"] == f"retry@{resetter.url}(reset) > retry@{pool.b}(ok)"
        assert g["upstream"] == pool.b and g["status"] == 200

    accepted = resetter.accepted
    b_before = served_count(pool.b)
    statuses = [pool.client.post(f"/retry/claims/{i}", json={"n": i}).status_code for i in range(4)]
    assert sorted(statuses) == [200, 200, 502, 502], statuses  # round robin, no retry
    assert resetter.accepted - accepted == 2  # each POST to it tried exactly once
    assert served_count(pool.b) - b_before == 2


def test_per_upstream_timeout_cuts_a_slow_upstream(pool: Pool) -> None:
    r = pool.client.get("/slow/delay/1500")
    assert r.status_code == 504
    assert r.json()["error"]["type"] == "upstream_timeout"
    r = pool.client.post("/slow/delay/1500", json={})  # a timeout applies to every method
    assert r.status_code == 504

    trace, headers = traceparent()
    r = pool.client.get("/slowfb/delay/700", headers=headers)
    assert r.status_code == 200 and r.json() == {"delayed_ms": 700}
    (row,) = rows(
        pool.home,
        "SELECT attempts, fallback_chain, upstream FROM requests WHERE trace_id = ?",
        [trace],
        expect=1,
    )
    assert row["attempts"] == 2
    assert row["fallback_chain"] == f"slowfb@{pool.a}(timeout) > slowfb@{pool.b}(ok)"
    assert row["upstream"] == pool.b


def test_bad_pool_config_gives_one_error_per_mistake_and_exit_2(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path / "bad.toml",
        """
[[routes]]
name = "claims"
prefix = "/claims"
strategy = "fastest_please"
upstreams = ["http://127.0.0.1:9001", { url = "htp://claims-2", weight = 2 }]

[[routes]]
name = "openai"
prefix = "/openai"
upstreams = ["http://127.0.0.1:9100"]

[[llm_aliases]]
name = "claims-summarizer"
targets = ["openai:gpt-4o-mini", "azure:gpt-4o-mini"]
""",
    )
    r = run_aiops("gateway", "--home", str(tmp_path / "home"), "--config", str(cfg))
    assert r.returncode == 2, r.stdout + r.stderr
    lines = [line for line in r.stderr.splitlines() if str(cfg) in line]
    assert len(lines) == 3, r.stderr
    text = "\n".join(lines)
    assert "routes[0].strategy: 'fastest_please' is not one of round_robin" in text
    assert "routes[0].upstreams[1]: url: 'htp://claims-2' is not an http(s) URL" in text
    assert "alias claims-summarizer target azure:gpt-4o-mini: no route named 'azure'" in text
