"""Traffic explorer: filter the recorded calls (pushed down into SQL), see rate, errors and
latency over time, a sample of matching calls, and one call in full."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from suite import dashboard_data as data
from suite.home import resolve_home


@st.cache_data(ttl=15, max_entries=4)
def load_latest(home: str) -> datetime | None:
    with data.reader(home) as store:
        return data.latest_request_ts(store)


@st.cache_data(ttl=60, max_entries=16)
def load_options(home: str, since: datetime, until: datetime) -> dict[str, list[str]]:
    with data.reader(home) as store:
        return data.filter_options(store, since, until)


@st.cache_data(ttl=15, max_entries=32)
def load_traffic(
    home: str, f: data.TrafficFilter, bucket: int
) -> tuple[str, dict[str, Any], pl.DataFrame, pl.DataFrame]:
    with data.reader(home) as store:
        return (
            data.traffic_source(store, f),
            data.traffic_totals(store, f),
            data.traffic_series(store, f, bucket),
            data.traffic_sample(store, f, 200),
        )


@st.cache_data(ttl=60, max_entries=32)
def load_request(home: str, request_id: str) -> dict[str, Any] | None:
    with data.reader(home) as store:
        return data.request_detail(store, request_id)


st.title("Traffic explorer")
home = str(resolve_home().root)
latest = load_latest(home)
if latest is None:
    st.info(
        "No data yet: no request recorded. Send traffic through `aiops gateway` and run "
        "`aiops worker` (it loads the spool into the store), or `aiops sample-data`."
    )
    st.stop()

c = st.columns([2, 3, 2, 2])
range_name = c[0].selectbox("Time range", list(data.TIME_RANGES), index=2)
minutes = data.TIME_RANGES[range_name]
until = latest.replace(second=0, microsecond=0) + timedelta(minutes=1)
since = until - timedelta(minutes=minutes)
options = load_options(home, since, until)
services = c[1].multiselect("Service", [*options["services"]], placeholder="all services")
statuses = c[2].multiselect("Status class", list(data.STATUS_CLASSES), placeholder="any")
kinds = c[3].multiselect("Kind", options["kinds"] or ["http", "llm", "mcp"], placeholder="any")
c = st.columns([2, 2, 2, 3])
models = c[0].multiselect("Model", options["models"], placeholder="any model")
tenants = c[1].multiselect("Tenant", options["tenants"], placeholder="any tenant")
keys = c[2].multiselect("Gateway key", options["keys"], placeholder="any key")
path = c[3].text_input("Path contains", placeholder="/claims/")

flt = data.TrafficFilter(
    since=since,
    until=until,
    services=tuple(services),
    status_classes=tuple(statuses),
    kinds=tuple(kinds),
    models=tuple(models),
    tenants=tuple(tenants),
    keys=tuple(keys),
    path_contains=path.strip(),
)
bucket = max(1, minutes // 120)
origin, totals, series, sample = load_traffic(home, flt, bucket)

source = (
    "minute rollups (exact counts; p95 = typical minute p95)"
    if origin == "rollups"
    else "recorded calls (p95 approximate)"
)
st.caption(
    f"{since:%Y-%m-%d %H:%M} to {until:%Y-%m-%d %H:%M} UTC, {bucket}-minute buckets; "
    f"totals and charts from the {source}."
)
m = st.columns(5)
calls = int(totals["calls"] or 0)
m[0].metric("Matching calls", f"{calls:,}")
m[1].metric("5xx / failed", f"{int(totals['errors_5xx'] or 0):,}")
m[2].metric("4xx", f"{int(totals['errors_4xx'] or 0):,}")
m[3].metric("p95 latency", "-" if totals["p95_ms"] is None else f"{totals['p95_ms']:,.0f} ms")
m[4].metric("Cost", f"${float(totals['cost_usd'] or 0):,.2f}")

if calls == 0:
    st.info(
        "No request matches these filters in this time range: widen the range or clear a filter."
    )
    st.stop()

frame = series.to_pandas()
left, right = st.columns(2)
rate = go.Figure()
rate.add_scatter(x=frame["t"], y=frame["calls_per_min"], name="calls/min", mode="lines")
rate.add_scatter(x=frame["t"], y=frame["errors_per_min"], name="5xx/min", mode="lines")
rate.add_scatter(x=frame["t"], y=frame["client_errors_per_min"], name="4xx/min", mode="lines")
rate.update_layout(title="Rate and errors per minute", hovermode="x unified")
left.plotly_chart(rate, width="stretch")
lat = go.Figure()
lat.add_scatter(x=frame["t"], y=frame["p50_ms"], name="p50", mode="lines")
lat.add_scatter(x=frame["t"], y=frame["p95_ms"], name="p95", mode="lines")
lat.update_layout(title="Latency (ms)", hovermode="x unified")
right.plotly_chart(lat, width="stretch")

st.subheader("Matching requests (newest 200)")
st.dataframe(
    sample,
    hide_index=True,
    column_config={
        "duration_ms": st.column_config.NumberColumn("duration ms", format="%.1f"),
        "cost_usd": st.column_config.NumberColumn("cost", format="$%.5f"),
    },
)

st.subheader("Request detail")
ids = sample["id"].to_list()
pick = st.selectbox("Request (from the sample)", ids, index=None, placeholder="choose a request")
typed = st.text_input("…or a request id", placeholder="gw1-123")
request_id = typed.strip() or pick
if request_id:
    row = load_request(home, request_id)
    if row is None:
        st.warning(f"No request with id {request_id!r}.")
    else:
        body = row.pop("body")
        fields = pl.DataFrame(
            {"field": list(row), "value": ["" if v is None else str(v) for v in row.values()]}
        ).filter(pl.col("value") != "")
        st.dataframe(fields, hide_index=True, width="stretch")
        if body is None:
            st.caption(
                "No body captured for this call (capture is off by default; set "
                "`capture_bodies` on the route)."
            )
        else:
            st.markdown(f"**Captured body** (policy `{body['policy']}`)")
            for side in ("request", "response"):
                headers = body.get(f"{side}_headers")
                with st.expander(f"{side.title()}: headers and body", expanded=side == "request"):
                    if headers:
                        try:
                            st.json(json.loads(headers))
                        except ValueError:
                            st.code(headers)
                    text = body.get(f"{side}_body")
                    if text:
                        st.code(text, language="json" if text.lstrip()[:1] in "[{" else None)
                    if body.get(f"{side}_truncated"):
                        st.caption("cut at max_body_bytes")
            if body.get("redactions"):
                st.caption(f"Redactions: {body['redactions']}")
