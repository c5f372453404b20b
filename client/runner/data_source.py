"""The run's data location (from chain, or the client's `--data` override) opened as a data provider.

Locations: `local:/dir` or `/dir` (token files on this machine), `http(s)://...` (a served token directory
with its manifest), `tcp://host:port` (a `psyche data serve-tcp --run-id` server: we authenticate with our
P2P key, which it checks against the run's current assignment). Samples are `max_seq_len + 1` tokens, the
inputs and shifted targets of one row. Indices past the end wrap, so a run may outlast its dataset.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import numpy as np
import torch
from nacl.signing import SigningKey

from data_providers.types import BatchId, DataError


class DataLocationError(ValueError):
    """A data location string this client cannot open."""


async def open_provider(location: str, seq_len: int, signing_key: SigningKey) -> Any:
    """An opened provider serving `seq_len + 1`-token samples (caller closes it with `close_provider`)."""
    sample_len = seq_len + 1
    if location.startswith(("http://", "https://")):
        from data_providers.http import HttpProvider, ManifestUrl

        return await HttpProvider(ManifestUrl(location), sample_len, wrap="wrap").open()
    if location.startswith("tcp://"):
        from data_providers.tcp_client import TcpDataProvider

        parts = urlsplit(location)
        if not parts.hostname or not parts.port:
            raise DataLocationError(f"data location {location!r}: expected tcp://host:port")
        provider = await TcpDataProvider(parts.hostname, parts.port, signing_key).open()
        if provider.seq_len != sample_len:
            await provider.close()
            raise DataLocationError(f"{location} serves {provider.seq_len}-token samples, the run needs {sample_len}")
        return provider
    path = location.removeprefix("local:")
    if not path.startswith("/"):
        raise DataLocationError(f"data location {location!r}: use local:/abs/dir, http(s)://... or tcp://host:port")
    from data_providers.local import LocalProvider

    return LocalProvider(path, sample_len, wrap="wrap")


async def close_provider(provider: Any) -> None:
    close = getattr(provider, "close", None)
    if close is not None:
        await close()


async def fetch_batch(provider: Any, first: int, last: int) -> torch.Tensor:
    """The inclusive sample range as a `[rows, seq_len + 1]` int64 tensor; DataError names what failed."""
    samples = await provider.get_samples(BatchId(first, last))
    if len(samples) != last - first + 1:
        raise DataError(f"asked for {last - first + 1} samples of B[{first}, {last}], got {len(samples)}")
    return torch.from_numpy(np.stack([s.input_ids for s in samples]).astype(np.int64))
