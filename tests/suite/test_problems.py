"""Problems: recurring incidents (same fingerprint) become a problem record at the
threshold and not below; later incidents are linked; people record root cause, known
error and workaround from the CLI, each edit audited. Real DuckDB file, seeded with SQL."""

from __future__ import annotations

import json
import tomllib
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from suite.config import GatewayConfig, parse_gateway_config
from suite.problems import ProblemError, get_problem, list_problems, run_problems, update_problem
from suite.store import Store
from tests.procs import run_aiops

NOW = datetime(2026, 11, 28, 12, 0)


def config(text: str = "") -> GatewayConfig:
    return parse_gateway_config(tomllib.loads(text), "gateway.toml")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "h")


def add_incident(
    store: Store, incident_id: int, service: str, signal: str, opened_at: datetime
) -> None:
    with store.write() as con:
        con.execute(
            "INSERT INTO incidents (id, fingerprint, title, service, signal, severity, status, "
            "opened_at, resolved_at, last_seen_at, anomaly_count, source, reopened_count, "
            "signals, updated_at) VALUES (?, ?, ?, ?, ?, 'warning', 'resolved', ?, ?, ?, 1, "
            "'detector', 0, [?], ?)",
            [incident_id, f"{service}:{signal}", f"{service}: {signal} anomaly", service, signal,
             opened_at, opened_at + timedelta(minutes=20), opened_at, signal, opened_at],
        )  # fmt: skip


def days_ago(n: float) -> datetime:
    return NOW - timedelta(days=n)


def audit_rows(store: Store) -> list[dict[str, object]]:
    return store.query(
        "SELECT actor, action, target_kind, target_id, detail, source FROM audit_log ORDER BY id"
    ).to_dicts()


def test_a_problem_is_created_at_the_threshold_and_not_below(store: Store) -> None:
    add_incident(store, 1, "claims-api", "error_ratio", days_ago(20))
    add_incident(store, 2, "claims-api", "error_ratio", days_ago(10))
    # Other fingerprints never add up: another signal, another service.
    add_incident(store, 3, "claims-api", "latency_p95_ms", days_ago(9))
    add_incident(store, 4, "quotes-api", "error_ratio", days_ago(8))
    # A third one, but outside the 30-day window.
    add_incident(store, 5, "claims-api", "error_ratio", days_ago(45))
    result = run_problems(store, config(), now=NOW)
    assert result.created == 0 and list_problems(store).is_empty()

    add_incident(store, 6, "claims-api", "error_ratio", days_ago(1))
    result = run_problems(store, config(), now=NOW)
    assert (result.created, result.linked) == (1, 3)
    [p] = list_problems(store).to_dicts()
    assert (p["fingerprint"], p["service"], p["status"], p["incident_count"]) == (
        "claims-api:error_ratio",
        "claims-api",
        "open",
        3,
    )
    assert (p["first_seen"], p["last_seen"]) == (days_ago(20), days_ago(1))
    assert p["title"] == "Recurring error_ratio incidents on claims-api"
    assert [i["id"] for i in get_problem(store, p["id"])["incidents"]] == [6, 2, 1]
    # The job is idempotent; a new incident of the fingerprint is linked and counted.
    assert run_problems(store, config(), now=NOW).linked == 0
    add_incident(store, 7, "claims-api", "error_ratio", NOW - timedelta(hours=1))
    assert run_problems(store, config(), now=NOW).linked == 1
    p = get_problem(store, p["id"])
    assert (p["incident_count"], p["last_seen"]) == (4, NOW - timedelta(hours=1))
    created = [a for a in audit_rows(store) if a["action"] == "problem.create"]
    assert len(created) == 1 and created[0]["source"] == "worker"


def test_threshold_and_window_come_from_the_config(store: Store) -> None:
    add_incident(store, 1, "quotes-api", "request_rate", days_ago(6))
    add_incident(store, 2, "quotes-api", "request_rate", days_ago(1))
    add_incident(store, 3, "claims-api", "error_ratio", days_ago(3))
    add_incident(store, 4, "claims-api", "error_ratio", days_ago(2))
    add_incident(store, 5, "claims-api", "error_ratio", days_ago(1))
    # Only incidents within the last 5 days count: quotes-api has one there.
    assert run_problems(store, config("[problems]\nwindow_days = 5\n"), now=NOW).created == 1
    cfg = config("[problems]\nmin_incidents = 2\nwindow_days = 7\n")
    assert run_problems(store, cfg, now=NOW).created == 1
    listed = list_problems(store)
    # Listed by recurrence: the most incidents first.
    assert listed["fingerprint"].to_list() == ["claims-api:error_ratio", "quotes-api:request_rate"]
    assert listed["incident_count"].to_list() == [3, 2]


def test_edits_are_audited_and_a_known_error_needs_a_cause_or_workaround(store: Store) -> None:
    for i, d in enumerate((5, 4, 3), start=1):
        add_incident(store, i, "claims-api", "error_ratio", days_ago(d))
    run_problems(store, config(), now=NOW)
    with pytest.raises(ProblemError, match="a known error needs a root cause or a workaround"):
        update_problem(store, 1, known_error=True, actor="ana")
    with pytest.raises(ProblemError, match="nothing to update"):
        update_problem(store, 1, actor="ana")
    with pytest.raises(ProblemError, match="no problem with id 99"):
        update_problem(store, 99, root_cause="x", actor="ana")
    with pytest.raises(ProblemError, match="'closed' is not one of open, known_error, resolved"):
        update_problem(store, 1, status="closed", actor="ana")
    assert get_problem(store, 1)["status"] == "open"

    p = update_problem(
        store, 1, workaround="restart the claims-api pods", known_error=True, actor="ana"
    )
    assert (p["status"], p["known_error"], p["workaround"]) == (
        "known_error",
        True,
        "restart the claims-api pods",
    )
    [edit] = [a for a in audit_rows(store) if a["action"] == "problem.update"]
    assert (edit["actor"], edit["target_kind"], edit["target_id"], edit["source"]) == (
        "ana",
        "problem",
        "1",
        "cli",
    )
    assert json.loads(str(edit["detail"]))["status"] == {"from": "open", "to": "known_error"}


def test_a_resolved_problem_that_recurs_is_reopened(store: Store) -> None:
    for i, d in enumerate((5, 4, 3), start=1):
        add_incident(store, i, "claims-api", "error_ratio", days_ago(d))
    run_problems(store, config(), now=NOW)
    update_problem(store, 1, root_cause="connection pool too small", known_error=True, actor="a")
    p = update_problem(store, 1, status="resolved", actor="a")
    assert p["status"] == "resolved" and p["resolved_at"] is not None
    add_incident(store, 4, "claims-api", "error_ratio", p["resolved_at"] + timedelta(minutes=5))
    result = run_problems(store, config(), now=p["resolved_at"] + timedelta(hours=1))
    assert (result.linked, result.reopened) == (1, 1)
    p = get_problem(store, 1)
    # Still a known error: its root cause is on record.
    assert (p["status"], p["resolved_at"], p["incident_count"]) == ("known_error", None, 4)
    assert [h["action"] for h in p["history"]] == [
        "problem.create", "problem.update", "problem.update", "problem.reopen",
    ]  # fmt: skip


def aiops(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The CLI in-process; the update below also runs through the real binary."""
    from suite.cli import main

    try:
        code = main(list(args))
    except SystemExit as e:  # argparse rejects bad arguments with exit 2
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_problems_cli_list_show_update(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "h"
    store = Store(home)
    for i, d in enumerate((3, 2, 1), start=1):
        add_incident(store, i, "claims-api", "error_ratio", days_ago(d))
    run_problems(store, config(), now=NOW)
    h = ["--home", str(home)]
    r = run_aiops(
        "problems", "update", "1", *h, "--root-cause", "pool exhausted after deploy",
        "--workaround", "scale to 6 replicas", "--known-error", "--actor", "oncall-ana",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "problem 1 updated: status known_error, known error" in r.stdout
    code, out, _ = aiops(capsys, "problems", "list", *h, "--json")
    [p] = json.loads(out)
    assert (p["root_cause"], p["workaround"], p["status"]) == (
        "pool exhausted after deploy",
        "scale to 6 replicas",
        "known_error",
    )
    code, out, _ = aiops(capsys, "problems", "list", *h)
    assert code == 0 and "x3" in out and "[known error]" in out
    code, out, _ = aiops(capsys, "problems", "show", "1", *h)
    assert code == 0 and "incidents (3):" in out and "oncall-ana" in out
    [edit] = [a for a in audit_rows(store) if a["action"] == "problem.update"]
    assert (edit["actor"], edit["source"], edit["target_id"]) == ("oncall-ana", "cli", "1")
    assert set(json.loads(str(edit["detail"]))) == {
        "root_cause", "workaround", "known_error", "status",
    }  # fmt: skip
    # Bad input: a clear error, exit 2, nothing written.
    code, _, err = aiops(capsys, "problems", "update", "7", *h, "--status", "resolved")
    assert code == 2 and "no problem with id 7" in err
    code, _, err = aiops(capsys, "problems", "update", "1", *h, "--status", "closed")
    assert code == 2 and "invalid choice: 'closed'" in err
    r = run_aiops("problems", "update", "1", *h)
    assert r.returncode == 2 and "nothing to update" in r.stderr
    assert len([a for a in audit_rows(store) if a["action"] == "problem.update"]) == 1
