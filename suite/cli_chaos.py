"""`aiops chaos start|stop|list`: fault-injection drills applied by running gateways.

Thin argument handling over `suite.chaos`; every action is a change row plus an audit row.
"""

from __future__ import annotations

import argparse
import json
import sys

from suite.errors import ConfigError


def cmd_chaos_start(args: argparse.Namespace) -> int:
    from suite.audit import current_actor
    from suite.chaos import start_drill
    from suite.cli import _load_config
    from suite.home import resolve_home
    from suite.notify import parse_duration
    from suite.store import Store

    home = resolve_home(args.home).ensure()
    config = _load_config(args, home, required=True)
    duration = None
    if args.duration.lower() not in ("", "0", "forever", "until-stopped"):
        try:
            duration = parse_duration(args.duration).total_seconds()
        except ConfigError:
            raise ConfigError(
                f"--for: {args.duration!r} is not a duration (examples: 90s, 10m, 2h)"
            ) from None
    drill = start_drill(
        Store(home),
        home,
        config,
        route=args.route,
        latency_ms=args.latency_ms,
        error_rate=args.error_rate,
        status=args.status,
        duration_seconds=duration,
        reason=args.reason,
        actor=args.actor or current_actor(),
    )
    until = f" for {args.duration}" if duration is not None else " until stopped"
    print(f"chaos drill {drill.id} on {drill.route}: {drill.describe()}{until}")
    return 0


def cmd_chaos_stop(args: argparse.Namespace) -> int:
    from suite.audit import current_actor
    from suite.chaos import ChaosError, stop_drills
    from suite.home import resolve_home
    from suite.store import Store

    if not args.all and not args.route:
        raise ChaosError("say which drills to stop: --route R, or --all")
    home = resolve_home(args.home).ensure()
    stopped, expired = stop_drills(
        Store(home), home, route=None if args.all else args.route,
        actor=args.actor or current_actor(),
    )  # fmt: skip
    for d in expired:
        print(f"chaos drill {d.id} on {d.route} had already ended (expired)")
    for d in stopped:
        print(f"chaos drill {d.id} on {d.route} stopped")
    if not stopped and not expired:
        print("no active chaos drills")
    return 0


def cmd_chaos_list(args: argparse.Namespace) -> int:
    from suite.chaos import list_drills
    from suite.cli import _json_value
    from suite.home import resolve_home
    from suite.store import Store

    home = resolve_home(args.home).ensure()
    rows = list_drills(Store(home), home)
    if args.json:
        sys.stdout.write(json.dumps(rows, default=_json_value) + "\n")
        return 0
    if not rows:
        print("no active chaos drills")
    for r in rows:
        faults = []
        if r["error_rate"]:
            faults.append(f"error {r['error_rate']:.0%} ({r['status']})")
        if r["latency_ms"]:
            faults.append(f"latency +{r['latency_ms']:g} ms")
        left = "until stopped" if r["expires_at"] is None else f"{r['remaining_seconds']:g} s left"
        why = f": {r['reason']}" if r["reason"] else ""
        print(f"{r['id']}  {r['route']}  {', '.join(faults)}  {left}  by {r['created_by']}{why}")
    return 0


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], home: argparse.ArgumentParser
) -> None:
    chaos = sub.add_parser(
        "chaos",
        help="fault-injection drills: add latency or errors to a route for a while",
        description="Chaos drills make running gateways inject latency and/or errors into one "
        "route until the drill ends (--for) or is stopped, so detectors, SLOs and on-call can "
        "be rehearsed. Each drill is a change (kind 'chaos') in `aiops changes list`.",
    )
    csub = chaos.add_subparsers(dest="chaos", metavar="ACTION", required=True)
    p = csub.add_parser(
        "start",
        parents=[home],
        help="start a drill on a route",
        description="Start a drill on a route. Unknown route, an error rate outside 0..1 or "
        "no fault at all exits with status 2.",
    )
    p.add_argument(
        "--config", metavar="FILE", help="gateway TOML config (default: <home>/gateway.toml)"
    )
    p.add_argument("--route", required=True, metavar="R", help="route name from the config")
    p.add_argument(
        "--latency-ms", type=float, default=0.0, metavar="N", help="added delay per call (ms)"
    )
    p.add_argument(
        "--error-rate",
        type=float,
        default=0.0,
        metavar="P",
        help="share of calls answered with an error by the gateway, 0..1 (0.3 = 30%%)",
    )
    p.add_argument(
        "--status", type=int, default=503, metavar="S", help="error status (default 503)"
    )
    p.add_argument(
        "--for",
        dest="duration",
        default="10m",
        metavar="D",
        help="how long, e.g. 90s, 10m, 2h (default 10m; 'forever' = until stopped)",
    )
    p.add_argument("--reason", metavar="TEXT", help="why (shown in the change record)")
    p.add_argument("--actor", metavar="USER", help="who (default: $AIOPS_USER, else OS user)")
    p.set_defaults(func=cmd_chaos_start)
    p = csub.add_parser(
        "stop", parents=[home], help="stop drills", description="Stop the drill on a route, or all."
    )
    p.add_argument("--route", metavar="R", help="stop the drill on this route")
    p.add_argument("--all", action="store_true", help="stop every active drill")
    p.add_argument("--actor", metavar="USER", help="who (default: $AIOPS_USER, else OS user)")
    p.set_defaults(func=cmd_chaos_stop)
    p = csub.add_parser(
        "list",
        parents=[home],
        help="list active drills",
        description="List active drills (drills past their end are closed first).",
    )
    p.add_argument("--json", action="store_true", help="one JSON array, one object per drill")
    p.set_defaults(func=cmd_chaos_list)
