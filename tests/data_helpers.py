"""Shared helpers for the data-provider tests: small real token datasets on disk."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from data_providers.corpus import corpus_documents
from data_providers.prepare import prepare_dataset
from data_providers.token_files import write_token_file
from data_providers.tokenizer import ByteTokenizer

SEQ_LEN = 32


def pydoc_dataset(directory: Path, shard_tokens: int = 40_000, suffix: str = ".npy") -> Path:
    """The stdlib pydoc corpus, byte-tokenized into several shards with a manifest."""
    docs = list(corpus_documents("pydoc"))[:20]
    prepare_dataset(docs, directory, ByteTokenizer(), seq_len=SEQ_LEN, shard_tokens=shard_tokens,
                    suffix=suffix)
    return directory


def counting_dataset(directory: Path, sizes: list[int], token_size: int = 4, suffix: str = ".bin") -> Path:
    """Files whose tokens are their global positions: token value t sits at position t of the stream."""
    directory.mkdir(parents=True, exist_ok=True)
    start = 0
    for i, n in enumerate(sizes):
        write_token_file(directory / f"part-{i:03d}{suffix}", np.arange(start, start + n), token_size)
        start += n
    return directory


TEXT_A = "The quick brown fox jumps over the lazy dog. " * 20
TEXT_B = "Pack my box with five dozen liquor jugs! Ünïcödé ✓ " * 20


def tiny_hf_tokenizer(path: Path) -> Path:
    """Train a small byte-level BPE with the tokenizers library itself: nothing is downloaded."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([TEXT_A, TEXT_B], trainer)
    tok.save(str(path))
    return path
