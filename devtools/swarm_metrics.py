"""What devtools.swarm measures: each client's share of the shared event loop (`LoopCpu`), this process's
threads by group, its and the localnet's CPU and memory (`Sample`, taken by the swarm's sampler), and the
per-round figures bench/scale.py prints (`round_stats`). Never imported by the product."""
from __future__ import annotations

import asyncio
import contextvars
import os
import re
import statistics
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from devtools.swarm import Swarm


CLIENT: contextvars.ContextVar[str] = contextvars.ContextVar("swarm_client", default="")


class LoopCpu:
    """Event-loop CPU per client: every callback the loop runs (a task's step included) is timed with
    time.thread_time and charged to the client whose context it runs in (a client's task and every task it
    spawns carry its name in CLIENT; callbacks from other threads, e.g. iroh's, are charged to "")."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.by_task: dict[str, float] = {}  # the same CPU by the top coroutine of the task stepped, all clients
        self._orig: Any = None

    def install(self) -> None:
        from asyncio import events

        orig, seconds, by_task = events.Handle._run, self.seconds, self.by_task

        def _run(handle: Any) -> None:
            t0 = time.thread_time()
            try:
                orig(handle)
            finally:
                spent = time.thread_time() - t0
                who = handle._context.get(CLIENT, "") if handle._context is not None else ""
                seconds[who] = seconds.get(who, 0.0) + spent
                task = getattr(handle._callback, "__self__", None)
                coro = task.get_coro() if isinstance(task, asyncio.Task) else None
                what = getattr(coro, "__qualname__", None) or getattr(handle._callback, "__qualname__", "?")
                by_task[what] = by_task.get(what, 0.0) + spent

        self._orig = orig
        events.Handle._run = _run  # type: ignore[method-assign]

    def uninstall(self) -> None:
        if self._orig is not None:
            from asyncio import events

            events.Handle._run = self._orig  # type: ignore[method-assign]
            self._orig = None


def cpu_of(stat_path: str) -> float:
    """utime + stime of a process or thread, in seconds, from /proc/.../stat."""
    with open(stat_path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def thread_groups() -> dict[str, float]:
    """CPU seconds of this process's threads, grouped by name with digits dropped (the main thread runs the
    event loop; tokio-runtime-w: iroh; asyncio_: to_thread workers; the rest: torch, websockets...)."""
    out: dict[str, float] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                name = f.read().strip()
            cpu = cpu_of(f"/proc/self/task/{tid}/stat")
        except OSError:
            continue
        key = "event loop (main)" if tid == str(os.getpid()) else re.sub(r"[-_]?\d+$", "", name) or "?"
        out[key] = out.get(key, 0.0) + cpu
    return out


@dataclass
class Sample:
    t: float
    self_cpu: float
    threads: dict[str, float]
    localnet_cpu: float
    tx_count: int | None
    self_rss_mb: float
    localnet_rss_mb: float
    loop_cpu: dict[str, float]
    loop_tasks: dict[str, float]
    loop_lag_s: float  # how late the sampler's own sleep woke: what every client's wake-ups wait on a busy loop


def round_stats(swarm: Swarm, skip: int = 2) -> dict[str, Any]:
    """Per-round figures from every client's round events and the sampler, over the steady rounds (the first
    `skip` rounds, which load the model and have nothing to apply, are left out)."""
    n = len(swarm.clients)
    by_step: dict[int, list[dict[str, Any]]] = {}
    for c in swarm.clients:
        for e in c.of_kind("round"):
            by_step.setdefault(e["step"], []).append(e)
    steps = sorted(by_step)[skip:]
    starts = {s: min(e["t"] - e["work_s"] for e in by_step[s]) for s in steps}
    walls = [starts[b] - starts[a] for a, b in zip(steps, steps[1:], strict=False)]
    rows = [e for s in steps for e in by_step[s]]
    phases = sorted({k for e in rows for k in (e.get("cpu_s") or {})})
    cpu = {p: statistics.mean((e.get("cpu_s") or {}).get(p, 0.0) for e in rows) for p in phases} if rows else {}
    sent, received, gossip, dups = [], [], [], []
    for c in swarm.clients:
        evs = [e for e in c.of_kind("round") if e["step"] in starts]
        for a, b in zip(evs, evs[1:], strict=False):
            sent.append(b["bytes_sent"] - a["bytes_sent"])
            received.append(b["bytes_received"] - a["bytes_received"])
            gossip.append(b.get("gossip_in", 0) - a.get("gossip_in", 0))
            dups.append(b.get("gossip_duplicates", 0) - a.get("gossip_duplicates", 0))
    landing = [e["witness_land_s"] for e in rows if e.get("witness_land_s") is not None]
    out: dict[str, Any] = {"n": n, "rounds": len(walls), "round_s": statistics.median(walls) if walls else None,
                           "cpu_phase_s": cpu, "bytes_sent": statistics.mean(sent) if sent else None,
                           "bytes_received": statistics.mean(received) if received else None,
                           "gossip_in": statistics.mean(gossip) if gossip else None,
                           "gossip_duplicates": statistics.mean(dups) if dups else None,
                           "witness_land_s": statistics.median(landing) if landing else None,
                           "witness_land_max_s": max(landing) if landing else None,
                           "gather_s": statistics.median(e["gather_s"] for e in rows) if rows else None,
                           "work_s": statistics.median(e["work_s"] for e in rows) if rows else None}
    # the sampler over the steady window: process CPU (all clients), localnet CPU and transactions
    if walls and swarm.samples:
        t0, t1 = starts[steps[0]], max(e["t"] for e in rows)
        spans = []  # (first, last) sample of the window, for this process and each shard child
        for series in [swarm.samples, *swarm.shard_samples]:
            win = [s for s in series if t0 <= s.t <= t1]
            if len(win) >= 2:
                spans.append((win[0], win[-1], win))
        if spans and len(spans) == 1 + len(swarm.shard_samples):
            a, b, win = spans[0]
            dt = b.t - a.t
            rounds = max(1e-9, dt / statistics.median(walls))
            out["processes"] = len(spans)
            out["window_s"] = dt
            out["loop_lag_s"] = statistics.median(s.loop_lag_s for _, _, w in spans for s in w)
            out["loop_lag_max_s"] = max(s.loop_lag_s for _, _, w in spans for s in w)
            out["process_cpu_per_client_round_s"] = sum(y.self_cpu - x.self_cpu for x, y, _ in spans) / rounds / n
            threads: dict[str, float] = {}
            tasks: dict[str, float] = {}
            loop: dict[str, float] = {}
            for x, y, _ in spans:
                for acc, before, after in ((threads, x.threads, y.threads), (tasks, x.loop_tasks, y.loop_tasks),
                                           (loop, x.loop_cpu, y.loop_cpu)):
                    for k, v in after.items():
                        acc[k] = acc.get(k, 0.0) + v - before.get(k, 0.0)
            out["threads_cpu_per_client_round_s"] = {k: v / rounds / n for k, v in sorted(threads.items())}
            per = [loop.get(c.name, 0.0) / rounds for c in swarm.clients]
            out["loop_cpu_per_client_round_s"] = statistics.mean(per)
            out["loop_cpu_max_client_round_s"] = max(per)
            out["loop_cpu_unattributed_round_s"] = loop.get("", 0.0) / rounds
            out["loop_cpu_by_task_per_client_round_s"] = dict(sorted(((k, v / rounds / n) for k, v in tasks.items()
                                                                      if v / rounds / n > 1e-4),
                                                                     key=lambda kv: -kv[1])[:12])
            out["process_cores"] = sum(y.self_cpu - x.self_cpu for x, y, _ in spans) / dt
            out["localnet_cores"] = (b.localnet_cpu - a.localnet_cpu) / dt
            if a.tx_count is not None and b.tx_count is not None:
                out["localnet_tps"] = (b.tx_count - a.tx_count) / dt
    if swarm.samples:
        peak = sum(max(s.self_rss_mb for s in series) for series in [swarm.samples, *swarm.shard_samples] if series)
        out["rss_mb_per_client"] = (peak - swarm.base_rss_mb) / n
        out["process_rss_mb"] = peak
        out["localnet_rss_mb"] = max(s.localnet_rss_mb for s in swarm.samples)
    return out
