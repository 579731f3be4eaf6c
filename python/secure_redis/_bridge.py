"""Python half of the asyncio bridge: one LoopWaker per event loop, watched with add_reader."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from . import _native

_wakers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any]" = weakref.WeakKeyDictionary()


def prepare() -> tuple[asyncio.Future[Any], Any]:
    """A new future of the running loop, and the loop's waker (created on first use)."""
    loop = asyncio.get_running_loop()
    waker = _wakers.get(loop)
    if waker is None:
        waker = _native.LoopWaker()
        loop.add_reader(waker.fileno(), waker.drain)
        _wakers[loop] = waker
    return loop.create_future(), waker
