"""Training batches from real text with no download: the stdlib's pydoc topics, tokenized by data_providers.

The corpus is prepared once into a token directory (the same files `psyche data prepare` writes and the
data servers serve), then read through `LocalProvider`, so training consumes exactly what a client would
fetch. Samples are `seq_len + 1` tokens: inputs and shifted targets come from one sample.
"""
from __future__ import annotations

from pathlib import Path

import torch

from data_providers.corpus import corpus_documents
from data_providers.local import LocalProvider
from data_providers.manifest import Manifest
from data_providers.prepare import prepare_dataset
from data_providers.tokenizer import load_tokenizer
from data_providers.types import BatchId


def prepare_corpus(out_dir: str | Path, seq_len: int, corpus: str = "pydoc", tokenizer: str = "byte") -> Path:
    """Tokenize the corpus into `out_dir` unless a manifest is already there (then it is reused as is)."""
    out_dir = Path(out_dir)
    if not (out_dir.is_dir() and Manifest.load(out_dir) is not None):
        prepare_dataset(corpus_documents(corpus), out_dir, load_tokenizer(tokenizer), seq_len=seq_len + 1)
    return out_dir


def load_samples(token_dir: str | Path, seq_len: int, shuffle_seed: int = 0) -> torch.Tensor:
    """All samples of a token directory as one `[num_samples, seq_len + 1]` int64 tensor (small corpora)."""
    provider = LocalProvider(token_dir, seq_len + 1, shuffle_seed=shuffle_seed)
    rows = provider.read_batch(BatchId(0, provider.num_samples - 1))
    return torch.from_numpy(rows).long()


class ShardedBatches:
    """Disjoint shards of a sample pool, one per trainer, plus a held-out evaluation slice.

    Trainer `i` of `k` owns samples `i, i+k, i+2k, ...` of the training part and walks through them in
    order, wrapping around: at equal step counts every trainer has seen the same number of tokens.
    """

    def __init__(self, samples: torch.Tensor, num_shards: int, eval_samples: int = 32) -> None:
        if num_shards < 1:
            raise ValueError(f"num_shards must be positive, got {num_shards}")
        if samples.shape[0] < eval_samples + num_shards:
            raise ValueError(f"{samples.shape[0]} samples cannot feed {num_shards} shards and"
                             f" {eval_samples} evaluation samples")
        self.eval = samples[samples.shape[0] - eval_samples:]
        train = samples[:samples.shape[0] - eval_samples]
        self.shards = [train[i::num_shards] for i in range(num_shards)]

    def batch(self, shard: int, step: int, batch_size: int) -> torch.Tensor:
        pool = self.shards[shard]
        rows = (torch.arange(batch_size) + step * batch_size) % pool.shape[0]
        return pool[rows]

    def global_batch(self, step: int, batch_size: int) -> torch.Tensor:
        """The union of every shard's batch at `step`: what a data-parallel baseline sees per step."""
        return torch.cat([self.batch(i, step, batch_size) for i in range(len(self.shards))])
