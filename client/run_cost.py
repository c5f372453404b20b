"""What `psyche run create` costs in SOL, said before anything is sent, and refused up front when the wallet
cannot pay it.

Why: the coordinator account alone is 134,592 bytes, whose rent-exempt minimum is about 0.94 SOL. A wallet
holding less used to get halfway and fail with the runtime's `{'InstructionError': [0, {'Custom': 1}]}`
(the System program's "insufficient lamports"), which says nothing about money. Rent is asked of the node
(getMinimumBalanceForRentExemption), so the figure is the cluster's, not a constant of ours."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

LAMPORTS_PER_SOL = 1_000_000_000
FEE_PER_SIGNATURE = 5_000  # lamports: Solana's base fee (priority fees, if any, come on top)


@dataclass(frozen=True)
class Cost:
    """Lamports per item: rent of each account the run creates, and the base fees of its transactions."""
    items: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.items.values())

    def describe(self) -> str:
        parts = ", ".join(f"{name} {sol(v)}" for name, v in self.items.items())
        return f"creating this run costs {sol(self.total)} SOL ({parts})"


def sol(lamports: int) -> str:
    """Lamports as SOL with every significant digit (0.937656200, not 0.94: a cost must add up)."""
    return f"{lamports / LAMPORTS_PER_SOL:.9f}".rstrip("0").rstrip(".") if lamports else "0"


def transactions(open_to_all: bool, paused: bool) -> list[int]:
    """Signatures per transaction `run create` sends: create (wallet + the new coordinator account), then
    authorize (open runs), config, metadata, model, checkpoint, rates, and resume unless --paused."""
    sigs = [2]
    sigs += [1] * (int(open_to_all) + 5 + int(not paused))
    return sigs


async def run_create_cost(rent: Callable[[int], Awaitable[int]], account_sizes: dict[str, int], treasurer: bool,
                          open_to_all: bool, paused: bool, fee_per_signature: int = FEE_PER_SIGNATURE) -> Cost:
    """`rent(size)`: the node's rent-exempt minimum for `size` bytes. `account_sizes`: the coordinator's
    (CoordinatorAccount, RunInstance, Authorization) and, for a treasurer run, Run and the vault's 165."""
    names = ["coordinator account", "run instance"]
    if open_to_all:
        names.append("join authorization")
    if treasurer:
        names += ["treasurer Run", "reward vault"]
    items = {name: await rent(account_sizes[name]) for name in names}
    n_sigs = sum(transactions(open_to_all, paused))
    items[f"fees ({n_sigs} signatures)"] = n_sigs * fee_per_signature
    return Cost(items)


def sizes(coordinator_codec: object, treasurer_codec: object | None) -> dict[str, int]:
    """Account sizes from the IDLs (discriminator included), so a layout change changes the quote."""
    accounts = coordinator_codec.program.account  # type: ignore[attr-defined]
    out = {"coordinator account": accounts["CoordinatorAccount"].size, "run instance": accounts["RunInstance"].size,
           "join authorization": accounts["Authorization"].size}
    if treasurer_codec is not None:
        from coordinator_sdk.spl_token import TOKEN_ACCOUNT_SIZE

        out |= {"treasurer Run": treasurer_codec.program.account["Run"].size,  # type: ignore[attr-defined]
                "reward vault": TOKEN_ACCOUNT_SIZE}
    return out
