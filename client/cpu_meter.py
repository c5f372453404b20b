"""CPU seconds of a client's own work per phase, exact even when many clients share one process.

`time.process_time` counts every thread of the process, so with many clients in one process (devtools.swarm)
it cannot say whose work it was. Instead a phase's coroutine is driven step by step and `time.thread_time` is
read around each step: a step runs synchronously on the event loop thread, so its CPU is this client's own;
work sent to a worker thread is timed inside that thread. What runs in other threads (iroh's Rust runtime,
the websocket reader) is not attributed to a phase.
"""
from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any, TypeVar

T = TypeVar("T")


class CpuMeter:
    def __init__(self) -> None:
        self.seconds: defaultdict[str, float] = defaultdict(float)

    def add(self, phase: str, seconds: float) -> None:
        self.seconds[phase] += seconds

    async def run(self, phase: str, coro: Coroutine[Any, Any, T]) -> T:
        """Await `coro`, adding the CPU its own steps take on this thread to `phase`."""
        return await _Metered(coro, self, phase)

    def timed(self, phase: str, fn: Callable[..., T], *args: Any) -> T:
        """Call `fn` (typically in a worker thread) and add its thread CPU to `phase`."""
        t0 = time.thread_time()
        try:
            return fn(*args)
        finally:
            self.add(phase, time.thread_time() - t0)

    def take(self) -> dict[str, float]:
        """The seconds per phase since the last take (rounded for the event), and start over."""
        out = {k: round(v, 5) for k, v in sorted(self.seconds.items())}
        self.seconds.clear()
        return out


class _Metered(Awaitable[T]):
    def __init__(self, coro: Coroutine[Any, Any, T], meter: CpuMeter, phase: str) -> None:
        self.coro, self.meter, self.phase = coro, meter, phase

    def __await__(self) -> Generator[Any, Any, T]:
        coro, send, exc = self.coro, None, None
        while True:
            t0 = time.thread_time()
            try:
                yielded = coro.throw(exc) if exc is not None else coro.send(send)
            except StopIteration as stop:
                return stop.value
            finally:
                self.meter.add(self.phase, time.thread_time() - t0)
            try:
                send, exc = (yield yielded), None
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as e:  # noqa: BLE001 - thrown in (a cancellation): pass it to the coroutine
                send, exc = None, e
