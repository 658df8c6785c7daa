from __future__ import annotations

import json

from mitmproxy import http

from proxy_addons.bodies import RawBodies, body_row, masked_headers
from suite.redact import BUILTIN_PATTERNS, Redactor
from suite.schema import BODY_COLUMN_NAMES, bodies_to_arrow


def raw(
    policy: str, request_body: bytes, response_body: bytes | None = b'{"ok": true}'
) -> RawBodies:
    return RawBodies(
        "g-1", 1_790_000_000.0, "claims", policy,
        masked_headers(http.Headers(authorization="Bearer sk-live-123", **{"x-api-key": "k-9", "x-trace": "t"})),
        None, "application/json", "application/json",
        request_body, response_body, len(request_body),
        len(response_body) if response_body is not None else None,
    )  # fmt: skip


def test_headers_never_keep_credentials() -> None:
    h = json.loads(
        masked_headers(
            http.Headers(
                [
                    (b"Authorization", b"Bearer sk"),
                    (b"Cookie", b"a=b"),
                    (b"X-Session-Token", b"t"),
                    (b"x-api-key", b"k"),
                    (b"Accept", b"*/*"),
                    (b"Accept", b"text/html"),
                ]
            )  # fmt: skip
        )
    )
    assert h == {
        "authorization": "REDACTED", "cookie": "REDACTED", "x-session-token": "REDACTED",
        "x-api-key": "REDACTED", "accept": "*/*, text/html",
    }  # fmt: skip


def test_policies() -> None:
    redactor = Redactor(BUILTIN_PATTERNS)
    body = b'{"note": "mail jane@example.com"}'
    rows = {
        p: dict(zip(BODY_COLUMN_NAMES, body_row(raw(p, body), redactor, 1000, "g"), strict=True))
        for p in ("metadata", "redacted", "full")
    }
    assert rows["metadata"]["request_body"] is None and rows["metadata"][
        "request_body_bytes"
    ] == len(body)
    assert (
        "[REDACTED:email]" in rows["redacted"]["request_body"]
        and "jane@" not in rows["redacted"]["request_body"]
    )
    assert json.loads(rows["redacted"]["redactions"]) == {"email": 1}
    assert rows["full"]["request_body"] == body.decode()
    for row in rows.values():
        assert "sk-live-123" not in row["request_headers"] and "k-9" not in row["request_headers"]
        assert json.loads(row["request_headers"])["x-trace"] == "t"
    assert bodies_to_arrow([tuple(r.values()) for r in rows.values()]).num_rows == 3


def test_truncation_is_marked() -> None:
    row = dict(
        zip(
            BODY_COLUMN_NAMES,
            body_row(raw("full", b"x" * 101), Redactor(BUILTIN_PATTERNS), 100, "g"),
            strict=True,
        )
    )
    assert row["request_truncated"] is True and len(row["request_body"]) == 100
    assert row["response_truncated"] is False
