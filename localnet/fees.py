"""Transaction fees as a validator computes them: the signature fee plus the priority fee set through the
ComputeBudget program (unit price x compute-unit limit). LiteSVM charges only the former."""
from __future__ import annotations

from solders.message import Message, MessageV0
from solders.pubkey import Pubkey

COMPUTE_BUDGET = Pubkey.from_string("ComputeBudget111111111111111111111111111111")


def unit_price_of(message: Message | MessageV0) -> int:
    """The compute-unit price (micro-lamports) set through the ComputeBudget program, or 0."""
    keys = list(message.account_keys)
    for ix in message.instructions:
        data = bytes(ix.data)
        if ix.program_id_index < len(keys) and keys[ix.program_id_index] == COMPUTE_BUDGET \
                and len(data) == 9 and data[0] == 3:
            return int.from_bytes(data[1:], "little")
    return 0


def compute_unit_limit_of(message: Message | MessageV0) -> int:
    """The compute-unit limit a transaction asks for (SetComputeUnitLimit), else the default: 200k per
    instruction that is not a ComputeBudget one, at most 1.4M."""
    keys = list(message.account_keys)
    others = 0
    for ix in message.instructions:
        data = bytes(ix.data)
        if ix.program_id_index < len(keys) and keys[ix.program_id_index] == COMPUTE_BUDGET:
            if len(data) == 5 and data[0] == 2:
                return min(1_400_000, int.from_bytes(data[1:], "little"))
        else:
            others += 1
    return min(1_400_000, 200_000 * others)


def priority_fee_of(message: Message | MessageV0) -> int:
    """Lamports a validator charges on top of the signature fee: unit price x limit, micro-lamports rounded up."""
    return -(-unit_price_of(message) * compute_unit_limit_of(message) // 1_000_000)
