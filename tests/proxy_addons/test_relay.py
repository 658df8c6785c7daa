"""The loopback stream relay: a parked httpx answer is served once, framed as it came."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx

from proxy_addons.relay import RELAY_HEADER, StreamRelay


async def _chunks() -> AsyncIterator[bytes]:
    for part in (b"data: one\n\n", b"data: two\n\n", b"data: [DONE]\n\n"):
        yield part


def _handler(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/sse":
        return httpx.Response(
            200, headers={"content-type": "text/event-stream", "x-up": "1"}, content=_chunks()
        )
    return httpx.Response(429, json={"error": "slow down"}, headers={"retry-after": "3"})


async def _fetch(port: int, token: str, body: bytes = b"{}") -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n{RELAY_HEADER}: {token}\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    data = await reader.read()
    writer.close()
    return data


def test_relay_streams_a_parked_answer_once_with_its_framing() -> None:
    async def scenario() -> tuple[bytes, bytes, bytes]:
        relay = StreamRelay()
        await relay.start()
        assert relay.port is not None
        async with httpx.AsyncClient(transport=httpx.MockTransport(_handler)) as client:
            sse = await client.send(client.build_request("GET", "http://up/sse"), stream=True)
            limited = await client.send(client.build_request("GET", "http://up/x"), stream=True)
            token_sse, token_429 = relay.park(sse), relay.park(limited)
            streamed = await _fetch(relay.port, token_sse)
            whole = await _fetch(relay.port, token_429, b'{"model": "m"}')
            again = await _fetch(relay.port, token_sse)  # a token serves once
        await relay.stop()
        return streamed, whole, again

    streamed, whole, again = asyncio.run(scenario())
    head, _, body = streamed.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"transfer-encoding: chunked" in head and b"x-up: 1" in head
    assert body == (
        b"b\r\ndata: one\n\n\r\nb\r\ndata: two\n\n\r\ne\r\ndata: [DONE]\n\n\r\n0\r\n\r\n"
    )
    head, _, body = whole.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 429 Too Many Requests")
    assert b"retry-after: 3" in head and f"content-length: {len(body)}".encode() in head
    assert body == b'{"error":"slow down"}'
    assert again.startswith(b"HTTP/1.1 502")
