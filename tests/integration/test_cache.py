"""The exact-match response cache end to end: the official `openai` and `anthropic` SDKs ->
a real `aiops gateway` -> the LLM emulator (which counts what reached it) -> rows in a
real DuckDB store."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anthropic
import openai
import pytest
from openai.types.chat import ChatCompletion

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
    keys: dict[str, str]  # tenant -> gateway key

    def openai(self, prefix: str = "/openai", api_key: str = "sk-client") -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.base}{prefix}/v1", api_key=api_key, max_retries=0)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("cache")
    home = tmp / "home"
    emulator, upstream, stop_emulator = start_counting_emulator()
    route = 'strip_prefix = true\nupstreams = ["{u}"]\nllm_provider = "{p}"\n'
    cfg = write_config(
        tmp / "gateway.toml",
        f"""
[gateway]
flush_interval_seconds = 0.2

[[routes]]
name = "openai"
prefix = "/openai"
{route.format(u=upstream, p="openai")}
[routes.cache]
ttl_seconds = 300
max_entries = 1000
max_bytes = 50_000_000

[[routes]]
name = "claude"
prefix = "/anthropic"
{route.format(u=upstream, p="anthropic")}
[routes.cache]

[[routes]]
name = "short"
prefix = "/short"
{route.format(u=upstream, p="openai")}
[routes.cache]
ttl_seconds = 1

[[routes]]
name = "tiny"
prefix = "/tiny"
{route.format(u=upstream, p="openai")}
[routes.cache]
max_entries = 2

[[routes]]
name = "keyed"
prefix = "/keyed"
auth = "key"
{route.format(u=upstream, p="openai")}
[routes.cache]
""",
    )
    keys = {}
    for tenant in ("acme", "globex"):
        r = run_aiops("keys", "create", "--home", str(home), "--tenant", tenant, "--json")
        assert r.returncode == 0, r.stdout + r.stderr
        keys[tenant] = json.loads(r.stdout)[0]["key"]
    gateway: Proc | None = None
    try:
        gateway, base = start_gateway_patiently(home, cfg)
        yield Stack(home, base, emulator, keys)
    finally:
        if gateway is not None:
            gateway.stop()
        stop_emulator()


def ask(
    client: openai.OpenAI,
    text: str,
    headers: dict[str, str],
    extra_body: dict[str, object] | None = None,
) -> tuple[str | None, ChatCompletion]:
    """(x-aiops-cache header, the SDK's parsed answer) of one chat completion."""
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": text}],
        extra_headers=headers,
        extra_body=extra_body,
    )
    return raw.headers.get("x-aiops-cache"), raw.parse()


def test_second_identical_call_is_a_hit_without_contacting_the_upstream(stack: Stack) -> None:
    trace, headers = new_trace()
    prompt = f"Summarise claim {uuid.uuid4().hex} for the adjuster."
    client = stack.openai()
    state1, first = ask(client, prompt, headers)
    state2, second = ask(client, prompt, headers)
    assert (state1, state2) == ("miss", "hit")
    assert stack.emulator.count(prompt) == 1
    # The very answer the upstream gave (its random id included), not a new one.
    assert (
        second.id == first.id
        and second.choices[0].message.content == first.choices[0].message.content
    )
    assert second.usage is not None and first.usage is not None
    assert second.usage.prompt_tokens == first.usage.prompt_tokens

    rows = rows_of_trace(stack.home, trace, 2)
    assert [r["cache_hit"] for r in rows] == [False, True]
    miss, hit = rows
    assert miss["status"] == hit["status"] == 200
    assert miss["kind"] == hit["kind"] == "llm"
    # A hit records the tokens it served but costs nothing: no provider was paid.
    assert hit["prompt_tokens"] == miss["prompt_tokens"] == first.usage.prompt_tokens
    assert hit["completion_tokens"] == miss["completion_tokens"] == first.usage.completion_tokens
    assert miss["cost_usd"] > 0 and hit["cost_usd"] == 0.0
    assert miss["upstream"] is not None and hit["upstream"] is None
    assert hit["llm_model"] == miss["llm_model"] == "gpt-4o-mini-2024-07-18"


def test_anthropic_messages_and_embeddings_are_cached(stack: Stack) -> None:
    trace, headers = new_trace()
    prompt = f"Triage claim {uuid.uuid4().hex}"
    an = anthropic.Anthropic(base_url=f"{stack.base}/anthropic", api_key="sk-ant", max_retries=0)
    states = []
    for _ in range(2):
        raw = an.messages.with_raw_response.create(
            model="claude-haiku-4-5", max_tokens=64, extra_headers=headers,
            messages=[{"role": "user", "content": prompt}],
        )  # fmt: skip
        states.append(raw.headers.get("x-aiops-cache"))
    assert states == ["miss", "hit"]
    assert stack.emulator.count(prompt) == 1

    words = f"policy {uuid.uuid4().hex}"
    client = stack.openai()
    emb_states = []
    for _ in range(2):
        raw_emb = client.embeddings.with_raw_response.create(
            model="text-embedding-3-small", input=words, extra_headers=headers
        )
        emb_states.append(raw_emb.headers.get("x-aiops-cache"))
    assert emb_states == ["miss", "hit"]
    assert stack.emulator.count(words) == 1
    rows = rows_of_trace(stack.home, trace, 4)
    assert [(r["llm_api"], r["cache_hit"]) for r in rows] == [
        ("messages", False), ("messages", True), ("embeddings", False), ("embeddings", True),
    ]  # fmt: skip


def test_a_different_body_or_tenant_misses(stack: Stack) -> None:
    trace, headers = new_trace()
    prompt = f"Renewal quote {uuid.uuid4().hex}"
    acme = stack.openai("/keyed", stack.keys["acme"])
    globex = stack.openai("/keyed", stack.keys["globex"])
    assert ask(acme, prompt, headers)[0] == "miss"
    assert ask(acme, prompt, headers)[0] == "hit"
    # Another tenant never gets acme's answer, even for the very same request.
    assert ask(globex, prompt, headers)[0] == "miss"
    assert ask(globex, prompt, headers)[0] == "hit"
    # Same tenant, different body (one parameter more).
    assert ask(acme, prompt, headers, {"temperature": 0.5})[0] == "miss"
    assert ask(acme, prompt + "?", headers)[0] == "miss"
    assert stack.emulator.count(prompt) == 4

    rows = rows_of_trace(stack.home, trace, 6)
    assert [(r["tenant"], r["cache_hit"]) for r in rows] == [
        ("acme", False), ("acme", True), ("globex", False), ("globex", True),
        ("acme", False), ("acme", False),
    ]  # fmt: skip


def test_client_no_cache_refreshes_and_no_store_bypasses(stack: Stack) -> None:
    _trace, headers = new_trace()
    prompt = f"Deductible {uuid.uuid4().hex}"
    client = stack.openai()
    assert ask(client, prompt, headers)[0] == "miss"
    assert ask(client, prompt, {**headers, "Cache-Control": "no-cache"})[0] == "miss"
    assert stack.emulator.count(prompt) == 2
    assert ask(client, prompt, headers)[0] == "hit"
    assert ask(client, prompt, {**headers, "Cache-Control": "no-store"})[0] == "bypass"
    assert stack.emulator.count(prompt) == 3


def test_ttl_expiry_misses(stack: Stack) -> None:
    _trace, headers = new_trace()
    prompt = f"Excess {uuid.uuid4().hex}"
    client = stack.openai("/short")
    assert ask(client, prompt, headers)[0] == "miss"
    assert ask(client, prompt, headers)[0] == "hit"
    time.sleep(1.3)  # ttl_seconds = 1 on this route
    assert ask(client, prompt, headers)[0] == "miss"
    assert stack.emulator.count(prompt) == 2


def test_streamed_calls_are_never_cached(stack: Stack) -> None:
    trace, headers = new_trace()
    prompt = f"Stream claim {uuid.uuid4().hex}"
    client = stack.openai()
    states = []
    for _ in range(2):
        with client.chat.completions.with_streaming_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}], stream=True,
            stream_options={"include_usage": True}, extra_headers=headers,
        ) as resp:  # fmt: skip
            states.append(resp.headers.get("x-aiops-cache"))
            chunks = list(resp.parse())
        assert chunks[-1].usage is not None
    assert states == ["bypass", "bypass"]
    assert stack.emulator.count(prompt) == 2
    rows = rows_of_trace(stack.home, trace, 2)
    assert [(r["streamed"], r["cache_hit"]) for r in rows] == [(True, False), (True, False)]
    assert all(r["cost_usd"] > 0 for r in rows)


def test_size_bound_evicts_the_least_recently_used(stack: Stack) -> None:
    _trace, headers = new_trace()
    tag = uuid.uuid4().hex
    a, b, c = (f"{name} {tag}" for name in ("alpha", "beta", "gamma"))
    client = stack.openai("/tiny")  # max_entries = 2
    assert [ask(client, p, headers)[0] for p in (a, b, a, c)] == ["miss", "miss", "hit", "miss"]
    # c pushed out b (least recently used), while a (used since) stayed.
    assert [ask(client, p, headers)[0] for p in (a, c, b)] == ["hit", "hit", "miss"]
    assert [stack.emulator.count(p) for p in (a, b, c)] == [1, 2, 1]
