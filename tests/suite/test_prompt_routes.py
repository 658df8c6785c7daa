from __future__ import annotations

import json
import tomllib

import pytest

from suite.config import GatewayConfig, parse_gateway_config
from suite.errors import ConfigError
from suite.prompt_routes import (
    check_variables,
    llm_request_body,
    prompt_answer,
    render_template,
    template_variables,
    upstream_error_message,
)

ROUTES = """
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
upstreams = ["https://api.anthropic.example/v1"]
llm_provider = "anthropic"

[[routes]]
name = "vllm"
prefix = "/v1"
upstreams = ["http://127.0.0.1:8000"]

[[routes]]
name = "tools"
prefix = "/mcp"
upstreams = ["http://127.0.0.1:9200"]
mcp = true

[[llm_aliases]]
name = "claims-summarizer"
targets = ["openai:gpt-4o-mini", "vllm:llama-3"]
"""

PROMPTS = """
[[prompts]]
name = "summarise-claim"
model = "claims-summarizer"
template = "Summarise claim {claim_id}: {notes}"
system = "You are a claims assistant for {team}."
max_tokens = 200
temperature = 0.2

[[prompts]]
name = "triage"
model = "claude:claude-haiku-4-5"
template = "Triage {{literal}} {notes}"

[[prompts]]
name = "local"
model = "vllm:llama-3"
template = "{notes}"
max_tokens = 50
"""


def load(text: str) -> GatewayConfig:
    return parse_gateway_config(tomllib.loads(text), "gw.toml")


def test_prompts_parse_with_targets_paths_and_variables() -> None:
    cfg = load(ROUTES + PROMPTS)
    by = {p.name: p for p in cfg.prompts}
    s = by["summarise-claim"]
    assert (s.alias, s.route, s.model, s.api_family) == (
        "claims-summarizer", "openai", "claims-summarizer", "openai",
    )  # fmt: skip
    assert s.path == "/openai/v1/chat/completions"
    assert s.variables == ("team", "claim_id", "notes")
    t = by["triage"]
    assert (t.alias, t.route, t.model, t.api_family) == (
        None,
        "claude",
        "claude-haiku-4-5",
        "anthropic",
    )
    # The upstream base path already ends in /v1: the SDK convention, no second /v1.
    assert t.path == "/anthropic/messages"
    assert t.variables == ("notes",)
    # An unstripped /v1 prefix: the call goes to /v1/chat/completions, not /v1/v1/...
    assert by["local"].path == "/v1/chat/completions"


def test_prompt_config_mistakes_are_each_named() -> None:
    bad = """
[[prompts]]
name = "has space"
model = "nowhere:gpt"
template = "Hello {0} {a.b}"

[[prompts]]
name = "ok"
model = "tools:x"
template = "{a"

[[prompts]]
name = "ok"
model = "no-such-alias"
template = "{x!r}"
colour = "blue"

[[prompts]]
template = ""
temperature = 3
"""
    with pytest.raises(ConfigError) as e:
        load(ROUTES + bad)
    text = str(e.value)
    assert "prompts[0].name: 'has space' is not URL-safe" in text
    assert "prompts[0].model: 'nowhere:gpt' is neither an [[llm_aliases]] name" in text
    assert "prompts[0].template: has a positional placeholder" in text
    assert "prompts[1].model: route 'tools' is an MCP route" in text
    assert "prompts[1].template: is not a valid template" in text
    assert "prompts[2].name: 'ok' is already used by prompts[1]" in text
    assert "(aliases: claims-summarizer)" in text
    assert "prompts[2].template: placeholder {x} must not have a format spec or conversion" in text
    assert "prompts[2].colour: unknown key" in text
    assert "prompts[3].name: is required" in text
    assert "prompts[3].model: is required" in text
    assert "prompts[3].template: '' must be a non-empty string" in text
    assert "prompts[3].temperature: 3 is out of range" in text


def test_a_route_taking_the_prompts_paths_is_refused() -> None:
    text = ROUTES + '[[routes]]\nname = "p"\nprefix = "/prompts"\nupstreams = ["http://x:1"]\n'
    with pytest.raises(ConfigError, match=r"route 'p' \(prefix '/prompts'\) takes the paths"):
        load(text + PROMPTS)
    load(text)  # without [[prompts]] the route keeps its paths


def test_placeholders_and_rendering() -> None:
    assert template_variables("a {x} {y} {x} {{z}}") == ("x", "y")
    assert isinstance(template_variables("{a[0]}"), str)
    values = {"x": "{y}", "y": 3, "z": {"k": [1]}}
    # A value is inserted as text, never read as a template itself.
    assert render_template("{x}|{y}|{z}|{{x}}", values) == '{y}|3|{"k": [1]}|{x}'


def test_missing_and_extra_variables() -> None:
    p = load(ROUTES + PROMPTS).prompts[0]
    assert check_variables(p, {"claim_id": 1, "notes": "n", "team": "t"}) == ([], [])
    assert check_variables(p, {"claim_id": 1, "colour": "x", "zz": 1}) == (
        ["notes", "team"], ["colour", "zz"],
    )  # fmt: skip


def test_request_bodies_per_wire_format() -> None:
    by = {p.name: p for p in load(ROUTES + PROMPTS).prompts}
    oa = llm_request_body(by["summarise-claim"], {"claim_id": "C1", "notes": "n", "team": "T"})
    assert oa == {
        "model": "claims-summarizer",
        "messages": [
            {"role": "system", "content": "You are a claims assistant for T."},
            {"role": "user", "content": "Summarise claim C1: n"},
        ],
        "max_completion_tokens": 200,
        "temperature": 0.2,
        "stream": False,
    }
    an = llm_request_body(by["triage"], {"notes": "n"})
    assert an == {
        "model": "claude-haiku-4-5",
        "messages": [{"role": "user", "content": "Triage {literal} n"}],
        "max_tokens": 1024,
        "stream": False,
    }
    # OpenAI-compatible servers get the older max_tokens name.
    assert llm_request_body(by["local"], {"notes": "n"})["max_tokens"] == 50


def test_answers_from_both_formats() -> None:
    by = {p.name: p for p in load(ROUTES + PROMPTS).prompts}
    chat = {
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {"message": {"role": "assistant", "content": "Done."}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14},
    }
    a = prompt_answer(by["summarise-claim"], json.dumps(chat).encode())
    assert a == {
        "prompt": "summarise-claim",
        "answer": "Done.",
        "model": "gpt-4o-mini-2024-07-18",
        "finish_reason": "stop",
        "usage": {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14},
    }
    msg = {
        "model": "claude-haiku-4-5-20251001",
        "content": [{"type": "text", "text": "Part one. "}, {"type": "text", "text": "Two."}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 7, "output_tokens": 3},
    }
    b = prompt_answer(by["triage"], json.dumps(msg).encode())
    assert b is not None
    assert b["answer"] == "Part one. Two." and b["usage"]["total_tokens"] == 10
    assert prompt_answer(by["triage"], b"not json") is None
    assert prompt_answer(by["triage"], b'{"content": 3}') is None


def test_upstream_error_message_from_both_shapes() -> None:
    assert upstream_error_message(b'{"error": {"message": "slow down"}}') == "slow down"
    assert upstream_error_message(b'{"type": "error", "error": {"message": "busy"}}') == "busy"
    assert upstream_error_message(b"<html>") is None
