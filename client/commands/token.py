"""`psyche token create-mint` / `psyche token mint`: an SPL token to test treasurer runs with, on the
localnet only (the commands refuse any other RPC)."""
from __future__ import annotations

import click
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from client.cli_common import keypair_option, load_wallet, url_option
from client.commands.landing import unit_price_option
from client.commands.treasury_common import parse_amount, require_localnet, run_sdk
from client.commands.wallet import resolve_pubkey
from coordinator_sdk import spl_token as spl
from coordinator_sdk.rpc_pool import RpcPool
from coordinator_sdk.sender import TransactionSender


@click.group()
def token() -> None:
    """SPL tokens for local testing (localnet only)."""


@token.command("create-mint")
@click.option("--decimals", type=click.IntRange(0, 9), default=6, show_default=True)
@url_option
@keypair_option
@unit_price_option
def create_mint(decimals: int, url: str, keypair_path: str) -> None:
    """Create a mint whose mint and freeze authority is the wallet; prints its address."""
    require_localnet(url, "create-mint")
    wallet, mint = load_wallet(keypair_path), Keypair()

    async def work() -> str:
        async with RpcPool([url]) as pool:
            rent = (await pool.call(lambda c: c.get_minimum_balance_for_rent_exemption(spl.MINT_SIZE))).value
            ixs = spl.create_mint_ixs(wallet.pubkey(), mint.pubkey(), wallet.pubkey(), decimals, rent,
                                      freeze_authority=wallet.pubkey())
            return await TransactionSender(pool).send(ixs, [wallet, mint])

    sig = run_sdk(work, wallet.pubkey())
    click.echo(f"mint {mint.pubkey()} ({decimals} decimals, authority {wallet.pubkey()})\nsignature {sig}")


@token.command("mint")
@click.argument("mint")
@click.argument("amount")
@click.argument("recipient", required=False)
@url_option
@keypair_option
@unit_price_option
def mint_tokens(mint: str, amount: str, recipient: str | None, url: str, keypair_path: str) -> None:
    """Mint AMOUNT tokens of MINT to RECIPIENT's associated token account (default: the wallet)."""
    require_localnet(url, "mint")
    wallet = load_wallet(keypair_path)
    mint_key = resolve_pubkey(mint)
    owner: Pubkey = resolve_pubkey(recipient) if recipient else wallet.pubkey()

    async def work() -> tuple[str, int, int]:
        async with RpcPool([url]) as pool:
            raw = (await pool.call(lambda c: c.get_account_info(mint_key))).value
            if raw is None:
                raise click.BadParameter(f"mint {mint_key} does not exist on {url}")
            info = spl.decode_mint(bytes(raw.data))
            units = parse_amount(amount, info.decimals)
            ata = spl.associated_token_address(owner, mint_key)
            sig = await TransactionSender(pool).send([
                spl.create_ata_idempotent(wallet.pubkey(), owner, mint_key),
                spl.mint_to_ix(mint_key, ata, wallet.pubkey(), units, info.decimals)], [wallet])
            acc = (await pool.call(lambda c: c.get_account_info(ata))).value
            return sig, spl.decode_token_account(bytes(acc.data)).amount, info.decimals

    sig, balance, decimals = run_sdk(work, wallet.pubkey())
    click.echo(f"minted {amount} to {owner}\nbalance {spl.format_amount(balance, decimals)}\nsignature {sig}")
