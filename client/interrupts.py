"""Serving commands stop on Ctrl-C (or SIGTERM) every time, however busy the machine.

`asyncio.run`'s own Ctrl-C handling is a plain Python signal handler with no wake-up fd: when the kernel
hands SIGINT to a thread other than the main one (an idle executor thread left by `getaddrinfo`, say), the
main thread stays asleep in epoll and the handler never runs, so an idle server ignored Ctrl-C (seen once
in a clean-clone CI run on a loaded 2-core machine). `loop.add_signal_handler` installs a wake-up fd that
any thread's signal writes to, so the loop always wakes.
"""
from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Coroutine
from typing import Any


def run_until_interrupted(main: Coroutine[Any, Any, None]) -> bool:
    """Run `main` until it returns (False) or SIGINT/SIGTERM arrives (True: `main` was cancelled and its
    `finally` blocks ran). Errors `main` raises propagate."""

    async def guarded() -> bool:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        work = asyncio.ensure_future(main)
        stopper = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        if work.done():
            work.result()
            return False
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await work
        return True

    return asyncio.run(guarded())
