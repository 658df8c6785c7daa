"""Recognises LLM API calls (OpenAI Chat/Responses/Embeddings, Anthropic Messages, any
OpenAI-compatible server) and fills the token, model, cost and timing columns.

Streams pass through untouched (a tee keeps a bounded copy); all parsing happens later in
the spool writer's thread, never on the proxy's event loop.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from mitmproxy import ctx, http

from proxy_addons.capture import add_deferred
from suite.llm_pricing import PriceTable, TokenUsage, cost_usd
from suite.llm_usage import (
    detect_llm_api,
    parse_llm_request,
    parse_llm_response,
    summarise_llm_call,
)
from suite.sse import StreamTee

log = logging.getLogger("aiops.llm")

META_LLM = "aiops_llm"  # (provider, api family, api) once a flow is known to be an LLM call
META_TEE = "aiops_tee"
KNOWN_HOSTS = {
    "api.openai.com": "openai",
    "api.anthropic.com": "anthropic",
    "api.mistral.ai": "mistral",
    "api.groq.com": "groq",
    "api.together.xyz": "together",
    "generativelanguage.googleapis.com": "google",
}


def llm_call_info(flow: http.HTTPFlow) -> tuple[str, str, str] | None:
    """(provider, api family, api) if this flow is an LLM API call, else None."""
    route = flow.metadata.get("aiops_route_cfg")
    req = flow.request
    if route is not None:
        if route.mcp:
            return None
        family = route.llm_api_family
        provider = route.llm_provider
    else:
        provider = KNOWN_HOSTS.get(req.pretty_host)
        family = "anthropic" if provider == "anthropic" else "openai"
    api = detect_llm_api(req.method, req.path, family)
    if api is None:
        return None
    if provider is None:
        provider = KNOWN_HOSTS.get(req.pretty_host) or flow.metadata.get("aiops_route") or "unknown"
    return provider, family, api


def is_event_stream(flow: http.HTTPFlow) -> bool:
    resp = flow.response
    return resp is not None and resp.headers.get("content-type", "").startswith("text/event-stream")


def tee_event_stream(flow: http.HTTPFlow) -> None:
    """Stream an SSE response to the client as it arrives, keeping a bounded copy."""
    if is_event_stream(flow) and flow.response is not None and not flow.response.stream:
        tee = StreamTee()
        flow.response.stream = tee
        flow.metadata[META_TEE] = tee


def llm_fields(
    prices: PriceTable,
    provider: str,
    family: str,
    api: str,
    request_body: bytes | None,
    response_body: bytes | None,
    streamed: bool,
    tee: StreamTee | None,
    t_request: float,
    t_first_byte: float | None,
    t_end: float,
) -> dict[str, Any]:
    """Column values for one LLM call; runs in the writer thread."""
    request = parse_llm_request(api, request_body)
    result = summarise_llm_call(request, parse_llm_response(api, response_body, streamed=streamed))
    fields: dict[str, Any] = {
        "kind": "llm",
        "llm_provider": provider,
        "llm_api": api,
        "llm_model": result.served_model,
        "llm_requested_model": result.requested_model,
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "cached_prompt_tokens": result.cached_prompt_tokens,
        "cache_creation_tokens": result.cache_creation_tokens,
        "llm_finish_reason": result.finish_reason,
        "usage_source": result.usage_source,
    }
    first_token = None
    if streamed and tee is not None and result.first_content_offset is not None:
        first_token = tee.time_at(result.first_content_offset)
    elif not streamed:
        first_token = t_first_byte
    if first_token is not None:
        fields["ttft_ms"] = (first_token - t_request) * 1000.0
        generating = t_end - first_token
        if result.completion_tokens and generating > 0 and api != "embeddings":
            fields["output_tokens_per_s"] = result.completion_tokens / generating
    used = (result.prompt_tokens or 0) + (result.completion_tokens or 0) > 0
    price = prices.lookup(
        provider, result.served_model, datetime.fromtimestamp(t_request, UTC).date()
    )
    if price is not None and used:
        usage = TokenUsage(
            result.prompt_tokens, result.completion_tokens,
            result.cached_prompt_tokens, result.cache_creation_tokens,
        )  # fmt: skip
        fields["cost_usd"] = cost_usd(price, usage, family)
    fields["llm_unpriced"] = used and fields.get("cost_usd") is None
    return fields


class LlmUsage:
    def __init__(self) -> None:
        self.prices = PriceTable.load(None)

    def running(self) -> None:
        from suite.home import resolve_home

        home = getattr(ctx.options, "aiops_home", "") or None
        try:
            self.prices = PriceTable.load(resolve_home(home).root)
        except Exception as e:  # a bad user price file must not stop the gateway
            log.error(
                "llm: cannot load %s/llm_prices.csv (%s); using the shipped prices only", home, e
            )
        log.info("llm: %d prices loaded", len(self.prices.prices))

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        info = llm_call_info(flow)
        if info is None:
            return
        flow.metadata[META_LLM] = info
        tee_event_stream(flow)

    def response(self, flow: http.HTTPFlow) -> None:
        self._defer(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._defer(flow)

    def _defer(self, flow: http.HTTPFlow) -> None:
        info = flow.metadata.get(META_LLM) or llm_call_info(flow)
        if info is None:
            return
        provider, family, api = info
        resp = flow.response
        tee: StreamTee | None = flow.metadata.get(META_TEE)
        if tee is not None:
            body: bytes | None = None
            streamed = True
        else:
            body = resp.raw_content if resp is not None else None
            streamed = False
        request_body = flow.request.raw_content
        t_request = flow.request.timestamp_start
        t_first = resp.timestamp_start if resp is not None else None
        # This hook runs when the flow ends, so now is the end when mitmproxy has none.
        t_end = resp.timestamp_end if resp is not None and resp.timestamp_end else time.time()
        prices = self.prices

        def finish() -> dict[str, Any]:
            response_body = tee.copy() if tee is not None else body
            return llm_fields(
                prices, provider, family, api, request_body, response_body,
                streamed, tee, t_request, t_first, t_end,
            )  # fmt: skip

        add_deferred(flow, finish)


addons = [LlmUsage()]
