"""Overview: golden signals per service for a chosen time range, open incidents, recent
changes, SLO status and LLM spend today; the tiles refresh themselves."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
import streamlit as st

from suite import dashboard_data as data
from suite.clock import utc_now
from suite.home import resolve_home

RANGES = {k: v for k, v in data.TIME_RANGES.items() if v <= 10080}


@st.cache_data(ttl=15, max_entries=8)
def load(
    home: str, minutes: int
) -> tuple[datetime | None, pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    with data.reader(home) as store:
        _, last = data.data_span(store)
        if last is None:
            return None, pl.DataFrame(), pl.DataFrame(), data.open_incidents(store)
        until = last + timedelta(minutes=1)
        since = until - timedelta(minutes=minutes)
        bucket = max(1, minutes // 120)
        golden = data.golden_signals(store, since, until).join(
            data.service_limit_use(store), on="service", how="left"
        )
        return (
            last,
            golden,
            data.signal_series(store, since, until, bucket),
            data.open_incidents(store),
        )


@st.cache_data(ttl=15, max_entries=8)
def load_side(home: str, today: datetime) -> tuple[pl.DataFrame, pl.DataFrame, float, int]:
    with data.reader(home) as store:
        usd, calls = data.llm_spend_since(store, today)
        return data.recent_changes(store, 10), data.slo_latest(store), usd, calls


st.title("Overview")
top = st.columns([3, 1])
with top[0]:
    choice = st.segmented_control("Time range", list(RANGES), default="Last 24 hours")
with top[1]:
    auto = st.toggle("Auto-refresh (30 s)", value=True)
# The home comes from $AIOPS_HOME (set by `aiops dashboard`); it keys the cache too.
home = str(resolve_home().root)


@st.fragment(run_every="30s" if auto else None)
def live_tiles() -> None:
    last, golden, series, incidents = load(home, RANGES[choice or "Last 24 hours"])
    today = utc_now().replace(hour=0, minute=0, second=0, microsecond=0)
    changes, slos, spend_today, llm_calls_today = load_side(home, today)

    if last is None:
        st.info(
            "No data yet. Send traffic through `aiops gateway` and run `aiops worker`, "
            "or load the sample: `aiops sample-data` then `aiops worker --once`."
        )
        return

    st.caption(f"Up to {last:%Y-%m-%d %H:%M} UTC (the latest rolled-up minute)")
    total = int(golden["calls"].sum()) if not golden.is_empty() else 0
    errors = float((golden["error_pct"] * golden["calls"]).sum() / max(total, 1))
    cols = st.columns(5)
    cols[0].metric("Calls", f"{total:,}")
    cols[1].metric("Server errors", f"{errors:.2f}%")
    cols[2].metric("Open incidents", f"{incidents.height}")
    cols[3].metric("LLM spend", f"${float(golden['cost_usd'].fill_null(0).sum()):,.2f}")
    cols[4].metric(
        "LLM spend today",
        f"${spend_today:,.2f}",
        help=f"{llm_calls_today:,} LLM calls since 00:00 UTC",
    )

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
            "in_flight": st.column_config.NumberColumn(
                "in flight (avg)",
                format="%.2f",
                help="saturation: average calls in flight (rate x mean latency)",
            ),
            "cost_usd": st.column_config.NumberColumn("cost", format="$%.2f"),
            "limit_use_pct": st.column_config.ProgressColumn(
                "max_rps used",
                min_value=0,
                max_value=100,
                format="%.0f%%",
                help="busiest minute against the [[capacity]] max_rps limit (forecast job)",
            ),
        },
    )

    left, mid, right = st.columns(3)
    left.plotly_chart(
        data.figure_by(series, "t", "calls_per_min", "service", "Calls per minute"),
        width="stretch",
    )
    mid.plotly_chart(
        data.figure_by(series, "t", "error_ratio", "service", "5xx error ratio"),
        width="stretch",
    )
    right.plotly_chart(
        data.figure_by(series, "t", "p95_ms", "service", "p95 latency (ms)", log_y=True),
        width="stretch",
    )

    st.subheader("Open incidents")
    if incidents.is_empty():
        st.success("No open incidents.")
    else:
        st.dataframe(incidents, hide_index=True)

    left, right = st.columns(2)
    with left:
        st.subheader("SLO status")
        if slos.is_empty():
            st.info(
                "No SLO evaluated yet: declare `[[slos]]` in the gateway config; the worker's slo job fills this."
            )
        else:
            st.dataframe(
                slos.select(
                    "slo", "service", "objective", "budget_remaining", "alert_level", "burn_1h"
                ),
                hide_index=True,
                column_config={
                    "budget_remaining": st.column_config.ProgressColumn(
                        "error budget left", min_value=0.0, max_value=1.0, format="percent"
                    )
                },
            )
    with right:
        st.subheader("Recent changes")
        if changes.is_empty():
            st.info(
                "No changes recorded yet: `aiops changes add`, config reloads and deploys fill this."
            )
        else:
            st.dataframe(changes, hide_index=True)


live_tiles()
