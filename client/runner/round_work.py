"""The work of each phase for one client: load the model at warmup, play each round, checkpoint at cooldown.

Every client applies exactly the results a quorum of the chain's witnesses vouched for, in sender-key
order, so all clients hold bit-identical weights without ever sending weights (except to newcomers).
"""
from __future__ import annotations

import asyncio
import hashlib
import shutil
import time
from typing import TYPE_CHECKING, Any

from client.cli_common import ExitCode
from client.p2p.checkpoint_share import ManifestError, fetch_model, publish_model, unpin_model
from client.runner.checkpoint_ref import P2P, CheckpointRef, CheckpointRefError, load_from_files
from client.runner.data_source import close_provider, fetch_batch, open_provider
from client.runner.run_model import ModelUnsupported, TrainingPlan
from client.runner.settings import ClientExit, resolve_device
from client.runner.witnessing import (
    WitnessReport,
    consensus_results,
    epoch_index,
    is_elected,
    round_at,
    round_trainers,
    unhealthy_clients,
)
from client.training.checkpoint import CheckpointError, save_checkpoint
from client.training.config import ConfigError
from client.training.distro import DistroResult, result_layout
from client.training.result_codec import encode_result
from client.training.trainer import Trainer
from coordinator_sdk.model.state import RunState
from coordinator_sdk.program_errors import TransactionFailed
from coordinator_sdk.round_assignment import current_assignment
from data_providers.types import DataError

if TYPE_CHECKING:
    from client.runner.engine import RunClient

WAIT_POLL_S = 0.05


def weights_sha256(model: Any) -> str:
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


class RoundWork:
    def __init__(self, engine: RunClient) -> None:
        self.e = engine
        self.plan: TrainingPlan | None = None
        self.device = "cpu"
        self.model: Any = None
        self.digest: bytes | None = None
        self.trainer: Trainer | None = None
        self.provider: Any = None
        self.results: dict[int, dict[bytes, DistroResult]] = {}
        self.trainers_of: dict[int, list[tuple[bytes, bytes]]] = {}
        self.losses: list[tuple[int, float]] = []
        self.checkpoints: list[str] = []
        self.last_train_s = 0.0
        self.warm_epoch: int | None = None  # the epoch whose warmup this process took part in
        self.published: bytes | None = None  # manifest hash of the checkpoint we serve to peers

    # ---- setup --------------------------------------------------------------------------------------
    def prepare(self, st: Any) -> None:
        try:
            self.plan = TrainingPlan.from_chain(st.model)
        except ModelUnsupported as e:
            raise ClientExit(ExitCode.MODEL_UNSUPPORTED, f"run {self.e.s.run_id!r}: {e}") from None
        self.device = resolve_device(self.e.s.device)

    async def _load_model(self, st: Any) -> None:
        ref = self.e.chain_checkpoint(st)
        if self.model is not None and self.digest == ref.digest:
            return  # a continuing client already holds exactly these weights
        t0 = time.monotonic()
        try:
            if ref.source == P2P:
                providers = sorted(self.e.p2p.members.members() - {self.e.p2p.identity.public})
                model = await fetch_model(self.e.p2p.blobs, ref.digest, providers)
            else:
                model = await load_from_files(ref)
        except (CheckpointRefError, CheckpointError, ManifestError, ConfigError) as e:
            raise ClientExit(ExitCode.MODEL_UNSUPPORTED, f"cannot build the run's model: {e}") from None
        if self.e.s.fault == "wrong-model":  # test-only: a client that trains another model
            from client.training.model import build_model

            model = build_model(model.cfg.__class__.from_dict({**model.cfg.to_dict(), "n_layers": 1}), seed=7)
        self.digest = ref.digest
        self._install(model)
        self.e.report.event("model", source="peers" if ref.source == P2P else ref.source, digest=ref.short,
                            params=sum(p.numel() for p in model.parameters()), seconds=round(time.monotonic() - t0, 2))

    def _install(self, model: Any) -> None:
        assert self.plan is not None
        self.model = model.to(self.device)
        self.trainer = Trainer(self.model, self.plan.schedule, "distro", self.plan.distro,
                               micro_batch_size=self.e.s.micro_batch_size)
        self.e.p2p.set_model(result_layout(self.model, self.plan.distro), self.plan.distro)

    # ---- warmup -------------------------------------------------------------------------------------
    async def warmup(self, st: Any) -> None:
        await self._load_model(st)
        self.warm_epoch = int(st.epoch)
        if self.provider is None:
            assert self.plan is not None
            self.provider = await open_provider(self.e.s.data or self.plan.data_location, int(st.config.max_seq_len),
                                                self.e.p2p.identity.signing_key)
        epoch, step = int(st.epoch), int(st.step)
        self.results.clear()
        self.trainers_of.clear()
        self.e.p2p.gossip.set_step(step)
        await self.e.p2p.say("warmup", step, epoch.to_bytes(4, "little"))
        members = {bytes(st.epoch_clients[i].p2p) for i in range(int(st.num_epoch_clients))}
        while not members <= self.e.p2p.senders("warmup", step):
            cur = self.e.state
            if int(cur.run_state) != RunState.Warmup or int(cur.epoch) != epoch:
                return  # the warmup timed out: the round loop takes over
            await asyncio.sleep(WAIT_POLL_S)
        try:
            await self.e.chain.warmup_witness()
            self.e.report.event("warmup", epoch=epoch, detail=False, ready=len(members))
        except TransactionFailed as e:
            self.e.report.event("warmup_witness_refused", detail=True, reason=str(e).splitlines()[0])

    # ---- a round ------------------------------------------------------------------------------------
    async def play_round(self, st: Any) -> None:
        if self.model is None:  # warmup timed out while we were loading: load now, train from here
            await self.warmup(st)
        r = st.rounds[st.rounds_head]
        height, step, epoch = int(r.height), int(st.step), int(st.epoch)
        p2p = self.e.p2p
        p2p.gossip.set_step(step)
        self.trainers_of[step] = round_trainers(st)
        t_apply = time.monotonic()
        applied = await self._apply(step - 2, round_at(st, 1), st) if height >= 2 else 0
        apply_s = time.monotonic() - t_apply
        if height >= 2 and is_elected(st, self.e.me):
            await self._health_checks(st)
        gather = asyncio.create_task(self._gather(step - 1, step)) if height >= 1 else None
        loss, tps = await self._train(st, step)
        report = await gather if gather is not None else WitnessReport()
        await p2p.say("finished", step, report.merkle)
        witness = await self._witness(st, step, report, loss, tps) if is_elected(st, self.e.me) else False
        self.e.report.event("round", epoch=epoch, step=step, height=height,
                            phase=RunState(int(self.e.state.run_state)).name, loss=loss, tokens_per_s=tps,
                            gathered=len(self.results.get(step - 1, {})),
                            expected=len(self.trainers_of.get(step - 1, [])),
                            applied=applied, witness=witness, bytes_sent=p2p.bytes_sent,
                            bytes_received=p2p.bytes_received, train_s=round(self.last_train_s, 3),
                            apply_s=round(apply_s, 3), work_s=round(time.monotonic() - t_apply, 3))
        for old in [s for s in self.results if s < step - 2]:
            del self.results[old]
        p2p.forget(step - 3)

    async def _train(self, st: Any, step: int) -> tuple[float | None, float | None]:
        mine = current_assignment(st).get(self.e.p2p.identity.public)
        if mine is None or self.trainer is None:
            return None, None
        batch = await self._fetch_batch(st, step, *mine)
        if batch is None:
            return None, None
        t0 = time.monotonic()
        out = await asyncio.to_thread(self.trainer.train_step, step, batch)
        seconds = time.monotonic() - t0
        self.last_train_s = seconds
        assert out.result is not None and self.plan is not None
        layout = self.e.p2p.exchange.layout  # type: ignore[union-attr]
        wire = encode_result(out.result, layout, self.plan.distro)
        if self.e.s.fault == "garbage":  # test-only: a client whose results are garbage
            wire = hashlib.sha256(wire).digest() * (len(wire) // 32 + 1)
        await self.e.p2p.exchange.publish(step, wire)  # type: ignore[union-attr]
        self.results.setdefault(step, {})[self.e.p2p.identity.public] = out.result
        self.losses.append((step, out.loss))
        return out.loss, batch.numel() / max(seconds, 1e-9)

    async def _fetch_batch(self, st: Any, step: int, first: int, last: int) -> Any:
        """Our batch, retried while the round lasts: a data server may still be a slot behind the chain
        (it refuses a batch of a round it has not seen yet) or briefly unreachable. None: no batch this round."""
        delay = 0.1
        while True:
            try:
                return await fetch_batch(self.provider, first, last)
            except DataError as e:
                cur = self.e.state
                if int(cur.step) != step or int(cur.run_state) != RunState.RoundTrain:
                    self.e.report.event("error", action="data", step=step, reason=str(e)[:200])
                    return None
                self.e.report.event("data_retry", detail=True, step=step, reason=str(e)[:200])
                await asyncio.sleep(delay)
                delay = min(1.0, delay * 2)

    async def _gather(self, step: int, current: int) -> WitnessReport:
        """Validate every announced result of `step` while we train; stop when all trainers delivered or
        the chain leaves this round's training phase."""
        report = WitnessReport()
        trainers = self.trainers_of.get(step, [])
        signer_of = dict(trainers)
        exchange = self.e.p2p.exchange
        done: set[bytes] = set()
        got = self.results.setdefault(step, {})
        while exchange is not None:
            for sender, h in sorted(exchange.announced(step).items()):
                if sender in done or sender not in signer_of:
                    continue
                done.add(sender)
                if sender == self.e.p2p.identity.public and sender in got:
                    report.add(signer_of[sender], h)
                    continue
                try:
                    got[sender] = await exchange.fetch_result(step, sender, h)
                    report.add(signer_of[sender], h)
                except Exception as e:
                    self.e.report.event("rejected", step=step, peer=sender.hex()[:16], reason=str(e)[:200])
            cur = self.e.state
            if done >= set(signer_of) or int(cur.step) != current or int(cur.run_state) != RunState.RoundTrain:
                break
            await asyncio.sleep(WAIT_POLL_S)
        return report

    async def _apply(self, step: int, witnessing_round: Any, st: Any) -> int:
        """Apply the results of `step` that the witnessing round's quorum vouched for; returns how many."""
        exchange = self.e.p2p.exchange
        trainers = [k for k, _ in self.trainers_of.get(step, [])]
        if exchange is None or not trainers or self.trainer is None:
            return 0
        chosen = consensus_results(exchange.announced(step), trainers, witnessing_round,
                                   int(st.config.witness_nodes))
        have = self.results.get(step, {})
        ready = []
        for key in sorted(chosen):
            res = have.get(key)
            if res is None:
                try:
                    res = await exchange.fetch_result(step, key, chosen[key])
                except Exception as e:
                    self.e.report.event("error", action="apply", step=step, peer=key.hex()[:16],
                                        reason=f"DESYNC: consensus result unavailable: {str(e)[:160]}")
                    continue
            ready.append(res)
        await asyncio.to_thread(self.trainer.apply, ready, step)
        return len(ready)

    async def _witness(self, st: Any, step: int, report: WitnessReport, loss: float | None,
                       tps: float | None) -> bool | str:
        """Post as soon as every trainer said finished, or when the chain moves to RoundWitness."""
        trainers = {k for k, _ in self.trainers_of.get(step, [])}
        while True:
            cur = self.e.state
            if int(cur.step) != step or int(cur.run_state) not in (RunState.RoundTrain, RunState.RoundWitness):
                return "missed"
            if trainers <= self.e.p2p.senders("finished", step) or int(cur.run_state) == RunState.RoundWitness:
                break
            await asyncio.sleep(WAIT_POLL_S)
        try:
            await self.e.chain.witness(report.participant.to_bytes(), report.broadcast.to_bytes(), report.merkle,
                                       step, loss or 0.0, tps or 0.0, float(self.e.p2p.bytes_received))
            return True
        except TransactionFailed as e:
            return f"refused ({str(e).splitlines()[0][:80]})"

    async def _health_checks(self, st: Any) -> None:
        for i in unhealthy_clients(st, self.e.me):
            target = bytes(st.epoch_clients[i].signer)
            try:
                await self.e.chain.health_check(i)
                self.e.report.event("health_check", target=str(target.hex()[:16]), result="dropped")
            except TransactionFailed as e:
                self.e.report.event("health_check", detail=True, target=target.hex()[:16],
                                    result=str(e).splitlines()[0][:80])

    # ---- cooldown -----------------------------------------------------------------------------------
    async def cooldown(self, st: Any) -> None:
        if self.model is None:
            return
        last = st.rounds[st.rounds_head]
        if int(last.height) >= 1:  # the last round's witnesses vouched for the step before it
            await self._apply(int(st.step) - 2, last, st)
        store = self.e.p2p.blobs.store
        if self.published is not None:  # only the newest checkpoint stays pinned for newcomers
            unpin_model(store, self.published)
        digest = self.published = publish_model(self.model, store, step=0)
        self.digest = digest
        ref = CheckpointRef(digest, P2P)
        path = self._save_local(int(st.step))
        mine = epoch_index(st, self.e.me)
        healthy = [i for i in range(int(st.num_epoch_clients)) if int(st.epoch_clients[i].state) == 0]
        posted = False
        if healthy and mine == healthy[0]:
            try:
                await self.e.chain.checkpoint(ref.encode())
                posted = True
            except TransactionFailed as e:
                self.e.report.event("error", action="checkpoint", reason=str(e).splitlines()[0])
        self.e.report.event("checkpoint", epoch=int(st.epoch), step=int(st.step), digest=ref.short,
                            path=str(path) if path else None, posted=posted,
                            weights_sha256=weights_sha256(self.model)[:16])

    def _save_local(self, step: int) -> Any:
        d = self.e.s.checkpoint_dir
        if d is None or self.model is None:
            return None
        path = d / f"step-{step:06d}"
        tmp = d / f".step-{step:06d}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        save_checkpoint(self.model, tmp)
        shutil.rmtree(path, ignore_errors=True)
        tmp.rename(path)
        self.checkpoints.append(str(path))
        kept = sorted(p for p in d.glob("step-*") if p.is_dir())
        for old in kept[:-self.e.s.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)
        return path

    # ---- the end ------------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"steps_trained": len(self.losses)}
        if self.losses:
            out["loss_first"], out["loss_last"] = round(self.losses[0][1], 4), round(self.losses[-1][1], 4)
        if self.model is not None:
            out["weights_sha256"] = weights_sha256(self.model)
        if self.checkpoints:
            out["checkpoint"] = self.checkpoints[-1]
        return out

    async def close(self) -> None:
        if self.provider is not None:
            await close_provider(self.provider)
            self.provider = None

