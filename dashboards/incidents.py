"""Incidents: a filtered list, and one incident in detail (the signals that fired with
their anomalies, the timeline, suspect changes, related failed calls) with the actions
acknowledge, resolve, assign and note, written through suite.incidents and audited."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import plotly.graph_objects as go
import polars as pl
import streamlit as st
from plotly.subplots import make_subplots

from suite import dashboard_data as data
from suite.audit import current_actor
from suite.clock import utc_now
from suite.errors import AiopsError
from suite.home import resolve_home
from suite.incidents import (
    SEVERITIES,
    STATUSES,
    acknowledge,
    add_note,
    assign,
    get_incident,
    resolve,
)
from suite.store import Store

SIGNAL_TITLES = {
    "request_rate": "calls per minute",
    "error_ratio": "5xx error ratio",
    "latency_p95_ms": "p95 latency (ms)",
    "tokens": "LLM tokens per minute",
}
SINCE = {"Last 24 hours": 1, "Last 7 days": 7, "Last 30 days": 30, "All": None}


@st.cache_data(ttl=10, max_entries=16)
def load_list(
    home: str,
    statuses: tuple[str, ...],
    severities: tuple[str, ...],
    services: tuple[str, ...],
    since: datetime | None,
) -> tuple[int, list[str], pl.DataFrame]:
    with data.reader(home) as store:
        total = data.table_count(store, "incidents")
        if not total:
            return 0, [], pl.DataFrame()
        return (
            total,
            data.incident_services(store),
            data.incidents_filtered(
                store, statuses=statuses, severities=severities, services=services, since=since
            ),
        )


@st.cache_data(ttl=10, max_entries=16)
def load_detail(home: str, incident_id: int) -> dict[str, Any]:
    with data.reader(home) as store:
        inc = get_incident(store, incident_id)
        since, until = data.incident_window(inc)
        n_related, related = data.related_requests(store, inc["service"], since, until)
        slo_hist = pl.DataFrame()
        if inc["signal"].startswith("slo_burn:"):
            slo_hist = data.slo_history(store, inc["signal"].split(":", 1)[1])
        return {
            "incident": inc,
            "signals": data.incident_signals(store, inc["service"], since, until),
            "anomalies": data.incident_anomalies(store, incident_id, inc["service"], since, until),
            "suspects": data.incident_suspects(store, incident_id),
            "related_count": n_related,
            "related": related,
            "slo_history": slo_hist,
            "audit": data.audit_entries(store, "incident", str(incident_id)),
        }


def run_action(home: str, incident_id: int, action: str) -> None:
    """A button's callback: runs before the page, so the page shows the result."""
    store = Store(home)
    actor = current_actor()
    state = st.session_state
    try:
        if action == "ack":
            acknowledge(store, incident_id, actor, source="dashboard")
            message = f"Incident {incident_id} acknowledged by {actor}."
        elif action == "resolve":
            note = (state.get("resolve_note") or "").strip() or None
            resolve(store, incident_id, actor, note=note, source="dashboard")
            message = f"Incident {incident_id} resolved by {actor}."
        elif action == "assign":
            who = state.get("assignee") or ""
            assign(store, incident_id, actor, who, source="dashboard")
            message = f"Incident {incident_id} assigned to {who.strip()}."
        else:
            add_note(store, incident_id, actor, state.get("note_text") or "", source="dashboard")
            message = f"Note added to incident {incident_id}."
            state["note_text"] = ""
        state["incident_flash"] = ("success", message)
    except AiopsError as e:
        state["incident_flash"] = ("error", str(e))
    load_list.clear()
    load_detail.clear()


def signals_figure(detail: dict[str, Any]) -> go.Figure:
    inc = detail["incident"]
    signals: pl.DataFrame = detail["signals"]
    anomalies: pl.DataFrame = detail["anomalies"]
    names = list(SIGNAL_TITLES)
    fig = make_subplots(
        rows=len(names), cols=1, shared_xaxes=True, vertical_spacing=0.04,
        subplot_titles=[SIGNAL_TITLES[n] for n in names],
    )  # fmt: skip
    for row, name in enumerate(names, start=1):
        series = signals.filter(pl.col("signal") == name) if signals.height else signals
        if series.height:
            fig.add_scatter(
                x=series["minute"].to_list(), y=series["value"].to_list(), mode="lines",
                name=name, line={"color": "#4c78a8"}, showlegend=False, row=row, col=1,
            )  # fmt: skip
        marks = (
            anomalies.filter((pl.col("signal") == name) & (pl.col("dimension") == "service"))
            if anomalies.height
            else anomalies
        )
        if marks.height:
            fig.add_scatter(
                x=marks["ts"].to_list(), y=marks["value"].to_list(), mode="markers",
                name="anomaly", marker={"color": "#e45756", "size": 9, "symbol": "x"},
                text=[f"score {s:.3f}" for s in marks["score"].to_list()],
                showlegend=row == 1, row=row, col=1,
            )  # fmt: skip
    end = inc["resolved_at"] or inc["last_seen_at"]
    fig.add_vrect(x0=inc["opened_at"], x1=end, fillcolor="#e45756", opacity=0.08, line_width=0)
    fig.update_layout(title="Signals around the incident", height=720, hovermode="x unified")
    return fig


st.title("Incidents")
home = str(resolve_home().root)

flash = st.session_state.pop("incident_flash", None)
if flash:
    (st.success if flash[0] == "success" else st.error)(flash[1])

c = st.columns([3, 3, 3, 2])
statuses = c[0].multiselect("Status", list(STATUSES), default=["open", "acknowledged"])
severities = c[1].multiselect("Severity", list(SEVERITIES), placeholder="any")
since_name = c[3].selectbox("Opened", list(SINCE), index=2)
days = SINCE[since_name]
# to the minute, so reruns within it hit the list's cache
since = None if days is None else utc_now().replace(second=0, microsecond=0) - timedelta(days=days)
# Services are known only after the first load; the list is cached, so this is cheap.
total, all_services, _ = load_list(home, (), (), (), None)
services = c[2].multiselect("Service", all_services, placeholder="any service")

if total == 0:
    st.info(
        "No incidents yet. The worker's detect job opens them from anomalies in the minute "
        "rollups, and the slo job from error-budget burn (`aiops worker`)."
    )
    st.stop()

_, _, table = load_list(home, tuple(statuses), tuple(severities), tuple(services), since)
st.metric("Matching incidents", f"{table.height:,}", help=f"{total:,} incidents in all")
st.dataframe(table, hide_index=True)
if table.is_empty():
    st.info("No incident matches these filters (resolved ones older than the range are hidden).")
    st.stop()

labels = {
    r["id"]: f"#{r['id']} [{r['severity']}/{r['status']}] {r['title']}"
    for r in table.iter_rows(named=True)
}
incident_id = st.selectbox(
    "Incident", list(labels), format_func=lambda i: labels.get(i, str(i)), key="incident_id"
)
detail = load_detail(home, int(incident_id))
inc = detail["incident"]

st.header(inc["title"])
m = st.columns(5)
m[0].metric("Status", inc["status"])
m[1].metric("Severity", inc["severity"])
m[2].metric("Assignee", inc["assignee"] or "-")
m[3].metric("Anomalies", f"{inc['anomaly_count']:,}")
m[4].metric("Opened (UTC)", f"{inc['opened_at']:%m-%d %H:%M}")

with st.container(border=True):
    st.markdown("**Actions**")
    a = st.columns(4)
    a[0].button(
        "Acknowledge", key="ack", disabled=inc["status"] != "open",
        on_click=run_action, args=(home, inc["id"], "ack"), type="primary",
    )  # fmt: skip
    with a[1]:
        st.text_input("Resolution note", key="resolve_note", placeholder="what fixed it")
        st.button(
            "Resolve", key="resolve", disabled=inc["status"] == "resolved",
            on_click=run_action, args=(home, inc["id"], "resolve"),
        )  # fmt: skip
    with a[2]:
        st.text_input("Assign to", key="assignee", placeholder="user name")
        st.button("Assign", key="assign", on_click=run_action, args=(home, inc["id"], "assign"))
    with a[3]:
        st.text_area("Note", key="note_text", height=68)
        st.button("Add note", key="add_note", on_click=run_action, args=(home, inc["id"], "note"))

st.plotly_chart(signals_figure(detail), width="stretch")
if detail["slo_history"].height:
    hist = detail["slo_history"]
    fig = go.Figure()
    for w in ("burn_5m", "burn_1h", "burn_6h"):
        fig.add_scatter(x=hist["computed_at"].to_list(), y=hist[w].to_list(), name=w, mode="lines")
    fig.update_layout(title="SLO burn rate")
    st.plotly_chart(fig, width="stretch")

left, right = st.columns(2)
with left:
    st.subheader("Timeline")
    st.dataframe(pl.DataFrame(inc["events"]), hide_index=True)
with right:
    st.subheader("Suspect changes")
    if detail["suspects"].is_empty():
        st.info(
            "No suspect changes ranked for this incident (the changes job ranks changes to this service and its dependencies)."
        )
    else:
        st.dataframe(detail["suspects"], hide_index=True)

st.subheader("Related requests")
st.caption(
    f"{detail['related_count']:,} failed calls (5xx, 429 or gateway errors) of "
    f"{inc['service']} in the incident window; the newest 100:"
)
if detail["related"].is_empty():
    st.info("No failed call of this service in the incident window.")
else:
    st.dataframe(detail["related"], hide_index=True)

with st.expander("Anomalies and audit trail"):
    st.dataframe(detail["anomalies"], hide_index=True)
    st.dataframe(detail["audit"], hide_index=True)
