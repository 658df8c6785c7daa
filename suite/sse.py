"""Server-sent events: split a captured stream into events, with their byte offsets.

Pure and total: any bytes in, events out; never raises, never blocks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any, NamedTuple

MAX_JSON_BYTES = 16 * 1024 * 1024


def json_or_none(data: bytes | str | None, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """A JSON payload (an SSE event's data, a body), or None for empty, huge or invalid."""
    if not data or len(data) > max_bytes:
        return None
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None


class SseEvent(NamedTuple):
    offset: int  # byte offset of the event's first line in the stream
    event: str | None
    data: str


def iter_sse_events(data: bytes) -> Iterator[SseEvent]:
    """Events of a text/event-stream body; a final event without its blank line counts
    too (a truncated stream still yields what arrived)."""
    pos = 0
    start: int | None = None
    name: str | None = None
    lines: list[str] = []
    n = len(data)
    while pos < n:
        end = data.find(b"\n", pos)
        if end < 0:
            end = n
        line = data[pos:end].rstrip(b"\r").decode("utf-8", "replace")
        if not line:
            if start is not None:
                yield SseEvent(start, name, "\n".join(lines))
            start, name, lines = None, None, []
        elif not line.startswith(":"):
            if start is None:
                start = pos
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "data":
                lines.append(value)
            elif field == "event":
                name = value
        pos = end + 1
    if start is not None and lines:
        yield SseEvent(start, name, "\n".join(lines))


class StreamTee:
    """A response stream function: returns every chunk unchanged, at once, and keeps a
    bounded copy (head and tail) with arrival times for parsing after the stream ends.

    Usage lives at both ends of a stream (Anthropic's message_start, OpenAI's final
    chunk), so past the bound the middle is dropped, never the ends.
    """

    __slots__ = ("limit", "head", "tail", "size", "times", "dropped")
    MAX_TIMES = 64

    def __init__(self, limit: int = 4 * 1024 * 1024) -> None:
        self.limit = limit
        self.head = bytearray()
        self.tail = bytearray()
        self.size = 0
        self.dropped = 0
        # (stream offset, arrival time) of the first chunks: enough to time the first token.
        self.times: list[tuple[int, float]] = []

    def __call__(self, data: bytes) -> bytes:
        if data:
            if len(self.times) < self.MAX_TIMES:
                self.times.append((self.size, time.time()))
            self.size += len(data)
            half = self.limit // 2
            if len(self.head) < half:
                self.head += data
            else:
                self.tail += data
                if len(self.tail) > 2 * half:
                    cut = len(self.tail) - half
                    del self.tail[:cut]
                    self.dropped += cut
        return data

    def copy(self) -> bytes:
        """What was kept; if the middle was dropped, the tail starts at an event boundary."""
        if not self.dropped:
            return bytes(self.head + self.tail)
        tail = bytes(self.tail)
        boundary = tail.find(b"\n\n")
        return bytes(self.head) + b"\n\n" + (tail[boundary + 2 :] if boundary >= 0 else b"")

    def time_at(self, offset: int) -> float | None:
        """Arrival time of the chunk holding this offset (the last recorded one before it)."""
        found = None
        for start, t in self.times:
            if start > offset:
                break
            found = t
        return found
