"""Python half of the asyncio bridge: one LoopWaker per event loop, watched with add_reader."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from . import _native

# Looked up from Rust on every call; an entry lives as long as its loop.
_wakers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any]" = weakref.WeakKeyDictionary()


def register(loop: asyncio.AbstractEventLoop) -> Any:
    """Creates the loop's waker and has the loop drain it whenever it signals."""
    waker = _native.LoopWaker()
    loop.add_reader(waker.fileno(), waker.drain)
    _wakers[loop] = waker
    return waker
