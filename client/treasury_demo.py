"""A run whose rewards are real tokens, end to end on the local validator over JSON-RPC: an operator makes a
mint, creates a treasurer-administered run and funds its vault; three clients play an epoch and earn
points; each claims its tokens; `psyche rewards show` prints the table.

    python -m client.treasury_demo --rpc http://127.0.0.1:8899
"""
from __future__ import annotations

import argparse
import asyncio
import time

from solders.keypair import Keypair

from client.chain_demo import CONFIG, play_epoch
from coordinator_sdk import spl_token as spl
from coordinator_sdk.client import Coordinator
from coordinator_sdk.rpc_pool import RpcPool
from coordinator_sdk.sender import TransactionSender
from coordinator_sdk.treasurer import Treasurer

DECIMALS = 6
PER_POINT = 1000  # base units per point: 1 point = 0.001 token


async def airdrop(pool: RpcPool, kp: Keypair, lamports: int = 5 * 10**9) -> None:
    sig = (await pool.call(lambda c: c.request_airdrop(kp.pubkey(), lamports))).value
    await pool.call(lambda c: c.confirm_transaction(sig))


async def make_mint(pool: RpcPool, authority: Keypair, supply_to_authority: int) -> Keypair:
    """A fresh mint (authority = `authority`) with `supply_to_authority` base units in its token account."""
    mint = Keypair()
    rent = (await pool.call(lambda c: c.get_minimum_balance_for_rent_exemption(spl.MINT_SIZE))).value
    ata = spl.associated_token_address(authority.pubkey(), mint.pubkey())
    await TransactionSender(pool).send([
        *spl.create_mint_ixs(authority.pubkey(), mint.pubkey(), authority.pubkey(), DECIMALS, rent),
        spl.create_ata_idempotent(authority.pubkey(), authority.pubkey(), mint.pubkey()),
        spl.mint_to_ix(mint.pubkey(), ata, authority.pubkey(), supply_to_authority, DECIMALS)], [authority, mint])
    return mint


async def create_treasury_run(rpc: str, run_id: str, operator: Keypair, mint: Keypair, vault_funding: int) -> Treasurer:
    """A treasurer run with the chain demo's config, 900 points per epoch, unpaused and funded."""
    t = Treasurer(rpc, run_id, operator)
    await t.create_run(mint.pubkey(), collateral_per_point=PER_POINT)
    await t.update(config=CONFIG, epoch_rates=(900, 10))
    await t.set_paused(False)
    await t.fund(vault_funding)
    return t


async def demo(rpc: str, run_id: str) -> None:
    operator = Keypair()
    async with RpcPool([rpc]) as pool:
        await airdrop(pool, operator)
        mint = await make_mint(pool, operator, 10**6 * 10**DECIMALS)
        t = await create_treasury_run(rpc, run_id, operator, mint, 1_000 * 10**DECIMALS)
        print(f"run {run_id!r}: treasurer Run {t.run}, mint {mint.pubkey()}, vault funded with 1000 tokens")
        clients = [Coordinator(rpc, run_id, Keypair()) for _ in range(3)]
        for c in clients:
            await airdrop(pool, c.wallet)
        await play_epoch(t.coordinator, clients)
        for c in clients:
            async with Treasurer(rpc, run_id, c.wallet) as mine:
                sig, standing = await mine.claim_all()
                balance = await mine.token_balance(c.wallet.pubkey())
                print(f"  {c.wallet.pubkey()} claimed {standing.claimable_points} points: "
                      f"balance {spl.format_amount(balance, DECIMALS)} tokens ({sig})")
            await c.close()
        await t.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rpc", default="http://127.0.0.1:8899")
    ap.add_argument("--run-id", default=f"tokens-{int(time.time())}")
    args = ap.parse_args()
    asyncio.run(demo(args.rpc, args.run_id))
    from client.cli import main as cli  # the token holders' view, as `psyche rewards show` prints it

    cli.main(["rewards", "show", "--run-id", args.run_id, "-u", args.rpc], standalone_mode=False)


if __name__ == "__main__":
    main()
