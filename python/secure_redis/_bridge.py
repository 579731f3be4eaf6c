"""Python half of the asyncio bridge: runs on the event loop, resolves a batch of futures."""

from __future__ import annotations

from typing import Any


def resolve_batch(items: list[tuple[Any, bool, Any]]) -> None:
    for future, ok, value in items:
        if future.done():  # cancelled while the Rust work finished
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
