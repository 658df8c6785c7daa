"""`aiops routes list|usage`: routes with their version and lifecycle, and who still
calls which version (by tenant and key), so owners can retire an old one safely.

Reads the config and the store; aggregates in SQL.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta
from typing import Any

from suite.config import GatewayConfig
from suite.errors import ConfigError

USAGE_SQL = """
SELECT route, route_version AS version, tenant, api_key_id,
       count(*) AS calls,
       count(*) FILTER (WHERE status >= 500 OR status IS NULL) AS errors,
       min(ts) AS first_seen, max(ts) AS last_seen
FROM requests
WHERE ts >= ? AND route IS NOT NULL
GROUP BY ALL
ORDER BY route, version NULLS FIRST, calls DESC, tenant NULLS LAST, api_key_id NULLS LAST
"""


def route_usage(store: Any, config: GatewayConfig, since: timedelta) -> list[dict[str, Any]]:
    """Calls per route, version, tenant and key since `since` ago, with the route's
    deprecation and sunset from the config (routes no longer configured show None)."""
    from suite.clock import utc_now

    rows = store.query(USAGE_SQL, [utc_now() - since]).to_dicts()
    routes = {r.name: r for r in config.routes}
    out = []
    for row in rows:
        r = routes.get(row["route"])
        out.append(
            {
                "route": row["route"],
                "version": row["version"],
                "deprecated": None if r is None else r.deprecated,
                "sunset": None if r is None or r.sunset is None else r.sunset.date().isoformat(),
                "tenant": row["tenant"],
                "api_key_id": row["api_key_id"],
                "calls": int(row["calls"]),
                "errors": int(row["errors"]),
                "first_seen": row["first_seen"],
                "last_seen": row["last_seen"],
            }
        )
    return out


def route_rows(config: GatewayConfig) -> list[dict[str, Any]]:
    return [
        {
            "route": r.name,
            "prefix": r.prefix,
            "version": r.version,
            "deprecated": r.deprecated,
            "deprecated_since": r.deprecated_since.date().isoformat()
            if r.deprecated_since
            else None,
            "sunset": r.sunset.date().isoformat() if r.sunset else None,
            "deprecation_link": r.deprecation_link,
            "upstreams": [u.url for u in r.upstreams],
            "request_header_rules": [f"{a} {n}" for a, n, _ in r.request_headers],
            "response_header_rules": [f"{a} {n}" for a, n, _ in r.response_headers],
        }
        for r in config.routes
    ]


def cmd_routes_usage(args: argparse.Namespace) -> int:
    from suite.cli import _json_value, _load_config
    from suite.home import resolve_home
    from suite.notify import parse_duration
    from suite.store import Store

    home = resolve_home(args.home)
    config = _load_config(args, home, required=False)
    try:
        since = parse_duration(args.since)
    except ConfigError:
        raise ConfigError(f"--since: {args.since!r} is not a duration (e.g. 24h, 7d)") from None
    rows = route_usage(Store(home), config, since)
    if args.json:
        sys.stdout.write(json.dumps(rows, default=_json_value) + "\n")
        return 0
    if not rows:
        print(f"no calls in the last {args.since}")
        return 0
    print(f"{'route':<20} {'version':<8} {'tenant':<16} {'key':<14} {'calls':>8}  last seen")
    for r in rows:
        flag = ""
        if r["deprecated"]:
            flag = "  DEPRECATED" + (f", sunset {r['sunset']}" if r["sunset"] else "")
        print(
            f"{r['route']:<20} {r['version'] or '-':<8} {r['tenant'] or '-':<16} "
            f"{r['api_key_id'] or '-':<14} {r['calls']:>8}  {r['last_seen']:%Y-%m-%d %H:%M}{flag}"
        )
    return 0


def cmd_routes_list(args: argparse.Namespace) -> int:
    from suite.cli import _load_config
    from suite.home import resolve_home

    config = _load_config(args, resolve_home(args.home), required=True)
    rows = route_rows(config)
    if args.json:
        sys.stdout.write(json.dumps(rows) + "\n")
        return 0
    for r in rows:
        life = ""
        if r["deprecated"]:
            life = (
                f"  deprecated{' since ' + r['deprecated_since'] if r['deprecated_since'] else ''}"
            )
        if r["sunset"]:
            life += f"  sunset {r['sunset']}"
        print(f"{r['route']:<20} {r['prefix']:<20} {r['version'] or '-':<8}{life}")
    return 0


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], home: argparse.ArgumentParser
) -> None:
    routes = sub.add_parser(
        "routes",
        help="routes, their API versions, and usage by version and tenant",
        description="The gateway's routes with version, deprecation and sunset, and who "
        "still calls each version.",
    )
    rsub = routes.add_subparsers(dest="routes", metavar="ACTION", required=True)
    for name, func, help_text in (
        ("list", cmd_routes_list, "routes with version, deprecation, sunset and header rules"),
        ("usage", cmd_routes_usage, "calls per route version, tenant and key"),
    ):
        p = rsub.add_parser(name, parents=[home], help=help_text, description=help_text + ".")
        p.add_argument(
            "--config", metavar="FILE", help="gateway TOML config (default: <home>/gateway.toml)"
        )
        if name == "usage":
            p.add_argument(
                "--since", default="7d", metavar="D", help="how far back (default 7d; e.g. 24h)"
            )
        p.add_argument("--json", action="store_true", help="one JSON array, one object per row")
        p.set_defaults(func=func)
