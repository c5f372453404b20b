"""The checkpoint a run names on chain, and loading the model it names with its integrity checked.

A reference is `sha256:<base58 digest>@<source>` (at most 127 bytes, the program's limit). The digest is the
hash of the model's P2P manifest (config + every tensor's sha256, `client.p2p.checkpoint_share`), so one
number identifies the weights whatever they travel by. Sources:
  - an absolute directory path holding `config.json` + `model.safetensors` (the operator's initial weights),
  - an `http(s)://` base URL serving those two files,
  - `p2p`: fetched from the run's clients as blobs (what clients post at cooldown).
Whatever the source, the loaded model's digest must equal the reference's, or nothing is used.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import based58

from client.p2p.blob_store import BlobStore
from client.p2p.checkpoint_share import publish_model
from client.training.checkpoint import CONFIG_FILE, WEIGHTS_FILE, load_checkpoint, save_checkpoint
from client.training.model import Decoder

PREFIX = "sha256:"
MAX_REFERENCE = 127
P2P = "p2p"


class CheckpointRefError(ValueError):
    """A reference that cannot be parsed, or weights that do not match it."""


@dataclass(frozen=True)
class CheckpointRef:
    digest: bytes
    source: str

    def encode(self) -> str:
        text = f"{PREFIX}{based58.b58encode(self.digest).decode()}@{self.source}"
        if len(text.encode()) > MAX_REFERENCE:
            raise CheckpointRefError(f"checkpoint reference is {len(text.encode())} bytes, the chain holds at most"
                                     f" {MAX_REFERENCE}: use a shorter path or URL ({self.source!r})")
        return text

    @classmethod
    def parse(cls, text: str) -> CheckpointRef:
        if not text.startswith(PREFIX) or "@" not in text:
            raise CheckpointRefError(f"checkpoint reference {text!r} is not sha256:<digest>@<source>")
        digest_text, source = text[len(PREFIX):].split("@", 1)
        try:
            digest = based58.b58decode(digest_text.encode())
        except Exception:
            digest = b""
        if len(digest) != 32:
            raise CheckpointRefError(f"checkpoint reference {text!r}: the digest is not 32 base-58 bytes")
        if not (source == P2P or source.startswith(("/", "http://", "https://"))):
            raise CheckpointRefError(f"checkpoint reference {text!r}: source must be an absolute path, an"
                                     " http(s) URL or p2p")
        return cls(digest, source)

    @property
    def short(self) -> str:
        return based58.b58encode(self.digest).decode()[:10]


def model_digest(model: Decoder) -> bytes:
    """The hash a reference carries: the manifest of the weights (step 0, so it names weights, not time)."""
    return publish_model(model, BlobStore(), step=0)


def save_reference(model: Decoder, directory: Path) -> CheckpointRef:
    """Write `model` as a checkpoint directory and return the reference naming it there."""
    directory = directory.resolve()
    save_checkpoint(model, directory)
    return CheckpointRef(model_digest(model), str(directory))


async def _download(base_url: str, target: Path, timeout_s: float) -> None:
    import aiohttp

    base = base_url.rstrip("/")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
        for name, limit in ((CONFIG_FILE, 1 << 20), (WEIGHTS_FILE, 16 << 30)):
            async with session.get(f"{base}/{name}") as r:
                if r.status != 200:
                    raise CheckpointRefError(f"{base}/{name}: HTTP {r.status}")
                if (r.content_length or 0) > limit:
                    raise CheckpointRefError(f"{base}/{name}: {r.content_length} bytes is over the {limit} limit")
                with open(target / name, "wb") as f:
                    got = 0
                    async for part in r.content.iter_chunked(1 << 20):
                        got += len(part)
                        if got > limit:
                            raise CheckpointRefError(f"{base}/{name}: more than {limit} bytes")
                        f.write(part)


async def load_from_files(ref: CheckpointRef, timeout_s: float = 300.0) -> Decoder:
    """The model of a path or HTTP reference, on the CPU, verified against the reference's digest."""
    if ref.source.startswith(("http://", "https://")):
        with tempfile.TemporaryDirectory(prefix="psyche-ckpt-") as tmp:
            await _download(ref.source, Path(tmp), timeout_s)
            model = load_checkpoint(tmp)
    else:
        model = load_checkpoint(ref.source)
    got = model_digest(model)
    if got != ref.digest:
        raise CheckpointRefError(f"the weights at {ref.source} hash to {based58.b58encode(got).decode()[:10]}…, the"
                                 f" run names {ref.short}…: refusing them")
    return model
