"""`aiops services ...` and `aiops problems ...`: the service catalog, its dependency graph,
the monthly SLA report and problem records, over suite.catalog and suite.problems.

Thin: parsing and printing only. Every edit goes through suite.problems (with an audit row).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from suite.home import resolve_home


def _store(args: argparse.Namespace) -> Any:
    from suite.store import Store

    return Store(resolve_home(args.home))


def _print_json(rows: list[dict[str, Any]]) -> None:
    from suite.cli import _json_value

    sys.stdout.write(json.dumps(rows, default=_json_value) + "\n")


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    strftime = getattr(value, "strftime", None)
    if callable(strftime):
        return str(strftime("%Y-%m-%d %H:%M"))
    return str(value)


def _edge(e: dict[str, Any]) -> str:
    seen = f", {e['calls']} calls, last {_fmt(e['last_seen'])}" if e["calls"] else ""
    return f"    {e['service']:<24} {e['source']}{seen}"


# -- services ---------------------------------------------------------------------------
def cmd_services_list(args: argparse.Namespace) -> int:
    from suite.catalog import list_services

    df = list_services(_store(args))
    if args.json:
        _print_json(df.to_dicts())
        return 0
    if df.is_empty():
        print("no services yet: the worker's catalog job fills the catalog from the routes and "
              "[[services]] of the config (aiops worker --once)")  # fmt: skip
        return 0
    print(f"{'SERVICE':<24} {'KIND':<9} {'TIER':<7} {'SLA%':>6}  {'OWNER':<16} {'DEPS':>4} "
          f"{'USED BY':>7}  SOURCE")  # fmt: skip
    for r in df.iter_rows(named=True):
        print(
            f"{r['name']:<24} {_fmt(r['kind']):<9} {_fmt(r['tier']):<7} "
            f"{_fmt(r['sla_target']):>6}  {_fmt(r['owner']):<16} {r['depends_on']:>4} "
            f"{r['dependents']:>7}  {r['source']}"
        )
    return 0


def cmd_services_show(args: argparse.Namespace) -> int:
    from suite.catalog import get_service
    from suite.cli import _load_config

    config = _load_config(args, resolve_home(args.home), required=False)
    svc = get_service(
        _store(args), args.name, downtime_error_ratio=config.catalog.downtime_error_ratio
    )
    if args.json:
        _print_json([svc])
        return 0
    print(f"service {svc['name']}")
    for key in ("kind", "owner", "tier", "sla_target", "description", "runbook", "source",
                "first_seen", "last_seen"):  # fmt: skip
        print(f"  {key + ':':<13}{_fmt(svc[key])}")
    sla = svc["sla"]
    if sla is not None and sla["requests"]:
        avail = f"{sla['availability_pct']:.3f}%"
        target = f" of {sla['sla_target']:g}% target" if sla["sla_target"] is not None else ""
        used = sla["error_budget_used"]
        budget = f", {used:.0%} of the error budget used" if used is not None else ""
        print(
            f"  sla {sla['month']}: {avail}{target}, {sla['status']}; "
            f"{sla['downtime_minutes']} downtime minutes{budget}"
        )
    print(f"depends on ({len(svc['depends_on'])}):")
    for e in svc["depends_on"]:
        print(_edge(e))
    print(f"used by ({len(svc['dependents'])}):")
    for e in svc["dependents"]:
        print(_edge(e))
    if svc["problems"]:
        print("open problems:")
        for p in svc["problems"]:
            print(f"    {p['id']:>5}  {p['status']:<12} x{p['incident_count']:<4} {p['title']}")
    print(f"recent incidents ({len(svc['recent_incidents'])}):")
    for i in svc["recent_incidents"]:
        print(f"    {i['id']:>5}  {_fmt(i['opened_at'])}  {i['severity']:<8} {i['status']:<12} "
              f"{i['title']}")  # fmt: skip
    return 0


def cmd_services_sla(args: argparse.Namespace) -> int:
    from suite.catalog import sla_report
    from suite.cli import _load_config

    home = resolve_home(args.home)
    config = _load_config(args, home, required=False)
    df = sla_report(
        _store(args), args.month, downtime_error_ratio=config.catalog.downtime_error_ratio
    )
    if args.json:
        _print_json(df.to_dicts())
        return 0
    month = df["month"][0] if df.height else (args.month or "this month")
    print(f"SLA report {month} (downtime: minutes with over "
          f"{config.catalog.downtime_error_ratio:.0%} errors)")  # fmt: skip
    if df.is_empty():
        print("no services and no traffic in that month")
        return 0
    print(f"{'SERVICE':<24} {'TIER':<7} {'TARGET':>7} {'AVAIL%':>9} {'REQUESTS':>10} "
          f"{'BAD':>7} {'DOWN MIN':>8} {'BUDGET':>7}  STATUS")  # fmt: skip
    for r in df.iter_rows(named=True):
        avail = f"{r['availability_pct']:.3f}" if r["availability_pct"] is not None else "-"
        used = r["error_budget_used"]
        budget = f"{used:.0%}" if used is not None and used != float("inf") else _fmt(used)
        print(
            f"{r['service']:<24} {_fmt(r['tier']):<7} {_fmt(r['sla_target']):>7} {avail:>9} "
            f"{r['requests']:>10} {r['bad_requests']:>7} {r['downtime_minutes']:>8} "
            f"{budget:>7}  {r['status'].upper() if r['status'] == 'breached' else r['status']}"
        )
    return 0


def cmd_services_graph(args: argparse.Namespace) -> int:
    from suite.catalog import dependency_graph, graph_dot, list_services

    store = _store(args)
    edges = dependency_graph(store)
    if args.format == "json":
        _print_json(edges.to_dicts())
    elif args.format == "mermaid":
        lines = ["graph LR"]
        for e in edges.iter_rows(named=True):
            arrow = "-.->" if e["source"] == "observed" else "-->"
            lines.append(f'    {_mermaid_id(e["service"])}["{e["service"]}"] {arrow} '
                         f'{_mermaid_id(e["depends_on"])}["{e["depends_on"]}"]')  # fmt: skip
        print("\n".join(lines))
    else:
        sys.stdout.write(graph_dot(list_services(store), edges))
    return 0


def _mermaid_id(name: str) -> str:
    return "s_" + "".join(c if c.isalnum() else "_" for c in name)


# -- problems ---------------------------------------------------------------------------
def cmd_problems_list(args: argparse.Namespace) -> int:
    from suite.problems import list_problems

    df = list_problems(_store(args), status=args.status)
    if args.json:
        _print_json(df.to_dicts())
        return 0
    if df.is_empty():
        print(f"no {args.status} problems" if args.status else "no problems")
        return 0
    for r in df.iter_rows(named=True):
        ke = "  [known error]" if r["known_error"] else ""
        print(f"{r['id']:>5}  {r['status']:<12} x{r['incident_count']:<4} "
              f"last {_fmt(r['last_seen'])}  {r['title']}{ke}")  # fmt: skip
    return 0


def cmd_problems_show(args: argparse.Namespace) -> int:
    from suite.problems import get_problem

    p = get_problem(_store(args), args.id)
    if args.json:
        _print_json([p])
        return 0
    print(f"problem {p['id']}: {p['title']}")
    for key in ("status", "service", "fingerprint", "known_error", "root_cause", "workaround",
                "incident_count", "first_seen", "last_seen", "created_at", "resolved_at"):  # fmt: skip
        print(f"  {key + ':':<16}{_fmt(p[key])}")
    print(f"incidents ({len(p['incidents'])}):")
    for i in p["incidents"]:
        print(f"    {i['id']:>5}  {_fmt(i['opened_at'])}  {i['status']:<12} {i['title']}")
    print("history:")
    for h in p["history"]:
        print(f"    {_fmt(h['ts'])}  {h['action']:<16} {h['actor']}: {h['detail'] or ''}")
    return 0


def cmd_problems_update(args: argparse.Namespace) -> int:
    from suite.problems import update_problem

    p = update_problem(
        _store(args),
        args.id,
        root_cause=args.root_cause,
        workaround=args.workaround,
        known_error=args.known_error,
        status=args.status,
        actor=args.actor,
    )
    print(f"problem {p['id']} updated: status {p['status']}"
          f"{', known error' if p['known_error'] else ''}")  # fmt: skip
    return 0


def add_parser(sub: Any, home: argparse.ArgumentParser) -> None:
    """`services` and `problems` command groups (wired in suite.cli at `# [catalog] cli`)."""
    from suite.problems import STATUSES

    services = sub.add_parser(
        "services",
        help="the service catalog: services, dependencies, SLA report, graph",
        description="The service catalog, as the worker's catalog job keeps it: every route "
        "and [[services]] entry, dependencies declared in the config and observed in traffic "
        "(x-aiops-caller header, W3C trace enclosure). Each action takes --home DIR.",
    )
    ssub = services.add_subparsers(dest="services", metavar="ACTION", required=True)
    p = ssub.add_parser(
        "list",
        parents=[home],
        help="every service, most critical tier first",
        description="Every service, most critical tier first.",
    )
    p.add_argument("--json", action="store_true", help="one JSON array, one object per service")
    p.set_defaults(func=cmd_services_list)
    p = ssub.add_parser(
        "show",
        parents=[home],
        help="one service: owner, tier, SLA, dependencies both ways, recent incidents",
        description="One service: owner, tier, SLA, dependencies both ways, recent incidents.",
    )
    p.add_argument("name", help="service name (see `aiops services list`)")
    p.add_argument("--json", action="store_true", help="a JSON array of one object")
    p.add_argument(
        "--config", metavar="FILE", help="gateway TOML config (default: <home>/gateway.toml)"
    )
    p.set_defaults(func=cmd_services_show)
    p = ssub.add_parser(
        "sla",
        parents=[home],
        help="monthly availability per service against its SLA target",
        description="Availability per service for a month, from metrics_1m: (requests - "
        "5xx) / requests, as the SLO job counts it; downtime minutes are minutes with an "
        "error ratio over [catalog] downtime_error_ratio (default 5%%); error budget used "
        "is bad requests over those the target allows.",
    )
    p.add_argument("--month", metavar="YYYY-MM", help="the month (default: the current one)")
    p.add_argument("--json", action="store_true", help="one JSON array, one object per service")
    p.add_argument(
        "--config", metavar="FILE", help="gateway TOML config (default: <home>/gateway.toml)"
    )
    p.set_defaults(func=cmd_services_sla)
    p = ssub.add_parser(
        "graph", parents=[home], help="the dependency graph", description="The dependency graph."
    )
    p.add_argument(
        "--format",
        choices=["dot", "json", "mermaid"],
        default="dot",
        help="dot (Graphviz; observed-only edges dashed), json (one object per edge) or mermaid",
    )
    p.set_defaults(func=cmd_services_graph)

    problems = sub.add_parser(
        "problems",
        help="recurring incidents as problem records (root cause, known error, workaround)",
        description="Problems: a fingerprint with [problems] min_incidents incidents within "
        "window_days becomes a problem (the worker's problems job). Each action takes --home "
        "DIR; an unknown id or a bad edit exits with status 2.",
    )
    psub = problems.add_subparsers(dest="problems", metavar="ACTION", required=True)
    p = psub.add_parser(
        "list",
        parents=[home],
        help="problems, most recurrent first",
        description="Problems, most recurrent first.",
    )
    p.add_argument("--status", choices=STATUSES, help="only these")
    p.add_argument("--json", action="store_true", help="one JSON array, one object per problem")
    p.set_defaults(func=cmd_problems_list)
    p = psub.add_parser(
        "show",
        parents=[home],
        help="one problem, its incidents and history",
        description="One problem, its incidents and history.",
    )
    p.add_argument("id", type=int, help="problem id (see `aiops problems list`)")
    p.add_argument("--json", action="store_true", help="a JSON array of one object")
    p.set_defaults(func=cmd_problems_show)
    p = psub.add_parser(
        "update",
        parents=[home],
        help="record root cause, workaround, known error, status (audited)",
        description="Edit a problem; an empty value clears a text field. --known-error moves "
        "an open problem to known_error, which needs a root cause or workaround on record.",
    )
    p.add_argument("id", type=int, help="problem id (see `aiops problems list`)")
    p.add_argument("--root-cause", metavar="TEXT")
    p.add_argument("--workaround", metavar="TEXT")
    p.add_argument(
        "--known-error",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="mark (or --no-known-error unmark) it as a known error",
    )
    p.add_argument("--status", choices=STATUSES)
    p.add_argument(
        "--actor", metavar="USER", help="who does it (default: $AIOPS_USER, else the OS user)"
    )
    p.set_defaults(func=cmd_problems_update)
