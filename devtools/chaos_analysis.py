"""What a chaos run did, read back from the clients' JSON logs and the chain samples of a `ChaosRun`, and the
properties a fault-tolerant run must have, as helpers the tests call.

Definitions (every figure the chaos tests and bench/fault_cost.py print uses these):

- honest process: the first process of a slot (wallet) that no harmful fault (kill, kill_restart, stop,
  leave) ever targeted. A `duplicate` harms nobody: the slot whose wallet it reuses stays honest, and only
  the duplicate process itself is faulty.
- a round (one step S): starts when the first honest client begins its round work (`t - work_s` of its
  `round` event) or when the chain watch (a sample every 0.5 s) first saw S in RoundTrain/RoundWitness,
  whichever is first (clients that cannot reach the RPC node start their work late); ends when step S+1
  starts in the same epoch, else at the first chain sample past S.
- timed out: the round lasted as long as one that runs to its timeout, at least max_round_train_time - 1 s
  (the program's clock counts whole seconds), whatever held it up: the chain's RoundTrain timeout (a silent
  witness) or a stall elsewhere (nobody could tick while the RPC node was down). `chain_train_s` says
  which: RoundWitness start - RoundTrain start on the program's clock (>= max_round_train_time: the
  RoundTrain timeout), when the samples caught both phases.
- not applied: S had trainers (the `expected` field of the round S+1 event) and every honest client that
  reports it (the `applied` field of its round S+2 event) applied 0 of its results.
- lost round: a round that timed out or whose results were not applied.
- attribution: a fault's window runs from the moment it happened to the next fault (or the end of the run):
  a lost round belongs to the fault whose window it overlaps last (it ended after the fault and started
  before the window closed); lost rounds before the first fault are unattributed. (A fault's harm may land
  an epoch later, when a restarted or duplicate process joins, so the window is not a fixed few seconds;
  `analyse(window=S)` also closes each window S seconds after the fault's effect ended: SIGCONT sent,
  restart started, RPC node back.)
- seconds per round before/after a fault: the median of the last 5 unlost rounds that ended before it, and
  the mean of the first 5 that ended after it; excess seconds: the sum, over the rounds of its window, of
  what each lasted beyond the median unlost round of the whole run.
"""
from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field

from devtools.chaos import HARMFUL, ChaosRun, FaultRecord, Proc, Sample
from devtools.chaos_config import ChaosConfig

CHAIN_WRITES = "join, warmup witness, round witness, health check, posted checkpoint"


@dataclass
class RoundInfo:
    epoch: int
    step: int
    height: int
    start: float
    end: float | None
    chain_train_s: int | None  # RoundWitness start - RoundTrain start on the program's clock, when sampled
    trainers: int | None
    applied: dict[str, int] = field(default_factory=dict)  # honest process -> results of S it applied
    timed_out: bool = False
    unapplied: bool = False
    fault: int | None = None  # index of the fault it is attributed to (lost rounds only)

    @property
    def duration(self) -> float | None:
        return None if self.end is None else self.end - self.start

    @property
    def lost(self) -> bool:
        return self.timed_out or self.unapplied


@dataclass
class FaultCost:
    lost_steps: list[int]
    before_s: float | None
    after_s: float | None
    excess_s: float


@dataclass
class Analysis:
    rounds: list[RoundInfo]
    faults: list[FaultRecord]
    costs: list[FaultCost]
    unattributed: list[int]
    honest: list[str]
    faulty_slots: list[str]
    exits: dict[str, int | None]
    exit_after_s: dict[str, float | None]
    weights: dict[str, str | None]
    penalties: dict[str, int]
    earned: dict[str, int]
    epoch_checkpoints: dict[int, str | None]  # epoch -> the chain's checkpoint while it trained
    final_checkpoint: str | None
    posted: dict[int, list[str]]  # epoch -> processes whose `checkpoint` event says posted
    chain_writes: dict[str, list[str]]  # duplicate process -> the chain writes it logged
    duplicates: list[str]
    desyncs: dict[str, int]
    final_phase: str | None
    median_round_s: float | None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, default=str)


def _rounds(procs: list[Proc], samples: list[Sample], cfg: ChaosConfig) -> list[RoundInfo]:
    events = {p.name: p.client.of_kind("round") for p in procs}
    by_step: dict[int, RoundInfo] = {}
    for evs in events.values():
        for e in evs:
            start = e["t"] - e.get("work_s", 0.0)
            r = by_step.get(e["step"])
            if r is None:
                by_step[e["step"]] = RoundInfo(e["epoch"], e["step"], e["height"], start, None, None, None)
            else:
                r.start = min(r.start, start)
    train_start: dict[int, int] = {}
    witness_start: dict[int, int] = {}
    seen: dict[int, float] = {}
    for s in samples:
        if s.phase == "RoundTrain":
            train_start.setdefault(s.step, s.started)
        elif s.phase == "RoundWitness":
            witness_start.setdefault(s.step, s.started)
        if s.phase in ("RoundTrain", "RoundWitness"):
            seen.setdefault(s.step, s.t)
    for step, r in by_step.items():  # clients that cannot see the chain (RPC down) start late; the watch does not
        r.start = min(r.start, seen.get(step, r.start))
    for step, r in by_step.items():
        nxt = by_step.get(step + 1)
        if nxt is not None and nxt.epoch == r.epoch:
            r.end = nxt.start
        else:
            r.end = next((s.t for s in samples if s.t > r.start and s.step > step), None)
        if step in train_start and step in witness_start:
            r.chain_train_s = witness_start[step] - train_start[step]
        r.timed_out = (r.duration or 0.0) >= cfg.round_time - 1 or (r.chain_train_s or 0) >= cfg.round_time
        following = by_step.get(step + 1)
        if following is not None and following.epoch == r.epoch:
            r.trainers = next((e["expected"] for evs in events.values() for e in evs if e["step"] == step + 1), None)
        for name, evs in events.items():
            for e in evs:
                if e["step"] == step + 2 and e["epoch"] == r.epoch:
                    r.applied[name] = e["applied"]
        r.unapplied = bool(r.trainers) and bool(r.applied) and not any(r.applied.values())
    return [by_step[s] for s in sorted(by_step)]


def _span(i: int, records: list[FaultRecord], window: float | None) -> tuple[float, float]:
    """The stretch of time whose lost rounds fault i answers for: from the fault to the next fired fault (or
    the end of the run), or, given `window`, to `window` seconds after its effect ended, if sooner."""
    rec = records[i]
    later = [r.t for r in records if r.fired and r.t > rec.t]
    until = min(later, default=float("inf"))
    if window is not None:
        until = min(until, (rec.t_end or rec.t) + window)
    return rec.t, until


def _attribute(rounds: list[RoundInfo], records: list[FaultRecord], window: float | None) -> list[int]:
    unattributed = []
    spans = {i: _span(i, records, window) for i, r in enumerate(records) if r.fired}
    for rd in rounds:
        if not rd.lost:
            continue
        end = rd.end if rd.end is not None else rd.start
        owner = [i for i, (t0, t1) in spans.items() if t0 <= end and rd.start < t1]
        if owner:
            rd.fault = max(owner, key=lambda i: records[i].t)
        else:
            unattributed.append(rd.step)
    return unattributed


def _cost(i: int, records: list[FaultRecord], rounds: list[RoundInfo], median: float | None,
          window: float | None) -> FaultCost:
    rec = records[i]
    t0, t1 = _span(i, records, window)
    done = [r for r in rounds if r.end is not None]
    before = [r.end - r.start for r in done if r.end <= t0 and not r.lost][-5:]  # type: ignore[operator]
    after = [r.end - r.start for r in done if r.end > t0][:5]  # type: ignore[operator]
    spanned = [r.end - r.start for r in done if r.end > t0 and r.start < t1]  # type: ignore[operator]
    excess = sum(max(0.0, d - median) for d in spanned) if median and rec.fired else 0.0
    return FaultCost([r.step for r in rounds if r.fault == i], statistics.median(before) if before else None,
                     statistics.fmean(after) if after else None, round(excess, 2))


def analyse(run: ChaosRun, cfg: ChaosConfig, window: float | None = None) -> Analysis:
    """Everything the assertions and the reports need, from the run's logs and its chain samples. `window`:
    see `_span` (None: a fault answers for every lost round until the next fault)."""
    harmed = {r.fault.target for r in run.records if r.fault.kind in HARMFUL and r.process is not None}
    honest = [p for p in run.procs if p.role == "original" and p.slot not in harmed]
    samples = run.watch.samples
    rounds = _rounds(honest, samples, cfg)
    unattributed = _attribute(rounds, run.records, window)
    normal = [r.duration for r in rounds if r.duration is not None and not r.lost]
    median = statistics.median(normal) if normal else None
    costs = [_cost(i, run.records, rounds, median, window) for i in range(len(run.records))]
    keys = run.wallet_keys()
    final = run.final or {}
    chain_clients = {c["wallet"]: c for c in final.get("clients", [])}
    ckpts: dict[int, str | None] = {}
    for s in samples:
        if s.phase in ("Warmup", "RoundTrain", "RoundWitness"):
            ckpts.setdefault(s.epoch, s.checkpoint)
    posted: dict[int, list[str]] = {}
    for p in run.procs:
        for e in p.client.of_kind("checkpoint"):
            if e.get("posted"):
                posted.setdefault(e["epoch"], []).append(p.name)
    dups = [p for p in run.procs if p.role == "duplicate"]
    return Analysis(
        rounds=rounds, faults=run.records, costs=costs, unattributed=unattributed,
        honest=[p.name for p in honest], faulty_slots=sorted(s for s in harmed if s),
        exits={p.name: p.code for p in run.procs},
        exit_after_s={p.name: None if p.exited is None else round(p.exited - p.started, 1) for p in run.procs},
        weights={p.name: (p.client.of_kind("finished") or [{}])[-1].get("weights_sha256") for p in run.procs},
        penalties={slot: chain_clients.get(k, {}).get("penalised", 0) for slot, k in keys.items()},
        earned={slot: chain_clients.get(k, {}).get("earned", 0) for slot, k in keys.items()},
        epoch_checkpoints=ckpts, final_checkpoint=final.get("checkpoint"), posted=posted,
        chain_writes={p.name: _chain_writes(p) for p in dups}, duplicates=[p.name for p in dups],
        desyncs={p.name: sum("DESYNC" in str(e.get("reason", "")) for e in p.client.of_kind("error"))
                 for p in honest},
        final_phase=final.get("phase"), median_round_s=median)


def _chain_writes(p: Proc) -> list[str]:
    out = []
    for e in p.client.read_events():
        kind = e.get("kind")
        if kind == "join" or kind == "warmup" or (kind == "health_check" and e.get("result") == "dropped"):
            out.append(kind)
        elif kind == "round" and e.get("witness") is True:
            out.append(f"witness step {e['step']}")
        elif kind == "checkpoint" and e.get("posted"):
            out.append(f"checkpoint epoch {e['epoch']}")
    return out


# ---- the properties ----------------------------------------------------------------------------------------
def finish_problems(a: Analysis) -> list[str]:
    return [] if a.final_phase == "Finished" else [f"the run did not finish (chain phase {a.final_phase})"]


def identity_problems(a: Analysis) -> list[str]:
    """Honest processes exit 0 with the same weights; any other process that says it finished agrees."""
    out = [f"honest {n} exited {a.exits[n]}, not 0" if a.exits[n] is not None else
           f"honest {n} was still running when the rig stopped the run" for n in a.honest if a.exits[n] != 0]
    honest = {a.weights[n] for n in a.honest}
    if None in honest or len(honest) != 1:
        out.append(f"honest clients' final weights differ or are missing: { {n: a.weights[n] for n in a.honest} }")
    others = {n: w for n, w in a.weights.items() if n not in a.honest and w is not None}
    out += [f"{n} finished with weights {w[:16]} unlike the honest clients" for n, w in others.items()
            if len(honest) == 1 and w not in honest]
    return out


def penalty_problems(a: Analysis) -> list[str]:
    return [f"{slot} was never faulted but lost {pts} points" for slot, pts in a.penalties.items()
            if pts and slot not in a.faulty_slots]


def lost_round_problems(a: Analysis, per_fault: int = 1) -> list[str]:
    out = [f"fault {i} ({r.fault.kind} {r.fault.target or ''} at epoch {r.epoch} step {r.step}) lost "
           f"{len(c.lost_steps)} rounds (steps {c.lost_steps}); at most {per_fault}"
           for i, (r, c) in enumerate(zip(a.faults, a.costs, strict=True)) if len(c.lost_steps) > per_fault]
    if a.unattributed:
        out.append(f"rounds lost with no fault near them: steps {a.unattributed}")
    return out


def checkpoint_problems(a: Analysis) -> list[str]:
    """The chain's checkpoint moves every epoch: each epoch trains from a reference the previous one did not,
    and the run ends on one its last epoch did not start from."""
    out = []
    epochs = sorted(a.epoch_checkpoints)
    # a one-round epoch applies nothing (Cooldown applies the step its last round's witnesses vouched for,
    # and a round at height 0 vouches for none), so its checkpoint is the one it started from
    applied_any = {e: any(r.height >= 1 for r in a.rounds if r.epoch == e) for e in epochs}
    for prev, cur in zip(epochs, epochs[1:], strict=False):
        if applied_any[prev] and a.epoch_checkpoints[cur] == a.epoch_checkpoints[prev]:
            out.append(f"epoch {cur} started from epoch {prev}'s checkpoint {a.epoch_checkpoints[cur]}")
    if epochs and applied_any[epochs[-1]] and a.final_checkpoint == a.epoch_checkpoints[epochs[-1]]:
        out.append(f"the last epoch ({epochs[-1]}) posted no new checkpoint")
    missing = [e for e in range(max(epochs, default=-1) + 1) if e not in a.epoch_checkpoints]
    if missing:
        out.append(f"epochs never seen training on the chain: {missing}")
    return out


def duplicate_problems(a: Analysis, code: int, within_s: float = 30.0) -> list[str]:
    """A second process on a running wallet exits `code` within `within_s`, having written nothing."""
    out = []
    for n in a.duplicates:
        if a.exits[n] != code or (a.exit_after_s[n] or 1e9) > within_s:
            out.append(f"duplicate {n} exited {a.exits[n]} after {a.exit_after_s[n]} s; expected {code}"
                       f" within {within_s:.0f} s")
        if a.chain_writes[n]:
            out.append(f"duplicate {n} wrote to the chain ({CHAIN_WRITES}): {a.chain_writes[n][:6]}")
    return out


def all_problems(a: Analysis, duplicate_code: int, per_fault: int = 1) -> list[str]:
    return (finish_problems(a) + identity_problems(a) + penalty_problems(a) + lost_round_problems(a, per_fault)
            + checkpoint_problems(a) + duplicate_problems(a, duplicate_code))


def assert_fault_tolerant(a: Analysis, duplicate_code: int, per_fault: int = 1) -> None:
    problems = all_problems(a, duplicate_code, per_fault)
    if problems:
        raise AssertionError("\n".join(problems) + "\n\n" + report(a))


# ---- reading it -------------------------------------------------------------------------------------------
def _s(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def report(a: Analysis) -> str:
    """A person's view: faults and their cost, exits, penalties, checkpoints, and every round."""
    lines = [f"median round {_s(a.median_round_s)} s; chain phase at the end {a.final_phase}"]
    for i, (r, c) in enumerate(zip(a.faults, a.costs, strict=True)):
        lines.append(f"fault {i}: {r.fault.kind:<12} {r.fault.target or 'localnet':<6} process {r.process}"
                     f" at epoch {r.epoch} step {r.step} {r.phase} round {r.round}; lost {len(c.lost_steps)}"
                     f" {c.lost_steps}; s/round before {_s(c.before_s)} after {_s(c.after_s)}; excess"
                     f" {c.excess_s:.1f} s {r.note}")
    lines.append(f"unattributed lost rounds: {a.unattributed}")
    lines.append("exits: " + ", ".join(f"{n}={a.exits[n]} ({_s(a.exit_after_s[n])} s)" for n in a.exits))
    lines.append(f"honest: {a.honest}; faulted slots: {a.faulty_slots}; penalties {a.penalties}; earned {a.earned}")
    lines.append("weights: " + ", ".join(f"{n}={(w or '-')[:12]}" for n, w in a.weights.items()))
    lines.append("checkpoints: " + ", ".join(f"e{e}={(c or '-')[:20]}" for e, c in sorted(a.epoch_checkpoints
                                                                                     .items()))
                 + f", final={(a.final_checkpoint or '-')[:20]}; posted {a.posted}")
    if a.duplicates:
        lines.append(f"duplicate chain writes: { {n: w[:4] for n, w in a.chain_writes.items()} }")
    if any(a.desyncs.values()):
        lines.append(f"DESYNC errors: {a.desyncs}")
    lines.append("rounds (epoch step height start+s duration chain-train-s trainers applied flags):")
    t0 = a.rounds[0].start if a.rounds else 0.0
    for r in a.rounds:
        flags = ("TIMEOUT " if r.timed_out else "") + ("UNAPPLIED " if r.unapplied else "") + \
            (f"fault{r.fault}" if r.fault is not None else "")
        lines.append(f"  e{r.epoch} s{r.step:>3} h{r.height:>2} +{r.start - t0:6.1f} {_s(r.duration):>5}"
                     f" {r.chain_train_s if r.chain_train_s is not None else '-':>3} {r.trainers}"
                     f" {sorted(set(r.applied.values()))} {flags}")
    return "\n".join(lines)
