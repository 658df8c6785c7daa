"""Body capture through a real gateway: redacted before disk, credentials never stored."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.conftest import write_config
from tests.integration.helpers import (
    files_containing,
    query_json,
    run_worker_once,
    secrets_in_spool,
    secrets_in_store,
)
from tests.procs import Proc, start_emulator, start_gateway

pytestmark = pytest.mark.integration

SECRETS = {
    "email": "jane.doe@example.com",
    "phone": "+44 20 7946 0958",
    "card": "4111 1111 1111 1111",
    "us_ssn": "123-45-6789",
    "iban": "GB82 WEST 1234 5698 7654 32",
    "policy_number": "POL-778812",
}
AUTH = "Bearer sk-live-AUTHVALUE-92c1"
API_KEY = "xk-APIKEYVALUE-5511"


def test_redacted_capture_and_no_credentials_on_disk(tmp_path: Path, procs: list[Proc]) -> None:
    emu, upstream = start_emulator()
    procs.append(emu)
    home = tmp_path / "home"
    cfg = write_config(
        tmp_path / "gateway.toml",
        f"""
[[routes]]
name = "claims-api"
prefix = "/claims"
upstreams = ["{upstream}"]
capture_bodies = "redacted"

[[routes]]
name = "quotes-api"
prefix = "/quotes"
upstreams = ["{upstream}"]
capture_bodies = "metadata"

[[routes]]
name = "payments-api"
prefix = "/payments"
upstreams = ["{upstream}"]

[capture]
max_body_bytes = 4096

[[redaction.patterns]]
name = "policy_number"
regex = "POL-\\\\d{{6}}"
""",
    )
    gw, base = start_gateway(home, cfg)
    procs.append(gw)
    note = "Customer " + ", ".join(SECRETS.values()) + " called about the hail damage."
    headers = {"authorization": AUTH, "x-api-key": API_KEY, "cookie": "session=COOKIEVALUE-1"}
    with httpx.Client(base_url=base, headers=headers) as c:
        assert c.post("/claims/notes", json={"note": note}).status_code == 200
        assert c.post("/quotes/new", json={"note": note}).status_code == 200
        assert c.post("/payments/pay", json={"note": note}).status_code == 200
        big = c.post("/claims/bulk", content=b"x" * 10_000, headers={"content-type": "text/plain"})
        assert big.status_code == 200
    assert gw.stop() == 0
    # Before ingest: neither credentials nor personal data in any spooled value (decoded).
    secret_values = [AUTH, API_KEY, "COOKIEVALUE-1", *SECRETS.values()]
    assert len(list((home / "spool").rglob("*.parquet"))) >= 2  # requests and bodies
    assert secrets_in_spool(home, secret_values) == []
    run_worker_once(home)
    assert secrets_in_store(home, secret_values) == []

    rows = query_json(home, "SELECT * FROM request_bodies")
    assert len(rows) == 3  # payments-api captures nothing
    redacted = next(
        r for r in rows if r["route"] == "claims-api" and r["request_body_bytes"] < 10_000
    )
    for name in SECRETS:
        assert f"[REDACTED:{name}]" in redacted["request_body"], name
    # one of each in the request; the upstream's answer names a policy too, redacted as well
    assert json.loads(redacted["redactions"]) == dict.fromkeys(SECRETS, 1) | {"policy_number": 2}
    assert redacted["policy"] == "redacted"
    assert "[REDACTED:policy_number]" in redacted["response_body"]
    assert "POL-000123" not in redacted["response_body"]
    headers_seen = json.loads(redacted["request_headers"])
    assert (
        headers_seen["authorization"]
        == headers_seen["x-api-key"]
        == headers_seen["cookie"]
        == "REDACTED"
    )
    meta = next(r for r in rows if r["route"] == "quotes-api")
    assert (
        meta["policy"] == "metadata"
        and meta["request_body"] is None
        and meta["request_body_bytes"] > 100
    )
    bulk = next(r for r in rows if r["request_body_bytes"] == 10_000)
    assert bulk["request_truncated"] is True and len(bulk["request_body"]) == 4096
    flags = query_json(home, "SELECT route, body_capture FROM requests ORDER BY route")
    assert {(f["route"], f["body_capture"]) for f in flags} == {
        ("claims-api", "redacted"),
        ("quotes-api", "metadata"),
        ("payments-api", None),
    }
    # quotes-api (metadata) and payments-api (none) store no body: no value may be anywhere
    needles = [AUTH.encode(), API_KEY.encode(), b"COOKIEVALUE-1"] + [
        v.encode() for v in SECRETS.values()
    ]
    assert files_containing(home, needles) == []
