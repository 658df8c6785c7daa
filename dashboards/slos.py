"""SLOs: each objective with its error budget left and its burn rates over the alert
windows, and the history the slo job recorded (budget and burn over time)."""

from __future__ import annotations

import polars as pl
import streamlit as st
from plotly.subplots import make_subplots

from suite import dashboard_data as data
from suite.home import resolve_home
from suite.slo import BURN_RULES

LEVEL_ICON = {"page": "🔴 page", "ticket": "🟠 ticket", "none": "🟢 ok"}


@st.cache_data(ttl=30, max_entries=4)
def load_latest(home: str) -> pl.DataFrame:
    with data.reader(home) as store:
        return data.slo_latest(store)


@st.cache_data(ttl=30, max_entries=16)
def load_history(home: str, slo: str) -> pl.DataFrame:
    with data.reader(home) as store:
        return data.slo_history(store, slo)


st.title("SLOs")
home = str(resolve_home().root)
latest = load_latest(home)
if latest.is_empty():
    st.info(
        "No SLO evaluated yet. Declare objectives in the gateway config (`[[slos]]` with "
        "name, service, objective, kind) and run `aiops worker`: its slo job records "
        "burn rates and budgets here every minute."
    )
    st.stop()

m = st.columns(3)
m[0].metric("SLOs", f"{latest.height}")
m[1].metric("Paging", f"{latest.filter(pl.col('alert_level') == 'page').height}")
m[2].metric("Budget exhausted", f"{latest.filter(pl.col('budget_remaining') <= 0).height}")

st.subheader("Objectives and error budgets")
st.dataframe(
    latest.with_columns(pl.col("alert_level").replace(LEVEL_ICON).alias("alert")).select(
        "slo",
        "service",
        "kind",
        "objective",
        "window_days",
        "budget_remaining",
        "alert",
        "events_window",
        "bad_events_window",
        "burn_window",
        "computed_at",
    ),  # fmt: skip
    hide_index=True,
    column_config={
        "objective": st.column_config.NumberColumn("objective %", format="%.3f"),
        "budget_remaining": st.column_config.ProgressColumn(
            "error budget left", min_value=0.0, max_value=1.0, format="percent"
        ),
        "burn_window": st.column_config.NumberColumn("burn (window)", format="%.2f"),
    },
)

st.subheader("Burn rates over the alert windows")
rules = ", ".join(
    f"{r.level} when {r.long_window} and {r.short_window} both burn ≥ {r.factor:g}x"
    for r in BURN_RULES
)
st.caption(f"Multi-window, multi-burn-rate alerts: {rules}.")
st.dataframe(
    latest.select("slo", "burn_5m", "burn_30m", "burn_1h", "burn_6h", "burn_3d", "alert_level"),
    hide_index=True,
    column_config={
        w: st.column_config.NumberColumn(w.replace("burn_", "burn "), format="%.2f")
        for w in ("burn_5m", "burn_30m", "burn_1h", "burn_6h", "burn_3d")
    },
)

slo = st.selectbox("SLO", latest["slo"].to_list(), key="slo_name")
hist = load_history(home, slo)
fig = make_subplots(
    rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
    subplot_titles=("Error budget left", "Burn rate"),
)  # fmt: skip
t = hist["computed_at"].to_list()
fig.add_scatter(x=t, y=hist["budget_remaining"].to_list(), name="budget left", row=1, col=1)
for w in ("burn_5m", "burn_1h", "burn_6h", "burn_3d"):
    fig.add_scatter(x=t, y=hist[w].to_list(), name=w, mode="lines", row=2, col=1)
for factor in sorted({r.factor for r in BURN_RULES}):
    fig.add_hline(y=factor, line_dash="dot", line_color="#e45756", row=2, col=1)
fig.update_layout(title=f"SLO history: {slo}", height=560, hovermode="x unified")
st.plotly_chart(fig, width="stretch")
