"""Changes: recording (CLI), the ITSM lifecycle, maintenance windows honoured by notify,
suspect changes per incident, the change failure rate and changes seen in traffic."""

from __future__ import annotations

import json
import tomllib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from proxy_addons.capture import upstream_version
from suite.change_model import ChangeError, NewChange, check_new_change, parse_time
from suite.changes import (
    Observed,
    compute_suspects,
    failure_rate,
    get_change,
    list_changes,
    observe_changes,
    plan_observed_changes,
    rank_suspects,
    record_change,
    suspects,
    transition,
)
from suite.changes_config import ChangesSettings
from suite.cli import main
from suite.config import parse_gateway_config
from suite.errors import ConfigError
from suite.incidents import open_or_update_incident
from suite.notify import run_notify
from suite.store import Store
from tests.receivers import WebhookReceiver

T0 = datetime(2026, 3, 10, 12, 0, 0)


def cli(capsys: pytest.CaptureFixture[str], home: Path, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([*args[:2], "--home", str(home), *args[2:]])
    out = capsys.readouterr()
    return code, out.out, out.err


def add(store: Store, now: datetime = T0, **fields: Any) -> str:
    fields.setdefault("service", "claims-api")
    fields.setdefault("kind", "deploy")
    fields.setdefault("summary", "claims-api 2.4.1")
    return record_change(store, check_new_change(fields), now=now)


def counts(store: Store) -> tuple[int, int, int, int]:
    row = store.query(
        "SELECT (SELECT count(*) FROM changes), (SELECT count(*) FROM change_events), "
        "(SELECT count(*) FROM audit_log), (SELECT count(*) FROM maintenance_windows)"
    ).row(0)
    return tuple(int(x) for x in row)  # type: ignore[return-value]


# -- recording from the CLI ----------------------------------------------------------------
def test_cli_add_list_show(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIOPS_USER", "alice")
    code, out, _ = cli(
        capsys, home, "changes", "add", "--service", "claims-api", "--kind", "deploy",
        "--summary", "claims-api 2.4.1: new fraud rules", "--risk", "medium", "--json",
    )  # fmt: skip
    assert code == 0
    cid = json.loads(out)[0]["id"]
    assert cid.startswith("CHG-")
    code, out, _ = cli(capsys, home, "changes", "list", "--json")
    rows = json.loads(out)
    assert code == 0 and [r["id"] for r in rows] == [cid]
    r = rows[0]
    assert (r["service"], r["kind"], r["status"], r["source"], r["risk"], r["change_type"]) == (
        "claims-api", "deploy", "proposed", "cli", "medium", "normal",
    )  # fmt: skip
    assert r["requested_by"] == "alice"
    code, out, _ = cli(capsys, home, "changes", "list", "--json", "--service", "other")
    assert json.loads(out) == []
    code, out, _ = cli(capsys, home, "changes", "show", cid)
    assert code == 0 and "claims-api 2.4.1: new fraud rules" in out and "-> proposed" in out
    audit = Store(home).query("SELECT action, actor, target_id, source FROM audit_log").rows()
    assert audit == [("change.add", "alice", cid, "cli")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kind", "deploy-ish"], "kind: 'deploy-ish' is not one of deploy, config"),
        (
            ["--kind", "deploy", "--window-start", "2026-03-10T12:00", "--window-end",
             "2026-03-10T11:00"],
            "window_end (2026-03-10 11:00) must be after window_start",
        ),
        (["--kind", "deploy", "--window-start", "tomorrow", "--window-end", "2026-03-10T11:00"],
         "window_start: 'tomorrow' is not an ISO 8601 time"),
        (["--kind", "deploy", "--window-start", "2026-03-10T12:00"], "give both or neither"),
        (["--kind", "deploy", "--risk", "extreme"], "risk: 'extreme' is not one of low"),
        (["--kind", "deploy", "--status", "verified"], "status: 'verified' is not one of"),
        (["--kind", "deploy", "--risk", "high", "--status", "implemented"],
         "a high-risk change needs a named approver"),
    ],
)  # fmt: skip
def test_cli_add_bad_input_exits_2_and_writes_nothing(
    home: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = cli(
        capsys, home, "changes", "add", "--service", "claims-api", "--summary", "x", *args
    )
    assert code == 2, out + err
    assert message in err
    assert counts(Store(home)) == (0, 0, 0, 0)


def test_unknown_id_exits_2(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for action in ("show", "approve", "cancel"):
        by = () if action == "show" else ("--by", "bob")
        code, _, err = cli(capsys, home, "changes", action, "CHG-0000000000", *by)
        assert code == 2 and "no change with id 'CHG-0000000000'" in err


def test_check_new_change_lists_every_problem() -> None:
    with pytest.raises(ChangeError) as e:
        check_new_change({"kind": "nope", "colour": "red", "ts": "yesterday-ish"})
    text = str(e.value)
    for part in ("unknown field 'colour'", "service is required", "summary is required",
                 "kind: 'nope'", "ts: 'yesterday-ish'"):  # fmt: skip
        assert part in text
    assert parse_time("2026-03-10T14:00+02:00", "t") == datetime(2026, 3, 10, 12, 0)
    assert parse_time("2026-03-10T12:00Z", "t") == datetime(2026, 3, 10, 12, 0)


# -- the lifecycle -------------------------------------------------------------------------
def test_normal_change_full_lifecycle_records_events_and_audit(tmp_path: Path) -> None:
    store = Store(tmp_path)
    cid = add(store, requested_by="alice", risk="medium")
    steps = [
        ("approve", "approved", "bob"),
        ("schedule", "scheduled", "bob"),
        ("implement", "implemented", "carol"),
        ("verify", "verified", "carol"),
    ]
    for i, (action, status, who) in enumerate(steps, start=1):
        window = (T0, T0 + timedelta(hours=1)) if action == "schedule" else None
        after = transition(
            store,
            cid,
            action,
            by=who,
            note=f"step {i}",
            window=window,
            now=T0 + timedelta(minutes=i),
        )
        assert after["status"] == status
    change = get_change(store, cid)
    assert change["approved_by"] == "bob" and change["approved_at"] == T0 + timedelta(minutes=1)
    assert change["implemented_at"] == T0 + timedelta(minutes=3)
    assert change["closed_at"] == T0 + timedelta(minutes=4)
    events = [(e["from_status"], e["to_status"], e["actor"]) for e in change["events"]]
    assert events == [
        (None, "proposed", "alice"),
        ("proposed", "approved", "bob"),
        ("approved", "scheduled", "bob"),
        ("scheduled", "implemented", "carol"),
        ("implemented", "verified", "carol"),
    ]
    actions = store.query("SELECT action FROM audit_log ORDER BY id")["action"].to_list()
    assert actions == [
        "change.add", "change.approve", "change.schedule", "change.implement", "change.verify",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("setup", "action", "message"),
    [
        ([], "implement", "still proposed: it must be approved first"),
        ([], "schedule", "still proposed: it must be approved first"),
        ([], "verify", "only an implemented change can be verified"),
        ([], "rollback", "only an implemented (or verified) change can be rolled back"),
        (["approve"], "approve", "is already approved"),
        (["approve", "implement"], "cancel", "only a change not yet implemented can be cancelled"),
        (["cancel"], "approve", "is cancelled"),
        (["approve"], "schedule", "has no window"),
        ([], "reopen", "action 'reopen' is not one of"),
    ],
)
def test_refused_transitions_change_nothing(
    tmp_path: Path, setup: list[str], action: str, message: str
) -> None:
    store = Store(tmp_path)
    cid = add(store)
    for step in setup:
        transition(store, cid, step, by="bob", now=T0)
    before = (get_change(store, cid), counts(store))
    with pytest.raises(ChangeError) as e:
        transition(store, cid, action, by="bob", now=T0 + timedelta(minutes=5))
    assert message in str(e.value)
    assert (get_change(store, cid), counts(store)) == before


def test_standard_change_skips_approval(tmp_path: Path) -> None:
    store = Store(tmp_path)
    cid = add(store, change_type="standard", kind="config")
    with pytest.raises(ChangeError, match="standard change: it is pre-approved"):
        transition(store, cid, "approve", by="bob", now=T0)
    assert transition(store, cid, "implement", by="ops", now=T0)["status"] == "implemented"
    other = add(
        store,
        change_type="standard",
        window_start="2026-03-10T13:00",
        window_end="2026-03-10T14:00",
    )
    assert transition(store, other, "schedule", by="ops", now=T0)["status"] == "scheduled"


def test_high_risk_needs_a_named_approver_not_the_requester(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path)
    cid = add(store, risk="high", requested_by="alice", kind="schema", summary="drop column")
    for by, message in (
        (None, "high-risk change: it needs a named approver"),
        ("unknown", "it needs a named approver"),
        ("  ", "it needs a named approver"),
        ("alice", "alice requested it and cannot approve it"),
    ):
        with pytest.raises(ChangeError, match=message):
            transition(store, cid, "approve", by=by, now=T0)
    assert get_change(store, cid)["status"] == "proposed"
    after = transition(store, cid, "approve", by="bob", now=T0)
    assert (after["status"], after["approved_by"]) == ("approved", "bob")
    # The CLI: without --by (and no $AIOPS_USER) a high-risk approval is refused, exit 2.
    monkeypatch.delenv("AIOPS_USER", raising=False)
    emergency = add(store, change_type="emergency", requested_by="alice")
    assert main(["changes", "approve", emergency, "--home", str(tmp_path)]) == 2
    assert main(["changes", "approve", emergency, "--home", str(tmp_path), "--by", "dave"]) == 0
    assert get_change(store, emergency)["approved_by"] == "dave"


def test_recording_a_high_risk_change_after_the_fact_needs_its_approver(tmp_path: Path) -> None:
    store = Store(tmp_path)
    with pytest.raises(ChangeError, match="the requester cannot approve"):
        check_new_change(
            {"service": "s", "kind": "deploy", "summary": "x", "risk": "high",
             "status": "implemented", "requested_by": "al", "approved_by": "al"}
        )  # fmt: skip
    cid = add(store, risk="high", status="implemented", approved_by="bob", requested_by="al")
    change = get_change(store, cid)
    assert (change["status"], change["approved_by"]) == ("implemented", "bob")
    assert change["implemented_at"] == T0


# -- maintenance windows -------------------------------------------------------------------
def test_approved_window_suppresses_notifications_and_cancel_removes_it(
    tmp_path: Path, webhook: WebhookReceiver
) -> None:
    store = Store(tmp_path)
    config = parse_gateway_config(
        tomllib.loads(f'[[notify.webhooks]]\nname = "ops"\nurl = "{webhook.url}"\n'), "gw.toml"
    )
    cid = add(
        store,
        now=T0 - timedelta(hours=2),
        window_start="2026-03-10T11:30",
        window_end="2026-03-10T13:00",
        summary="claims-api database failover",
        kind="infra",
    )
    assert store.query("SELECT count(*) FROM maintenance_windows").item() == 0  # not approved
    transition(store, cid, "approve", by="bob", now=T0 - timedelta(hours=1))
    transition(store, cid, "schedule", by="bob", now=T0 - timedelta(hours=1))  # no second window
    windows = store.query(
        "SELECT id, service, starts_at, ends_at, source, change_id FROM maintenance_windows"
    ).rows()
    assert len(windows) == 1
    wid = windows[0][0]
    assert windows[0][1:] == (
        "claims-api",
        datetime(2026, 3, 10, 11, 30),
        datetime(2026, 3, 10, 13),
        "change",
        cid,
    )
    claims = open_or_update_incident(
        store, service="claims-api", signal="error_ratio", severity="critical", now=T0
    )
    quotes = open_or_update_incident(
        store, service="quotes-api", signal="error_ratio", severity="critical", now=T0
    )
    result = run_notify(store, config, T0, sleep=lambda _s: None)
    rows = store.query(
        "SELECT incident_id, status, suppressed_by FROM notifications ORDER BY incident_id"
    ).rows()
    assert rows == [(claims, "suppressed", f"maintenance:{wid}"), (quotes, "sent", None)]
    assert result.sent == 1 and [m["aiops"]["incident_id"] for m in webhook.received] == [quotes]

    # Cancelled while the window runs: the window ends now and people hear of the incident.
    transition(
        store, cid, "cancel", by="bob", note="failover postponed", now=T0 + timedelta(minutes=1)
    )
    assert store.query("SELECT ends_at FROM maintenance_windows").item() == T0 + timedelta(
        minutes=1
    )
    run_notify(store, config, T0 + timedelta(minutes=2), sleep=lambda _s: None)
    assert [m["aiops"]["incident_id"] for m in webhook.received] == [quotes, claims]

    # Cancelled before its window started: the window is gone.
    later = add(store, window_start="2026-03-11T01:00", window_end="2026-03-11T02:00")
    transition(store, later, "approve", by="bob", now=T0)
    assert (
        store.query("SELECT count(*) FROM maintenance_windows WHERE change_id = ?", [later]).item()
        == 1
    )
    transition(store, later, "cancel", by="bob", now=T0)
    assert (
        store.query("SELECT count(*) FROM maintenance_windows WHERE change_id = ?", [later]).item()
        == 0
    )


# -- suspects ------------------------------------------------------------------------------
def test_correlation_ranks_same_service_then_dependency_then_unrelated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = Store(tmp_path)
    with store.write() as con:
        con.execute(
            "INSERT INTO service_dependencies VALUES ('claims-api', 'policy-db', 'declared', "
            "NULL, NULL, NULL)"
        )
    opened = T0
    deploy_a = add(store, status="implemented", ts=opened - timedelta(minutes=30), summary="A 2.0")
    config_b = add(
        store, service="policy-db", kind="config", status="implemented",
        ts=opened - timedelta(minutes=20), summary="pool size 50 -> 20",
    )  # fmt: skip
    deploy_c = add(
        store, service="quotes-api", status="implemented", ts=opened - timedelta(minutes=10),
        summary="quotes 7.1",
    )  # fmt: skip
    add(store, status="implemented", ts=opened - timedelta(hours=30), summary="too old")
    add(store, summary="only proposed")  # never happened: not a suspect
    iid = open_or_update_incident(
        store, service="claims-api", signal="error_ratio", severity="warning", now=opened
    )
    assert (
        compute_suspects(
            store, ChangesSettings(lookback_hours=24), now=opened + timedelta(minutes=5)
        )
        == 1
    )
    df = suspects(store, iid)
    assert df["change_id"].to_list() == [deploy_a, config_b, deploy_c]
    assert df["rank"].to_list() == [1, 2, 3]
    scores = df["score"].to_list()
    assert scores[0] > scores[1] > scores[2] > 0
    reasons = df["reason"].to_list()
    assert reasons[0].startswith("same service") and "30 min before it opened" in reasons[0]
    assert reasons[1].startswith("claims-api depends on policy-db")
    assert reasons[2].startswith("unrelated service quotes-api")
    # Shown by `aiops incidents show` and listed on the change.
    code, out, _ = cli(capsys, tmp_path, "incidents", "show", str(iid))
    assert code == 0 and "suspect changes" in out
    assert out.index(deploy_a) < out.index(config_b) < out.index(deploy_c)
    assert get_change(store, deploy_a)["suspect_of"][0]["incident_id"] == iid
    code, out, _ = cli(capsys, tmp_path, "incidents", "show", str(iid), "--json")
    assert [s["change_id"] for s in json.loads(out)[0]["suspects"]] == [
        deploy_a,
        config_b,
        deploy_c,
    ]


def test_rank_suspects_time_proximity_and_weights() -> None:
    opened = T0

    def change(cid: str, minutes: float, **kw: Any) -> dict[str, Any]:
        return {"id": cid, "service": "a", "kind": "deploy", "risk": None, "status": "implemented",
                "at": opened - timedelta(minutes=minutes), "pending": False, **kw}  # fmt: skip

    ranked = rank_suspects(
        {"service": "a", "opened_at": opened, "resolved_at": None},
        [
            change("far", 600),
            change("near", 5),
            change("flag", 5, kind="flag"),
            change("risky", 5, risk="high"),
            change("after", -5),  # during the incident: low, but listed
            change("outside", 60 * 25),
        ],
        [],
        lookback=timedelta(hours=24),
        now=opened + timedelta(hours=1),
    )
    assert [s.change_id for s in ranked] == ["risky", "near", "flag", "after", "far"]


# -- failure rate --------------------------------------------------------------------------
def test_failure_rate_with_known_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = Store(tmp_path)
    now = T0 + timedelta(days=3)
    # claims-api: 4 implemented changes, 2 followed by an incident within 24 h -> 50 %.
    for hours in (0, 10, 40, 60):
        add(store, status="implemented", ts=T0 + timedelta(hours=hours), summary=f"c{hours}")
    # quotes-api: 2 changes, both followed (one later rolled back) -> 100 %.
    q1 = add(store, service="quotes-api", status="implemented", ts=T0, summary="q1")
    add(
        store, service="quotes-api", status="implemented", ts=T0 + timedelta(hours=30), summary="q2"
    )
    transition(store, q1, "rollback", by="ops", now=T0 + timedelta(hours=3))
    # Not counted: a chaos drill, a proposed change, a cancelled one.
    add(store, kind="chaos", status="implemented", ts=T0 + timedelta(hours=1), summary="drill")
    add(store, summary="planned")
    for service, at in (
        ("claims-api", T0 + timedelta(hours=20)),  # follows c10 (10 h) and c0 (20 h after)
        ("quotes-api", T0 + timedelta(hours=2)),
        ("quotes-api", T0 + timedelta(hours=31)),
    ):
        with store.write() as con:
            iid = con.execute("SELECT coalesce(max(id), 0) + 1 FROM incidents").fetchone()[0]
            con.execute(
                "INSERT INTO incidents VALUES (?, ?, 't', ?, 'error_ratio', 'warning', 'resolved',"
                " ?, NULL, ?, NULL, ?, 1, 'detector', 0, ['error_ratio'], NULL, ?)",
                [iid, f"{service}:error_ratio", service, at, at, at, at],
            )
    df = failure_rate(store, window_hours=24, since=T0 - timedelta(days=1), now=now)
    got = {
        r["service"]: (r["changes"], r["failed"], r["failure_rate"], r["rolled_back"])
        for r in df.to_dicts()
    }
    # c0 and c10 both precede the incident at +20 h within 24 h: 2 of 4.
    assert got == {"quotes-api": (2, 2, 1.0, 1), "claims-api": (4, 2, 0.5, 0)}
    narrow = failure_rate(store, window_hours=12, since=T0 - timedelta(days=1), now=now)
    assert {r["service"]: r["failed"] for r in narrow.to_dicts()} == {
        "quotes-api": 2,
        "claims-api": 1,
    }
    code, out, _ = cli(
        capsys,
        tmp_path,
        "changes",
        "failure-rate",
        "--hours",
        "24",
        "--since",
        "2026-03-09T00:00",
        "--json",
    )
    assert code == 0
    rows = {r["service"]: r["failure_rate"] for r in json.loads(out)}
    assert rows["claims-api"] == 0.5


# -- changes seen in traffic (pure planning; the gateway path is in tests/integration) -----
def test_plan_observed_changes_baseline_then_differences() -> None:
    t = T0
    up = "http://127.0.0.1:9001"
    first = plan_observed_changes(
        [],
        [Observed("claims", "", None, t, t, 5), Observed("openai", "", None, t, t, 2)],
        [Observed("claims", up, "1.0", t, t, 5)],
        [Observed("openai", "gpt-4o-mini-2024-07-18", None, t, t, 2)],
        now=t,
    )
    assert first.changes == []  # the baseline
    state = [
        dict(
            zip(
                ("service", "aspect", "key", "value", "first_seen", "last_seen", "change_id"),
                r,
                strict=True,
            )
        )
        for r in first.state
    ]
    t2 = t + timedelta(minutes=5)
    second = plan_observed_changes(
        state,
        [Observed("claims", "", None, t2, t2, 1), Observed("policy", "", None, t2, t2, 1)],
        [Observed("claims", up, "1.0", t, t2, 3), Observed("claims", up, "1.1", t2, t2, 2)],
        [Observed("openai", "gpt-4o-2024-08-06", None, t2, t2, 1)],
        now=t2,
    )
    got = sorted((c["service"], c["kind"], c["summary"]) for c in second.changes)
    assert got == [
        ("claims", "deploy", f"{up} now reports version 1.1 (was 1.0)"),
        ("openai", "config", "openai serves LLM model gpt-4o-2024-08-06 (first seen)"),
        ("policy", "infra", "new route policy seen in traffic"),
    ]
    assert all(c["source"] == "observed" and c["ts"] == t2 for c in second.changes)


def test_observe_job_reads_requests_once(tmp_path: Path) -> None:
    store = Store(tmp_path)

    def request(i: int, at: datetime, version: str) -> None:
        with store.write() as con:
            con.execute(
                "INSERT INTO requests (id, ts, route, upstream, upstream_version, kind) "
                "VALUES (?, ?, 'claims', 'http://u:1', ?, 'http')",
                [f"r{i}", at, version],
            )

    request(1, T0, "1.0")
    assert observe_changes(store, now=T0).changes == []
    request(2, T0 + timedelta(minutes=1), "1.1")
    first = observe_changes(store, now=T0 + timedelta(minutes=2))
    assert len(first.changes) == 1
    assert observe_changes(store, now=T0 + timedelta(minutes=3)).changes == []  # no repeat
    df = list_changes(store, kind="deploy")
    assert df["summary"].to_list() == ["http://u:1 now reports version 1.1 (was 1.0)"]
    assert df["ts"].to_list() == [T0 + timedelta(minutes=1)]


def test_upstream_version_header_precedence() -> None:
    assert upstream_version(((b"Server", b"nginx/1.25"), (b"X-Version", b"2.4.1"))) == "2.4.1"
    assert upstream_version(((b"api-version", b"2024-10-01"),)) == "2024-10-01"
    assert upstream_version(((b"Server", b"aiops-emulator/1"),)) == "aiops-emulator/1"
    assert upstream_version(((b"Content-Type", b"text/plain"),)) is None


# -- config --------------------------------------------------------------------------------
def test_changes_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADMIN_TOKEN_T", "s3cret-token")
    config = parse_gateway_config(
        tomllib.loads(
            '[gateway]\nadmin_port = 9443\nadmin_token = "${ADMIN_TOKEN_T}"\n'
            "[changes]\nlookback_hours = 6\nfailure_window_hours = 48\n"
        ),
        "gw.toml",
    )
    assert config.changes.admin_port == 9443 and config.changes.admin_token == "s3cret-token"
    assert (config.changes.lookback_hours, config.changes.failure_window_hours) == (6.0, 48.0)
    assert "s3cret" not in repr(config)
    with pytest.raises(ConfigError) as e:
        parse_gateway_config(
            tomllib.loads(
                '[gateway]\nadmin_port = 70000\nadmin_token = "literal"\n'
                "[changes]\nlookback_hours = -1\nwindow = 3\n"
            ),
            "gw.toml",
        )
    text = str(e.value)
    for part in (
        "gw.toml: gateway.admin_port: 70000 is not a port",
        "gw.toml: gateway.admin_token: must be an environment reference",
        "gw.toml: changes.lookback_hours: -1 is out of range",
        "gw.toml: changes.window: unknown key",
    ):
        assert part in text


def test_new_change_tuple_defaults() -> None:
    change = NewChange("s", "deploy", "x")
    assert (change.status, change.change_type, change.risk) == ("proposed", "normal", None)


def test_a_change_in_the_incidents_first_minute_counts_as_before_it() -> None:
    from suite.changes import score_suspect

    opened = datetime(2026, 11, 28, 9, 49)
    change = {"id": "CHG-1", "service": "claims-api", "kind": "chaos", "risk": None}
    during = score_suspect(
        {**change, "at": opened + timedelta(seconds=20)}, "claims-api", opened, {}
    )
    before = score_suspect(
        {**change, "at": opened - timedelta(minutes=5)}, "claims-api", opened, {}
    )
    later = score_suspect({**change, "at": opened + timedelta(minutes=5)}, "claims-api", opened, {})
    assert "in its first minute" in during.reason
    assert during.score > before.score > later.score
    assert "after it opened" in later.reason
