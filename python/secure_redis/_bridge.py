"""Python half of the asyncio bridge: runs on the event loop, resolves a batch of futures."""

from __future__ import annotations

from typing import Any


def resolve_batch(items: list[tuple[Any, bool, Any]]) -> None:
    for future, ok, value in items:
        if future.done():  # cancelled while the Rust work finished
            continue
        try:
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
        except Exception:  # one bad item must not leave the rest of the batch pending
            if not future.done():
                future.set_exception(RuntimeError("secure_redis could not deliver a result"))
