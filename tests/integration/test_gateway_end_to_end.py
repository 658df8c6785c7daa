"""End to end: clients -> real `aiops gateway` -> emulator upstreams, then
`aiops worker --once` -> DuckDB, checked row by row against what the clients saw."""

from __future__ import annotations

import json
import socket
import subprocess
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from tests.conftest import write_config
from tests.integration.helpers import (
    VARCHAR_COLUMNS,
    files_containing,
    parquet_string_values,
    query_json,
    run_worker_once,
    stop_and_close,
    wait_gateway_received,
)
from tests.procs import Proc, start_emulator, start_gateway

pytestmark = pytest.mark.integration

TOTAL = 2000
CLIENTS = 16
AUTH_SECRET = "Bearer AUTHSECRET-7f3a9c2e51"
QUERY_SECRET = "SECRET123"
DISCONNECTS = {37, 411, 777, 1003, 1299, 1555, 1801, 1977}
CURLS = {i for i in range(5, TOTAL, 100)}  # 20 requests through curl
BIG = {123, 1234}  # > 1 MiB: streamed through the gateway's byte counter
BIG_SIZE = 1_500_000
CYCLE = ("json", "json", "reset", "bytes", "bytes", "post", "post", "s500", "down", "noroute")


@dataclass
class Sent:
    i: int
    kind: str
    method: str
    path: str  # as the client sent it, without the query
    route: str | None
    body_len: int
    secret: bool
    trace_id: str
    status: int | None = None  # what the client got
    body: bytes = b""


def kind_of(i: int) -> str:
    if i in DISCONNECTS:
        return "drip"
    if i in CURLS:
        return "curl"
    if i in BIG:
        return "big"
    return CYCLE[i % len(CYCLE)]


def plan() -> list[Sent]:
    out = []
    for i in range(TOTAL):
        kind = kind_of(i)
        trace_id = f"4bf92f3577b34da6{i:016x}"
        secret = i % 3 == 0 or kind == "curl"
        if kind == "json":
            s = Sent(i, kind, "GET", f"/claims/items/{i}", "claims", 0, secret, trace_id)
        elif kind == "bytes":
            s = Sent(i, kind, "GET", f"/claims/bytes/{(i * 7919) % 200_000}", "claims", 0, secret, trace_id)  # fmt: skip
        elif kind == "big":
            s = Sent(i, kind, "GET", f"/claims/bytes/{BIG_SIZE}", "claims", 0, secret, trace_id)
        elif kind == "post":
            s = Sent(i, kind, "POST", "/policies/upload", "policies", 100 + (i * 31) % 20_000, secret, trace_id)  # fmt: skip
        elif kind == "curl":
            s = Sent(i, kind, "POST", "/policies/curl", "policies", 3000 + i, secret, trace_id)
        elif kind == "reset":  # the upstream closes the connection without answering
            s = Sent(i, kind, "GET", "/claims/reset", "claims", 0, secret, trace_id)
        elif kind == "s500":
            s = Sent(i, kind, "GET", "/claims/status/500", "claims", 0, secret, trace_id)
        elif kind == "down":
            s = Sent(i, kind, "GET", f"/ledger/accounts/{i}", "ledger-down", 0, secret, trace_id)
        elif kind == "noroute":
            s = Sent(i, kind, "GET", f"/nowhere/{i}", None, 0, secret, trace_id)
        else:
            s = Sent(i, kind, "GET", "/claims/drip", "claims", 0, secret, trace_id)
        out.append(s)
    return out


def query_string(s: Sent) -> str:
    q = f"n={s.i}"
    if s.kind == "drip":
        q = f"chunks=50&interval_ms=20&{q}"
    if s.secret:
        q += f"&api_key={QUERY_SECRET}"
    return q


def headers_for(s: Sent) -> dict[str, str]:
    return {
        "Authorization": AUTH_SECRET,
        "traceparent": f"00-{s.trace_id}-{s.i + 1:016x}-01",
    }


def body_for(s: Sent) -> bytes:
    return bytes((s.i + k) % 251 for k in range(s.body_len))


def send_httpx(client: httpx.Client, s: Sent) -> None:
    url = f"{s.path}?{query_string(s)}"
    if s.kind == "drip":
        with client.stream("GET", url, headers=headers_for(s)) as r:
            s.status = r.status_code
            for chunk in r.iter_raw():
                s.body = chunk
                break  # leave mid-response: closing the stream drops the connection
        return
    r = client.request(s.method, url, headers=headers_for(s), content=body_for(s) or None)
    s.status, s.body = r.status_code, r.content


def send_curl(base: str, s: Sent, tmp: Path) -> None:
    body_file = tmp / f"body-{s.i}"
    body_file.write_bytes(body_for(s))
    out_file = tmp / f"out-{s.i}"
    cmd = [
        "curl", "-sS", "--noproxy", "*", "-X", "POST",
        "--data-binary", f"@{body_file}",
        "-H", "Content-Type: application/octet-stream",
        "-H", f"Authorization: {AUTH_SECRET}",
        "-H", f"traceparent: 00-{s.trace_id}-{s.i + 1:016x}-01",
        "-o", str(out_file), "-w", "%{http_code}",
        f"{base}{s.path}?{query_string(s)}",
    ]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"curl failed: {r.stderr}"
    s.status, s.body = int(r.stdout.strip()), out_file.read_bytes()


def client_loop(base: str, items: list[Sent], tmp: Path) -> None:
    with httpx.Client(base_url=base, timeout=60, trust_env=False) as client:
        for s in items:
            if s.kind == "curl":
                send_curl(base, s, tmp)
            else:
                send_httpx(client, s)


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound (so nobody else takes it) but not
    listening."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def test_gateway_end_to_end(tmp_path: Path, home: Path, procs: list[Proc], refused_port: int):
    emu_a, url_a = start_emulator()
    procs.append(emu_a)
    emu_b, url_b = start_emulator()
    procs.append(emu_b)
    down_url = f"http://127.0.0.1:{refused_port}"
    config = write_config(
        tmp_path / "gateway.toml",
        f"""
[gateway]
flush_interval_seconds = 0.2

[[routes]]
name = "claims"
prefix = "/claims"
upstreams = ["{url_a}", "{url_b}"]
strip_prefix = true

[[routes]]
name = "policies"
prefix = "/policies"
upstreams = ["{url_a}"]

[[routes]]
name = "ledger-down"
prefix = "/ledger"
upstreams = ["{down_url}"]
""",
    )
    gw, base = start_gateway(home, config)
    procs.append(gw)

    sent = plan()
    curl_tmp = tmp_path / "curl"
    curl_tmp.mkdir()
    with ThreadPoolExecutor(CLIENTS) as pool:
        futures = [
            pool.submit(client_loop, base, sent[k::CLIENTS], curl_tmp) for k in range(CLIENTS)
        ]
        for f in futures:
            f.result()

    # --- what the clients saw ----------------------------------------------------------
    by_kind: dict[str, list[Sent]] = {}
    for s in sent:
        by_kind.setdefault(s.kind, []).append(s)
    for s in by_kind["json"]:
        assert s.status == 200, (s, s.body[:300])
        echoed = json.loads(s.body)
        assert echoed["path"] == s.path.removeprefix("/claims"), "strip_prefix not applied"
    for s in by_kind["post"] + by_kind["curl"]:
        assert s.status == 200, (s, s.body[:300])
        echoed = json.loads(s.body)
        assert echoed["path"] == s.path, "prefix stripped on a route without strip_prefix"
        assert echoed["method"] == "POST"
        assert echoed["received_bytes"] == s.body_len
    for s in by_kind["bytes"] + by_kind["big"]:
        assert s.status == 200
        assert len(s.body) == int(s.path.rsplit("/", 1)[1])
    for s in by_kind["s500"]:
        assert s.status == 500
    for s in by_kind["down"]:
        assert s.status == 502, (s, s.body[:300])
        err = json.loads(s.body)["error"]
        assert err["type"] == "upstream_unreachable"
        assert err["route"] == "ledger-down"
        assert "ledger-down" in err["message"]
    for s in by_kind["reset"]:
        assert s.status == 502, (s, s.body[:300])
        err = json.loads(s.body)["error"]
        assert err["type"] == "upstream_reset"
        assert err["route"] == "claims"
    for s in by_kind["noroute"]:
        assert s.status == 404, (s, s.body[:300])
        err = json.loads(s.body)["error"]
        assert err["type"] == "no_route"
        assert s.path in err["message"]
    for s in by_kind["drip"]:
        assert s.status == 200 and s.body.startswith(b"chunk 0")

    # --- stop gracefully: every record must be flushed -------------------------------
    # Disconnected flows finish on the gateway a moment after the client leaves; wait
    # until the gateway has counted them all so the stop does not race them.
    wait_gateway_received(home, TOTAL)
    code = stop_and_close(gw)
    assert code == 0, gw.output
    assert f"{TOTAL} records received, {TOTAL} written, 0 dropped" in gw.output, gw.output

    # --- secrets never reach the spool ---------------------------------------------------
    segments = sorted((home / "spool").glob("*.parquet"))
    assert segments, "the gateway wrote no spool segment"
    secrets = [AUTH_SECRET.encode(), QUERY_SECRET.encode(), b"AUTHSECRET"]
    assert files_containing(home, secrets) == []
    spool_values = [v for seg in segments for v in parquet_string_values(seg)]
    assert not [v for v in spool_values if "AUTHSECRET" in v or QUERY_SECRET in v]
    # The decoded scan does see query strings (so it would see a secret in one).
    assert any("api_key=REDACTED" in v for v in spool_values)

    # --- load exactly once ---------------------------------------------------------------
    out = run_worker_once(home)
    assert f"ingest: {TOTAL} rows" in out, out
    assert list((home / "spool").glob("*.parquet")) == []

    totals = query_json(home, "SELECT count(*) AS n, count(DISTINCT id) AS d FROM requests")
    assert totals == [{"n": TOTAL, "d": TOTAL}]
    rows = query_json(
        home,
        "SELECT id, route, method, scheme, path, query, status, error, request_bytes, "
        "response_bytes, upstream, trace_id, parent_span_id, streamed, kind, client_addr, "
        "gateway_id, duration_ms, ttfb_ms FROM requests",
    )
    assert len(rows) == TOTAL
    by_n: dict[int, dict[str, Any]] = {}
    for row in rows:
        q = parse_qs(str(row["query"]))
        n = int(q["n"][0])
        assert n not in by_n, f"two rows for request n={n}"
        by_n[n] = row
    assert sorted(by_n) == list(range(TOTAL))

    upstream_of_route = {"policies": [url_a], "claims": [url_a, url_b], "ledger-down": [down_url]}
    claims_upstreams: Counter[object] = Counter()
    for s in sent:
        row = by_n[s.i]
        ctx = (s, row)
        assert row["route"] == s.route, ctx
        assert row["method"] == s.method, ctx
        assert row["scheme"] == "http", ctx
        assert row["path"] == s.path, ctx  # the path the client sent, before strip_prefix
        assert row["kind"] == "http", ctx
        assert row["trace_id"] == s.trace_id, ctx
        assert row["client_addr"] == "127.0.0.1", ctx
        assert row["gateway_id"], ctx
        assert row["duration_ms"] >= 0, ctx
        if s.kind in ("json", "bytes", "post", "curl", "s500"):
            # An answer from the upstream: its first byte came before the exchange ended.
            assert 0 <= row["ttfb_ms"] <= row["duration_ms"], ctx
        assert row["parent_span_id"] == f"{s.i + 1:016x}", ctx
        q = parse_qs(str(row["query"]))
        assert q.get("api_key") == (["REDACTED"] if s.secret else None), ctx
        if s.route is None:
            assert row["upstream"] is None, ctx
        else:
            assert row["upstream"] in upstream_of_route[s.route], ctx
        if s.route == "claims":
            claims_upstreams[row["upstream"]] += 1
        if s.kind == "drip":
            assert row["status"] == 200, ctx  # the headers reached the client
            assert row["error"] == "client_disconnected", ctx
            assert row["streamed"] is True, ctx
            assert row["response_bytes"] >= len(s.body), ctx
            continue
        assert row["status"] == s.status, ctx
        assert row["request_bytes"] == s.body_len, ctx
        assert row["response_bytes"] == len(s.body), ctx
        expected_error = {
            "down": "upstream_unreachable",
            "noroute": "no_route",
            "reset": "upstream_reset",
        }.get(s.kind)
        assert row["error"] == expected_error, ctx
        assert row["streamed"] is (s.kind == "big"), ctx

    # Round-robin: each request on the route takes the next upstream in turn.
    assert set(claims_upstreams) == {url_a, url_b}
    assert abs(claims_upstreams[url_a] - claims_upstreams[url_b]) <= 1, claims_upstreams

    # --- secrets never reach the store either --------------------------------------------
    assert files_containing(home, secrets) == []
    concat = f"concat_ws('|', {', '.join(VARCHAR_COLUMNS)})"
    leaks = query_json(
        home,
        f"SELECT count(*) FILTER (WHERE {concat} LIKE '%AUTHSECRET%' "
        f"OR {concat} LIKE '%{QUERY_SECRET}%') AS leaks, "
        f"count(*) FILTER (WHERE {concat} LIKE '%api_key=REDACTED%') AS redacted "
        "FROM requests",
    )
    assert leaks == [{"leaks": 0, "redacted": sum(s.secret for s in sent)}]
