"""The LLM emulator, run as a real process and driven with the official openai and
anthropic SDKs: response shapes, the documented usage rule, streaming, faults, timing."""

from __future__ import annotations

import base64
import json
import struct
import sys
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from suite.emulators.llm import answer_length, count_input_tokens, start_in_thread
from tests.procs import Proc

SYSTEM = "You are a claims assistant for an insurer."
pytestmark = pytest.mark.timeout(60)


def start_llm(*flags: str) -> tuple[Proc, str]:
    p = Proc([sys.executable, "-m", "suite.emulators.llm", "--port", "0", *flags])
    try:
        return p, p.wait_for(r"llm emulator listening on (http://\S+)").group(1)
    except AssertionError:
        p.stop()
        raise


@pytest.fixture(scope="module")
def llm_url() -> Iterator[str]:
    """One emulator for the module; tests use distinct prompts (it remembers prompts)."""
    p, url = start_llm()
    try:
        yield url
    finally:
        p.stop()


@pytest.fixture
def oai(llm_url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=llm_url + "/v1", api_key="sk-test", max_retries=0) as c:
        yield c


@pytest.fixture
def claude(llm_url: str) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=llm_url, api_key="sk-ant-test", max_retries=0) as c:
        yield c


def chat_messages(question: str) -> list[Any]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]


def expected(messages: list[Any]) -> tuple[int, int]:
    """(input tokens, natural answer words) by the rule in the module docstring."""
    pairs = [(m["role"], m["content"]) for m in messages]
    return count_input_tokens(pairs), answer_length(pairs)


# --- OpenAI chat completions --------------------------------------------------------------


def test_the_usage_rule_is_words_plus_overheads() -> None:
    # system: 8 words + 4, user: 7 words + 4, reply priming: 3
    msgs = chat_messages("What is the status of claim CLM-2001?")
    assert expected(msgs)[0] == 8 + 4 + 7 + 4 + 3
    assert 8 <= expected(msgs)[1] <= 64


def test_chat_plain(oai: openai.OpenAI) -> None:
    msgs = chat_messages("What is the status of claim CLM-2001?")
    raw = oai.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=msgs)
    assert raw.headers["x-request-id"].startswith("req_")
    r = raw.parse()
    prompt, words = expected(msgs)
    assert r.object == "chat.completion"
    assert r.model == "gpt-4o-mini-2024-07-18"
    assert r.choices[0].finish_reason == "stop"
    assert r.choices[0].message.role == "assistant"
    content = r.choices[0].message.content
    assert content is not None and len(content.split()) == words
    assert r.usage is not None
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (prompt, words)
    assert r.usage.total_tokens == prompt + words
    assert r.usage.prompt_tokens_details is not None
    assert r.usage.prompt_tokens_details.cached_tokens == 0

    again = oai.chat.completions.create(model="gpt-4o-mini", messages=msgs)
    assert again.choices[0].message.content == content  # deterministic
    assert again.usage is not None and again.usage.prompt_tokens_details is not None
    assert again.usage.prompt_tokens == prompt  # cached tokens are inside prompt_tokens
    assert again.usage.prompt_tokens_details.cached_tokens == prompt // 2


def test_served_model_names(oai: openai.OpenAI) -> None:
    msgs = chat_messages("Which model answers?")
    assert oai.chat.completions.create(model="gpt-4o", messages=msgs).model == "gpt-4o-2024-08-06"
    unpriced = oai.chat.completions.create(model="acme-unpriced-1", messages=msgs)
    assert unpriced.model == "acme-unpriced-1"


def test_chat_stream_without_include_usage_has_no_usage(oai: openai.OpenAI) -> None:
    msgs = chat_messages("Summarise policy POL-1002 for the customer.")
    prompt, words = expected(msgs)
    chunks = list(oai.chat.completions.create(model="gpt-4o-mini", messages=msgs, stream=True))
    assert all("usage" not in c.to_dict() for c in chunks)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert all(c.model == "gpt-4o-mini-2024-07-18" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    deltas = [c.choices[0].delta.content for c in chunks[1:-1]]
    assert len(deltas) == words  # one word per delta
    assert chunks[-1].choices[0].finish_reason == "stop"
    plain = oai.chat.completions.create(model="gpt-4o-mini", messages=msgs)
    assert "".join(d or "" for d in deltas) == plain.choices[0].message.content


def test_chat_stream_with_include_usage_matches_plain(oai: openai.OpenAI) -> None:
    msgs = chat_messages("Is water damage covered under POL-1002?")
    plain = oai.chat.completions.create(model="gpt-4o-mini", messages=msgs)
    chunks = list(
        oai.chat.completions.create(
            model="gpt-4o-mini",
            messages=msgs,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    *body, last = chunks
    assert last.choices == [] and last.usage is not None
    assert all(c.usage is None and "usage" in c.to_dict() for c in body)  # present, null
    assert plain.usage is not None
    for field in ("prompt_tokens", "completion_tokens", "total_tokens"):
        assert getattr(last.usage, field) == getattr(plain.usage, field)
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    n_deltas = sum(1 for c in body if c.choices and c.choices[0].delta.content)
    assert n_deltas == last.usage.completion_tokens
    assert last.usage.prompt_tokens_details is not None
    assert last.usage.prompt_tokens_details.cached_tokens == plain.usage.prompt_tokens // 2


def test_max_tokens_cuts_the_answer(oai: openai.OpenAI) -> None:
    msgs = chat_messages("Explain the deductible on POL-1001 in detail.")
    r = oai.chat.completions.create(model="gpt-4o", messages=msgs, max_tokens=3)
    assert r.choices[0].finish_reason == "length"
    assert r.usage is not None and r.usage.completion_tokens == 3
    chunks = list(
        oai.chat.completions.create(
            model="gpt-4o",
            messages=msgs,
            max_completion_tokens=3,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3


def test_paths_with_a_prefix_work(llm_url: str) -> None:
    with openai.OpenAI(base_url=llm_url + "/openai/v1", api_key="x", max_retries=0) as c:
        r = c.chat.completions.create(model="gpt-4o", messages=chat_messages("Prefixed?"))
    assert r.choices[0].finish_reason == "stop"


# --- OpenAI responses, embeddings, models -------------------------------------------------


def test_responses_plain_and_streamed(oai: openai.OpenAI) -> None:
    question = "Draft a reply about claim CLM-2002."
    prompt, words = expected(
        [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
    )
    r = oai.responses.create(model="gpt-4o-mini", instructions=SYSTEM, input=question)
    assert (r.object, r.status, r.model) == ("response", "completed", "gpt-4o-mini-2024-07-18")
    assert len(r.output_text.split()) == words
    assert r.usage is not None
    assert (r.usage.input_tokens, r.usage.output_tokens) == (prompt, words)
    assert r.usage.total_tokens == prompt + words
    assert r.usage.input_tokens_details.cached_tokens == 0

    events = list(
        oai.responses.create(model="gpt-4o-mini", instructions=SYSTEM, input=question, stream=True)
    )
    types = [e.type for e in events]
    assert types[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert types[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) == words and "".join(deltas) == r.output_text
    done = events[-1]
    assert done.type == "response.completed" and done.response.usage is not None
    usage = done.response.usage
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (
        prompt,
        words,
        prompt + words,
    )
    assert usage.input_tokens_details.cached_tokens == prompt // 2

    with oai.responses.stream(model="gpt-4o-mini", input=question + " (helper)") as stream:
        final = stream.get_final_response()
    assert final.usage is not None and final.usage.output_tokens == len(final.output_text.split())


def test_responses_max_output_tokens_is_incomplete(oai: openai.OpenAI) -> None:
    r = oai.responses.create(model="gpt-4o", input="List every exclusion.", max_output_tokens=2)
    assert r.status == "incomplete"
    assert r.incomplete_details is not None and r.incomplete_details.reason == "max_output_tokens"
    assert r.usage is not None and r.usage.output_tokens == 2
    events = list(
        oai.responses.create(
            model="gpt-4o", input="List every exclusion.", max_output_tokens=2, stream=True
        )
    )
    assert events[-1].type == "response.incomplete"


def test_embeddings(oai: openai.OpenAI) -> None:
    texts = ["rear bumper damage in a car park", "burst pipe"]
    e = oai.embeddings.create(model="text-embedding-3-small", input=texts)  # SDK asks for base64
    assert e.model == "text-embedding-3-small"
    assert [d.index for d in e.data] == [0, 1]
    assert len(e.data[0].embedding) == 1536
    assert e.usage.prompt_tokens == e.usage.total_tokens == 7 + 2
    assert sum(v * v for v in e.data[0].embedding) == pytest.approx(1.0, rel=1e-4)
    floats = oai.embeddings.create(
        model="text-embedding-3-small", input=texts[0], encoding_format="float", dimensions=8
    )
    assert len(floats.data[0].embedding) == 8
    assert floats.usage.prompt_tokens == 7


def test_embeddings_base64_on_the_wire(llm_url: str) -> None:
    r = httpx.post(
        llm_url + "/v1/embeddings",
        json={"model": "m", "input": "a b", "encoding_format": "base64", "dimensions": 4},
    )
    raw = base64.b64decode(r.json()["data"][0]["embedding"])
    assert len(struct.unpack("<4f", raw)) == 4


def test_models_list(oai: openai.OpenAI, claude: anthropic.Anthropic) -> None:
    assert "gpt-4o-mini" in [m.id for m in oai.models.list()]
    assert "claude-3-5-sonnet-20241022" in [m.id for m in claude.models.list()]


# --- Anthropic ------------------------------------------------------------------------------


def test_anthropic_plain(claude: anthropic.Anthropic) -> None:
    question = "Has claim CLM-2003 been rejected?"
    prompt, words = expected(
        [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
    )
    raw = claude.messages.with_raw_response.create(
        model="claude-3-5-sonnet-latest",
        max_tokens=1024,
        system=SYSTEM,
        messages=[{"role": "user", "content": question}],
    )
    assert raw.headers["request-id"].startswith("req_")
    m = raw.parse()
    assert (m.type, m.role, m.model) == ("message", "assistant", "claude-3-5-sonnet-20241022")
    assert m.stop_reason == "end_turn"
    assert m.content[0].type == "text" and len(m.content[0].text.split()) == words
    assert (m.usage.input_tokens, m.usage.output_tokens) == (prompt, words)
    assert m.usage.cache_read_input_tokens == 0

    again = claude.messages.create(
        model="claude-3-5-sonnet-latest",
        max_tokens=1024,
        system=SYSTEM,
        messages=[{"role": "user", "content": question}],
    )
    # like the real API: input_tokens excludes what was read from the cache
    assert again.usage.cache_read_input_tokens == prompt // 2
    assert again.usage.input_tokens + again.usage.cache_read_input_tokens == prompt

    assert (
        claude.messages.count_tokens(
            model="claude-haiku-4-5",
            system=SYSTEM,
            messages=[{"role": "user", "content": question}],
        ).input_tokens
        == prompt
    )


def test_anthropic_stream_events_and_final_usage_agree(claude: anthropic.Anthropic) -> None:
    question = "Which adjuster handles CLM-2001?"
    prompt, words = expected([{"role": "user", "content": question}])
    kwargs: dict[str, Any] = {
        "model": "claude-haiku-4-5",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": question}],
    }
    events = list(claude.messages.create(stream=True, **kwargs))
    types = [e.type for e in events]
    assert types[:2] == ["message_start", "content_block_start"]  # the SDK drops pings
    assert types[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    start, delta = events[0], events[-2]
    assert start.type == "message_start" and delta.type == "message_delta"
    assert start.message.model == "claude-haiku-4-5-20251001"
    assert (start.message.usage.input_tokens, start.message.usage.output_tokens) == (prompt, 1)
    assert start.message.usage.cache_read_input_tokens == 0
    assert delta.delta.stop_reason == "end_turn" and delta.usage.output_tokens == words
    assert types.count("content_block_delta") == words

    with claude.messages.stream(**kwargs) as stream:
        seen = list(stream)
        final = stream.get_final_message()
    start2 = next(e for e in seen if e.type == "message_start")
    delta2 = next(e for e in seen if e.type == "message_delta")
    assert start2.type == "message_start" and delta2.type == "message_delta"
    assert final.usage.input_tokens == start2.message.usage.input_tokens == prompt - prompt // 2
    assert final.usage.cache_read_input_tokens == prompt // 2
    assert final.usage.output_tokens == delta2.usage.output_tokens == words
    assert final.content[0].type == "text" and len(final.content[0].text.split()) == words


def test_anthropic_served_names(claude: anthropic.Anthropic) -> None:
    msgs: Any = [{"role": "user", "content": "Which Claude answers?"}]
    # the SDK itself warns about this alias; the emulator still serves its dated name
    with pytest.warns(DeprecationWarning, match="deprecated"):
        old = claude.messages.create(model="claude-3-5-haiku-latest", max_tokens=99, messages=msgs)
    assert old.model == "claude-3-5-haiku-20241022"
    new = claude.messages.create(model="claude-sonnet-4-5", max_tokens=99, messages=msgs)
    assert new.model == "claude-sonnet-4-5-20250929"


def test_anthropic_stream_on_the_wire(llm_url: str) -> None:
    body = {
        "model": "claude-haiku-4-5",
        "max_tokens": 2,
        "stream": True,
        "messages": [{"role": "user", "content": "Wire format?"}],
    }
    lines, err = _sse_lines(llm_url + "/v1/messages", body, {})
    assert err is None
    events = [x.removeprefix("event: ") for x in lines if x.startswith("event: ")]
    assert events == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


def test_anthropic_max_tokens(claude: anthropic.Anthropic) -> None:
    m = claude.messages.create(
        model="claude-haiku-4-5",
        max_tokens=4,
        messages=[{"role": "user", "content": "Tell me everything about POL-1003."}],
    )
    assert m.stop_reason == "max_tokens" and m.usage.output_tokens == 4


# --- faults and timing ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error", "kind"),
    [
        (429, openai.RateLimitError, "requests"),
        (500, openai.InternalServerError, "server_error"),
        (503, openai.InternalServerError, "server_error"),
        (400, openai.BadRequestError, "invalid_request_error"),
    ],
)
def test_forced_status_openai(
    oai: openai.OpenAI, status: int, error: type[openai.APIStatusError], kind: str
) -> None:
    with pytest.raises(error) as info:
        oai.chat.completions.create(
            model="gpt-4o",
            messages=chat_messages("forced"),
            extra_headers={"x-emulator-status": str(status)},
        )
    assert info.value.status_code == status
    body = info.value.body
    assert isinstance(body, dict) and set(body) == {"message", "type", "param", "code"}
    assert body["type"] == kind
    if status == 429:
        assert body["code"] == "rate_limit_exceeded"
        assert info.value.response.headers["retry-after"] == "1"


@pytest.mark.parametrize(
    ("status", "error", "kind"),
    [
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (503, anthropic.InternalServerError, "overloaded_error"),
        (400, anthropic.BadRequestError, "invalid_request_error"),
    ],
)
def test_forced_status_anthropic(
    claude: anthropic.Anthropic, status: int, error: type[anthropic.APIStatusError], kind: str
) -> None:
    with pytest.raises(error) as info:
        claude.messages.create(
            model="claude-haiku-4-5",
            max_tokens=10,
            messages=[{"role": "user", "content": "forced"}],
            extra_headers={"x-emulator-status": str(status)},
        )
    assert info.value.status_code == status
    assert info.value.body == {
        "type": "error",
        "error": {"type": kind, "message": info.value.body["error"]["message"]},
    }


def test_bad_requests_get_provider_errors(llm_url: str) -> None:
    r = httpx.post(llm_url + "/v1/chat/completions", json={"messages": []})
    assert r.status_code == 400 and r.json()["error"]["param"] == "model"
    r = httpx.post(llm_url + "/v1/messages", json={"model": "claude-haiku-4-5", "messages": []})
    assert r.status_code == 400
    assert r.json()["error"] == {
        "type": "invalid_request_error",
        "message": "max_tokens: Field required",
    }
    r = httpx.get(llm_url + "/v1/nothing-here")
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_url"


def _sse_lines(
    url: str, body: dict[str, Any], headers: dict[str, str]
) -> tuple[list[str], Exception | None]:
    lines: list[str] = []
    try:
        with httpx.stream("POST", url, json=body, headers=headers) as r:
            for line in r.iter_lines():
                lines.append(line)
    except httpx.HTTPError as e:
        return lines, e
    return lines, None


def test_truncate_stops_mid_stream_and_closes(llm_url: str, oai: openai.OpenAI) -> None:
    msgs = chat_messages("Cut me off half-way please.")
    _, words = expected(msgs)
    body = {
        "model": "gpt-4o",
        "messages": msgs,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    lines, err = _sse_lines(llm_url + "/v1/chat/completions", body, {"x-emulator-truncate": "1"})
    assert isinstance(err, httpx.RemoteProtocolError)  # incomplete chunked read
    data = [json.loads(x[6:]) for x in lines if x.startswith("data: {")]
    assert "data: [DONE]" not in lines
    assert all(d["usage"] is None for d in data)
    contents = [d["choices"][0]["delta"].get("content") for d in data]
    assert 0 < sum(1 for c in contents if c) < words

    with pytest.raises((httpx.RemoteProtocolError, openai.APIConnectionError)):
        for _ in oai.chat.completions.create(
            model="gpt-4o", messages=msgs, stream=True, extra_headers={"x-emulator-truncate": "1"}
        ):
            pass

    anth = {
        "model": "claude-haiku-4-5",
        "max_tokens": 100,
        "stream": True,
        "messages": [{"role": "user", "content": "Cut me off too."}],
    }
    lines, err = _sse_lines(llm_url + "/v1/messages", anth, {"x-emulator-truncate": "1"})
    assert isinstance(err, httpx.RemoteProtocolError)
    assert "event: message_start" in lines and "event: content_block_delta" in lines
    assert "event: message_delta" not in lines and "event: message_stop" not in lines

    # a plain (not streamed) answer stops half-way through its Content-Length
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.post(
            llm_url + "/v1/chat/completions",
            json={"model": "gpt-4o", "messages": msgs},
            headers={"x-emulator-truncate": "1"},
        )


def test_latency_and_token_interval_headers(llm_url: str) -> None:
    body = {
        "model": "gpt-4o",
        "messages": chat_messages("Slowly, please."),
        "stream": True,
        "max_tokens": 5,
    }
    headers = {"x-emulator-latency-ms": "300", "x-emulator-token-interval-ms": "100"}
    t0 = time.monotonic()
    with httpx.stream("POST", llm_url + "/v1/chat/completions", json=body, headers=headers) as r:
        first_byte = time.monotonic() - t0
        stamps = [time.monotonic() for line in r.iter_lines() if '"content": "' in line]
    assert first_byte >= 0.29
    assert len(stamps) == 6  # the role chunk (content "") and 5 words
    # a lower bound the server guarantees: 300 ms, then 4 gaps of 100 ms between 5 words
    assert stamps[-1] - t0 >= 0.69


def test_cli_flags_latency_error_rate_and_rate_limit(procs: list[Proc]) -> None:
    p, url = start_llm("--latency-ms", "250", "--error-rate", "0.5")
    procs.append(p)
    statuses = []
    with httpx.Client(base_url=url) as c:
        t0 = time.monotonic()
        c.get("/v1/models")
        assert time.monotonic() - t0 >= 0.24
        t0 = time.monotonic()
        c.get("/v1/models", headers={"x-emulator-latency-ms": "0"})  # the header wins
        assert time.monotonic() - t0 < 0.2
        for _ in range(4):
            r = c.get("/v1/models", headers={"x-emulator-latency-ms": "0"})
            statuses.append(r.status_code)
    assert statuses == [200, 500, 200, 500]  # 6 requests at 0.5: the 2nd, 4th and 6th fail

    p, url = start_llm("--rate-limit-rpm", "2")
    procs.append(p)
    with openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0) as oai:
        for _ in range(2):
            oai.chat.completions.create(model="gpt-4o", messages=chat_messages("rpm"))
        with pytest.raises(openai.RateLimitError) as info:
            oai.chat.completions.create(model="gpt-4o", messages=chat_messages("rpm"))
    assert 1 <= int(info.value.response.headers["retry-after"]) <= 60
    assert isinstance(info.value.body, dict) and info.value.body["code"] == "rate_limit_exceeded"
    with anthropic.Anthropic(base_url=url, api_key="x", max_retries=0) as claude:
        with pytest.raises(anthropic.RateLimitError) as ainfo:
            claude.messages.create(
                model="claude-haiku-4-5",
                max_tokens=5,
                messages=[{"role": "user", "content": "rpm"}],
            )
    assert ainfo.value.body["error"]["type"] == "rate_limit_error"


def test_in_process_thread_runner() -> None:
    url, stop = start_in_thread()
    try:
        with openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0) as c:
            r = c.chat.completions.create(model="gpt-4o-mini", messages=chat_messages("thread"))
        assert r.model == "gpt-4o-mini-2024-07-18"
    finally:
        stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/v1/models")
