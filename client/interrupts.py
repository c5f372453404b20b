"""Every command stops on Ctrl-C every time, however busy the machine.

`asyncio.run`'s own Ctrl-C handling is a plain Python signal handler with no wake-up fd: when the kernel
hands SIGINT to a thread other than the main one (an idle executor thread left by `getaddrinfo`, say), the
main thread stays asleep in epoll and the handler never runs, so an idle server ignored Ctrl-C (seen once
in a clean-clone CI run on a loaded 2-core machine). `loop.add_signal_handler` installs a wake-up fd that
any thread's signal writes to, so the loop always wakes.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run` for a command's work, with a Ctrl-C that always lands: it cancels the work and raises
    KeyboardInterrupt here (run_main then prints "interrupted" and exits 130). A cancellation that some
    library swallows is repeated every 0.5 s, and a command still running INTERRUPT_GRACE_S after Ctrl-C exits
    130 at once (`psyche balance` waiting on a silent RPC node once ignored Ctrl-C for 30 s on a loaded CI
    machine; the cause was not found, so nothing is left to it)."""
    interrupted = False
    timers: list[threading.Timer] = []

    async def guarded() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def cancel_until_done() -> None:
            if not task.done():
                task.cancel()
                loop.call_later(0.5, cancel_until_done)

        def on_sigint() -> None:
            nonlocal interrupted
            if interrupted:  # a second Ctrl-C: the user means it
                _exit_interrupted()
            interrupted = True
            timers.append(_hard_exit_later())
            cancel_until_done()

        loop.add_signal_handler(signal.SIGINT, on_sigint)
        return await main

    try:
        return asyncio.run(guarded())
    except BaseException:
        if interrupted:
            raise KeyboardInterrupt from None
        raise
    finally:
        for t in timers:
            t.cancel()


INTERRUPT_GRACE_S = 5.0


def _exit_interrupted() -> None:
    sys.stderr.write("interrupted\n")
    sys.stderr.flush()
    os._exit(130)


def _hard_exit_later() -> threading.Timer:
    """A timer thread, not the loop: it fires even when the loop is stuck."""
    timer = threading.Timer(INTERRUPT_GRACE_S, _exit_interrupted)
    timer.daemon = True
    timer.start()
    return timer


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
