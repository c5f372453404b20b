"""Tokenizers for dataset preparation: byte-level (no files needed) or a local HF `tokenizer.json`.

Nothing is ever downloaded: an HF tokenizer must be a file on disk, and its sha256 goes into the
manifest so readers can tell which tokenizer produced the token ids.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from data_providers.manifest import sha256_file
from data_providers.types import DataFileError

EOS_CANDIDATES = ("<|endoftext|>", "</s>", "<eos>", "<|end_of_text|>")


class Tokenizer(Protocol):
    vocab_size: int
    eos_id: int | None

    def encode(self, text: str) -> np.ndarray: ...

    def decode(self, ids: np.ndarray) -> str: ...

    def describe(self) -> dict[str, Any]: ...


class ByteTokenizer:
    """UTF-8 bytes as token ids 0..255: lossless, vocabulary 256, no special tokens."""

    vocab_size = 256
    eos_id: int | None = None

    def encode(self, text: str) -> np.ndarray:
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.uint32)

    def decode(self, ids: np.ndarray) -> str:
        arr = np.asarray(ids)
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise ValueError("byte tokenizer ids must lie in 0..255")
        return arr.astype(np.uint8).tobytes().decode("utf-8", errors="replace")

    def describe(self) -> dict[str, Any]:
        return {"kind": "byte", "vocab_size": 256}


class HfTokenizer:
    """A `tokenizers` library tokenizer loaded from a local tokenizer.json; appends EOS between documents."""

    def __init__(self, path: str | Path) -> None:
        from tokenizers import Tokenizer as _Tok

        self.path = Path(path)
        if not self.path.is_file():
            raise DataFileError(f"{self.path}: tokenizer file not found (only local tokenizer.json files)")
        try:
            self._tok = _Tok.from_file(str(self.path))
        except Exception as e:  # the library raises a bare Exception on malformed JSON
            raise DataFileError(f"{self.path}: not a valid tokenizer.json: {e}") from e
        self.vocab_size = self._tok.get_vocab_size(with_added_tokens=True)
        self.eos_id = next((i for t in EOS_CANDIDATES if (i := self._tok.token_to_id(t)) is not None), None)

    def encode(self, text: str) -> np.ndarray:
        return np.asarray(self._tok.encode(text, add_special_tokens=False).ids, dtype=np.uint32)

    def decode(self, ids: np.ndarray) -> str:
        return self._tok.decode([int(i) for i in np.asarray(ids)])

    def describe(self) -> dict[str, Any]:
        return {"kind": "hf", "file": self.path.name, "sha256": sha256_file(self.path),
                "vocab_size": self.vocab_size, "eos_id": self.eos_id}


def load_tokenizer(spec: str) -> Tokenizer:
    """`byte` or a path to a tokenizer.json."""
    return ByteTokenizer() if spec == "byte" else HfTokenizer(spec)


def token_size_for(vocab_size: int) -> int:
    return 2 if vocab_size <= 1 << 16 else 4
