"""`aiops changes ...`: record changes, walk them through their lifecycle, list and show
them, the change failure rate per service, and the suspect changes of an incident.

Thin argument parsing over `suite.changes`; every action writes an audit row there.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime
from decimal import Decimal
from typing import Any

from suite.change_model import CHANGE_TYPES, INITIAL_STATUSES, KINDS, RISKS, STATUSES, ChangeError
from suite.home import resolve_home

ACTION_HELP = {
    "approve": "approve a proposed change (high-risk and emergency: a named approver, "
    "not the requester)",
    "schedule": "schedule an approved (or a standard, proposed) change in its window",
    "implement": "mark a change implemented (normal and emergency changes must be approved)",
    "verify": "confirm an implemented change works (ends its maintenance window)",
    "rollback": "record that an implemented change was rolled back",
    "cancel": "cancel a change that is not implemented yet (removes its maintenance window)",
}


def _json_value(value: object) -> object:
    if isinstance(value, Decimal):
        return float(value)
    isoformat = getattr(value, "isoformat", None)
    return isoformat() if callable(isoformat) else str(value)


def _dump(rows: list[dict[str, Any]]) -> None:
    sys.stdout.write(json.dumps(rows, default=_json_value) + "\n")


def _store(args: argparse.Namespace) -> Any:
    from suite.store import Store

    return Store(resolve_home(args.home))


def _when(value: datetime | None) -> str:
    return "-" if value is None else f"{value:%Y-%m-%d %H:%M}"


def cmd_add(args: argparse.Namespace) -> int:
    from suite.change_model import check_new_change
    from suite.changes import record_change

    fields = {
        "service": args.service,
        "kind": args.kind,
        "summary": args.summary,
        "status": args.status,
        "risk": args.risk,
        "change_type": args.type,
        "window_start": args.window_start,
        "window_end": args.window_end,
        "ts": args.at,
        "requested_by": args.by,
        "approved_by": args.approved_by,
    }
    change = check_new_change(fields, default_status="proposed")
    cid = record_change(_store(args), change, source="cli")
    if args.json:
        _dump([{"id": cid, "status": change.status}])
    else:
        print(f"change {cid} recorded: {change.service} {change.kind} ({change.status})")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from suite.changes import list_changes, parse_since

    since = parse_since(args.since) if args.since else None
    df = list_changes(
        _store(args),
        service=args.service,
        since=since,
        status=args.status,
        kind=args.kind,
        limit=args.limit,
    )
    if args.json:
        _dump(df.to_dicts())
        return 0
    if df.is_empty():
        print("no changes")
        return 0
    for r in df.iter_rows(named=True):
        risk = f" risk={r['risk']}" if r["risk"] else ""
        print(
            f"{r['id']}  {_when(r['ts'])}  {r['status']:<11} {r['service']:<16} {r['kind']:<7}"
            f" {r['change_type'] or '-':<9}{risk}  {r['summary']}  [{r['source']}]"
        )
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from suite.changes import get_change

    change = get_change(_store(args), args.id)
    if args.json:
        _dump([change])
        return 0
    print(f"change {change['id']}: {change['summary']}")
    for key in (
        "status", "service", "kind", "change_type", "risk", "source", "ts", "window_start",
        "window_end", "requested_by", "approved_by", "approved_at", "implemented_at",
        "closed_at", "detail",
    ):  # fmt: skip
        value = change[key]
        print(f"  {key + ':':<16}{'-' if value is None else value}")
    for w in change["maintenance_windows"]:
        print(f"  maintenance window {w['id']}: {_when(w['starts_at'])} - {_when(w['ends_at'])}")
    print("events:")
    for e in change["events"]:
        step = f"{e['from_status'] or '-'} -> {e['to_status']}"
        note = f": {e['note']}" if e["note"] else ""
        print(f"  {e['ts']:%Y-%m-%d %H:%M:%S}  {step:<26} {e['actor']}{note}")
    if change["suspect_of"]:
        print("suspect of incidents:")
        for s in change["suspect_of"]:
            print(f"  #{s['incident_id']} rank {s['rank']} score {s['score']:.3f}  {s['title']}")
    return 0


def cmd_step(args: argparse.Namespace) -> int:
    from suite.change_model import parse_time
    from suite.changes import transition

    window = None
    if getattr(args, "window_start", None) or getattr(args, "window_end", None):
        if not (args.window_start and args.window_end):
            raise ChangeError("--window-start and --window-end go together")
        window = (
            parse_time(args.window_start, "--window-start"),
            parse_time(args.window_end, "--window-end"),
        )
    # A named approver is someone who said who they are: --by, else $AIOPS_USER.
    by = args.by or os.environ.get("AIOPS_USER") or None
    change = transition(
        _store(args), args.id, args.changes, by=by, note=args.note, window=window, source="cli"
    )
    if args.json:
        _dump([change])
    else:
        who = change["approved_by"] if args.changes == "approve" else by or ""
        print(f"change {change['id']} {change['status']}" + (f" by {who}" if who else ""))
    return 0


def cmd_failure_rate(args: argparse.Namespace) -> int:
    from suite.changes import failure_rate, parse_since

    hours = args.hours
    if hours is None:
        from suite.cli import _load_config

        hours = _load_config(
            args, resolve_home(args.home), required=False
        ).changes.failure_window_hours
    since = parse_since(args.since) if args.since else None
    df = failure_rate(_store(args), window_hours=hours, since=since)
    if args.json:
        _dump(df.to_dicts())
        return 0
    if df.is_empty():
        print("no implemented changes in the period")
        return 0
    print(f"change failure rate (an incident on the service within {hours:g} h = failed)")
    for r in df.iter_rows(named=True):
        print(
            f"  {r['service']:<20} {r['failed']:>4} of {r['changes']:<4} failed "
            f"({r['failure_rate']:.0%}), {r['rolled_back']} rolled back"
        )
    return 0


def cmd_suspects(args: argparse.Namespace) -> int:
    from suite.changes import compute_suspects, suspects

    store = _store(args)
    if args.recompute:
        from suite.cli import _load_config

        config = _load_config(args, resolve_home(args.home), required=False)
        compute_suspects(store, config.changes, incident_ids=[args.incident])
    df = suspects(store, args.incident)
    if args.json:
        _dump(df.to_dicts())
        return 0
    print_suspects(df.to_dicts(), empty=f"no suspect changes for incident {args.incident}")
    return 0


def print_suspects(rows: list[dict[str, Any]], *, empty: str = "  none") -> None:
    if not rows:
        print(empty)
    for r in rows:
        print(
            f"  {r['rank']:>2}. {r['score']:.3f}  {r['change_id']}  {r['service']} {r['kind']}: "
            f"{r['summary']} ({_when(r['changed_at'])}, {r['status']})"
        )
        print(f"      {r['reason']}")


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], home: argparse.ArgumentParser
) -> None:
    from suite.cli import _config_arg

    changes = sub.add_parser(
        "changes",
        help="record changes, approve/schedule/implement them, failure rate, suspects",
        description="Changes to services (deploys, config, flags, schemas, infra, chaos "
        "drills) with an ITSM lifecycle: proposed -> approved -> scheduled -> implemented -> "
        "verified | rolled_back, or cancelled before implemented. Standard changes skip "
        "approval; high-risk and emergency changes need a named approver who is not the "
        "requester. Bad input, an unknown id or a refused step exits with status 2.",
    )
    csub = changes.add_subparsers(dest="changes", metavar="ACTION", required=True)

    p = csub.add_parser(
        "add",
        parents=[home],
        help="record a change",
        description="Record a change (proposed by default; --status implemented records one "
        "after the fact). Times are ISO 8601, UTC unless they carry an offset.",
    )
    p.add_argument("--service", required=True, help="the service (route name) it changes")
    p.add_argument("--kind", required=True, help=f"one of {', '.join(KINDS)}")
    p.add_argument("--summary", required=True, help="what changes, in a line")
    p.add_argument("--window-start", metavar="TIME", help="maintenance window start")
    p.add_argument("--window-end", metavar="TIME", help="maintenance window end")
    p.add_argument("--risk", help=f"one of {', '.join(RISKS)}")
    p.add_argument("--type", help=f"one of {', '.join(CHANGE_TYPES)} (default normal)")
    p.add_argument("--status", help=f"one of {', '.join(INITIAL_STATUSES)} (default proposed)")
    p.add_argument("--at", metavar="TIME", help="when it took effect (with --status implemented)")
    p.add_argument(
        "--by", metavar="NAME", help="who requests it (default: $AIOPS_USER, else OS user)"
    )
    p.add_argument(
        "--approved-by",
        metavar="NAME",
        help="who approved it (a high-risk change recorded as implemented)",
    )
    p.add_argument("--json", action="store_true", help="print [{'id': ..., 'status': ...}]")
    p.set_defaults(func=cmd_add)

    p = csub.add_parser(
        "list", parents=[home], help="list changes, newest first", description="List changes."
    )
    p.add_argument("--json", action="store_true", help="one JSON array, one object per change")
    p.add_argument("--service", help="only this service")
    p.add_argument("--since", metavar="WHEN", help="only since then: 24h, 7d or an ISO time")
    p.add_argument("--status", choices=STATUSES, help="only this status")
    p.add_argument("--kind", choices=KINDS, help="only this kind")
    p.add_argument("--limit", type=int, metavar="N", help="at most N changes")
    p.set_defaults(func=cmd_list)

    p = csub.add_parser(
        "show",
        parents=[home],
        help="one change with its lifecycle events",
        description="Show a change, its events, maintenance window and the incidents that "
        "list it as a suspect.",
    )
    p.add_argument("id", help="change id (CHG-...)")
    p.add_argument("--json", action="store_true", help="a JSON array of one object")
    p.set_defaults(func=cmd_show)

    for action, help_text in ACTION_HELP.items():
        p = csub.add_parser(action, parents=[home], help=help_text, description=help_text + ".")
        p.add_argument("id", help="change id (CHG-...)")
        p.add_argument(
            "--by", metavar="NAME", help="who does it (default: $AIOPS_USER, else the OS user)"
        )
        p.add_argument("--note", metavar="TEXT", help="why, or what happened")
        if action == "schedule":
            p.add_argument("--window-start", metavar="TIME", help="set the window start")
            p.add_argument("--window-end", metavar="TIME", help="set the window end")
        p.add_argument("--json", action="store_true", help="print the change as JSON")
        p.set_defaults(func=cmd_step)

    p = csub.add_parser(
        "failure-rate",
        parents=[home],
        help="share of changes followed by an incident, per service",
        description="Change failure rate per service: of the changes implemented in the "
        "period, the share followed by an incident on the same service within --hours. "
        "Chaos drills are left out.",
    )
    _config_arg(p)
    p.add_argument(
        "--hours",
        type=float,
        metavar="N",
        help="follow-up window (default [changes] failure_window_hours, 24)",
    )
    p.add_argument("--since", metavar="WHEN", help="period start: 30d (default), 7d or an ISO time")
    p.add_argument("--json", action="store_true", help="one JSON array, one object per service")
    p.set_defaults(func=cmd_failure_rate)

    p = csub.add_parser(
        "suspects",
        parents=[home],
        help="the ranked suspect changes of an incident",
        description="Suspect changes of an incident, best first, with the reason for each "
        "score (ranked by the worker; --recompute ranks now).",
    )
    _config_arg(p)
    p.add_argument("incident", type=int, help="incident id")
    p.add_argument("--recompute", action="store_true", help="rank again now")
    p.add_argument("--json", action="store_true", help="one JSON array, one object per suspect")
    p.set_defaults(func=cmd_suspects)
