"""`psyche run-client`: join a run on chain and train it with the other clients until it finishes."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click

from client.cli_common import CommandFailed, ExitCode, derive_ws_url, load_wallet, resolve_url, url_option
from client.commands.landing import unit_price_option

DEPRECATED_WALLET_ENV = "PSYCHE_WALLET"


def _bind(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise click.BadParameter(f"{value!r} is not HOST:PORT")
    return value


def _device(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    """A misspelt device is a bad argument (exit 2) refused before anything starts; one this machine lacks
    is found later, when the client resolves it (exit 6)."""
    from client.runner.settings import check_device_spec

    if (why := check_device_spec(value)) is not None:
        raise click.BadParameter(why)
    return value


def _wallet(ctx: click.Context, _param: click.Parameter, value: str | None) -> str:
    """The wallet like every other command's (client.cluster_config), except that PSYCHE_WALLET, the name
    run-client alone read before PSYCHE_KEYPAIR was everyone's, still counts (below PSYCHE_KEYPAIR) with a
    one-line notice on stderr."""
    import os

    from client.cluster_config import ENV, from_context

    old = os.environ.get(DEPRECATED_WALLET_ENV)
    if value is None and old and not os.environ.get(ENV["keypair"]):
        click.echo(f"note: {DEPRECATED_WALLET_ENV} is deprecated; use {ENV['keypair']} (same meaning)", err=True)
        value = old
    return from_context(ctx, keypair=value, install_ids=False).values["keypair"]


@click.command("run-client")
@click.option("--run-id", envvar="PSYCHE_RUN_ID", required=True, help="The run to join. Env PSYCHE_RUN_ID.")
@click.option("-k", "--keypair", "--wallet", "wallet", default=None, callback=_wallet,
              help="Wallet keypair (Solana CLI JSON). Env PSYCHE_KEYPAIR (PSYCHE_WALLET: deprecated alias); "
              "default: psyche config, Solana CLI config, ~/.config/solana/id.json.")
@url_option
@click.option("--ws-url", envvar="PSYCHE_WS_URL", default=None,
              help="Websocket URL (default: derived from --url, port + 1). Env PSYCHE_WS_URL.")
@click.option("--rpc-fallback", multiple=True, envvar="PSYCHE_RPC_FALLBACK", metavar="URL",
              help="More RPC URLs, used when the first fails (repeatable). Env PSYCHE_RPC_FALLBACK.")
@click.option("--p2p-key", envvar="PSYCHE_P2P_KEY", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="P2P identity keypair file (default: derived from the wallet and the run id). Env PSYCHE_P2P_KEY.")
@click.option("--bind-p2p", envvar="PSYCHE_BIND_P2P", default="127.0.0.1:0", show_default=True, callback=_bind,
              help="UDP HOST:PORT of the iroh endpoint. Env PSYCHE_BIND_P2P.")
@click.option("--relay", envvar="PSYCHE_RELAY", type=click.Choice(["disabled", "default"]), default="disabled",
              show_default=True, help="iroh relays: 'disabled' (direct connections only) or 'default' (n0's public "
              "relays). Env PSYCHE_RELAY.")
@click.option("--device", envvar="PSYCHE_DEVICE", default="auto", show_default=True, callback=_device,
              help="auto, cpu, cuda or cuda:N. Env PSYCHE_DEVICE.")
@click.option("--micro-batch-size", envvar="PSYCHE_MICRO_BATCH_SIZE", type=click.IntRange(min=1), default=None,
              help="Rows per forward/backward (gradient accumulation). Env PSYCHE_MICRO_BATCH_SIZE.")
@click.option("--checkpoint-dir", envvar="PSYCHE_CHECKPOINT_DIR", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Where cooldown checkpoints are written. Env PSYCHE_CHECKPOINT_DIR.")
@click.option("--keep-checkpoints", envvar="PSYCHE_KEEP_CHECKPOINTS", type=click.IntRange(min=1), default=3,
              show_default=True, help="How many checkpoints to keep. Env PSYCHE_KEEP_CHECKPOINTS.")
@click.option("--data", envvar="PSYCHE_DATA", default=None,
              help="Override the run's data location (local:/dir, http(s)://..., tcp://host:port). Env PSYCHE_DATA.")
@click.option("--simulate-training", envvar="PSYCHE_SIMULATE_TRAINING", type=click.FloatRange(min=0.0), default=None,
              metavar="SECONDS", help="Testing: instead of forward/backward, wait SECONDS and send a correctly shaped "
              "result drawn from (run, step, P2P key); everything else (codec, P2P, witnessing, apply) is unchanged. "
              "Env PSYCHE_SIMULATE_TRAINING.")
@click.option("--logs", envvar="PSYCHE_LOGS", type=click.Choice(["console", "json"]), default="console",
              show_default=True, help="One line per round, or JSON lines. Env PSYCHE_LOGS.")
@unit_price_option
@click.option("-v", "--verbose", count=True, help="More detail (chain and P2P events); -vv adds every HTTP request.")
@click.option("-q", "--quiet", is_flag=True, help="Only rounds and problems.")
def run_client(run_id: str, wallet: str, url: str, ws_url: str | None, rpc_fallback: tuple[str, ...],
               p2p_key: Path | None, bind_p2p: str, relay: str, device: str, micro_batch_size: int | None,
               checkpoint_dir: Path | None, keep_checkpoints: int, data: str | None, simulate_training: float | None,
               logs: str, verbose: int, quiet: bool) -> None:
    """Join run RUN_ID with a wallet and train it: everything else (model, data, schedule, peers) comes
    from the chain. Ctrl-C withdraws from the run and exits 0."""
    from client.cli_common import validate_run_id
    from client.p2p.identity import IdentityError, P2PIdentity
    from client.runner.engine import RunClient
    from client.runner.p2p_session import derive_p2p_identity
    from client.runner.report import Reporter, ReporterLogHandler
    from client.runner.settings import ClientSettings

    validate_run_id(run_id)
    rpc = [url] + [resolve_url(u) for f in rpc_fallback for u in f.split()]
    kp = load_wallet(wallet)
    try:
        identity = P2PIdentity.from_keypair_file(p2p_key) if p2p_key else derive_p2p_identity(kp, run_id)
    except (IdentityError, OSError, ValueError) as e:
        raise CommandFailed(f"--p2p-key {p2p_key}: {e}", ExitCode.WALLET) from None
    if checkpoint_dir is not None:
        try:
            checkpoint_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CommandFailed(f"--checkpoint-dir {checkpoint_dir}: {e.strerror}") from None
    settings = ClientSettings(rpc_urls=rpc, ws_url=ws_url or derive_ws_url(rpc[0]), run_id=run_id, wallet=kp,
                              p2p=identity, bind_p2p=bind_p2p, relay=relay, device=device,
                              micro_batch_size=micro_batch_size, checkpoint_dir=checkpoint_dir,
                              keep_checkpoints=keep_checkpoints, data=data, simulate_training=simulate_training)
    reporter = Reporter(logs, -1 if quiet else verbose)
    ReporterLogHandler(reporter).install()
    code = run_bounded(RunClient(settings, reporter).run())
    raise SystemExit(code)


def run_bounded(main: Any, cleanup_s: float = 5.0) -> int:
    """asyncio.run, except that tasks still running when the client is done get `cleanup_s` to finish
    cancelling: a library task that ignores its cancellation must not keep a finished client alive."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(main)
    finally:
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.wait(pending, timeout=cleanup_s))
        loop.run_until_complete(loop.shutdown_asyncgens())
        if not any(not t.done() for t in pending):
            loop.close()
