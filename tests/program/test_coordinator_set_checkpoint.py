"""`set_checkpoint`: the owner names the weights a run starts from, only while it is halted; every refusal
is named and leaves the accounts byte-identical."""
from __future__ import annotations

from solders.keypair import Keypair
from test_coordinator_negative import CFG, expect, to_round_train

from devtools.litesvm_harness import CoordinatorSvm

REF = "sha256:3yZe7d@/srv/runs/demo/init"


def _ref(h: CoordinatorSvm, run) -> bytes:
    st = h.state(run)
    return bytes(st.checkpoint[:st.checkpoint_len])


def test_owner_sets_the_initial_checkpoint_while_halted() -> None:
    h = CoordinatorSvm()
    run = h.create_run("ckpt", config=CFG, rates=(1000, 7))
    nonce = h.state(run).nonce
    assert h.owner(run, "set_checkpoint", REF).ok
    assert _ref(h, run) == REF.encode() and h.state(run).nonce == nonce + 1
    assert h.owner(run, "set_checkpoint", "x" * 127).ok  # the longest reference fits
    assert h.owner(run, "set_checkpoint", "short").ok  # a shorter one leaves no tail of the longer
    assert bytes(h.state(run).checkpoint) == b"short" + bytes(123)


def test_set_checkpoint_refusals() -> None:
    h = CoordinatorSvm()
    run = h.create_run("ckpt-neg", config=CFG, rates=(1000, 7))
    intruder = h.fund(Keypair())
    ix = h.codec.owner_ix("set_checkpoint", intruder.pubkey(), run.instance, run.account, REF)
    expect(h, run, "Unauthorized", lambda: h.send(ix, [intruder]))
    expect(h, run, "StringTooLong", lambda: h.owner(run, "set_checkpoint", "x" * 128))
    to_round_train(h, run, 2)
    expect(h, run, "NotHalted", lambda: h.owner(run, "set_checkpoint", REF))
