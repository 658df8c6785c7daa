"""Every source of changes through real processes: the `aiops changes` CLI, the gateway's
admin endpoint (POST /changes, one server even with --processes 2), and changes seen in
traffic through a real gateway: the REST emulator's version header changing, the LLM
emulator serving a different model, and a new route appearing."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from suite.changes import run_changes_job
from suite.config import GatewayConfig
from suite.ingest import ingest_spool
from suite.store import Store
from tests.conftest import write_config
from tests.integration.helpers import files_containing
from tests.procs import AIOPS, Proc, free_port, run_aiops

pytestmark = pytest.mark.integration

TOKEN = "adm-7f3c9e1d-test-token"


@dataclass
class Setup:
    home: Path
    base: str
    admin: str
    rest: str
    gateway: Proc
    config: Path


def written(home: Path) -> int:
    total = 0
    for f in (home / "run").glob("gateway-*.json"):
        try:
            total += int(json.loads(f.read_text())["written"])
        except (OSError, ValueError, KeyError):
            pass
    return total


def wait_written(home: Path, n: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while written(home) < n and time.monotonic() < deadline:
        time.sleep(0.1)
    assert written(home) >= n, f"gateway wrote {written(home)} records, expected {n}"


def run_worker(home: Path) -> str:
    """`aiops worker --once`; the jobs that changes need must succeed (a failure in an
    unrelated job is not this test's business, but is shown if ours fail)."""
    r = run_aiops("worker", "--once", "--home", str(home), timeout=180)
    out = r.stdout + r.stderr
    for job in ("ingest", "changes", "suspects"):
        line = next((x for x in r.stdout.splitlines() if x.startswith(f"{job}: ")), None)
        assert line is not None and "FAILED" not in line, f"job {job}:\n{out}"
    return out


def ingest_and_observe(home: Path) -> None:
    """The two worker jobs the traffic test needs (the same functions `aiops worker`
    runs, in this process: the other jobs would only add minutes)."""
    store = Store(home)
    ingest_spool(store)
    run_changes_job(store, GatewayConfig(path="-"))


def changes(home: Path, *extra: str) -> list[dict[str, Any]]:
    r = run_aiops("changes", "list", "--json", "--home", str(home), *extra)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("changes")
    started: list[Proc] = []
    try:
        rest = Proc(
            [sys.executable, "-m", "suite.emulators.rest_upstream", "--port", "0",
             "--api-version", "1.0.0"]
        )  # fmt: skip
        started.append(rest)
        rest_url = rest.wait_for(r"emulator listening on (http://\S+)").group(1)
        llm = Proc([sys.executable, "-m", "suite.emulators.llm", "--port", "0"])
        started.append(llm)
        llm_url = llm.wait_for(r"llm emulator listening on (http://\S+)").group(1)
        config = write_config(
            tmp / "gateway.toml",
            f"""
[gateway]
admin_port = {free_port()}
admin_token = "${{AIOPS_TEST_ADMIN_TOKEN}}"

[[routes]]
name = "claims"
prefix = "/claims"
upstreams = ["{rest_url}"]

[[routes]]
name = "policy"
prefix = "/policy"
upstreams = ["{rest_url}"]

[[routes]]
name = "openai"
prefix = "/openai"
strip_prefix = true
upstreams = ["{llm_url}"]
llm_provider = "openai"
""",
        )
        home = tmp / "home"
        gateway = Proc(
            [AIOPS, "gateway", "--home", str(home), "--config", str(config), "--listen-port", "0"],
            env={"AIOPS_TEST_ADMIN_TOKEN": TOKEN},
        )
        started.append(gateway)
        base = gateway.wait_for(r"aiops gateway listening on (http://\S+)").group(1)
        admin = gateway.wait_for(r"aiops admin endpoint on (http://\S+) ").group(1)
        yield Setup(home, base, admin, rest_url, gateway, config)
    finally:
        for p in reversed(started):
            p.stop()


def test_versions_models_and_routes_seen_in_traffic(gw: Setup) -> None:
    oa = openai.OpenAI(base_url=f"{gw.base}/openai/v1", api_key="sk-test-not-a-key", max_retries=0)
    before = written(gw.home)
    with httpx.Client(base_url=gw.base) as client:
        for i in range(3):
            assert client.get(f"/claims/CLM-{i}").status_code == 200
    oa.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    wait_written(gw.home, before + 4)
    ingest_and_observe(gw.home)
    assert [c for c in changes(gw.home) if c["source"] == "observed"] == []  # the baseline

    # A deploy (the upstream now says 1.1.0), a new model served, a new route in traffic.
    assert httpx.get(f"{gw.rest}/_emulator/version?value=1.1.0").json() == {"version": "1.1.0"}
    before = written(gw.home)
    with httpx.Client(base_url=gw.base) as client:
        for i in range(2):
            assert client.get(f"/claims/CLM-{i}").status_code == 200
        assert client.get("/policy/POL-1").status_code == 200
    oa.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hello"}])
    wait_written(gw.home, before + 4)
    ingest_and_observe(gw.home)
    observed = sorted(
        (
            (c["service"], c["kind"], c["summary"])
            for c in changes(gw.home)
            if c["source"] == "observed"
        ),
    )
    assert observed == [
        ("claims", "deploy", f"{gw.rest} now reports version 1.1.0 (was 1.0.0)"),
        ("openai", "config", "openai serves LLM model gpt-4o-2024-08-06 (first seen)"),
        ("policy", "infra", "new route policy seen in traffic"),
    ]
    assert all(c["status"] == "implemented" for c in changes(gw.home) if c["source"] == "observed")
    ingest_and_observe(gw.home)  # nothing new in traffic: nothing recorded twice
    assert len([c for c in changes(gw.home) if c["source"] == "observed"]) == 3


def test_admin_endpoint_records_changes_and_rejects_bad_bodies(gw: Setup) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=gw.admin) as client:
        assert client.get("/healthz").json()["status"] == "ok"
        r = client.post("/changes", json={"service": "claims", "kind": "deploy", "summary": "x"})
        assert r.status_code == 401 and "Bearer" in r.json()["error"]["message"]
        r = client.post(
            "/changes", headers={**auth, "Authorization": "Bearer wrong"}, json={"service": "a"}
        )
        assert r.status_code == 401
        for body, reason in (
            ({"service": "claims", "kind": "rocket", "summary": "x"},
             "kind: 'rocket' is not one of deploy, config, flag, schema, infra, chaos"),
            ({"kind": "deploy"}, "service is required; summary is required"),
            ({"service": "claims", "kind": "deploy", "summary": "x", "window_start": "soon",
              "window_end": "2026-03-10T12:00"}, "window_start: 'soon' is not an ISO 8601 time"),
            ([1, 2], "the body must be a JSON object"),
        ):  # fmt: skip
            r = client.post("/changes", headers=auth, json=body)
            assert r.status_code == 400, r.text
            assert reason in r.json()["error"]["message"]
        r = client.post("/changes", headers=auth, content=b"{not json")
        assert r.status_code == 400 and "the body is not JSON" in r.json()["error"]["message"]
        r = client.post(
            "/changes",
            headers=auth,
            json={"service": "claims", "kind": "deploy", "summary": "claims 3.0 from CI",
                  "risk": "low", "requested_by": "gitlab-ci", "detail": {"pipeline": 4711}},
        )  # fmt: skip
        assert r.status_code == 201, r.text
        cid = r.json()["id"]
        assert cid.startswith("CHG-") and r.json()["status"] == "implemented"
    run_worker(gw.home)
    api = [c for c in changes(gw.home) if c["source"] == "api"]
    assert [(c["id"], c["service"], c["kind"], c["summary"], c["status"]) for c in api] == [
        (cid, "claims", "deploy", "claims 3.0 from CI", "implemented")
    ]
    assert json.loads(api[0]["detail"]) == {"pipeline": 4711}
    r = run_aiops("changes", "show", cid, "--json", "--home", str(gw.home))
    shown = json.loads(r.stdout)[0]
    assert [(e["to_status"], e["actor"]) for e in shown["events"]] == [("implemented", "gitlab-ci")]
    assert files_containing(gw.home, [TOKEN.encode()]) == []


def test_cli_records_and_walks_the_lifecycle(gw: Setup) -> None:
    home = str(gw.home)
    r = run_aiops(
        "changes", "add", "--home", home, "--service", "claims", "--kind", "schema",
        "--summary", "add index on claims.status", "--risk", "high", "--by", "alice",
        "--window-start", "2099-01-01T22:00Z", "--window-end", "2099-01-01T23:00Z", "--json",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    cid = json.loads(r.stdout)[0]["id"]
    r = run_aiops("changes", "approve", cid, "--home", home, "--by", "alice")
    assert r.returncode == 2 and "alice requested it and cannot approve it" in r.stderr
    r = run_aiops("changes", "approve", cid, "--home", home, "--by", "bob", "--note", "CAB ok")
    assert r.returncode == 0, r.stderr
    r = run_aiops("changes", "add", "--home", home, "--service", "claims", "--kind", "rocket",
                  "--summary", "x")  # fmt: skip
    assert r.returncode == 2 and "kind: 'rocket' is not one of" in r.stderr
    (row,) = [c for c in changes(gw.home, "--service", "claims", "--status", "approved")]
    assert (row["id"], row["approved_by"], row["requested_by"]) == (cid, "bob", "alice")


def test_admin_endpoint_served_by_one_of_several_processes(tmp_path: Path) -> None:
    port = free_port()
    gateway = Proc(
        [AIOPS, "gateway", "--home", str(tmp_path / "home"), "--config", str(_config(tmp_path)),
         "--listen-port", "0", "--processes", "2", "--admin-port", str(port)]
    )  # fmt: skip
    try:
        gateway.wait_for(r"aiops admin endpoint on")
        deadline = time.monotonic() + 30
        while gateway.output.count("aiops gateway listening on") < 2:
            assert time.monotonic() < deadline, gateway.output
            time.sleep(0.05)
        assert gateway.output.count("aiops admin endpoint on") == 1, gateway.output
        r = httpx.post(
            f"http://127.0.0.1:{port}/changes",
            json={"service": "claims", "kind": "flag", "summary": "fraud-v2 on"},
        )
        assert r.status_code == 201, r.text
    finally:
        assert gateway.stop() == 0, gateway.output
    assert list((tmp_path / "home" / "spool" / "changes").glob("*.parquet"))


def _config(tmp: Path) -> Path:
    return write_config(
        tmp / "gw.toml",
        '[[routes]]\nname = "claims"\nprefix = "/claims"\nupstreams = ["http://127.0.0.1:9"]\n',
    )
