"""The `aiops` command line: thin argument parsing over functions in `suite`.

Every subcommand takes `--home`; errors print one readable message and exit non-zero.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from decimal import Decimal

from suite.config import GatewayConfig, load_gateway_config
from suite.errors import AiopsError, ConfigError
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
    config = _load_config(args, home, required=True)
    mode = args.mode or config.gateway.mode
    if mode == "reverse" and not config.routes:
        raise ConfigError(
            f"{config.path}: routes: reverse mode needs at least one [[routes]] entry"
        )
    return run_gateway(
        config,
        home,
        listen_host=args.listen_host or config.gateway.listen_host,
        listen_port=args.listen_port
        if args.listen_port is not None
        else config.gateway.listen_port,
        mode=mode,
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


def cmd_demo(args: argparse.Namespace) -> int:
    from suite.demo import run_demo

    if args.minutes <= 0:
        raise ConfigError(f"--minutes: {args.minutes} must be more than 0")
    return run_demo(resolve_home(args.home), minutes=args.minutes, headless=args.headless)


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
        "demo",
        parents=[home],
        help="run the whole loop locally: emulated upstreams, gateway, worker, traffic",
        description="Start emulated insurance APIs, the gateway and the worker, send realistic "
        "traffic for --minutes, then print what was recorded. Ctrl-C stops everything cleanly.",
    )
    p.add_argument(
        "--minutes", type=float, default=2.0, help="how long to send traffic (default 2)"
    )
    p.add_argument("--headless", action="store_true", help="no dashboard; print a summary (for CI)")
    p.set_defaults(func=cmd_demo)
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
