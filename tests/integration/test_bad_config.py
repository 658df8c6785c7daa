"""A config with several mistakes: `aiops gateway` names each one (file, key, what is
wrong) in one pass and exits 2 without starting."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.procs import run_aiops

pytestmark = pytest.mark.integration

BAD_CONFIG = """
[[routes]]
name = "claims"
prefix = "/claims"
upstreams = ["http://127.0.0.1:9001", "http://127.0.0.1:9002"]
strategy = "fastest"

[[routes]]
name = "quotes"
prefix = "/quotes"
upstreams = ["htp://quotes.internal:8080"]

[[routes]]
name = "openai"
prefix = "/openai"
strip_prefix = true
upstreams = ["http://127.0.0.1:9100"]
llm_provider = "openai"
provider_key = "${NOT_SET}"

[[llm_aliases]]
name = "claims-summarizer"
targets = ["nope:gpt-4o-mini"]
"""


def test_every_mistake_is_named_and_the_gateway_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(BAD_CONFIG)
    r = run_aiops(
        "gateway", "--home", str(tmp_path / "home"), "--config", str(config),
        "--listen-port", "0", timeout=60, env={"NOT_SET": ""},
    )  # fmt: skip
    assert r.returncode == 2, r.stdout + r.stderr
    assert "listening" not in r.stdout
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    mistakes = {
        "strategy": ("routes[0].strategy", "'fastest'"),
        "url": ("routes[1].upstreams[0]", "'htp://quotes.internal:8080' is not an http(s) URL"),
        "env": ("routes[2].provider_key", "NOT_SET is not set"),
        "alias": ("llm_aliases[0].targets", "'nope'"),
    }
    for what, (key, message) in mistakes.items():
        hits = [line for line in lines if key in line and message in line]
        assert len(hits) == 1, (
            f"{what}: expected one line with {key!r} and {message!r}:\n{r.stderr}"
        )
        assert str(config) in hits[0]
    # One line per mistake and nothing else wrong.
    assert len([line for line in lines if str(config) in line]) == len(mistakes), r.stderr
