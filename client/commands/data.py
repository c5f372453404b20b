"""`psyche data ...`: prepare token datasets and serve them over HTTP or TCP."""
from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path

import click

from data_providers.types import DataError

SOURCE_HELP = "A dataset directory, or the base URL of a `psyche data serve-http` server."


def _fail(e: Exception) -> click.ClickException:
    return click.ClickException(str(e))


@click.group()
def data() -> None:
    """Token datasets: prepare, verify, inspect and serve them."""


@data.command()
@click.argument("inputs", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output directory (created; must not already hold token files).")
@click.option("--tokenizer", "tokenizer_spec", default="byte", show_default=True,
              help="'byte' (UTF-8 bytes, vocab 256) or the path of a local HF tokenizer.json.")
@click.option("--corpus", type=click.Choice(["pydoc"]), default=None,
              help="Also tokenize a corpus shipped with Python (no download).")
@click.option("--seq-len", type=click.IntRange(min=1), default=None,
              help="Intended sequence length: shards hold whole sequences and the manifest records it.")
@click.option("--format", "fmt", type=click.Choice(["npy", "bin", "ds"]), default="npy", show_default=True)
@click.option("--shard-tokens", type=click.IntRange(min=1), default=1 << 24, show_default=True)
def prepare(inputs: tuple[Path, ...], out_dir: Path, tokenizer_spec: str, corpus: str | None,
            seq_len: int | None, fmt: str, shard_tokens: int) -> None:
    """Tokenize text files (each one document) and/or a shipped corpus into token files + manifest."""
    from data_providers.corpus import corpus_documents
    from data_providers.prepare import prepare_dataset, text_file_documents
    from data_providers.tokenizer import load_tokenizer

    if not inputs and corpus is None:
        raise click.UsageError("give INPUT files and/or --corpus")
    try:
        tokenizer = load_tokenizer(tokenizer_spec)
        docs = list(corpus_documents(corpus)) if corpus else []
        total = len(inputs) + len(docs)

        def documents() -> Iterator[tuple[str, str]]:
            yield from text_file_documents(inputs)
            yield from docs

        with click.progressbar(length=total, label="tokenizing", file=sys.stderr) as bar:
            manifest = prepare_dataset(documents(), out_dir, tokenizer, seq_len, shard_tokens, f".{fmt}",
                                       progress=lambda _chars: bar.update(1))
    except DataError as e:
        raise _fail(e) from e
    click.echo(f"wrote {len(manifest.files)} file(s), {manifest.num_tokens} tokens of {manifest.token_size}"
               f" bytes, tokenizer {manifest.tokenizer['kind']} (vocab {tokenizer.vocab_size}) to {out_dir}")


@data.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
def verify(directory: Path) -> None:
    """Check a prepared directory against its manifest: sizes, token counts and sha256 of every file."""
    from data_providers.local import LocalProvider
    from data_providers.manifest import Manifest

    try:
        manifest = Manifest.load(directory)
        if manifest is None:
            raise click.ClickException(f"{directory}: no manifest.json")
        LocalProvider(directory, seq_len=1, verify_hashes=True)
    except DataError as e:
        raise _fail(e) from e
    click.echo(f"ok: {len(manifest.files)} file(s), {manifest.num_tokens} tokens"
               f" match {directory}/manifest.json")


@data.command()
@click.argument("source")
@click.option("--seq-len", type=click.IntRange(min=1), required=True)
@click.option("--index", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--count", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--token-size", type=click.Choice(["2", "4"]), default=None,
              help="For raw files without manifest.")
@click.option("--shuffle-seed", type=int, default=None)
@click.option("--wrap", is_flag=True, help="Wrap indices past the end instead of failing.")
@click.option("--decode-bytes", is_flag=True, help="Print samples as text (byte-tokenized datasets).")
def sample(source: str, seq_len: int, index: int, count: int, token_size: str | None,
           shuffle_seed: int | None, wrap: bool, decode_bytes: bool) -> None:
    """Print samples INDEX..INDEX+COUNT-1 of SOURCE (a directory or an HTTP base URL)."""
    from data_providers.http import HttpProvider, ManifestUrl
    from data_providers.local import LocalProvider
    from data_providers.tokenizer import ByteTokenizer
    from data_providers.types import BatchId, TokenizedData

    ts = int(token_size) if token_size else None
    policy = "wrap" if wrap else "error"

    async def fetch() -> list[TokenizedData]:
        batch = BatchId(index, index + count - 1)
        if source.startswith(("http://", "https://")):
            async with HttpProvider(ManifestUrl(source), seq_len, ts, shuffle_seed, policy) as hp:
                return await hp.get_samples(batch)
        return await LocalProvider(source, seq_len, ts, shuffle_seed, policy).get_samples(batch)

    try:
        samples = asyncio.run(fetch())
    except DataError as e:
        raise _fail(e) from e
    for i, s in enumerate(samples, start=index):
        body = repr(ByteTokenizer().decode(s.input_ids)) if decode_bytes else " ".join(map(str, s.input_ids))
        click.echo(f"{i}: {body}")


@data.command("serve-http")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="0 = any free port.")
def serve_http(directory: Path, host: str, port: int) -> None:
    """Serve DIRECTORY's token files and manifest over HTTP with Range support, until interrupted."""
    from data_providers.http_server import HttpDataServer

    async def run() -> None:
        async with HttpDataServer(directory, host, port) as srv:
            click.echo(f"serving {directory} at {srv.url}")
            await asyncio.Event().wait()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


@data.command("serve-tcp")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--seq-len", type=click.IntRange(min=1), required=True)
@click.option("--allow", "allow", multiple=True, metavar="PUBKEY_HEX",
              help="Static policy: an ed25519 public key (64 hex chars) that may fetch any batch; repeatable.")
@click.option("--run-id", default=None, help="Chain policy: serve the clients of this run's current epoch, "
              "each only its batch of the round in progress.")
@click.option("--rpc", "rpc", multiple=True, metavar="URL", help="JSON-RPC endpoint(s) for --run-id (fallbacks "
              "in order); default http://127.0.0.1:8899.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8001, show_default=True,
              help="0 = any free port.")
@click.option("--token-size", type=click.Choice(["2", "4"]), default=None,
              help="For raw files without manifest.")
@click.option("--shuffle-seed", type=int, default=None)
def serve_tcp(directory: Path, seq_len: int, allow: tuple[str, ...], run_id: str | None, rpc: tuple[str, ...],
              host: str, port: int, token_size: str | None, shuffle_seed: int | None) -> None:
    """Serve DIRECTORY over the TCP data protocol, authenticating clients by their ed25519 key.

    With --run-id the coordinator on chain decides: only clients of the current epoch, each only its batch
    of the round in progress. With --allow a static list of keys may fetch any batch.
    """
    if bool(allow) == bool(run_id):
        raise click.UsageError("give exactly one policy: --run-id (from the chain) or --allow KEY...")
    from data_providers.authority import AllowlistAuthority
    from data_providers.local import LocalProvider
    from data_providers.tcp_server import TcpDataServer

    keys = []
    for k in allow:
        try:
            raw = bytes.fromhex(k)
        except ValueError as e:
            raise click.BadParameter(f"{k!r} is not hex", param_hint="--allow") from e
        if len(raw) != 32:
            raise click.BadParameter(f"{k!r} is {len(raw)} bytes, need 32", param_hint="--allow")
        keys.append(raw)
    try:
        provider = LocalProvider(directory, seq_len, int(token_size) if token_size else None, shuffle_seed)
    except DataError as e:
        raise _fail(e) from e

    async def run() -> None:
        if run_id:
            from solders.keypair import Keypair

            from coordinator_sdk.client import Coordinator
            from data_providers.chain_authority import ChainRoundAuthority

            coordinator = Coordinator(list(rpc) or ["http://127.0.0.1:8899"], run_id, Keypair())
            try:
                await coordinator.fetch_instance()
            except (LookupError, ConnectionError) as e:
                raise click.ClickException(f"cannot read run {run_id!r}: {e}") from None
            authority, who = ChainRoundAuthority(coordinator), f"the clients of run {run_id!r}"
        else:
            authority, who = AllowlistAuthority(keys, provider.num_samples), f"{len(keys)} allowed key(s)"
        async with TcpDataServer(provider, authority, host, port) as srv:
            click.echo(f"serving {directory} ({provider.num_samples} samples of {seq_len} tokens)"
                       f" over TCP at {host}:{srv.port} to {who}")
            await asyncio.Event().wait()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
