"""Samples/s of each data provider on real text, all servers on 127.0.0.1 in this process.

    scripts/loopback-only .venv/bin/python bench/data_throughput.py [--seq-len 512] [--batch 64] [--repeat 4]

The dataset is the stdlib pydoc corpus (byte tokens, repeated --repeat times), so nothing is downloaded.
Each provider reads the same sequence of batches; results are checked equal to the local provider's.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nacl.signing import SigningKey  # noqa: E402

from data_providers.authority import AllowlistAuthority  # noqa: E402
from data_providers.corpus import corpus_documents  # noqa: E402
from data_providers.http import HttpProvider, ManifestUrl  # noqa: E402
from data_providers.http_server import HttpDataServer  # noqa: E402
from data_providers.local import LocalProvider  # noqa: E402
from data_providers.prepare import prepare_dataset  # noqa: E402
from data_providers.tcp_client import TcpDataProvider  # noqa: E402
from data_providers.tcp_server import TcpDataServer  # noqa: E402
from data_providers.tokenizer import ByteTokenizer  # noqa: E402
from data_providers.types import BatchId, DataProvider  # noqa: E402
from data_providers.weighted import WeightedProvider  # noqa: E402


async def measure(name: str, provider: DataProvider, batches: list[BatchId], reference: LocalProvider | None,
                  seq_len: int, min_seconds: float) -> None:
    await provider.get_samples(batches[0])  # warm up: connections, page cache
    t0 = time.perf_counter()
    n = 0
    while True:  # whole passes over the batch list until at least min_seconds have elapsed
        for b in batches:
            n += len(await provider.get_samples(b))
        dt = time.perf_counter() - t0
        if dt >= min_seconds:
            break
    if reference is not None:
        assert await provider.get_samples(batches[-1]) == await reference.get_samples(batches[-1]), name
    tokens_per_s = n * seq_len / dt
    print(f"{name:<28} {n / dt:>10.0f} samples/s  {tokens_per_s / 1e6:>7.2f} M tokens/s"
          f"  ({n} samples, {dt:.3f} s)")


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--min-seconds", type=float, default=1.0, help="measure each provider at least this long")
    ap.add_argument("--repeat", type=int, default=4, help="copies of the pydoc corpus in the dataset")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "pydoc"
        docs = list(corpus_documents("pydoc")) * args.repeat
        m = prepare_dataset(docs, d, ByteTokenizer(), seq_len=args.seq_len, shard_tokens=1 << 20)
        local = LocalProvider(d, args.seq_len)
        n = local.num_samples
        print(f"dataset: {m.num_tokens} byte tokens in {len(m.files)} files, {n} samples of {args.seq_len};"
              f" {args.batches} batches of {args.batch}")
        step = max(1, (n - args.batch) // args.batches)
        batches = [BatchId(s, s + args.batch - 1) for s in range(0, n - args.batch + 1, step)][: args.batches]
        await measure("local (mmap)", local, batches, None, args.seq_len, args.min_seconds)
        shuffled = LocalProvider(d, args.seq_len, shuffle_seed=1)
        await measure("local shuffled", shuffled, batches, None, args.seq_len, args.min_seconds)
        key = SigningKey.generate()
        async with HttpDataServer(d) as http_srv, \
                TcpDataServer(local, AllowlistAuthority([bytes(key.verify_key)], n)) as tcp_srv:
            async with HttpProvider(ManifestUrl(http_srv.url), args.seq_len) as hp:
                await measure("http (coalesced ranges)", hp, batches, local, args.seq_len, args.min_seconds)
                print(f"{'':<28} {hp.requests_made} range requests")
            async with HttpProvider(ManifestUrl(http_srv.url), args.seq_len, shuffle_seed=1) as hps:
                await measure("http shuffled", hps, batches, shuffled, args.seq_len, args.min_seconds)
                print(f"{'':<28} {hps.requests_made} range requests")
            async with TcpDataProvider("127.0.0.1", tcp_srv.port, key) as tcp:
                await measure("tcp (ed25519 auth)", tcp, batches, local, args.seq_len, args.min_seconds)
            async with HttpProvider(ManifestUrl(http_srv.url), args.seq_len) as hp2:
                mix = WeightedProvider([(local, 1.0), (hp2, 1.0)])
                half = [BatchId(b.start // 2, b.end // 2) for b in batches]
                await measure("weighted local+http 1:1", mix, half, None, args.seq_len, args.min_seconds)


if __name__ == "__main__":
    asyncio.run(main())
