"""coordinator_sdk.rpc_sync against a real HTTP server on 127.0.0.1 that answers well, badly or not at all:
each failure becomes the one line (and exit code) the async commands give for the same failure."""
from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from client.errors import ExitCode, rpc_failure
from coordinator_sdk.rpc_sync import AllEndpointsFailedSync, RpcBadAnswer, RpcCallError, SyncRpc

Answer = Callable[[dict], tuple[int, bytes]]


@contextmanager
def server(answer: Answer) -> Iterator[str]:
    """An HTTP server whose every POST is answered by `answer(request json) -> (status, body)`."""
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(body)
            status, out = answer(body)
            self.send_response(status)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def result(value: object) -> Answer:
    return lambda req: (200, json.dumps({"jsonrpc": "2.0", "id": req["id"], "result": value}).encode())


def free_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"  # closed again: nothing listens there


def line(url: str, e: BaseException) -> str:
    failure = rpc_failure(url, 0.5, e)
    assert failure.exit_code == ExitCode.RPC_UNREACHABLE
    return failure.message


def test_reads_decode_balance_account_and_program_accounts() -> None:
    data = base64.b64encode(b"\x01\x02\x03").decode()
    answers = {"getBalance": {"context": {"slot": 1}, "value": 42},
               "getAccountInfo": {"context": {"slot": 1}, "value": {"data": [data, "base64"], "owner": "x"}},
               "getProgramAccounts": [{"pubkey": "K", "account": {"data": [data, "base64"]}}]}
    requests: list[dict] = []

    def answer(req: dict) -> tuple[int, bytes]:
        requests.append(req)
        return result(answers[req["method"]])(req)

    with server(answer) as url:
        rpc = SyncRpc([url], timeout=5)
        assert rpc.balance("A") == 42
        assert rpc.account_data("A") == b"\x01\x02\x03"
        assert rpc.program_accounts("P", 96, (8, "B")) == [("K", b"\x01\x02\x03")]
    gpa = requests[-1]["params"][1]
    assert gpa["filters"] == [{"dataSize": 96}, {"memcmp": {"offset": 8, "bytes": "B"}}]
    assert len({r["id"] for r in requests}) == 3  # every request has its own id


def test_a_missing_account_is_none() -> None:
    with server(result({"context": {"slot": 1}, "value": None})) as url:
        assert SyncRpc([url]).account_data("A") is None


def test_the_next_endpoint_answers_when_the_first_is_down() -> None:
    with server(result({"context": {"slot": 1}, "value": 7})) as url:
        assert SyncRpc([free_port_url(), url], timeout=5, attempts=1).balance("A") == 7


def test_refused_everywhere_reads_as_no_node() -> None:
    dead = free_port_url()
    with pytest.raises(AllEndpointsFailedSync) as e:
        SyncRpc([dead], timeout=2, attempts=2, backoff=0.01).balance("A")
    assert "after 2 rounds" in str(e.value)
    assert line(dead, e.value).startswith(f"no Solana JSON-RPC node answers at {dead} (")


def test_an_http_error_page_is_not_a_json_rpc_node() -> None:
    with server(lambda req: (404, b"<html>not here</html>")) as url:
        with pytest.raises(AllEndpointsFailedSync) as e:
            SyncRpc([url], attempts=1).balance("A")
        assert line(url, e.value) == f"{url} is not a Solana JSON-RPC node (HTTP 404)"


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"jsonrpc": "2.0", "id": 1}'])
def test_an_answer_that_is_not_json_rpc_is_named(body: bytes) -> None:
    with server(lambda req: (200, body)) as url:
        with pytest.raises(AllEndpointsFailedSync) as e:
            SyncRpc([url], attempts=1).balance("A")
        assert line(url, e.value).startswith(f"the RPC node at {url} failed: RpcBadAnswer: ")


@pytest.mark.parametrize("value", [{"value": "lots"}, {}, None, {"value": {"data": "no list"}}])
def test_a_result_of_the_wrong_shape_is_the_nodes_fault(value: object) -> None:
    with server(result(value)) as url:
        rpc = SyncRpc([url], attempts=1)
        with pytest.raises(RpcBadAnswer, match="wrong shape"):
            rpc.balance("A") if value != {"value": {"data": "no list"}} else rpc.account_data("A")


def test_a_json_rpc_error_is_raised_at_once_not_retried() -> None:
    calls = []

    def answer(req: dict) -> tuple[int, bytes]:
        calls.append(req)
        return 200, json.dumps({"jsonrpc": "2.0", "id": req["id"],
                                "error": {"code": -32602, "message": "Invalid param: WrongSize"}}).encode()

    with server(answer) as url:
        with pytest.raises(RpcCallError, match="Invalid param: WrongSize") as e:
            SyncRpc([url], attempts=4).balance("A")
    assert e.value.code == -32602 and len(calls) == 1


def test_a_node_that_accepts_and_never_answers_times_out() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)  # the kernel accepts; nobody reads or answers
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with pytest.raises(AllEndpointsFailedSync) as e:
            SyncRpc([url], timeout=0.3, attempts=1).balance("A")
    assert line(url, e.value) == (f"the RPC node at {url} accepted the connection but did not answer within"
                                  " 0.5 s (timeout)")


def test_a_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(AllEndpointsFailedSync) as e:
        SyncRpc(["ftp://example"], attempts=1).balance("A")
    assert "not an http(s) URL" in str(e.value)
