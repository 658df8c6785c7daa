"""Gateway: the configured routes and each upstream's health from recent calls, the gateway
processes' spool counters, keys (never a secret) with their limits and usage, route
versions in use, and active chaos drills."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import plotly.express as px
import polars as pl
import streamlit as st

from suite import dashboard_data as data
from suite.clock import utc_now
from suite.config import load_gateway_config
from suite.errors import AiopsError
from suite.home import resolve_home

WINDOWS = {"Last 15 minutes": 15, "Last hour": 60, "Last 24 hours": 1440}


@st.cache_data(ttl=30, max_entries=4)
def load_config(path: str, mtime: float) -> tuple[list[dict[str, Any]], str | None]:
    try:
        config = load_gateway_config(path, missing_ok=True)
    except AiopsError as e:
        return [], str(e)
    return data.route_rows(config), None


@st.cache_data(ttl=15, max_entries=8)
def load_health(home: str, minutes: int) -> tuple[datetime | None, pl.DataFrame, pl.DataFrame]:
    with data.reader(home) as store:
        latest = data.latest_request_ts(store)
        if latest is None:
            return None, pl.DataFrame(), pl.DataFrame()
        until = latest.replace(second=0, microsecond=0) + timedelta(minutes=1)
        since = until - timedelta(minutes=minutes)
        return (
            latest,
            data.upstream_health(store, since, until),
            data.route_version_usage(store, since, until),
        )


@st.cache_data(ttl=15, max_entries=4)
def load_keys(home: str, now: datetime) -> tuple[bool, pl.DataFrame, pl.DataFrame]:
    with data.reader(home) as store:
        return (
            data.has_table(store, "api_keys"),
            data.gateway_keys(store, now),
            data.chaos_changes(store),
        )


def as_time(seconds: object) -> str:
    if not isinstance(seconds, int | float):
        return "-"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")


st.title("Gateway")
home_obj = resolve_home()
home = str(home_obj.root)

st.subheader("Routes")
path_text = st.text_input(
    "Gateway config", value=str(home_obj.gateway_config), key="gateway_config_path"
)
cfg = Path(path_text)
routes, problem = load_config(str(cfg), cfg.stat().st_mtime if cfg.exists() else 0.0)
if problem:
    st.error(f"The gateway config has problems:\n\n{problem}")
elif not routes:
    st.info(
        f"No routes: {cfg} does not exist or declares none. Write a gateway config "
        "(`[[routes]]` with name, prefix, upstreams) and start `aiops gateway --config FILE`."
    )
else:
    st.dataframe(pl.DataFrame(routes, infer_schema_length=None), hide_index=True)

st.subheader("Upstream health")
window = st.segmented_control("Window", list(WINDOWS), default="Last hour", key="health_window")
latest, health, versions = load_health(home, WINDOWS[window or "Last hour"])
if latest is None:
    st.info(
        "No data yet: no call recorded. Health comes from the calls the gateway records (`aiops worker` loads them)."
    )
else:
    configured = {
        (r["name"], u.strip())
        for r in routes
        for u in (r.get("upstreams") or "").split(",")
        if u.strip()
    }
    seen = set(zip(health["route"].to_list(), health["upstream"].to_list(), strict=True))
    quiet = sorted(configured - seen)
    if quiet:
        health = pl.concat(
            [
                health,
                pl.DataFrame(
                    {
                        "route": [q[0] for q in quiet],
                        "upstream": [q[1] for q in quiet],
                        "calls": [0] * len(quiet),
                    },
                    schema_overrides={"calls": health.schema["calls"]},
                ),
            ],
            how="diagonal_relaxed",
        )
    st.caption(
        f"Calls up to {latest:%Y-%m-%d %H:%M:%S} UTC; upstreams with no call in the window show 0."
    )
    st.dataframe(
        health,
        hide_index=True,
        column_config={
            "calls_per_min": st.column_config.NumberColumn("calls/min", format="%.1f"),
            "error_pct": st.column_config.NumberColumn("5xx %", format="%.2f"),
            "p95_ms": st.column_config.NumberColumn("p95 ms", format="%.0f"),
        },
    )
    busy = health.filter(pl.col("calls") > 0)
    if busy.height:
        st.plotly_chart(
            px.bar(
                busy.to_pandas(),
                x="upstream",
                y="p95_ms",
                color="route",
                hover_data=["calls", "error_pct"],
                title="Upstream p95 latency (ms)",
            ),  # fmt: skip
            width="stretch",
        )

procs = data.gateway_processes(home_obj.run_dir)
if procs:
    st.subheader("Gateway processes")
    frame = pl.DataFrame(procs, infer_schema_length=None).with_columns(
        pl.col(c).map_elements(as_time, return_dtype=pl.String)
        for c in ("started_at", "updated_at")
        if c in procs[0]
    )
    st.dataframe(frame, hide_index=True)

st.subheader("Gateway keys")
# to the minute, so reruns within it hit the cache
has_keys, keys, chaos_rows = load_keys(home, utc_now().replace(second=0, microsecond=0))
if not has_keys or keys.is_empty():
    st.info(
        "No gateway keys yet: `aiops keys create --tenant T [--rpm N] [--budget-usd-day X]` creates one (the key is printed once; only a salted hash is stored)."
    )
else:
    st.caption(
        "Key ids, prefixes and limits only: the secret is never stored, its hash never shown."
    )
    st.dataframe(keys, hide_index=True)

if versions.height:
    st.subheader("Route versions in use")
    st.dataframe(versions, hide_index=True)

st.subheader("Chaos drills")
now = time.time()
drills = [
    d
    for d in data.chaos_drills(home_obj.run_dir)
    if not isinstance(d.get("expires_at"), int | float) or d["expires_at"] > now
]
if drills:
    st.warning(f"{len(drills)} active chaos drill(s): faults are being injected on purpose.")
    st.dataframe(
        pl.DataFrame(
            [
                {
                    **d,
                    "started_at": as_time(d.get("started_at")),
                    "expires_at": as_time(d.get("expires_at")),
                }
                for d in drills
            ],
            infer_schema_length=None,
        ),
        hide_index=True,
    )
else:
    st.info(
        "No active chaos drill. `aiops chaos start --route R --error-rate 0.2 --for 10m` rehearses a failure."
    )
if chaos_rows.height:
    st.markdown("**Recent drills (changes of kind chaos)**")
    st.dataframe(chaos_rows, hide_index=True)
