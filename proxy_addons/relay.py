"""A loopback relay that lets mitmproxy stream an answer the pool addon already holds.

The pool addon makes retries and fallbacks itself (httpx), so the answer that is finally
served is an open httpx response, not a mitmproxy server connection. Rather than read it
whole, the addon parks it here under a one-time token and points the flow at this relay
(127.0.0.1, a port of its own): mitmproxy then forwards the flow as usual and streams the
body chunk by chunk as the provider sends it, with every stream hook (SSE tee, byte
counter) working. Never used by anything but this process's own flows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
from collections.abc import AsyncIterator
from http import HTTPStatus

import httpx

log = logging.getLogger("aiops.pool")

RELAY_HEADER = "x-aiops-relay"
# A parked answer whose flow never comes to fetch it (client gone) is closed after this.
CLAIM_TIMEOUT_S = 30.0
MAX_HEAD_BYTES = 256 * 1024
# mitmproxy sends the request at once; a relay request that stalls is a bug, not a client.
REQUEST_READ_TIMEOUT_S = 10.0
IDLE_TIMEOUT_S = 120.0  # a kept-alive relay connection with no request is closed after this
FRAMING_HEADERS = frozenset(
    {"content-length", "transfer-encoding", "connection", "keep-alive", "proxy-connection"}
)


class StreamRelay:
    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self.port: int | None = None
        self._parked: dict[str, tuple[httpx.Response, asyncio.TimerHandle]] = {}

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", 0, limit=MAX_HEAD_BYTES
        )
        self.port = int(self._server.sockets[0].getsockname()[1])

    @property
    def running(self) -> bool:
        return self._server is not None and self.port is not None

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for token in list(self._parked):
            await self._discard(token)

    def park(self, response: httpx.Response) -> str:
        """Keep an open response for one relay request; returns its token."""
        token = secrets.token_urlsafe(18)
        loop = asyncio.get_running_loop()
        timer = loop.call_later(CLAIM_TIMEOUT_S, lambda: loop.create_task(self._discard(token)))
        self._parked[token] = (response, timer)
        return token

    async def _discard(self, token: str) -> None:
        parked = self._parked.pop(token, None)
        if parked is not None:
            parked[1].cancel()
            await parked[0].aclose()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve relay requests on one keep-alive connection (mitmproxy reuses it for the
        next managed flow of the same client connection)."""
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                async with asyncio.timeout(IDLE_TIMEOUT_S):
                    head = await reader.readuntil(b"\r\n\r\n")
                headers: dict[str, str] = {}
                for line in head.decode("latin-1").split("\r\n")[1:]:
                    name, sep, value = line.partition(":")
                    if sep:
                        headers[name.strip().lower()] = value.strip()
                async with asyncio.timeout(REQUEST_READ_TIMEOUT_S):
                    await _drain_request_body(reader, headers)
                parked = self._parked.pop(headers.get(RELAY_HEADER, ""), None)
                if parked is None:
                    writer.write(
                        b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n"
                        b"connection: close\r\n\r\n"
                    )
                    await writer.drain()
                    return
                response, timer = parked
                timer.cancel()
                try:
                    await self._relay(response, writer)
                finally:
                    await response.aclose()
                if headers.get("connection", "").lower() == "close":
                    return
        except (
            OSError,
            TimeoutError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ValueError,
        ):
            writer.transport.abort()
        except (httpx.HTTPError, httpx.StreamError) as e:
            # The provider broke off mid-answer: the client sees the cut, as it would have.
            log.warning("pool: relayed answer broke off: %s: %s", type(e).__name__, e)
            writer.transport.abort()
        finally:
            writer.close()

    @staticmethod
    async def _relay(response: httpx.Response, writer: asyncio.StreamWriter) -> None:
        try:
            reason = HTTPStatus(response.status_code).phrase
        except ValueError:
            reason = "Status"
        lines = [f"HTTP/1.1 {response.status_code} {reason}"]
        lines += [
            f"{k}: {v}"
            for k, v in response.headers.multi_items()
            if k.lower() not in FRAMING_HEADERS
        ]
        length = response.headers.get("content-length")
        chunked = length is None or "chunked" in response.headers.get("transfer-encoding", "")
        lines.append("transfer-encoding: chunked" if chunked else f"content-length: {length}")
        pending = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        async for chunk in _raw_chunks(response):
            if not chunk:
                continue
            # The head goes out with the first chunk: one write, one packet.
            writer.write(pending + (b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk))
            pending = b""
            await writer.drain()
        writer.write(pending + (b"0\r\n\r\n" if chunked else b""))
        await writer.drain()


async def _drain_request_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> None:
    """Read (and drop) the request body mitmproxy forwards: the provider already had it."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                return
            await reader.readexactly(size + 2)
    length = int(headers.get("content-length", "0") or 0)
    if length:
        await reader.readexactly(length)


async def _raw_chunks(response: httpx.Response) -> AsyncIterator[bytes]:
    """The body as it arrives (undecoded), or at once if it was already read."""
    if response.is_stream_consumed:
        yield response.content
        return
    async for chunk in response.aiter_raw():
        yield chunk
