"""Prompt routes end to end: plain HTTP (`httpx`, no LLM SDK) -> `POST /prompts/<name>` on
a real `aiops gateway` -> an emulated OpenAI- or Anthropic-format provider -> a plain JSON
answer, and the call recorded like any LLM call with its prompt route."""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import write_config
from tests.integration.llm_stack import (
    CountingEmulator,
    new_trace,
    rows_of_trace,
    start_counting_emulator,
    start_gateway_patiently,
)
from tests.procs import Proc, run_aiops

pytestmark = pytest.mark.integration


@dataclass
class Stack:
    home: Path
    base: str
    emulator: CountingEmulator
    flaky: CountingEmulator  # answers every call 429, as a provider over its quota
    gateway: Proc
    config: Path

    def post(self, name: str, payload: object, headers: dict[str, str]) -> httpx.Response:
        content = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return httpx.post(
            f"{self.base}/prompts/{name}", content=content, headers=headers, timeout=90
        )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("prompts")
    home = tmp / "home"
    emulator, upstream, stop_emulator = start_counting_emulator()
    flaky, flaky_url, stop_flaky = start_counting_emulator(force_status=429)
    cfg = write_config(
        tmp / "gateway.toml",
        f"""
[gateway]
flush_interval_seconds = 0.2

[[routes]]
name = "openai"
prefix = "/openai"
strip_prefix = true
upstreams = ["{upstream}"]
llm_provider = "openai"
[routes.cache]

[[routes]]
name = "claude"
prefix = "/anthropic"
strip_prefix = true
upstreams = ["{upstream}"]
llm_provider = "anthropic"

[[routes]]
name = "flaky"
prefix = "/flaky"
strip_prefix = true
upstreams = ["{flaky_url}"]
llm_provider = "openai"
[routes.cache]

[[llm_aliases]]
name = "claims-summarizer"
targets = ["flaky:gpt-4o-mini", "openai:gpt-4o-mini"]

[[prompts]]
name = "summarise-claim"
model = "openai:gpt-4o-mini"
template = "Summarise claim {{claim_id}} for the adjuster: {{notes}}"
system = "You are a claims assistant."

[[prompts]]
name = "triage"
model = "claude:claude-haiku-4-5"
template = "Triage this first notice of loss: {{notes}}"
max_tokens = 40

[[prompts]]
name = "resilient-summary"
model = "claims-summarizer"
template = "Summarise: {{notes}}"

[[prompts]]
name = "over-quota"
model = "flaky:gpt-4o-mini"
template = "Summarise: {{notes}}"
""",
    )
    gateway: Proc | None = None
    try:
        gateway, base = start_gateway_patiently(home, cfg)
        yield Stack(home, base, emulator, flaky, gateway, cfg)
    finally:
        if gateway is not None:
            gateway.stop()
        stop_flaky()
        stop_emulator()


def last_body(emulator: CountingEmulator, marker: str) -> dict[str, object]:
    bodies = [b for _p, b in emulator.seen if marker.encode() in b]
    assert bodies, f"no request with {marker!r} reached the emulator"
    return json.loads(bodies[-1])


def test_openai_format_prompt_answers_plain_json_and_is_recorded(stack: Stack) -> None:
    trace, headers = new_trace()
    notes = f"Rear-ended at a junction, bumper damage {uuid.uuid4().hex}"
    r = stack.post("summarise-claim", {"claim_id": "CLM-1", "notes": notes}, headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    answer = r.json()
    assert set(answer) >= {"prompt", "answer", "model", "usage"}
    assert answer["prompt"] == "summarise-claim"
    assert answer["model"] == "gpt-4o-mini-2024-07-18"
    assert isinstance(answer["answer"], str) and len(answer["answer"].split()) >= 8
    usage = answer["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    # What the provider got: the template filled in, as an OpenAI chat call.
    assert last_body(stack.emulator, notes) == {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are a claims assistant."},
            {"role": "user", "content": f"Summarise claim CLM-1 for the adjuster: {notes}"},
        ],
        "stream": False,
    }
    # The prompt's route caches: the same variables again are answered by the gateway.
    again = stack.post("summarise-claim", {"notes": notes, "claim_id": "CLM-1"}, headers)
    assert again.json() == answer and again.headers["x-aiops-cache"] == "hit"
    assert stack.emulator.count(notes) == 1

    miss, hit = rows_of_trace(stack.home, trace, 2)
    for row in (miss, hit):
        assert (row["route"], row["path"], row["prompt_route"], row["kind"], row["status"]) == (
            "openai", "/prompts/summarise-claim", "summarise-claim", "llm", 200,
        )  # fmt: skip
        assert row["llm_provider"] == "openai" and row["llm_model"] == answer["model"]
        assert row["prompt_tokens"] == usage["prompt_tokens"]
        assert row["completion_tokens"] == usage["completion_tokens"]
        assert row["response_bytes"] == len(r.content)
    assert miss["cost_usd"] > 0 and miss["cache_hit"] is False
    assert hit["cost_usd"] == 0.0 and hit["cache_hit"] is True


def test_anthropic_format_prompt(stack: Stack) -> None:
    trace, headers = new_trace()
    notes = f"Water leak in the kitchen {uuid.uuid4().hex}"
    r = stack.post("triage", {"notes": notes}, headers)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["prompt"] == "triage" and answer["model"] == "claude-haiku-4-5-20251001"
    sent = last_body(stack.emulator, notes)
    assert sent["max_tokens"] == 40
    assert sent["messages"] == [
        {"role": "user", "content": f"Triage this first notice of loss: {notes}"}
    ]
    (row,) = rows_of_trace(stack.home, trace, 1)
    assert (row["route"], row["prompt_route"], row["llm_provider"], row["llm_api"]) == (
        "claude", "triage", "anthropic", "messages",
    )  # fmt: skip
    assert row["prompt_tokens"] == answer["usage"]["prompt_tokens"]
    assert row["completion_tokens"] == answer["usage"]["completion_tokens"] <= 40
    assert row["cost_usd"] > 0


def test_bad_requests_are_refused_naming_the_problem(stack: Stack) -> None:
    trace, headers = new_trace()
    before = len(stack.emulator.seen)
    r = stack.post("summarise-claim", {"claim_id": "CLM-2", "colour": "red"}, headers)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["type"] == "invalid_prompt_variables"
    assert err["missing"] == ["notes"] and err["extra"] == ["colour"]
    assert "missing variables: notes" in err["message"]
    assert "unknown variables: colour" in err["message"]

    for payload in (b"claim_id=1", b"[1, 2]"):
        bad = stack.post("summarise-claim", payload, headers)
        assert bad.status_code == 400
        assert bad.json()["error"]["type"] == "invalid_prompt_request"
    unknown = stack.post("no-such-prompt", {}, headers)
    assert unknown.status_code == 404
    assert "summarise-claim" in unknown.json()["error"]["prompts"]
    wrong_method = httpx.get(f"{stack.base}/prompts/triage", headers=headers)
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"
    assert len(stack.emulator.seen) == before  # nothing reached a provider

    rows = rows_of_trace(stack.home, trace, 5)
    assert [(r["status"], r["error"], r["prompt_route"]) for r in rows] == [
        (400, "invalid_prompt_variables", "summarise-claim"),
        (400, "invalid_prompt_request", "summarise-claim"),
        (400, "invalid_prompt_request", "summarise-claim"),
        (404, "unknown_prompt", None),
        (405, "method_not_allowed", "triage"),
    ]


def test_prompt_on_an_alias_falls_back_past_a_provider_answering_429(stack: Stack) -> None:
    trace, headers = new_trace()
    notes = f"Hail damage to the roof {uuid.uuid4().hex}"
    r = stack.post("resilient-summary", {"notes": notes}, headers)
    assert r.status_code == 200, r.text
    assert r.json()["prompt"] == "resilient-summary"
    assert r.json()["model"] == "gpt-4o-mini-2024-07-18"
    assert stack.flaky.count(notes) == 1 and stack.emulator.count(notes) == 1
    (row,) = rows_of_trace(stack.home, trace, 1)
    assert row["prompt_route"] == "resilient-summary"
    assert row["llm_alias"] == "claims-summarizer"
    chain = row["fallback_chain"]
    assert chain.startswith("flaky:gpt-4o-mini") and "(429)" in chain
    assert "openai:gpt-4o-mini" in chain.split(" > ")[-1]
    assert row["prompt_tokens"] == r.json()["usage"]["prompt_tokens"]
    # Cached under the route it was sent through, as the alias: asked again, the gateway
    # answers without trying either provider.
    again = stack.post("resilient-summary", {"notes": notes}, headers)
    assert again.headers["x-aiops-cache"] == "hit" and again.json() == r.json()
    assert stack.flaky.count(notes) == 1 and stack.emulator.count(notes) == 1


def test_provider_errors_keep_their_status_as_plain_json(stack: Stack) -> None:
    _trace, headers = new_trace()
    r = stack.post("over-quota", {"notes": "anything"}, headers)
    assert r.status_code == 429
    assert r.headers["retry-after"] == "1"
    err = r.json()["error"]
    assert err["type"] == "upstream_error" and err["upstream_status"] == 429
    assert err["prompt"] == "over-quota" and "Rate limit" in err["message"]


def test_a_config_with_prompt_mistakes_names_each_and_exits_2(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path / "bad.toml",
        """
[[routes]]
name = "openai"
prefix = "/openai"
upstreams = ["http://127.0.0.1:9"]

[[prompts]]
name = "a b"
model = "no-such-alias"
template = "Hello {0}"

[[prompts]]
name = "dup"
model = "openai:gpt-4o-mini"
template = "{x"

[[prompts]]
name = "dup"
model = "openai:gpt-4o-mini"
template = "ok {x}"
""",
    )
    r = run_aiops("gateway", "--home", str(tmp_path / "home"), "--config", str(cfg), timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    out = r.stdout + r.stderr
    for expected in (
        "prompts[0].name: 'a b' is not URL-safe",
        "prompts[0].model: 'no-such-alias' is neither an [[llm_aliases]] name",
        "prompts[0].template: has a positional placeholder",
        "prompts[1].template: is not a valid template",
        "prompts[2].name: 'dup' is already used by prompts[1]",
    ):
        assert expected in out, out


def test_a_reload_adds_a_prompt_and_keeps_the_cache_of_unchanged_routes(stack: Stack) -> None:
    _trace, headers = new_trace()
    notes = f"Windscreen chip {uuid.uuid4().hex}"
    first = stack.post("summarise-claim", {"claim_id": "CLM-9", "notes": notes}, headers)
    assert first.headers["x-aiops-cache"] == "miss"
    assert stack.post("fnol-classify", {"text": notes}, headers).status_code == 404
    stack.config.write_text(
        stack.config.read_text()
        + """
[[prompts]]
name = "fnol-classify"
model = "openai:gpt-4o"
template = "Classify this first notice of loss: {text}"
"""
    )
    stack.gateway.popen.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 20
    added = stack.post("fnol-classify", {"text": notes}, headers)
    while added.status_code == 404 and time.monotonic() < deadline:
        time.sleep(0.2)
        added = stack.post("fnol-classify", {"text": notes}, headers)
    assert added.status_code == 200, stack.gateway.output
    assert added.json()["model"] == "gpt-4o-2024-08-06"
    again = stack.post("summarise-claim", {"claim_id": "CLM-9", "notes": notes}, headers)
    assert again.headers["x-aiops-cache"] == "hit" and again.json() == first.json()
