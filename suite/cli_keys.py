"""`aiops keys create|list|revoke`: gateway API keys from the command line.

The key is printed once by `create` and never stored or logged; `list` never shows the
secret or its hash.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from suite.home import resolve_home


def _known_routes(args: argparse.Namespace) -> set[str] | None:
    """Route names of the gateway config, to catch a mistyped --routes; None when there
    is no config to check against (or it cannot be loaded here, e.g. a provider key's
    environment variable is only set for the gateway)."""
    from suite.config import load_gateway_config
    from suite.errors import ConfigError

    home = resolve_home(args.home)
    path = args.config or home.gateway_config
    if not args.config and not home.gateway_config.exists():
        return None
    try:
        return {r.name for r in load_gateway_config(path).routes}
    except ConfigError as e:
        if args.config:
            raise
        print(f"aiops keys: warning: route names not checked ({e})", file=sys.stderr)
        return None


def cmd_keys_create(args: argparse.Namespace) -> int:
    from suite.keys import create_key, display_key, parse_expires
    from suite.store import Store

    routes = tuple(r.strip() for r in (args.routes or "").split(",") if r.strip())
    expires = parse_expires(args.expires) if args.expires else None
    key_id, key = create_key(
        Store(resolve_home(args.home)),
        tenant=args.tenant,
        routes=routes,
        rpm=args.rpm,
        tpm=args.tpm,
        budget_usd_day=args.budget_usd_day,
        budget_usd_month=args.budget_usd_month,
        expires_at=expires,
        name=args.name,
        known_routes=_known_routes(args) if routes else None,
    )
    if args.json:
        sys.stdout.write(json.dumps([{"key_id": key_id, "tenant": args.tenant, "key": key}]) + "\n")
        return 0
    print(key)
    print(
        f"key {key_id} for tenant {args.tenant!r} ({display_key(key_id, key[-4:])}): "
        "shown once, only its hash is kept; store it now.",
        file=sys.stderr,
    )
    return 0


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list):
        return ",".join(v) or "*"
    isoformat = getattr(v, "strftime", None)
    return v.strftime("%Y-%m-%d %H:%M") if callable(isoformat) else str(v)


def cmd_keys_list(args: argparse.Namespace) -> int:
    from suite.cli import _json_value
    from suite.keys import list_keys
    from suite.store import Store

    rows = list_keys(Store(resolve_home(args.home)), include_revoked=not args.active)
    if args.json:
        sys.stdout.write(json.dumps(rows, default=_json_value) + "\n")
        return 0
    if not rows:
        print("no gateway keys (create one with `aiops keys create --tenant NAME`)")
        return 0
    for r in rows:
        budget = "/".join(
            f"${r[f'spent_usd_{p}']:.2f} of ${r[f'budget_usd_{p}']:g} per {p}"
            for p in ("day", "month")
            if r[f"budget_usd_{p}"] is not None
        )
        print(
            f"{r['key_id']}  {r['status']:<8} {r['tenant']:<16} routes={_fmt(r['routes'])} "
            f"rpm={_fmt(r['rpm'])} tpm={_fmt(r['tpm'])} {budget or 'no budget'}  "
            f"expires={_fmt(r['expires_at'])} last used={_fmt(r['last_used_at'])}  {r['key']}"
        )
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    from suite.keys import revoke_key
    from suite.store import Store

    changed = revoke_key(Store(resolve_home(args.home)), args.key_id, actor=args.actor)
    print(
        f"key {args.key_id} revoked (gateways refuse it within a second or two)"
        if changed
        else f"key {args.key_id} was already revoked"
    )
    return 0


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], home: argparse.ArgumentParser
) -> None:
    keys = sub.add_parser(
        "keys",
        help="create, list and revoke gateway API keys",
        description='Gateway API keys for routes with auth = "key". Clients send them as '
        "'Authorization: Bearer <key>' or 'x-api-key: <key>' (the openai and anthropic SDKs' "
        "api_key). Only a salted hash is stored; running gateways pick up changes within "
        "about a second (<home>/run/api_keys.json).",
    )
    ksub = keys.add_subparsers(dest="keys", metavar="ACTION", required=True)
    p = ksub.add_parser(
        "create",
        parents=[home],
        help="issue a key (printed once)",
        description="Issue a gateway key and print it once on standard output.",
    )
    p.add_argument("--tenant", required=True, help="who the key belongs to (recorded on rows)")
    p.add_argument("--name", help="a label, e.g. the application using it")
    p.add_argument("--routes", metavar="A,B", help="routes it may call (default: every route)")
    p.add_argument("--rpm", type=int, metavar="N", help="requests per minute for this key")
    p.add_argument("--tpm", type=int, metavar="N", help="LLM tokens per minute for this key")
    p.add_argument("--budget-usd-day", type=float, metavar="X", help="USD per UTC day")
    p.add_argument("--budget-usd-month", type=float, metavar="X", help="USD per UTC month")
    p.add_argument(
        "--expires", metavar="WHEN", help="a date (2027-01-01), date-time, or duration (30d, 12h)"
    )
    p.add_argument(
        "--config", metavar="FILE", help="gateway config to check --routes against "
        "(default: <home>/gateway.toml if it exists)",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help='[{"key_id", "tenant", "key"}]')
    p.set_defaults(func=cmd_keys_create)
    p = ksub.add_parser(
        "list",
        parents=[home],
        help="list keys (never the secret)",
        description="List keys with limits, spend today/this month and state.",
    )
    p.add_argument("--active", action="store_true", help="leave out revoked keys")
    p.add_argument("--json", action="store_true", help="one JSON array, one object per key")
    p.set_defaults(func=cmd_keys_list)
    p = ksub.add_parser(
        "revoke",
        parents=[home],
        help="revoke a key now",
        description="Revoke a key: gateways answer it with 401 (reason 'revoked').",
    )
    p.add_argument("key_id", help="the key id (see `aiops keys list`)")
    p.add_argument("--actor", metavar="USER", help="who (default: $AIOPS_USER, else the OS user)")
    p.set_defaults(func=cmd_keys_revoke)
