"""Overview: golden signals per service for a chosen time range, and open incidents."""

from __future__ import annotations

from datetime import datetime, timedelta

import plotly.express as px
import polars as pl
import streamlit as st

from suite import dashboard_data as data
from suite.home import resolve_home
from suite.store import Store

RANGES = {"Last hour": 60, "Last 6 hours": 360, "Last 24 hours": 1440, "Last 7 days": 10080}


@st.cache_data(ttl=15, max_entries=8)
def load(
    home: str, minutes: int
) -> tuple[datetime | None, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    store = Store(home)
    _, last = data.data_span(store)
    if last is None:
        return None, pl.DataFrame(), pl.DataFrame(), data.open_incidents(store)
    until = last + timedelta(minutes=1)
    since = until - timedelta(minutes=minutes)
    bucket = max(1, minutes // 120)
    return (
        last,
        data.golden_signals(store, since, until),
        data.signal_series(store, since, until, bucket),
        data.open_incidents(store),
    )


st.title("Overview")
choice = st.segmented_control("Time range", list(RANGES), default="Last 24 hours")
# The home comes from $AIOPS_HOME (set by `aiops dashboard`); it keys the cache too.
home = str(resolve_home().root)
last, golden, series, incidents = load(home, RANGES[choice or "Last 24 hours"])

if last is None:
    st.info(
        "No data yet. Send traffic through `aiops gateway` and run `aiops worker`, "
        "or load the sample: `aiops sample-data` then `aiops worker --once`."
    )
    st.stop()

st.caption(f"Up to {last:%Y-%m-%d %H:%M} UTC (the latest rolled-up minute)")
total = int(golden["calls"].sum())
errors = float((golden["error_pct"] * golden["calls"]).sum() / max(total, 1))
cols = st.columns(4)
cols[0].metric("Calls", f"{total:,}")
cols[1].metric("Server errors", f"{errors:.2f}%")
cols[2].metric("Open incidents", f"{incidents.height}")
cols[3].metric("LLM spend", f"${float(golden['cost_usd'].fill_null(0).sum()):,.2f}")

st.subheader("Golden signals per service")
st.dataframe(
    golden,
    hide_index=True,
    column_config={
        "calls_per_min": st.column_config.NumberColumn("calls/min", format="%.1f"),
        "error_pct": st.column_config.NumberColumn("5xx %", format="%.2f"),
        "client_error_pct": st.column_config.NumberColumn("4xx %", format="%.2f"),
        "p95_ms": st.column_config.NumberColumn("p95 ms", format="%.0f"),
        "worst_p95_ms": st.column_config.NumberColumn("worst p95 ms", format="%.0f"),
        "cost_usd": st.column_config.NumberColumn("cost", format="$%.2f"),
    },
)

left, right = st.columns(2)
frame = series.to_pandas()
left.plotly_chart(
    px.line(frame, x="t", y="calls_per_min", color="service", title="Calls per minute"),
    use_container_width=True,
)
right.plotly_chart(
    px.line(frame, x="t", y="p95_ms", color="service", title="p95 latency (ms)", log_y=True),
    use_container_width=True,
)

st.subheader("Open incidents")
if incidents.is_empty():
    st.success("No open incidents.")
else:
    st.dataframe(incidents, hide_index=True)
