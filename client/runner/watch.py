"""The runner's one notion of "something changed": a new chain state, or a P2P message.

Why: every wait in a round (all trainers finished, the witness set final, a peer's warmup) is a condition on
the latest chain state and on what peers said. Waiting on this wakes a waiter exactly when either changes,
instead of each loop polling both every few milliseconds.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


class Watch:
    def __init__(self) -> None:
        self.state: Any = None
        self._changed = asyncio.Event()

    def publish(self, state: Any) -> None:
        self.state = state
        self.poke()

    def poke(self) -> None:
        """Wake every waiter to re-check its condition."""
        ev, self._changed = self._changed, asyncio.Event()
        ev.set()

    async def until(self, condition: Callable[[], bool], deadline: float | None = None) -> bool:
        """Wait until `condition()` holds (True) or wall-clock `deadline` (time.time()) passes (False)."""
        while True:
            if condition():
                return True
            ev = self._changed
            timeout = None if deadline is None else deadline - time.time()
            if timeout is not None and timeout <= 0:
                return False
            try:  # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation (gh-86296)
                async with asyncio.timeout(timeout):
                    await ev.wait()
            except TimeoutError:
                return bool(condition())
