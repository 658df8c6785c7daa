from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from suite import incidents as inc
from suite.incidents import IncidentError, IncidentPolicy
from suite.store import Store
from tests.procs import run_aiops

T0 = datetime(2026, 3, 2, 9, 0)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "h")


def kinds(store: Store, incident_id: int) -> list[str]:
    return [e["kind"] for e in inc.get_incident(store, incident_id)["events"]]


def test_repeats_of_one_fingerprint_update_the_open_incident(store: Store) -> None:
    first = inc.open_or_update_incident(
        store, service="claims-api", signal="error_ratio", now=at(0), score=0.95, value=0.2
    )
    again = inc.open_or_update_incident(
        store, service="claims-api", signal="error_ratio", now=at(3), score=0.97
    )
    other = inc.open_or_update_incident(
        store, service="quotes-api", signal="error_ratio", now=at(3)
    )
    assert again == first and other != first
    row = inc.get_incident(store, first)
    assert row["fingerprint"] == inc.incident_fingerprint("claims-api", "error_ratio")
    assert (row["status"], row["anomaly_count"], row["last_seen_at"]) == ("open", 2, at(3))
    assert row["opened_at"] == at(0) and row["max_score"] == 0.97
    assert kinds(store, first) == ["opened", "anomaly"]
    assert "error_ratio=0.2" in row["events"][0]["detail"]
    assert inc.list_incidents(store).height == 2


def test_signals_of_one_service_within_the_window_group_into_one_incident(store: Store) -> None:
    first = inc.open_or_update_incident(
        store, service="claims-api", signal="latency_p95_ms", now=at(0)
    )
    grouped = inc.open_or_update_incident(
        store, service="claims-api", signal="error_ratio", now=at(4)
    )
    assert grouped == first
    row = inc.get_incident(store, first)
    assert row["signal"] == "latency_p95_ms"  # the first signal stays the incident's signal
    assert row["signals"] == ["latency_p95_ms", "error_ratio"]
    assert row["title"] == "claims-api: latency_p95_ms anomaly (with error_ratio)"
    assert "error_ratio" in row["events"][-1]["detail"]
    # The grouped signal keeps refreshing the same incident later on.
    assert (
        inc.open_or_update_incident(store, service="claims-api", signal="error_ratio", now=at(12))
        == first
    )
    # Another signal too long after the last anomaly is another incident.
    separate = inc.open_or_update_incident(store, service="claims-api", signal="tokens", now=at(20))
    assert separate != first
    # A shorter configured window does not group at all.
    narrow = IncidentPolicy(group_window=timedelta(minutes=1))
    s2 = inc.open_or_update_incident(
        store, service="quotes-api", signal="latency_p95_ms", now=at(0), policy=narrow
    )
    assert (
        inc.open_or_update_incident(
            store, service="quotes-api", signal="error_ratio", now=at(4), policy=narrow
        )
        != s2
    )


def test_quiet_incidents_auto_resolve_but_slo_ones_wait_for_the_slo_job(store: Store) -> None:
    det = inc.open_or_update_incident(store, service="claims-api", signal="error_ratio", now=at(0))
    inc.open_or_update_incident(store, service="claims-api", signal="error_ratio", now=at(2))
    slo = inc.open_or_update_incident(
        store, service="claims-api", signal="slo_burn:avail", now=at(0), source="slo"
    )
    assert slo != det  # sources do not group
    assert inc.auto_resolve_quiet(store, at(16)) == []
    assert inc.auto_resolve_quiet(store, at(17)) == [det]
    row = inc.get_incident(store, det)
    assert (row["status"], row["resolved_at"]) == ("resolved", at(17))  # when it went quiet
    assert row["events"][-1]["kind"] == "auto_resolved"
    assert inc.get_incident(store, slo)["status"] == "open"
    assert inc.get_incident(store, slo)["severity"] == "critical"  # SLO pages are critical
    assert (
        inc.resolve_signal_incident(
            store,
            service="claims-api",
            signal="slo_burn:avail",
            now=at(30),
            actor="slo",
            reason="ok",
        )
        == slo
    )
    assert inc.get_incident(store, slo)["events"][-1]["detail"] == "ok"
    assert inc.resolve_signal_incident(store, service="claims-api", signal="slo_burn:avail") is None


def test_a_recurrence_within_the_reopen_window_reopens_the_incident(store: Store) -> None:
    first = inc.open_or_update_incident(
        store, service="claims-api", signal="error_ratio", now=at(0)
    )
    inc.acknowledge(store, first, "ana")
    inc.auto_resolve_quiet(store, at(20))  # resolved as of minute 15
    again = inc.open_or_update_incident(
        store, service="claims-api", signal="error_ratio", now=at(70)
    )
    assert again == first
    row = inc.get_incident(store, first)
    assert (row["status"], row["reopened_count"], row["resolved_at"]) == ("open", 1, None)
    assert row["acknowledged_at"] is None  # needs a new acknowledgement
    assert kinds(store, first)[-2:] == ["reopened", "anomaly"]
    # After a manual resolve too; but past the window it is a new incident.
    inc.resolve(store, first, "ana")
    resolved_at = inc.get_incident(store, first)["resolved_at"]
    late = inc.open_or_update_incident(
        store, service="claims-api", signal="error_ratio", now=resolved_at + timedelta(minutes=61)
    )
    assert late != first and inc.get_incident(store, late)["reopened_count"] == 0


def test_lifecycle_steps_that_are_not_allowed_raise_clear_errors(store: Store) -> None:
    i = inc.open_or_update_incident(store, service="a", signal="error_ratio", now=at(0))
    with pytest.raises(IncidentError, match="no incident with id 999"):
        inc.acknowledge(store, 999)
    acked = inc.acknowledge(store, i, "ana")
    assert (acked["status"], acked["assignee"]) == ("acknowledged", "ana")
    with pytest.raises(IncidentError, match="is acknowledged; only an open incident"):
        inc.acknowledge(store, i, "bo")
    done = inc.resolve(store, i, "bo", note="rolled back")
    assert done["status"] == "resolved" and done["resolved_at"] is not None
    with pytest.raises(IncidentError, match="already resolved"):
        inc.resolve(store, i, "bo")
    with pytest.raises(IncidentError, match="is resolved; only an open incident"):
        inc.acknowledge(store, i, "bo")
    with pytest.raises(IncidentError, match="not one of open, acknowledged, resolved"):
        inc.list_incidents(store, status="closed")
    assert IncidentError("x").exit_code == 2
    assert kinds(store, i) == ["opened", "acknowledged", "resolved"]
    assert inc.get_incident(store, i)["events"][-1]["detail"] == "rolled back"


def test_notes_assignees_and_the_default_actor(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIOPS_USER", "night-shift")
    i = inc.open_or_update_incident(store, service="a", signal="latency_p95_ms", now=at(0))
    inc.assign(store, i, None, "carol")
    inc.add_note(store, i, None, "db failover at 09:02")
    acked = inc.acknowledge(store, i)
    assert acked["assignee"] == "carol"  # an existing assignee is kept on ack
    events = inc.get_incident(store, i)["events"]
    assert [(e["kind"], e["actor"], e["detail"]) for e in events[1:]] == [
        ("assigned", "night-shift", "carol"),
        ("note", "night-shift", "db failover at 09:02"),
        ("acknowledged", "night-shift", None),
    ]
    with pytest.raises(IncidentError, match="needs some text"):
        inc.add_note(store, i, None, "  ")
    with pytest.raises(IncidentError, match="assignee must not be empty"):
        inc.assign(store, i, None, "")
    inc.add_event(store, i, "notified", "notify", "webhook ops")
    assert kinds(store, i)[-1] == "notified"
    monkeypatch.delenv("AIOPS_USER")
    assert inc.default_actor()  # the OS user


def test_severity_from_signal_and_score_and_escalation(store: Store) -> None:
    assert inc.incident_severity("tokens", 0.5) == "info"
    assert inc.incident_severity("tokens", 0.995) == "warning"
    assert inc.incident_severity("error_ratio", 0.999) == "warning"  # detectors never page
    assert inc.incident_severity("slo_burn:x", None, "slo") == "critical"
    i = inc.open_or_update_incident(store, service="llm", signal="tokens", now=at(0), score=0.9)
    assert inc.get_incident(store, i)["severity"] == "info"
    inc.open_or_update_incident(store, service="llm", signal="tokens", now=at(1), score=0.999)
    row = inc.get_incident(store, i)
    assert row["severity"] == "warning" and row["events"][-1]["detail"] == "info -> warning"


def test_list_filters_by_status_newest_first(store: Store) -> None:
    a = inc.open_or_update_incident(store, service="a", signal="error_ratio", now=at(0))
    b = inc.open_or_update_incident(store, service="b", signal="error_ratio", now=at(1))
    inc.acknowledge(store, a, "x")
    assert inc.list_incidents(store)["id"].to_list() == [b, a]
    assert inc.list_incidents(store, "open")["id"].to_list() == [b]
    assert inc.list_incidents(store, "acknowledged")["id"].to_list() == [a]
    assert inc.list_incidents(store, "resolved").is_empty()


def test_cli_list_show_ack_resolve_note_assign(tmp_path: Path) -> None:
    home = tmp_path / "cli"
    store = Store(home)
    i = inc.open_or_update_incident(store, service="claims-api", signal="latency_p95_ms", now=at(0))
    env = {"AIOPS_USER": "ana"}
    r = run_aiops("incidents", "list", "--home", str(home), "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [(x["id"], x["service"], x["signal"], x["status"]) for x in rows] == [
        (i, "claims-api", "latency_p95_ms", "open")
    ]
    assert rows[0]["opened_at"] == "2026-03-02T09:00:00"
    r = run_aiops("incidents", "ack", "--home", str(home), str(i), env=env)
    assert r.returncode == 0 and "acknowledged by ana" in r.stdout
    r = run_aiops("incidents", "note", str(i), "failover done", "--home", str(home), env=env)
    assert r.returncode == 0, r.stderr
    r = run_aiops("incidents", "assign", str(i), "carol", "--home", str(home), "--actor", "bo")
    assert r.returncode == 0, r.stderr
    r = run_aiops("incidents", "resolve", str(i), "--note", "fixed", "--home", str(home), env=env)
    assert r.returncode == 0 and "resolved" in r.stdout
    r = run_aiops("incidents", "list", "--status", "open", "--home", str(home), "--json")
    assert json.loads(r.stdout) == []
    r = run_aiops("incidents", "show", str(i), "--home", str(home), "--json")
    (shown,) = json.loads(r.stdout)
    assert (shown["status"], shown["assignee"]) == ("resolved", "carol")
    assert [(e["kind"], e["actor"], e["detail"]) for e in shown["events"][1:]] == [
        ("acknowledged", "ana", None),
        ("note", "ana", "failover done"),
        ("assigned", "bo", "carol"),
        ("resolved", "ana", "fixed"),
    ]
    r = run_aiops("incidents", "show", str(i), "--home", str(home))
    assert "claims-api: latency_p95_ms anomaly" in r.stdout and "failover done" in r.stdout
    r = run_aiops("incidents", "list", "--home", str(home))
    assert "resolved" in r.stdout and "@carol" in r.stdout
    # Errors: one readable line, exit 2.
    r = run_aiops("incidents", "resolve", str(i), "--home", str(home))
    assert r.returncode == 2 and "already resolved" in r.stderr and "Traceback" not in r.stderr
    r = run_aiops("incidents", "show", "4242", "--home", str(home))
    assert r.returncode == 2 and "no incident with id 4242" in r.stderr


def test_refresh_only_observations_keep_an_incident_alive_but_never_open_one(store: Store) -> None:
    def refresh(signal: str, minutes: float) -> inc.IncidentUpdate:
        with store.write() as con:
            (update,) = inc.record_observations(
                con, [inc.Observation("a", signal, at(minutes), refresh_only=True)], now=at(minutes)
            )
        return update

    assert refresh("latency_p95_ms", 0) == inc.IncidentUpdate(None, "ignored")
    assert inc.list_incidents(store).is_empty()
    i = inc.open_or_update_incident(store, service="a", signal="latency_p95_ms", now=at(1))
    assert refresh("latency_p95_ms", 10) == inc.IncidentUpdate(i, "refreshed")
    assert refresh("error_ratio", 11) == inc.IncidentUpdate(None, "ignored")  # never groups
    row = inc.get_incident(store, i)
    assert (row["last_seen_at"], row["anomaly_count"], row["signals"]) == (
        at(10),
        1,
        ["latency_p95_ms"],
    )
    assert kinds(store, i) == ["opened"]
    assert inc.auto_resolve_quiet(store, at(24)) == []
    assert inc.auto_resolve_quiet(store, at(25)) == [i]
    assert refresh("latency_p95_ms", 30) == inc.IncidentUpdate(None, "ignored")  # no reopen
    assert inc.get_incident(store, i)["status"] == "resolved"
