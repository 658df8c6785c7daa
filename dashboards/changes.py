"""Changes: a timeline and calendar of what changed, the list, the lifecycle actions
(approve, mark implemented, roll back; audited) and change failure rate by service."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import plotly.express as px
import polars as pl
import streamlit as st

from suite import dashboard_data as data
from suite.audit import current_actor
from suite.clock import utc_now
from suite.errors import AiopsError
from suite.home import resolve_home
from suite.store import Store

RANGES = {"Last 24 hours": 1, "Last 7 days": 7, "Last 30 days": 30, "Last 90 days": 90}
# Scheduled changes ahead of now are shown too (a change calendar looks forward).
AHEAD = timedelta(days=14)


@st.cache_data(ttl=10, max_entries=16)
def load_changes(
    home: str,
    since: datetime,
    until: datetime,
    services: tuple[str, ...],
    kinds: tuple[str, ...],
    statuses: tuple[str, ...],
) -> tuple[int, pl.DataFrame]:
    with data.reader(home) as store:
        total = data.table_count(store, "changes")
        if not total:
            return 0, pl.DataFrame()
        return total, data.changes_in_range(
            store, since, until, services=services, kinds=kinds, statuses=statuses
        )


@st.cache_data(ttl=30, max_entries=16)
def load_failure_rate(home: str, since: datetime, until: datetime, hours: float) -> pl.DataFrame:
    with data.reader(home) as store:
        return data.change_failure_rate(store, since, until, hours)


@st.cache_data(ttl=10, max_entries=32)
def load_events(home: str, change_id: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    with data.reader(home) as store:
        return data.change_events(store, change_id), data.audit_entries(store, "change", change_id)


def run_action(home: str, change_id: str, action: str) -> None:
    """A button's callback (runs before the page, so the page shows the new status)."""
    note = (st.session_state.get("change_note") or "").strip() or None
    try:
        result: dict[str, Any] = data.change_lifecycle_action(
            Store(home), change_id, action, actor=current_actor(), note=note, source="dashboard"
        )
        st.session_state["change_flash"] = (
            "success",
            f"Change {change_id}: {result.get('from', '?')} -> {result.get('to', '?')}.",
        )
        st.session_state["change_note"] = ""
    except AiopsError as e:
        st.session_state["change_flash"] = ("error", str(e))
    load_changes.clear()
    load_events.clear()
    load_failure_rate.clear()


st.title("Changes")
home = str(resolve_home().root)
flash = st.session_state.pop("change_flash", None)
if flash:
    (st.success if flash[0] == "success" else st.error)(flash[1])

c = st.columns([2, 3, 3, 3])
range_name = c[0].selectbox("Time range", list(RANGES), index=1)
now = utc_now().replace(second=0, microsecond=0)
since, until = now - timedelta(days=RANGES[range_name]), now + AHEAD
total, everything = load_changes(home, since, until, (), (), ())
if total == 0:
    st.info(
        "No changes recorded yet. `aiops changes add --service S --kind deploy --summary ...`, "
        "the gateway's admin endpoint (CI pipelines), config reloads and chaos drills fill this."
    )
    st.stop()

services = c[1].multiselect(
    "Service", sorted(set(everything["service"])), placeholder="any service"
)
kinds = c[2].multiselect("Kind", sorted(set(everything["kind"])), placeholder="any kind")
statuses = c[3].multiselect("Status", sorted(set(everything["status"])), placeholder="any status")
_, changes = load_changes(home, since, until, tuple(services), tuple(kinds), tuple(statuses))

m = st.columns(4)
m[0].metric("Changes in range", f"{changes.height:,}")
m[1].metric("Awaiting approval", f"{changes.filter(pl.col('status') == 'proposed').height:,}")
m[2].metric(
    "Implemented", f"{changes.filter(pl.col('status').is_in(['implemented', 'verified'])).height:,}"
)
m[3].metric("Rolled back", f"{changes.filter(pl.col('status') == 'rolled_back').height:,}")

if changes.is_empty():
    st.info("No change matches these filters in this range.")
    st.stop()

bars = changes.with_columns(
    start=pl.coalesce("window_start", "implemented_at", "ts"),
    end=pl.coalesce(
        "window_end", pl.coalesce("window_start", "implemented_at", "ts") + pl.duration(minutes=15)
    ),
)
timeline = px.timeline(
    bars.to_pandas(), x_start="start", x_end="end", y="service", color="kind",
    hover_data=["id", "status", "summary", "risk"], title="Change timeline",
)  # fmt: skip
timeline.add_vline(x=now, line_dash="dot", line_color="gray")
st.plotly_chart(timeline, width="stretch")

per_day = (
    changes.with_columns(day=pl.col("ts").dt.truncate("1d"))
    .group_by("day", "status")
    .len("changes")
    .sort("day")
)
st.plotly_chart(
    px.bar(per_day.to_pandas(), x="day", y="changes", color="status", title="Changes per day"),
    width="stretch",
)

st.subheader("Change list")
st.dataframe(changes, hide_index=True)

st.subheader("Change detail and lifecycle")
labels = {
    r["id"]: f"{r['id']} [{r['status']}] {r['service']}: {r['summary']}"
    for r in changes.iter_rows(named=True)
}
change_id = st.selectbox(
    "Change", list(labels), format_func=lambda i: labels.get(i, i), key="change_id"
)
row = changes.filter(pl.col("id") == change_id).row(0, named=True)
status = row["status"]
st.caption(
    f"status **{status}** · risk {row['risk'] or '-'} · type {row['change_type'] or '-'} · "
    f"requested by {row['requested_by'] or '-'} · approved by {row['approved_by'] or '-'}"
)
st.text_input("Note (optional)", key="change_note")
steps = data.change_steps()
buttons = (
    ("approve", "Approve"),
    ("implement", "Mark implemented"),
    ("rollback", "Roll back"),
    ("verify", "Verify"),
    ("cancel", "Cancel"),
)
for col, (action, label) in zip(st.columns(len(buttons)), buttons, strict=True):
    col.button(
        label,
        key=f"change_{action}",
        on_click=run_action,
        args=(home, change_id, action),
        disabled=action not in steps or status not in steps[action][1],
    )
events, trail = load_events(home, change_id)
left, right = st.columns(2)
with left:
    st.markdown("**Lifecycle events**")
    st.dataframe(events, hide_index=True)
with right:
    st.markdown("**Audit trail**")
    st.dataframe(trail, hide_index=True)

st.subheader("Change failure rate by service")
hours = st.slider("Incident within (hours) of the change", 1, 72, 24)
rate = load_failure_rate(home, since, now, float(hours))
if rate.is_empty():
    st.info("No implemented change in this range yet.")
else:
    st.plotly_chart(
        px.bar(rate.to_pandas(), x="service", y="failure_rate_pct", title="Change failure rate (%)",
               hover_data=["changes", "failed", "rolled_back"]),
        width="stretch",
    )  # fmt: skip
    st.dataframe(rate, hide_index=True)
