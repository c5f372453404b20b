"""`psyche data serve-http` / `serve-tcp`: serve a prepared dataset until interrupted (Ctrl-C stops a server
cleanly with exit 0; that is how it is meant to end). A port in use, a directory that holds no dataset, an
unknown run or a dead RPC is one line before anything is served."""
from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from client.cli_chain import chain_errors, quiet_rpc_warnings, rpc_timeout_option
from client.cli_common import CommandFailed, resolve_url, run_id_callback, url_option
from data_providers.types import DataError


def fail(e: Exception) -> click.ClickException:
    return CommandFailed(str(e))


def manifest_seq_len(directory: Path) -> int:
    """The seq_len a prepared dataset's manifest records, for commands whose --seq-len is then optional."""
    from data_providers.manifest import Manifest

    try:
        manifest = Manifest.load(directory)
    except DataError as e:
        raise fail(e) from e
    if manifest is None or manifest.seq_len is None:
        raise click.UsageError(f"give --seq-len: {directory} has no manifest.json recording one"
                               " (`psyche data prepare --seq-len N` writes it)")
    return manifest.seq_len


@contextmanager
def listening(host: str, port: int) -> Iterator[None]:
    """Binding failures (port in use, no such address, a privileged port) as one line naming host:port."""
    try:
        yield
    except OSError as e:
        reason = os.strerror(e.errno) if e.errno else str(e)
        raise CommandFailed(f"cannot listen on {host}:{port}: {reason}") from None


def _require_dataset(directory: Path) -> None:
    from data_providers.token_files import is_data_file

    if not any(p.name == "manifest.json" or is_data_file(p.name) for p in directory.iterdir()):
        raise CommandFailed(f"{directory}: holds no manifest.json or token files (prepare one with"
                            " `psyche data prepare`)")


def _serve_forever(run: Coroutine[Any, Any, None]) -> None:
    from client.interrupts import run_until_interrupted

    if run_until_interrupted(run):
        click.echo("stopped", err=True)


@click.command("serve-http")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="0 = any free port.")
def serve_http(directory: Path, host: str, port: int) -> None:
    """Serve DIRECTORY's token files and manifest over HTTP with Range support, until interrupted."""
    from data_providers.http_server import HttpDataServer

    _require_dataset(directory)

    async def run() -> None:
        srv = HttpDataServer(directory, host, port)
        with listening(host, port):
            await srv.start()
        try:
            click.echo(f"serving {directory} at {srv.url}")
            await asyncio.Event().wait()
        finally:
            await srv.stop()

    _serve_forever(run())


def _allowed_keys(allow: tuple[str, ...]) -> list[bytes]:
    keys = []
    for k in allow:
        try:
            raw = bytes.fromhex(k)
        except ValueError as e:
            raise click.BadParameter(f"{k!r} is not hex", param_hint="--allow") from e
        if len(raw) != 32:
            raise click.BadParameter(f"{k!r} is {len(raw)} bytes, need 32", param_hint="--allow")
        keys.append(raw)
    return keys


@click.command("serve-tcp")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--seq-len", type=click.IntRange(min=1), default=None,
              help="Default: the seq_len recorded in DIRECTORY's manifest.")
@click.option("--allow", "allow", multiple=True, metavar="PUBKEY_HEX",
              help="Static policy: an ed25519 public key (64 hex chars) that may fetch any batch; repeatable.")
@click.option("--run-id", default=None, callback=run_id_callback,
              help="Chain policy: serve the clients of this run's current epoch, each only its batch of the "
              "round in progress. Env PSYCHE_RUN_ID.", envvar="PSYCHE_RUN_ID")
@url_option
@click.option("--rpc-fallback", multiple=True, metavar="URL", help="Further RPC URLs tried in order when -u "
              "fails; repeatable.")
@click.option("--rpc", "rpc", multiple=True, metavar="URL", hidden=True, help="Deprecated: use -u/--url.")
@rpc_timeout_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8001, show_default=True,
              help="0 = any free port.")
@click.option("--token-size", type=click.Choice(["2", "4"]), default=None,
              help="For raw files without manifest.")
@click.option("--shuffle-seed", type=int, default=None)
def serve_tcp(directory: Path, seq_len: int | None, allow: tuple[str, ...], run_id: str | None, url: str,
              rpc_fallback: tuple[str, ...], rpc: tuple[str, ...], rpc_timeout: float, host: str, port: int,
              token_size: str | None, shuffle_seed: int | None) -> None:
    """Serve DIRECTORY over the TCP data protocol, authenticating clients by their ed25519 key.

    With --run-id the coordinator on chain (-u) decides: only clients of the current epoch, each only its
    batch of the round in progress. With --allow a static list of keys may fetch any batch.
    """
    if bool(allow) == bool(run_id):
        raise click.UsageError("give exactly one policy: --run-id (from the chain) or --allow KEY...")
    from data_providers.authority import AllowlistAuthority
    from data_providers.local import LocalProvider
    from data_providers.tcp_server import TcpDataServer

    keys = _allowed_keys(allow)
    if rpc:
        click.echo("warning: --rpc is deprecated; use -u/--url (and --rpc-fallback)", err=True)
    urls = [resolve_url(u) for u in (rpc or (url, *rpc_fallback))]
    seq = seq_len if seq_len is not None else manifest_seq_len(directory)
    try:
        provider = LocalProvider(directory, seq, int(token_size) if token_size else None, shuffle_seed)
    except DataError as e:
        raise fail(e) from e

    async def run() -> None:
        coordinator = None
        if run_id:
            from solders.keypair import Keypair

            from coordinator_sdk.client import Coordinator
            from data_providers.chain_authority import ChainRoundAuthority

            coordinator = Coordinator(urls, run_id, Keypair(), rpc_timeout=rpc_timeout)
            with quiet_rpc_warnings(), chain_errors():
                await coordinator.fetch_instance()
            authority, who = ChainRoundAuthority(coordinator), f"the clients of run {run_id!r}"
        else:
            authority, who = AllowlistAuthority(keys, provider.num_samples), f"{len(keys)} allowed key(s)"
        srv = TcpDataServer(provider, authority, host, port)
        try:
            with listening(host, port):
                await srv.start()
            click.echo(f"serving {directory} ({provider.num_samples} samples of {seq} tokens)"
                       f" over TCP at {host}:{srv.port} to {who}")
            await asyncio.Event().wait()
        finally:
            await srv.stop()
            if coordinator is not None:
                await coordinator.close()

    _serve_forever(run())
