"""A typed, read-only view of a decoded coordinator account, for the clients.

The decoders (layout_view's struct reader, fast_decode's numpy view, anchorpy) give the same attribute names
but untyped values: numpy scalars or ints, and enums as plain numbers. CoordinatorView wraps whichever one a
client holds and gives the fields a client branches on with their real types (RunState, ClientState, int,
bytes); every other field is read through unchanged from the wrapped object (`raw`). It is read-only and
costs nothing until a field is read. Nothing heavy is imported: the CLI's read-only commands use it too."""
from __future__ import annotations

from typing import Any, Protocol

from coordinator_sdk.layout_view import column
from coordinator_sdk.model.state import IN_ROUND, NUM_ROUNDS, ClientState, RunState


class RoundFields(Protocol):
    """One round of the 4-slot ring as the decoders give it."""
    height: int
    clients_len: int
    data_index: int
    random_seed: int
    num_witnesses: int
    witnesses: Any


class ConfigFields(Protocol):
    """The run's config as the decoders give it (read numbers with int(): numpy scalars are possible)."""
    warmup_time: int
    cooldown_time: int
    max_round_train_time: int
    round_witness_time: int
    epoch_time: int
    total_steps: int
    init_min_clients: int
    min_clients: int
    witness_nodes: int
    waiting_for_members_extra_time: int
    verifiers_per_mille: int


class CoordinatorView:
    """Typed access to a decoded CoordinatorAccount; other attributes fall through to the decoded object."""
    __slots__ = ("raw",)

    def __init__(self, raw: Any) -> None:
        object.__setattr__(self, "raw", raw.raw if isinstance(raw, CoordinatorView) else raw)

    def __getattr__(self, name: str) -> Any:  # only for fields without a typed property below
        if name == "raw":  # not set yet (copy, pickle): no recursion
            raise AttributeError(name)
        return getattr(self.raw, name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"CoordinatorView is read-only (tried to set {name})")

    def __reduce__(self) -> tuple:  # copy, deepcopy and pickle rebuild it through __init__
        return (CoordinatorView, (self.raw,))

    def __repr__(self) -> str:
        return f"CoordinatorView({self.run_state.name}, epoch {self.epoch}, step {self.step}, nonce {self.nonce})"

    # ---- phase and counters ----------------------------------------------------------------------------
    @property
    def run_state(self) -> RunState:
        return RunState(int(self.raw.run_state))

    @property
    def in_round(self) -> bool:
        return self.run_state in IN_ROUND

    @property
    def version(self) -> int:
        return int(self.raw.version)

    @property
    def epoch(self) -> int:
        return int(self.raw.epoch)

    @property
    def step(self) -> int:
        return int(self.raw.step)

    @property
    def nonce(self) -> int:
        return int(self.raw.nonce)

    @property
    def next_active(self) -> int:
        return int(self.raw.next_active)

    @property
    def run_state_start_unix_timestamp(self) -> int:
        return int(self.raw.run_state_start_unix_timestamp)

    @property
    def rounds_head(self) -> int:
        return int(self.raw.rounds_head)

    @property
    def num_clients(self) -> int:
        return int(self.raw.num_clients)

    @property
    def num_epoch_clients(self) -> int:
        return int(self.raw.num_epoch_clients)

    @property
    def num_exited_clients(self) -> int:
        return int(self.raw.num_exited_clients)

    @property
    def checkpoint_len(self) -> int:
        return int(self.raw.checkpoint_len)

    @property
    def config(self) -> ConfigFields:
        return self.raw.config

    # ---- rounds -------------------------------------------------------------------------------------
    @property
    def current_round(self) -> RoundFields:
        return self.raw.rounds[self.rounds_head]

    def round_at(self, back: int) -> RoundFields:
        """The round `back` rounds before the current one in the 4-slot ring."""
        return self.raw.rounds[(self.rounds_head + NUM_ROUNDS - back) % NUM_ROUNDS]

    # ---- clients ------------------------------------------------------------------------------------
    def epoch_signer(self, i: int) -> bytes:
        return bytes(self.raw.epoch_clients[i].signer)

    def epoch_p2p(self, i: int) -> bytes:
        return bytes(self.raw.epoch_clients[i].p2p)

    def epoch_client_state(self, i: int) -> ClientState:
        return ClientState(int(self.raw.epoch_clients[i].state))

    def epoch_signers(self) -> list[bytes]:
        """Signers of the current epoch's clients, in the chain's order."""
        return self.epoch_column("signer")

    def epoch_column(self, name: str) -> list[bytes]:
        """The key field `name` ("signer" or "p2p") of each of the current epoch's clients, in order: sliced
        from the account's bytes when it is a layout view (read per account update, O(N) each)."""
        n = self.num_epoch_clients
        col = column(self.raw, "epoch_clients", name, n)
        if col is not None:
            return col
        return [bytes(getattr(self.raw.epoch_clients[i], name)) for i in range(n)]

    def epoch_states(self) -> list[int]:
        """The state (a ClientState value) of each of the current epoch's clients, in order."""
        n = self.num_epoch_clients
        col = column(self.raw, "epoch_clients", "state", n)
        if col is not None:
            return [b[0] for b in col]
        return [int(self.raw.epoch_clients[i].state) for i in range(n)]

    def epoch_index(self, signer: bytes) -> int | None:
        """`signer`'s index among the current epoch's clients, None when it is not one."""
        try:
            return self.epoch_signers().index(bytes(signer))
        except ValueError:
            return None

    def pending_members(self) -> int:
        """Registry clients that joined for the next epoch (active == next_active)."""
        nxt = self.next_active
        return sum(int(self.raw.clients[i].active) == nxt for i in range(self.num_clients))

    def checkpoint_text(self) -> str:
        return bytes(self.raw.checkpoint[:self.checkpoint_len]).decode("utf-8", errors="replace")


def view(state: Any) -> CoordinatorView:
    """The typed view of a decoded account (the same view when given one)."""
    return state if isinstance(state, CoordinatorView) else CoordinatorView(state)
