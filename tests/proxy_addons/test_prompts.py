from __future__ import annotations

import json
import tomllib

from mitmproxy import http
from mitmproxy.test import tflow, tutils

from proxy_addons.capture import META_HOLD_RESPONSE
from proxy_addons.prompts import PromptAnswers, PromptRoutes, prompt_name
from proxy_addons.router import Router
from suite.config import GatewayConfig, parse_gateway_config

CONFIG = """
[[routes]]
name = "openai"
prefix = "/openai"
strip_prefix = true
upstreams = ["http://127.0.0.1:9100"]
llm_provider = "openai"

[[routes]]
name = "claude"
prefix = "/anthropic"
strip_prefix = true
upstreams = ["http://127.0.0.1:9101"]
llm_provider = "anthropic"

[[prompts]]
name = "summarise-claim"
model = "openai:gpt-4o-mini"
template = "Summarise claim {claim_id}: {notes}"
system = "You are a claims assistant."

[[prompts]]
name = "triage"
model = "claude:claude-haiku-4-5"
template = "Triage: {notes}"
max_tokens = 64
"""


def config() -> GatewayConfig:
    return parse_gateway_config(tomllib.loads(CONFIG), "gw.toml")


def through_request(path: str, body: bytes | None, method: str = "POST") -> http.HTTPFlow:
    """requestheaders (prompts, then the router), then request: the proxy's order."""
    cfg = config()
    prompts, router = PromptRoutes(cfg), Router()
    router.set_config(cfg)
    f = tflow.tflow()
    f.request.method = method
    f.request.path = path
    f.request.host_header = "gateway.local:8080"
    f.request.content = body
    prompts.requestheaders(f)
    router.requestheaders(f)
    prompts.request(f)
    return f


def error_of(f: http.HTTPFlow) -> dict[str, object]:
    assert f.response is not None
    return json.loads(f.response.content or b"")["error"]


def test_prompt_name() -> None:
    assert prompt_name("/prompts/summarise-claim?x=1") == "summarise-claim"
    assert prompt_name("/prompts/") == ""
    assert prompt_name("/promptsX/a") is None
    assert prompt_name("/openai/v1") is None


def test_variables_become_an_openai_chat_call_through_the_route() -> None:
    f = through_request("/prompts/summarise-claim", b'{"claim_id": "C-1", "notes": "hail"}')
    assert f.response is None
    assert f.metadata["aiops_route"] == "openai"
    assert (f.request.host, f.request.port, f.request.path) == (
        "127.0.0.1", 9100, "/v1/chat/completions",
    )  # fmt: skip
    assert json.loads(f.request.content or b"") == {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are a claims assistant."},
            {"role": "user", "content": "Summarise claim C-1: hail"},
        ],
        "stream": False,
    }
    assert f.metadata["aiops_client_path"] == "/prompts/summarise-claim"
    assert f.metadata["aiops_fields"]["prompt_route"] == "summarise-claim"
    assert f.metadata[META_HOLD_RESPONSE] is True


def test_anthropic_target_gets_a_messages_call() -> None:
    f = through_request("/prompts/triage", b'{"notes": "hail"}')
    assert f.metadata["aiops_route"] == "claude"
    assert f.request.path == "/v1/messages"
    assert f.request.headers["anthropic-version"] == "2023-06-01"
    body = json.loads(f.request.content or b"")
    assert body["max_tokens"] == 64 and body["messages"][0]["content"] == "Triage: hail"


def test_refusals_name_what_is_wrong() -> None:
    f = through_request("/prompts/summarise-claim", b'{"claim_id": 1, "colour": "red"}')
    assert f.response is not None and f.response.status_code == 400
    err = error_of(f)
    assert err["missing"] == ["notes"] and err["extra"] == ["colour"]
    assert "missing variables: notes" in str(err["message"])
    assert "unknown variables: colour" in str(err["message"])
    assert f.metadata["aiops_error"] == "invalid_prompt_variables"
    assert "aiops_upstream" not in f.metadata

    for body in (b"not json", b"[1, 2]", b'"text"'):
        g = through_request("/prompts/summarise-claim", body)
        assert g.response is not None and g.response.status_code == 400
        assert error_of(g)["type"] == "invalid_prompt_request"

    h = through_request("/prompts/nope", b"{}")
    assert h.response is not None and h.response.status_code == 404
    assert error_of(h)["prompts"] == ["summarise-claim", "triage"]
    assert "aiops_route" not in h.metadata  # answered before the router

    g = through_request("/prompts/triage", None, method="GET")
    assert g.response is not None and g.response.status_code == 405
    assert g.response.headers["allow"] == "POST"


def test_without_prompts_the_paths_stay_with_the_routes() -> None:
    addon = PromptRoutes(parse_gateway_config({}, "gw.toml"))
    f = tflow.tflow()
    f.request.path = "/prompts/x"
    addon.requestheaders(f)
    assert f.response is None and f.request.path == "/prompts/x"


def answered(f: http.HTTPFlow, status: int, content: bytes) -> http.HTTPFlow:
    f.response = tutils.tresp(status_code=status, content=content)
    f.response.headers["content-type"] = "application/json"
    PromptAnswers().response(f)
    return f


def test_provider_answers_become_plain_json() -> None:
    f = through_request("/prompts/summarise-claim", b'{"claim_id": "C-1", "notes": "hail"}')
    chat = {
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"message": {"content": "Hail damage."}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 2},
    }
    answered(f, 200, json.dumps(chat).encode())
    assert f.response is not None
    assert json.loads(f.response.content or b"") == {
        "prompt": "summarise-claim",
        "answer": "Hail damage.",
        "model": "gpt-4o-mini-2024-07-18",
        "finish_reason": "stop",
        "usage": {"prompt_tokens": 20, "completion_tokens": 2, "total_tokens": 22},
    }

    g = through_request("/prompts/summarise-claim", b'{"claim_id": "C-1", "notes": "hail"}')
    answered(g, 429, b'{"error": {"message": "Rate limit reached"}}')
    assert g.response is not None and g.response.status_code == 429
    err = error_of(g)
    assert err["type"] == "upstream_error" and err["upstream_status"] == 429
    assert "Rate limit reached" in str(err["message"])

    h = through_request("/prompts/summarise-claim", b'{"claim_id": "C-1", "notes": "hail"}')
    answered(h, 200, b"<html>")
    assert h.response is not None and h.response.status_code == 502
    assert error_of(h)["type"] == "bad_upstream_response"


def test_gateway_refusals_pass_through_untouched() -> None:
    f = through_request("/prompts/summarise-claim", b'{"claim_id": 1}')
    before = f.response.content if f.response else None
    PromptAnswers().response(f)
    assert f.response is not None and f.response.content == before
