"""Token files in a local directory, memory-mapped: the provider trainers use when they hold the data,
and the backing store of the HTTP and TCP servers."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from data_providers.layout import SequenceLayout, WrapPolicy
from data_providers.manifest import Manifest, verify_directory
from data_providers.token_files import TokenFileInfo, is_data_file, local_file_info
from data_providers.types import BatchId, DataFileError, TokenizedData

INT32_MAX = 2**31 - 1


class LocalProvider:
    """Reads samples straight from mmapped files; opening validates every file so reads cannot fail later.

    `token_size` is needed for raw `.bin`/`.ds` files unless the directory has a manifest; `.npy` files
    carry their own dtype. With a manifest, sizes (and, if `verify_hashes`, sha256) are checked first.
    """

    def __init__(self, directory: str | Path, seq_len: int, token_size: int | None = None,
                 shuffle_seed: int | None = None, wrap: WrapPolicy | str = WrapPolicy.ERROR,
                 verify_hashes: bool = True) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise DataFileError(f"{self.directory}: not a directory")
        self.manifest = Manifest.load(self.directory)
        if self.manifest is not None:
            verify_directory(self.directory, self.manifest, check_hashes=verify_hashes)
            if token_size is not None and token_size != self.manifest.token_size:
                raise DataFileError(f"{self.directory}: wrong token size: asked for {token_size},"
                                    f" manifest says {self.manifest.token_size}")
            token_size = self.manifest.token_size
        paths = sorted(p for p in self.directory.iterdir() if p.is_file() and is_data_file(p.name))
        infos: list[TokenFileInfo] = []
        for p in paths:
            info = local_file_info(p, token_size)
            entry = self.manifest.entry(p.name) if self.manifest else None
            if entry is not None and entry.num_tokens != info.num_tokens:
                raise DataFileError(f"{p}: holds {info.num_tokens} tokens, manifest says {entry.num_tokens}")
            infos.append(info)
        self.layout = SequenceLayout(infos, seq_len, shuffle_seed, wrap, where=str(self.directory))
        self._maps = [np.memmap(p, dtype=i.dtype, mode="r", offset=i.data_offset, shape=(i.num_tokens,))
                      if i.num_tokens else np.zeros(0, dtype=i.dtype)
                      for p, i in zip(paths, infos, strict=True)]
        self.paths = paths

    @property
    def num_samples(self) -> int:
        return self.layout.num_samples

    @property
    def seq_len(self) -> int:
        return self.layout.seq_len

    @property
    def token_size(self) -> int:
        return self.layout.token_size

    def sample_tokens(self, index: int) -> np.ndarray:
        loc = self.layout.locate(index)
        return np.asarray(self._maps[loc.file_index][loc.token_offset:loc.token_offset + self.seq_len])

    def read_batch(self, batch: BatchId) -> np.ndarray:
        """(len(batch), seq_len) int32 tokens; the synchronous core the servers call directly."""
        locs = self.layout.locate_batch(batch)
        out = np.empty((len(locs), self.seq_len), dtype=self.layout.files[0].dtype)
        for row, loc in enumerate(locs):
            out[row] = self._maps[loc.file_index][loc.token_offset:loc.token_offset + self.seq_len]
        if out.dtype.itemsize == 4 and out.size and int(out.max()) > INT32_MAX:
            row = int(np.argmax(out.max(axis=1) > INT32_MAX))
            loc = locs[row]
            raise DataFileError(f"{self.paths[loc.file_index]}: sample index {batch.start + row} holds"
                                f" token id {int(out[row].max())}, beyond the int32 range of token ids")
        return out.astype(np.int32)

    async def get_samples(self, batch: BatchId) -> list[TokenizedData]:
        return [TokenizedData(row) for row in self.read_batch(batch)]
