"""Capacity: the forecast job's latest forecasts with their bands against the configured
limits, time to each limit per service and model, and how far to trust them (MAPE)."""

from __future__ import annotations

from datetime import datetime, timedelta

import plotly.express as px
import plotly.graph_objects as go
import polars as pl
import streamlit as st

from suite import dashboard_data as data
from suite.home import resolve_home


@st.cache_data(ttl=60, max_entries=4)
def load_runs(home: str) -> pl.DataFrame:
    with data.reader(home) as store:
        return data.forecast_latest_runs(store)


@st.cache_data(ttl=60, max_entries=32)
def load_series(
    home: str, run_at: datetime, service: str, dimension: str, key: str, metric: str
) -> tuple[pl.DataFrame, pl.DataFrame]:
    with data.reader(home) as store:
        points = data.forecast_points(store, run_at, service, dimension, key, metric)
        history = data.metric_history_hourly(
            store, service, dimension, key, metric, run_at - timedelta(days=14)
        )
        return points, history


def series_name(r: dict[str, object]) -> str:
    who = r["service"] if r["dimension"] == "service" else f"{r['service']} / {r['key']}"
    return f"{who}: {r['metric']}"


st.title("Capacity")
home = str(resolve_home().root)
runs = load_runs(home)
if runs.is_empty():
    st.info(
        "No forecasts yet. Set limits in `[[capacity]]` (max_rps, max_p95_ms, "
        "token_quota_per_day, monthly_budget_usd) and let the worker's forecast job run: "
        "it needs a few days of minute rollups."
    )
    st.stop()

limited = runs.filter(pl.col("hours_to_limit").is_not_null())
m = st.columns(4)
m[0].metric("Series forecast", f"{runs.height:,}")
m[1].metric("Heading for a limit", f"{limited.height:,}")
m[2].metric(
    "Soonest limit",
    "-" if limited.is_empty() else f"{float(limited['days_to_limit'].min()):.1f} days",
)
mape = runs["mape_backtest"].drop_nulls()
m[3].metric("Median forecast error", "-" if mape.is_empty() else f"{float(mape.median()):.1%}")

st.subheader("Time to limit")
# The forecast job may record more about each run (current value, upper-band crossing,
# a note); show what is there, most useful first.
SHOWN = (
    "service", "dimension", "key", "metric", "limit_name", "limit_value", "current_value",
    "crosses_at", "days_to_limit", "upper_crosses_at", "mape_backtest", "model", "note", "run_at",
)  # fmt: skip
st.dataframe(
    runs.select([c for c in SHOWN if c in runs.columns]),
    hide_index=True,
    column_config={
        "days_to_limit": st.column_config.NumberColumn("days to limit", format="%.1f"),
        "mape_backtest": st.column_config.NumberColumn("MAPE (back-test)", format="%.3f"),
    },
)

rows = runs.to_dicts()
pick = st.selectbox(
    "Series", range(len(rows)), format_func=lambda i: series_name(rows[i]), key="forecast_series"
)
r = rows[pick]
points, history = load_series(
    home, r["run_at"], r["service"], r["dimension"], r["key"], r["metric"]
)
fig = go.Figure()
if points.height:
    fig.add_scatter(
        x=points["ts"].to_list() + points["ts"].to_list()[::-1],
        y=points["upper"].to_list() + points["lower"].to_list()[::-1],
        fill="toself", fillcolor="rgba(76,120,168,0.18)", line={"width": 0},
        name="prediction band", hoverinfo="skip",
    )  # fmt: skip
    fig.add_scatter(
        x=points["ts"].to_list(), y=points["yhat"].to_list(), name="forecast", mode="lines"
    )
if history.height:
    fig.add_scatter(
        x=history["ts"].to_list(), y=history["value"].to_list(), name="history (hourly)",
        mode="lines", line={"color": "#222"},
    )  # fmt: skip
if r["limit_value"] is not None:
    fig.add_hline(
        y=r["limit_value"], line_dash="dash", line_color="#e45756",
        annotation_text=f"limit {r['limit_name'] or ''} {r['limit_value']:g}",
    )  # fmt: skip
if r["crosses_at"] is not None:
    fig.add_vline(x=r["crosses_at"], line_dash="dot", line_color="#e45756")
fig.update_layout(title=f"Forecast: {series_name(r)}", hovermode="x unified")
st.plotly_chart(fig, width="stretch")
st.caption(
    f"Model {r['model']}, {r['history_points']:,} history points, {r['horizon_days']}-day "
    f"horizon, prediction band {r['interval']:g}. Back-test MAPE "
    + ("-" if r["mape_backtest"] is None else f"{r['mape_backtest']:.1%}")
    + "."
)

st.subheader("Forecast error")
err = runs.filter(pl.col("mape_backtest").is_not_null()).with_columns(
    series=pl.concat_str(["service", "key", "metric"], separator=" ")
)
if err.is_empty():
    st.info("No back-test error yet: it needs a week of history to test against.")
else:
    st.plotly_chart(
        px.bar(
            err.to_pandas(), x="series", y="mape_backtest", title="Forecast error (MAPE, back-test)"
        ),
        width="stretch",
    )
