"""Python half of the asyncio bridge: one LoopWaker per event loop, watched with add_reader."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from . import _native

# Looked up from Rust on every call; an entry lives as long as its loop.
_wakers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any]" = weakref.WeakKeyDictionary()


def register(loop: asyncio.AbstractEventLoop) -> Any:
    """Creates the loop's waker and has the loop drain it whenever it signals.

    Wakers of loops closed meanwhile are closed here: a result that arrived after its loop
    stopped would otherwise keep that loop (and two sockets) alive forever."""
    for old_loop, old_waker in list(_wakers.items()):
        if old_loop.is_closed():
            old_waker.close()
            _wakers.pop(old_loop, None)
    waker = _native.LoopWaker()
    loop.add_reader(waker.fileno(), waker.drain)
    _wakers[loop] = waker
    return waker
