"""Verify: spot-check a few trainers' results of step S by recomputing them (client/runner/verify.py).

Timeline, for a client playing round R (step R):
  * `note(R)`: keep what checking step R will need later: a clone of the weights R is trained on (every
    client holds them bit-identically after applying ≤ R−2), the round's batch assignment.
  * `start(R)`, once R's gathering of step R−1 is done: check step S = R−2. By now the client holds the
    trainers' results of S and S+1 (gathered in rounds S+1 and S+2), and the seed of round S+1 (the chain
    draws it from a slot hash when that round starts, after S was trained): every healthy client checks the
    trainers it is drawn for by coordinator_sdk.verdicts.eligible (config.verifiers_per_mille / 1000
    verifiers per trainer; the program checks the same draw), at most `per_witness` of them. The pieces of
    the trainer's state come from the trainer itself: an opening of the state its result commits to at 6 DCT
    blocks drawn from round S+1's seed, with their Merkle proof, and the sign map by hash when the run trains
    with the look-ahead (client/training/ef_parts.py), its batch from the run's data; the
    recomputation runs in a thread, off the round's path, and ends in one `verify` event per trainer (outcome
    pass, fail or skipped); then the verdicts of S are posted on chain (`verdict`, in (height, trainer key)
    order): two fails that outnumber the passes, on one result or over the epoch, eject and slash the trainer
    (docs/security.md).
A trainer that does not serve its state fails ("state withheld"). Exact mode on CPU (bit-deterministic
here); tolerance mode on GPUs. Of the next step's state only the proof at the drawn blocks is fetched, and
its blocks when the recomputed ones do not lead to its root (never for an honest trainer in exact mode;
nearly always in tolerance mode), so a trainer that sums its batch in another order (its own micro-batch
size) is judged on its result bits and on blocks within tolerance, not accused over rounding.
"""
from __future__ import annotations

import asyncio
import copy
import hashlib
from typing import Any

from client.runner import verify
from client.runner.context import RunnerContext, first_line
from client.runner.data_source import fetch_batch
from client.runner.training_state import RoundBook, TrainingState
from client.runner.witnessing import round_at
from coordinator_sdk.account_view import CoordinatorView
from coordinator_sdk.round_assignment import current_assignment
from coordinator_sdk.verdicts import eligible, order_key

KEEP = 3  # steps of weights kept: S is checked in round S+2
SPARES = 2  # model copies kept for reuse between checks (more run at once only with per_witness > 2)
FETCH_TIMEOUT = 60.0  # s: a fetch has its own stall timeout; this bounds a check's thread if the loop stops


class Verifier:
    def __init__(self, per_witness: int = 1) -> None:
        self.per_witness = per_witness
        self.weights: dict[int, Any] = {}
        self.skeleton: Any = None  # a copy of the model the snapshots are loaded into (restore)
        self.spares: list[Any] = []  # copies of it that finished checks left, reused by the next ones
        self.assignment: dict[int, dict[bytes, tuple[int, int]]] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def note(self, ts: TrainingState, st: CoordinatorView, step: int) -> None:
        if self.per_witness <= 0 or ts.model is None:
            return
        if self.skeleton is None:  # copied here, between rounds: not while a training thread writes the model
            self.skeleton = copy.deepcopy(ts.model)
        self.weights[step] = snapshot(ts.model)
        self.assignment[step] = current_assignment(st)
        for old in [s for s in self.weights if s <= step - KEEP]:
            self.weights.pop(old, None)
            self.assignment.pop(old, None)

    def start(self, ctx: RunnerContext, ts: TrainingState, book: RoundBook, st: CoordinatorView, step: int) -> None:
        """Launch the checks of step `step` − 2 on the trainers this client is drawn to verify."""
        s = step - 2
        if self.per_witness <= 0 or s not in self.weights or ts.trainer is None:
            return
        me = st.epoch_index(ctx.me)
        height = int(st.current_round.height) - 2
        trained, after = round_at(st, 2), round_at(st, 1)
        # the chain keeps only this epoch's rounds: S must be round height - 2 of the epoch in progress
        if me is None or int(st.raw.epoch_clients[me].state) != 0 or height < 0 or int(trained.height) != height:
            return
        mine, n = ctx.p2p.identity.public, int(trained.clients_len)
        chosen = [t for t in sorted(book.results.get(s, {})) if eligible(int(after.random_seed), mine, t, n,
                                                                          int(st.config.verifiers_per_mille))]
        if chosen:
            task = asyncio.create_task(self._check_step(ctx, ts, book, s, height, chosen[:self.per_witness],
                                                            int(after.random_seed)))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _check_step(self, ctx: RunnerContext, ts: TrainingState, book: RoundBook, s: int, height: int,
                          chosen: list[bytes], seed: int) -> None:
        """Recompute every chosen result of step s, then post the verdicts on chain in the order the program
        takes them (height, trainer key): a skipped check (no batch) posts nothing."""
        verdicts = await asyncio.gather(*(self._check(ctx, ts, book, s, t, seed) for t in chosen))
        done = sorted(((t, v) for t, v in zip(chosen, verdicts, strict=True) if v is not None),
                      key=lambda tv: order_key(height, tv[0]))
        for trainer, v in done:
            published = book.results.get(s, {}).get(trainer)
            evidence = result_hash(published) if published is not None else bytes(32)
            await self.post(ctx, trainer, s, height, v.outcome, evidence,
                            published.ef if published is not None else bytes(32))

    async def post(self, ctx: RunnerContext, trainer: bytes, s: int, height: int, outcome: str, evidence: bytes,
                   ef: bytes) -> None:
        """Post one verdict. The program names the trainer by epoch index and P2P key and refuses it
        (WrongTrainer) when the list was compacted after the view the index came from: the index is looked up
        once more in a fresh state. Refusals are reported, not fatal (the round left the ring, we were
        dropped)."""
        st = ctx.state
        for attempt in range(2):
            index = None if st is None else next((i for i in range(st.num_epoch_clients)
                                                  if st.epoch_p2p(i) == trainer), None)
            if index is None:  # it left (or was ejected and compacted away): nothing to convict any more
                return
            try:
                await ctx.backend.verdict(index, trainer, height, outcome == "pass", evidence, ef)
                ctx.report.event("verdict_posted", trainer=trainer.hex()[:16], step=s, height=height, outcome=outcome)
                return
            except Exception as e:
                ctx.report.event("error", action="verdict", reason=first_line(e))
                if attempt or not str(e).startswith("WrongTrainer"):  # ProgramError and the sim chain alike
                    return
                st = CoordinatorView(await ctx.backend.fetch_state())

    async def _check(self, ctx: RunnerContext, ts: TrainingState, book: RoundBook, s: int,
                     trainer: bytes, seed: int) -> verify.Verdict | None:
        published = book.results[s][trainer]
        nxt = book.results.get(s + 1, {}).get(trainer)
        span = self.assignment.get(s, {}).get(trainer)
        weights, plan = self.weights.get(s), ts.plan
        if span is None or weights is None or plan is None or ts.provider is None or self.skeleton is None:
            return None
        model = restore(self.skeleton, weights, self.spares)
        try:
            batch = await fetch_batch(ts.provider, *span)
        except Exception as e:  # e.g. a data server that serves each trainer only its own batch
            ctx.report.event("verify", trainer=trainer.hex()[:16], step=s, outcome="skipped",
                             reason=f"batch unavailable: {first_line(e)}", cpu_s=0.0)
            return None
        # exact on CPU; GPUs (non-deterministic kernels, other cards) compare index/sign agreement
        mode: verify.Mode = "exact" if str(ts.device) == "cpu" else "tolerance"
        loop = asyncio.get_running_loop()

        source = _PeerSource(ctx, trainer, loop)
        kwargs = {"distro": plan.distro, "micro_batch_size": ctx.settings.micro_batch_size,
                  "lookahead": not plan.synchronous}  # as phase_warmup.install built the trainer
        v = await asyncio.to_thread(verify.verify, trainer, published, source, model, plan.schedule, kwargs, batch,
                                    # one draw of blocks per result, the same for every verifier (no verifier
                                    # key in it): honest verifiers of a result check the same blocks and agree,
                                    # so a cheat confined to a few blocks cannot draw "pass" verdicts that
                                    # outnumber a true "fail" and slash its accuser as a false one
                                    verify.seed_bytes(seed), b"",
                                    None if nxt is None else nxt.ef, mode, owned=True)
        if len(self.spares) < SPARES:  # its thread is done with it (a cancelled check's copy is not reused)
            self.spares.append(model)
        ctx.report.event("verify", **v.event())
        return v

    async def close(self) -> None:
        for t in list(self.tasks):
            t.cancel()
        self.tasks.clear()


def snapshot(model: Any) -> dict[str, Any]:
    """The weights a step is trained on, kept every round for a check two rounds later: a clone of the tensors
    (~0.15 ms for the demo's model, where copying the module took ~2 ms: bench/verification.py), since most
    rounds draw no check at a low verifiers_per_mille."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def restore(model: Any, weights: dict[str, Any], spares: list[Any] | None = None) -> Any:
    """A copy of `model` (the verifier's skeleton: the run's architecture does not change) holding the
    `snapshot` weights: one of `spares` (taken from the list), a copy an earlier check trained and left, whose
    every parameter and buffer the load overwrites (~0.1 ms on the demo's model, where a new copy took ~2 ms),
    or else a new one."""
    twin = spares.pop() if spares else copy.deepcopy(model)
    twin.load_state_dict(weights)
    return twin


def result_hash(r: Any) -> bytes:
    """The evidence a verdict names for the result it judged: sha256 over its step, ef and every parameter's
    indices and values (in name order)."""
    h = hashlib.sha256(int(r.step).to_bytes(8, "little") + bytes(r.ef))
    for name in sorted(r.params):
        q = r.params[name]
        h.update(name.encode())
        h.update(q.idx.contiguous().cpu().numpy().tobytes())
        h.update(q.val.contiguous().cpu().numpy().tobytes())
    return h.digest()


class _PeerSource:
    """The trainer's state over P2P, for the check's thread: openings from the trainer itself (its blob
    service answers them from the states it committed to) and the sign map by hash."""

    def __init__(self, ctx: RunnerContext, trainer: bytes, loop: asyncio.AbstractEventLoop) -> None:
        self.ctx, self.trainer, self.loop = ctx, trainer, loop

    def _run(self, coro: Any) -> bytes | None:
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result(timeout=FETCH_TIMEOUT)
        except Exception:  # refused, withheld, unreachable, the loop shutting down: counted as withheld
            fut.cancel()
            return None

    def opening(self, ef: bytes, leaves: list[int], with_leaves: bool, limit: int) -> bytes | None:
        return self._run(self._opening(ef, leaves, with_leaves, limit))

    def blob(self, h: bytes, limit: int) -> bytes | None:
        return self._run(self._blob(h, limit))

    async def _opening(self, ef: bytes, leaves: list[int], with_leaves: bool, limit: int) -> bytes | None:
        p2p = self.ctx.p2p
        if self.trainer == p2p.identity.public:
            return None if p2p.exchange is None else p2p.exchange.open_state(ef, leaves, with_leaves)
        try:
            return await p2p.blobs.open_from(self.trainer, ef, leaves, with_leaves, limit)
        except Exception:
            return None

    async def _blob(self, h: bytes, limit: int) -> bytes | None:
        if self.trainer == self.ctx.p2p.identity.public:
            return self.ctx.p2p.blobs.store.get(h)
        try:
            return await self.ctx.p2p.blobs.fetch_from(self.trainer, h, limit)
        except Exception:
            return None
