"""The REST upstream emulator's fault switch: a fault turned on and off at run time."""

from __future__ import annotations

import time

import httpx


def test_fault_switch(emulator: str) -> None:
    with httpx.Client(base_url=emulator, timeout=10) as c:
        assert c.get("/claims/CLM-1").status_code == 200
        on = c.get("/_emulator/fault", params={"error_ratio": 1, "status": 500, "delay_ms": 150})
        assert on.json() == {"error_ratio": 1.0, "status": 500, "delay_ms": 150.0}
        t0 = time.monotonic()
        assert [c.get(f"/claims/CLM-{i}").status_code for i in range(5)] == [500] * 5
        assert time.monotonic() - t0 >= 5 * 0.15
        # Explicit fault paths are not affected by the switch's status.
        assert c.get("/claims/bytes/10").status_code == 200
        c.get("/_emulator/fault", params={"error_ratio": 0.5})
        codes = [c.get(f"/claims/CLM-{i}").status_code for i in range(200)]
        assert 40 < codes.count(503) < 160 and set(codes) == {200, 503}
        assert c.get("/_emulator/fault").json()["error_ratio"] == 0.0
        assert [c.get(f"/claims/CLM-{i}").status_code for i in range(5)] == [200] * 5
