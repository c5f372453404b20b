"""`manifest.json`: what a prepared dataset directory holds, so a reader can check it before training.

It records the token size, the tokenizer, and per file the token count, byte size and sha256; a copy
of the data that was truncated, re-tokenized with a different tokenizer or altered in place is then
refused with the file named, instead of yielding different tokens on different machines.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from data_providers.token_files import check_token_size, is_data_file
from data_providers.types import DataFileError

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class ManifestFile:
    name: str
    num_tokens: int
    num_bytes: int
    sha256: str


@dataclass
class Manifest:
    token_size: int
    tokenizer: dict[str, Any]
    files: list[ManifestFile]
    seq_len: int | None = None
    source: list[str] = field(default_factory=list)
    version: int = MANIFEST_VERSION

    @property
    def num_tokens(self) -> int:
        return sum(f.num_tokens for f in self.files)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    def save(self, directory: Path) -> Path:
        path = directory / MANIFEST_NAME
        path.write_text(self.to_json())
        return path

    @classmethod
    def from_json(cls, text: str, where: str) -> Manifest:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataFileError(f"{where}: manifest is not valid JSON: {e}") from e
        if not isinstance(raw, dict):
            raise DataFileError(f"{where}: manifest must be a JSON object")

        def need(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], ctx: str) -> Any:
            if key not in obj:
                raise DataFileError(f"{where}: manifest field {ctx}{key} is missing")
            v = obj[key]
            if not isinstance(v, kind) or (kind is int and isinstance(v, bool)):
                raise DataFileError(f"{where}: manifest field {ctx}{key} has the wrong type ({v!r})")
            return v

        version = need(raw, "version", int, "")
        if version != MANIFEST_VERSION:
            raise DataFileError(f"{where}: manifest version {version} is not supported ({MANIFEST_VERSION})")
        token_size = check_token_size(need(raw, "token_size", int, ""), f"{where}: manifest field token_size")
        files = []
        for i, entry in enumerate(need(raw, "files", list, "")):
            ctx = f"files[{i}]."
            if not isinstance(entry, dict):
                raise DataFileError(f"{where}: manifest field files[{i}] must be an object")
            name = need(entry, "name", str, ctx)
            if "/" in name or "\\" in name or name.startswith(".") or not is_data_file(name):
                raise DataFileError(f"{where}: manifest field {ctx}name {name!r}"
                                    " is not a plain token file name")
            files.append(ManifestFile(name, need(entry, "num_tokens", int, ctx),
                                      need(entry, "num_bytes", int, ctx), need(entry, "sha256", str, ctx)))
        seq_len = raw.get("seq_len")
        if seq_len is not None and (not isinstance(seq_len, int) or seq_len < 1):
            raise DataFileError(f"{where}: manifest field seq_len must be a positive int, got {seq_len!r}")
        return cls(token_size, need(raw, "tokenizer", dict, ""), files, seq_len,
                   list(raw.get("source", [])), version)

    @classmethod
    def load(cls, directory: Path) -> Manifest | None:
        path = directory / MANIFEST_NAME
        if not path.exists():
            return None
        return cls.from_json(path.read_text(), str(path))

    def entry(self, name: str) -> ManifestFile | None:
        return next((f for f in self.files if f.name == name), None)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify_directory(directory: Path, manifest: Manifest, check_hashes: bool = True) -> None:
    """Every manifest file exists with the recorded size (and hash); no unlisted token files lurk."""
    listed = {f.name for f in manifest.files}
    present = {p.name for p in directory.iterdir() if p.is_file() and is_data_file(p.name)}
    extra = sorted(present - listed)
    if extra:
        raise DataFileError(f"{directory}: token files not in {MANIFEST_NAME}: {', '.join(extra)}")
    for f in manifest.files:
        path = directory / f.name
        if not path.exists():
            raise DataFileError(f"{path}: listed in {MANIFEST_NAME} but missing")
        size = path.stat().st_size
        if size != f.num_bytes:
            raise DataFileError(f"{path}: truncated or altered: {size} bytes, manifest says {f.num_bytes}")
        if check_hashes:
            digest = sha256_file(path)
            if digest != f.sha256:
                raise DataFileError(f"{path}: sha256 mismatch: file {digest}, manifest {f.sha256}")
