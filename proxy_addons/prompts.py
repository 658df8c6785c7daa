"""Prompt routes: `POST /prompts/<name>` with a JSON object of variables becomes one LLM
call through the prompt's route (or alias), answered as plain JSON.

Two addons, because of mitmproxy's hook order: `PromptRoutes` runs BEFORE the router (it
rewrites the path in `requestheaders`, so the router routes it instead of answering 404,
and builds the provider body in `request`); `PromptAnswers` runs AFTER LlmUsage (which
keeps the provider's body for the row) and turns the provider's answer into
`{"prompt", "answer", "model", "usage"}`. Never does I/O.
"""

from __future__ import annotations

import json
import logging

from mitmproxy import ctx, exceptions, http
from mitmproxy.net.http import status_codes

from proxy_addons.capture import META_FIELDS, META_HOLD_RESPONSE
from suite.config import GatewayConfig, load_gateway_config
from suite.errors import ConfigError
from suite.gateway_errors import META_ERROR, gateway_error_body, gateway_error_response
from suite.prompt_routes import (
    ANTHROPIC_VERSION,
    PROMPTS_PREFIX,
    PromptRoute,
    check_variables,
    llm_request_body,
    prompt_answer,
    upstream_error_message,
)

log = logging.getLogger("aiops.prompts")

META_PROMPT = "aiops_prompt"  # the PromptRoute of a /prompts/<name> call
META_PROMPT_PATH = "aiops_prompt_path"  # the path the client sent


def prompt_name(path: str) -> str | None:
    """'summarise-claim' for '/prompts/summarise-claim' (query ignored); '' for '/prompts';
    None when the path is not under /prompts."""
    bare = path.split("?", 1)[0]
    if bare.rstrip("/") == PROMPTS_PREFIX:
        return ""
    if not bare.startswith(PROMPTS_PREFIX + "/"):
        return None
    return bare[len(PROMPTS_PREFIX) + 1 :].rstrip("/")


def _refuse(flow: http.HTTPFlow, status: int, code: str, message: str, **extra: object) -> None:
    flow.metadata[META_ERROR] = code
    flow.metadata.pop("aiops_upstream", None)  # nothing went upstream
    flow.response = gateway_error_response(status, code, message, **extra)


class PromptRoutes:
    def __init__(self, config: GatewayConfig | None = None) -> None:
        self.prompts: dict[str, PromptRoute] = {}
        self._reverse = True
        if config is not None:
            self.set_config(config)

    def configure(self, updated: set[str]) -> None:
        path = getattr(ctx.options, "aiops_config", "")
        if "aiops_config" in updated and path:
            try:
                self.set_config(load_gateway_config(path))
            except ConfigError as e:
                raise exceptions.OptionsError(str(e)) from None
        if "mode" in updated:
            self._reverse = any(m.startswith("reverse") for m in ctx.options.mode)

    def set_config(self, config: GatewayConfig) -> None:
        self.prompts = {p.name: p for p in config.prompts}
        if self.prompts:
            log.info("prompts: POST /prompts/<name> for %s", ", ".join(sorted(self.prompts)))

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        # Without [[prompts]] the gateway leaves /prompts/... to the routes, as before.
        if flow.response or flow.error or not self.prompts or not self._reverse:
            return
        req = flow.request
        name = prompt_name(req.path)
        if name is None:
            return
        flow.metadata["aiops_client_host"] = req.host_header
        flow.metadata["aiops_client_path"] = req.path
        prompt = self.prompts.get(name)
        if prompt is None:
            _refuse(
                flow, 404, "unknown_prompt",
                f"no prompt route named {name!r}" if name else "name a prompt: POST /prompts/<name>",
                prompts=sorted(self.prompts),
            )  # fmt: skip
            return
        flow.metadata.setdefault(META_FIELDS, {})["prompt_route"] = prompt.name
        if req.method != "POST":
            _refuse(
                flow, 405, "method_not_allowed",
                f"prompt route {prompt.name!r} only answers POST (a JSON object of variables)",
            )  # fmt: skip
            assert flow.response is not None
            flow.response.headers["allow"] = "POST"
            return
        flow.metadata[META_PROMPT] = prompt
        flow.metadata[META_PROMPT_PATH] = req.path
        # The router now sends it through the prompt's route like any client call.
        req.path = prompt.path

    def request(self, flow: http.HTTPFlow) -> None:
        prompt: PromptRoute | None = flow.metadata.get(META_PROMPT)
        if prompt is None:
            return
        # The router recorded the rewritten path; the row keeps the one the client sent.
        flow.metadata["aiops_client_path"] = flow.metadata[META_PROMPT_PATH]
        if flow.response or flow.error:
            return
        req = flow.request
        try:
            raw = req.get_content(strict=False) or b""
            values = json.loads(raw) if raw.strip() else {}
        except (ValueError, UnicodeDecodeError) as e:
            _refuse(
                flow, 400, "invalid_prompt_request",
                f"the body must be a JSON object of variables ({e})",
                prompt=prompt.name, variables=list(prompt.variables),
            )  # fmt: skip
            return
        if not isinstance(values, dict):
            _refuse(
                flow, 400, "invalid_prompt_request",
                f"the body must be a JSON object of variables, not {type(values).__name__}",
                prompt=prompt.name, variables=list(prompt.variables),
            )  # fmt: skip
            return
        missing, extra = check_variables(prompt, values)
        if missing or extra:
            parts = []
            if missing:
                parts.append("missing variables: " + ", ".join(missing))
            if extra:
                parts.append("unknown variables: " + ", ".join(extra))
            _refuse(
                flow, 400, "invalid_prompt_variables",
                f"prompt route {prompt.name!r}: " + "; ".join(parts),
                prompt=prompt.name, missing=missing or None, extra=extra or None,
                variables=list(prompt.variables),
            )  # fmt: skip
            return
        body = llm_request_body(prompt, values)
        for framing in ("content-encoding", "transfer-encoding"):
            req.headers.pop(framing, None)  # the new body is sent plain, with a length
        req.content = json.dumps(body, ensure_ascii=False).encode()
        req.headers["content-type"] = "application/json"
        # A plain body to parse and rewrite; and the whole answer, never streamed on.
        req.headers["accept-encoding"] = "identity"
        if prompt.api_family == "anthropic" and "anthropic-version" not in req.headers:
            req.headers["anthropic-version"] = ANTHROPIC_VERSION
        flow.metadata[META_HOLD_RESPONSE] = True


class PromptAnswers:
    """After LlmUsage (which has kept the provider's body for the row): the answer the
    prompt's caller gets, as plain JSON. Upstream errors keep their status."""

    def response(self, flow: http.HTTPFlow) -> None:
        prompt: PromptRoute | None = flow.metadata.get(META_PROMPT)
        resp = flow.response
        if prompt is None or resp is None or resp.stream:
            return
        if flow.metadata.get(META_ERROR) or "x-aiops-error" in resp.headers:
            return  # the gateway's own answer (refused, limited...): already plain JSON
        raw = resp.get_content(strict=False)
        if resp.status_code == 200:
            answer = prompt_answer(prompt, raw)
            if answer is None:
                flow.metadata[META_ERROR] = "bad_upstream_response"
                body = gateway_error_body(
                    502, "bad_upstream_response",
                    f"prompt route {prompt.name!r}: the provider's answer has no text",
                    prompt=prompt.name, route=prompt.route,
                )  # fmt: skip
                _replace_body(resp, 502, body)
                return
            _replace_body(resp, 200, json.dumps(answer, ensure_ascii=False).encode())
            return
        message = upstream_error_message(raw) or f"the provider answered {resp.status_code}"
        body = gateway_error_body(
            resp.status_code, "upstream_error",
            f"prompt route {prompt.name!r}: {message}",
            prompt=prompt.name, route=prompt.route, upstream_status=resp.status_code,
        )  # fmt: skip
        _replace_body(resp, resp.status_code, body)


def _replace_body(resp: http.Response, status: int, body: bytes) -> None:
    if status != resp.status_code:
        resp.status_code = status
        resp.reason = status_codes.RESPONSES.get(status, "")
    for name in ("content-encoding", "transfer-encoding", "content-length"):
        resp.headers.pop(name, None)
    resp.headers["content-type"] = "application/json"
    resp.content = body


addons = [PromptRoutes(), PromptAnswers()]
