"""The verification tests' rig (tests/unit/test_verify*.py): N honest trainers of the in-process rig's tiny
model for STEPS steps (`honest_run`, built once per test process), a trainer's services that can refuse or
forge what they serve (`Source`), verify() as a verifier runs it (`check`), and the cheats' results."""
from __future__ import annotations

import copy
import functools

import torch
from training_helpers import pydoc_samples

from client.runner.verify import LEAVES as DRAWN
from client.runner.verify import LocalSource, recompute, verify
from client.training import ef_parts
from client.training.compress import SparseCoeffs
from client.training.config import ModelConfig
from client.training.data import ShardedBatches
from client.training.distro import DistroConfig, DistroResult, result_layout
from client.training.ef_parts import StateParts
from client.training.model import build_model
from client.training.result_codec import decode_result, encode_result
from client.training.schedule import Constant
from client.training.trainer import Trainer
from devtools.inproc import MODEL

DCFG = DistroConfig(chunk=16, topk=1, decay=0.99)
KW = {"distro": DCFG}
N, STEPS, ROWS = 3, 4, 4
KEYS = [bytes([i + 1]) * 32 for i in range(N)]


def schedule() -> Constant:
    return Constant(base_lr=3e-3, warmup_steps=0)


@functools.cache
def honest_run() -> dict:
    """N honest trainers for STEPS steps, each step's results applied by all before the next (as `apply`
    does two rounds later in the runner: the verifier only needs the weights each step was trained on)."""
    torch.manual_seed(0)
    base = build_model(ModelConfig.from_dict(MODEL), seed=0)
    layout = result_layout(base, DCFG)
    trainers = [Trainer(copy.deepcopy(base), schedule(), "distro", DCFG) for _ in range(N)]
    data = ShardedBatches(pydoc_samples(), N)
    weights, published, states, batches = [], [], [], []
    for step in range(STEPS):
        weights.append(copy.deepcopy(trainers[0].model))
        batches.append([data.batch(i, step, ROWS) for i in range(N)])
        outs = [t.train_step(step, batches[step][i]) for i, t in enumerate(trainers)]
        states.append([o.result.state for o in outs])
        published.append([decode_result(encode_result(o.result, layout, DCFG, sender=KEYS[i]), layout, DCFG,
                                         expected_sender=KEYS[i]) for i, o in enumerate(outs)])
        for t in trainers:
            t.apply([o.result for o in outs], step)
    return {"weights": weights, "published": published, "states": states, "batches": batches, "layout": layout}


SEED, VERIFIER = b"\x05" * 8, b"\xee" * 32


class Source(LocalSource):
    """A trainer's services serving `states`, with faults: `refuse` ("signs", "leaves of <ef>" or "<ef>"),
    `answer`: a function (kind, ef or hash) -> bytes that replaces the true answer when it returns bytes."""

    def __init__(self, *states: StateParts | None, refuse: set[str] | None = None, answer=None) -> None:
        super().__init__(*states)
        self.refuse, self.answer = refuse or set(), answer

    def opening(self, ef: bytes, leaves: list[int], with_leaves: bool, limit: int) -> bytes | None:
        if ef.hex() in self.refuse or (with_leaves and f"leaves of {ef.hex()}" in self.refuse):
            return None
        forged = self.answer and self.answer("opening", ef, leaves, with_leaves)
        return forged if forged else super().opening(ef, leaves, with_leaves, limit)

    def blob(self, h: bytes, limit: int) -> bytes | None:
        if "signs" in self.refuse:
            return None
        forged = self.answer and self.answer("blob", h, None, None)
        return forged if forged else super().blob(h, limit)


def serve(*states: StateParts | None, **kw) -> Source:
    return Source(*states, **kw)


def check(i: int, step: int, result: DistroResult, fetch=None, **kw: object):
    """verify() of trainer i's step with its store serving its states of step and step+1 (by default)."""
    r = honest_run()
    nxt = r["published"][step + 1][i].ef if step + 1 < STEPS else None
    if fetch is None:
        fetch = serve(r["states"][step][i], r["states"][step + 1][i] if step + 1 < STEPS else None)
    model = kw.pop("model", None)
    return verify(KEYS[i], result, fetch, r["weights"][step] if model is None else model, schedule(),
                  kw.pop("kwargs", KW), r["batches"][step][i], SEED, VERIFIER, next_ef=kw.pop("next_ef", nxt),
                  owned=model is not None, **kw)  # type: ignore[arg-type]


def lazy_result(step: int, i: int, model: torch.nn.Module, batch: torch.Tensor) -> DistroResult:
    """What trainer i would publish having trained `batch` on `model` from its true state."""
    r = honest_run()
    rec = recompute(model, schedule(), KW, step, batch, r["states"][step][i])
    res = DistroResult(step, {n: q.signs() for n, q in rec.result.params.items()}, True, ef=rec.result.ef)
    return decode_result(encode_result(res, r["layout"], DCFG, sender=KEYS[i]), r["layout"], DCFG)


def random_result(step: int, i: int) -> DistroResult:
    r = honest_run()
    g = torch.Generator().manual_seed(7)
    params = {}
    for name, q in r["published"][step][i].params.items():
        totalk = r["layout"][name].plan.totalk
        idx = torch.rand(*q.idx.shape[:-1], totalk, generator=g).argsort(-1)[..., :q.idx.shape[-1]].sort(-1)[0]
        params[name] = SparseCoeffs(idx, torch.where(torch.rand(q.val.shape, generator=g) < 0.5, -1.0, 1.0))
    return DistroResult(step, params, True, ef=r["published"][step][i].ef)


def forge(state: StateParts, leaves: dict[int, bytes] | None = None, signs: bytes | None = None) -> StateParts:
    """`state` with some leaves or its sign map replaced, under a tree (and commitment) of the new pieces."""
    new = list(state.leaves)
    for k, v in (leaves or {}).items():
        new[k] = v
    return StateParts(state.sent, state.signs if signs is None else signs, new,
                      ef_parts.build_tree([ef_parts.leaf_hash(x) for x in new]))


def drawn_leaves(i: int) -> list[int]:
    """The blocks this test's verifier draws for trainer i."""
    total = len(ef_parts.leaf_index(honest_run()["layout"]))
    return ef_parts.choose_leaves(SEED, VERIFIER, KEYS[i], total, DRAWN)
