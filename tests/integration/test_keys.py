"""Gateway keys, rate limits and budgets end to end: `aiops keys` -> a real `aiops gateway`
subprocess -> the LLM and REST emulators, with the official openai/anthropic SDKs and
httpx as clients, and the rows checked in DuckDB after `aiops worker --once`."""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from suite.clock import utc_now
from suite.keys import create_key
from suite.store import Store
from tests.conftest import write_config
from tests.integration.helpers import (
    files_containing,
    query_json,
    secrets_in_spool,
)
from tests.procs import Proc, run_aiops, start_emulator, start_gateway

pytestmark = pytest.mark.integration

OPENAI_PROVIDER_KEY = "sk-proj-PROVIDER-OPENAI-91c2"
ANTHROPIC_PROVIDER_KEY = "sk-ant-PROVIDER-ANTHROPIC-3e7d"
ENV = {"KEYS_TEST_OPENAI": OPENAI_PROVIDER_KEY, "KEYS_TEST_ANTHROPIC": ANTHROPIC_PROVIDER_KEY}
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Summarise claim 42"}]}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Setup:
    home: Path
    config: Path
    gateway: Proc
    base: str
    issued: list[str] = field(default_factory=list)  # every gateway key handed out

    def key(self, *args: str, cli: bool = False) -> str:
        """A new gateway key: through `aiops keys create` (cli=True), else through the
        function that command calls (a CLI start-up costs seconds on a busy machine)."""
        if cli:
            r = run_aiops("keys", "create", "--home", str(self.home), *args)
            assert r.returncode == 0, r.stderr
            key = r.stdout.strip()
            assert len(r.stdout.splitlines()) == 1 and "shown once" in r.stderr
        else:
            opts = dict(zip(args[::2], args[1::2], strict=True))
            _, key = create_key(
                Store(self.home),
                tenant=opts["--tenant"],
                routes=tuple(opts.get("--routes", "").split(",")) if "--routes" in opts else (),
                rpm=int(opts["--rpm"]) if "--rpm" in opts else None,
                tpm=int(opts["--tpm"]) if "--tpm" in opts else None,
                budget_usd_day=float(opts["--budget-usd-day"])
                if "--budget-usd-day" in opts
                else None,
            )
        assert key.startswith("aiops_")
        self.issued.append(key)
        return key

    def restart(self) -> None:
        assert self.gateway.stop() == 0, self.gateway.output
        self.gateway, self.base = start_gateway(self.home, self.config)


def run_jobs(home: Path, *names: str) -> None:
    """The worker's own jobs (ingest, key spend), run as `aiops worker --once` runs them but
    without the unrelated ones, which keeps this module fast."""
    from suite.config import GatewayConfig
    from suite.worker import JOBS

    store = Store(home)
    for job in JOBS:
        if job.name in names:
            job.run(store, GatewayConfig(path=""))


def wait_usable(s: Setup, key: str, path: str = "/claims/1", timeout: float = 10.0) -> None:
    """Wait until the gateway has loaded a freshly created key."""
    deadline = time.monotonic() + timeout
    while True:
        r = httpx.get(s.base + path, headers={"Authorization": f"Bearer {key}"})
        if r.status_code != 401 or time.monotonic() > deadline:
            return
        time.sleep(0.2)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("keys")
    llm = Proc([sys.executable, "-m", "suite.emulators.llm", "--port", "0"])
    llm_url = llm.wait_for(r"llm emulator listening on (http://\S+)").group(1)
    rest, rest_url = start_emulator()
    home = root / "home"
    cfg = write_config(
        root / "gateway.toml",
        f"""
[gateway]
flush_interval_seconds = 0.2

[[routes]]
name = "openai"
prefix = "/openai"
strip_prefix = true
upstreams = ["{llm_url}"]
llm_provider = "openai"
auth = "key"
provider_key = "${{KEYS_TEST_OPENAI}}"

[[routes]]
name = "claude"
prefix = "/anthropic"
strip_prefix = true
upstreams = ["{llm_url}"]
llm_provider = "anthropic"
auth = "key"
provider_key = "${{KEYS_TEST_ANTHROPIC}}"

[[routes]]
name = "claims"
prefix = "/claims"
upstreams = ["{rest_url}"]
auth = "key"

[[routes]]
name = "public"
prefix = "/public"
upstreams = ["{rest_url}"]
rpm = 4
""",
    )
    with pytest.MonkeyPatch.context() as mp:
        for k, v in ENV.items():
            mp.setenv(k, v)
        gw, base = start_gateway(home, cfg)
        s = Setup(home, cfg, gw, base)
        try:
            yield s
        finally:
            s.gateway.stop()
            rest.stop()
            llm.stop()


def test_401_reasons_and_403(setup: Setup) -> None:
    s = setup
    claims_only = s.key("--tenant", "claims-team", "--routes", "claims")
    wait_usable(s, claims_only)
    url = s.base + "/openai/v1/chat/completions"
    unknown = "aiops_" + "0" * 12 + "_" + "1" * 64
    cases = {
        "missing": {},
        "malformed": {"Authorization": "Bearer sk-proj-client-own-key"},
        "unknown": {"x-api-key": unknown},
    }
    for reason, headers in cases.items():
        r = httpx.post(url, json=CHAT, headers=headers)
        assert r.status_code == 401, (reason, r.text)
        assert r.json()["error"]["reason"] == reason
        assert r.json()["error"]["type"] == f"api_key_{reason}"
    r = httpx.post(url, json=CHAT, headers={"Authorization": f"Bearer {claims_only}"})
    assert r.status_code == 403 and r.json()["error"]["type"] == "api_key_route_forbidden"
    assert r.json()["error"]["allowed_routes"] == ["claims"]

    # Expired: a key that expires seconds from now (through the same API the CLI uses):
    # accepted first, refused once its time has come.
    expires_at = time.time() + 4
    key_id, expiring = create_key(
        Store(s.home), tenant="short-lived", expires_at=utc_now() + timedelta(seconds=4)
    )
    s.issued.append(expiring)
    wait_usable(s, expiring)
    r = httpx.get(s.base + "/claims/1", headers={"Authorization": f"Bearer {expiring}"})
    assert r.status_code == 200 or time.time() >= expires_at, r.text
    time.sleep(max(0.0, expires_at - time.time()) + 0.1)
    r = httpx.get(s.base + "/claims/1", headers={"Authorization": f"Bearer {expiring}"})
    assert r.status_code == 401 and r.json()["error"]["reason"] == "expired"

    # Revoked while the gateway runs: refused within a couple of seconds.
    key = s.key("--tenant", "to-revoke")
    wait_usable(s, key)
    r = httpx.get(s.base + "/claims/1", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200
    key_id = key.split("_")[1]
    rv = run_aiops("keys", "revoke", "--home", str(s.home), key_id)
    assert rv.returncode == 0, rv.stderr
    deadline = time.monotonic() + 10
    while True:
        r = httpx.get(s.base + "/claims/1", headers={"Authorization": f"Bearer {key}"})
        if r.status_code == 401 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert r.status_code == 401 and r.json()["error"]["reason"] == "revoked"
    listed = json.loads(run_aiops("keys", "list", "--home", str(s.home), "--json").stdout)
    assert {k["key_id"]: k["status"] for k in listed}[key_id] == "revoked"
    assert not any(k in json.dumps(listed) for k in s.issued)


def test_sdks_use_the_gateway_key_and_upstream_gets_the_provider_key(setup: Setup) -> None:
    s = setup
    key = s.key("--tenant", "underwriting", "--name", "sdk-test", cli=True)
    wait_usable(s, key)
    oa = openai.OpenAI(base_url=f"{s.base}/openai/v1", api_key=key, max_retries=0)
    raw = oa.chat.completions.with_raw_response.create(**CHAT)  # type: ignore[call-overload]
    assert raw.parse().usage.prompt_tokens > 0
    assert raw.headers["x-emulator-authorization-sha256"] == sha(f"Bearer {OPENAI_PROVIDER_KEY}")
    assert "x-emulator-x-api-key-sha256" not in raw.headers

    an = anthropic.Anthropic(base_url=f"{s.base}/anthropic", api_key=key, max_retries=0)
    araw = an.messages.with_raw_response.create(
        model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
    )
    assert araw.parse().usage.output_tokens > 0
    assert araw.headers["x-emulator-x-api-key-sha256"] == sha(ANTHROPIC_PROVIDER_KEY)
    assert "x-emulator-authorization-sha256" not in araw.headers

    # A route without a provider key: the gateway key is removed, nothing else is sent.
    r = httpx.get(s.base + "/claims/POL-1", headers={"x-api-key": key})
    assert r.status_code == 200 and r.json()["credential_sha256"] == {}

    # An unknown key through the SDK: the SDK's own AuthenticationError, with our reason.
    bad = openai.OpenAI(base_url=f"{s.base}/openai/v1", api_key="aiops_nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as e:
        bad.chat.completions.create(**CHAT)  # type: ignore[call-overload]
    assert isinstance(e.value.body, dict) and e.value.body["reason"] == "malformed"


def test_rpm_burst_admits_exactly_n(setup: Setup) -> None:
    s = setup
    key = s.key("--tenant", "bursty", "--rpm", "5")
    wait_usable(s, key)  # the call that finds the key loaded uses one request of five
    with httpx.Client() as c:

        def call(_: int) -> httpx.Response:
            return c.get(s.base + "/claims/1", headers={"Authorization": f"Bearer {key}"})

        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(call, range(12)))
    codes = sorted(r.status_code for r in answers)
    assert codes == [200] * 4 + [429] * 8
    refused = next(r for r in answers if r.status_code == 429)
    assert refused.json()["error"]["limit"] == "key rpm"
    assert int(refused.headers["Retry-After"]) >= 1

    # A route limit (rpm = 4 on /public, no key needed) counts every caller.
    public = [httpx.get(s.base + "/public/x") for _ in range(7)]
    assert [r.status_code for r in public].count(200) == 4
    assert public[-1].json()["error"]["limit"] == "route rpm"


def test_tpm_refuses_once_tokens_are_charged(setup: Setup) -> None:
    s = setup
    key = s.key("--tenant", "tokens", "--tpm", "40")
    wait_usable(s, key)
    oa = openai.OpenAI(base_url=f"{s.base}/openai/v1", api_key=key, max_retries=0)
    first = oa.chat.completions.create(**CHAT)  # type: ignore[call-overload]
    assert first.usage.total_tokens > 40  # one call uses more than the minute's allowance
    deadline = time.monotonic() + 10
    while True:
        try:
            oa.chat.completions.create(**CHAT)  # type: ignore[call-overload]
        except openai.RateLimitError as e:
            assert isinstance(e.body, dict) and e.body["limit"] == "key tpm"
            assert int(e.response.headers["Retry-After"]) >= 1
            break
        assert time.monotonic() < deadline, "tokens were never charged"
        time.sleep(0.1)


def test_budget_exhaustion_survives_a_restart(setup: Setup) -> None:
    s = setup
    key = s.key("--tenant", "thrifty", "--budget-usd-day", "0.00001")
    wait_usable(s, key)
    oa = openai.OpenAI(base_url=f"{s.base}/openai/v1", api_key=key, max_retries=0)
    oa.chat.completions.create(**CHAT)  # type: ignore[call-overload]  (about $0.00002)
    deadline = time.monotonic() + 10
    while True:
        r = httpx.post(
            s.base + "/openai/v1/chat/completions",
            json=CHAT,
            headers={"Authorization": f"Bearer {key}"},
        )
        if r.status_code == 402 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert r.status_code == 402, r.text
    err = r.json()["error"]
    assert err["budget"] == "day" and err["limit_usd"] == 0.00001
    assert err["spent_usd"] >= 0.00001 and err["resets_at"].endswith("T00:00:00Z")

    # The gateway forgets what it charged; the worker's snapshot remembers.
    s.gateway.stop()
    run_jobs(s.home, "ingest", "key-spend")
    assert (s.home / "run" / "key_spend.json").exists()
    s.restart()
    r = httpx.post(s.base + "/openai/v1/chat/completions", json=CHAT, headers={"x-api-key": key})
    assert r.status_code == 402, r.text
    listed = json.loads(run_aiops("keys", "list", "--home", str(s.home), "--json").stdout)
    spent = {k["tenant"]: k["spent_usd_day"] for k in listed}
    assert spent["thrifty"] >= 0.00001


def test_rows_carry_key_and_tenant_and_no_key_reaches_disk(setup: Setup) -> None:
    s = setup
    assert s.gateway.stop() == 0, s.gateway.output
    run_jobs(s.home, "ingest")
    rows = query_json(
        s.home,
        "SELECT route, status, error, api_key_id, tenant FROM requests ORDER BY ts",
    )
    by_tenant = {row["tenant"]: row for row in rows if row["status"] == 200 and row["tenant"]}
    assert {"underwriting", "bursty", "tokens", "thrifty", "to-revoke"} <= set(by_tenant)
    assert all(row["api_key_id"] and len(row["api_key_id"]) == 12 for row in by_tenant.values())
    errors = {row["error"] for row in rows if row["error"]}
    assert {
        "api_key_missing", "api_key_malformed", "api_key_unknown", "api_key_expired",
        "api_key_revoked", "api_key_route_forbidden", "rate_limited_key_rpm",
        "rate_limited_route_rpm", "rate_limited_key_tpm", "budget_exceeded_day",
    } <= errors  # fmt: skip
    refused = [row for row in rows if row["error"] == "rate_limited_key_rpm"]
    assert refused and all(row["status"] == 429 and row["tenant"] == "bursty" for row in refused)

    # The secret half of each key is searched for: it is inside the whole key too.
    secrets = [k.rsplit("_", 1)[1] for k in s.issued]
    secrets += [OPENAI_PROVIDER_KEY, ANTHROPIC_PROVIDER_KEY]
    assert secrets_in_spool(s.home, secrets) == []
    assert store_tables_holding(s.home, secrets) == []
    assert "api_keys" in store_tables_holding(s.home, ["thrifty"])  # the scan does find things
    assert files_containing(s.home, [k.encode() for k in secrets]) == []


def store_tables_holding(home: Path, needles: list[str]) -> list[str]:
    """Tables of the store with any needle in any text value: the scan of
    `secrets_in_store`, with all needles in one query per table and one connection."""
    pattern = "|".join(needles)
    hits = []
    with Store(home).read() as con:
        columns = con.execute(
            "SELECT table_name, list(column_name) FROM information_schema.columns "
            "WHERE data_type IN ('VARCHAR', 'BLOB', 'JSON', 'VARCHAR[]') "
            "AND table_schema = 'main' GROUP BY 1"
        ).fetchall()
        assert any(t == "api_keys" for t, _ in columns), "api_keys not scanned"
        for table, cols in columns:
            text = "concat_ws('|', " + ", ".join(f'"{c}"::VARCHAR' for c in cols) + ")"
            sql = f'SELECT count(*) FROM "{table}" WHERE regexp_matches({text}, ?)'
            if con.execute(sql, [pattern]).fetchone()[0]:
                hits.append(table)
    return hits
