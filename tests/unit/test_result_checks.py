"""The cheap checks every client runs (issue 25): copies and replays are rejected, honest results are not."""
from __future__ import annotations

import copy
import functools
import itertools

import torch
from training_helpers import pydoc_samples

from client.runner.result_checks import THRESHOLD, ResultMemory, agreement, fingerprint
from client.training.compress import SparseCoeffs
from client.training.config import ModelConfig
from client.training.data import ShardedBatches
from client.training.distro import DistroConfig, DistroResult
from client.training.model import build_model
from client.training.schedule import Constant
from client.training.trainer import Trainer
from devtools.inproc import DISTRO, MODEL

N, STEPS = 4, 10


@functools.cache
def _results() -> list[list[DistroResult]]:
    """N honest trainers of the in-process rig's model and DisTrO settings, STEPS steps, all applied."""
    base = build_model(ModelConfig.from_dict(MODEL), seed=0)
    cfg = DistroConfig(**DISTRO)
    trainers = [Trainer(copy.deepcopy(base), Constant(base_lr=3e-3, warmup_steps=0), "distro", cfg) for _ in range(N)]
    data = ShardedBatches(pydoc_samples(), N)
    out = []
    for step in range(STEPS):
        res = [t.train_step(step, data.batch(i, step, 4)).result for i, t in enumerate(trainers)]
        for t in trainers:
            t.apply(res, step)
        out.append(res)
    return out


def _flip(res: DistroResult, every: int) -> DistroResult:
    """A copy with every `every`-th sign (counted over all parameters) flipped."""
    params, seen = {}, 0
    for n, q in res.params.items():
        v = q.val.clone().reshape(-1)
        first = (-seen) % every
        v[first::every] = -v[first::every]
        seen += v.numel()
        params[n] = SparseCoeffs(q.idx, v.reshape(q.val.shape))
    return DistroResult(res.step, params, res.quantized)


def test_honest_agreement_is_far_below_the_threshold() -> None:
    """Measured on the rig's model: honest pairs of one step agree ~0.3 (max ~0.6: a tiny model with ~100
    sent coefficients, most in 1-2 blocks per parameter); a trainer's own results of nearby steps ~0.2."""
    runs = _results()
    pairs = [agreement(fingerprint(a), fingerprint(b)) for res in runs for a, b in itertools.permutations(res, 2)]
    own = [agreement(fingerprint(runs[s][i]), fingerprint(runs[s - lag][i]))
           for s in range(STEPS) for i in range(N) for lag in (1, 2, 4) if s >= lag]
    print(f"honest pairwise agreement mean {sum(pairs) / len(pairs):.3f} max {max(pairs):.3f};"
          f" own earlier results mean {sum(own) / len(own):.3f} max {max(own):.3f}")
    assert max(pairs) < 0.75 and max(own) < 0.75 < THRESHOLD
    assert agreement(fingerprint(_flip(runs[3][0], 20)), fingerprint(runs[3][0])) >= THRESHOLD


def test_honest_results_are_all_accepted() -> None:
    mem = ResultMemory()
    for step, res in enumerate(_results()):
        for i, r in enumerate(res):
            assert mem.check(step, bytes([i]) * 32, r) is None, (step, i)


def test_copies_and_replays_are_rejected_with_a_named_reason() -> None:
    runs = _results()
    honest, cheat = b"\x01" * 32, b"\x02" * 32
    mem = ResultMemory()
    assert mem.check(0, cheat, runs[0][1]) is None
    assert mem.check(1, honest, runs[1][0]) is None
    assert mem.check(1, honest, runs[1][0]) is None  # the same result again (refetched to apply): not a copy
    why = mem.check(1, cheat, runs[1][0])
    assert why is not None and why.startswith("copy: agrees 1.000 with 0101")
    why = mem.check(1, cheat, _flip(runs[1][0], 20))  # nearly identical: ~5% of signs flipped
    assert why is not None and why.startswith("copy: agrees 0.9")
    why = mem.check(1, cheat, DistroResult(1, runs[0][1].params, True))  # its own result of step 0, resent
    assert why is not None and why.startswith("replay: agrees 1.000 with the sender's own result of step 0")
    assert mem.check(1, cheat, runs[1][1]) is None  # its honest result still counts


def test_memory_is_bounded() -> None:
    runs = _results()
    mem = ResultMemory(memory=3)
    for step in range(STEPS):
        mem.check(step, b"\x05" * 32, runs[step][0])
    assert len(mem.by_sender[b"\x05" * 32]) == 3 and len(mem.by_step) == 4
    assert torch.equal(torch.from_numpy(fingerprint(runs[0][0])), torch.from_numpy(fingerprint(runs[0][0])))


def test_sampled_prefilter_never_lets_a_near_copy_through() -> None:
    """The prefilter compares a random sample of 64 keys before the exact agreement: a copy with every 12th
    sign flipped (agreement ~0.92, just over the bar) must still be rejected by every client's own draw."""
    runs = _results()
    near = _flip(runs[3][0], 12)
    assert THRESHOLD <= agreement(fingerprint(near), fingerprint(runs[3][0])) < 0.95
    for trial in range(300):
        mem = ResultMemory()
        assert mem.check(3, b"\x01" * 32, runs[3][0]) is None
        why = mem.check(3, b"\x02" * 32, near)
        assert why is not None and why.startswith("copy: agrees 0.9"), (trial, why)


def test_fingerprint_matches_its_definition() -> None:
    """The vectorized fingerprint against the definition, parameter by parameter (block-major global keys)."""
    from client.runner.result_checks import SPAN

    res = _results()[2][1]
    keys, offset = [], 0
    for q in res.params.values():
        idx = q.idx.reshape(-1, q.idx.shape[-1])
        for b in range(idx.shape[0]):
            for j in range(idx.shape[1]):
                neg = int(q.val.reshape(idx.shape)[b, j] < 0)
                keys.append(2 * (offset + b * SPAN + int(idx[b, j])) + neg)
        offset += idx.shape[0] * SPAN
    assert fingerprint(res).tolist() == sorted(set(keys))
    shuffled = {n: SparseCoeffs(q.idx.flip(-1), q.val.flip(-1)) for n, q in res.params.items()}
    assert fingerprint(DistroResult(2, shuffled, True)).tolist() == sorted(set(keys))  # order-free


def _synthetic(seed: int, blocks: int = 4000) -> DistroResult:
    """A top-1 result over `blocks` blocks of 256 coefficients with random indices and signs (a layout the
    size of a real model's, where the sketch index holds a small part of each result's keys)."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, 256, (blocks, 1), generator=g)
    val = torch.randn(blocks, 1, generator=g)
    return DistroResult(0, {"w": SparseCoeffs(idx, val)}, False)


def test_sketch_index_catches_near_copies_under_every_salt_and_skips_unrelated_results() -> None:
    """Issue 24: a new result is compared only with the results its bottom-64 sketch (salted per client)
    links it to. A copy with 8% of its signs flipped (agreement ~0.92) must be caught under every fresh salt,
    and unrelated honest results must not be compared at all (what makes the check sub-quadratic)."""
    from client.runner import result_checks

    honest = [_synthetic(s) for s in range(12)]
    near = _flip(honest[5], 12)
    assert THRESHOLD <= agreement(fingerprint(near), fingerprint(honest[5])) < 0.95
    compared = []
    real = result_checks.ResultMemory._agreement

    def counting(self, fp, sample, other):  # type: ignore[no-untyped-def]
        compared.append(1)
        return real(self, fp, sample, other)

    result_checks.ResultMemory._agreement = counting  # type: ignore[method-assign]
    try:
        for trial in range(100):
            mem = ResultMemory()
            for i, r in enumerate(honest):
                assert mem.check(0, bytes([i]) * 32, r) is None
            assert not compared, "unrelated results were compared"
            why = mem.check(0, b"\xff" * 32, near)
            assert why is not None and why.startswith("copy: agrees 0.9") and f"{5:02x}" * 8 in why, (trial, why)
            compared.clear()
    finally:
        result_checks.ResultMemory._agreement = real  # type: ignore[method-assign]


def test_results_of_another_size_are_always_compared() -> None:
    """The sketch bound assumes equal key counts; a result with fewer keys (a subset of another's) has no
    such bound, so it is compared with every result of the step whatever the sketches say."""
    whole = _synthetic(1, blocks=4000)
    part = DistroResult(0, {"w": SparseCoeffs(whole.params["w"].idx[:600], whole.params["w"].val[:600])}, False)
    for _ in range(20):
        mem = ResultMemory()
        assert mem.check(0, b"\x01" * 32, whole) is None
        why = mem.check(0, b"\x02" * 32, part)  # every key of it is whole's: agreement 1.0
        assert why is not None and why.startswith("copy: agrees 1.000")
    low = ResultMemory(threshold=0.3)  # below INDEXED_FROM: every pair compared
    assert low._candidates(0, fingerprint(whole), set()) is None
