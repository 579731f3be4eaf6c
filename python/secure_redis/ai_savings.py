"""Tokens and cost an ``AIResponseCache`` saved: what a hit spared the model.

Owns two things:

* the token count an entry carries. ``AIResponseCache.set(..., tokens=N)`` (or a
  ``token_counter`` that reads it from the response) stores the value in the cache-aside
  envelope of ``aside.py`` with one more field, ``"t"``: ``{ENTRY: 1, "v": value, "f": fresh
  until, "t": N}``. The envelope is sealed like every value, so a hit in any process, even one
  built without a ``token_counter``, knows how many tokens it saved;
* the totals by operation: tokens saved and cost saved (tokens / 1000 x the operation's price
  in ``cost_per_1k_tokens``), read by ``get_ai_performance_summary()`` and the exporters of
  ``metrics.py``.

Invariants a reader must not break:

- Nothing here names a key. The operation is read from a ``build_key`` name
  (``ai_cache:op:<operation>|...``); any other key counts under ``"other"``, so a caller's own
  key name never becomes a metric label.
- Without ``tokens`` and ``token_counter``, ``set`` stores exactly what it stored before (no
  envelope), and a read pays one ``type(...) is dict`` test.
- A ``token_counter`` that raises or returns something other than a non-negative int never
  breaks a ``set``: the entry is stored without a count, and the failure is logged once, by
  type name (its text may quote the response).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Mapping, cast

from .aside import ENTRY
from .exceptions import ValidationError

logger = logging.getLogger("secure_redis.ai")

TOKENS = "t"
"""The envelope field holding the entry's token count."""
OTHER = "other"
"""The operation a key not built by ``build_key`` counts under."""
_PREFIX = "ai_cache:op:"

TokenCounter = Callable[[Any], "int | None"]


def operation_of(key: str) -> str:
    """The operation in a ``build_key`` name, else ``"other"`` (never the key itself)."""
    if key.startswith(_PREFIX):
        operation, bar, _ = key[len(_PREFIX):].partition("|")
        if bar and operation:
            return operation
    return OTHER


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_prices(prices: Mapping[str, float] | float | None) -> dict[str, float] | float | None:
    """``cost_per_1k_tokens``: one price for every operation, or a price per operation."""
    if prices is None:
        return None
    if isinstance(prices, (int, float)) and not isinstance(prices, bool):
        if prices < 0:
            raise ValidationError("cost_per_1k_tokens must not be negative", {"parameter": "cost_per_1k_tokens"})
        return float(prices)
    if not isinstance(prices, Mapping):
        raise ValidationError(
            "cost_per_1k_tokens must be a number or a dict of operation -> price per 1000 tokens",
            {"parameter": "cost_per_1k_tokens", "type": type(prices).__name__},
        )
    checked: dict[str, float] = {}
    for operation, price in prices.items():
        if not isinstance(operation, str) or isinstance(price, bool) or not isinstance(price, (int, float)) or price < 0:
            raise ValidationError(
                "cost_per_1k_tokens maps operation names to non-negative prices",
                {"parameter": "cost_per_1k_tokens", "operation": repr(operation)},
            )
        checked[operation] = float(price)
    return checked


class TokenSavings:
    """One cache's token counter, prices and totals; safe to read from a scrape thread."""

    __slots__ = ("token_counter", "prices", "_tokens", "_cost", "_lock", "_counter_failed")

    def __init__(self, token_counter: TokenCounter | None, prices: Mapping[str, float] | float | None) -> None:
        if token_counter is not None and not callable(token_counter):
            raise ValidationError("token_counter must be a callable(response) -> int | None",
                                  {"parameter": "token_counter", "type": type(token_counter).__name__})
        self.token_counter = token_counter
        self.prices = check_prices(prices)
        self._tokens: dict[str, int] = {}
        self._cost: dict[str, float] = {}
        self._lock = threading.Lock()
        self._counter_failed = False

    def count(self, value: Any, tokens: int | None) -> int | None:
        """The count to store with ``value``: ``tokens`` if given, else the counter's answer."""
        if tokens is not None:
            if not _is_count(tokens):
                raise ValidationError("tokens must be a non-negative int", {"type": type(tokens).__name__})
            return tokens
        if self.token_counter is None:
            return None
        try:
            counted = self.token_counter(value)
        except Exception as error:  # a broken counter must not break caching
            self._counter_error(f"raised {type(error).__name__}")
            return None
        if counted is None:
            return None
        if not _is_count(counted):
            self._counter_error(f"returned {type(counted).__name__}, not a non-negative int")
            return None
        return counted

    def _counter_error(self, what: str) -> None:
        if not self._counter_failed:
            self._counter_failed = True
            logger.warning("token_counter %s; entries are stored without a token count", what)

    def envelope(self, value: Any, count: int, lifetime: int) -> dict[str, Any]:
        """The stored form of a value with its token count (``value`` already JSON-ready)."""
        return {ENTRY: 1, "v": value, "f": time.time() + lifetime, TOKENS: count}

    def record_hit(self, key: str, stored: Any) -> None:
        """Adds what a read found to its operation's totals, if it is a fresh entry carrying a
        token count (anything else, a plain value or MISS, is left alone)."""
        if type(stored) is not dict or ENTRY not in stored:
            return
        entry = cast("dict[str, Any]", stored)
        count = entry.get(TOKENS)
        if not isinstance(count, int) or not _is_count(count) or time.time() >= entry.get("f", 0):
            return
        operation = operation_of(key)
        price = self.prices.get(operation) if isinstance(self.prices, dict) else self.prices
        with self._lock:
            self._tokens[operation] = self._tokens.get(operation, 0) + count
            if price is not None:
                self._cost[operation] = self._cost.get(operation, 0.0) + count / 1000 * price

    def snapshot(self) -> dict[str, Any]:
        """``tokens_saved``/``cost_saved`` by operation and their totals (a copy)."""
        with self._lock:
            tokens, cost = dict(self._tokens), dict(self._cost)
        return {
            "tokens_saved": tokens,
            "cost_saved": {operation: round(value, 6) for operation, value in cost.items()},
            "total_tokens_saved": sum(tokens.values()),
            "total_cost_saved": round(sum(cost.values()), 6),
        }
