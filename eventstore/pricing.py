"""Model prices: a versioned table, model -> USD per million input, output and cached tokens.

Invariant: a price version, once in effect, is never edited: a price change is a NEW version with
a later `effective_from`. A model call is priced by the decider (commands/decide.py) with the
version in effect at the moment it is decided, and the cost and that version's name are written
into the ModelCallRecorded event itself. So a price change never rewrites a past cost, and a
rebuild of the read models reads the very same costs back from the log, whatever the price
table says by then (even if an old version was removed from the file). A model without a price in
the version in effect is recorded without a cost (unpriced), not at zero.

Cached tokens are part of the input tokens (ModelUsage): the cached ones are billed at the cached
price (the input price when the table gives none), the rest at the input price.

The table comes from AGENTLOG_PRICES_FILE (JSON, the shape of DEFAULT_PRICES) or, without it, the
shipped DEFAULT_PRICES below (list prices at their effective date; set your own for your contracts).
"""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

COST_QUANTUM = Decimal("0.000000001")  # costs are kept to a billionth of a dollar
MILLION = Decimal(1_000_000)

DEFAULT_PRICES: dict[str, Any] = {
    "currency": "USD",
    "versions": [
        {
            "version": "2024-01-01",
            "effective_from": "2024-01-01T00:00:00+00:00",
            "models": {
                "gpt-4o": {"input": 2.50, "output": 10.00, "cached": 1.25},
                "gpt-4o-mini": {"input": 0.15, "output": 0.60, "cached": 0.075},
                "gpt-4.1": {"input": 2.00, "output": 8.00, "cached": 0.50},
                "gpt-4.1-mini": {"input": 0.40, "output": 1.60, "cached": 0.10},
                "o3": {"input": 2.00, "output": 8.00, "cached": 0.50},
                "claude-sonnet-4": {"input": 3.00, "output": 15.00, "cached": 0.30},
                "claude-opus-4": {"input": 15.00, "output": 75.00, "cached": 1.50},
                "claude-3-5-haiku": {"input": 0.80, "output": 4.00, "cached": 0.08},
            },
        }
    ],
}


class _Closed(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelPrice(_Closed):
    """USD per million tokens."""

    input: Decimal = Field(ge=0)
    output: Decimal = Field(ge=0)
    cached: Decimal | None = Field(default=None, ge=0)


class PriceVersion(_Closed):
    version: str = Field(min_length=1, max_length=64)
    effective_from: datetime
    models: dict[str, ModelPrice]

    @field_validator("effective_from")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("must have a time-zone offset")
        return value


class PriceTable(_Closed):
    currency: str = "USD"
    versions: list[PriceVersion] = Field(min_length=1)

    @field_validator("versions")
    @classmethod
    def _distinct(cls, versions: list[PriceVersion]) -> list[PriceVersion]:
        names = [v.version for v in versions]
        if len(set(names)) != len(names):
            raise ValueError("version names must be distinct")
        instants = [v.effective_from for v in versions]
        if len(set(instants)) != len(instants):
            raise ValueError("two versions take effect at the same instant")
        return sorted(versions, key=lambda v: v.effective_from)

    def in_effect(self, at: datetime) -> PriceVersion | None:
        """The latest version whose effective_from is at or before `at` (None before the first)."""
        current = None
        for version in self.versions:  # sorted by effective_from
            if version.effective_from <= at:
                current = version
        return current

    def cost(
        self, model: str, at: datetime, input_tokens: int | None, output_tokens: int | None, cached_tokens: int | None
    ) -> tuple[float, str] | None:
        """(USD, version name) of a call decided at `at`; None if the model had no price then."""
        version = self.in_effect(at)
        price = version.models.get(model) if version is not None else None
        if version is None or price is None:
            return None
        return float(call_cost(price, input_tokens, output_tokens, cached_tokens)), version.version


def call_cost(price: ModelPrice, input_tokens: int | None, output_tokens: int | None, cached: int | None) -> Decimal:
    inputs, outputs = input_tokens or 0, output_tokens or 0
    cached_n = min(cached or 0, inputs)
    cached_price = price.cached if price.cached is not None else price.input
    total = (
        Decimal(inputs - cached_n) * price.input + Decimal(cached_n) * cached_price + outputs * price.output
    ) / MILLION
    return total.quantize(COST_QUANTUM, rounding=ROUND_HALF_EVEN)


class PriceTableError(ValueError):
    """The price file cannot be read or is not a valid price table."""


def parse_prices(data: Any) -> PriceTable:
    try:
        return PriceTable.model_validate(data)
    except ValidationError as exc:
        reasons = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False, include_input=False)
        )
        raise PriceTableError(f"not a valid price table: {reasons}") from None


def load_prices(path: str | Path | None) -> PriceTable:
    """The table of `path` (JSON), or the shipped default when `path` is None or empty."""
    if not path:
        return DEFAULT_TABLE
    try:
        data = orjson.loads(Path(path).read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise PriceTableError(f"cannot read the price file {path}: {exc}") from None
    return parse_prices(data)


DEFAULT_TABLE = parse_prices(DEFAULT_PRICES)
