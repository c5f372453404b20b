"""Recomputation spot-checks (issue 25): every cheat fails, honest results pass over several steps, and
every withheld, broken or forged piece of a state fails the check (the rig: tests/verify_helpers.py)."""
from __future__ import annotations

from dataclasses import replace

import msgpack
import pytest
from verify_helpers import (
    DCFG,
    DRAWN,
    KEYS,
    KW,
    ROWS,
    SEED,
    STEPS,
    VERIFIER,
    N,
    check,
    drawn_leaves,
    forge,
    honest_run,
    lazy_result,
    random_result,
    schedule,
    serve,
)

from client.runner.verify import TOLERANCE_LEAVES, compare, recompute, restrict, verify
from client.training import ef_parts


def test_honest_results_pass_every_step_with_the_state_chain() -> None:
    r = honest_run()
    for step in range(STEPS):
        for i in range(N):
            v = check(i, step, r["published"][step][i])
            assert v.outcome == "pass", (step, i, v)
            assert v.agreement == 1.0 and v.event()["outcome"] == "pass"
            t = check(i, step, r["published"][step][i], mode="tolerance")
            assert t.outcome == "pass", (step, i, t)


def test_tolerance_mode_opens_a_sample_of_blocks_not_the_whole_state() -> None:
    """TOLERANCE_LEAVES blocks of this state (of the rig model's 106), and of the next one when the bits differ."""
    r = honest_run()
    step, i = 1, 0
    state, nxt = r["states"][step][i], r["states"][step + 1][i]
    drawn = ef_parts.choose_leaves(SEED, VERIFIER, KEYS[i], len(state.leaves), TOLERANCE_LEAVES)
    assert TOLERANCE_LEAVES < len(state.leaves)
    src = serve(state, nxt)
    v = check(i, step, r["published"][step][i], src, mode="tolerance", kwargs={"distro": DCFG, "micro_batch_size": 1})
    assert v.outcome == "pass" and src.log == ["leaves", "signs", "proof", "leaves"]
    assert src.fetched == len(state.open(drawn)) + len(state.signs) + len(nxt.open(drawn, False)) + len(nxt.open(drawn))


CHEATS = ["random", "copied", "copied-with-its-state", "replayed", "half-batch", "stale-weights"]


@pytest.mark.parametrize("cheat", CHEATS)
def test_every_cheat_fails_recomputation(cheat: str) -> None:
    r = honest_run()
    step, i, victim = 2, 1, 0
    state = r["states"][step][i]
    nxt = r["states"][step + 1][i]
    if cheat == "random":
        res = random_result(step, i)
    elif cheat == "copied":  # the victim's coefficients under the cheater's own commitment
        res = replace(r["published"][step][victim], sender=KEYS[i], ef=r["published"][step][i].ef)
    elif cheat == "copied-with-its-state":  # ... or with the victim's commitment, serving the victim's state
        res, state = replace(r["published"][step][victim], sender=KEYS[i]), r["states"][step][victim]
        nxt = r["states"][step + 1][victim]
    elif cheat == "replayed":  # its own earlier result, relabelled, under its current commitment
        res = replace(r["published"][step - 1][i], step=step, ef=r["published"][step][i].ef)
    elif cheat == "half-batch":
        res = lazy_result(step, i, r["weights"][step], r["batches"][step][i][:ROWS // 2])
    else:
        res = lazy_result(step, i, r["weights"][step - 1], r["batches"][step][i])
    every = len(ef_parts.leaf_index(r["layout"]))  # every block drawn: a full recomputation
    for mode in ("exact", "tolerance"):
        v = check(i, step, res, serve(state, nxt), mode=mode, leaves=every)
        assert v.outcome == "fail" and "recomputation" in v.reason, (cheat, mode, v)


@pytest.mark.parametrize("cheat", ["half-batch", "stale-weights"])
def test_a_sampled_check_fails_exactly_when_it_draws_a_block_the_cheat_changed(cheat: str) -> None:
    """With DRAWN blocks a check sees part of the result: it fails when a drawn block holds a coefficient or
    sign that differs from the honest recomputation and passes otherwise (here the next state served is the
    honest one, so only the result decides; bench/verification_bytes.py measures the demo's catch rates)."""
    r = honest_run()
    step, i = 2, 1
    batch = r["batches"][step][i]
    res = lazy_result(step, i, r["weights"][step], batch[:ROWS // 2]) if cheat == "half-batch" else \
        lazy_result(step, i, r["weights"][step - 1], batch)
    honest = recompute(r["weights"][step], schedule(), KW, step, batch, r["states"][step][i]).result
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
        v = verify(KEYS[i], res, serve(r["states"][step][i], r["states"][step + 1][i]), r["weights"][step],
                   schedule(), KW, batch, seed, VERIFIER, next_ef=r["published"][step + 1][i].ef)
        assert (v.outcome == "fail") == bool(dirty & set(drawn)), (n, v, sorted(dirty), drawn)
        outcomes.append(v.outcome)
    assert "fail" in outcomes and "pass" in outcomes


@pytest.mark.parametrize("cheat", ["half-batch", "stale-weights"])
def test_a_partial_cheat_fails_the_state_chain_whatever_blocks_are_drawn(cheat: str) -> None:
    """The state a partial cheat commits to for its next step follows from the gradient it computed, which
    differs from the honest one in every cell: each drawn block breaks the chain, so every check fails even
    when the drawn blocks' coefficients happen to agree."""
    r = honest_run()
    step, i = 2, 1
    batch = r["batches"][step][i]
    half = cheat == "half-batch"
    weights, rows = (r["weights"][step], batch[:ROWS // 2]) if half else (r["weights"][step - 1], batch)
    res = lazy_result(step, i, weights, rows)
    nxt = recompute(weights, schedule(), KW, step, rows, r["states"][step][i]).next_state()
    reasons: set[str] = set()
    for n in range(200):  # until a draw whose blocks' coefficients agree fails by the chain alone
        if "chain" in reasons and n >= 12:
            break
        v = verify(KEYS[i], res, serve(r["states"][step][i], nxt), r["weights"][step], schedule(), KW, batch,
                   n.to_bytes(8, "little"), VERIFIER, next_ef=nxt.ef)
        assert v.outcome == "fail", (n, v)
        reasons.add("chain" if "state chain broken" in v.reason else "result")
    assert "chain" in reasons


def test_withheld_wrong_or_broken_state_fails() -> None:
    r = honest_run()
    step, i = 1, 2
    res, state = r["published"][step][i], r["states"][step][i]
    assert "withheld" in check(i, step, res, serve()).reason
    assert "withheld" in check(i, step, res, serve(state, refuse={"signs"})).reason  # the sign map refused
    # services that answer with another trainer's opening, or with garbage
    other = r["states"][step][0]
    theirs = serve(state, answer=lambda kind, ef, leaves, w: kind == "opening" and other.open(leaves, w))
    v = check(i, step, res, theirs)
    assert v.outcome == "fail" and "ef commitment" in v.reason
    v = check(i, step, res, serve(state, answer=lambda kind, *a: b"\x90" if kind == "opening" else None))
    assert v.outcome == "fail" and "malformed" in v.reason
    # a state that commits to no sign map, in a run with the look-ahead
    bare = replace(state, signs=None)
    v = check(i, step, replace(res, ef=bare.ef), serve(bare, r["states"][step + 1][i]))
    assert v.outcome == "fail" and "no sign map" in v.reason
    # honest result, but the next result commits to a state that does not follow from this step
    v = check(i, step, res, serve(state, r["states"][step + 1][0]), next_ef=r["published"][step + 1][0].ef)
    assert v.outcome == "fail" and "state chain broken" in v.reason
    # the next state refused altogether
    v = check(i, step, res, serve(state))
    assert v.outcome == "fail" and "state chain broken" in v.reason and "withheld" in v.reason


def test_forged_pieces_of_a_state_fail_the_check() -> None:
    """Each forged piece the verifier draws is a failed check: a block from another state (in a tree the
    result commits to), a block of the wrong size, a sign map of the wrong size or one that disagrees with δ,
    a block swapped in under the true root (the proof no longer leads to it), a proof cut short or padded."""
    r = honest_run()
    step, i = 2, 1
    state, other = r["states"][step][i], r["states"][step - 1][i]
    # a drawn block whose δ moved since the other state (a never-seen token's embedding block stays zero)
    first = next(k for k in drawn_leaves(i) if state.leaves[k] != other.leaves[k])
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
        "a block from another state": forge(state, {first: other.leaves[first]}),
        "a block of the wrong size": forge(state, {first: state.leaves[first][:-4]}),
        "a sign map of the wrong size": forge(state, signs=state.signs[:100]),
        "a sign map that disagrees with δ": forge(state, signs=bytes(flipped)),
    }
    for what, f in forged.items():
        res = replace(r["published"][step][i], ef=f.ef)
        v = check(i, step, res, serve(f, r["states"][step + 1][i]))
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
        v = check(i, step, r["published"][step][i], serve(state, r["states"][step + 1][i], answer=tampered(change)))
        assert v.outcome == "fail" and "malformed" in v.reason, (what, v)
