"""A chaos rig for `psyche run-client`: faults injected from outside the processes, the way the world
injects them, while a real run on a `psyche localnet` goes on.

- `Load`: a busy machine (one spinning process per core, normal priority, competing with the run);
- faults on a client process: SIGKILL (`kill`), SIGKILL and the same wallet started again after `hold_s`
  (`kill_restart`), SIGSTOP and SIGCONT `hold_s` later (`stop`, longer than a round), SIGINT (`leave`: it
  withdraws and exits 0), a second `run-client` on a wallet that is already running (`duplicate`), and a
  localnet restart (`localnet`: the RPC node is down `hold_s` seconds, same ledger);
- `random_schedule(seed)`: a reproducible list of faults at (epoch, round) positions;
- `ChaosRun`: starts the clients, runs the schedule while the run goes on, watches the chain, and records
  when each fault happened (wall time, and the chain's epoch/step/phase read at that moment).

`devtools.chaos_analysis` turns the record into round durations, lost rounds, checkpoints and penalties.
Anything that starts run-client processes must run inside scripts/loopback-only.
"""
from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devtools.local_cluster import ClientProcess, LocalCluster, psyche

KINDS = ("kill", "kill_restart", "stop", "leave", "duplicate", "localnet")
HARMFUL = {"kill", "kill_restart", "stop", "leave"}  # what they do to the target wallet's own process
# the spinner leaves when its parent does (os.getppid changes), so a crashed rig never leaves load behind
SPIN = "import os\np = os.getppid()\nwhile os.getppid() == p:\n    for _ in range(200000):\n        pass\n"


class Load:
    """Busy processes on every core for the duration: plain `python` loops at normal priority (never
    niced), so the run's processes compete for the CPU as they would on a machine doing other work."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> Load:
        self.procs = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(self.workers)]
        return self

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            p.kill()
            p.wait()
        self.procs = []


@contextlib.contextmanager
def local_cluster(workdir: Path) -> Iterator[LocalCluster]:
    """`LocalCluster` as a context whose processes are stopped even when the localnet fails to come up
    (`with LocalCluster(...)` skips `__exit__` when `__enter__` raises, which leaves the validator running)."""
    net = LocalCluster(workdir)
    try:
        net.start_localnet()
        yield net
    finally:
        net.stop()


# ---- the chain, as `psyche run status --json` shows it ------------------------------------------------
def chain_snapshot(cluster: LocalCluster, run_id: str) -> dict[str, Any]:
    """What `psyche run status RUN --json` prints (the same run_snapshot of the same account), read in-process
    so that sampling twice a second costs no interpreter start on a busy machine."""
    import base64

    from client.run_view import run_snapshot
    from coordinator_sdk.client import default_codec

    codec = default_codec()
    inst = cluster.rpc("getAccountInfo", [str(codec.instance_pda(run_id)), {"encoding": "base64"}])["value"]
    if inst is None:
        raise LookupError(f"no run {run_id!r}")
    account = codec.decode(base64.b64decode(inst["data"][0])).coordinator_account
    raw = cluster.rpc("getAccountInfo", [str(account), {"encoding": "base64"}])["value"]
    return run_snapshot(codec.decode_state(base64.b64decode(raw["data"][0])))


@dataclass
class Sample:
    """One reading of the chain: wall time and the fields the analysis needs."""
    t: float
    phase: str
    epoch: int
    step: int
    round: int | None
    started: int  # the phase's start on the program's whole-second clock
    checkpoint: str | None
    clients: dict[str, tuple[int, int, str]]  # wallet -> (earned, penalised, state)

    @classmethod
    def of(cls, t: float, s: dict[str, Any]) -> Sample:
        return cls(t, s["phase"], s["epoch"], s["step"], s["round"], s["phase_started_at"], s["checkpoint"],
                   {c["wallet"]: (c["earned"], c["penalised"], c["state"]) for c in s["clients"]})


class ChainWatch(threading.Thread):
    """Samples the run every `interval` seconds; an RPC outage (a localnet restart) just leaves a gap."""

    def __init__(self, cluster: LocalCluster, run_id: str, interval: float = 0.5) -> None:
        super().__init__(daemon=True, name="chain-watch")
        self.cluster, self.run_id, self.interval = cluster, run_id, interval
        self.samples: list[Sample] = []
        self.halt = threading.Event()

    def read(self) -> Sample | None:
        """The chain now, stamped when the answer came back: a state is seen by then, never before (on a busy
        machine a read can take seconds, and a stamp from its start would date a new step too early)."""
        try:
            snap = chain_snapshot(self.cluster, self.run_id)
        except (OSError, LookupError, ValueError, KeyError, TypeError):
            return None
        return Sample.of(time.time(), snap)

    def run(self) -> None:
        while not self.halt.is_set():
            s = self.read()
            if s is not None:
                self.samples.append(s)
            self.halt.wait(self.interval)

    @property
    def latest(self) -> Sample | None:
        return self.samples[-1] if self.samples else None


# ---- faults -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fault:
    """`at`: seconds after the run's first round, or (epoch, round height) as the chain counts them (fired as
    soon as the chain is there or past it). `target`: a client slot name (None for `localnet`). `hold_s`:
    stop -> SIGCONT delay, kill_restart -> restart delay, localnet -> seconds down."""
    kind: str
    target: str | None
    at: float | tuple[int, int]
    hold_s: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"fault kind {self.kind!r}: one of {KINDS}")
        if (self.kind == "localnet") != (self.target is None):
            raise ValueError("a localnet restart has no target; every other fault has one")


@dataclass
class FaultRecord:
    """When a fault happened: wall time `t`, the chain's position read at that moment, the process it hit,
    the processes it started, and `t_end`, when its effect ended (SIGCONT sent, restart started, RPC back)."""
    fault: Fault
    t: float
    epoch: int | None
    step: int | None
    phase: str | None
    round: int | None
    process: str | None
    spawned: list[str] = field(default_factory=list)
    t_end: float | None = None
    note: str = ""
    fired: bool = True  # False: skipped (no live target) or the run had already finished


@dataclass
class Proc:
    """One run-client process: its slot (the wallet's name), its role (original, restart or duplicate)."""
    client: ClientProcess
    slot: str
    role: str
    started: float
    exited: float | None = None
    code: int | None = None

    @property
    def name(self) -> str:
        return self.client.name


def random_schedule(seed: int, slots: list[str], epochs: int = 4) -> list[Fault]:
    """Seed -> faults, reproducibly: one per epoch (no two in the same epoch, so each one's cost can be told
    apart), each at round 2-6 of its epoch; one is a localnet restart, the others SIGKILL (+ restart),
    SIGSTOP/SIGCONT or a plain SIGKILL on the victims: every slot but the last two, which stay honest."""
    rng = random.Random(seed)
    victims = slots[:max(1, len(slots) - 2)]
    chosen = sorted(rng.sample(range(epochs), min(epochs, 3)))
    localnet = rng.choice(chosen)
    faults, gone = [], set()
    for epoch in chosen:
        at = (epoch, rng.randint(2, 6))
        if epoch == localnet:
            # down 2-3 s: with the restart (seconds on a busy machine) the outage stays inside the 8 s round
            # timeout; longer, nobody can witness the round and the program ends the epoch (see docs)
            faults.append(Fault("localnet", None, at, hold_s=rng.choice([2.0, 3.0])))
            continue
        alive = [v for v in victims if v not in gone] or victims
        target = rng.choice(alive)
        kind = rng.choice(["kill_restart", "stop", "kill_restart"] + (["kill"] if len(alive) > 1 else []))
        if kind == "kill":
            gone.add(target)
        faults.append(Fault(kind, target, at, hold_s={"stop": 12.0, "kill_restart": 5.0}.get(kind, 0.0)))
    return faults


class ChaosRun:
    """Runs `schedule` against a run of clients `slots` (one wallet each) on `cluster`. The run must have been
    created with `--paused`: the clients are started, and the run is resumed once every one follows it, so
    that the first epoch starts with all of them (else the last to start would wait for the next epoch)."""

    def __init__(self, cluster: LocalCluster, run_id: str, slots: list[str], schedule: list[Fault],
                 owner: Path) -> None:
        self.cluster, self.run_id, self.slots, self.owner = cluster, run_id, slots, owner
        self.schedule = sorted(schedule, key=lambda f: f.at if isinstance(f.at, tuple) else (-1, f.at))
        self.procs: list[Proc] = []
        self.records: list[FaultRecord] = []
        self.deferred: list[tuple[float, Any]] = []
        self.watch = ChainWatch(cluster, run_id)
        self.first_round: float | None = None
        self.finished_at: float | None = None
        self.wallets: dict[str, Path] = {}
        self.final: dict[str, Any] | None = None

    # ---- processes ------------------------------------------------------------------------------------
    def spawn(self, slot: str, role: str, name: str | None = None) -> Proc:
        if slot not in self.wallets:
            self.wallets[slot] = self.cluster.wallet(slot)
        n = sum(p.slot == slot for p in self.procs)
        name = name or (slot if role == "original" else f"{slot}-{role}{n}")
        proc = Proc(self.cluster.start_client(name, self.run_id, self.wallets[slot]), slot, role, time.time())
        self.procs.append(proc)
        return proc

    def live(self, slot: str) -> Proc | None:
        """The slot's own running process (a duplicate never counts as the slot's process)."""
        for p in reversed(self.procs):
            if p.slot == slot and p.role != "duplicate" and p.client.proc.poll() is None:
                return p
        return None

    def _note_exits(self) -> None:
        for p in self.procs:
            if p.exited is None and p.client.proc.poll() is not None:
                p.exited, p.code = time.time(), p.client.proc.returncode

    def start(self, timeout: float = 180.0) -> None:
        """Start one process per slot, wait until each has logged `started` (it follows the run), resume."""
        for slot in self.slots:
            self.spawn(slot, "original")
        deadline = time.monotonic() + timeout
        while not all(p.client.of_kind("started") for p in self.procs):
            self._note_exits()
            dead = [p.name for p in self.procs if p.exited is not None]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(f"clients did not start ({dead or 'timeout'}): see {self.cluster.dir}")
            time.sleep(0.3)
        psyche("run", "resume", self.run_id, "-u", self.cluster.url, "-k", str(self.owner))
        self.watch.start()

    # ---- faults ---------------------------------------------------------------------------------------
    def _due(self, f: Fault, s: Sample | None, now: float) -> bool:
        if isinstance(f.at, tuple):
            if s is None:
                return False
            epoch, height = f.at
            in_round = s.phase in ("RoundTrain", "RoundWitness")
            return s.epoch > epoch or (s.epoch == epoch and in_round and (s.round or 0) >= height) or \
                s.phase == "Finished"
        return self.first_round is not None and now >= self.first_round + f.at

    def fire(self, f: Fault) -> FaultRecord:
        here = self.watch.read() or self.watch.latest
        rec = FaultRecord(f, time.time(), *(here and (here.epoch, here.step, here.phase, here.round) or (None,) * 4),
                          process=None)
        self.records.append(rec)
        if f.kind == "localnet":
            self.cluster.restart_localnet(f.hold_s)
            rec.t_end = time.time()
            return rec
        assert f.target is not None
        victim = self.live(f.target)
        if victim is None and f.kind == "kill_restart":  # it already died: only the restart is left to do
            rec.note = "the target was not running: restarted it"
            self._restart(rec, "restart")
            return rec
        if victim is None:
            rec.note, rec.t_end, rec.fired = "skipped: the target has no live process", rec.t, False
            return rec
        rec.process = victim.name
        pid = victim.client.proc.pid
        if f.kind in ("kill", "kill_restart"):
            os.kill(pid, signal.SIGKILL)
            victim.client.proc.wait()
            rec.t_end = rec.t
            if f.kind == "kill_restart":
                self.deferred.append((rec.t + f.hold_s, lambda: self._restart(rec, "restart")))
        elif f.kind == "stop":
            os.kill(pid, signal.SIGSTOP)
            self.deferred.append((rec.t + f.hold_s, lambda: self._cont(rec, pid)))
        elif f.kind == "leave":
            os.kill(pid, signal.SIGINT)
            rec.t_end = rec.t
        elif f.kind == "duplicate":
            rec.spawned.append(self.spawn(f.target, "duplicate").name)
            rec.t_end = rec.t
        return rec

    def _restart(self, rec: FaultRecord, role: str) -> None:
        assert rec.fault.target is not None
        rec.spawned.append(self.spawn(rec.fault.target, role).name)
        rec.t_end = time.time()

    @staticmethod
    def _signal(pid: int, sig: int) -> None:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    def _cont(self, rec: FaultRecord, pid: int) -> None:
        self._signal(pid, signal.SIGCONT)
        rec.t_end = time.time()

    # ---- the run ----------------------------------------------------------------------------------------
    def execute(self, timeout: float, grace: float = 60.0) -> ChaosRun:
        """Fire the schedule while the run goes on; return once every process exited (or `grace` seconds after
        the chain says Finished, or at `timeout`); processes still running then are killed (code None)."""
        pending = list(self.schedule)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                now = time.time()
                s = self.watch.latest
                if self.first_round is None and s is not None and s.phase in ("RoundTrain", "RoundWitness"):
                    self.first_round = s.t
                if self.finished_at is None and s is not None and s.phase == "Finished":
                    self.finished_at = now
                for when, action in [d for d in self.deferred if d[0] <= now]:
                    self.deferred.remove((when, action))
                    action()
                for f in [f for f in pending if self._due(f, s, now)]:
                    pending.remove(f)
                    if s is not None and s.phase == "Finished":
                        self.records.append(FaultRecord(f, now, None, None, "Finished", None, None,
                                                        note="not fired: the run had finished", fired=False))
                    else:
                        self.fire(f)
                self._note_exits()
                if not self.deferred and all(p.exited is not None for p in self.procs):
                    break
                if self.finished_at is not None and now - self.finished_at > grace:
                    break
                time.sleep(0.2)
        finally:
            self.stop()
        return self

    def stop(self) -> None:
        for p in self.procs:
            if p.client.proc.poll() is None:
                self._signal(p.client.proc.pid, signal.SIGCONT)
                p.client.proc.kill()
                p.client.proc.wait()
                p.exited, p.code = time.time(), None  # None: still running when the rig gave up on it
        self._note_exits()
        self.watch.halt.set()
        if self.watch.is_alive():
            self.watch.join(timeout=10)
        last = self.watch.read()
        if last is not None:
            self.watch.samples.append(last)
        try:
            self.final = chain_snapshot(self.cluster, self.run_id)
        except (OSError, LookupError, ValueError):
            self.final = None

    def wallet_keys(self) -> dict[str, str]:
        """slot -> the wallet's public key (base 58), as the chain lists clients."""
        from coordinator_sdk.keypair_file import read_keypair

        return {slot: str(read_keypair(path).pubkey()) for slot, path in self.wallets.items()}
