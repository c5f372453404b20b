"""What the dashboard shows of a treasurer-administered run: the vault's balance, the rate, the totals
claimed, and the points each client has claimed (its Participant record). Read with getMultipleAccounts;
a run is a treasurer run when its instance's main authority is the treasurer's Run PDA for its run id."""
from __future__ import annotations

import base64
from typing import Any

from solders.pubkey import Pubkey

from coordinator_sdk.spl_token import decode_mint, decode_token_account
from coordinator_sdk.treasurer import default_treasurer_codec


async def accounts(rpc: Any, keys: list[Pubkey]) -> list[bytes | None]:
    """Raw data of `keys` (getMultipleAccounts, 100 per call as nodes allow; None where missing)."""
    out: list[bytes | None] = []
    for i in range(0, len(keys), 100):
        values = (await rpc("getMultipleAccounts", [[str(k) for k in keys[i:i + 100]], {"encoding": "base64"}]))
        out += [None if v is None else base64.b64decode(v["data"][0]) for v in values["value"]]
    return out


def treasurer_run_for(run_id: str, main_authority: Pubkey) -> Pubkey | None:
    run = default_treasurer_codec().run_for(run_id)
    return run if run == main_authority else None


async def treasury_view(rpc: Any, run: Pubkey, wallets: list[str]) -> dict[str, Any] | None:
    """The treasury of treasurer Run `run`, with `claimed` points per wallet; None if the Run is gone or
    bound to another coordinator program than the configured one."""
    codec = default_treasurer_codec()
    users = [Pubkey.from_string(w) for w in wallets]
    raws = await accounts(rpc, [run, *(codec.participant_pda(run, u) for u in users)])
    if raws[0] is None:
        return None
    state = codec.decode_run(raws[0])
    if state.coordinator_program != codec.coordinator.program_id:
        return None  # a Run bound to another coordinator is not this run's treasury (whoever made it)
    vault_raw, mint_raw = await accounts(rpc, [state.collateral_vault, state.collateral_mint])
    claimed = {w: int(codec.decode_participant(raw).claimed_earned_points) if raw else 0
               for w, raw in zip(wallets, raws[1:], strict=True)}
    return {"run": str(run), "mint": str(state.collateral_mint), "vault": str(state.collateral_vault),
            "vault_balance": decode_token_account(vault_raw).amount if vault_raw else 0,
            "decimals": decode_mint(mint_raw).decimals if mint_raw else 0,
            "collateral_per_point": int(state.collateral_per_point),
            "total_claimed_points": int(state.total_claimed_earned_points),
            "total_claimed_amount": int(state.total_claimed_collateral_amount), "claimed": claimed}
