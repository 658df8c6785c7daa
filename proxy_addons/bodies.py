"""Captures headers and bodies for routes that ask for it (`capture_bodies` =
metadata | redacted | full), into `request_bodies`, keyed by the request id.

Secrets in headers are masked whatever the policy; bodies are redacted (policy
`redacted`) in the spool writer's thread, before anything reaches disk.
"""

from __future__ import annotations

import json
import logging
from functools import partial
from typing import NamedTuple

from mitmproxy import ctx, http

from proxy_addons.capture import META_REQUEST_ID, META_STREAM_COUNTER
from proxy_addons.llm import META_TEE
from suite.config import CaptureSettings
from suite.home import resolve_home
from suite.redact import BUILTIN_PATTERNS, Redactor, compile_custom_patterns
from suite.schema import bodies_to_arrow
from suite.spool import SpoolWriter, write_segment_atomically

log = logging.getLogger("aiops.bodies")

SECRET_HEADERS = {
    "authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key",
    "x-goog-api-key", "x-amz-security-token",
}  # fmt: skip
SECRET_HEADER_WORDS = ("token", "secret", "key", "auth", "password", "session", "signature")
MASK = "REDACTED"


def masked_headers(headers: http.Headers) -> str:
    """Headers as a JSON object, secrets replaced: never a credential on disk."""
    out: dict[str, str] = {}
    for name, value in headers.items(multi=True):
        lower = name.lower()
        secret = lower in SECRET_HEADERS or any(w in lower for w in SECRET_HEADER_WORDS)
        masked = MASK if secret else value
        out[lower] = f"{out[lower]}, {masked}" if lower in out else masked
    return json.dumps(out)


class RawBodies(NamedTuple):
    """What the hook keeps (references only); the writer thread turns it into a row."""

    request_id: str
    ts: float
    route: str | None
    policy: str
    request_headers: str
    response_headers: str | None
    request_content_type: str | None
    response_content_type: str | None
    request_body: bytes | None
    response_body: bytes | None
    request_body_bytes: int | None
    response_body_bytes: int | None


def body_row(
    raw: RawBodies, redactor: Redactor, max_bytes: int, gateway_id: str
) -> tuple[object, ...]:
    counts: dict[str, int] = {}

    def text(data: bytes | None) -> tuple[str | None, bool]:
        if raw.policy == "metadata" or data is None:
            return None, False
        if raw.policy == "redacted":
            redacted, found, truncated = redactor.redact_bytes(data, max_bytes)
            for k, v in found.items():
                counts[k] = counts.get(k, 0) + v
            return redacted, truncated
        cut = data[:max_bytes]
        return cut.decode("utf-8", "replace"), len(data) > max_bytes

    req_text, req_cut = text(raw.request_body)
    resp_text, resp_cut = text(raw.response_body)
    return (
        raw.request_id, raw.ts, raw.route, raw.policy,
        raw.request_headers, raw.response_headers,
        raw.request_content_type, raw.response_content_type,
        req_text, resp_text, raw.request_body_bytes, raw.response_body_bytes,
        req_cut, resp_cut, json.dumps(counts) if counts else None, gateway_id,
    )  # fmt: skip


class BodyCapture:
    def __init__(self) -> None:
        self.writer: SpoolWriter | None = None
        self.settings = CaptureSettings()
        self.redactor = Redactor(BUILTIN_PATTERNS)

    def running(self) -> None:
        router = ctx.master.addons.get("router")
        capture = ctx.master.addons.get("capture")
        if router is None or capture is None:
            log.warning("bodies: needs the router and capture addons; body capture is off")
            return
        config = router.config
        self.settings = config.capture
        custom = compile_custom_patterns(
            list(config.redaction_patterns), f"{config.path}: redaction.patterns"
        )
        self.redactor = Redactor(BUILTIN_PATTERNS + custom)
        if not any(r.capture_bodies != "none" for r in config.routes):
            return  # nothing to capture: no thread, no files
        home = resolve_home(getattr(ctx.options, "aiops_home", "") or None).ensure()
        gateway_id = capture.gateway_id
        redactor, max_bytes = self.redactor, self.settings.max_body_bytes
        self.writer = SpoolWriter(
            home.spool_dir / "bodies",
            gateway_id,
            flush_interval=ctx.options.aiops_flush_interval,
            flush_rows=ctx.options.aiops_flush_rows,
            max_backlog_rows=ctx.options.aiops_max_backlog,
            write_segment=partial(write_segment_atomically, to_arrow=bodies_to_arrow),
            prepare_rows=lambda items: [
                body_row(raw, redactor, max_bytes, gateway_id)  # type: ignore[arg-type]
                for raw in items
            ],
        )
        self.writer.start()

    def done(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def response(self, flow: http.HTTPFlow) -> None:
        self._capture(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._capture(flow)

    def _capture(self, flow: http.HTTPFlow) -> None:
        route = flow.metadata.get("aiops_route_cfg")
        request_id = flow.metadata.get(META_REQUEST_ID)
        if self.writer is None or route is None or route.capture_bodies == "none" or not request_id:
            return
        req, resp = flow.request, flow.response
        tee = flow.metadata.get(META_TEE)
        counter = flow.metadata.get(META_STREAM_COUNTER)
        if resp is None:
            resp_body, resp_size = None, None
        elif tee is not None:
            resp_body, resp_size = tee.copy(), tee.size
        elif counter is not None:
            resp_body, resp_size = None, counter.n  # streamed without a tee: size only
        else:
            resp_body = resp.raw_content
            resp_size = len(resp_body) if resp_body is not None else None
        limit = self.settings.max_body_bytes + 1  # one more byte tells "truncated"
        req_body = req.raw_content
        self.writer.append(
            RawBodies(
                request_id,
                req.timestamp_start,
                route.name,
                route.capture_bodies,
                masked_headers(req.headers),
                masked_headers(resp.headers) if resp is not None else None,
                req.headers.get("content-type"),
                resp.headers.get("content-type") if resp is not None else None,
                req_body[:limit] if req_body is not None else None,
                resp_body[:limit] if resp_body is not None else None,
                len(req_body) if req_body is not None else None,
                resp_size,
            )  # fmt: skip
        )


addons = [BodyCapture()]
