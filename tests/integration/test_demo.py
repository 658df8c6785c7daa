"""`aiops demo --headless --minutes 2` from a clean home: the whole loop, for real.

Emulated upstreams, the gateway, the worker, traffic of all three kinds, 14 days of
seeded history, a chaos drill that opens an incident on claims-api which correlates with
the drill and resolves after it, a notice on the demo's webhook, and no process left.
Takes about four minutes (it waits on real minutes).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.integration.helpers import query_json

pytestmark = pytest.mark.integration


def _processes_using(home: Path) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(home) in cmdline:
            found.append(f"{pid}: {cmdline}")
    return found


@pytest.mark.timeout(900)
def test_headless_demo_runs_the_whole_loop(home: Path, tmp_path: Path) -> None:
    summary_file = tmp_path / "summary.json"
    aiops = Path(os.sys.executable).parent / "aiops"
    done = subprocess.run(
        [str(aiops), "demo", "--headless", "--minutes", "2", "--home", str(home),
         "--summary-json", str(summary_file)],
        capture_output=True, text=True, timeout=840,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    summary = json.loads(summary_file.read_text())

    # Requests of all three kinds, every answered call recorded.
    kinds = {
        r["kind"]: r["n"]
        for r in query_json(home, "SELECT kind, count(*) AS n FROM requests GROUP BY kind")
    }
    assert kinds.get("http", 0) > 100 and kinds.get("llm", 0) > 5 and kinds.get("mcp", 0) > 5, kinds
    assert summary["lost"] == 0 and summary["recorded"] >= summary["sent"] > 0

    # The alias fell back from the rate-limiting primary to the backup, and says so.
    fell_back = query_json(
        home,
        "SELECT count(*) AS n FROM requests WHERE llm_alias = 'claims-summarizer' "
        "AND fallback_chain LIKE 'openai:%(429) > openai-backup:%(ok)' AND status = 200",
    )[0]["n"]
    assert fell_back >= 1

    # The drill: recorded as a change, applied by the gateway, an incident opened on the
    # drilled service after it started and resolved after it ended.
    drill = query_json(home, "SELECT id, kind, service FROM changes WHERE kind = 'chaos'")
    assert [(d["kind"], d["service"]) for d in drill] == [("chaos", "claims-api")]
    chaos_rows = query_json(
        home,
        "SELECT count(*) AS n FROM requests WHERE route = 'claims-api' AND chaos LIKE 'error%'",
    )[0]["n"]
    assert chaos_rows > 10
    incidents = query_json(
        home,
        "SELECT i.id, i.status, i.opened_at, i.resolved_at, c.ts AS drill_at "
        "FROM incidents i, changes c WHERE c.kind = 'chaos' AND i.service = 'claims-api' "
        "AND i.opened_at >= date_trunc('minute', c.ts)",
    )
    assert incidents, "the drill opened no incident on claims-api"
    assert all(i["status"] == "resolved" and i["resolved_at"] > i["opened_at"] for i in incidents)

    # Correlation: the drill is the top suspect of that incident.
    top = query_json(
        home,
        "SELECT s.change_id FROM incident_suspects s WHERE s.rank = 1 AND s.incident_id IN "
        f"({', '.join(str(i['id']) for i in incidents)})",
    )
    assert {t["change_id"] for t in top} == {drill[0]["id"]}
    assert summary["drill_ranked_first"] is True

    # The on-call webhook got the page, and the store knows it was sent.
    assert summary["notifications"] >= 1
    sent = query_json(home, "SELECT count(*) AS n FROM notifications WHERE status = 'sent'")[0]["n"]
    assert sent >= 1

    # Fourteen days of history stand behind the live minutes.
    days = query_json(
        home, "SELECT date_diff('day', min(minute), max(minute)) AS d FROM metrics_1m"
    )[0]["d"]
    assert days >= 14

    # Every process the demo started is gone.
    assert _processes_using(home) == []
