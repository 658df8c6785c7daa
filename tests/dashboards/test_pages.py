"""Every dashboard page (Streamlit AppTest, through the st.navigation entry point): no
exception and a "no data yet" state on an empty home; the seeded numbers on a seeded home;
and each action (incident ack/resolve/assign/note, change approve/implement/rollback)
changes the store and writes an audit_log row."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from suite import cli
from suite.store import Store
from tests.dashboards.seed import (
    BODY_REQUEST_ID,
    CLAIMS_UPSTREAM,
    FALLBACK_CHAIN,
    IDLE_UPSTREAM,
    KEY_HASH,
    KEY_SALT,
    Seeded,
    seed_home,
)

APP = str(Path(__file__).resolve().parents[2] / "dashboards" / "app.py")
PAGES = (
    "overview.py", "traffic.py", "llm.py", "incidents.py", "changes.py", "capacity.py",
    "slos.py", "services.py", "gateway.py",
)  # fmt: skip
ACTOR = "dash-tester"


def open_page(page: str) -> AppTest:
    """One page run on its own (the navigation is covered by the empty-home test)."""
    at = AppTest.from_file(str(Path(APP).with_name(page)), default_timeout=120)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def rerun(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def widget(elements: Any, label: str) -> Any:
    found = [w for w in elements if w.label == label]
    assert found, f"no widget labelled {label!r}"
    return found[0]


def tables(at: AppTest) -> list[Any]:
    return [d.value for d in at.dataframe]


def table_with(at: AppTest, column: str) -> Any:
    found = [t for t in tables(at) if column in t.columns]
    assert found, f"no table with a {column!r} column"
    return found[0]


def chart_titles(at: AppTest) -> list[str]:
    titles = []
    for el in at.get("plotly_chart"):
        title = json.loads(el.proto.spec)["layout"].get("title") or {}
        titles.append(title.get("text", ""))
    return titles


def texts(at: AppTest) -> str:
    parts = [e.value for kind in ("info", "warning", "success", "error", "caption", "markdown")
             for e in getattr(at, kind)]  # fmt: skip
    parts += [c.value for c in at.get("code")] if at.get("code") else []
    return "\n".join(str(p) for p in parts)


@pytest.fixture(scope="module")
def seeded_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Seeded]:
    root = tmp_path_factory.mktemp("dashboards") / "home"
    return root, seed_home(root)


@pytest.fixture
def seeded(seeded_root: tuple[Path, Seeded], monkeypatch: pytest.MonkeyPatch) -> Seeded:
    """The shared, read-only seeded home (pages only look at it)."""
    monkeypatch.setenv("AIOPS_HOME", str(seeded_root[0]))
    return seeded_root[1]


@pytest.fixture
def own_seeded(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Seeded]:
    """A seeded home of this test's own, for actions that change it."""
    monkeypatch.setenv("AIOPS_USER", ACTOR)
    yield seed_home(home)


# -- empty home -------------------------------------------------------------------------------
def test_every_page_says_no_data_yet_on_an_empty_home(home: Path) -> None:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    for page in PAGES:
        at.switch_page(page).run()
        assert not at.exception, (page, [e.message for e in at.exception])
        infos = [i.value for i in at.info]
        assert any("yet" in i for i in infos), (page, infos)


# -- seeded home: the numbers -----------------------------------------------------------------
def test_overview_shows_golden_signals_incidents_changes_slos_and_spend(seeded: Seeded) -> None:
    store = Store()
    calls = store.query(
        "SELECT count(*) FROM requests WHERE ts >= ?::TIMESTAMP - INTERVAL 1 DAY", [seeded.now]
    ).item()
    today = store.query(
        "SELECT sum(cost_usd) FROM requests WHERE kind = 'llm' AND ts >= ?",
        [seeded.now.replace(hour=0, minute=0)],
    ).item()
    at = open_page("overview.py")
    m = metrics(at)
    assert m["Calls"] == f"{calls:,}"
    assert m["Open incidents"] == "1"
    assert m["LLM spend"] == f"${seeded.llm_cost:,.2f}"
    assert m["LLM spend today"] == f"${today:,.2f}"
    golden = at.dataframe[0].value
    assert set(golden["service"]) == {"claims-api", "openai", "mcp-tools"}
    assert int(golden["calls"].sum()) == calls
    saturation = golden.set_index("service")
    assert saturation.loc["claims-api", "in_flight"] > 0
    assert saturation.loc["claims-api", "limit_use_pct"] == pytest.approx(25.0)
    assert "claims-availability" in set(table_with(at, "slo")["slo"])
    assert seeded.implemented_change in set(table_with(at, "summary")["id"])
    assert {"Calls per minute", "5xx error ratio", "p95 latency (ms)"} <= set(chart_titles(at))


def test_traffic_explorer_filters_in_sql_and_drills_down_to_one_request(seeded: Seeded) -> None:
    total = Store().query("SELECT count(*) FROM requests").item()
    at = open_page("traffic.py")
    assert metrics(at)["Matching calls"] == f"{total:,}"
    assert {"Rate and errors per minute", "Latency (ms)"} <= set(chart_titles(at))

    widget(at.multiselect, "Service").set_value(["openai"])
    rerun(at)
    m = metrics(at)
    assert m["Matching calls"] == f"{seeded.llm_calls:,}"
    assert m["Cost"] == f"${seeded.llm_cost:,.2f}"
    assert set(table_with(at, "path")["route"]) == {"openai"}

    widget(at.multiselect, "Model").set_value(["mystery-model"])
    rerun(at)
    assert metrics(at)["Matching calls"] == "5"

    widget(at.multiselect, "Service").set_value(["claims-api"])
    widget(at.multiselect, "Model").set_value([])
    widget(at.multiselect, "Status class").set_value(["5xx"])
    rerun(at)
    assert metrics(at)["Matching calls"] == f"{seeded.incident_failed_calls:,}"
    assert set(table_with(at, "path")["status"]) == {503}

    widget(at.text_input, "…or a request id").set_value(BODY_REQUEST_ID)
    rerun(at)
    fields = dict(table_with(at, "field").values.tolist())
    assert fields["path"] == "/claims/new" and fields["status"] == "201"
    shown = texts(at) + json.dumps([j.value for j in at.json], default=str)
    assert "[REDACTED:email]" in shown and "CLM-9" in shown


def test_llm_page_shows_spend_cache_fallbacks_unpriced_and_budget_burn(seeded: Seeded) -> None:
    at = open_page("llm.py")
    m = metrics(at)
    assert m["LLM calls"] == "55"
    assert m["Spend"] == f"${seeded.llm_cost:,.2f}"
    assert m["Tokens"] == f"{55 * 150:,}"
    assert m["Cache hits"] == "4"
    assert m["Fallbacks"] == "3"
    assert m["Unpriced calls"] == "5"
    assert any("selfhosted/mystery-model" in w.value for w in at.warning)
    by_model = table_with(at, "model").set_index("model")
    assert by_model.loc["gpt-4o-mini", "calls"] == 50
    assert by_model.loc["mystery-model", "unpriced_calls"] == 5
    assert by_model.loc["gpt-4o-mini", "ttft_p95_ms"] == pytest.approx(300.0)
    assert table_with(at, "key").set_index("key").loc["key-a", "cost_usd"] == pytest.approx(0.1)
    assert FALLBACK_CHAIN in set(table_with(at, "fallback_chain")["fallback_chain"])
    budgets = table_with(at, "day_budget_used_pct").set_index("key_id")
    assert budgets.loc["key-a", "spent_today_usd"] == pytest.approx(seeded.key_a_spent_today)
    assert budgets.loc["key-a", "day_budget_used_pct"] == pytest.approx(20.0)
    assert budgets.loc["key-a", "month_budget_used_pct"] == pytest.approx(1.0)
    assert {"Spend over time (USD)", "Tokens over time"} <= set(chart_titles(at))


def test_incidents_page_lists_and_details_an_incident(seeded: Seeded) -> None:
    at = open_page("incidents.py")
    listed = at.dataframe[0].value
    assert list(listed["id"]) == [seeded.incident_id]  # default filter: open, acknowledged
    assert metrics(at)["Status"] == "open"
    suspects = table_with(at, "change_id")
    assert suspects.iloc[0]["change_id"] == seeded.implemented_change
    assert f"{seeded.incident_failed_calls:,} failed calls" in texts(at)
    assert "opened" in set(table_with(at, "kind")["kind"])
    assert "Signals around the incident" in chart_titles(at)
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert any(t.get("name") == "anomaly" and len(t["x"]) == 3 for t in spec["data"])

    widget(at.multiselect, "Status").set_value(["open", "acknowledged", "resolved"])
    rerun(at)
    assert set(at.dataframe[0].value["id"]) == {seeded.incident_id, seeded.resolved_incident_id}


def test_changes_page_shows_timeline_and_failure_rate(seeded: Seeded) -> None:
    at = open_page("changes.py")
    m = metrics(at)
    assert m["Changes in range"] == "4"
    assert m["Awaiting approval"] == "1"
    assert {"Change timeline", "Changes per day", "Change failure rate (%)"} <= set(
        chart_titles(at)
    )
    listed = table_with(at, "summary")
    assert set(listed["id"]) >= {seeded.proposed_change, seeded.implemented_change}
    rate = table_with(at, "failure_rate_pct").set_index("service")
    # The deploy to claims-api was followed by the incident 7 minutes later; chaos drills
    # are not changes that fail.
    assert rate.loc["claims-api", "changes"] == 1
    assert rate.loc["claims-api", "failure_rate_pct"] == pytest.approx(100.0)


def test_capacity_page_shows_time_to_limit_and_forecast_error(seeded: Seeded) -> None:
    at = open_page("capacity.py")
    m = metrics(at)
    assert m["Series forecast"] == "3"
    assert m["Soonest limit"] == "5.0 days"
    assert m["Median forecast error"] == "11.5%"
    runs = table_with(at, "days_to_limit").set_index("metric")
    assert runs.loc["rps", "limit_value"] == 20.0
    assert runs.loc["rps", "days_to_limit"] == pytest.approx(5.0)
    titles = chart_titles(at)
    assert "Forecast: claims-api: rps" in titles
    assert "Forecast error (MAPE, back-test)" in titles
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    forecast = next(t for t in spec["data"] if t.get("name") == "forecast")
    assert len(forecast["x"]) == 336
    assert any(t.get("name") == "history (hourly)" for t in spec["data"])


def test_slo_page_shows_budget_and_burn_rates(seeded: Seeded) -> None:
    at = open_page("slos.py")
    assert metrics(at)["SLOs"] == "1"
    objectives = table_with(at, "budget_remaining")
    assert objectives.iloc[0]["budget_remaining"] == pytest.approx(0.42)
    assert "ticket" in objectives.iloc[0]["alert"]
    burns = table_with(at, "burn_1h")
    assert burns.iloc[0]["burn_1h"] == pytest.approx(1.2)
    assert "SLO history: claims-availability" in chart_titles(at)
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    budget = next(t for t in spec["data"] if t.get("name") == "budget left")
    assert budget["y"] == pytest.approx([0.9, 0.6, 0.42])


def test_services_page_shows_catalog_graph_and_sla_report(seeded: Seeded) -> None:
    store = Store()
    month = seeded.now.replace(day=1, hour=0, minute=0)
    requests, errors = store.query(
        "SELECT count(*), count(*) FILTER (WHERE status >= 500) FROM requests "
        "WHERE route = 'claims-api' AND ts >= ?",
        [month],
    ).row(0)
    at = open_page("services.py")
    m = metrics(at)
    assert m["Services"] == "3" and m["Dependencies"] == "2"
    catalog = table_with(at, "tier").set_index("service")
    assert catalog.loc["claims-api", "owner"] == "team-claims"
    assert catalog.loc["claims-api", "depends_on"] == 2
    owners = table_with(at, "services").set_index("owner")
    assert owners.loc["team-claims", "services"] == "claims-api, mcp-tools"
    assert "Dependency graph" in chart_titles(at)
    sla = table_with(at, "availability_pct").set_index("service")
    assert sla.loc["claims-api", "availability_pct"] == pytest.approx(
        100.0 * (1 - errors / requests)
    )
    assert sla.loc["claims-api", "sla_target"] == 99.9


def test_gateway_page_shows_routes_health_keys_and_chaos(seeded: Seeded) -> None:
    at = open_page("gateway.py")
    routes = table_with(at, "prefix").set_index("name")
    assert routes.loc["claims-api", "prefix"] == "/claims"
    assert IDLE_UPSTREAM in routes.loc["claims-api", "upstreams"]
    health = table_with(at, "upstream").set_index("upstream")
    assert health.loc[IDLE_UPSTREAM, "calls"] == 0
    assert health.loc[CLAIMS_UPSTREAM, "calls"] > 0
    keys = table_with(at, "key_id")
    assert "key-a" in set(keys["key_id"])
    assert not {"salt", "hash"} & set(keys.columns)
    everything = json.dumps([t.to_dict() for t in tables(at)], default=str)
    assert KEY_HASH not in everything and KEY_SALT not in everything
    assert any("1 active chaos drill" in w.value for w in at.warning)
    drills = table_with(at, "error_rate")
    assert drills.iloc[0]["route"] == "claims-api"
    assert seeded.chaos_change in set(table_with(at, "window_end")["id"])
    versions = table_with(at, "route_version")
    assert set(versions["route_version"]) == {"v1", "v2"}
    assert "Upstream p95 latency (ms)" in chart_titles(at)


# -- actions ----------------------------------------------------------------------------------
def incident_row(incident_id: int) -> dict[str, Any]:
    return Store().query("SELECT * FROM incidents WHERE id = ?", [incident_id]).row(0, named=True)


def audit_rows(target_kind: str) -> list[dict[str, Any]]:
    return (
        Store()
        .query("SELECT * FROM audit_log WHERE target_kind = ? ORDER BY id", [target_kind])
        .to_dicts()
    )


def cli_show(incident_id: int) -> dict[str, Any]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["incidents", "show", str(incident_id), "--json"]) == 0
    (shown,) = json.loads(out.getvalue())
    return dict(shown)


def test_incident_actions_write_the_store_the_cli_and_the_audit_log(own_seeded: Seeded) -> None:
    iid = own_seeded.incident_id
    at = open_page("incidents.py")
    at.button(key="add_note").click()  # an empty note: refused, shown, nothing written
    rerun(at)
    assert any("a note needs some text" in e.value for e in at.error)
    assert not audit_rows("incident")[1:]  # only the seed's own resolve (from the CLI)

    at.button(key="ack").click()
    rerun(at)
    assert incident_row(iid)["status"] == "acknowledged"
    assert incident_row(iid)["assignee"] == ACTOR
    assert cli_show(iid)["status"] == "acknowledged"  # visible in the CLI at once
    assert any("acknowledged by dash-tester" in s.value for s in at.success)
    assert metrics(at)["Status"] == "acknowledged"  # the page shows it too

    at.text_input(key="assignee").set_value("alice")
    at.button(key="assign").click()
    rerun(at)
    assert incident_row(iid)["assignee"] == "alice"

    at.text_area(key="note_text").set_value("rolled back the fraud rules")
    at.button(key="add_note").click()
    rerun(at)
    events = cli_show(iid)["events"]
    assert events[-1]["kind"] == "note" and events[-1]["detail"] == "rolled back the fraud rules"
    assert events[-1]["actor"] == ACTOR

    at.text_input(key="resolve_note").set_value("fixed by rollback")
    at.button(key="resolve").click()
    rerun(at)
    row = incident_row(iid)
    assert row["status"] == "resolved" and row["resolved_at"] is not None

    # The CLI's actions go through the same functions and are audited as source 'cli'.
    assert cli.main(["incidents", "note", str(iid), "postmortem booked", "--actor", "carol"]) == 0

    trail = [r for r in audit_rows("incident") if r["target_id"] == str(iid)]
    assert [(r["action"], r["source"], r["actor"]) for r in trail] == [
        ("incident.acknowledge", "dashboard", ACTOR),
        ("incident.assign", "dashboard", ACTOR),
        ("incident.note", "dashboard", ACTOR),
        ("incident.resolve", "dashboard", ACTOR),
        ("incident.note", "cli", "carol"),
    ]
    assert "fixed by rollback" in trail[3]["detail"]


def change_row(change_id: str) -> dict[str, Any]:
    return Store().query("SELECT * FROM changes WHERE id = ?", [change_id]).row(0, named=True)


def test_change_lifecycle_actions_write_status_events_and_audit(own_seeded: Seeded) -> None:
    at = open_page("changes.py")
    for change_id, button, status in (
        (own_seeded.proposed_change, "change_approve", "approved"),
        (own_seeded.approved_change, "change_implement", "implemented"),
        (own_seeded.implemented_change, "change_rollback", "rolled_back"),
    ):
        before = change_row(change_id)["status"]
        at.selectbox(key="change_id").set_value(change_id)
        rerun(at)
        at.text_input(key="change_note").set_value("from the dashboard test")
        at.button(key=button).click()
        rerun(at)
        row = change_row(change_id)
        assert row["status"] == status
        if status == "approved":
            assert row["approved_by"] == ACTOR and row["approved_at"] is not None
        events = (
            Store()
            .query(
                "SELECT from_status, to_status, actor, note FROM change_events "
                "WHERE change_id = ? ORDER BY id",
                [change_id],
            )
            .rows()
        )
        assert events[-1] == (before, status, ACTOR, "from the dashboard test")
        trail = [r for r in audit_rows("change") if r["target_id"] == change_id]
        assert len(trail) == 1
        assert trail[0]["source"] == "dashboard" and trail[0]["actor"] == ACTOR
        assert any(f"{before} -> {status}" in s.value for s in at.success)
        # The button of a step the new status does not allow is disabled.
        assert at.button(key=button).disabled
    assert metrics(at)["Rolled back"] == "1"
