"""LLM prices as data: a shipped table (`suite/data/llm_prices.csv`) that a user's
`<home>/llm_prices.csv` extends or overrides. An unknown model is unpriced, never guessed.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import NamedTuple

from suite.errors import ConfigError

PRICE_COLUMNS = (
    "provider", "model", "input_per_mtok", "cached_input_per_mtok", "cache_write_per_mtok",
    "output_per_mtok", "effective_date", "source",
)  # fmt: skip
# Dated snapshots and aliases are priced as their family: gpt-4o-2024-08-06 -> gpt-4o,
# claude-3-5-sonnet-20241022 / -latest -> claude-3-5-sonnet.
_SNAPSHOT_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8}|latest)$")


class Price(NamedTuple):
    provider: str
    model: str
    input_per_mtok: float
    cached_input_per_mtok: float | None
    cache_write_per_mtok: float | None
    output_per_mtok: float
    effective_date: date
    source: str


class TokenUsage(NamedTuple):
    prompt_tokens: int | None
    completion_tokens: int | None
    cached_prompt_tokens: int | None = None
    cache_creation_tokens: int | None = None


def model_family(model: str) -> str:
    return _SNAPSHOT_SUFFIX.sub("", model)


def _float(row: dict[str, str], key: str, where: str, required: bool) -> float | None:
    raw = (row.get(key) or "").strip()
    if not raw:
        if required:
            raise ConfigError(f"{where}: {key}: is required")
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{where}: {key}: {raw!r} is not a number") from None
    if value < 0:
        raise ConfigError(f"{where}: {key}: {raw!r} must not be negative")
    return value


def parse_price_rows(text: str, origin: str) -> list[Price]:
    reader = csv.DictReader(text.splitlines())
    missing = [c for c in PRICE_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ConfigError(
            f"{origin}: missing columns {missing} (expected {', '.join(PRICE_COLUMNS)})"
        )
    prices = []
    for i, row in enumerate(reader, start=2):
        where = f"{origin}: line {i}"
        provider, model = (row["provider"] or "").strip(), (row["model"] or "").strip()
        if not provider or not model:
            raise ConfigError(f"{where}: provider and model are required")
        try:
            effective = date.fromisoformat((row["effective_date"] or "").strip())
        except ValueError:
            raise ConfigError(
                f"{where}: effective_date: {row['effective_date']!r} is not YYYY-MM-DD"
            ) from None
        prices.append(
            Price(
                provider, model,
                _float(row, "input_per_mtok", where, True) or 0.0,
                _float(row, "cached_input_per_mtok", where, False),
                _float(row, "cache_write_per_mtok", where, False),
                _float(row, "output_per_mtok", where, True) or 0.0,
                effective, (row.get("source") or "").strip(),
            )
        )  # fmt: skip
    return prices


@dataclass
class PriceTable:
    prices: list[Price]

    @classmethod
    def load(cls, home_dir: Path | None = None) -> PriceTable:
        """The shipped table plus `<home>/llm_prices.csv` (whose rows win on equal keys)."""
        shipped = resources.files("suite").joinpath("data/llm_prices.csv").read_text()
        prices = parse_price_rows(shipped, "suite/data/llm_prices.csv")
        if home_dir is not None:
            user = home_dir / "llm_prices.csv"
            if user.exists():
                overrides = parse_price_rows(user.read_text(), str(user))
                keys = {(p.provider, p.model, p.effective_date) for p in overrides}
                prices = [p for p in prices if (p.provider, p.model, p.effective_date) not in keys]
                prices += overrides
        return cls(prices)

    def lookup(
        self, provider: str | None, model: str | None, on: date | None = None
    ) -> Price | None:
        """The price in force on `on` for this provider's model (or its family)."""
        if not provider or not model:
            return None
        on = on or date.today()
        for name in (model, model_family(model)):
            candidates = [
                p for p in self.prices
                if p.provider == provider and p.model == name and p.effective_date <= on
            ]  # fmt: skip
            if candidates:
                return max(candidates, key=lambda p: p.effective_date)
        return None


def cost_usd(price: Price, usage: TokenUsage, api_family: str) -> float | None:
    """USD for one call, or None when the usage needs a price the table does not have.

    OpenAI reports cached tokens inside prompt_tokens; Anthropic reports input_tokens
    without cache reads and writes, which come separately.
    """
    prompt = usage.prompt_tokens or 0
    completion = usage.completion_tokens or 0
    cached = usage.cached_prompt_tokens or 0
    created = usage.cache_creation_tokens or 0
    if cached and price.cached_input_per_mtok is None:
        return None
    if created and price.cache_write_per_mtok is None:
        return None
    cached_cost = cached * (price.cached_input_per_mtok or 0.0)
    if api_family == "anthropic":
        total = (
            prompt * price.input_per_mtok
            + cached_cost
            + created * (price.cache_write_per_mtok or 0.0)
            + completion * price.output_per_mtok
        )
    else:
        total = (
            (max(prompt - cached, 0)) * price.input_per_mtok
            + cached_cost
            + completion * price.output_per_mtok
        )
    return total / 1_000_000
