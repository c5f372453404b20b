"""`psyche localnet --rate-limit N --latency MS`: a real localnet process behaving like a public RPC
provider (429 with Retry-After beyond N calls a second, over HTTP and websockets; every reply late by MS),
and getSignaturesForAddress with the `"limit": null` solana-py sends by default."""
from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner
from localnet_harness import Localnet

from localnet.cli import localnet as localnet_cmd
from localnet.hostile import RateLimiter

RATE, LATENCY_MS = 5, 300


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Localnet]:
    net = Localnet(tmp_path_factory.mktemp("hostile") / "ledger",
                   extra=("--rate-limit", str(RATE), "--latency", str(LATENCY_MS)))
    try:
        yield net
    finally:
        net.stop()


def post(url: str, method: str, params: list) -> tuple[int, dict, dict]:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    req = urllib.request.Request(url, body, {"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read())


def quiet_second() -> None:
    time.sleep(1.2)  # the bucket refills to its full burst


def test_rate_limit_answers_429_with_retry_after_then_serves_again(hostile: Localnet) -> None:
    quiet_second()
    with ThreadPoolExecutor(RATE + 3) as pool:  # at once: with the latency, one after another stays under it
        answers = list(pool.map(lambda _: post(hostile.url, "getSlot", []), range(RATE + 3)))
    codes = [a[0] for a in answers]
    assert codes.count(200) >= RATE - 1 and 429 in codes, codes
    status, headers, body = next(a for a in answers if a[0] == 429)
    assert int(headers["Retry-After"]) >= 1 and body["error"]["code"] == 429
    time.sleep(int(headers["Retry-After"]))
    assert post(hostile.url, "getSlot", [])[0] == 200


def test_a_batch_takes_one_token_per_call(hostile: Localnet) -> None:
    quiet_second()
    body = json.dumps([{"jsonrpc": "2.0", "id": i, "method": "getSlot"} for i in range(RATE - 1)]).encode()
    req = urllib.request.Request(hostile.url, body, {"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert len(json.loads(r.read())) == RATE - 1
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 429 and int(e.value.headers["Retry-After"]) >= 1


def test_websocket_calls_share_the_limit(hostile: Localnet) -> None:
    quiet_second()

    async def body() -> list[dict]:
        async with aiohttp.ClientSession() as s, s.ws_connect(hostile.ws_url) as ws:
            await ws.send_str(json.dumps([{"jsonrpc": "2.0", "id": i, "method": "rootSubscribe"}
                                          for i in range(RATE + 3)]))
            out: list[dict] = []
            while len(out) < RATE + 3:
                msg = json.loads((await ws.receive(timeout=10)).data)
                if "id" in msg:  # not a notification
                    out.append(msg)
            return out

    replies = asyncio.run(body())
    refused = [r for r in replies if "error" in r]
    assert refused and all(r["error"]["code"] == 429 for r in refused), replies
    assert any("result" in r for r in replies)


def test_latency_delays_every_reply(hostile: Localnet) -> None:
    quiet_second()
    t0 = time.monotonic()
    status, _, body = post(hostile.url, "getHealth", [])
    assert status == 200 and body["result"] == "ok"
    assert time.monotonic() - t0 >= LATENCY_MS / 1000 * 0.95


def test_signatures_for_address_with_null_limit_is_the_default(hostile: Localnet) -> None:
    quiet_second()
    faucet = post(hostile.url, "getIdentity", [])[2]["result"]["identity"]
    status, _, body = post(hostile.url, "getSignaturesForAddress", [faucet, {"limit": None}])
    assert status == 200 and body.get("result") == [], body
    quiet_second()
    status, _, body = post(hostile.url, "getSignaturesForAddress", [faucet, {"limit": 1001}])
    assert body["error"]["message"] == "Invalid limit; max 1000"


def test_null_limit_from_solana_py(tmp_path: Path) -> None:
    """What solana-py sends by default ("limit": null) is answered, for an address with history."""
    from solana.rpc.api import Client
    from solders.keypair import Keypair

    net = Localnet(tmp_path / "ledger")
    try:
        c = Client(net.url)
        kp = Keypair()
        sig = c.request_airdrop(kp.pubkey(), 10**9).value
        c.confirm_transaction(sig)
        found = c.get_signatures_for_address(kp.pubkey()).value
        assert [s.signature for s in found] == [sig]
    finally:
        net.stop()


def test_token_bucket_refills_at_the_rate() -> None:
    now = [0.0]
    bucket = RateLimiter(2, clock=lambda: now[0])
    assert bucket.take() == 0 and bucket.take() == 0
    assert bucket.take() == pytest.approx(0.5)
    now[0] += 0.5
    assert bucket.take() == 0 and bucket.take() > 0
    assert RateLimiter.retry_after(0.01) == "1" and RateLimiter.retry_after(2.2) == "3"


@pytest.mark.parametrize("args, message", [
    (["--rate-limit", "-1"], "--rate-limit"), (["--latency", "-5"], "--latency"),
    (["--latency", "soon"], "--latency")])
def test_bad_hostile_switches_are_usage_errors(args: list[str], message: str) -> None:
    res = CliRunner().invoke(localnet_cmd, args)
    assert res.exit_code == 2 and message in res.output


def test_account_stream_survives_a_refused_subscription(tmp_path: Path) -> None:
    """A subscription refused with 429 is treated as a websocket that is down: the stream polls (its polls
    wait out their own 429s) and subscribes again, instead of waiting forever on a subscription it lacks."""
    from solders.keypair import Keypair

    from coordinator_sdk.account_stream import AccountStream
    from coordinator_sdk.rpc_pool import RpcPool

    net = Localnet(tmp_path / "ledger", extra=("--rate-limit", "2"))
    try:
        funded = Keypair().pubkey()
        assert post(net.url, "requestAirdrop", [str(funded), 10**9])[0] == 200

        async def body() -> dict:
            async with RpcPool([net.url]) as pool:
                stream = AccountStream(pool, funded, lambda b: b, lambda b: 0, poll_interval=0.2, max_backoff=0.5)
                with ThreadPoolExecutor(4) as burn:  # keep the bucket empty while the stream subscribes
                    load = [burn.submit(post, net.url, "getSlot", []) for _ in range(12)]
                    async with stream:
                        await stream.next(timeout=20)
                        for _ in range(50):
                            if stream.ws_live.is_set():
                                break
                            await asyncio.sleep(0.2)
                    [f.result() for f in load]
                return {**stream.stats, "live": stream.ws_live.is_set(), "throttled": pool.throttled}

        stats = asyncio.run(body())
        assert stats["reconnects"] >= 1 and stats["live"] and stats["poll"] >= 1, stats
    finally:
        net.stop()
