"""Bad and awkward input at the protocol level: bodies split over writes or large, oversize and gzip-bomb
bodies (413), deeply nested JSON, oversize transactions, CORS, minContextSlot, slow clients (request
timeout), and the order of a subscription id and its first notification."""
from __future__ import annotations

import asyncio
import gzip
import json
import socket
import time
import urllib.error
import urllib.request

import localnet_fixture as fx
import pytest
from localnet_harness import Localnet, rpc
from solana.rpc.api import Client
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.transaction import Transaction


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    n = Localnet(tmp_path_factory.mktemp("proto") / "ledger")
    yield n
    n.stop()


@pytest.fixture
def impatient_net(tmp_path):
    """--request-timeout 1: a request's headers, and then its body, must arrive within 1 s."""
    n = Localnet(tmp_path / "ledger", extra=("--request-timeout", "1"))
    yield n
    n.stop()


def _post(url: str, body: bytes, headers: dict | None = None) -> tuple[int, dict, dict]:
    req = urllib.request.Request(url, body, {"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read() or b"null")


def _raw_http(port: int, parts: list[bytes], pause: float = 0.3) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        for p in parts:
            s.sendall(p)
            time.sleep(pause)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


def test_body_in_two_writes_and_large_valid_body(net: Localnet) -> None:
    body = json.dumps({"jsonrpc": "2.0", "id": 7, "method": "getHealth"}).encode()
    head = (f"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode()
    reply = _raw_http(net.port, [head + body[:10], body[10:]])
    assert reply.startswith(b"HTTP/1.1 200") and b'"result": "ok"' in reply
    big = b'{"jsonrpc": "2.0", "id": 1, "method": "getSlot"' + b" " * 700_000 + b"}"
    status, _, out = _post(net.url, big)
    assert status == 200 and isinstance(out["result"], int)


def test_oversize_and_gzip_bomb_bodies_get_413(net: Localnet) -> None:
    status, _, out = _post(net.url, b"[" + b" " * (3 * 1024 * 1024) + b"]")
    assert status == 413 and "too large" in out["error"]["message"]
    bomb = gzip.compress(b'{"jsonrpc":"2.0","id":1,"method":"getSlot","x":"' + b"0" * (64 * 1024 * 1024) + b'"}')
    status, _, out = _post(net.url, bomb, {"content-encoding": "gzip"})
    assert status == 413 and "inflates" in out["error"]["message"]
    small = gzip.compress(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "getHealth"}).encode())
    assert _post(net.url, small, {"content-encoding": "gzip"})[2]["result"] == "ok"
    assert rpc(net.url, "getHealth")["result"] == "ok"


def test_deeply_nested_json_is_a_json_rpc_error(net: Localnet) -> None:
    status, _, out = _post(net.url, b"[" * 200_000 + b"]" * 200_000)
    assert status == 200 and out["error"]["code"] == -32700 and "nested" in out["error"]["message"]
    deep_id = b'{"jsonrpc": "2.0", "method": "getHealth", "id": ' + b"[" * 900 + b"]" * 900 + b"}"
    status, _, out = _post(net.url, deep_id)
    assert status == 200 and ("result" in out or out["error"]["code"] == -32600)


def test_transactions_over_the_packet_limit_are_refused(net: Localnet) -> None:
    c = Client(net.url)
    payer = fx.funded(c, 10**9)
    bh = Hash.from_string(rpc(net.url, "getLatestBlockhash")["result"]["value"]["blockhash"])
    memo = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TctzXVSRvF7AFSpfNJSVWe")
    tx = Transaction.new_signed_with_payer([Instruction(memo, b"x" * 1200, [])], payer.pubkey(), [payer], bh)
    import base64
    out = rpc(net.url, "sendTransaction", [base64.b64encode(bytes(tx)).decode(), {"encoding": "base64"}])
    assert out["error"]["code"] == -32602 and "too large" in out["error"]["message"]
    many = [Keypair().pubkey() for _ in range(40)]  # 40 accounts: beyond 1232 bytes, used to panic LiteSVM
    from solders.instruction import AccountMeta
    tx = Transaction.new_signed_with_payer([Instruction(memo, b"", [AccountMeta(k, False, True) for k in many])],
                                           payer.pubkey(), [payer], bh)
    out = rpc(net.url, "simulateTransaction", [base64.b64encode(bytes(tx)).decode(), {"encoding": "base64"}])
    assert out["error"]["code"] == -32602 and "too large" in out["error"]["message"]
    assert rpc(net.url, "getHealth")["result"] == "ok"


def test_cors_preflight_and_headers(net: Localnet) -> None:
    req = urllib.request.Request(net.url, method="OPTIONS", headers={
        "Origin": "http://dapp.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,solana-client"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200 and r.headers["Access-Control-Allow-Origin"] == "*"
        assert "solana-client" in r.headers["Access-Control-Allow-Headers"]
    _, headers, _ = _post(net.url, json.dumps({"jsonrpc": "2.0", "id": 1, "method": "getSlot"}).encode(),
                          {"Origin": "http://dapp.example"})
    assert headers["Access-Control-Allow-Origin"] == "*"


def test_min_context_slot_is_enforced(net: Localnet) -> None:
    slot = rpc(net.url, "getSlot")["result"]
    out = rpc(net.url, "getBalance", [str(Pubkey.new_unique()), {"minContextSlot": slot + 10_000}])
    assert out["error"]["code"] == -32016 and out["error"]["data"]["contextSlot"] >= slot
    assert rpc(net.url, "getBalance", [str(Pubkey.new_unique()), {"minContextSlot": slot}])["result"]["value"] == 0


def test_slow_clients_are_cut_off_and_never_starve_others(impatient_net: Localnet) -> None:
    net = impatient_net
    socks = []
    for _ in range(50):  # half-sent headers
        s = socket.create_connection(("127.0.0.1", net.port), timeout=8)
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n")
        socks.append(s)
    body_stall = socket.create_connection(("127.0.0.1", net.port), timeout=8)
    body_stall.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
    assert rpc(net.url, "getHealth")["result"] == "ok"
    start = time.monotonic()
    for s in socks:  # --request-timeout 1: each is closed by the server well within the socket timeout
        assert s.recv(1024) == b""
        s.close()
    assert time.monotonic() - start < 8
    reply = body_stall.recv(65536)
    body_stall.close()
    assert reply.split(b"\r\n")[0].startswith(b"HTTP/1.1 408"), reply[:200]
    assert rpc(net.url, "getHealth")["result"] == "ok"


def test_idle_keep_alive_outlives_the_request_timeout(impatient_net: Localnet) -> None:
    """Pooled connections (httpx, Node, requests) sit idle between calls: that is not a slow request."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "getHealth"}).encode()
    request = (f"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
               "\r\n").encode() + body
    with socket.create_connection(("127.0.0.1", impatient_net.port), timeout=8) as s:
        for _ in range(2):
            s.sendall(request)
            assert s.recv(65536).startswith(b"HTTP/1.1 200")
            time.sleep(2.0)  # twice --request-timeout, idle


def test_signature_subscribe_answers_the_id_before_the_notification(net: Localnet) -> None:
    import websockets

    c = Client(net.url)
    payer = fx.funded(c, 10**9)
    sig = fx.send(c, payer, [])  # an empty transaction: only the fee

    async def main():
        async with websockets.connect(net.ws_url) as ws:
            await ws.send(json.dumps({"jsonrpc": "2.0", "id": 5, "method": "signatureSubscribe", "params": [sig]}))
            first = json.loads(await asyncio.wait_for(ws.recv(), 5))
            second = json.loads(await asyncio.wait_for(ws.recv(), 5))
            return first, second

    first, second = asyncio.run(main())
    assert first["id"] == 5 and isinstance(first["result"], int)
    assert second["method"] == "signatureNotification" and second["params"]["subscription"] == first["result"]
    assert second["params"]["result"]["value"] == {"err": None}


def test_account_notifications_only_for_accounts_a_transaction_can_write(net: Localnet) -> None:
    """A validator stores (and notifies) writable accounts only; an account a transaction merely reads
    must not wake its subscribers."""
    import websockets
    from solders.instruction import AccountMeta

    c = Client(net.url)
    payer, watched = fx.funded(c, 10**9), fx.funded(c, 10**7)
    memo_v1 = Pubkey.from_string("Memo1UhkJRfHyvLMcVucJwxXeuD728EqVDDwQDxFMNo")

    async def main():
        async with websockets.connect(net.ws_url) as ws:
            await ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "accountSubscribe",
                                      "params": [str(watched.pubkey()), {"encoding": "base64"}]}))
            json.loads(await ws.recv())
            fx.send(c, payer, [Instruction(memo_v1, b"read only", [AccountMeta(watched.pubkey(), False, False)])])
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(ws.recv(), 1.0)
            fx.send(c, payer, [fx.transfer(fx.TransferParams(from_pubkey=payer.pubkey(), to_pubkey=watched.pubkey(),
                                                             lamports=1))])
            return json.loads(await asyncio.wait_for(ws.recv(), 5))

    note = asyncio.run(main())
    assert note["method"] == "accountNotification" and note["params"]["result"]["value"]["lamports"] == 10**7 + 1
