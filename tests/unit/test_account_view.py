"""coordinator_sdk.account_view: typed reads over any decoded account, everything else read through."""
from __future__ import annotations

import copy
from types import SimpleNamespace as NS

import pytest

from coordinator_sdk.account_view import CoordinatorView, view
from coordinator_sdk.model.state import ClientState, RunState


def _account(**over):
    clients = [NS(signer=bytes([i]) * 32, p2p=bytes([100 + i]) * 32, state=s, registry_index=i)
               for i, s in enumerate((0, 1, 0))]
    rounds = [NS(height=h, clients_len=3, random_seed=7, num_witnesses=0, witnesses=[]) for h in (4, 1, 2, 3)]
    base = dict(run_state=3, epoch=2, step=9, nonce=41, version=1, next_active=5, rounds_head=0, rounds=rounds,
                run_state_start_unix_timestamp=1000, num_clients=2, num_epoch_clients=3, num_exited_clients=0,
                epoch_clients=clients, clients=[NS(active=5), NS(active=4)], checkpoint=list(b"hub:x/y\0\0"),
                checkpoint_len=7, config=NS(witness_nodes=2))
    base.update(over)
    return NS(**base)


def test_typed_fields_and_read_through() -> None:
    st = view(_account())
    assert st.run_state is RunState.RoundTrain and st.in_round
    assert (st.epoch, st.step, st.nonce, st.version) == (2, 9, 41, 1)
    assert st.epoch_client_state(1) is ClientState.Dropped
    assert st.epoch_index(bytes([2]) * 32) == 2 and st.epoch_index(b"x" * 32) is None
    assert st.epoch_signers() == [bytes([i]) * 32 for i in range(3)]
    assert st.current_round.height == 4 and st.round_at(1).height == 3  # the ring wraps
    assert st.pending_members() == 1 and st.checkpoint_text() == "hub:x/y"
    assert st.config.witness_nodes == 2 and st.clients[1].active == 4  # not typed: read through


def test_read_only_idempotent_and_copyable() -> None:
    raw = _account(run_state=6)
    st = view(raw)
    assert view(st) is st and CoordinatorView(st).raw is raw
    with pytest.raises(AttributeError):
        st.step = 3
    assert copy.copy(st).run_state is RunState.Finished
    raw.step = 10  # a view reads its account when asked, never a copy
    assert st.step == 10
    with pytest.raises(AttributeError):
        _ = st.no_such_field
