"""`aiops capacity ...`: run the forecast job now, show the latest forecasts against the
[[capacity]] limits, and plot one series. Thin: the work is in suite.forecast.

Only `forecast` writes (with an audit row); `show` and `plot` only read.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from suite.capacity_config import METRIC_NAMES
from suite.errors import AiopsError
from suite.home import resolve_home

if TYPE_CHECKING:
    import polars as pl

LATEST_RUN_SQL = """
SELECT * FROM forecast_runs
WHERE run_at = (SELECT max(run_at) FROM forecast_runs) {filter}
ORDER BY service, dimension, key,
         list_position(['rps', 'rps_peak', 'p95_ms', 'tokens', 'cost_usd'], metric)
"""


class CapacityUsageError(AiopsError):
    """A series or metric the latest forecast run does not have."""

    exit_code = 2


def latest_forecast_runs(
    store: Any, service: str | None = None, model: str | None = None
) -> pl.DataFrame:
    """forecast_runs rows of the newest run (optionally one service, one model on it)."""
    where, params = "", []
    if service is not None:
        where += " AND service = ?"
        params.append(service)
    if model is not None:
        where += " AND dimension = 'model' AND key = ?"
        params.append(model)
    df: pl.DataFrame = store.query(LATEST_RUN_SQL.format(filter=where), params)
    return df


# -- formatting -----------------------------------------------------------------------------
def _fmt_value(metric: str, value: float | None) -> str:
    if value is None:
        return "-"
    if metric in ("rps", "rps_peak"):
        return f"{value:,.2f} rps" if value < 100 else f"{value:,.0f} rps"
    if metric == "p95_ms":
        return f"{value:,.0f} ms"
    if metric == "tokens":
        return f"{_si(value)}/day"
    return f"${value:,.2f}/day"


def _fmt_limit(metric: str, value: float | None) -> str:
    if value is None:
        return "-"
    if metric == "tokens":
        return f"{_si(value)}/day"
    if metric == "cost_usd":
        return f"${value:,.0f}/month"
    return _fmt_value(metric, value)


def _si(value: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.1f}{unit}"
    return f"{value:.0f}"


def _fmt_hours(hours: float) -> str:
    return f"{hours:.0f} h" if hours < 48 else f"{hours / 24:.1f} d"


def format_time_to_limit(row: dict[str, Any]) -> str:
    crossing = row.get("crossing")
    if row.get("limit_value") is None:
        return "-"
    if crossing == "already_over":
        return "ALREADY OVER"
    if crossing == "forecast":
        text = f"{_fmt_hours(row['hours_to_limit'])} ({row['crosses_at']:%Y-%m-%d %H:00})"
    elif crossing == "extrapolated":
        text = f"~{_fmt_hours(row['hours_to_limit'])} (extrapolated)"
    elif crossing == "not_within_year":
        text = "> 1 year"
    else:
        return "unknown (no forecast)"
    up = row.get("upper_hours_to_limit")
    if up is not None and (row.get("hours_to_limit") is None or up < row["hours_to_limit"]):
        text += f"; 10% risk in {_fmt_hours(up)}"
    return text


# -- commands -------------------------------------------------------------------------------
def cmd_capacity_forecast(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from suite.audit import current_actor
    from suite.cli import _load_config
    from suite.forecast import run_forecast
    from suite.store import Store

    home = resolve_home(args.home)
    config = _load_config(args, home, required=False)
    stages = ["read", *METRIC_NAMES, "write"]
    console = Console(stderr=True)
    with Progress(
        TextColumn("[bold]forecast[/] {task.description:<10}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=not console.is_terminal,
    ) as progress:
        task = progress.add_task("start", total=len(stages))

        def step(name: str) -> None:
            done = stages.index(name) if name in stages else 0
            progress.update(task, description=name, completed=done)

        result = run_forecast(Store(home), config, progress=step, audit_actor=current_actor())
        progress.update(task, description="done", completed=len(stages))
    if args.json:
        out = {
            "run_at": result.run_at,
            "series": result.series,
            "forecasts": result.forecasts,
            "not_enough_history": result.not_enough_history,
            "rows": result.rows,
            "seconds": round(result.seconds, 3),
            "limits_crossed": result.limits_crossed,
        }
        sys.stdout.write(json.dumps([out], default=_json_value) + "\n")
    else:
        print(f"forecast: {result}")
        print("see `aiops capacity show` for the table")
    return 0


def cmd_capacity_show(args: argparse.Namespace) -> int:
    import polars as pl

    from suite.forecast import series_label
    from suite.store import Store

    df = latest_forecast_runs(Store(resolve_home(args.home)), args.service, args.model)
    if args.metric:
        df = df.filter(pl.col("metric") == args.metric)
    if args.service and df.is_empty():
        raise CapacityUsageError(
            f"--service {args.service}"
            + (f" --model {args.model}" if args.model else "")
            + ": no forecast for it in the latest run (see `aiops capacity show`)"
        )
    rows = df.to_dicts()
    if args.json:
        sys.stdout.write(json.dumps(rows, default=_json_value) + "\n")
        return 0
    if not rows:
        print("no forecasts yet: run `aiops capacity forecast` (or the worker's forecast job)")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"capacity forecast of {rows[0]['run_at']:%Y-%m-%d %H:%M} UTC "
        f"(history to {rows[0]['history_end']:%Y-%m-%d %H:00}; "
        "current/7 d/14 d: daily peak, or daily total for tokens and cost)",
    )
    for name, justify in (
        ("series", "left"),
        ("metric", "left"),
        ("current", "right"),
        ("in 7 days", "right"),
        ("in 14 days", "right"),
        ("limit", "right"),
        ("time to limit", "left"),
        ("MAPE", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        m = r["metric"]
        mape = "-" if r["mape_backtest"] is None else f"{r['mape_backtest']:.1%}"
        ttl = format_time_to_limit(r)
        if r["model"] == "none":
            ttl = r["note"] or "not enough history"
        style = "bold red" if r["crossing"] in ("already_over", "forecast") else None
        table.add_row(
            series_label(r["service"], r["dimension"], r["key"]),
            m,
            _fmt_value(m, r["current_value"]),
            _fmt_value(m, r["value_7d"]),
            _fmt_value(m, r["value_14d"]),
            _fmt_limit(m, r["limit_value"]),
            ttl,
            mape,
            style=style,
        )
    width = None if sys.stdout.isatty() else 10_000
    console = Console(width=width)
    console.print(table)
    # Notes (why there is no forecast, how far to trust one), each once with its series.
    by_note: dict[str, list[str]] = {}
    for r in rows:
        for note in (r["note"] or "").split("; "):
            if note:
                label = f"{series_label(r['service'], r['dimension'], r['key'])} {r['metric']}"
                by_note.setdefault(note, []).append(label)
    for note, labels in by_note.items():
        where = ", ".join(labels[:4]) + (f" and {len(labels) - 4} more" if len(labels) > 4 else "")
        console.print(f"note: {note} ({where})", highlight=False)
    return 0


def cmd_capacity_plot(args: argparse.Namespace) -> int:
    import plotly.graph_objects as go
    import polars as pl

    from suite.forecast import load_hourly, series_label
    from suite.store import Store

    store = Store(resolve_home(args.home))
    runs = latest_forecast_runs(store, args.service, args.model).filter(
        pl.col("metric") == args.metric
    )
    runs = runs.filter(pl.col("dimension") == ("model" if args.model else "service"))
    if runs.is_empty():
        raise CapacityUsageError(
            f"--service {args.service}"
            + (f" --model {args.model}" if args.model else "")
            + f" --metric {args.metric}: no such forecast in the latest run "
            "(see `aiops capacity show`)"
        )
    run = runs.row(0, named=True)
    key = (run["service"], run["dimension"], run["key"])
    fc = store.query(
        "SELECT ts, yhat, lower, upper FROM forecasts WHERE run_at = ? AND service = ? "
        "AND dimension = ? AND key = ? AND metric = ? ORDER BY ts",
        [run["run_at"], *key, args.metric],
    )
    end: datetime = run["history_end"]
    hist = load_hourly(store, end - timedelta(days=args.history_days), end, key).sort("hour")
    label = series_label(*key)
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(x=hist["hour"].to_list(), y=hist[args.metric].to_list(), name="history")
    )
    if not fc.is_empty():
        ts = fc["ts"].to_list()
        fig.add_trace(
            go.Scatter(
                x=ts + ts[::-1],
                y=fc["upper"].to_list() + fc["lower"].to_list()[::-1],
                fill="toself",
                fillcolor="rgba(99,110,250,0.2)",
                line={"width": 0},
                name=f"{run['interval']:.0%} band",
            )
        )
        fig.add_trace(go.Scatter(x=ts, y=fc["yhat"].to_list(), name="forecast"))
    limit = run["limit_value"]
    title = f"{label}: {args.metric} (model {run['model']}, MAPE "
    title += "n/a)" if run["mape_backtest"] is None else f"{run['mape_backtest']:.1%})"
    if limit is not None:
        if args.metric in ("tokens", "cost_usd"):
            # The limit is a daily or monthly total; hourly values are not comparable.
            title += f" - limit {_fmt_limit(args.metric, limit)}: {format_time_to_limit(run)}"
        else:
            fig.add_hline(y=limit, line_dash="dash", line_color="red", annotation_text="limit")
            title += f" - time to limit: {format_time_to_limit(run)}"
    fig.update_layout(title=title, xaxis_title="hour (UTC)", yaxis_title=args.metric)
    fig.write_html(args.output, include_plotlyjs=True)
    print(f"wrote {args.output}")
    return 0


def _json_value(value: object) -> object:
    isoformat = getattr(value, "isoformat", None)
    return isoformat() if callable(isoformat) else str(value)


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], home: argparse.ArgumentParser
) -> None:
    capacity = sub.add_parser(
        "capacity",
        help="capacity forecasts: run now, show against [[capacity]] limits, plot",
        description="Forecasts of request rate, p95 latency, tokens and cost per service and "
        "LLM model over the next 14 days (the worker's `forecast` job, hourly), with the "
        "time until each [[capacity]] limit is crossed. Each action takes --home DIR.",
    )
    csub = capacity.add_subparsers(dest="capacity", metavar="ACTION", required=True)
    p = csub.add_parser(
        "forecast",
        parents=[home],
        help="run the forecast job now",
        description="Run the forecast job now (as the worker does every "
        "forecast_interval_seconds) with the limits of the config; recorded in the audit log.",
    )
    p.add_argument(
        "--config", metavar="FILE", help="gateway TOML config (default: <home>/gateway.toml)"
    )
    p.add_argument("--json", action="store_true", help="a JSON array of one summary object")
    p.set_defaults(func=cmd_capacity_forecast)
    p = csub.add_parser(
        "show",
        parents=[home],
        help="the latest forecasts against the limits",
        description="The latest run: per series and metric the current value, the forecast "
        "in 7 and 14 days, the limit, the time to it and the back-test MAPE.",
    )
    p.add_argument("--service", metavar="S", help="only this service (a route name)")
    p.add_argument("--model", metavar="M", help="only this LLM model (with --service)")
    p.add_argument("--metric", choices=METRIC_NAMES, help="only this metric")
    p.add_argument("--json", action="store_true", help="one JSON array, one object per row")
    p.set_defaults(func=cmd_capacity_show)
    p = csub.add_parser(
        "plot",
        parents=[home],
        help="an HTML chart of one series: history, forecast, band, limit",
        description="Write a self-contained Plotly HTML chart of one series and metric.",
    )
    p.add_argument("--service", metavar="S", required=True, help="the service (a route name)")
    p.add_argument("--model", metavar="M", help="an LLM model on that service")
    p.add_argument("--metric", choices=METRIC_NAMES, default="rps", help="default rps")
    p.add_argument("--output", metavar="FILE", required=True, help="HTML file to write")
    p.add_argument(
        "--history-days", type=int, default=14, metavar="N", help="history shown (default 14)"
    )
    p.set_defaults(func=cmd_capacity_plot)
