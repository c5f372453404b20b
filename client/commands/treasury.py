"""Token holders and operators of treasurer-administered runs: `psyche rewards show`, `psyche rewards claim`
and `psyche run fund` (a command the `run` group carries)."""
from __future__ import annotations

import click
from solders.keypair import Keypair

from client.cli_common import CommandFailed, emit_json, keypair_option, load_wallet, output_option, url_option
from client.commands.landing import unit_price_option
from client.commands.treasury_common import parse_amount, run_sdk
from client.commands.wallet import resolve_pubkey
from coordinator_sdk.spl_token import format_amount
from coordinator_sdk.treasurer import Rewards, Treasurer

run_id_option = click.option("--run-id", required=True, help="The run's id (as given at creation).")


def _row(r: Rewards) -> str:
    return (f"{str(r.user):<44} {r.earned:>10} {r.penalised:>9} {r.claimed_points:>9} {r.claimable_points:>10} "
            f"{format_amount(r.claimable_amount, r.decimals):>18}")


@click.group()
def rewards() -> None:
    """Points and token rewards of treasurer-administered runs."""


@rewards.command("show")
@run_id_option
@click.argument("wallet", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (same as --output json).")
@output_option
@url_option
def show(run_id: str, wallet: str | None, as_json: bool, output: str, url: str) -> None:
    """Points earned, penalised, claimed, and claimable tokens of WALLET (a keypair file or public key),
    or of every participant; and the vault's balance. Read-only: works against any RPC."""
    user = resolve_pubkey(wallet) if wallet else None

    async def work():
        async with Treasurer(url, run_id, Keypair()) as t:
            run = await t.fetch_run()
            mint = await t.mint()
            rows = [await t.rewards(user)] if user else await t.rewards_table()
            balances = await t.token_balances([r.user for r in rows])
            return run, mint, rows, balances, await t.vault_balance()

    run, mint, rows, balances, vault = run_sdk(work)
    if as_json or output == "json":
        emit_json({"run_id": run_id, "mint": str(run.collateral_mint), "vault": str(run.collateral_vault),
                   "vault_balance": vault, "decimals": mint.decimals, "collateral_per_point": run.collateral_per_point,
                   "total_claimed_points": run.total_claimed_earned_points,
                   "total_claimed_amount": run.total_claimed_collateral_amount,
                   "participants": [{**r.as_json(), "token_balance": balances[r.user]} for r in rows]})
        return
    d = mint.decimals
    click.echo(f"run {run_id}: mint {run.collateral_mint}, {run.collateral_per_point} base unit(s) per point")
    click.echo(f"vault {run.collateral_vault}: {format_amount(vault, d)} tokens; claimed so far "
               f"{run.total_claimed_earned_points} points = {format_amount(run.total_claimed_collateral_amount, d)}")
    click.echo(f"{'wallet':<44} {'earned':>10} {'penalised':>9} {'claimed':>9} {'claimable':>10} "
               f"{'claimable tokens':>18}")
    for r in rows:
        click.echo(_row(r))
    if rows and sum(r.claimable_amount for r in rows) > vault:
        click.echo("warning: the vault holds less than what is claimable; the operator must fund it "
                   f"(`psyche run fund {run_id} AMOUNT`)")


@rewards.command("claim")
@run_id_option
@keypair_option
@url_option
@unit_price_option
def claim(run_id: str, keypair_path: str, url: str) -> None:
    """Claim everything claimable: creates the participant record and the token account if missing;
    prints the signature and the new balance."""
    wallet = load_wallet(keypair_path)

    async def work():
        async with Treasurer(url, run_id, wallet) as t:
            sig, standing = await t.claim_all()
            return sig, standing, await t.token_balance(wallet.pubkey())

    sig, standing, balance = run_sdk(work, wallet.pubkey())
    d = standing.decimals
    if sig is None:
        click.echo(f"nothing to claim: {standing.earned} earned, {standing.penalised} penalised, "
                   f"{standing.claimed_points} already claimed; balance {format_amount(balance, d)}")
        return
    click.echo(f"claimed {standing.claimable_points} points = {format_amount(standing.claimable_amount, d)} tokens\n"
               f"signature {sig}\nbalance {format_amount(balance, d)}")


@click.command("fund")
@click.argument("run_id")
@click.argument("amount")
@keypair_option
@url_option
@unit_price_option
def fund(run_id: str, amount: str, keypair_path: str, url: str) -> None:
    """Top up RUN_ID's vault with AMOUNT tokens from the wallet's token account (a plain SPL transfer)."""
    wallet = load_wallet(keypair_path)

    async def work():
        async with Treasurer(url, run_id, wallet) as t:
            decimals = (await t.mint()).decimals
            units = parse_amount(amount, decimals)
            held = await t.token_balance(wallet.pubkey())
            if held < units:  # checked here: the SPL program's refusal is a bare {'Custom': 1}
                raise CommandFailed(f"insufficient funds: wallet {wallet.pubkey()} holds "
                                    f"{format_amount(held, decimals)} tokens of the run's mint, asked "
                                    f"{format_amount(units, decimals)}")
            sig = await t.fund(units)
            return sig, await t.vault_balance(), decimals

    sig, vault, d = run_sdk(work, wallet.pubkey())
    click.echo(f"funded run {run_id} with {amount} tokens\nvault balance {format_amount(vault, d)}\nsignature {sig}")
