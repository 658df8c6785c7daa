"""Config reload: what changed between two gateway configs, and the files through which
`aiops gateway reload` asks running gateways to reload and reads their answers.

Pure diffing plus small JSON files under `<home>/run/`; never opens the store and never
puts a secret (provider keys, header values) into a summary.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from suite.config import GatewayConfig, GatewaySettings, Route
from suite.errors import AiopsError, ConfigError
from suite.home import Home

PIDS_SUBDIR = "gateway-pids"  # one <pid>.json per running gateway process
RELOAD_SUBDIR = "reload"  # request.json (from the CLI) and <pid>.json (each answer)
# Route fields whose values may be secret: a summary names them, never shows them.
SECRET_ROUTE_FIELDS = frozenset({"provider_key", "request_headers", "response_headers"})
# Gateway settings that a running process cannot change (sockets, spool writer).
RESTART_SETTINGS = tuple(f.name for f in fields(GatewaySettings))
# Top-level sections other than routes and [gateway]: compared as a whole.
_NOT_GLOBAL = frozenset({"path", "routes", "gateway"})


@dataclass(frozen=True)
class RouteChange:
    route: str
    action: str  # 'added' | 'removed' | 'changed'
    keys: tuple[str, ...] = ()
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None

    @property
    def summary(self) -> str:
        if self.action == "changed":
            return f"config reload: route {self.route} changed ({', '.join(self.keys)})"
        return f"config reload: route {self.route} {self.action}"


@dataclass(frozen=True)
class ConfigDiff:
    routes: tuple[RouteChange, ...]
    global_sections: tuple[str, ...]  # e.g. ('slos', 'notify')
    restart_needed: tuple[str, ...]  # e.g. ('gateway.listen_port 8080 -> 9090',)

    @property
    def empty(self) -> bool:
        return not (self.routes or self.global_sections or self.restart_needed)

    def lines(self) -> list[str]:
        out = [c.summary.removeprefix("config reload: ") for c in self.routes]
        if self.global_sections:
            out.append(f"changed: {', '.join(self.global_sections)}")
        out += [f"needs a restart to take effect: {r}" for r in self.restart_needed]
        return out or ["no changes"]


def _safe_value(value: object) -> object:
    if isinstance(value, tuple) and value and hasattr(value[0], "url"):
        # Upstreams, without any user:password@ a URL may carry.
        return [re.sub(r"//[^/@]*@", "//", u.url) for u in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, tuple):
        return [_safe_value(v) for v in value]
    return value


def route_snapshot(route: Route) -> dict[str, Any]:
    """A route's settings for a change record: secret fields only say whether set."""
    out: dict[str, Any] = {}
    for f in fields(route):
        value = getattr(route, f.name)
        if f.name in SECRET_ROUTE_FIELDS:
            if f.name == "provider_key":
                out[f.name] = "(set)" if value else None
            else:  # header rules: the names and actions, never the values
                out[f.name] = [f"{a} {n}" for a, n, _v in value] if value else []
        else:
            out[f.name] = _safe_value(value)
    return out


def diff_configs(old: GatewayConfig, new: GatewayConfig) -> ConfigDiff:
    """What a reload from `old` to `new` changes, route by route."""
    old_routes = {r.name: r for r in old.routes}
    new_routes = {r.name: r for r in new.routes}
    changes: list[RouteChange] = []
    for name, route in old_routes.items():
        if name not in new_routes:
            changes.append(RouteChange(name, "removed", before=route_snapshot(route)))
    for name, route in new_routes.items():
        before = old_routes.get(name)
        if before is None:
            changes.append(RouteChange(name, "added", after=route_snapshot(route)))
            continue
        keys = tuple(
            f.name for f in fields(route) if getattr(route, f.name) != getattr(before, f.name)
        )
        if keys:
            changes.append(
                RouteChange(name, "changed", keys, route_snapshot(before), route_snapshot(route))
            )
    sections = tuple(
        f.name
        for f in fields(new)
        if f.name not in _NOT_GLOBAL and getattr(new, f.name) != getattr(old, f.name)
    )
    restart = tuple(
        f"gateway.{k} {getattr(old.gateway, k)!r} -> {getattr(new.gateway, k)!r}"
        for k in RESTART_SETTINGS
        if getattr(old.gateway, k) != getattr(new.gateway, k)
    )
    return ConfigDiff(tuple(changes), sections, restart)


# -- the files between `aiops gateway reload` and the gateways ------------------------------
def pid_file(home: Home, pid: int | None = None) -> Path:
    return home.run_dir / PIDS_SUBDIR / f"{pid or os.getpid()}.json"


def result_file(home: Home, pid: int | None = None) -> Path:
    return home.run_dir / RELOAD_SUBDIR / f"{pid or os.getpid()}.json"


def request_file(home: Home) -> Path:
    return home.run_dir / RELOAD_SUBDIR / "request.json"


def write_json_atomically(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, default=str, sort_keys=True))
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _is_gateway(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc: trust the pid file
    return b"gateway" in cmdline


def running_gateways(home: Home) -> list[dict[str, Any]]:
    """Pid files of gateway processes still alive (stale files are removed)."""
    out = []
    for f in sorted((home.run_dir / PIDS_SUBDIR).glob("*.json")):
        info = read_json(f)
        pid = info.get("pid") if isinstance(info, dict) else None
        if isinstance(pid, int) and _is_gateway(pid):
            out.append(info)
        else:
            f.unlink(missing_ok=True)
    return out


def request_reload(home: Home, *, timeout: float = 15.0) -> list[dict[str, Any]]:
    """Ask every running gateway of `home` to reload (SIGHUP) and wait for each answer.
    Returns the answers; raises AiopsError when none runs or one does not answer."""
    gateways = running_gateways(home)
    if not gateways:
        raise AiopsError(
            f"no running gateway found under {home.run_dir / PIDS_SUBDIR} "
            "(start one with `aiops gateway --home DIR`)"
        )
    request_id = secrets.token_hex(6)
    write_json_atomically(
        request_file(home), {"id": request_id, "requested_at": time.time(), "pid": os.getpid()}
    )
    for g in gateways:
        os.kill(int(g["pid"]), signal.SIGHUP)
    answers: dict[int, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while len(answers) < len(gateways) and time.monotonic() < deadline:
        for g in gateways:
            pid = int(g["pid"])
            if pid in answers:
                continue
            answer = read_json(result_file(home, pid))
            if isinstance(answer, dict) and answer.get("request_id") == request_id:
                answers[pid] = answer
        time.sleep(0.05)
    missing = [int(g["pid"]) for g in gateways if int(g["pid"]) not in answers]
    if missing:
        raise AiopsError(
            f"gateway process(es) {', '.join(map(str, missing))} did not answer the reload "
            f"within {timeout:g} s (see <home>/logs/gateway.log)"
        )
    return [answers[int(g["pid"])] for g in gateways]


def report_reload(answers: list[dict[str, Any]]) -> int:
    """Print what the gateways said; raises ConfigError (exit 2) on a refused config."""
    failed = [a for a in answers if not a.get("ok")]
    if failed:
        reason = failed[0].get("error") or "unknown error"
        raise ConfigError(
            f"reload refused, the gateway keeps running the previous config:\n{reason}"
        )
    first = answers[0]
    n = len(answers)
    print(
        f"gateway reloaded {first.get('config')} "
        f"({n} process{'es' if n != 1 else ''}, {first.get('routes')} routes)"
    )
    for line in first.get("changes") or ["no changes"]:
        print(f"  {line}")
    return 0
