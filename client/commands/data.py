"""`psyche data ...`: prepare token datasets and serve them over HTTP or TCP."""
from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import click

from client.cli_common import emit_json, output_option
from client.commands.data_serve import fail as _fail
from client.commands.data_serve import manifest_seq_len, serve_http, serve_tcp
from client.interrupts import run_async
from data_providers.prepare import MAX_SHARD_TOKENS, MIN_SHARD_TOKENS
from data_providers.types import DataError

SOURCE_HELP = "A dataset directory, or the base URL of a `psyche data serve-http` server."


@click.group()
def data() -> None:
    """Token datasets: prepare, verify, inspect and serve them."""


@data.command()
@click.argument("inputs", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output directory: new or empty (or holding a dataset, with --force). Written as a hidden "
              "directory beside it and renamed into place once complete.")
@click.option("--force", is_flag=True, help="Replace the dataset already in --out.")
@click.option("--tokenizer", "tokenizer_spec", default="byte", show_default=True,
              help="'byte' (UTF-8 bytes, vocab 256) or the path of a local HF tokenizer.json.")
@click.option("--corpus", type=click.Choice(["pydoc"]), default=None,
              help="Also tokenize a corpus shipped with Python (no download).")
@click.option("--seq-len", type=click.IntRange(min=1), default=None,
              help="Intended sequence length: shards hold whole sequences and the manifest records it (so "
              "`serve-tcp` and `sample` need no --seq-len). Refused when longer than the data.")
@click.option("--format", "fmt", type=click.Choice(["npy", "bin", "ds"]), default="npy", show_default=True)
@click.option("--shard-tokens", type=click.IntRange(MIN_SHARD_TOKENS, MAX_SHARD_TOKENS), default=1 << 24,
              show_default=True, help=f"Tokens per file ({MIN_SHARD_TOKENS:,} to {MAX_SHARD_TOKENS:,}).")
@output_option
def prepare(inputs: tuple[Path, ...], out_dir: Path, force: bool, tokenizer_spec: str, corpus: str | None,
            seq_len: int | None, fmt: str, shard_tokens: int, output: str) -> None:
    """Tokenize text files (each one document) and/or a shipped corpus into token files + manifest."""
    from data_providers.corpus import corpus_documents
    from data_providers.prepare import prepare_dataset_atomically, text_file_documents
    from data_providers.tokenizer import load_tokenizer

    if not inputs and corpus is None:
        raise click.UsageError("give INPUT files and/or --corpus")
    if seq_len is not None and shard_tokens < seq_len:
        raise click.BadParameter(f"{shard_tokens} tokens cannot hold one sequence of --seq-len {seq_len}",
                                 param_hint="--shard-tokens")
    try:
        tokenizer = load_tokenizer(tokenizer_spec)
        docs = list(corpus_documents(corpus)) if corpus else []

        def documents() -> Iterator[tuple[str, str]]:
            yield from text_file_documents(inputs)
            yield from docs

        progress = Progress("tokenizing", len(inputs) + len(docs), "documents")
        manifest = prepare_dataset_atomically(documents(), out_dir, tokenizer, seq_len, shard_tokens, f".{fmt}",
                                              progress=lambda _chars: progress.step(), force=force)
    except DataError as e:
        raise _fail(e) from e
    if output == "json":
        emit_json({"directory": str(out_dir), "files": len(manifest.files), "num_tokens": manifest.num_tokens,
                   "token_size": manifest.token_size, "tokenizer": manifest.tokenizer, "seq_len": seq_len})
        return
    click.echo(f"wrote {len(manifest.files)} file(s), {manifest.num_tokens} tokens of {manifest.token_size}"
               f" bytes, tokenizer {manifest.tokenizer['kind']} (vocab {tokenizer.vocab_size}) to {out_dir}")


class Progress:
    """Progress on stderr: a bar on a terminal; elsewhere (logs, CI) one line at every tenth, so a long
    run is never silent and a log is not flooded."""

    def __init__(self, label: str, total: int, unit: str) -> None:
        self.label, self.total, self.unit, self.done, self.next_tenth = label, max(total, 1), unit, 0, 1
        self.bar = click.progressbar(length=self.total, label=label, file=sys.stderr) if sys.stderr.isatty() else None

    def step(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            if self.done >= self.total:
                self.bar.render_finish()
            return
        tenth = min(self.done * 10 // self.total, 10)
        if tenth >= self.next_tenth:
            click.echo(f"{self.label}: {tenth * 10}% ({self.done} of {self.total} {self.unit})", err=True)
            self.next_tenth = tenth + 1


@data.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@output_option
def verify(directory: Path, output: str) -> None:
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
    if output == "json":
        emit_json({"directory": str(directory), "ok": True, "files": len(manifest.files),
                   "num_tokens": manifest.num_tokens, "token_size": manifest.token_size, "seq_len": manifest.seq_len})
        return
    click.echo(f"ok: {len(manifest.files)} file(s), {manifest.num_tokens} tokens"
               f" match {directory}/manifest.json")


@data.command()
@click.argument("source")
@click.option("--seq-len", type=click.IntRange(min=1), default=None,
              help="Default: the seq_len in a local dataset's manifest.")
@click.option("--index", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--count", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--token-size", type=click.Choice(["2", "4"]), default=None,
              help="For raw files without manifest.")
@click.option("--shuffle-seed", type=int, default=None)
@click.option("--wrap", is_flag=True, help="Wrap indices past the end instead of failing.")
@click.option("--decode-bytes", is_flag=True, help="Print samples as text (byte-tokenized datasets).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=5.0, show_default=True,
              metavar="SECONDS", help="Per request to an HTTP source (each retried 3 times).")
@output_option
def sample(source: str, seq_len: int | None, index: int, count: int, token_size: str | None,
           shuffle_seed: int | None, wrap: bool, decode_bytes: bool, timeout: float, output: str) -> None:
    """Print samples INDEX..INDEX+COUNT-1 of SOURCE (a directory or an HTTP base URL)."""
    from data_providers.http import HttpProvider, ManifestUrl
    from data_providers.local import LocalProvider
    from data_providers.tokenizer import ByteTokenizer
    from data_providers.types import BatchId, TokenizedData

    ts = int(token_size) if token_size else None
    policy = "wrap" if wrap else "error"
    remote = source.startswith(("http://", "https://"))
    if seq_len is None and remote:
        raise click.UsageError("give --seq-len for an HTTP source")
    if not remote and not Path(source).is_dir():
        raise click.BadParameter(f"{source}: not a dataset directory or an http(s) URL", param_hint="SOURCE")
    seq = seq_len if seq_len is not None else manifest_seq_len(Path(source))

    async def fetch() -> list[TokenizedData]:
        batch = BatchId(index, index + count - 1)
        if remote:
            async with HttpProvider(ManifestUrl(source), seq, ts, shuffle_seed, policy, timeout_s=timeout) as hp:
                return await hp.get_samples(batch)
        return await LocalProvider(source, seq, ts, shuffle_seed, policy).get_samples(batch)

    try:
        samples = run_async(fetch())
    except DataError as e:
        raise _fail(e) from e
    if output == "json":
        emit_json([{"index": i, "input_ids": [int(t) for t in s.input_ids],
                    **({"text": ByteTokenizer().decode(s.input_ids)} if decode_bytes else {})}
                   for i, s in enumerate(samples, start=index)])
        return
    for i, s in enumerate(samples, start=index):
        body = repr(ByteTokenizer().decode(s.input_ids)) if decode_bytes else " ".join(map(str, s.input_ids))
        click.echo(f"{i}: {body}")



data.add_command(serve_http)
data.add_command(serve_tcp)
