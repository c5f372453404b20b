"""HTTP provider against the real aiohttp range server on 127.0.0.1, including injected faults."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from data_helpers import SEQ_LEN, counting_dataset, pydoc_dataset

from data_providers.http import HttpProvider, ManifestUrl, NumberedFiles, SingleUrl, coalesce
from data_providers.http_server import HttpDataServer, make_app
from data_providers.layout import SampleLocation
from data_providers.local import LocalProvider
from data_providers.types import BatchId, RemoteDataError, SampleIndexError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def faulty_app(directory: Path, fault: Callable[[web.Request, int], Awaitable[web.StreamResponse | None]]
               ) -> web.Application:
    """The real directory app behind a middleware that may answer a ranged GET itself (the fault)."""
    seen = {"n": 0}

    @web.middleware
    async def inject(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "GET" and "Range" in request.headers and request.path != "/manifest.json":
            seen["n"] += 1
            answer = await fault(request, seen["n"])
            if answer is not None:
                return answer
        return await handler(request)

    app = make_app(directory)
    app.middlewares.append(inject)
    return app


def test_http_matches_local_for_every_location_kind(tmp_path: Path) -> None:
    d = pydoc_dataset(tmp_path / "d")
    names = sorted(p.name for p in d.glob("*.npy"))

    async def run() -> None:
        local = LocalProvider(d, SEQ_LEN, shuffle_seed=11)
        batch = BatchId(5, 200)
        want = await local.get_samples(batch)
        async with HttpDataServer(d) as srv:
            for loc in (ManifestUrl(srv.url), NumberedFiles(srv.url + "/tokens-{:05d}.npy", 0, len(names))):
                async with HttpProvider(loc, SEQ_LEN, shuffle_seed=11) as hp:
                    assert hp.num_samples == local.num_samples
                    assert await hp.get_samples(batch) == want
            one = LocalProvider(d, SEQ_LEN, verify_hashes=False)
            async with HttpProvider(SingleUrl(f"{srv.url}/{names[0]}"), SEQ_LEN) as hp:
                assert await hp.get_samples(BatchId(0, 9)) == await one.get_samples(BatchId(0, 9))

    asyncio.run(run())


def test_contiguous_samples_are_fetched_in_one_range_request(tmp_path: Path) -> None:
    d = counting_dataset(tmp_path / "d", [SEQ_LEN * 100, SEQ_LEN * 100], suffix=".ds")

    async def run() -> None:
        async with HttpDataServer(d) as srv:
            loc = NumberedFiles(srv.url + "/part-{:03d}.ds", 0, 2)
            async with HttpProvider(loc, SEQ_LEN, token_size=4) as hp:
                got = await hp.get_samples(BatchId(10, 59))
                assert hp.requests_made == 1
                assert [int(s.input_ids[0]) for s in got] == [i * SEQ_LEN for i in range(10, 60)]
                await hp.get_samples(BatchId(90, 109))  # crosses into the second file: two requests
                assert hp.requests_made == 3

    asyncio.run(run())
    runs = coalesce([SampleLocation(0, 64), SampleLocation(1, 0), SampleLocation(0, 32),
                     SampleLocation(0, 128)], 32)
    assert runs == [(0, 32, 2), (0, 128, 1), (1, 0, 1)]


def test_http_404_names_the_url(tmp_path: Path) -> None:
    d = counting_dataset(tmp_path / "d", [SEQ_LEN * 4], suffix=".bin")

    async def run() -> None:
        async with HttpDataServer(d) as srv:
            with pytest.raises(RemoteDataError, match=r"/part-001\.bin: HTTP 404 Not Found"):
                await HttpProvider(NumberedFiles(srv.url + "/part-{:03d}.bin", 0, 2), SEQ_LEN,
                                   token_size=4, backoff_s=0.01).open()
            with pytest.raises(RemoteDataError, match=r"manifest\.json: HTTP 404"):
                await HttpProvider(ManifestUrl(srv.url), SEQ_LEN, backoff_s=0.01).open()
            async with aiohttp.ClientSession() as s:  # nothing outside the directory, nothing unlisted
                for path in ("/..%2f..%2fetc%2fpasswd", "/notes.txt", "/.hidden.bin"):
                    async with s.get(srv.url + path) as r:
                        assert r.status == 404

    (d.parent / "notes.txt").write_text("secret")
    asyncio.run(run())


def test_short_read_after_the_file_shrank_is_an_error_naming_url_and_range(tmp_path: Path) -> None:
    d = counting_dataset(tmp_path / "d", [SEQ_LEN * 10], suffix=".bin")

    async def run() -> None:
        async with HttpDataServer(d) as srv:
            url = f"{srv.url}/part-000.bin"
            async with HttpProvider(SingleUrl(url), SEQ_LEN, token_size=4, retries=2, backoff_s=0.01) as hp:
                (d / "part-000.bin").write_bytes((d / "part-000.bin").read_bytes()[:SEQ_LEN * 4 * 8 + 4])
                with pytest.raises(RemoteDataError, match=rf"GET {url} bytes 896-1151: short read: got 132 of"
                                                          r" 256 bytes \(gave up after 3 attempts\)"):
                    await hp.get_samples(BatchId(7, 8))
                assert len(await hp.get_samples(BatchId(0, 6))) == 7  # the intact part still serves

    asyncio.run(run())


def test_transient_failures_are_retried_with_backoff(tmp_path: Path) -> None:
    d = counting_dataset(tmp_path / "d", [SEQ_LEN * 10], suffix=".bin")

    async def flaky(request: web.Request, n: int) -> web.StreamResponse | None:
        if n == 1:
            return web.Response(status=503, text="busy")
        if n == 2:
            first = request.http_range.start
            return web.Response(status=206, body=b"\x00" * 10,  # a short body
                                headers={"Content-Range": f"bytes {first}-{first + 9}/1280"})
        if n == 3:
            await asyncio.sleep(2)  # longer than the client's timeout
        return None

    async def run() -> None:
        async with serve(faulty_app(d, flaky)) as url:
            hp = HttpProvider(SingleUrl(url + "/part-000.bin"), SEQ_LEN, token_size=4, timeout_s=0.5,
                              retries=3, backoff_s=0.01)
            async with hp:
                got = await hp.get_samples(BatchId(2, 3))
                assert [int(s.input_ids[0]) for s in got] == [64, 96]

    asyncio.run(run())


def test_persistent_timeouts_and_5xx_give_up_naming_the_url(tmp_path: Path) -> None:
    d = counting_dataset(tmp_path / "d", [SEQ_LEN * 10], suffix=".bin")

    async def always_slow(request: web.Request, n: int) -> web.StreamResponse | None:
        await asyncio.sleep(1)
        return None

    async def always_500(request: web.Request, n: int) -> web.StreamResponse | None:
        return web.Response(status=500)

    async def run() -> None:
        for fault, message in ((always_slow, "no answer within"), (always_500, "HTTP 500 Internal Server Error")):
            async with serve(faulty_app(d, fault)) as url:
                async with HttpProvider(SingleUrl(url + "/part-000.bin"), SEQ_LEN, token_size=4,
                                        timeout_s=0.2, retries=1, backoff_s=0.01) as hp:
                    with pytest.raises(RemoteDataError, match=rf"part-000\.bin.*{message}.*after 2 attempts"):
                        await hp.get_samples(BatchId(0, 0))

    asyncio.run(run())


def test_server_ignoring_range_and_index_past_end(tmp_path: Path) -> None:
    d = counting_dataset(tmp_path / "d", [SEQ_LEN * 4], suffix=".bin")

    async def whole_file(request: web.Request) -> web.Response:
        return web.Response(body=(d / "part-000.bin").read_bytes())

    async def run() -> None:
        app = web.Application()
        app.router.add_get("/part-000.bin", whole_file)
        async with serve(app) as url:
            async with HttpProvider(SingleUrl(url + "/part-000.bin"), SEQ_LEN, token_size=4) as hp:
                with pytest.raises(RemoteDataError, match=r"part-000\.bin: server ignored the Range header"):
                    await hp.get_samples(BatchId(0, 0))
                with pytest.raises(SampleIndexError, match=r"index 4 of batch B\[3, 4\] is past the end"):
                    await hp.get_samples(BatchId(3, 4))

    asyncio.run(run())


def test_wrong_token_size_and_truncated_remote_files_are_named(tmp_path: Path) -> None:
    d = counting_dataset(tmp_path / "d", [SEQ_LEN * 4], suffix=".bin")
    (d / "part-001.bin").write_bytes(b"\x00" * 130)
    pydoc = pydoc_dataset(tmp_path / "p")

    async def run() -> None:
        async with HttpDataServer(d) as srv:
            with pytest.raises(Exception, match=r"part-001\.bin: truncated or wrong token size: 130 bytes"):
                await HttpProvider(SingleUrl(srv.url + "/part-001.bin"), SEQ_LEN, token_size=4).open()
        async with HttpDataServer(pydoc) as srv:
            with pytest.raises(RemoteDataError, match="wrong token size: asked for 4, manifest says 2"):
                await HttpProvider(ManifestUrl(srv.url), SEQ_LEN, token_size=4).open()
            victim = pydoc / "tokens-00001.npy"
            victim.write_bytes(victim.read_bytes()[:-6])
            with pytest.raises(RemoteDataError, match=r"/tokens-00001\.npy: truncated or altered: \d+ bytes,"
                                                      r" manifest says"):
                await HttpProvider(ManifestUrl(srv.url), SEQ_LEN).open()

    asyncio.run(run())


def test_answer_for_another_range_is_refused(tmp_path: Path) -> None:
    d = counting_dataset(tmp_path / "d", [SEQ_LEN * 10], suffix=".bin")

    async def shifted(request: web.Request, n: int) -> web.StreamResponse | None:
        return web.Response(status=206, body=b"\x00" * 256, headers={"Content-Range": "bytes 0-255/1280"})

    async def run() -> None:
        async with serve(faulty_app(d, shifted)) as url:
            async with HttpProvider(SingleUrl(url + "/part-000.bin"), SEQ_LEN, token_size=4) as hp:
                with pytest.raises(RemoteDataError, match=r"bytes 256-511: server answered another range"):
                    await hp.get_samples(BatchId(2, 3))

    asyncio.run(run())


def test_http_server_keeps_serving_after_a_garbage_client(tmp_path: Path) -> None:
    d = counting_dataset(tmp_path / "d", [SEQ_LEN * 4], suffix=".bin")

    async def run() -> None:
        async with HttpDataServer(d) as srv:
            reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
            writer.write(b"\x16\x03\x01 not http at all\r\n\r\n" + bytes(range(256)))
            await writer.drain()
            status = await reader.read(100)
            assert b" 400 Bad Request" in status.split(b"\r\n")[0]
            writer.close()
            async with HttpProvider(SingleUrl(srv.url + "/part-000.bin"), SEQ_LEN, token_size=4) as hp:
                assert int((await hp.get_samples(BatchId(3, 3)))[0].input_ids[0]) == 3 * SEQ_LEN

    asyncio.run(run())
