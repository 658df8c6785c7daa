"""The gateway's admin endpoint for CI pipelines: `POST /changes` records a change,
`GET /healthz` says the gateway is up. A stdlib HTTP server on its own thread.

It never runs on the proxy's event loop and never opens DuckDB: a change is written as a
spool segment (`spool_change`) that the worker's ingest job loads exactly once.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import logging
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from suite.change_model import ChangeError, check_new_change
from suite.change_spool import spool_change
from suite.config import GatewayConfig
from suite.errors import ConfigError
from suite.home import Home

log = logging.getLogger("aiops.admin")

MAX_BODY_BYTES = 64 * 1024
GATEWAY_INDEX_ENV = "AIOPS_GATEWAY_INDEX"  # set by `aiops gateway --processes N`


def with_admin_port(config: GatewayConfig, port: int) -> GatewayConfig:
    """The config with `aiops gateway --admin-port P` in place of [gateway] admin_port."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"--admin-port: {port} is not a port (0-65535; 0 = no endpoint)")
    return dataclasses.replace(config, changes=dataclasses.replace(config.changes, admin_port=port))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], endpoint: AdminEndpoint) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.endpoint = endpoint
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "aiops-admin"
    sys_version = ""
    timeout = 15  # a client that stops sending gets its connection closed
    body_read = False

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        # The request line only: never headers (Authorization).
        log.debug("admin: %s %s", self.address_string(), format % args)

    def _send(
        self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        body = json.dumps(payload).encode()
        if self.command == "POST" and not self.body_read:
            # The request body was not read: the connection cannot carry another request.
            self.close_connection = True
            headers = {**(headers or {}), "Connection": "close"}
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, code: str, message: str) -> None:
        self._send(status, {"error": {"type": code, "status": status, "message": message}})

    def _authorized(self) -> bool:
        token = self.server.endpoint.token
        if not token:
            return True
        given = self.headers.get("Authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            value.strip().encode(), token.encode()
        ):
            return True
        self._send(
            401,
            {"error": {"type": "unauthorized", "status": 401,
                       "message": "send the admin token as 'Authorization: Bearer <token>'"}},
            {"WWW-Authenticate": "Bearer"},
        )  # fmt: skip
        return False

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._send(200, {"status": "ok", "endpoints": ["POST /changes", "GET /healthz"]})
        elif path == "/changes":
            self._error(405, "method_not_allowed", "use POST /changes with a JSON body")
        else:
            self._error(
                404, "not_found", f"no such endpoint {path!r} (POST /changes, GET /healthz)"
            )

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        self.body_read = False
        path = self.path.split("?", 1)[0]
        if path != "/changes":
            self._error(
                404, "not_found", f"no such endpoint {path!r} (POST /changes, GET /healthz)"
            )
            return
        if not self._authorized():
            return
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self._error(411, "length_required", "send the JSON body with a Content-Length")
            return
        if int(length) > MAX_BODY_BYTES:
            self._error(413, "body_too_large", f"the body must be at most {MAX_BODY_BYTES} bytes")
            return
        raw = self.rfile.read(int(length))
        self.body_read = True
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            self._error(400, "invalid_json", f"the body is not JSON: {e}")
            return
        if not isinstance(body, dict):
            self._error(400, "invalid_change", "the body must be a JSON object")
            return
        try:
            change = check_new_change(body, default_status="implemented")
        except ChangeError as e:
            self._error(400, "invalid_change", str(e))
            return
        try:
            cid = self.server.endpoint.record(change)
        except OSError as e:
            log.error("admin: could not spool a change: %s", e)
            self._error(503, "spool_unavailable", f"could not record the change: {e.strerror or e}")
            return
        self._send(
            201,
            {"id": cid, "status": change.status, "service": change.service, "kind": change.kind},
            {"Location": f"/changes/{cid}"},
        )


class AdminEndpoint:
    """mitmproxy addon owning the admin server: binds when built (a taken port fails the
    gateway at start), serves from `running()` on a thread, stops in `done()`."""

    def __init__(self, config: GatewayConfig, home: Home, listen_host: str) -> None:
        self.home = home
        self.port = config.changes.admin_port
        self.token = config.changes.admin_token
        self.server: _Server | None = None
        self.thread: threading.Thread | None = None
        if not self.port or os.environ.get(GATEWAY_INDEX_ENV, "0") != "0":
            return
        try:
            self.server = _Server((listen_host, self.port), self)
        except OSError as e:
            raise ConfigError(
                f"{config.path}: gateway.admin_port: cannot listen on {listen_host}:{self.port}: "
                f"{e.strerror or e}"
            ) from None
        if not self.token and listen_host not in ("127.0.0.1", "localhost", "::1"):
            log.warning(
                "admin: the endpoint on %s:%s takes changes from anyone who can reach it; "
                'set [gateway] admin_token = "${ENV_VAR}"',
                listen_host,
                self.port,
            )

    def set_config(self, config: GatewayConfig) -> None:
        self.token = config.changes.admin_token
        if config.changes.admin_port != self.port:
            log.warning(
                "admin: admin_port changed to %s; restart the gateway to move the endpoint",
                config.changes.admin_port,
            )

    def record(self, change: Any) -> str:
        return spool_change(
            self.home.spool_dir,
            service=change.service,
            kind=change.kind,
            summary=change.summary,
            source="api",
            status=change.status,
            ts=change.ts,
            risk=change.risk,
            change_type=change.change_type,
            window_start=change.window_start,
            window_end=change.window_end,
            requested_by=change.requested_by,
            approved_by=change.approved_by,
            detail=change.detail,
        )

    def running(self) -> None:
        if self.server is None or self.thread is not None:
            return
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="aiops-admin", daemon=True
        )
        self.thread.start()
        host, port = str(self.server.server_address[0]), self.server.server_address[1]
        shown = f"[{host}]" if ":" in host else host
        auth = ", bearer token required" if self.token else ""
        print(f"aiops admin endpoint on http://{shown}:{port} (POST /changes{auth})", flush=True)

    def done(self) -> None:
        if self.server is not None:
            if self.thread is not None:
                self.server.shutdown()
            self.server.server_close()
            self.server = None
