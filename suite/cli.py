"""The `aiops` command line: thin argument parsing over functions in `suite`.

Every subcommand takes `--home`; errors print one readable message and exit non-zero.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

from suite.config import GatewayConfig, load_gateway_config
from suite.errors import AiopsError, ConfigError, UsageError
from suite.home import Home, resolve_home
from suite.logs import setup_logging

EXAMPLE_CONFIG = """\
[[routes]]
name = "claims-api"
prefix = "/claims"
upstreams = ["http://127.0.0.1:9001"]
"""


def _home_parent() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "--home",
        metavar="DIR",
        help="suite home directory (default: $AIOPS_HOME, else ~/.aiops)",
    )
    return p


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config", metavar="FILE", help="gateway TOML config (default: <home>/gateway.toml)"
    )


def _load_config(args: argparse.Namespace, home: Home, *, required: bool) -> GatewayConfig:
    if args.config:
        return load_gateway_config(args.config)
    path = home.gateway_config
    if not path.exists() and required:
        raise ConfigError(
            f"{path}: file not found. Pass --config FILE, or create it, for example:\n\n"
            + EXAMPLE_CONFIG
        )
    return load_gateway_config(path, missing_ok=True)


# -- subcommands --------------------------------------------------------------------------
def cmd_gateway(args: argparse.Namespace) -> int:
    from suite.gateway import run_gateway

    home = resolve_home(args.home)
    if args.action == "reload":  # [ops]
        from suite.config_reload import report_reload, request_reload

        return report_reload(request_reload(home))
    config = _load_config(args, home, required=True)
    mode = args.mode or config.gateway.mode
    if mode == "reverse" and not config.routes:
        raise ConfigError(
            f"{config.path}: routes: reverse mode needs at least one [[routes]] entry"
        )
    listen_host = args.listen_host or config.gateway.listen_host
    listen_port = args.listen_port if args.listen_port is not None else config.gateway.listen_port
    if args.admin_port is not None:  # [changes] the admin endpoint's port, over the config's
        from suite.admin_server import with_admin_port

        config = with_admin_port(config, args.admin_port)
    if args.processes < 1:
        raise ConfigError(f"--processes: must be at least 1, got {args.processes}")
    if args.processes > 1:
        from suite.gateway import ensure_ca, free_tcp_port, run_gateway_processes

        # Every process must bind the same port, so "any free port" is chosen here once.
        port = listen_port or free_tcp_port(listen_host)
        # Made once here, so the processes do not race to create different CAs.
        ensure_ca(home.ensure())
        child = ["gateway", "--home", str(home.root), "--config", str(config.path)]
        child += ["--listen-host", listen_host, "--listen-port", str(port), "--mode", mode]
        # [changes] the admin endpoint: only process 0 serves it (AIOPS_GATEWAY_INDEX).
        child += ["--admin-port", str(config.changes.admin_port)]
        return run_gateway_processes([*child, "--reuse-port"], args.processes)
    return run_gateway(
        config,
        home,
        listen_host=listen_host,
        listen_port=listen_port,
        mode=mode,
        reuse_port=args.reuse_port,
    )


def cmd_worker(args: argparse.Namespace) -> int:
    from suite.store import Store
    from suite.worker import JOBS, run_jobs_once, run_scheduler

    home = resolve_home(args.home).ensure()
    setup_logging(home, "worker", quiet=("apscheduler",))
    config = _load_config(args, home, required=False)
    store = Store(home)
    if args.once:
        results = run_jobs_once(store, config)
        failed = [name for name, r in results.items() if isinstance(r, Exception)]
        for job in JOBS:
            r = results[job.name]
            print(f"{job.name}: {'FAILED: ' + str(r) if isinstance(r, Exception) else _summary(r)}")
        return 1 if failed else 0
    return run_scheduler(store, config)


def _summary(result: object) -> str:
    from suite.ingest import IngestResult
    from suite.rollup import RollupResult

    if isinstance(result, RollupResult):
        return f"{result.minutes} minutes recomputed ({result.rows} rows) in {result.seconds:.2f} s"
    if isinstance(result, IngestResult):
        q = f", {len(result.quarantined)} quarantined" if result.quarantined else ""
        return (
            f"{result.rows} rows from {result.segments} segments in {result.seconds:.2f} s"
            f" ({result.skipped_already_loaded} already loaded{q})"
        )
    return str(result)


def cmd_sample_data(args: argparse.Namespace) -> int:
    from suite.sample_data import generate, load_into_store, write_sample_files

    requests, faults = generate(
        args.days, args.seed, end=args.end, rate=args.rate, faults_per_day=args.faults_per_day
    )
    if args.out_dir:
        write_sample_files(requests, faults, Path(args.out_dir))
        where = args.out_dir
    else:
        from suite.store import Store

        store = Store(resolve_home(args.home))
        load_into_store(store, requests, faults)
        where = str(store.path)
    print(
        f"sample data: {requests.num_rows:,} requests over {args.days:g} days, "
        f"{len(faults)} labelled fault{'s' if len(faults) != 1 else ''} -> {where}"
    )
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    from suite.store import Store

    store = Store(resolve_home(args.home))
    df = store.query(args.sql)
    if args.format == "json":
        sys.stdout.write(json.dumps(df.to_dicts(), default=_json_value))
        sys.stdout.write("\n")
    elif args.format == "csv":
        sys.stdout.write(df.write_csv())
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(show_lines=False)
        for name in df.columns:
            table.add_column(name)
        for row in df.iter_rows():
            table.add_row(*("NULL" if v is None else str(v) for v in row))
        # Piped output is not cut to 80 columns: nobody can widen a pipe.
        width = None if sys.stdout.isatty() else 10_000
        Console(width=width).print(table)
        print(f"{df.height} row{'s' if df.height != 1 else ''}")
    return 0


def _json_value(value: object) -> object:
    if isinstance(value, Decimal):  # sum() of integers is HUGEINT/DECIMAL in DuckDB
        return int(value) if value == value.to_integral_value() else float(value)
    isoformat = getattr(value, "isoformat", None)
    return isoformat() if callable(isoformat) else str(value)


def cmd_dashboard(args: argparse.Namespace) -> int:
    import os

    app = Path(__file__).resolve().parents[1] / "dashboards" / "app.py"
    if not app.is_file():
        raise AiopsError(f"{app}: the dashboard app is missing (run from a source checkout)")
    home = resolve_home(args.home).ensure()
    print(f"aiops dashboard on http://{args.host}:{args.port} (home {home.root})", flush=True)
    argv = [sys.executable, "-m", "streamlit", "run", str(app),
            "--server.address", args.host, "--server.port", str(args.port),
            "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--client.toolbarMode", "viewer"]  # fmt: skip
    os.environ["AIOPS_HOME"] = str(home.root)
    # Become the Streamlit server, so Ctrl-C and SIGTERM reach it directly.
    os.execv(sys.executable, argv)


def cmd_demo(args: argparse.Namespace) -> int:
    from suite.demo import run_demo

    if args.minutes <= 0:
        raise ConfigError(f"--minutes: {args.minutes} must be more than 0")
    if args.minutes <= 0 or args.rate <= 0:
        raise UsageError("--minutes and --rate must be positive")
    return run_demo(
        resolve_home(args.home),
        minutes=args.minutes,
        headless=args.headless,
        rate=args.rate,
        dashboard_port=args.dashboard_port,
        summary_json=args.summary_json,
    )


def cmd_bench_nab(args: argparse.Namespace) -> int:
    from suite.nab import bench_nab, bench_table, check_nab_dir

    check_nab_dir(args.nab_dir)  # a bad corpus path fails before anything runs
    results_dir = args.results_dir or resolve_home(args.home).root / "nab_results"
    result = bench_nab(
        args.nab_dir,
        args.detector,
        results_dir,
        score_only=args.score_only,
        use_published_thresholds=args.published_thresholds,
        progress=sys.stderr.isatty(),
    )
    if args.json:
        sys.stdout.write(json.dumps(result.rows()) + "\n")
    else:
        from rich.console import Console

        Console(width=None if sys.stdout.isatty() else 10_000).print(bench_table(result))
    return 0


def cmd_silences_add(args: argparse.Namespace) -> int:
    from suite.notify import add_silence, parse_duration
    from suite.store import Store

    duration = parse_duration(args.duration)
    store = Store(resolve_home(args.home))
    sid = add_silence(
        store,
        service=args.service,
        signal=args.signal,
        duration=duration,
        reason=args.reason,
        created_by=args.created_by,
    )
    print(f"silence {sid}: {args.service} / {args.signal} for {args.duration}")
    return 0


def cmd_silences_list(args: argparse.Namespace) -> int:
    from suite.notify import list_silences
    from suite.store import Store

    rows = list_silences(Store(resolve_home(args.home)), include_expired=args.all)
    if args.json:
        sys.stdout.write(json.dumps(rows, default=_json_value) + "\n")
        return 0
    if not rows:
        print("no active silences" if not args.all else "no silences")
    for r in rows:
        state = "" if r["active"] else " (expired)"
        print(
            f"{r['id']:>4}  {r['service']} / {r['signal']}  until {r['expires_at']:%Y-%m-%d %H:%M} "
            f"UTC{state}  by {r['created_by']}: {r['reason']}"
        )
    return 0


def cmd_silences_expire(args: argparse.Namespace) -> int:
    from suite.notify import expire_silence
    from suite.store import Store

    expire_silence(Store(resolve_home(args.home)), args.id)
    print(f"silence {args.id} expired")
    return 0


def cmd_incidents_list(args: argparse.Namespace) -> int:
    from suite.incidents import list_incidents
    from suite.store import Store

    df = list_incidents(Store(resolve_home(args.home)), status=args.status)
    if args.json:
        sys.stdout.write(json.dumps(df.to_dicts(), default=_json_value) + "\n")
        return 0
    if df.is_empty():
        print(f"no {args.status} incidents" if args.status else "no incidents")
        return 0
    for r in df.iter_rows(named=True):
        who = f"  @{r['assignee']}" if r["assignee"] else ""
        print(
            f"{r['id']:>5}  {r['severity']:<8} {r['status']:<12} {r['opened_at']:%Y-%m-%d %H:%M}  "
            f"x{r['anomaly_count']:<4} {r['title']}{who}"
        )
    return 0


def cmd_incidents_show(args: argparse.Namespace) -> int:
    from suite.incidents import get_incident
    from suite.store import Store

    store = Store(resolve_home(args.home))
    inc = get_incident(store, args.id)
    from suite.changes import suspects  # [changes] suspect changes

    inc["suspects"] = suspects(store, args.id).to_dicts()
    if args.json:
        sys.stdout.write(json.dumps([inc], default=_json_value) + "\n")
        return 0
    print(f"incident {inc['id']}: {inc['title']}")
    for key in (
        "status", "severity", "service", "signal", "signals", "source", "assignee",
        "opened_at", "acknowledged_at", "resolved_at", "last_seen_at", "anomaly_count",
        "reopened_count", "fingerprint",
    ):  # fmt: skip
        value = inc[key]
        if isinstance(value, list):
            value = ", ".join(value)
        print(f"  {key + ':':<17}{'-' if value is None else value}")
    print("events:")
    for e in inc["events"]:
        detail = f": {e['detail']}" if e["detail"] else ""
        print(f"  {e['ts']:%Y-%m-%d %H:%M:%S}  {e['kind']:<13} {e['actor']}{detail}")
    from suite.cli_changes import print_suspects  # [changes] suspect changes

    print("suspect changes (most likely first):")
    print_suspects(inc["suspects"])
    return 0


def cmd_incidents_change(args: argparse.Namespace) -> int:
    from suite import incidents
    from suite.store import Store

    store = Store(resolve_home(args.home))
    actor = args.actor or incidents.default_actor()
    if args.incidents == "ack":
        incidents.acknowledge(store, args.id, actor, source="cli")
        print(f"incident {args.id} acknowledged by {actor}")
    elif args.incidents == "resolve":
        incidents.resolve(store, args.id, actor, note=args.note, source="cli")
        print(f"incident {args.id} resolved by {actor}")
    elif args.incidents == "note":
        incidents.add_note(store, args.id, actor, args.text, source="cli")
        print(f"note added to incident {args.id}")
    elif args.incidents == "assign":
        incidents.assign(store, args.id, actor, args.user, source="cli")
        print(f"incident {args.id} assigned to {args.user}")
    return 0


def _incidents_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], home: argparse.ArgumentParser
) -> None:
    incidents = sub.add_parser(
        "incidents",
        help="list, show, acknowledge, resolve, annotate and assign incidents",
        description="Incidents opened by the detect and SLO jobs. Each action takes "
        "--home DIR after its name. An unknown id or a step the lifecycle does not allow "
        "(open -> acknowledged -> resolved) exits with status 2.",
    )
    isub = incidents.add_subparsers(dest="incidents", metavar="ACTION", required=True)
    p = isub.add_parser(
        "list",
        parents=[home],
        help="list incidents, newest first",
        description="List incidents, newest first.",
    )
    p.add_argument("--status", choices=["open", "acknowledged", "resolved"], help="only these")
    p.add_argument("--json", action="store_true", help="one JSON array, one object per incident")
    p.set_defaults(func=cmd_incidents_list)
    p = isub.add_parser(
        "show",
        parents=[home],
        help="one incident with its events",
        description="Show one incident and its events (opened, anomalies, acks, notes...).",
    )
    p.add_argument("id", type=int, help="incident id (see `aiops incidents list`)")
    p.add_argument(
        "--json", action="store_true", help="a JSON array of one object, events under 'events'"
    )
    p.set_defaults(func=cmd_incidents_show)
    actor_help = "who does it (default: $AIOPS_USER, else the OS user)"
    for name, help_text in (
        ("ack", "acknowledge an open incident (you become the assignee if none is set)"),
        ("resolve", "resolve an open or acknowledged incident"),
        ("note", "add a note to an incident"),
        ("assign", "assign an incident to someone"),
    ):
        p = isub.add_parser(name, parents=[home], help=help_text, description=help_text + ".")
        p.add_argument("id", type=int, help="incident id (see `aiops incidents list`)")
        if name == "resolve":
            p.add_argument("--note", metavar="T", help="why, or what fixed it")
        elif name == "note":
            p.add_argument("text", help="the note")
        elif name == "assign":
            p.add_argument("user", help="who takes it")
        p.add_argument("--actor", metavar="USER", help=actor_help)
        p.set_defaults(func=cmd_incidents_change)


def cmd_detect_series(args: argparse.Namespace) -> int:
    from suite.detect.series import detect_csv

    summary = detect_csv(args.input, args.output, args.detector)
    print(
        f"{summary.rows} points scored with {summary.detector!r} (threshold "
        f"{summary.threshold:g}): {summary.anomalies} anomalous, max score "
        f"{summary.max_score:.3f}; wrote {summary.output}"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    home = _home_parent()
    parser = argparse.ArgumentParser(
        prog="aiops",
        description="AIOps Suite: a recording gateway for API, LLM and MCP traffic, "
        "a DuckDB store, scheduled jobs and dashboards.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "gateway",
        parents=[home],
        help="run the gateway (reverse proxy per route, or an HTTP(S) proxy)",
        description="Run the gateway in the foreground. Every call is recorded to <home>/spool; "
        "`aiops worker` loads it into DuckDB. Stop with Ctrl-C (records are flushed).",
    )
    _config_arg(p)
    p.add_argument("--listen-host", metavar="H", help="address to bind (default 127.0.0.1)")
    p.add_argument(
        "--listen-port",
        metavar="P",
        type=int,
        help="port to bind (default 8080; 0 = any free port)",
    )
    p.add_argument(
        "--mode",
        choices=["reverse", "regular"],
        help="reverse: route by path prefix (default); regular: an explicit HTTP(S)_PROXY "
        "with the CA in <home>/certs",
    )
    p.add_argument(
        "--processes",
        metavar="N",
        type=int,
        default=1,
        help="run N gateway processes on the same port (one per core; the kernel spreads "
        "connections over them, all record to the same spool; default 1)",
    )
    p.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    p.add_argument(  # [changes]
        "--admin-port",
        metavar="P",
        type=int,
        help="serve the admin endpoint (POST /changes, GET /healthz) on this port of the "
        "listen host (default [gateway] admin_port; 0 = off)",
    )
    # [ops] `aiops gateway reload`: the running gateways re-read their config file.
    p.add_argument(
        "action",
        nargs="?",
        choices=["reload"],
        help="reload: make the gateways running under --home re-read and apply their config "
        "file without dropping connections (exit 2 and the reason if it is refused)",
    )
    p.set_defaults(func=cmd_gateway)

    p = sub.add_parser(
        "worker",
        parents=[home],
        help="run the scheduled jobs (ingest, rollup)",
        description="Run the scheduled jobs until stopped, or each job once with --once.",
    )
    _config_arg(p)
    p.add_argument("--once", action="store_true", help="run every job once and exit")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser(
        "sample-data",
        parents=[home],
        help="generate realistic request history with labelled faults",
        description="Generate requests (daily and weekly cycle, several services, LLM and MCP "
        "calls, labelled faults), deterministic by seed, into the home's store (then `aiops "
        "worker --once` rolls them up) or into Parquet/CSV files with --out-dir.",
    )
    from suite.sample_data import add_arguments as add_sample_arguments

    add_sample_arguments(p)
    p.set_defaults(func=cmd_sample_data)

    p = sub.add_parser(
        "query",
        parents=[home],
        help="run read-only SQL against the store",
        description="Run read-only SQL against <home>/suite.duckdb. Tables: requests, "
        "request_bodies, metrics_1m, ingested_segments, schema_migrations.",
    )
    p.add_argument("sql", help='SQL, e.g. "SELECT route, count(*) FROM requests GROUP BY 1"')
    p.add_argument(
        "--format", choices=["table", "csv", "json"], default="table", help="output format"
    )
    p.set_defaults(func=cmd_query)
    p = sub.add_parser(
        "dashboard",
        parents=[home],
        help="run the Streamlit dashboards on the home's data",
        description="Serve the dashboards (Streamlit) for the home's store. Bound to 127.0.0.1 "
        "unless --host says otherwise. Stop with Ctrl-C.",
    )
    p.add_argument("--port", type=int, default=8501, help="port (default 8501)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.set_defaults(func=cmd_dashboard)

    p = sub.add_parser(
        "demo",
        parents=[home],
        help="run the whole loop locally: emulated upstreams, gateway, worker, traffic",
        description="Start emulated insurance APIs, LLM providers and MCP tools, the gateway, "
        "the worker and the dashboard; send realistic traffic; seed 14 days of history; run a "
        "chaos drill that opens an incident which resolves when the drill ends. --headless "
        "skips the dashboard and waits (up to 6 more minutes) for that incident to resolve, "
        "then prints a summary. Ctrl-C stops everything cleanly.",
    )
    p.add_argument(
        "--minutes", type=float, default=2.0, help="how long to send traffic (default 2)"
    )
    p.add_argument("--headless", action="store_true", help="no dashboard; print a summary (for CI)")
    p.add_argument("--rate", type=float, default=6.0, help="calls per second to send (default 6)")
    p.add_argument("--dashboard-port", type=int, default=8501, help="dashboard port (default 8501)")
    p.add_argument(
        "--summary-json", type=Path, metavar="FILE", help="also write the summary as JSON"
    )
    p.set_defaults(func=cmd_demo)

    bench = sub.add_parser(
        "bench",
        help="benchmarks (nab: the Numenta Anomaly Benchmark)",
        description="Benchmarks against public reference data.",
    )
    bench_sub = bench.add_subparsers(dest="bench", metavar="BENCHMARK", required=True)
    p = bench_sub.add_parser(
        "nab",
        parents=[home],
        help="run a detector over the NAB corpus and score it NAB's way",
        description="Run a detector over the 58 NAB series (fresh detector per file), write "
        "NAB-format results, optimise the threshold per profile over the corpus and print the "
        "normalised scores next to the published scoreboard.",
    )
    p.add_argument("--nab-dir", required=True, metavar="DIR", help="a numenta/NAB checkout")
    p.add_argument(
        "--detector", default="default", metavar="NAME", help="detector name (default: default)"
    )
    p.add_argument(
        "--results-dir",
        metavar="OUT",
        help="where results files go, <OUT>/<detector>/<category>/ (default: <home>/nab_results)",
    )
    p.add_argument(
        "--score-only",
        action="store_true",
        help="do not run the detector; score the results already in --results-dir "
        "(e.g. --results-dir NAB/results --detector numenta)",
    )
    p.add_argument(
        "--published-thresholds",
        action="store_true",
        help="score at the thresholds in <nab-dir>/config/thresholds.json instead of optimising",
    )
    p.add_argument("--json", action="store_true", help="one JSON array, one object per profile")
    p.set_defaults(func=cmd_bench_nab)

    silences = sub.add_parser(
        "silences",
        help="silence notifications for a service or signal for a while",
        description="Silences stop notifications (incidents are still opened and recorded). "
        "Each action takes --home DIR after its name: aiops silences list --home DIR.",
    )
    silences_sub = silences.add_subparsers(dest="silences", metavar="ACTION", required=True)
    p = silences_sub.add_parser(
        "add",
        parents=[home],
        help="add a silence",
        description="Silence notifications matching --service and --signal for --duration.",
    )
    p.add_argument("--service", required=True, help="a route name, or '*' for every service")
    p.add_argument(
        "--signal", default="*", help="a signal, or a glob like 'slo_burn:*' (default: '*')"
    )
    p.add_argument("--duration", required=True, help="how long, e.g. 30m, 2h, 1d, 1h30m")
    p.add_argument("--reason", required=True, help="why (shown in `aiops silences list`)")
    p.add_argument("--created-by", help="who (default: the OS user)")
    p.set_defaults(func=cmd_silences_add)
    p = silences_sub.add_parser(
        "list",
        parents=[home],
        help="list active silences",
        description="List active silences (with --all, expired ones too), newest first.",
    )
    p.add_argument("--all", action="store_true", help="include expired silences")
    p.add_argument("--json", action="store_true", help="one JSON array, one object per silence")
    p.set_defaults(func=cmd_silences_list)
    p = silences_sub.add_parser(
        "expire",
        parents=[home],
        help="end a silence now",
        description="End a silence now: from the next notify run, matching incidents are told again.",
    )
    p.add_argument("id", type=int, help="silence id (see `aiops silences list`)")
    p.set_defaults(func=cmd_silences_expire)
    _incidents_parser(sub, home)
    p = sub.add_parser(
        "detect-series",
        parents=[home],
        help="score a CSV time series (timestamp,value) with an anomaly detector",
        description="Read IN.csv (columns timestamp,value; ISO timestamps; empty value = "
        "missing), score every point causally, and write the same rows plus anomaly_score "
        "(0..1) and anomaly (true/false at the detector's threshold) to --output.",
    )
    p.add_argument("input", metavar="IN.csv", help="input CSV with timestamp,value columns")
    p.add_argument("--output", required=True, metavar="OUT.csv", help="output CSV")
    p.add_argument(
        "--detector",
        default="default",
        metavar="NAME",
        help="registered detector (default: default)",
    )
    p.set_defaults(func=cmd_detect_series)
    # More command groups, each from its own module (add_parser(sub, home)):
    # [keys] cli
    from suite import cli_keys

    cli_keys.add_parser(sub, home)
    # [pool] cli
    # [llm-routing] cli
    # [ops] cli
    from suite import cli_chaos, cli_routes

    cli_chaos.add_parser(sub, home)
    cli_routes.add_parser(sub, home)
    # [changes] cli
    __import__("suite.cli_changes", fromlist=["add_parser"]).add_parser(sub, home)
    # [catalog] cli
    __import__("suite.cli_catalog", fromlist=["add_parser"]).add_parser(sub, home)
    # [capacity] cli
    from suite import cli_capacity

    cli_capacity.add_parser(sub, home)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except AiopsError as e:
        print(f"aiops {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
