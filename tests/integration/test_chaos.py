"""Chaos drills through a real `aiops gateway`: `aiops chaos start` raises a route's error
rate by the requested fraction and adds the requested latency, the drill ends on expiry
or `aiops chaos stop`, and every drill is a closed `changes` row with audit rows."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.helpers import query_json, wait_gateway_received
from tests.integration.test_reload import worker_once
from tests.procs import Proc, run_aiops, start_emulator, start_gateway

pytestmark = pytest.mark.integration

CALLS = 300
CHAOS_HEADER = "x-aiops-chaos"


class Setup:
    def __init__(self, home: Path, config: Path, gateway: str) -> None:
        self.home, self.config, self.gateway = home, config, gateway
        self.drills: dict[str, str] = {}  # how it ended -> drill (change) id

    def aiops(self, *args: str) -> tuple[int, str, str]:
        r = run_aiops(*args, "--home", str(self.home), timeout=60)
        return r.returncode, r.stdout, r.stderr

    def chaos_start(self, *args: str) -> tuple[int, str, str]:
        return self.aiops("chaos", "start", "--config", str(self.config), *args)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("chaos")
    home = root / "home"
    procs: list[Proc] = []
    try:
        emu, upstream = start_emulator()
        procs.append(emu)
        config = root / "gateway.toml"
        config.write_text(
            "".join(
                f'[[routes]]\nname = "{name}"\nprefix = "/{name}"\nupstreams = ["{upstream}"]\n\n'
                for name in ("claims", "quotes", "policies")
            )
        )
        gw, url = start_gateway(home, config)
        procs.append(gw)
        yield Setup(home, config, url)
    finally:
        for p in reversed(procs):
            p.stop()


def wait_for(
    client: httpx.Client, path: str, drilled: bool, timeout: float = 20.0
) -> httpx.Response:
    """Call until the answer is (or is no longer) part of a drill: the gateway picks up
    the drill file within a second, and a drill ends at its expiry."""
    deadline = time.monotonic() + timeout
    while True:
        r = client.get(path)
        if (CHAOS_HEADER in r.headers) == drilled or time.monotonic() > deadline:
            return r
        time.sleep(0.05)


def error_share(client: httpx.Client, path: str, n: int) -> tuple[float, list[httpx.Response]]:
    responses = [client.get(f"{path}/{i}") for i in range(n)]
    return sum(r.status_code >= 500 for r in responses) / n, responses


def test_error_rate_drill_raises_errors_by_the_fraction_and_stop_ends_it(setup: Setup) -> None:
    with httpx.Client(base_url=setup.gateway, timeout=30) as client:
        baseline, _ = error_share(client, "/claims/base", 100)
        code, out, err = setup.chaos_start(
            "--route", "claims", "--error-rate", "0.3", "--for", "10m", "--reason", "game day"
        )
        assert code == 0, out + err
        drill_id = out.split()[2]
        assert drill_id.startswith("CHG-")
        first = wait_for(client, "/claims/warmup", drilled=True)
        assert CHAOS_HEADER in first.headers
        during, responses = error_share(client, "/claims/drill", CALLS)
        assert abs((during - baseline) - 0.3) <= 0.07, (baseline, during)
        errors = [r for r in responses if r.status_code >= 500]
        assert {r.status_code for r in errors} == {503}
        body = errors[0].json()["error"]
        assert body["type"] == "chaos" and body["drill"] == drill_id
        assert {r.headers[CHAOS_HEADER] for r in errors} == {f"{drill_id}; error:503"}
        passed = [r for r in responses if r.status_code == 200]
        assert {r.headers[CHAOS_HEADER] for r in passed} == {f"{drill_id}; none"}
        # Other routes are untouched by the drill.
        assert client.get("/quotes/untouched").status_code == 200

        code, out, err = setup.aiops("chaos", "list", "--json")
        assert code == 0, err
        assert [(d["id"], d["route"], d["error_rate"]) for d in json.loads(out)] == [
            (drill_id, "claims", 0.3)
        ]
        code, out, err = setup.aiops("chaos", "stop", "--route", "claims")
        assert code == 0 and f"{drill_id} on claims stopped" in out, out + err
        after = wait_for(client, "/claims/after", drilled=False)
        assert after.status_code == 200 and CHAOS_HEADER not in after.headers
        after_share, _ = error_share(client, "/claims/after", 50)
        assert after_share == baseline == 0.0
    code, out, _ = setup.aiops("chaos", "list", "--json")
    assert json.loads(out) == []

    setup.drills["stopped"] = drill_id


def test_latency_drill_adds_the_delay_and_ends_at_expiry(setup: Setup) -> None:
    code, out, err = setup.chaos_start("--route", "quotes", "--latency-ms", "300", "--for", "6s")
    assert code == 0, out + err
    drill_id = out.split()[2]
    with httpx.Client(base_url=setup.gateway, timeout=30) as client:
        assert CHAOS_HEADER in wait_for(client, "/quotes/warmup", drilled=True).headers
        measured = 0
        for i in range(3):
            started = time.monotonic()
            r = client.get(f"/quotes/slow/{i}")
            elapsed = time.monotonic() - started
            if CHAOS_HEADER not in r.headers:
                break  # expired meanwhile on a very slow machine
            assert r.status_code == 200
            assert r.headers[CHAOS_HEADER] == f"{drill_id}; latency:300ms"
            assert elapsed >= 0.3
            measured += 1
        assert measured >= 1
        # The drill ends by itself: the gateway stops applying it at its expiry.
        ended = wait_for(client, "/quotes/after", drilled=False, timeout=30)
        assert CHAOS_HEADER not in ended.headers and ended.status_code == 200
    setup.drills["expired"] = drill_id
    code, out, _ = setup.aiops("chaos", "list", "--json")
    assert json.loads(out) == []  # listing closes drills past their end


def test_a_drill_on_an_unknown_route_is_refused_with_exit_2(setup: Setup) -> None:
    code, out, err = setup.chaos_start("--route", "nope", "--error-rate", "0.2")
    assert code == 2, out + err
    assert "'nope' is not a route" in err and "claims, policies, quotes" in err


def test_drills_are_recorded_as_closed_changes_with_rows_and_audit(setup: Setup) -> None:
    assert set(setup.drills) == {"stopped", "expired"}, "run the whole module"
    wait_gateway_received(setup.home, 100 + CALLS + 50)
    worker_once(setup.home, ("ingest", "chaos"))
    rows = query_json(
        setup.home,
        "SELECT chaos, status, error, count(*) AS n FROM requests "
        "WHERE route = 'claims' AND path LIKE '/claims/drill/%' GROUP BY ALL ORDER BY n",
    )
    by_tag = {r["chaos"]: r for r in rows}
    assert set(by_tag) == {None, "error:503"}
    assert by_tag["error:503"]["status"] == 503 and by_tag["error:503"]["error"] == "chaos"
    assert abs(by_tag["error:503"]["n"] / CALLS - 0.3) <= 0.07
    assert by_tag[None]["status"] == 200 and by_tag[None]["error"] is None
    [slow] = query_json(
        setup.home,
        "SELECT count(*) AS n FROM requests WHERE path LIKE '/quotes/slow/%' "
        "AND chaos = 'latency:300ms' AND duration_ms >= 300",
    )
    assert slow["n"] >= 1
    changes = query_json(
        setup.home,
        "SELECT id, service, kind, source, status, closed_at, detail FROM changes "
        "WHERE kind = 'chaos' ORDER BY ts",
    )
    assert [(c["id"], c["service"]) for c in changes] == [
        (setup.drills["stopped"], "claims"),
        (setup.drills["expired"], "quotes"),
    ]
    for c in changes:
        assert (c["source"], c["status"]) == ("cli", "verified") and c["closed_at"] is not None
    detail = json.loads(changes[0]["detail"])
    assert detail["error_rate"] == 0.3 and detail["status"] == 503
    assert detail["reason"] == "game day"
    assert json.loads(changes[1]["detail"])["latency_ms"] == 300
    events = query_json(
        setup.home,
        "SELECT change_id, to_status, note FROM change_events "
        "WHERE change_id IN (SELECT id FROM changes WHERE kind = 'chaos') ORDER BY id",
    )
    assert [(e["change_id"], e["to_status"], e["note"]) for e in events] == [
        (setup.drills["stopped"], "implemented", "chaos drill started"),
        (setup.drills["stopped"], "verified", "chaos drill ended (stopped)"),
        (setup.drills["expired"], "implemented", "chaos drill started"),
        (setup.drills["expired"], "verified", "chaos drill ended (expired)"),
    ]
    audit = query_json(
        setup.home,
        "SELECT action, target_id FROM audit_log WHERE action LIKE 'chaos.%' ORDER BY id",
    )
    assert [(a["action"], a["target_id"]) for a in audit] == [
        ("chaos.start", setup.drills["stopped"]),
        ("chaos.stopped", setup.drills["stopped"]),
        ("chaos.start", setup.drills["expired"]),
        ("chaos.expired", setup.drills["expired"]),
    ]
