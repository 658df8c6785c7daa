from __future__ import annotations

from suite.sse import StreamTee, iter_sse_events


def test_events_with_names_multiline_data_crlf_and_comments() -> None:
    body = b": keepalive\r\n\r\nevent: a\r\ndata: 1\r\ndata: 2\r\n\r\ndata: last"
    events = list(iter_sse_events(body))
    assert [(e.event, e.data) for e in events] == [("a", "1\n2"), (None, "last")]
    assert body[events[0].offset :].startswith(b"event: a")


def test_tee_passes_chunks_through_and_keeps_both_ends_when_bounded() -> None:
    tee = StreamTee(limit=100)
    chunks = [f"data: {i:03d}\n\n".encode() for i in range(100)]
    assert [tee(c) for c in chunks] == chunks
    assert tee(b"") == b""
    kept = tee.copy()
    assert tee.size == sum(len(c) for c in chunks) and tee.dropped > 0
    events = [e.data for e in iter_sse_events(kept)]
    assert events[0] == "000" and events[-1] == "099"
    assert all(len(e) == 3 for e in events)  # the cut never leaves half an event behind
    assert tee.time_at(0) is not None
