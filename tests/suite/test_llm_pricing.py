from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from suite.errors import ConfigError
from suite.llm_pricing import PriceTable, TokenUsage, cost_usd, model_family


def test_snapshot_and_alias_names_map_to_their_family() -> None:
    assert model_family("gpt-4o-2024-08-06") == "gpt-4o"
    assert model_family("claude-3-5-sonnet-20241022") == "claude-3-5-sonnet"
    assert model_family("claude-3-5-haiku-latest") == "claude-3-5-haiku"
    assert model_family("gpt-4o-mini") == "gpt-4o-mini"


def test_shipped_table_prices_known_models_and_not_unknown_ones() -> None:
    t = PriceTable.load(None)
    assert t.lookup("openai", "gpt-4o-mini-2024-07-18").model == "gpt-4o-mini"  # type: ignore[union-attr]
    assert t.lookup("openai", "gpt-99") is None
    assert t.lookup("vllm", "gpt-4o") is None  # same name, other provider: no guess
    assert t.lookup("openai", "gpt-4.1", on=date(2024, 1, 1)) is None  # before its price existed


def test_openai_cost_counts_cached_tokens_at_the_cached_rate() -> None:
    p = PriceTable.load(None).lookup("openai", "gpt-4o")
    assert p is not None
    c = cost_usd(p, TokenUsage(1_000_000, 1_000_000, 400_000), "openai")
    assert c == pytest.approx(600_000 * 2.5e-6 + 400_000 * 1.25e-6 + 1_000_000 * 10e-6)


def test_anthropic_cost_adds_cache_reads_and_writes() -> None:
    p = PriceTable.load(None).lookup("anthropic", "claude-3-5-sonnet-20241022")
    assert p is not None
    c = cost_usd(p, TokenUsage(1000, 100, 2000, 500), "anthropic")
    assert c == pytest.approx((1000 * 3 + 2000 * 0.3 + 500 * 3.75 + 100 * 15) / 1e6)


def test_user_prices_override_and_extend(tmp_path: Path) -> None:
    (tmp_path / "llm_prices.csv").write_text(
        "provider,model,input_per_mtok,cached_input_per_mtok,cache_write_per_mtok,output_per_mtok,effective_date,source\n"
        "openai,gpt-4o,1.00,0.5,,4.00,2024-10-01,our contract\n"
        "vllm,llama-3.1-70b,0.20,,,0.20,2024-01-01,internal cost\n"
    )
    t = PriceTable.load(tmp_path)
    assert t.lookup("openai", "gpt-4o").input_per_mtok == 1.0  # type: ignore[union-attr]
    assert t.lookup("vllm", "llama-3.1-70b").source == "internal cost"  # type: ignore[union-attr]


def test_cached_tokens_without_a_cached_price_is_unpriced_not_guessed() -> None:
    p = PriceTable.load(None).lookup("openai", "text-embedding-3-small")
    assert p is not None and cost_usd(p, TokenUsage(10, 0, 5), "openai") is None


@pytest.mark.parametrize(
    ("csv", "message"),
    [
        ("provider,model\nopenai,x\n", "missing columns"),
        (
            "provider,model,input_per_mtok,cached_input_per_mtok,cache_write_per_mtok,output_per_mtok,effective_date,source\nopenai,x,abc,,,1,2024-01-01,s\n",
            "input_per_mtok: 'abc' is not a number",
        ),
        (
            "provider,model,input_per_mtok,cached_input_per_mtok,cache_write_per_mtok,output_per_mtok,effective_date,source\nopenai,x,1,,,1,01/02/2024,s\n",
            "effective_date",
        ),
        (
            "provider,model,input_per_mtok,cached_input_per_mtok,cache_write_per_mtok,output_per_mtok,effective_date,source\nopenai,x,-1,,,1,2024-01-01,s\n",
            "must not be negative",
        ),
    ],
)
def test_bad_user_price_file_names_file_line_and_column(
    tmp_path: Path, csv: str, message: str
) -> None:
    (tmp_path / "llm_prices.csv").write_text(csv)
    with pytest.raises(ConfigError, match=message) as e:
        PriceTable.load(tmp_path)
    assert "llm_prices.csv" in str(e.value)
