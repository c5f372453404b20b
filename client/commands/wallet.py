"""`psyche keygen`, `psyche airdrop`, `psyche balance`: the wallet chores of working with a cluster."""
from __future__ import annotations

import asyncio
from decimal import Decimal, InvalidOperation
from pathlib import Path

import click
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from coordinator_sdk.keypair_file import KeypairFileError, read_keypair, write_keypair

LAMPORTS_PER_SOL = 10**9
DEFAULT_WALLET = Path.home() / ".config" / "solana" / "id.json"
url_option = click.option("--url", "-u", envvar="PSYCHE_RPC_URL", default="http://127.0.0.1:8899",
                          show_default=True, help="JSON-RPC endpoint (env PSYCHE_RPC_URL).")


def resolve_pubkey(target: str) -> Pubkey:
    """A base-58 public key, or the public key of a keypair file."""
    path = Path(target).expanduser()
    if path.exists():
        try:
            return read_keypair(path).pubkey()
        except KeypairFileError as e:
            raise click.BadParameter(str(e)) from None
    try:
        return Pubkey.from_string(target)
    except ValueError:
        raise click.BadParameter(f"{target!r} is neither a keypair file nor a base-58 public key") from None


def parse_sol(amount: str) -> int:
    try:
        lamports = Decimal(amount) * LAMPORTS_PER_SOL
    except InvalidOperation:
        raise click.BadParameter(f"{amount!r} is not a number of SOL") from None
    if lamports <= 0 or lamports != lamports.to_integral_value():
        raise click.BadParameter(f"{amount} SOL is not a positive whole number of lamports")
    return int(lamports)


def _fmt(lamports: int) -> str:
    return f"{Decimal(lamports) / LAMPORTS_PER_SOL:f} SOL"


async def _rpc(url: str, work):
    from solana.exceptions import SolanaRpcException
    from solana.rpc.async_api import AsyncClient

    try:
        async with AsyncClient(url) as client:
            if not await client.is_connected():
                raise click.ClickException(f"the node at {url} reports it is not healthy")
            return await work(client)
    except SolanaRpcException as e:
        raise click.ClickException(f"no Solana JSON-RPC node answers at {url} ({e.__cause__ or e})") from None


@click.command()
@click.option("-o", "--outfile", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Where to write the keypair (Solana CLI JSON format).")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def keygen(outfile: Path, force: bool) -> None:
    """Create a new keypair file, compatible with `solana-keygen`."""
    kp = Keypair()
    try:
        write_keypair(outfile, kp, overwrite=force)
    except KeypairFileError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"wrote {outfile}\npubkey: {kp.pubkey()}")


@click.command()
@click.argument("target")
@click.argument("sol")
@url_option
def airdrop(target: str, sol: str, url: str) -> None:
    """Request SOL from the cluster's faucet for TARGET (a public key or a keypair file)."""
    key, lamports = resolve_pubkey(target), parse_sol(sol)

    async def work(client):
        from solana.rpc.core import RPCException

        try:
            sig = (await client.request_airdrop(key, lamports)).value
            await client.confirm_transaction(sig)
        except RPCException as e:
            raise click.ClickException(f"airdrop refused: {e}") from None
        return sig, (await client.get_balance(key)).value

    sig, balance = asyncio.run(_rpc(url, work))
    click.echo(f"airdropped {_fmt(lamports)} to {key} (signature {sig})\nbalance: {_fmt(balance)}")


@click.command()
@click.argument("target", required=False)
@url_option
def balance(target: str | None, url: str) -> None:
    """Show the balance of TARGET (public key or keypair file; default ~/.config/solana/id.json)."""
    if target is None:
        if not DEFAULT_WALLET.exists():
            raise click.UsageError(f"no TARGET given and {DEFAULT_WALLET} does not exist")
        target = str(DEFAULT_WALLET)
    key = resolve_pubkey(target)

    async def work(client):
        return (await client.get_balance(key)).value

    click.echo(_fmt(asyncio.run(_rpc(url, work))))
