"""Reloads the gateway config on SIGHUP (or `aiops gateway reload`) without a restart.

The file is read and validated off the event loop; a good config is handed to every
addon's `set_config` in one synchronous step on the loop (no request sees half of it),
open connections stay open, and each change is spooled as a `changes` row. A bad config
is refused: the running config stays and the reason is logged and answered.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from typing import Any

from mitmproxy import ctx

from suite.change_spool import spool_change
from suite.config import GatewayConfig, load_gateway_config
from suite.config_reload import (
    ConfigDiff,
    diff_configs,
    pid_file,
    read_json,
    request_file,
    result_file,
    write_json_atomically,
)
from suite.errors import ConfigError
from suite.home import Home

log = logging.getLogger("aiops.reload")
# With `--processes N` every process reloads, but only process 0 records the change.
GATEWAY_INDEX_ENV = "AIOPS_GATEWAY_INDEX"


def config_addons(addons: list[Any]) -> list[Any]:
    """Every addon (nested ones too) that takes a config through `set_config`."""
    out: list[Any] = []
    for addon in addons:
        if callable(getattr(addon, "set_config", None)):
            out.append(addon)
        out += config_addons(list(getattr(addon, "addons", []) or []))
    return out


def apply_config(addons: list[Any], old: GatewayConfig, new: GatewayConfig) -> None:
    """`set_config(new)` on each addon, synchronously; if one fails, the ones already
    switched get `old` back and the error propagates."""
    done: list[Any] = []
    try:
        for addon in addons:
            addon.set_config(new)
            done.append(addon)
    except Exception:
        for addon in done:
            try:
                addon.set_config(old)
            except Exception:  # pragma: no cover - it accepted `old` before
                log.exception("reload: could not restore the previous config on %r", addon)
        raise


def record_changes(
    home: Home, diff: ConfigDiff, config: GatewayConfig, request_id: str | None
) -> list[str]:
    """One change per affected route, one for the gateway for global settings."""
    ids = []
    base = {"config": config.path, "request_id": request_id, "gateway_pid": os.getpid()}
    for c in diff.routes:
        detail = {
            **base,
            "action": c.action,
            "keys": list(c.keys),
            "before": c.before,
            "after": c.after,
        }
        ids.append(
            spool_change(
                home.spool_dir, service=c.route, kind="config", source="gateway",
                summary=c.summary, detail=detail,
            )
        )  # fmt: skip
    if diff.global_sections or diff.restart_needed:
        parts = []
        if diff.global_sections:
            parts.append(f"{', '.join(diff.global_sections)} changed")
        if diff.restart_needed:
            parts.append(f"needs a restart: {'; '.join(diff.restart_needed)}")
        ids.append(
            spool_change(
                home.spool_dir, service="gateway", kind="config", source="gateway",
                summary=f"config reload: {'; '.join(parts)}",
                detail={**base, "sections": list(diff.global_sections),
                        "restart_needed": list(diff.restart_needed)},
            )
        )  # fmt: skip
    return ids


class ConfigReload:
    def __init__(self, config: GatewayConfig, home: Home) -> None:
        self.config = config
        self.home = home
        self.record = os.environ.get(GATEWAY_INDEX_ENV, "0") in ("", "0")
        self._task: asyncio.Task[None] | None = None
        self._again = False
        self.reloads = 0

    def set_config(self, config: GatewayConfig) -> None:
        self.config = config

    def running(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGHUP, self.trigger)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
            log.warning("reload: SIGHUP handler not installed (not in the main thread)")
        write_json_atomically(
            pid_file(self.home),
            {"pid": os.getpid(), "config": self.config.path, "started_at": time.time()},
        )

    def done(self) -> None:
        pid_file(self.home).unlink(missing_ok=True)

    def trigger(self) -> None:
        """SIGHUP: reload now, or once more after the reload in progress."""
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.get_running_loop().create_task(self._reload_until_settled())

    async def _reload_until_settled(self) -> None:
        while True:
            self._again = False
            try:
                await self.reload()
            except Exception:
                log.exception("reload: failed")
            if not self._again:
                return

    async def reload(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        request = await loop.run_in_executor(None, read_json, request_file(self.home))
        request_id = request.get("id") if isinstance(request, dict) else None
        old = self.config
        result: dict[str, Any] = {
            "request_id": request_id, "pid": os.getpid(), "config": old.path, "at": time.time(),
        }  # fmt: skip
        try:
            new = await loop.run_in_executor(None, load_gateway_config, old.path)
            reverse = any(m.startswith("reverse") for m in ctx.options.mode)
            if reverse and not new.routes:
                raise ConfigError(
                    f"{new.path}: routes: reverse mode needs at least one [[routes]] entry"
                )
            diff = diff_configs(old, new)
            # No await from here to the end of apply_config: one step for the proxy.
            apply_config(config_addons(list(ctx.master.addons.chain)), old, new)
        except Exception as e:
            reason = str(e) if isinstance(e, ConfigError) else f"{type(e).__name__}: {e}"
            log.error("config reload refused, still running the previous config: %s", reason)
            result.update(ok=False, error=reason, routes=len(old.routes))
        else:
            self.config = new
            self.reloads += 1
            for line in diff.lines():
                log.info("config reload: %s", line)
            ids: list[str] = []
            if self.record and not diff.empty:
                ids = await loop.run_in_executor(
                    None, record_changes, self.home, diff, new, request_id
                )
            result.update(ok=True, routes=len(new.routes), changes=diff.lines(), change_ids=ids)
        await loop.run_in_executor(None, write_json_atomically, result_file(self.home), result)
        return result
