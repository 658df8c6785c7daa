"""A small, fast HTTP/1.1 upstream that behaves like an insurance REST API, with faults
on demand, for tests, benchmarks and the demo. Loopback use only; never a real service.

Paths (any prefix before them is ignored, so /claims/status/500 works):
  /status/<code>                 answer with that status
  /delay/<ms>                    answer after a delay
  /bytes/<n>                     n bytes of body
  /drip?chunks=N&interval_ms=M   a chunked body, one chunk every M ms (slow stream)
  /reset                         close the connection without answering
  /_emulator/fault?error_ratio=R&status=S&delay_ms=D
                                 from now on, fail a share R of ordinary requests with
                                 status S (default 503) and delay every ordinary answer
                                 by D ms: a fault to detect (`/_emulator/fault` alone
                                 clears it); answers the fault now in force
  /_emulator/stats               {"requests": N}: requests answered so far, not counting
                                 /_emulator/ ones (which upstream of a pool got traffic)
  /_emulator/headers             {"headers": [[name, value], ...]}: the request's header
                                 lines as received (also under a route prefix, e.g.
                                 /claims/_emulator/headers); credential values hashed
  /_emulator/version?value=V     from now on, send `X-Version: V` with every answer (a
                                 "deploy" the gateway sees; no value: stop sending it);
                                 also set at start with --api-version V
  anything else                  200 JSON describing the request (an insurance-ish record;
                                 `credential_sha256`: sha256 of each credential header
                                 received, so a test sees what a gateway forwarded)
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import signal
import sys
from dataclasses import asdict, dataclass
from urllib.parse import parse_qs

MAX_HEADER_BYTES = 64 * 1024
REASONS = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 404: "Not Found",
           429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
           503: "Service Unavailable", 504: "Gateway Timeout"}  # fmt: skip


def _response(status: int, body: bytes, content_type: str = "application/json") -> bytes:
    head = (
        f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        + (f"X-Version: {VERSION['value']}\r\n" if VERSION["value"] else "")
        + "Server: aiops-emulator/1\r\n\r\n"
    )
    return head.encode() + body


@dataclass
class Fault:
    """What the emulator does to ordinary requests right now (set by /_emulator/fault)."""

    error_ratio: float = 0.0
    status: int = 503
    delay_ms: float = 0.0

    @classmethod
    def from_query(cls, query: dict[str, list[str]]) -> Fault:
        def num(name: str, default: float) -> float:
            return float(query.get(name, [default])[0])

        ratio = min(max(num("error_ratio", 0.0), 0.0), 1.0)
        return cls(ratio, int(num("status", 503)), max(num("delay_ms", 0.0), 0.0))


FAULT = Fault()
STATS = {"requests": 0}
VERSION: dict[str, str | None] = {"value": None}  # sent as X-Version when set
_rng = random.Random(1)


def _echo_headers(header_lines: list[str]) -> dict[str, list[list[str]]]:
    """The request's header lines in order, repeats kept ([name, value] pairs); the values
    of credential headers are replaced by their sha256."""
    out = []
    for line in header_lines:
        if ":" not in line:
            continue
        name, value = (s.strip() for s in line.split(":", 1))
        if name.lower() in ("authorization", "x-api-key", "api-key"):
            value = "sha256:" + hashlib.sha256(value.encode()).hexdigest()
        out.append([name, value])
    return {"headers": out}


def _parse_route(target: str) -> tuple[str, str, dict[str, list[str]]]:
    path, _, query = target.partition("?")
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["_emulator", "fault"]:
        return "fault", "", parse_qs(query)
    if parts[:2] == ["_emulator", "stats"]:
        return "stats", "", {}
    if "_emulator" in parts and parts[parts.index("_emulator") + 1 :][:1] == ["headers"]:
        return "headers", "", {}
    if "_emulator" in parts and parts[parts.index("_emulator") + 1 :][:1] == ["version"]:
        return "version", "", parse_qs(query)
    for i, p in enumerate(parts):
        if p in ("status", "delay", "bytes") and i + 1 < len(parts) and parts[i + 1].isdigit():
            return p, parts[i + 1], parse_qs(query)
        if p in ("drip", "reset"):
            return p, "", parse_qs(query)
    return "", "", parse_qs(query)


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            except asyncio.LimitOverrunError:
                writer.write(_response(400, b'{"error":"headers too large"}'))
                return
            lines = head.decode("latin-1").split("\r\n")
            try:
                method, target, _version = lines[0].split(" ", 2)
            except ValueError:
                writer.write(_response(400, b'{"error":"bad request line"}'))
                return
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            length = int(headers.get("content-length", "0") or 0)
            body = await reader.readexactly(length) if length else b""
            action, arg, query = _parse_route(target)
            global FAULT
            if action == "fault":
                FAULT = Fault.from_query(query)
                writer.write(_response(200, json.dumps(asdict(FAULT)).encode()))
                await writer.drain()
                continue
            if action == "stats":
                writer.write(_response(200, json.dumps(STATS).encode()))
                await writer.drain()
                continue
            if action == "headers":
                writer.write(_response(200, json.dumps(_echo_headers(lines[1:])).encode()))
                await writer.drain()
                continue
            if action == "version":
                VERSION["value"] = query.get("value", [""])[0].strip() or None
                writer.write(_response(200, json.dumps({"version": VERSION["value"]}).encode()))
                await writer.drain()
                continue
            STATS["requests"] += 1
            if action == "" and FAULT.delay_ms:
                await asyncio.sleep(FAULT.delay_ms / 1000)
            if action == "" and FAULT.error_ratio and _rng.random() < FAULT.error_ratio:
                action, arg = "status", str(FAULT.status)
            if action == "reset":
                writer.transport.abort()
                return
            if action == "status":
                status = int(arg)
                writer.write(_response(status, json.dumps({"status": status}).encode()))
            elif action == "delay":
                await asyncio.sleep(int(arg) / 1000)
                writer.write(_response(200, json.dumps({"delayed_ms": int(arg)}).encode()))
            elif action == "bytes":
                writer.write(_response(200, b"x" * int(arg), "application/octet-stream"))
            elif action == "drip":
                chunks = int(query.get("chunks", ["20"])[0])
                interval = int(query.get("interval_ms", ["100"])[0]) / 1000
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                    b"Transfer-Encoding: chunked\r\nServer: aiops-emulator/1\r\n\r\n"
                )
                for i in range(chunks):
                    data = f"chunk {i}\n".encode()
                    writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                    await writer.drain()
                    await asyncio.sleep(interval)
                writer.write(b"0\r\n\r\n")
            else:
                record = {
                    "method": method,
                    "path": target.split("?", 1)[0],
                    "received_bytes": len(body),
                    # sha256 of each credential header that arrived (never the value):
                    # shows which key a gateway forwarded, or that it forwarded none.
                    "credential_sha256": {
                        k: hashlib.sha256(headers[k].encode()).hexdigest()
                        for k in ("authorization", "x-api-key", "api-key")
                        if k in headers
                    },
                    "policy": {"id": "POL-000123", "status": "active", "premium": 1234.5},
                }
                writer.write(_response(200, json.dumps(record).encode()))
            await writer.drain()
            if headers.get("connection", "").lower() == "close":
                return
    except (ConnectionError, asyncio.IncompleteReadError):
        return
    finally:
        writer.close()


async def serve(host: str, port: int, ready: asyncio.Event | None = None) -> None:
    server = await asyncio.start_server(handle, host, port, limit=MAX_HEADER_BYTES, backlog=1024)
    bound = server.sockets[0].getsockname()
    print(f"emulator listening on http://{bound[0]}:{bound[1]}", flush=True)
    if ready is not None:
        ready.set()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9001, help="0 = any free port (printed)")
    p.add_argument(
        "--api-version",
        metavar="V",
        help="send `X-Version: V` with every answer (see /_emulator/version)",
    )
    args = p.parse_args(argv)
    VERSION["value"] = args.api_version
    asyncio.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
