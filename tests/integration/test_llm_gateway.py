"""LLM traffic end to end: the official `openai` and `anthropic` clients -> a real
`aiops gateway` -> the LLM emulator; the stored usage must equal what the SDK saw."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from tests.conftest import write_config
from tests.integration.helpers import (
    files_containing,
    query_json,
    run_worker_once,
    secrets_in_spool,
    secrets_in_store,
)
from tests.procs import Proc, start_gateway

pytestmark = pytest.mark.integration

OPENAI_KEY = "sk-proj-OPENAIKEY-4d1f9a"
ANTHROPIC_KEY = "sk-ant-ANTHROPICKEY-77b2"
PROMPT = "Summarise claim CLM-2024-000123 for the adjuster in three sentences."


@dataclass
class LlmSetup:
    home: Path
    base: str
    gateway: Proc
    upstream: str


@pytest.fixture
def llm(tmp_path: Path, procs: list[Proc]) -> Iterator[LlmSetup]:
    emu = Proc(
        [sys.executable, "-m", "suite.emulators.llm", "--port", "0", "--token-interval-ms", "2"]
    )
    procs.append(emu)
    upstream = emu.wait_for(r"llm emulator listening on (http://\S+)").group(1)
    home = tmp_path / "home"
    cfg = write_config(
        tmp_path / "gateway.toml",
        f"""
[[routes]]
name = "openai"
prefix = "/openai"
strip_prefix = true
upstreams = ["{upstream}"]
llm_provider = "openai"

[[routes]]
name = "claude"
prefix = "/anthropic"
strip_prefix = true
upstreams = ["{upstream}"]
llm_provider = "anthropic"

[[routes]]
name = "local-llm"
prefix = "/vllm"
strip_prefix = true
upstreams = ["{upstream}"]
llm_provider = "vllm"
""",
    )
    gw, base = start_gateway(home, cfg)
    procs.append(gw)
    yield LlmSetup(home, base, gw, upstream)


def finish(setup: LlmSetup) -> list[dict[str, object]]:
    """Stop the gateway, load its records; on the way, prove no provider key reached the
    spool or the store (decoded scans) or any file of the home (raw bytes)."""
    assert setup.gateway.stop() == 0, setup.gateway.output
    keys = [OPENAI_KEY, ANTHROPIC_KEY]
    assert list((setup.home / "spool").glob("*.parquet")), "nothing spooled: the scan is moot"
    assert secrets_in_spool(setup.home, keys) == []
    assert files_containing(setup.home, [k.encode() for k in keys]) == []
    run_worker_once(setup.home)
    assert secrets_in_store(setup.home, keys) == []
    assert files_containing(setup.home, [k.encode() for k in keys]) == []
    return query_json(setup.home, "SELECT * FROM requests ORDER BY ts")


def test_official_clients_usage_is_recorded_exactly(llm: LlmSetup) -> None:
    oa = openai.OpenAI(base_url=f"{llm.base}/openai/v1", api_key=OPENAI_KEY, max_retries=0)
    seen: dict[str, dict[str, object]] = {}

    r = oa.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}]
    )
    assert r.usage is not None
    seen["chat"] = {"model": r.model, "p": r.usage.prompt_tokens, "c": r.usage.completion_tokens}

    chunks = list(oa.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT + " (streamed)"}],
        stream=True, stream_options={"include_usage": True},
    ))  # fmt: skip
    usage = chunks[-1].usage
    assert usage is not None
    seen["chat_stream"] = {"model": chunks[0].model, "p": usage.prompt_tokens, "c": usage.completion_tokens,
                           "cached": usage.prompt_tokens_details.cached_tokens if usage.prompt_tokens_details else None}  # fmt: skip

    plain_stream = list(oa.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "no usage in this stream"}], stream=True,
    ))  # fmt: skip
    assert all(c.usage is None for c in plain_stream)
    text = "".join(c.choices[0].delta.content or "" for c in plain_stream if c.choices)

    resp = oa.responses.create(model="gpt-4o-mini", input=PROMPT)
    assert resp.usage is not None
    seen["responses"] = {
        "model": resp.model,
        "p": resp.usage.input_tokens,
        "c": resp.usage.output_tokens,
    }

    with oa.responses.stream(model="gpt-4o-mini", input=PROMPT + " again") as rs:
        final = rs.get_final_response()
    assert final.usage is not None
    seen["responses_stream"] = {
        "model": final.model,
        "p": final.usage.input_tokens,
        "c": final.usage.output_tokens,
    }

    emb = oa.embeddings.create(model="text-embedding-3-small", input=["claim one", "claim two"])
    seen["embeddings"] = {"model": emb.model, "p": emb.usage.prompt_tokens, "c": 0}

    an = anthropic.Anthropic(base_url=f"{llm.base}/anthropic", api_key=ANTHROPIC_KEY, max_retries=0)
    m = an.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=200,
        messages=[{"role": "user", "content": PROMPT}],
    )
    seen["messages"] = {"model": m.model, "p": m.usage.input_tokens, "c": m.usage.output_tokens}
    with an.messages.stream(model="claude-sonnet-4-5", max_tokens=200,
                            messages=[{"role": "user", "content": PROMPT + " (streamed)"}]) as st:  # fmt: skip
        fm = st.get_final_message()
    seen["messages_stream"] = {
        "model": fm.model,
        "p": fm.usage.input_tokens,
        "c": fm.usage.output_tokens,
    }

    local = openai.OpenAI(base_url=f"{llm.base}/vllm/v1", api_key=OPENAI_KEY, max_retries=0)
    lr = local.chat.completions.create(
        model="llama-3.1-70b-instruct", messages=[{"role": "user", "content": PROMPT}]
    )
    assert lr.usage is not None

    rows = finish(llm)
    assert len(rows) == 9
    by = {}
    for row in rows:
        key = f"{row['llm_api']}{'_stream' if row['streamed'] else ''}"
        if row["llm_requested_model"] == "gpt-4o":
            key = "chat_no_usage"
        if row["route"] == "local-llm":
            key = "local"
        by[key] = row
    expected_api = {"chat": "chat", "chat_stream": "chat", "responses": "responses", "responses_stream": "responses",
                    "embeddings": "embeddings", "messages": "messages", "messages_stream": "messages"}  # fmt: skip
    for key, want in seen.items():
        row = by[key]
        assert row["kind"] == "llm" and row["llm_api"] == expected_api[key], key
        assert (row["llm_model"], row["prompt_tokens"], row["completion_tokens"]) == (
            want["model"],
            want["p"],
            want["c"],
        ), key
        assert row["usage_source"] == "provider", key
        assert row["cost_usd"] is not None and row["cost_usd"] > 0 or key == "embeddings", key
        assert row["llm_unpriced"] is False, key
        assert row["ttft_ms"] is not None and row["ttft_ms"] > 0, key
        assert row["status"] == 200 and row["error"] is None, key
    assert by["chat_stream"]["cached_prompt_tokens"] == seen["chat_stream"]["cached"]
    assert (
        by["chat"]["llm_requested_model"] == "gpt-4o-mini"
        and by["chat"]["llm_model"] == "gpt-4o-mini-2024-07-18"
    )
    assert (
        by["chat"]["llm_finish_reason"] == "stop"
        and by["messages"]["llm_finish_reason"] == "end_turn"
    )
    assert by["chat_stream"]["output_tokens_per_s"] > 0
    assert by["messages"]["llm_provider"] == "anthropic" and by["chat"]["llm_provider"] == "openai"
    # A stream without usage: estimated and marked so, never presented as exact.
    no_usage = by["chat_no_usage"]
    assert no_usage["usage_source"] == "estimated"
    assert no_usage["completion_tokens"] == -(-len(text) // 4)
    # An OpenAI-compatible provider the price table does not know: unpriced, not guessed.
    assert by["local"]["llm_provider"] == "vllm" and by["local"]["usage_source"] == "provider"
    assert by["local"]["cost_usd"] is None and by["local"]["llm_unpriced"] is True
    # Provider keys never reach disk.
    assert files_containing(llm.home, [OPENAI_KEY.encode(), ANTHROPIC_KEY.encode()]) == []


def test_streams_reach_the_client_as_they_are_generated(llm: LlmSetup) -> None:
    """The first chunk arrives long before the upstream has finished: nothing buffers."""
    arrivals: list[float] = []
    body = {"model": "gpt-4o-mini", "stream": True, "max_tokens": 8, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": PROMPT}]}  # fmt: skip
    headers = {"authorization": f"Bearer {OPENAI_KEY}", "x-emulator-token-interval-ms": "250"}
    with httpx.stream(
        "POST", f"{llm.base}/openai/v1/chat/completions", json=body, headers=headers, timeout=30
    ) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        for chunk in r.iter_raw():
            if chunk:
                arrivals.append(time.monotonic())
    # 8 tokens 250 ms apart: if the gateway buffered, every byte would arrive at the end.
    assert len(arrivals) >= 5
    assert arrivals[-1] - arrivals[0] > 1.0
    rows = finish(llm)
    assert rows[0]["streamed"] is True and rows[0]["usage_source"] == "provider"
    assert rows[0]["completion_tokens"] == 8


def test_client_leaving_mid_stream_is_recorded_with_what_was_seen(llm: LlmSetup) -> None:
    body = {"model": "gpt-4o-mini", "stream": True, "max_tokens": 40,
            "messages": [{"role": "user", "content": PROMPT}]}  # fmt: skip
    headers = {"x-emulator-token-interval-ms": "100"}
    with httpx.stream(
        "POST", f"{llm.base}/openai/v1/chat/completions", json=body, headers=headers, timeout=30
    ) as r:
        for _ in r.iter_raw():
            break  # leave after the first chunk
    time.sleep(1.0)
    rows = finish(llm)
    assert len(rows) == 1
    row = rows[0]
    assert row["error"] == "client_disconnected" and row["status"] == 200
    assert row["kind"] == "llm" and row["llm_requested_model"] == "gpt-4o-mini"
    assert row["usage_source"] == "estimated"  # the final usage never came


@dataclass
class Answer:
    status: int
    content_type: str | None
    request_sha256: str | None  # of the body the upstream received
    body: bytes
    cut: bool  # the response ended before its end (a truncated stream)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Answer):
            return NotImplemented
        return (self.status, self.content_type, self.request_sha256, self.cut) == (
            other.status, other.content_type, other.request_sha256, other.cut,
        ) and normalised(self.body) == normalised(other.body)  # fmt: skip


def normalised(body: bytes) -> bytes:
    """A response body with what differs between any two calls blanked: ids, timestamps,
    and the emulated provider's prompt cache (warm for the second of two equal prompts)."""
    return re.sub(
        rb'"(id|created|created_at|cached_tokens|cache_read_input_tokens)": ?("[^"]*"|\d+)',
        rb'"\1": _',
        body,
    )


def answer_of(c: httpx.Client, url: str, content: bytes, headers: dict[str, str]) -> Answer:
    body, cut = b"", False
    with c.stream("POST", url, content=content, headers=headers) as r:
        try:
            for chunk in r.iter_raw():
                body += chunk
        except httpx.RemoteProtocolError:
            cut = True
        return Answer(
            r.status_code,
            r.headers.get("content-type"),
            r.headers.get("x-emulator-request-sha256"),
            body,
            cut,
        )


def test_bad_input_is_proxied_unchanged_and_recorded(llm: LlmSetup) -> None:
    url = f"{llm.base}/openai/v1/chat/completions"
    big = (
        b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "'
        + b"x" * (50 * 1024 * 1024)
        + b'"}]}'
    )
    cases = {
        "invalid_json": (b'{"model": "gpt-4o-mini", "messages": [', {"content-type": "application/json"}),
        "binary_json": (bytes(range(256)) * 64, {"content-type": "application/json"}),
        "unknown_model": (b'{"model": "claims-o9-ultra", "messages": [{"role": "user", "content": "hi"}]}', {}),
        "truncated_sse": (b'{"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "hi"}]}',
                          {"x-emulator-truncate": "1"}),
        "big": (big, {"content-type": "application/json"}),
    }  # fmt: skip
    direct: dict[str, Answer] = {}
    via: dict[str, Answer] = {}
    with httpx.Client(timeout=120) as c:
        for name, (content, headers) in cases.items():
            direct[name] = answer_of(c, f"{llm.upstream}/v1/chat/completions", content, headers)
            via[name] = answer_of(c, url, content, headers)
    # The gateway forwards exactly what the client sent and answers exactly what the
    # upstream answered (ids and timestamps aside, which differ between any two calls).
    assert via == direct
    assert all(a.request_sha256 for a in via.values())
    assert via["truncated_sse"].cut and via["truncated_sse"].status == 200
    rows = finish(llm)
    assert len(rows) == len(cases)
    assert all(r["kind"] == "llm" for r in rows)
    unknown = next(r for r in rows if r["llm_requested_model"] == "claims-o9-ultra")
    assert unknown["cost_usd"] is None and unknown["llm_unpriced"] is True
    big_row = max(rows, key=lambda r: r["request_bytes"] or 0)
    assert big_row["request_bytes"] == len(big)
    # The cut stream: recorded as streamed, with what was seen (estimated: no final usage)
    # and the upstream's failure named.
    cut = next(r for r in rows if r["streamed"])
    assert cut["status"] == 200 and cut["error"] is not None
    assert cut["usage_source"] == "estimated" and cut["completion_tokens"] > 0
    assert cut["response_bytes"] == len(via["truncated_sse"].body)
    for name in ("invalid_json", "binary_json"):
        row = next(r for r in rows if r["request_bytes"] == len(cases[name][0]))
        assert row["status"] == direct[name].status and row["llm_requested_model"] is None
    log = llm.gateway.output
    assert "Traceback" not in log and "ERROR" not in log and "could not parse" not in log, log
