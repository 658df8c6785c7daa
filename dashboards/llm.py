"""LLM usage and cost: spend by model, provider, tenant and key; tokens; time to first
token and tokens/s; cache hits; fallbacks; unpriced models; budget burn per key."""

from __future__ import annotations

from datetime import datetime, timedelta

import plotly.express as px
import polars as pl
import streamlit as st

from suite import dashboard_data as data
from suite.clock import utc_now
from suite.home import resolve_home


@st.cache_data(ttl=15, max_entries=4)
def load_latest(home: str) -> datetime | None:
    with data.reader(home) as store:
        return store.query("SELECT max(ts) FROM requests WHERE kind = 'llm'").item()


@st.cache_data(ttl=30, max_entries=16)
def load_usage(
    home: str, since: datetime, until: datetime, bucket: int
) -> tuple[dict[str, pl.DataFrame], pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    with data.reader(home) as store:
        by = data.llm_usage_by_all(store, since, until)
        return (
            by,
            data.llm_series(store, since, until, bucket),
            data.llm_unpriced_models(store, since, until),
            data.llm_fallback_chains(store, since, until),
        )


@st.cache_data(ttl=30, max_entries=4)
def load_budgets(home: str, now: datetime) -> tuple[bool, pl.DataFrame]:
    with data.reader(home) as store:
        return data.has_table(store, "api_keys"), data.key_budget_burn(store, now)


MONEY = st.column_config.NumberColumn("cost", format="$%.4f")
COLUMNS = {
    "cost_usd": MONEY,
    "ttft_p50_ms": st.column_config.NumberColumn("TTFT p50 ms", format="%.0f"),
    "ttft_p95_ms": st.column_config.NumberColumn("TTFT p95 ms", format="%.0f"),
    "tokens_per_s": st.column_config.NumberColumn("tokens/s", format="%.1f"),
}

st.title("LLM usage and cost")
home = str(resolve_home().root)
latest = load_latest(home)
if latest is None:
    st.info(
        "No data yet: no LLM call recorded. Route an LLM provider through the gateway "
        "(a route with `llm_provider`, or a known provider host) and run `aiops worker`."
    )
    st.stop()

range_name = st.selectbox("Time range", list(data.TIME_RANGES), index=2)
minutes = data.TIME_RANGES[range_name]
until = latest.replace(second=0, microsecond=0) + timedelta(minutes=1)
since = until - timedelta(minutes=minutes)
bucket = max(1, minutes // 120)
by, series, unpriced, fallbacks = load_usage(home, since, until, bucket)
models = by["model"]

calls = int(models["calls"].sum())
cost = float(models["cost_usd"].fill_null(0).sum())
tokens = int(
    models["prompt_tokens"].fill_null(0).sum() + models["completion_tokens"].fill_null(0).sum()
)
hits = int(models["cache_hits"].sum())
m = st.columns(6)
m[0].metric("LLM calls", f"{calls:,}")
m[1].metric("Spend", f"${cost:,.2f}")
m[2].metric("Tokens", f"{tokens:,}")
m[3].metric("Cache hits", f"{hits:,}", help=f"{100.0 * hits / max(calls, 1):.1f}% of calls")
m[4].metric("Fallbacks", f"{int(models['fallbacks'].sum()):,}")
m[5].metric("Unpriced calls", f"{int(models['unpriced_calls'].sum()):,}")

if not unpriced.is_empty():
    names = ", ".join(f"{r['provider']}/{r['model']}" for r in unpriced.iter_rows(named=True))
    st.warning(
        f"Unpriced models (cost unknown, not guessed): {names}. Add their prices to "
        "`<home>/llm_prices.csv`."
    )

left, right = st.columns(2)
left.plotly_chart(
    data.figure_by(series, "t", "cost_usd", "model", "Spend over time (USD)", kind="bar"),
    width="stretch",
)
right.plotly_chart(
    data.figure_by(series, "t", "tokens", "model", "Tokens over time", kind="bar"),
    width="stretch",
)

st.subheader("Spend and performance by dimension")
tabs = st.tabs(["By model", "By provider", "By tenant", "By key", "By route"])
for tab, dim in zip(tabs, data.LLM_DIMENSIONS, strict=True):
    with tab:
        table = by[dim]
        st.dataframe(table, hide_index=True, column_config=COLUMNS)
        if dim == "model" and table.height:
            perf = table.filter(
                pl.col("ttft_p95_ms").is_not_null() | pl.col("tokens_per_s").is_not_null()
            )
            if perf.height:
                st.plotly_chart(
                    px.scatter(
                        perf.to_pandas(),
                        x="ttft_p95_ms",
                        y="tokens_per_s",
                        size="calls",
                        color=dim,
                        title="TTFT p95 (ms) against tokens/s",
                    ),  # fmt: skip
                    width="stretch",
                )

st.subheader("Fallbacks")
if fallbacks.is_empty():
    st.info(
        "No fallback in this range: calls through `[[llm_aliases]]` record `fallback_chain` when a target fails over."
    )
else:
    st.dataframe(fallbacks, hide_index=True)

st.subheader("Budget burn per key")
# to the minute: a cache key that changes every run would re-run the month's scan
has_keys, budgets = load_budgets(home, utc_now().replace(second=0, microsecond=0))
if not has_keys or budgets.is_empty():
    st.info("No gateway keys yet: `aiops keys create --tenant T --budget-usd-day X` fills this.")
else:
    st.dataframe(
        budgets,
        hide_index=True,
        column_config={
            "spent_today_usd": st.column_config.NumberColumn("spent today", format="$%.4f"),
            "spent_month_usd": st.column_config.NumberColumn("spent this month", format="$%.4f"),
            "day_budget_used_pct": st.column_config.ProgressColumn(
                "day budget used", min_value=0, max_value=100, format="%.1f%%"
            ),
            "month_budget_used_pct": st.column_config.ProgressColumn(
                "month budget used", min_value=0, max_value=100, format="%.1f%%"
            ),
        },
    )
