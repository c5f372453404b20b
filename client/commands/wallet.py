"""`psyche keygen`, `pubkey`, `airdrop`, `balance`: the wallet chores of working with a cluster, with the
Solana CLI's argument order and defaults (`airdrop AMOUNT [RECIPIENT]`, `-k` defaulting to
~/.config/solana/id.json), so that what a user knows from `solana` works here."""
from __future__ import annotations

import os
from decimal import Decimal, InvalidOperation
from pathlib import Path

import click
from solders.pubkey import Pubkey

from client.cli_chain import rpc_client, rpc_timeout_option, sync_reads
from client.cli_common import (
    DEFAULT_WALLET,
    CommandFailed,
    emit_json,
    keypair_option,
    load_wallet,
    output_option,
    url_option,
)
from client.errors import ExitCode, exception_text
from coordinator_sdk.keypair_file import KeypairFileError, read_keypair, write_keypair

LAMPORTS_PER_SOL = 10**9
MAX_LAMPORTS = 2**64 - 1  # a Solana balance is a u64 of lamports


def resolve_pubkey(target: str) -> Pubkey:
    """A base-58 public key, or the public key of a keypair file (`~` expanded).

    A keypair file that is missing or corrupt exits 9 (ExitCode.WALLET) whether it is named by `-k` or as
    an argument: the README documents 9 for a missing/corrupt keypair file, and one file should not fail
    two ways. Text that is neither a key nor a file is a usage error (2)."""
    path = Path(target).expanduser()
    if path.exists():
        try:
            return read_keypair(path).pubkey()
        except KeypairFileError as e:
            raise CommandFailed(exception_text(e), ExitCode.WALLET) from None
    try:
        return Pubkey.from_string(target)
    except ValueError:
        pass
    if target.endswith(".json") or os.sep in target:
        raise CommandFailed(f"{target}: no such keypair file", ExitCode.WALLET)
    raise click.BadParameter(f"{target!r} is neither a keypair file nor a base-58 public key")


def account_or_wallet(target: str | None, keypair_path: str) -> Pubkey:
    """TARGET when given, else the public key of the -k wallet (the Solana CLI's default account)."""
    return resolve_pubkey(target) if target is not None else load_wallet(keypair_path).pubkey()


def parse_sol(amount: str) -> int:
    """Lamports in `amount` SOL: a finite, positive number of whole lamports that fits a u64."""
    try:
        sol = Decimal(amount.strip())
    except InvalidOperation:
        raise click.BadParameter(f"{amount!r} is not a number of SOL") from None
    if not sol.is_finite():
        raise click.BadParameter(f"{amount!r} is not a finite number of SOL")
    if sol <= 0:
        raise click.BadParameter(f"{amount} SOL is not a positive amount")
    if sol > Decimal(MAX_LAMPORTS) / LAMPORTS_PER_SOL:
        raise click.BadParameter(f"{amount} SOL is more than a Solana balance can hold"
                                 f" ({_sol(MAX_LAMPORTS)} SOL)")
    lamports = sol * LAMPORTS_PER_SOL
    if lamports != lamports.to_integral_value():
        raise click.BadParameter(f"{amount} SOL is not a positive whole number of lamports")
    return int(lamports)


def _sol(lamports: int) -> str:
    return f"{Decimal(lamports) / LAMPORTS_PER_SOL:f}"


@click.command()
@click.option("-o", "--outfile", type=click.Path(dir_okay=False), default=str(DEFAULT_WALLET), show_default=True,
              help="Where to write the keypair (Solana CLI JSON format; `~` expanded).")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def keygen(outfile: str, force: bool) -> None:
    """Create a new keypair file, compatible with `solana-keygen`."""
    from solders.keypair import Keypair

    path, kp = Path(outfile).expanduser(), Keypair()
    try:
        write_keypair(path, kp, overwrite=force)
    except KeypairFileError as e:
        raise CommandFailed(str(e)) from None
    click.echo(f"wrote {path}\npubkey: {kp.pubkey()}")


@click.command()
@click.argument("keypair", required=False)
@keypair_option
@output_option
def pubkey(keypair: str | None, keypair_path: str, output: str) -> None:
    """Print the public key of KEYPAIR (a keypair file; default the -k wallet)."""
    path = keypair if keypair is not None else keypair_path
    key = load_wallet(path).pubkey()
    if output == "json":
        emit_json({"pubkey": str(key), "keypair": str(Path(path).expanduser())})
    else:
        click.echo(str(key))


@click.command()
@click.argument("amount")
@click.argument("recipient", required=False)
@url_option
@keypair_option
@rpc_timeout_option
@output_option
def airdrop(amount: str, recipient: str | None, url: str, keypair_path: str, rpc_timeout: float,
            output: str) -> None:
    """Request AMOUNT SOL from the cluster's faucet for RECIPIENT (a public key or keypair file; default the
    -k wallet), as `solana airdrop AMOUNT [RECIPIENT]` does."""
    try:
        lamports = parse_sol(amount)
    except click.BadParameter as e:
        hint = " (usage: psyche airdrop AMOUNT [RECIPIENT])" if recipient is not None else ""
        raise click.BadParameter(f"{e.message}{hint}", param_hint="AMOUNT") from None
    key = account_or_wallet(recipient, keypair_path)

    async def work() -> tuple[str, int]:
        from solana.rpc.core import RPCException

        async with rpc_client(url, rpc_timeout) as client:
            try:
                sig = (await client.request_airdrop(key, lamports)).value
                await client.confirm_transaction(sig)
            except RPCException as e:
                detail = getattr(e.args[0], "message", None) if e.args else None
                raise CommandFailed(f"airdrop refused by {url}: {detail or e}") from None
            return str(sig), (await client.get_balance(key)).value

    from client.interrupts import run_async

    sig, balance = run_async(work())
    if output == "json":
        emit_json({"recipient": str(key), "lamports": lamports, "signature": sig, "balance_lamports": balance})
    else:
        click.echo(f"airdropped {_sol(lamports)} SOL to {key} (signature {sig})\nbalance: {_sol(balance)} SOL")


@click.command()
@click.argument("account", required=False)
@url_option
@keypair_option
@rpc_timeout_option
@click.option("--lamports", is_flag=True, help="Show the balance in lamports instead of SOL.")
@output_option
def balance(account: str | None, url: str, keypair_path: str, rpc_timeout: float, lamports: bool,
            output: str) -> None:
    """Show the balance of ACCOUNT (public key or keypair file; default the -k wallet)."""
    key = account_or_wallet(account, keypair_path)

    with sync_reads(url, rpc_timeout) as rpc:
        value = rpc.balance(str(key))
    if output == "json":
        emit_json({"pubkey": str(key), "lamports": value, "sol": _sol(value)})
    else:
        click.echo(f"{value} lamports" if lamports else f"{_sol(value)} SOL")
