"""Recomputation spot-checks (issue 25), how a check runs: tolerance mode against other summation orders and
a partial batch, what a check fetches, what it recomputes, the model copies it reuses, a synchronous run's
state without a sign map (the rig: tests/verify_helpers.py)."""
from __future__ import annotations

import copy
from dataclasses import replace

import torch
import verify_helpers as rig
from training_helpers import pydoc_samples

from client.runner.phase_verify import restore, snapshot
from client.runner.verify import LocalSource, compare, recompute, restrict, targets, verify
from client.training import ef_parts
from client.training.compress import SparseCoeffs
from client.training.config import ModelConfig
from client.training.distro import result_layout
from client.training.model import build_model
from client.training.result_codec import decode_result, encode_result
from client.training.trainer import Trainer


def test_compare_tolerance_counts_flipped_signs() -> None:
    r = rig.honest_run()
    res = r["published"][1][0]
    mine = recompute(r["weights"][1], rig.schedule(), rig.KW, 1, r["batches"][1][0], r["states"][1][0]).result
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
    other hardware) derives other state bits: when the trainer does not rig.serve the next state's blocks exact
    mode reports a broken chain; when it does (as its services do) they are checked within STATE_RTOL and
    every honest result passes, in exact mode (the 1-bit results themselves came out identical) and in
    tolerance mode."""
    r = rig.honest_run()
    kw = {"distro": rig.DCFG, "micro_batch_size": 1}
    exact, served, tol = [], [], []
    for step in range(rig.STEPS - 1):
        for i in range(rig.N):
            own, nxt = r["states"][step][i], r["states"][step + 1][i]
            proof_only = rig.serve(own, nxt, refuse={f"leaves of {nxt.ef.hex()}"})  # none of the next state's blocks
            exact.append(rig.check(i, step, r["published"][step][i], proof_only, kwargs=kw))
            served.append(rig.check(i, step, r["published"][step][i], kwargs=kw))
            tol.append(rig.check(i, step, r["published"][step][i], kwargs=kw, mode="tolerance"))
    assert all(v.outcome == "pass" for v in tol + served), tol + served
    assert any("state chain broken" in v.reason for v in exact)  # without the served blocks: bits differ
    assert any("within tolerance" in v.reason for v in served)
    # the served next state must still be the committed one, and close to the derived one
    v = rig.check(0, 1, r["published"][1][0], rig.serve(r["states"][1][0], r["states"][2][1]),
               next_ef=r["published"][2][1].ef, kwargs=kw, mode="tolerance")
    assert v.outcome == "fail" and "state chain broken" in v.reason


def test_tolerance_mode_catches_a_three_quarter_batch_by_the_state_chain() -> None:
    """Three quarters of the batch agrees with the recomputation on ~0.92 of the (index, sign) pairs, above
    the 0.9 bar; the state it then commits to for the next step is not the derived one within STATE_RTOL."""
    r = rig.honest_run()
    step, i = 2, 1
    kw = {"distro": rig.DCFG, "micro_batch_size": 1}
    for rows, outcome in ((rig.ROWS * 3 // 4, "fail"), (rig.ROWS, "pass")):
        lazy = recompute(r["weights"][step], rig.schedule(), rig.KW, step, r["batches"][step][i][:rows],
                         r["states"][step][i])
        v = rig.check(i, step, rig.lazy_result(step, i, r["weights"][step], r["batches"][step][i][:rows]),
                   rig.serve(r["states"][step][i], lazy.next_state()), next_ef=lazy.next_state().ef, kwargs=kw,
                   mode="tolerance")
        assert v.outcome == outcome, (rows, v)
        if outcome == "fail":
            assert v.agreement is not None and v.agreement >= 0.9 and "state chain broken" in v.reason


def test_only_the_next_proof_is_fetched_when_the_chain_holds() -> None:
    """An honest rig.check in exact mode, in the trainer's own summation order, fetches an opening of this state at
    DRAWN blocks, its sign map and the next state's proof at them, nothing more; a verifier summing in another
    order also fetches the next state's drawn blocks; a synchronous run (no look-ahead) commits to no sign map
    and its rig.check fetches none; a throwaway (owned) model gives the verdict of a copied one."""
    r = rig.honest_run()
    step, i = 1, 2
    state, nxt = r["states"][step][i], r["states"][step + 1][i]
    drawn = rig.drawn_leaves(i)
    src = rig.serve(state, nxt)
    v = rig.check(i, step, r["published"][step][i], src)
    assert v.outcome == "pass" and v.reason == "recomputed"
    assert src.log == ["leaves", "signs", "proof"]
    assert src.fetched == len(state.open(drawn)) + len(state.signs) + len(nxt.open(drawn, False))
    assert src.fetched < (len(state.signs) + sum(map(len, state.leaves))) / 4  # the rig's tiny model: ~1/9
    owned = copy.deepcopy(r["weights"][step])
    v = verify(rig.KEYS[i], r["published"][step][i], rig.serve(state, nxt), owned, rig.schedule(), rig.KW,
               r["batches"][step][i], rig.SEED, rig.VERIFIER, next_ef=nxt.ef, owned=True)
    assert v.outcome == "pass"
    src = rig.serve(state, nxt)
    v = rig.check(i, step, r["published"][step][i], src, kwargs={"distro": rig.DCFG, "micro_batch_size": 1})
    assert v.outcome == "pass" and "within tolerance" in v.reason
    assert src.log == ["leaves", "signs", "proof", "leaves"]


def test_a_check_steps_only_the_parameters_it_opened() -> None:
    """A recomputation from an opening folds and extracts only the parameters with a drawn block (the rest of
    its DisTrO step would be thrown away): on those, result and next state are the full recomputation's bits."""
    r = rig.honest_run()
    step, i = 2, 1
    state, drawn = r["states"][step][i], rig.drawn_leaves(i)
    opening = replace(ef_parts.parse_opening(state.open(drawn), r["layout"], state.ef, drawn), signs=state.signs)
    part = recompute(r["weights"][step], rig.schedule(), rig.KW, step, r["batches"][step][i], opening)
    full = recompute(r["weights"][step], rig.schedule(), rig.KW, step, r["batches"][step][i], state)
    opened = {ef_parts.leaf_index(r["layout"])[k][0] for k in drawn}
    assert set(part.result.params) == opened and opened < set(full.result.params)
    mine, theirs = restrict(part.result, r["layout"], drawn), restrict(full.result, r["layout"], drawn)
    for n, q in theirs.params.items():
        assert torch.equal(mine.params[n].idx, q.idx) and torch.equal(mine.params[n].val, q.val), n
    assert part.next_leaves == {k: full.next_leaves[k] for k in drawn}


def test_a_model_copy_an_earlier_check_trained_gives_the_next_check_the_same_verdict() -> None:
    """The runner reuses the copy a finished rig.check trained in place (`restore` with spares): loaded with the
    next snapshot it holds exactly those weights, and its checks come out as a new copy's, pass and fail."""
    r = rig.honest_run()
    skeleton = copy.deepcopy(r["weights"][0])
    used = restore(skeleton, snapshot(r["weights"][1]))
    assert rig.check(0, 1, r["published"][1][0], model=used).outcome == "pass"  # trained in place (owned)
    spares = [used]
    again = restore(skeleton, snapshot(r["weights"][2]), spares)
    assert again is used and not spares
    want = r["weights"][2].state_dict()
    assert all(torch.equal(v, want[k]) for k, v in again.state_dict().items())
    assert all(p.grad is None for p in again.parameters())
    assert rig.check(1, 2, r["published"][2][1], model=again).outcome == "pass"
    again = restore(skeleton, snapshot(r["weights"][2]), [again])
    assert rig.check(2, 2, rig.random_result(2, 2), model=again).outcome == "fail"


def test_a_synchronous_run_commits_to_no_sign_map_and_its_checks_fetch_none() -> None:
    """Without the look-ahead nothing outside the drawn blocks enters the recomputation: the state commits
    to 32 zero bytes in place of the sign map, and a rig.check costs an opening and a proof only."""
    torch.manual_seed(0)
    base = build_model(ModelConfig.from_dict(rig.MODEL), seed=0)
    layout = result_layout(base, rig.DCFG)
    kw = {"distro": rig.DCFG, "lookahead": False}
    t = Trainer(copy.deepcopy(base), rig.schedule(), "distro", **kw)
    batches = [pydoc_samples()[4 * s:4 * s + 4] for s in range(3)]
    weights, outs = [], []
    for step in range(3):
        weights.append(copy.deepcopy(t.model))
        outs.append(t.train_step(step, batches[step]))
        t.apply([outs[-1].result], step)
    assert all(o.result.state.signs is None and o.result.state.signs_hash == bytes(32) for o in outs)
    res = decode_result(encode_result(outs[1].result, layout, rig.DCFG, sender=rig.KEYS[0]), layout, rig.DCFG)
    src = LocalSource(outs[1].result.state, outs[2].result.state)
    v = verify(rig.KEYS[0], res, src, weights[1], rig.schedule(), kw, batches[1], rig.SEED, rig.VERIFIER,
               next_ef=outs[2].result.ef)
    assert v.outcome == "pass" and v.reason == "recomputed" and src.log == ["leaves", "proof"]
    # the same state checked as if the run trained with the look-ahead: no sign map to rebuild it from
    v = verify(rig.KEYS[0], res, src, weights[1], rig.schedule(), rig.KW, batches[1],
               rig.SEED, rig.VERIFIER, next_ef=outs[2].result.ef)
    assert v.outcome == "fail" and "no sign map" in v.reason
