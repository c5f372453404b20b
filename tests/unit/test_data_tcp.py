"""TCP data service on 127.0.0.1: authentication, round policy, reconnects and hostile peers."""
from __future__ import annotations

import asyncio
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgpack
import numpy as np
import pytest
from data_helpers import SEQ_LEN, pydoc_dataset
from nacl.signing import SigningKey

from data_providers.authority import AllowlistAuthority, StaticRoundAuthority
from data_providers.local import LocalProvider
from data_providers.tcp_client import TcpDataProvider
from data_providers.tcp_protocol import (
    AUTH_DOMAIN,
    REJECT_NOT_IN_ROUND,
    REJECT_OUT_OF_RANGE,
    REJECT_WRONG_BATCH,
    ProtocolError,
    RejectedError,
    encode_frame,
    read_frame,
)
from data_providers.tcp_server import TcpDataServer
from data_providers.types import BatchId, RemoteDataError

ALICE, BOB, MALLORY = (SigningKey(bytes([i]) * 32) for i in (1, 2, 3))


def key(k: SigningKey) -> bytes:
    return bytes(k.verify_key)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> LocalProvider:
    return LocalProvider(pydoc_dataset(tmp_path_factory.mktemp("tcp") / "d"), SEQ_LEN)


async def raw_peer(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    challenge = await read_frame(reader, 1 << 20, "server")
    assert challenge is not None and challenge["type"] == "challenge"
    return reader, writer, challenge["nonce"]


async def authenticate(port: int, k: SigningKey) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer, nonce = await raw_peer(port)
    signature = k.sign(AUTH_DOMAIN + nonce).signature
    writer.write(encode_frame({"type": "auth", "pubkey": key(k), "signature": signature}))
    welcome = await read_frame(reader, 1 << 20, "server")
    assert welcome is not None and welcome["type"] == "welcome"
    return reader, writer


def test_tcp_serves_the_same_tokens_as_local(dataset: LocalProvider) -> None:
    async def run() -> None:
        auth = StaticRoundAuthority({key(ALICE): BatchId(10, 40), key(BOB): BatchId(41, 60)})
        async with TcpDataServer(dataset, auth) as srv:
            async with TcpDataProvider("127.0.0.1", srv.port, ALICE) as a, \
                    TcpDataProvider("127.0.0.1", srv.port, BOB) as b:
                assert a.num_samples == dataset.num_samples and a.seq_len == SEQ_LEN
                got_a, got_b = await asyncio.gather(a.get_samples(BatchId(10, 40)),
                                                    b.get_samples(BatchId(41, 60)))
                assert got_a == await dataset.get_samples(BatchId(10, 40))
                assert got_b == await dataset.get_samples(BatchId(41, 60))
                assert await a.get_samples(BatchId(20, 22)) == got_a[10:13]  # part of the assignment is fine
                assert a.connects == 1 and srv.batches_served == 3

    asyncio.run(run())


def test_clients_outside_the_epoch_are_rejected_by_name(dataset: LocalProvider) -> None:
    async def run() -> None:
        auth = StaticRoundAuthority({key(ALICE): BatchId(0, 3)})
        async with TcpDataServer(dataset, auth) as srv:
            pattern = rf"rejected: not_in_this_round: key {key(MALLORY).hex()}"
            with pytest.raises(RejectedError, match=pattern) as e:
                await TcpDataProvider("127.0.0.1", srv.port, MALLORY, reconnect_attempts=0).open()
            assert e.value.reason == REJECT_NOT_IN_ROUND
            assert any(key(MALLORY).hex()[:16] in msg for msg in srv.peer_errors)

    asyncio.run(run())


def test_wrong_batch_is_rejected_and_the_connection_stays_usable(dataset: LocalProvider) -> None:
    async def run() -> None:
        auth = StaticRoundAuthority({key(ALICE): BatchId(0, 3), key(BOB): None})
        async with TcpDataServer(dataset, auth) as srv:
            async with TcpDataProvider("127.0.0.1", srv.port, ALICE) as a:
                with pytest.raises(RejectedError, match=r"B\[2, 9\] is not within this round's assignment"
                                                        r" \(B\[0, 3\]\)") as e:
                    await a.get_samples(BatchId(2, 9))
                assert e.value.reason == REJECT_WRONG_BATCH
                assert len(await a.get_samples(BatchId(0, 3))) == 4 and a.connects == 1
                # next round: the assignment moves on, the old batch is refused on the same connection
                auth.set_round({key(ALICE): BatchId(4, 7)})
                with pytest.raises(RejectedError, match=r"wrong_batch_for_round: B\[0, 3\]"):
                    await a.get_samples(BatchId(0, 3))
                assert len(await a.get_samples(BatchId(4, 7))) == 4
                auth.set_round({key(BOB): BatchId(0, 3)})  # Alice left the epoch
                with pytest.raises(RejectedError, match="not_in_this_round"):
                    await a.get_samples(BatchId(4, 7))
            async with TcpDataProvider("127.0.0.1", srv.port, BOB) as b:
                auth.set_round({key(BOB): None})  # member without a batch this round
                with pytest.raises(RejectedError, match=r"assignment \(none\)"):
                    await b.get_samples(BatchId(0, 0))

    asyncio.run(run())


def test_index_past_the_end_is_rejected_naming_the_index(dataset: LocalProvider) -> None:
    async def run() -> None:
        n = dataset.num_samples
        async with TcpDataServer(dataset, AllowlistAuthority([key(ALICE)], n + 10)) as srv:
            async with TcpDataProvider("127.0.0.1", srv.port, ALICE) as a:
                pattern = rf"index_out_of_range: .*sample index {n} of batch"
                with pytest.raises(RejectedError, match=pattern) as e:
                    await a.get_samples(BatchId(n - 1, n + 1))
                assert e.value.reason == REJECT_OUT_OF_RANGE
                assert len(await a.get_samples(BatchId(n - 2, n - 1))) == 2

    asyncio.run(run())


def test_garbage_oversized_and_forged_peers_do_not_disturb_others(dataset: LocalProvider) -> None:
    async def attack(port: int, send: Callable[[asyncio.StreamWriter, bytes], None]) -> str:
        reader, writer, nonce = await raw_peer(port)
        send(writer, nonce)
        await writer.drain()
        reply = await read_frame(reader, 1 << 20, "server")
        assert reply is not None and reply["type"] == "error"
        assert await reader.read() == b""  # and the server hung up on it
        writer.close()
        return reply["detail"]

    def garbage(w: asyncio.StreamWriter, _: bytes) -> None:
        w.write(struct.pack(">I", 7) + b"\xc1\xc1\xc1\xc1\xc1\xc1\xc1")

    def not_a_map(w: asyncio.StreamWriter, _: bytes) -> None:
        w.write(struct.pack(">I", 3) + msgpack.packb([1, 2]))

    def oversized(w: asyncio.StreamWriter, _: bytes) -> None:
        w.write(struct.pack(">I", 2**31))

    def forged(w: asyncio.StreamWriter, nonce: bytes) -> None:  # claims Alice's key, signs with Mallory's
        w.write(encode_frame({"type": "auth", "pubkey": key(ALICE),
                              "signature": MALLORY.sign(AUTH_DOMAIN + nonce).signature}))

    def replayed(w: asyncio.StreamWriter, _: bytes) -> None:  # a valid signature over another nonce
        w.write(encode_frame({"type": "auth", "pubkey": key(ALICE),
                              "signature": ALICE.sign(AUTH_DOMAIN + b"\x00" * 32).signature}))

    def short_key(w: asyncio.StreamWriter, _: bytes) -> None:
        w.write(encode_frame({"type": "auth", "pubkey": b"\x01" * 31, "signature": b"\x00" * 64}))

    def request_first(w: asyncio.StreamWriter, _: bytes) -> None:
        w.write(encode_frame({"type": "request", "start": 0, "end": 1}))

    async def run() -> None:
        auth = StaticRoundAuthority({key(ALICE): BatchId(0, 9)})
        async with TcpDataServer(dataset, auth) as srv:
            async with TcpDataProvider("127.0.0.1", srv.port, ALICE) as honest:
                want = await honest.get_samples(BatchId(0, 9))
                expected = {garbage: "frame is not valid msgpack", not_a_map: "not a message map",
                            oversized: "oversized frame of 2147483648 bytes (limit 65536)",
                            forged: "challenge signature does not verify", replayed: "does not verify",
                            short_key: "field 'pubkey' must be 32 bytes, got 31",
                            request_first: "unexpected 'request' message (wanted auth)"}
                for send, message in expected.items():
                    detail = await attack(srv.port, send)
                    assert message in detail and detail.startswith("peer 127.0.0.1:")
                    assert await honest.get_samples(BatchId(0, 9)) == want  # still served, same connection
                assert honest.connects == 1 and len(srv.peer_errors) == len(expected)
                # an authenticated peer that turns hostile is cut off, naming its key
                reader, writer = await authenticate(srv.port, ALICE)
                writer.write(encode_frame({"type": "request", "start": 5, "end": "x"}))
                reply = await read_frame(reader, 1 << 20, "server")
                assert reply is not None and reply["type"] == "error"
                assert f"{key(ALICE).hex()[:16]}@127.0.0.1" in reply["detail"] and "'end'" in reply["detail"]
                writer.close()
                assert await honest.get_samples(BatchId(0, 9)) == want

    asyncio.run(run())


def test_silent_peer_times_out_during_authentication(dataset: LocalProvider) -> None:
    async def run() -> None:
        async with TcpDataServer(dataset, StaticRoundAuthority({}), auth_timeout_s=0.2) as srv:
            reader, writer, _ = await raw_peer(srv.port)
            reply = await read_frame(reader, 1 << 20, "server")
            assert reply is not None and reply == {"type": "error", "detail": "authentication timed out"}
            writer.close()

    asyncio.run(run())


def test_client_reconnects_after_the_server_restarts(dataset: LocalProvider) -> None:
    async def run() -> None:
        auth = StaticRoundAuthority({key(ALICE): BatchId(0, 9)})
        srv = await TcpDataServer(dataset, auth).start()
        port = srv.port
        client = await TcpDataProvider("127.0.0.1", port, ALICE, backoff_s=0.05).open()
        first = await client.get_samples(BatchId(0, 9))
        await srv.stop()
        srv = await TcpDataServer(dataset, auth, port=port).start()
        assert await client.get_samples(BatchId(0, 9)) == first and client.connects == 2
        await srv.stop()
        pattern = rf"peer 127.0.0.1:{port}: connection failed after 3 attempts"
        with pytest.raises(RemoteDataError, match=pattern):
            client.reconnect_attempts = 2
            await client.get_samples(BatchId(0, 9))
        await client.close()

    asyncio.run(run())


async def fake_server(reply: Callable[[dict], Awaitable[bytes]]) -> tuple[asyncio.Server, int]:
    """A misbehaving data server: a normal handshake, then whatever `reply` makes of each request."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(encode_frame({"type": "challenge", "version": 1, "nonce": b"\x07" * 32}))
        await read_frame(reader, 1 << 16, "client")
        writer.write(encode_frame({"type": "welcome", "num_samples": 100, "seq_len": 4}))
        while (msg := await read_frame(reader, 1 << 16, "client")) is not None:
            writer.write(await reply(msg))
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def test_client_rejects_wrong_shape_oversized_and_garbage_replies() -> None:
    tokens = np.arange(8, dtype="<i4").tobytes()

    async def wrong_shape(msg: dict) -> bytes:  # 2 samples of 4 tokens for a 3-sample batch
        return encode_frame({"type": "data", "start": msg["start"], "end": msg["end"], "seq_len": 4,
                             "tokens": tokens})

    async def wrong_batch(msg: dict) -> bytes:
        return encode_frame({"type": "data", "start": 50, "end": 51, "seq_len": 4, "tokens": tokens})

    async def huge(msg: dict) -> bytes:
        return struct.pack(">I", 5000) + b"\x00" * 5000

    async def garbage(msg: dict) -> bytes:
        return struct.pack(">I", 4) + b"\xc1\xc1\xc1\xc1"

    cases = [(wrong_shape, BatchId(0, 2), r"wrong-shape result for B\[0, 2\]: 32 bytes for 3 samples of 4"),
             (wrong_batch, BatchId(0, 1), r"asked for B\[0, 1\], got data for B\[50, 51\]"),
             (huge, BatchId(0, 1), "oversized frame of 5000 bytes"),
             (garbage, BatchId(0, 1), "frame is not valid msgpack")]

    async def run() -> None:
        for reply, batch, message in cases:
            server, port = await fake_server(reply)
            async with server:
                client = TcpDataProvider("127.0.0.1", port, ALICE, max_frame=4096)
                async with client:
                    with pytest.raises(ProtocolError, match=rf"peer 127.0.0.1:{port}: {message}"):
                        await client.get_samples(batch)

    asyncio.run(run())


def test_a_bad_token_in_the_servers_files_is_reported_not_fatal(tmp_path: Path) -> None:
    tokens = np.arange(SEQ_LEN * 4, dtype=np.uint32)
    tokens[SEQ_LEN * 2] = 2**32 - 1
    (tmp_path / "t.bin").write_bytes(tokens.astype("<u4").tobytes())
    provider = LocalProvider(tmp_path, SEQ_LEN, token_size=4)

    async def run() -> None:
        async with TcpDataServer(provider, AllowlistAuthority([key(ALICE)], 4)) as srv:
            async with TcpDataProvider("127.0.0.1", srv.port, ALICE) as a:
                with pytest.raises(RejectedError, match=r"server_data_error: .*t\.bin: sample index 2 holds"):
                    await a.get_samples(BatchId(1, 3))
                assert len(await a.get_samples(BatchId(0, 1))) == 2 and a.connects == 1

    asyncio.run(run())
