"""Recomputation spot-checks (issue 25): every cheat fails, honest results pass over several steps."""
from __future__ import annotations

import copy
import functools
from dataclasses import replace

import msgpack
import pytest
import torch
from training_helpers import pydoc_samples

from client.runner.phase_verify import restore, snapshot
from client.runner.verify import LEAVES as DRAWN
from client.runner.verify import TOLERANCE_LEAVES, LocalSource, compare, recompute, restrict, targets, verify
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


def _schedule() -> Constant:
    return Constant(base_lr=3e-3, warmup_steps=0)


@functools.cache
def _run() -> dict:
    """N honest trainers for STEPS steps, each step's results applied by all before the next (as `apply`
    does two rounds later in the runner: the verifier only needs the weights each step was trained on)."""
    torch.manual_seed(0)
    base = build_model(ModelConfig.from_dict(MODEL), seed=0)
    layout = result_layout(base, DCFG)
    trainers = [Trainer(copy.deepcopy(base), _schedule(), "distro", DCFG) for _ in range(N)]
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


def _fetch(*states: StateParts | None, **kw) -> Source:
    return Source(*states, **kw)


def _check(i: int, step: int, result: DistroResult, fetch=None, **kw: object):
    """verify() of trainer i's step with its store serving its states of step and step+1 (by default)."""
    r = _run()
    nxt = r["published"][step + 1][i].ef if step + 1 < STEPS else None
    if fetch is None:
        fetch = _fetch(r["states"][step][i], r["states"][step + 1][i] if step + 1 < STEPS else None)
    model = kw.pop("model", None)
    return verify(KEYS[i], result, fetch, r["weights"][step] if model is None else model, _schedule(),
                  kw.pop("kwargs", KW), r["batches"][step][i], SEED, VERIFIER, next_ef=kw.pop("next_ef", nxt),
                  owned=model is not None, **kw)  # type: ignore[arg-type]


def test_honest_results_pass_every_step_with_the_state_chain() -> None:
    r = _run()
    for step in range(STEPS):
        for i in range(N):
            v = _check(i, step, r["published"][step][i])
            assert v.outcome == "pass", (step, i, v)
            assert v.agreement == 1.0 and v.event()["outcome"] == "pass"
            t = _check(i, step, r["published"][step][i], mode="tolerance")
            assert t.outcome == "pass", (step, i, t)


def test_tolerance_mode_opens_a_sample_of_blocks_not_the_whole_state() -> None:
    """TOLERANCE_LEAVES blocks of this state (of the rig model's 106), and of the next one when the bits differ."""
    r = _run()
    step, i = 1, 0
    state, nxt = r["states"][step][i], r["states"][step + 1][i]
    drawn = ef_parts.choose_leaves(SEED, VERIFIER, KEYS[i], len(state.leaves), TOLERANCE_LEAVES)
    assert TOLERANCE_LEAVES < len(state.leaves)
    src = _fetch(state, nxt)
    v = _check(i, step, r["published"][step][i], src, mode="tolerance", kwargs={"distro": DCFG, "micro_batch_size": 1})
    assert v.outcome == "pass" and src.log == ["leaves", "signs", "proof", "leaves"]
    assert src.fetched == len(state.open(drawn)) + len(state.signs) + len(nxt.open(drawn, False)) + len(nxt.open(drawn))


def _lazy(step: int, i: int, model: torch.nn.Module, batch: torch.Tensor) -> DistroResult:
    """What trainer i would publish having trained `batch` on `model` from its true state."""
    r = _run()
    rec = recompute(model, _schedule(), KW, step, batch, r["states"][step][i])
    res = DistroResult(step, {n: q.signs() for n, q in rec.result.params.items()}, True, ef=rec.result.ef)
    return decode_result(encode_result(res, r["layout"], DCFG, sender=KEYS[i]), r["layout"], DCFG)


def _random(step: int, i: int) -> DistroResult:
    r = _run()
    g = torch.Generator().manual_seed(7)
    params = {}
    for name, q in r["published"][step][i].params.items():
        totalk = r["layout"][name].plan.totalk
        idx = torch.rand(*q.idx.shape[:-1], totalk, generator=g).argsort(-1)[..., :q.idx.shape[-1]].sort(-1)[0]
        params[name] = SparseCoeffs(idx, torch.where(torch.rand(q.val.shape, generator=g) < 0.5, -1.0, 1.0))
    return DistroResult(step, params, True, ef=r["published"][step][i].ef)


CHEATS = ["random", "copied", "copied-with-its-state", "replayed", "half-batch", "stale-weights"]


@pytest.mark.parametrize("cheat", CHEATS)
def test_every_cheat_fails_recomputation(cheat: str) -> None:
    r = _run()
    step, i, victim = 2, 1, 0
    state = r["states"][step][i]
    nxt = r["states"][step + 1][i]
    if cheat == "random":
        res = _random(step, i)
    elif cheat == "copied":  # the victim's coefficients under the cheater's own commitment
        res = replace(r["published"][step][victim], sender=KEYS[i], ef=r["published"][step][i].ef)
    elif cheat == "copied-with-its-state":  # ... or with the victim's commitment, serving the victim's state
        res, state = replace(r["published"][step][victim], sender=KEYS[i]), r["states"][step][victim]
        nxt = r["states"][step + 1][victim]
    elif cheat == "replayed":  # its own earlier result, relabelled, under its current commitment
        res = replace(r["published"][step - 1][i], step=step, ef=r["published"][step][i].ef)
    elif cheat == "half-batch":
        res = _lazy(step, i, r["weights"][step], r["batches"][step][i][:ROWS // 2])
    else:
        res = _lazy(step, i, r["weights"][step - 1], r["batches"][step][i])
    every = len(ef_parts.leaf_index(r["layout"]))  # every block drawn: a full recomputation
    for mode in ("exact", "tolerance"):
        v = _check(i, step, res, _fetch(state, nxt), mode=mode, leaves=every)
        assert v.outcome == "fail" and "recomputation" in v.reason, (cheat, mode, v)


@pytest.mark.parametrize("cheat", ["half-batch", "stale-weights"])
def test_a_sampled_check_fails_exactly_when_it_draws_a_block_the_cheat_changed(cheat: str) -> None:
    """With DRAWN blocks a check sees part of the result: it fails when a drawn block holds a coefficient or
    sign that differs from the honest recomputation and passes otherwise (here the next state served is the
    honest one, so only the result decides; bench/verification_bytes.py measures the demo's catch rates)."""
    r = _run()
    step, i = 2, 1
    batch = r["batches"][step][i]
    res = _lazy(step, i, r["weights"][step], batch[:ROWS // 2]) if cheat == "half-batch" else \
        _lazy(step, i, r["weights"][step - 1], batch)
    honest = recompute(r["weights"][step], _schedule(), KW, step, batch, r["states"][step][i]).result
    total = len(ef_parts.leaf_index(r["layout"]))
    dirty = {k for k in range(total) if not compare(restrict(res, r["layout"], [k]),
                                                    restrict(honest, r["layout"], [k]))[0]}
    assert 0 < len(dirty) < total
    outcomes: list[str] = []
    for n in range(200):  # until both outcomes were seen (a draw of DRAWN blocks can miss every dirty one)
        if "fail" in outcomes and "pass" in outcomes:
            break
        seed = n.to_bytes(8, "little")
        drawn = ef_parts.choose_leaves(seed, VERIFIER, KEYS[i], total, DRAWN)
        v = verify(KEYS[i], res, _fetch(r["states"][step][i], r["states"][step + 1][i]), r["weights"][step],
                   _schedule(), KW, batch, seed, VERIFIER, next_ef=r["published"][step + 1][i].ef)
        assert (v.outcome == "fail") == bool(dirty & set(drawn)), (n, v, sorted(dirty), drawn)
        outcomes.append(v.outcome)
    assert "fail" in outcomes and "pass" in outcomes


@pytest.mark.parametrize("cheat", ["half-batch", "stale-weights"])
def test_a_partial_cheat_fails_the_state_chain_whatever_blocks_are_drawn(cheat: str) -> None:
    """The state a partial cheat commits to for its next step follows from the gradient it computed, which
    differs from the honest one in every cell: each drawn block breaks the chain, so every check fails even
    when the drawn blocks' coefficients happen to agree."""
    r = _run()
    step, i = 2, 1
    batch = r["batches"][step][i]
    half = cheat == "half-batch"
    weights, rows = (r["weights"][step], batch[:ROWS // 2]) if half else (r["weights"][step - 1], batch)
    res = _lazy(step, i, weights, rows)
    nxt = recompute(weights, _schedule(), KW, step, rows, r["states"][step][i]).next_state()
    reasons: set[str] = set()
    for n in range(200):  # until a draw whose blocks' coefficients agree fails by the chain alone
        if "chain" in reasons and n >= 12:
            break
        v = verify(KEYS[i], res, _fetch(r["states"][step][i], nxt), r["weights"][step], _schedule(), KW, batch,
                   n.to_bytes(8, "little"), VERIFIER, next_ef=nxt.ef)
        assert v.outcome == "fail", (n, v)
        reasons.add("chain" if "state chain broken" in v.reason else "result")
    assert "chain" in reasons


def test_withheld_wrong_or_broken_state_fails() -> None:
    r = _run()
    step, i = 1, 2
    res, state = r["published"][step][i], r["states"][step][i]
    assert "withheld" in _check(i, step, res, _fetch()).reason
    assert "withheld" in _check(i, step, res, _fetch(state, refuse={"signs"})).reason  # the sign map refused
    # services that answer with another trainer's opening, or with garbage
    other = r["states"][step][0]
    theirs = _fetch(state, answer=lambda kind, ef, leaves, w: kind == "opening" and other.open(leaves, w))
    v = _check(i, step, res, theirs)
    assert v.outcome == "fail" and "ef commitment" in v.reason
    v = _check(i, step, res, _fetch(state, answer=lambda kind, *a: b"\x90" if kind == "opening" else None))
    assert v.outcome == "fail" and "malformed" in v.reason
    # a state that commits to no sign map, in a run with the look-ahead
    bare = replace(state, signs=None)
    v = _check(i, step, replace(res, ef=bare.ef), _fetch(bare, r["states"][step + 1][i]))
    assert v.outcome == "fail" and "no sign map" in v.reason
    # honest result, but the next result commits to a state that does not follow from this step
    v = _check(i, step, res, _fetch(state, r["states"][step + 1][0]), next_ef=r["published"][step + 1][0].ef)
    assert v.outcome == "fail" and "state chain broken" in v.reason
    # the next state refused altogether
    v = _check(i, step, res, _fetch(state))
    assert v.outcome == "fail" and "state chain broken" in v.reason and "withheld" in v.reason


def _forge(state: StateParts, leaves: dict[int, bytes] | None = None, signs: bytes | None = None) -> StateParts:
    """`state` with some leaves or its sign map replaced, under a tree (and commitment) of the new pieces."""
    new = list(state.leaves)
    for k, v in (leaves or {}).items():
        new[k] = v
    return StateParts(state.sent, state.signs if signs is None else signs, new,
                      ef_parts.build_tree([ef_parts.leaf_hash(x) for x in new]))


def _drawn(i: int) -> list[int]:
    """The blocks this test's verifier draws for trainer i."""
    total = len(ef_parts.leaf_index(_run()["layout"]))
    return ef_parts.choose_leaves(SEED, VERIFIER, KEYS[i], total, DRAWN)


def test_forged_pieces_of_a_state_fail_the_check() -> None:
    """Each forged piece the verifier draws is a failed check: a block from another state (in a tree the
    result commits to), a block of the wrong size, a sign map of the wrong size or one that disagrees with δ,
    a block swapped in under the true root (the proof no longer leads to it), a proof cut short or padded."""
    r = _run()
    step, i = 2, 1
    state, other = r["states"][step][i], r["states"][step - 1][i]
    # a drawn block whose δ moved since the other state (a never-seen token's embedding block stays zero)
    first = next(k for k in _drawn(i) if state.leaves[k] != other.leaves[k])
    name, block = ef_parts.leaf_index(r["layout"])[first]
    offset = 0
    for n, lay in r["layout"].items():  # the first element of the drawn block's first row in the sign map
        if n == name:
            *_, cols = lay.plan.matrix_shape
            per_row = cols // lay.plan.w
            offset += (block // per_row) * lay.plan.h * cols + (block % per_row) * lay.plan.w
            break
        offset += lay.plan.num_blocks * lay.plan.totalk
    flipped = bytearray(state.signs)
    flipped[offset // 8] ^= 0xFF  # 8 elements' "negative" bits flipped, on the drawn block
    forged = {
        "a block from another state": _forge(state, {first: other.leaves[first]}),
        "a block of the wrong size": _forge(state, {first: state.leaves[first][:-4]}),
        "a sign map of the wrong size": _forge(state, signs=state.signs[:100]),
        "a sign map that disagrees with δ": _forge(state, signs=bytes(flipped)),
    }
    for what, f in forged.items():
        res = replace(r["published"][step][i], ef=f.ef)
        v = _check(i, step, res, _fetch(f, r["states"][step + 1][i]))
        assert v.outcome == "fail", (what, v)

    def tampered(change):
        def answer(kind, ef, leaves, with_leaves):
            if kind != "opening" or ef != state.ef or not with_leaves:
                return None
            env = msgpack.unpackb(state.open(leaves, True))
            change(env)
            return msgpack.packb(env, use_bin_type=True)
        return answer
    for what, change in {
        "another block under the true root": lambda e: e["leaves"].__setitem__(0, other.leaves[first]),
        "a proof cut short": lambda e: e["proof"].pop(),
        "a proof padded": lambda e: e["proof"].append(bytes(32)),
        "a leaf missing": lambda e: e["leaves"].pop(),
    }.items():
        v = _check(i, step, r["published"][step][i], _fetch(state, r["states"][step + 1][i], answer=tampered(change)))
        assert v.outcome == "fail" and "malformed" in v.reason, (what, v)


def test_compare_tolerance_counts_flipped_signs() -> None:
    r = _run()
    res = r["published"][1][0]
    mine = recompute(r["weights"][1], _schedule(), KW, 1, r["batches"][1][0], r["states"][1][0]).result
    assert compare(res, mine)[0]
    flipped = {n: SparseCoeffs(q.idx, -q.val) for n, q in res.params.items()}
    ok, a, why = compare(replace(res, params=flipped), mine, "tolerance")
    assert not ok and a == 0.0 and "agrees on 0.000" in why


def test_targets_are_a_seeded_choice_of_others() -> None:
    trainers = [bytes([i]) * 32 for i in range(10)]
    me = trainers[3]
    a = targets(12345, me, trainers, 3)
    assert len(a) == 3 and me not in a and len(set(a)) == 3
    assert a == targets(12345, me, trainers, 3) == targets((12345).to_bytes(8, "little"), me, trainers, 3)
    assert any(targets(s, me, trainers, 3) != a for s in range(1, 5))
    assert targets(1, me, [me], 2) == [] and len(targets(1, me, trainers, 20)) == 9


def test_tolerance_mode_accepts_honest_results_recomputed_in_another_summation_order() -> None:
    """A verifier that accumulates the batch in micro-batches of 1 (other float rounding: a stand-in for
    other hardware) derives other state bits: when the trainer does not serve the next state's blocks exact
    mode reports a broken chain; when it does (as its services do) they are checked within STATE_RTOL and
    every honest result passes, in exact mode (the 1-bit results themselves came out identical) and in
    tolerance mode."""
    r = _run()
    kw = {"distro": DCFG, "micro_batch_size": 1}
    exact, served, tol = [], [], []
    for step in range(STEPS - 1):
        for i in range(N):
            own, nxt = r["states"][step][i], r["states"][step + 1][i]
            proof_only = _fetch(own, nxt, refuse={f"leaves of {nxt.ef.hex()}"})  # none of the next state's blocks
            exact.append(_check(i, step, r["published"][step][i], proof_only, kwargs=kw))
            served.append(_check(i, step, r["published"][step][i], kwargs=kw))
            tol.append(_check(i, step, r["published"][step][i], kwargs=kw, mode="tolerance"))
    assert all(v.outcome == "pass" for v in tol + served), tol + served
    assert any("state chain broken" in v.reason for v in exact)  # without the served blocks: bits differ
    assert any("within tolerance" in v.reason for v in served)
    # the served next state must still be the committed one, and close to the derived one
    v = _check(0, 1, r["published"][1][0], _fetch(r["states"][1][0], r["states"][2][1]),
               next_ef=r["published"][2][1].ef, kwargs=kw, mode="tolerance")
    assert v.outcome == "fail" and "state chain broken" in v.reason


def test_tolerance_mode_catches_a_three_quarter_batch_by_the_state_chain() -> None:
    """Three quarters of the batch agrees with the recomputation on ~0.92 of the (index, sign) pairs, above
    the 0.9 bar; the state it then commits to for the next step is not the derived one within STATE_RTOL."""
    r = _run()
    step, i = 2, 1
    kw = {"distro": DCFG, "micro_batch_size": 1}
    for rows, outcome in ((ROWS * 3 // 4, "fail"), (ROWS, "pass")):
        lazy = recompute(r["weights"][step], _schedule(), KW, step, r["batches"][step][i][:rows], r["states"][step][i])
        v = _check(i, step, _lazy(step, i, r["weights"][step], r["batches"][step][i][:rows]),
                   _fetch(r["states"][step][i], lazy.next_state()), next_ef=lazy.next_state().ef, kwargs=kw,
                   mode="tolerance")
        assert v.outcome == outcome, (rows, v)
        if outcome == "fail":
            assert v.agreement is not None and v.agreement >= 0.9 and "state chain broken" in v.reason


def test_only_the_next_proof_is_fetched_when_the_chain_holds() -> None:
    """An honest check in exact mode, in the trainer's own summation order, fetches an opening of this state at
    DRAWN blocks, its sign map and the next state's proof at them, nothing more; a verifier summing in another
    order also fetches the next state's drawn blocks; a synchronous run (no look-ahead) commits to no sign map
    and its check fetches none; a throwaway (owned) model gives the verdict of a copied one."""
    r = _run()
    step, i = 1, 2
    state, nxt = r["states"][step][i], r["states"][step + 1][i]
    drawn = _drawn(i)
    src = _fetch(state, nxt)
    v = _check(i, step, r["published"][step][i], src)
    assert v.outcome == "pass" and v.reason == "recomputed"
    assert src.log == ["leaves", "signs", "proof"]
    assert src.fetched == len(state.open(drawn)) + len(state.signs) + len(nxt.open(drawn, False))
    assert src.fetched < (len(state.signs) + sum(map(len, state.leaves))) / 4  # the rig's tiny model: ~1/9
    owned = copy.deepcopy(r["weights"][step])
    v = verify(KEYS[i], r["published"][step][i], _fetch(state, nxt), owned, _schedule(), KW, r["batches"][step][i],
               SEED, VERIFIER, next_ef=nxt.ef, owned=True)
    assert v.outcome == "pass"
    src = _fetch(state, nxt)
    v = _check(i, step, r["published"][step][i], src, kwargs={"distro": DCFG, "micro_batch_size": 1})
    assert v.outcome == "pass" and "within tolerance" in v.reason
    assert src.log == ["leaves", "signs", "proof", "leaves"]


def test_a_check_steps_only_the_parameters_it_opened() -> None:
    """A recomputation from an opening folds and extracts only the parameters with a drawn block (the rest of
    its DisTrO step would be thrown away): on those, result and next state are the full recomputation's bits."""
    r = _run()
    step, i = 2, 1
    state, drawn = r["states"][step][i], _drawn(i)
    opening = replace(ef_parts.parse_opening(state.open(drawn), r["layout"], state.ef, drawn), signs=state.signs)
    part = recompute(r["weights"][step], _schedule(), KW, step, r["batches"][step][i], opening)
    full = recompute(r["weights"][step], _schedule(), KW, step, r["batches"][step][i], state)
    opened = {ef_parts.leaf_index(r["layout"])[k][0] for k in drawn}
    assert set(part.result.params) == opened and opened < set(full.result.params)
    mine, theirs = restrict(part.result, r["layout"], drawn), restrict(full.result, r["layout"], drawn)
    for n, q in theirs.params.items():
        assert torch.equal(mine.params[n].idx, q.idx) and torch.equal(mine.params[n].val, q.val), n
    assert part.next_leaves == {k: full.next_leaves[k] for k in drawn}


def test_a_model_copy_an_earlier_check_trained_gives_the_next_check_the_same_verdict() -> None:
    """The runner reuses the copy a finished check trained in place (`restore` with spares): loaded with the
    next snapshot it holds exactly those weights, and its checks come out as a new copy's, pass and fail."""
    r = _run()
    skeleton = copy.deepcopy(r["weights"][0])
    used = restore(skeleton, snapshot(r["weights"][1]))
    assert _check(0, 1, r["published"][1][0], model=used).outcome == "pass"  # trained in place (owned)
    spares = [used]
    again = restore(skeleton, snapshot(r["weights"][2]), spares)
    assert again is used and not spares
    want = r["weights"][2].state_dict()
    assert all(torch.equal(v, want[k]) for k, v in again.state_dict().items())
    assert all(p.grad is None for p in again.parameters())
    assert _check(1, 2, r["published"][2][1], model=again).outcome == "pass"
    again = restore(skeleton, snapshot(r["weights"][2]), [again])
    assert _check(2, 2, _random(2, 2), model=again).outcome == "fail"


def test_a_synchronous_run_commits_to_no_sign_map_and_its_checks_fetch_none() -> None:
    """Without the look-ahead nothing outside the drawn blocks enters the recomputation: the state commits
    to 32 zero bytes in place of the sign map, and a check costs an opening and a proof only."""
    torch.manual_seed(0)
    base = build_model(ModelConfig.from_dict(MODEL), seed=0)
    layout = result_layout(base, DCFG)
    kw = {"distro": DCFG, "lookahead": False}
    t = Trainer(copy.deepcopy(base), _schedule(), "distro", **kw)
    batches = [pydoc_samples()[4 * s:4 * s + 4] for s in range(3)]
    weights, outs = [], []
    for step in range(3):
        weights.append(copy.deepcopy(t.model))
        outs.append(t.train_step(step, batches[step]))
        t.apply([outs[-1].result], step)
    assert all(o.result.state.signs is None and o.result.state.signs_hash == bytes(32) for o in outs)
    res = decode_result(encode_result(outs[1].result, layout, DCFG, sender=KEYS[0]), layout, DCFG)
    src = LocalSource(outs[1].result.state, outs[2].result.state)
    v = verify(KEYS[0], res, src, weights[1], _schedule(), kw, batches[1], SEED, VERIFIER, next_ef=outs[2].result.ef)
    assert v.outcome == "pass" and v.reason == "recomputed" and src.log == ["leaves", "proof"]
    # the same state checked as if the run trained with the look-ahead: no sign map to rebuild it from
    v = verify(KEYS[0], res, src, weights[1], _schedule(), KW, batches[1], SEED, VERIFIER, next_ef=outs[2].result.ef)
    assert v.outcome == "fail" and "no sign map" in v.reason


def test_merkle_multiproofs_lead_to_the_root_and_nothing_else() -> None:
    """Every subset of leaves of trees of 1 to 9 leaves proves against the root with exactly the proof `prove`
    gives; a changed leaf, a leaf at another index, a short or long proof lead elsewhere."""
    import itertools
    for count in range(1, 10):
        hashes = [ef_parts.leaf_hash(bytes([i])) for i in range(count)]
        levels = ef_parts.build_tree(hashes)
        root = levels[-1][0]
        for size in range(1, count + 1):
            for subset in itertools.islice(itertools.combinations(range(count), size), 40):
                proof = ef_parts.prove(levels, list(subset))
                known = {i: hashes[i] for i in subset}
                assert ef_parts.root_of(known, count, proof) == root
                assert ef_parts.root_of({**known, subset[0]: ef_parts.leaf_hash(b"x")}, count, proof) != root
                assert ef_parts.root_of(known, count, proof + [bytes(32)]) is None
                if proof:
                    assert ef_parts.root_of(known, count, proof[:-1]) is None
                if size < count:
                    moved = next(j for j in range(count) if j not in subset)
                    swapped = {**{k: v for k, v in known.items() if k != subset[0]}, moved: hashes[subset[0]]}
                    assert ef_parts.root_of(swapped, count, ef_parts.prove(levels, sorted(swapped))) != root
    assert ef_parts.root_of({}, 3, []) is None and ef_parts.root_of({5: hashes[0]}, 3, []) is None
