"""LLM model aliases through a real `aiops gateway` with the official SDKs: an emulated
provider answering 429, 5xx or too slowly hands the call to the next target, and the row
records the alias, the chain of targets tried and the provider and model that served."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tests.conftest import write_config
from tests.integration.pool_support import rows, served_count, set_fault
from tests.procs import Proc, start_gateway

pytestmark = pytest.mark.integration

PROMPT = "Summarise claim CLM-2024-000777: rear bumper damage, no injuries, photos attached."
ROW_SQL = (
    "SELECT route, status, upstream, attempts, fallback_chain, llm_alias, llm_provider, "
    "llm_model, llm_requested_model, prompt_tokens, completion_tokens FROM requests "
    "WHERE trace_id = ?"
)


@dataclass
class Providers:
    home: Path
    base: str
    primary: str  # emulated provider behind the `openai` and `claude` routes
    backup: str  # emulated provider behind the backup routes


def start_llm_emulator() -> tuple[Proc, str]:
    proc = Proc([sys.executable, "-m", "suite.emulators.llm", "--port", "0"])
    try:
        return proc, proc.wait_for(r"llm emulator listening on (http://\S+)").group(1)
    except AssertionError:
        proc.stop()
        raise


@pytest.fixture(scope="module")
def providers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Providers]:
    root = tmp_path_factory.mktemp("fallbacks")
    started: list[Proc] = []
    try:
        p1, primary = start_llm_emulator()
        started.append(p1)
        p2, backup = start_llm_emulator()
        started.append(p2)
        cfg = write_config(
            root / "gateway.toml",
            f"""
[gateway]
flush_interval_seconds = 0.2

[[routes]]
name = "openai"
prefix = "/openai"
strip_prefix = true
llm_provider = "openai"
upstreams = ["{primary}"]
timeout_seconds = 1

[[routes]]
name = "openai-backup"
prefix = "/backup"
strip_prefix = true
llm_provider = "azure-openai"
upstreams = ["{backup}/openai"]

[[routes]]
name = "claude"
prefix = "/anthropic"
strip_prefix = true
llm_provider = "anthropic"
upstreams = ["{primary}"]

[[routes]]
name = "claude-backup"
prefix = "/claude-backup"
strip_prefix = true
llm_provider = "bedrock"
llm_api = "anthropic"
upstreams = ["{backup}"]

[[llm_aliases]]
name = "claims-summarizer"
targets = ["openai:gpt-4o-mini", "openai-backup:gpt-4.1-mini"]

[[llm_aliases]]
name = "claims-claude"
targets = ["claude:claude-sonnet-4-5", "claude-backup:claude-haiku-4-5"]
""",
        )
        home = root / "home"
        gw, base = start_gateway(home, cfg)
        started.append(gw)
        yield Providers(home, base, primary, backup)
        assert gw.stop() == 0, gw.output
    finally:
        for p in reversed(started):
            p.stop()


@pytest.fixture(autouse=True)
def _healthy(providers: Providers) -> Iterator[None]:
    yield
    set_fault(providers.primary)
    set_fault(providers.backup)


def traced() -> tuple[str, dict[str, str]]:
    trace = secrets.token_hex(16)
    return trace, {"traceparent": f"00-{trace}-{secrets.token_hex(8)}-01"}


def oa(p: Providers) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{p.base}/openai/v1", api_key="sk-client", max_retries=0)


def row_of(p: Providers, trace: str) -> dict[str, Any]:
    (row,) = rows(p.home, ROW_SQL, [trace], expect=1)
    return row


def test_429_from_the_first_provider_falls_back_to_the_second(providers: Providers) -> None:
    set_fault(providers.primary, status=429)
    before = (served_count(providers.primary), served_count(providers.backup))
    trace, headers = traced()
    r = oa(providers).chat.completions.create(
        model="claims-summarizer",
        messages=[{"role": "user", "content": PROMPT}],
        extra_headers=headers,
    )
    assert r.model == "gpt-4.1-mini-2025-04-14"  # what the backup target serves
    assert r.usage is not None and r.choices[0].message.content
    after = (served_count(providers.primary), served_count(providers.backup))
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1)
    row = row_of(providers, trace)
    assert row["fallback_chain"] == "openai:gpt-4o-mini(429) > openai-backup:gpt-4.1-mini(ok)"
    assert row["attempts"] == 2 and row["llm_alias"] == "claims-summarizer"
    assert row["route"] == "openai" and row["status"] == 200
    assert row["upstream"] == f"{providers.backup}/openai"
    assert row["llm_provider"] == "azure-openai"
    assert row["llm_model"] == "gpt-4.1-mini-2025-04-14"
    assert row["llm_requested_model"] == "gpt-4.1-mini"
    assert (row["prompt_tokens"], row["completion_tokens"]) == (
        r.usage.prompt_tokens,
        r.usage.completion_tokens,
    )


def test_streamed_call_falls_back_and_streams_from_the_backup(providers: Providers) -> None:
    set_fault(providers.primary, status=503)
    trace, headers = traced()
    chunks = list(
        oa(providers).chat.completions.create(
            model="claims-summarizer",
            messages=[{"role": "user", "content": PROMPT + " (streamed)"}],
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=headers,
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    usage = chunks[-1].usage
    assert text and usage is not None
    row = row_of(providers, trace)
    assert row["fallback_chain"] == "openai:gpt-4o-mini(503) > openai-backup:gpt-4.1-mini(ok)"
    assert row["llm_provider"] == "azure-openai"
    assert row["completion_tokens"] == usage.completion_tokens


def test_timeout_of_the_first_provider_falls_back(providers: Providers) -> None:
    set_fault(providers.primary, latency_ms=3000)  # the route's timeout is 1 s
    trace, headers = traced()
    r = oa(providers).chat.completions.create(
        model="claims-summarizer",
        messages=[{"role": "user", "content": PROMPT}],
        extra_headers=headers,
    )
    assert r.model == "gpt-4.1-mini-2025-04-14"
    row = row_of(providers, trace)
    assert row["fallback_chain"] == "openai:gpt-4o-mini(timeout) > openai-backup:gpt-4.1-mini(ok)"
    assert row["upstream"] == f"{providers.backup}/openai"


def test_healthy_first_target_serves_and_the_backup_is_untouched(providers: Providers) -> None:
    before = served_count(providers.backup)
    trace, headers = traced()
    r = oa(providers).chat.completions.create(
        model="claims-summarizer",
        messages=[{"role": "user", "content": PROMPT}],
        extra_headers=headers,
    )
    assert r.model == "gpt-4o-mini-2024-07-18"
    assert served_count(providers.backup) == before
    row = row_of(providers, trace)
    assert row["fallback_chain"] == "openai:gpt-4o-mini(ok)" and row["attempts"] == 1
    assert row["llm_provider"] == "openai" and row["upstream"] == providers.primary


def test_every_target_failing_returns_the_last_answer(providers: Providers) -> None:
    set_fault(providers.primary, status=429)
    set_fault(providers.backup, status=500)
    trace, headers = traced()
    with pytest.raises(openai.InternalServerError):
        oa(providers).chat.completions.create(
            model="claims-summarizer",
            messages=[{"role": "user", "content": PROMPT}],
            extra_headers=headers,
        )
    row = row_of(providers, trace)
    assert row["status"] == 500
    assert row["fallback_chain"] == "openai:gpt-4o-mini(429) > openai-backup:gpt-4.1-mini(500)"


def test_anthropic_alias_falls_back_with_the_anthropic_sdk(providers: Providers) -> None:
    set_fault(providers.primary, status=529)
    trace, headers = traced()
    client = anthropic.Anthropic(
        base_url=f"{providers.base}/anthropic", api_key="sk-ant-client", max_retries=0
    )
    msg = client.messages.create(
        model="claims-claude",
        max_tokens=200,
        messages=[{"role": "user", "content": PROMPT}],
        extra_headers=headers,
    )
    assert msg.model == "claude-haiku-4-5-20251001"
    row = row_of(providers, trace)
    assert (
        row["fallback_chain"]
        == "claude:claude-sonnet-4-5(529) > claude-backup:claude-haiku-4-5(ok)"
    )
    assert row["llm_provider"] == "bedrock" and row["llm_model"] == "claude-haiku-4-5-20251001"
    assert (row["prompt_tokens"], row["completion_tokens"]) == (
        msg.usage.input_tokens,
        msg.usage.output_tokens,
    )
