"""`psyche localnet`: run the local validator until Ctrl-C."""
from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

import click

from localnet.chain import LAMPORTS_PER_SIGNATURE, SLOT_SECONDS


@click.command()
@click.option("--rpc-port", type=click.IntRange(1024, 65534), default=8899, show_default=True,
              help="JSON-RPC port on 127.0.0.1; websockets listen on the next port.")
@click.option("--ledger", type=click.Path(file_okay=False, path_type=Path), default=Path("localnet-ledger"),
              show_default=True, help="Directory holding the persisted chain state and the faucet keypair.")
@click.option("--reset", is_flag=True, help="Start from a fresh chain (the ledger's accounts are wiped, once the "
              "ledger lock and the ports are held).")
@click.option("--request-timeout", type=click.FloatRange(0.1, 3600), default=10.0, show_default=True,
              help="Seconds a client has to send a request's headers, and then its body.")
@click.option("--drop-tx-rate", type=click.FloatRange(0.0, 1.0), default=0.0, show_default=True,
              help="Share of sendTransaction calls accepted (signature returned) and never landed, like a congested"
                   " leader: for testing clients against a hostile cluster.")
@click.option("--rate-limit", type=click.FloatRange(0.0, min_open=False), default=0.0, show_default=True,
              help="JSON-RPC calls per second the node answers, over HTTP and websockets together (0: no limit); "
                   "beyond it HTTP answers 429 with a Retry-After header, as public RPC providers do.")
@click.option("--latency", "latency_ms", type=click.FloatRange(0.0, 60_000.0), default=0.0,
              show_default=True,
              help="Milliseconds added to every JSON-RPC reply (half before the call runs, half after), like a "
                   "distant RPC provider.")
@click.option("--quiet", is_flag=True, help="Print only errors.")
def localnet(rpc_port: int, ledger: Path, reset: bool, request_timeout: float, drop_tx_rate: float,
             rate_limit: float, latency_ms: float, quiet: bool) -> None:
    """A Solana validator on 127.0.0.1: LiteSVM behind real JSON-RPC and websockets, the programs in
    programs/deploy deployed through the loader, a clock in real time, state persisted to --ledger."""
    from coordinator_sdk.keypair_file import KeypairFileError
    from localnet.ledger import LedgerError, LedgerWriteError
    from localnet.lock import StartupError
    from localnet.server import serve

    logging.basicConfig(level=logging.ERROR if quiet else logging.INFO, format="%(name)s: %(message)s")

    def announce(server) -> None:
        if quiet:
            return
        chain = server.chain
        click.echo(f"localnet ready ({'fresh chain' if chain.genesis else 'restored from ledger'})")
        click.echo(f"  RPC URL:      {server.rpc_url}")
        click.echo(f"  WebSocket:    {server.ws_url}")
        click.echo(f"  ledger:       {ledger.resolve()}")
        click.echo(f"  faucet:       {chain.faucet.pubkey()} (requestAirdrop)")
        for name, pid in chain.programs.items():
            click.echo(f"  program {name + ':':<9}{pid}")
        hostile = [f"{what} {v:g}{unit}" for what, v, unit in (
            ("drops", drop_tx_rate, ""), ("rate limit", rate_limit, "/s"), ("latency", latency_ms, " ms")) if v]
        if hostile:
            click.echo(f"  hostile:      {', '.join(hostile)}")
        click.echo(f"  slot time {SLOT_SECONDS * 1000:.0f} ms, fee {LAMPORTS_PER_SIGNATURE} lamports/signature; "
                   "Ctrl-C to stop", err=False)

    async def main() -> None:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await serve(ledger, rpc_port, reset, announce=announce, request_timeout=request_timeout,
                        drop_tx_rate=drop_tx_rate, rate_limit=rate_limit, latency_ms=latency_ms)
        except asyncio.CancelledError:
            pass
        except (StartupError, LedgerError, LedgerWriteError) as e:
            raise click.ClickException(f"cannot start the localnet: {e}") from None
        except KeypairFileError as e:  # a corrupt faucet.json / deployer.json / identity.json
            raise click.ClickException(f"cannot start the localnet: {e} (move it away or use a fresh --ledger)") \
                from None
        except OSError as e:
            raise click.ClickException(f"cannot start the localnet: {e}") from None

    asyncio.run(main())
    if not quiet:
        click.echo("localnet stopped; state is in the ledger")
