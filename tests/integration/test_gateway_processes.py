"""`aiops gateway --processes N`: N gateways on one port, one shared spool, nothing lost."""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import write_config
from tests.integration.helpers import query_json, run_worker_once
from tests.procs import Proc, free_port, start_gateway

pytestmark = pytest.mark.integration


def banners(gw: Proc) -> int:
    return sum("aiops gateway listening" in line for line in list(gw.lines))


def test_two_processes_share_one_port_and_one_spool(
    home: Path, emulator: str, procs: list[Proc]
) -> None:
    config = write_config(
        home / "gw.toml",
        f'[[routes]]\nname = "claims"\nprefix = "/claims"\nupstreams = ["{emulator}"]\n',
    )
    port = free_port()
    gw, url = start_gateway(home, config, "--processes", "2", port=port)
    procs.append(gw)
    # Each process prints its banner once it listens.
    deadline = time.monotonic() + 30
    while banners(gw) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert banners(gw) == 2, gw.output

    n = 400

    def call(i: int) -> int:
        # A new connection each time, so the kernel spreads them over both processes.
        with httpx.Client(base_url=url, timeout=10) as c:
            return c.get(f"/claims/CLM-{i}").status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(call, range(n)))
    assert statuses == [200] * n

    assert gw.stop(signal.SIGINT) == 0, gw.output
    run_worker_once(home)
    rows = query_json(
        home,
        "SELECT count(*) AS n, count(DISTINCT id) AS ids, count(DISTINCT gateway_id) AS gateways "
        "FROM requests WHERE route = 'claims'",
    )[0]
    assert rows["n"] == n and rows["ids"] == n
    # Both processes served traffic and each wrote its own segments to the shared spool.
    assert rows["gateways"] == 2, rows


def test_processes_must_be_positive(home: Path, emulator: str) -> None:
    from tests.procs import run_aiops

    config = write_config(
        home / "gw.toml",
        f'[[routes]]\nname = "claims"\nprefix = "/claims"\nupstreams = ["{emulator}"]\n',
    )
    r = run_aiops("gateway", "--home", str(home), "--config", str(config), "--processes", "0")
    assert r.returncode == 2
    assert "--processes" in r.stderr and "Traceback" not in r.stderr
