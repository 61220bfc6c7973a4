"""Token and dollar accounting of explorer calls, from a configurable price table."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

# USD per million tokens (input, output). Defaults only: check the provider's current
# prices and pass your own table (``--prices FILE``, YAML or JSON: {model: [in, out]}).
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "claude-opus-4": (15.0, 75.0),
    "claude-sonnet-4": (3.0, 15.0),
    "claude-haiku-4": (1.0, 5.0),
    "offline": (0.0, 0.0),
}


@dataclass
class PriceTable:
    prices: dict[str, tuple[float, float]] = field(default_factory=lambda: dict(DEFAULT_PRICES))

    @classmethod
    def load(cls, path: Path | str) -> PriceTable:
        path = Path(path)
        text = path.read_text()
        try:
            data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as e:
            raise ValueError(f"{path}: not a valid price table: {e}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping model -> [input, output] USD/Mtok")
        prices = {}
        for model, pair in data.items():
            if (not isinstance(pair, (list, tuple)) or len(pair) != 2
                    or not all(isinstance(x, (int, float)) and x >= 0 for x in pair)):
                raise ValueError(f"{path}: model {model!r}: expected [input, output] "
                                 "non-negative USD per million tokens")
            prices[str(model)] = (float(pair[0]), float(pair[1]))
        return cls(prices)

    def rate(self, model: str) -> tuple[float, float]:
        """Prices of a model: exact name, else the longest table key it starts with."""
        if model in self.prices:
            return self.prices[model]
        keys = [k for k in self.prices if model.startswith(k)]
        if not keys:
            raise ValueError(f"no price for model {model!r}; known: {', '.join(self.prices)}"
                             " (pass a price table with --prices)")
        return self.prices[max(keys, key=len)]

    def known(self, model: str) -> bool:
        return model in self.prices or any(model.startswith(k) for k in self.prices)

    def cost_or_none(self, model: str, input_tokens: int, output_tokens: int) -> float | None:
        """Dollars, or None for a model without a price (then only tokens are recorded)."""
        return self.cost(model, input_tokens, output_tokens) if self.known(model) else None

    def cost(self, model: str, input_tokens: int, output_tokens: int) -> float:
        pin, pout = self.rate(model)
        return (input_tokens * pin + output_tokens * pout) / 1e6
