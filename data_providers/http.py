"""Token files over HTTP Range requests: the same samples as `LocalProvider` on the same files.

Sizes come from HEAD, `.npy` headers from a small ranged GET; samples that lie next to each other in a
file are fetched in one request. Transient failures (connection errors, timeouts, 5xx, short bodies)
are retried with exponential backoff; permanent ones (404 and other 4xx) fail at once, naming the URL.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import aiohttp
import numpy as np

from data_providers.layout import SampleLocation, SequenceLayout, WrapPolicy
from data_providers.manifest import MANIFEST_NAME, Manifest, ManifestFile
from data_providers.token_files import (
    TokenFileInfo,
    is_data_file,
    npy_header_length,
    parse_npy_header,
    raw_file_info,
)
from data_providers.types import BatchId, RemoteDataError, TokenizedData


@dataclass(frozen=True)
class SingleUrl:
    url: str


@dataclass(frozen=True)
class NumberedFiles:
    """`template` has one format field, e.g. `http://h/tokens-{:05d}.npy`; numbers start..start+count-1."""

    template: str
    start: int
    count: int

    def urls(self) -> list[str]:
        if self.count < 1:
            raise ValueError(f"NumberedFiles.count must be >= 1, got {self.count}")
        try:
            urls = [self.template.format(i) for i in range(self.start, self.start + self.count)]
        except (IndexError, KeyError, ValueError) as e:
            raise ValueError(f"bad url template {self.template!r}: {e}") from e
        if len(set(urls)) != len(urls):
            raise ValueError(f"url template {self.template!r} needs exactly one field for the file number")
        return urls


@dataclass(frozen=True)
class ManifestUrl:
    """Base URL of a directory served by `psyche data serve-http`; the file list is its manifest."""

    base: str


HttpLocation = SingleUrl | NumberedFiles | ManifestUrl
T = TypeVar("T")


class _PermanentHttpError(RemoteDataError):
    """A failure that retrying cannot fix (4xx, missing headers, Range ignored)."""


class HttpProvider:
    def __init__(self, location: HttpLocation, seq_len: int, token_size: int | None = None,
                 shuffle_seed: int | None = None, wrap: WrapPolicy | str = WrapPolicy.ERROR,
                 timeout_s: float = 5.0, retries: int = 3, backoff_s: float = 0.1,
                 max_parallel: int = 8) -> None:
        self.location = location
        self._seq_len, self._token_size = seq_len, token_size
        self._shuffle_seed, self._wrap = shuffle_seed, wrap
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.retries, self.backoff_s = retries, backoff_s
        self._sem = asyncio.Semaphore(max_parallel)
        self._session: aiohttp.ClientSession | None = None
        self.urls: list[str] = []
        self.layout: SequenceLayout | None = None
        self.requests_made = 0  # range GETs for sample data, so coalescing can be observed
        self._manifest_files: dict[str, ManifestFile] = {}

    async def __aenter__(self) -> HttpProvider:
        return await self.open()

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def open(self) -> HttpProvider:
        self._session = aiohttp.ClientSession(timeout=self.timeout)
        try:
            self.urls = await self._file_urls()
            infos = list(await asyncio.gather(*(self._file_info(u) for u in self.urls)))
            self.layout = SequenceLayout(infos, self._seq_len, self._shuffle_seed, self._wrap,
                                         where=self._describe())
        except BaseException:
            await self.close()
            raise
        return self

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _describe(self) -> str:
        loc = self.location
        return loc.url if isinstance(loc, SingleUrl) else loc.base if isinstance(loc, ManifestUrl) \
            else loc.template

    async def _file_urls(self) -> list[str]:
        loc = self.location
        if isinstance(loc, SingleUrl):
            return [loc.url]
        if isinstance(loc, NumberedFiles):
            return loc.urls()
        base = loc.base.rstrip("/")
        body = await self._get(f"{base}/{MANIFEST_NAME}", None)
        manifest = Manifest.from_json(body.decode("utf-8", "replace"), f"{base}/{MANIFEST_NAME}")
        if self._token_size is not None and self._token_size != manifest.token_size:
            raise RemoteDataError(f"{base}/{MANIFEST_NAME}: wrong token size: asked for {self._token_size},"
                                  f" manifest says {manifest.token_size}")
        self._token_size = manifest.token_size
        self._manifest_files = {f.name: f for f in manifest.files}
        return [f"{base}/{name}" for name in sorted(self._manifest_files)]

    async def _file_info(self, url: str) -> TokenFileInfo:
        name = url.rsplit("/", 1)[-1].split("?", 1)[0]
        if not is_data_file(name):
            raise RemoteDataError(f"{url}: not a token file (.bin, .ds, .npy)")
        size = await self._head_size(url)
        listed = self._manifest_files.get(name)
        if listed is not None and listed.num_bytes != size:
            raise RemoteDataError(f"{url}: truncated or altered: {size} bytes,"
                                  f" manifest says {listed.num_bytes}")
        if name.endswith(".npy"):
            if size < 12:
                raise RemoteDataError(f"{url}: truncated: {size} bytes is too short for a .npy header")
            total = npy_header_length(await self._get(url, (0, 11)), url)
            info = parse_npy_header(await self._get(url, (0, total - 1)), size, url, self._token_size)
        else:
            info = raw_file_info(url, size, self._token_size)
        if listed is not None and listed.num_tokens != info.num_tokens:
            raise RemoteDataError(f"{url}: holds {info.num_tokens} tokens, manifest says {listed.num_tokens}")
        return info

    async def _with_retries(self, what: str, attempt_fn: Callable[[], Awaitable[T]]) -> T:
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                return await attempt_fn()
            except _PermanentHttpError as e:
                raise RemoteDataError(str(e)) from None
            except RemoteDataError as e:
                last = e
            except TimeoutError:
                last = RemoteDataError(f"{what}: no answer within {self.timeout.total:g} s (timeout)")
            except aiohttp.ClientError as e:
                last = RemoteDataError(f"{what}: {type(e).__name__}: {e}")
            if attempt < self.retries:
                await asyncio.sleep(self.backoff_s * 2**attempt)
        raise RemoteDataError(f"{last} (gave up after {self.retries + 1} attempts)")

    async def _head_size(self, url: str) -> int:
        async def once() -> int:
            assert self._session is not None
            async with self._session.head(url, allow_redirects=True) as r:
                self._check_status(r, url)
                if r.content_length is None:
                    raise _PermanentHttpError(f"{url}: HEAD gave no Content-Length")
                return r.content_length
        return await self._with_retries(f"HEAD {url}", once)

    async def _get(self, url: str, byte_range: tuple[int, int] | None) -> bytes:
        headers = {"Range": f"bytes={byte_range[0]}-{byte_range[1]}"} if byte_range else {}
        expected = byte_range[1] - byte_range[0] + 1 if byte_range else None
        what = f"GET {url} bytes {byte_range[0]}-{byte_range[1]}" if byte_range else f"GET {url}"

        async def once() -> bytes:
            assert self._session is not None
            async with self._sem, self._session.get(url, headers=headers) as r:
                self._check_status(r, url)
                if byte_range and r.status != 206:
                    raise _PermanentHttpError(f"{url}: server ignored the Range header (HTTP {r.status})")
                content_range = r.headers.get("Content-Range", "")
                if byte_range and content_range and not content_range.startswith(f"bytes {byte_range[0]}-"):
                    raise _PermanentHttpError(f"{what}: server answered another range ({content_range!r})")
                body = await r.read()
            if expected is not None and len(body) != expected:
                raise RemoteDataError(f"{what}: short read: got {len(body)} of {expected} bytes")
            return body
        return await self._with_retries(what, once)

    @staticmethod
    def _check_status(r: aiohttp.ClientResponse, url: str) -> None:
        if r.status >= 500:
            raise RemoteDataError(f"{url}: HTTP {r.status} {r.reason}")
        if r.status >= 400:
            raise _PermanentHttpError(f"{url}: HTTP {r.status} {r.reason}")

    @property
    def num_samples(self) -> int:
        if self.layout is None:
            raise RuntimeError("HttpProvider.open() has not been awaited")
        return self.layout.num_samples

    async def get_samples(self, batch: BatchId) -> list[TokenizedData]:
        if self.layout is None or self._session is None:
            raise RuntimeError("HttpProvider.open() has not been awaited")
        layout = self.layout
        locs = layout.locate_batch(batch)
        runs = coalesce(locs, layout.seq_len)
        tokens: dict[tuple[int, int], np.ndarray] = {}

        async def fetch(run: tuple[int, int, int]) -> None:
            file_index, first, count = run
            info = layout.files[file_index]
            start = info.data_offset + first * info.token_size
            end = start + count * layout.seq_len * info.token_size - 1
            self.requests_made += 1
            body = await self._get(self.urls[file_index], (start, end))
            rows = np.frombuffer(body, dtype=info.dtype).reshape(count, layout.seq_len)
            for k in range(count):
                tokens[(file_index, first + k * layout.seq_len)] = rows[k]

        await asyncio.gather(*(fetch(r) for r in runs))
        return [TokenizedData(tokens[(loc.file_index, loc.token_offset)]) for loc in locs]


def coalesce(locs: list[SampleLocation], seq_len: int) -> list[tuple[int, int, int]]:
    """Merge sample locations into (file, first token offset, sample count) runs of adjacent samples."""
    runs: list[list[int]] = []
    for loc in sorted({(x.file_index, x.token_offset) for x in locs}):
        if runs and runs[-1][0] == loc[0] and runs[-1][1] + runs[-1][2] * seq_len == loc[1]:
            runs[-1][2] += 1
        else:
            runs.append([loc[0], loc[1], 1])
    return [(f, o, c) for f, o, c in runs]
