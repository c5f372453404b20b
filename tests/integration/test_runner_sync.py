"""The synchronous pipeline (issue 26, `[distro] pipeline = "synchronous"`) end to end, in process: three real
clients over two epochs, and a newcomer for the second, must stay bit-identical and earn exactly their epoch
shares, and the weights each step trains on must be, bit for bit, the weights the previous step trained on
plus that step's own results: what makes the mode synchronous (in the overlapped pipeline they lack them).
Across the epoch boundary the same holds, so the checkpoint an epoch ends with (the newcomer's start)
includes its last step. Verification runs too (3000 per mille): without the look-ahead a trainer commits to
no sign map, and every honest check passes on the opened blocks alone (issue 25)."""
from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import pytest
from run_client_helpers import prepare_data
from test_runner_inproc import config, weights

from client.runner.phase_verify import restore
from client.runner.round_work import RoundWork
from client.runner.training_state import weights_sha256
from client.training.trainer import Trainer
from coordinator_sdk.account_view import CoordinatorView, view
from devtools.inproc import InProcessRun

pytestmark = pytest.mark.slow


class Recorder(RoundWork):
    """Keeps, per step, the weights the step trained on (the verifier's snapshot, taken after the round-start
    apply) and the validated results this client held of that step when its round ended."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.seen: dict[int, tuple[Any, dict[bytes, Any]]] = {}

    async def play_round(self, state: CoordinatorView) -> None:
        step = view(state).step
        await super().play_round(state)
        w = self.verifier.weights.get(step)  # a snapshot of the tensors (phase_verify.snapshot)
        if w is not None and self.ts.model is not None:
            self.seen[step] = (restore(self.ts.model, w), dict(self.book.results.get(step, {})))


def _plus(work: Recorder, step: int) -> str:
    """The weights `step` trained on with that step's results applied, computed here, not by the runner."""
    base, results = work.seen[step]
    plan = work.ts.plan
    assert plan is not None
    model = copy.deepcopy(base)
    Trainer(model, plan.schedule, "distro", plan.distro).apply([results[k] for k in sorted(results)], step)
    return weights_sha256(model)


def test_three_clients_two_epochs_synchronous(tmp_path: Path) -> None:
    async def body() -> None:
        net = InProcessRun(tmp_path, prepare_data(tmp_path), config(epoch_time=9, warmup_time=5, total_steps=16,
                                                                    verifiers_per_mille=3000),
                           distro={"pipeline": "synchronous"})
        try:
            net.start()
            cs = [net.client(f"c{i}", work=Recorder) for i in range(3)]
            # a newcomer joins for the second epoch: it starts from the first epoch's checkpoint (from peers)
            await net.until(lambda: bool(cs[0].of_kind("checkpoint")), 90, "the first epoch's checkpoint")
            late = net.client("late", work=Recorder)
            codes = await net.wait([*cs, late], 150)
            assert codes == [0, 0, 0, 0], [c.out.events[-5:] for c in [*cs, late]]
            assert [e["epoch"] for e in late.of_kind("warmup")] == [1], late.out.events[-8:]
            assert len({weights(c) for c in [*cs, late]}) == 1
            works = [c.client.work for c in cs]
            assert all(isinstance(w, Recorder) and w.ts.plan is not None and w.ts.plan.synchronous for w in works)
            assert all(not w.ts.trainer.use_lookahead for w in works)  # type: ignore[union-attr]
            assert all(w.ts.trainer.distro.commit_signs is False for w in works)  # type: ignore[union-attr]
            checks = [e for c in [*cs, late] for e in c.of_kind("verify")]
            assert len(checks) >= 10, checks
            assert all(e["outcome"] == "pass" and e["reason"].startswith("recomputed") for e in checks), checks
            epochs = {e["epoch"] for c in cs for e in c.of_kind("checkpoint")}
            assert len(epochs) == 2, epochs
            pts = net.points()  # the earning rate is split among each epoch's clients at its start
            assert {pts[bytes(c.wallet.pubkey())] for c in cs} == {(900 // 3 + 900 // 4, 0)}, pts
            assert pts[bytes(late.wallet.pubkey())] == (900 // 4, 0), pts
            rounds = [e for c in [*cs, late] for e in c.of_kind("round")]
            # each round gathers its own step's results from all its trainers (3, then 4 with the newcomer)
            assert rounds and all(e["gathered"] == e["expected"] == 3 + e["epoch"] for e in rounds), rounds
            for w in works:
                assert isinstance(w, Recorder)
                steps = sorted(w.seen)
                pairs = [s for s in steps if s + 1 in w.seen]
                assert len(pairs) >= 8, steps
                for s in pairs:
                    assert len(w.seen[s][1]) >= 3, (s, len(w.seen[s][1]))
                    assert weights_sha256(w.seen[s + 1][0]) == _plus(w, s), f"step {s + 1} lacks step {s}"
                    assert weights_sha256(w.seen[s + 1][0]) != weights_sha256(w.seen[s][0])
            boundary = [e["step"] for e in cs[0].of_kind("checkpoint")][0]  # first step of epoch 2
            assert boundary - 1 in works[0].seen and boundary in works[0].seen, (boundary, sorted(works[0].seen))
            newcomer = late.client.work
            assert isinstance(newcomer, Recorder) and boundary in newcomer.seen, sorted(newcomer.seen)
            # what the newcomer loaded is what the others trained the epoch's first step on: the last step included
            assert weights_sha256(newcomer.seen[boundary][0]) == weights_sha256(works[0].seen[boundary][0])
            for s in [s for s in newcomer.seen if s + 1 in newcomer.seen]:
                assert weights_sha256(newcomer.seen[s + 1][0]) == _plus(newcomer, s)
        finally:
            net.dump(tmp_path / "events.txt")
            await net.close()
    asyncio.run(body())


def test_simulated_training_in_the_synchronous_pipeline(tmp_path: Path) -> None:
    """Simulated results (a delay and a seeded, well-formed result: what swarms use; recomputing them would
    fail, so nobody verifies) go through the same gather, witness and apply: every round gathers all three,
    the clients end bit-identical and the weights moved from the initial ones."""
    async def body() -> None:
        net = InProcessRun(tmp_path, prepare_data(tmp_path), config(total_steps=6),
                           distro={"pipeline": "synchronous"})
        try:
            net.start()
            cs = [net.client(f"c{i}", simulate_training=0.2, verify_trainers=0) for i in range(3)]
            codes = await net.wait(cs, 90)
            assert codes == [0, 0, 0], [c.out.events[-5:] for c in cs]
            assert len({weights(c) for c in cs}) == 1
            rounds = [e for c in cs for e in c.of_kind("round")]
            assert rounds and all(e["simulated"] and e["gathered"] == e["expected"] == 3 for e in rounds), rounds
            initial = [e for e in cs[0].of_kind("model")][0]["digest"]
            assert all(e["digest"] != initial for e in cs[0].of_kind("checkpoint"))
            assert net.points()[bytes(cs[0].wallet.pubkey())] == (900 // 3, 0)
        finally:
            net.dump(tmp_path / "events.txt")
            await net.close()
    asyncio.run(body())
