"""Services: the catalog (owner, tier, SLA target), who owns what, the dependency graph
(declared and observed), the monthly SLA report and recurring problems."""

from __future__ import annotations

from datetime import datetime

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from suite import dashboard_data as data
from suite.clock import utc_now
from suite.home import resolve_home


@st.cache_data(ttl=60, max_entries=4)
def load_catalog(home: str) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    with data.reader(home) as store:
        return (
            data.service_catalog(store),
            data.service_dependencies(store),
            data.problems_by_recurrence(store),
        )


@st.cache_data(ttl=300, max_entries=12)
def load_sla(home: str, month: datetime) -> pl.DataFrame:
    with data.reader(home) as store:
        return data.sla_report(store, month)


def dependency_figure(services: pl.DataFrame, deps: pl.DataFrame) -> go.Figure:
    nodes = sorted(
        set(services["service"].to_list() if services.height else [])
        | set(deps["service"].to_list())
        | set(deps["depends_on"].to_list())
    )
    pos = data.graph_layout(nodes)
    fig = go.Figure()
    for r in deps.iter_rows(named=True):
        (x0, y0), (x1, y1) = pos[r["service"]], pos[r["depends_on"]]
        observed = r["source"] != "config"
        fig.add_scatter(
            x=[x0, x1], y=[y0, y1], mode="lines", hoverinfo="skip", showlegend=False,
            line={"width": 1.5, "color": "#4c78a8" if observed else "#999",
                  "dash": "solid" if observed else "dash"},
        )  # fmt: skip
        # An arrow head at the dependency's end: caller -> callee.
        fig.add_annotation(
            x=x1, y=y1, ax=x0, ay=y0, xref="x", yref="y", axref="x", ayref="y",
            showarrow=True, arrowhead=3, arrowsize=1.2, arrowwidth=1.2, opacity=0.7, text="",
        )  # fmt: skip
    owners = (
        dict(zip(services["service"].to_list(), services["owner"].to_list(), strict=True))
        if services.height
        else {}
    )
    fig.add_scatter(
        x=[pos[n][0] for n in nodes], y=[pos[n][1] for n in nodes], mode="markers+text",
        text=nodes, textposition="top center", name="service",
        hovertext=[f"{n} (owner: {owners.get(n) or '-'})" for n in nodes], hoverinfo="text",
        marker={"size": 22, "color": "#f58518"},
    )  # fmt: skip
    fig.update_layout(
        title="Dependency graph", showlegend=False, height=520,
        xaxis={"visible": False}, yaxis={"visible": False, "scaleanchor": "x"},
    )  # fmt: skip
    return fig


st.title("Services")
home = str(resolve_home().root)
catalog, deps, problems = load_catalog(home)

if catalog.is_empty() and deps.is_empty():
    st.info(
        "No services in the catalog yet. The catalog job adds every gateway route as a "
        "service; owners, tiers, SLA targets and dependencies come from `[[services]]` in "
        "the config and from observed traffic."
    )
else:
    m = st.columns(4)
    m[0].metric("Services", f"{catalog.height}")
    m[1].metric("Owners", f"{catalog['owner'].drop_nulls().n_unique() if catalog.height else 0}")
    m[2].metric("Dependencies", f"{deps.height}")
    m[3].metric(
        "Open problems",
        f"{problems.filter(pl.col('status') != 'closed').height if problems.height else 0}",
    )
    st.subheader("Service catalog")
    st.dataframe(
        catalog,
        hide_index=True,
        column_config={"sla_target": st.column_config.NumberColumn("SLA target %", format="%.2f")},
    )
    if catalog.height:
        st.subheader("Owners")
        owners = (
            catalog.with_columns(pl.col("owner").fill_null("(no owner)"))
            .group_by("owner")
            .agg(pl.col("service").sort().str.join(", ").alias("services"), pl.len().alias("count"))
            .sort("count", descending=True)
        )
        st.dataframe(owners, hide_index=True)
    if deps.height:
        st.plotly_chart(dependency_figure(catalog, deps), width="stretch")
        st.caption("Solid blue: observed in traffic; dashed grey: declared in config.")
        st.dataframe(deps, hide_index=True)
    else:
        st.info(
            "No dependencies yet: declare `depends_on` in `[[services]]`, or let traffic with an `x-aiops-caller` header show them."
        )

st.subheader("SLA report")
now = utc_now()
months = []
for back in range(6):
    y, mo = divmod(now.year * 12 + now.month - 1 - back, 12)
    months.append(datetime(y, mo + 1, 1))
month = st.selectbox("Month", months, format_func=lambda d: d.strftime("%Y-%m"), key="sla_month")
report = load_sla(home, month)
if report.is_empty():
    st.info(
        f"No traffic rolled up in {month:%Y-%m}: the SLA report needs minute rollups (`aiops worker`)."
    )
else:
    st.dataframe(report, hide_index=True)
    if {"service", "availability_pct"} <= set(report.columns):
        fig = go.Figure()
        fig.add_bar(
            x=report["service"].to_list(),
            y=report["availability_pct"].to_list(),
            name="availability %",
        )
        if "sla_target" in report.columns:
            fig.add_scatter(
                x=report["service"].to_list(), y=report["sla_target"].to_list(),
                mode="markers", marker={"symbol": "line-ew-open", "size": 30, "color": "#e45756"},
                name="SLA target",
            )  # fmt: skip
        lo = float(report["availability_pct"].drop_nulls().min() or 0)
        fig.update_layout(
            title=f"Availability against SLA target, {month:%Y-%m}",
            yaxis={"range": [min(lo, 99.0) - 0.5, 100.05]},
        )
        st.plotly_chart(fig, width="stretch")
    st.caption(
        "Availability = share of calls not answered 5xx (gateway errors included), from the "
        "minute rollups; the same report as `aiops services sla`."
    )

st.subheader("Problems by recurrence")
if problems.is_empty():
    st.info(
        "No problems yet: an incident fingerprint that keeps recurring becomes a problem record."
    )
else:
    st.dataframe(problems, hide_index=True)
