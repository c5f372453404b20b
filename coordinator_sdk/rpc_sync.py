"""Blocking JSON-RPC reads for one-shot commands (`psyche balance`, `psyche run status`).

Why not the async stack: a command that makes two or three reads and exits pays ~60 ms importing asyncio,
httpx and solana-py, more than the reads themselves on 127.0.0.1 (bench/cli_startup.py). The standard
library's `http.client` speaks the same JSON-RPC over HTTP/1.1. Long-running work (the client, servers,
senders) keeps `rpc_pool.RpcPool`; this module only reads, with the same failover rule (every endpoint
in turn, `attempts` rounds, doubling pauses) and the same "all endpoints failed" error.
"""
from __future__ import annotations

import base64
import http.client
import json
import time
from typing import Any
from urllib.parse import urlsplit

THROTTLED = (429, 503)


class RpcConnectTimeout(TimeoutError):
    """The TCP (or TLS) connection was not made within the timeout."""


class RpcHttpStatus(Exception):
    """The endpoint answered HTTP, but not 200: not a JSON-RPC node, or one shedding load."""

    def __init__(self, url: str, status: int) -> None:
        super().__init__(f"HTTP {status} from {url}")
        self.status = status


class RpcBadAnswer(Exception):
    """The endpoint answered 200 with something that is not a JSON-RPC response."""


class RpcCallError(Exception):
    """The node answered with a JSON-RPC error object: the request was understood and refused (no retry)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{message} (JSON-RPC error {code})")
        self.code = code


class AllEndpointsFailedSync(Exception):
    """No endpoint answered in `attempts` rounds; `last` is the last transport error (for its wording)."""

    def __init__(self, message: str, last: BaseException) -> None:
        super().__init__(message)
        self.last = last


def post_json(url: str, body: dict[str, Any], timeout: float) -> Any:
    """One JSON-RPC POST; raises the transport errors above, or OSError/TimeoutError from the socket."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RpcBadAnswer(f"{url!r} is not an http(s) URL")
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(parts.hostname, parts.port, timeout=timeout)
    try:
        try:
            conn.connect()
        except TimeoutError as e:
            raise RpcConnectTimeout(str(e) or "timed out") from e
        conn.request("POST", parts.path or "/", json.dumps(body), {"Content-Type": "application/json"})
        resp = conn.getresponse()
        raw = resp.read()
        if resp.status != 200:
            raise RpcHttpStatus(url, resp.status)
    finally:
        conn.close()
    try:
        return json.loads(raw)
    except ValueError:
        raise RpcBadAnswer(f"{url} answered HTTP 200 with something that is not JSON") from None


class SyncRpc:
    def __init__(self, urls: list[str], timeout: float = 10.0, attempts: int = 4, backoff: float = 0.2) -> None:
        if not urls:
            raise ValueError("SyncRpc needs at least one RPC URL")
        self.urls, self.timeout, self.attempts, self.backoff = list(urls), timeout, attempts, backoff
        self._id = 0

    def call(self, method: str, params: list[Any]) -> Any:
        """The call's `result`, from the first endpoint that answers; a JSON-RPC error is raised at once."""
        errors: dict[str, str] = {}
        last: BaseException | None = None
        delay = self.backoff
        for attempt in range(self.attempts):
            for url in self.urls:
                self._id += 1
                try:
                    answer = post_json(url, {"jsonrpc": "2.0", "id": self._id, "method": method, "params": params},
                                       self.timeout)
                except (OSError, RpcHttpStatus, RpcBadAnswer, http.client.HTTPException) as e:
                    errors[url], last = f"{type(e).__name__}: {e or 'no detail'}", e
                    continue
                if not isinstance(answer, dict) or ("result" not in answer and "error" not in answer):
                    errors[url] = last_text = f"{url} answered something that is not a JSON-RPC response"
                    last = RpcBadAnswer(last_text)
                    continue
                if answer.get("error") is not None:
                    err = answer["error"] if isinstance(answer["error"], dict) else {}
                    raise RpcCallError(int(err.get("code", 0)), str(err.get("message", answer["error"])))
                return answer["result"]
            if attempt + 1 < self.attempts:
                wait = delay * (4 if isinstance(last, RpcHttpStatus) and last.status in THROTTLED else 1)
                time.sleep(wait)
                delay *= 2
        detail = "; ".join(f"{u}: {err}" for u, err in errors.items())
        assert last is not None
        raise AllEndpointsFailedSync(f"no RPC endpoint answered after {self.attempts} rounds ({detail})", last)

    def balance(self, key: str) -> int:
        result = self.call("getBalance", [key, {"commitment": "confirmed"}])
        return _shaped("getBalance", lambda: int(result["value"]))

    def account_data(self, key: str) -> bytes | None:
        value = self.call("getAccountInfo", [key, {"encoding": "base64", "commitment": "confirmed"}])
        return _shaped("getAccountInfo", lambda: None if value["value"] is None
                       else base64.b64decode(value["value"]["data"][0], validate=True))

    def program_accounts(self, program: str, size: int, memcmp: tuple[int, str]) -> list[tuple[str, bytes]]:
        """(address, data) of `program`'s accounts of `size` bytes holding the base58 `memcmp[1]` at offset
        `memcmp[0]` (the filters every node applies server-side)."""
        filters = [{"dataSize": size}, {"memcmp": {"offset": memcmp[0], "bytes": memcmp[1]}}]
        rows = self.call("getProgramAccounts", [program, {"encoding": "base64", "commitment": "confirmed",
                                                          "filters": filters}])
        return _shaped("getProgramAccounts", lambda: [(str(r["pubkey"]), base64.b64decode(r["account"]["data"][0],
                                                                                       validate=True))
                                                       for r in rows])


def _shaped(method: str, read: Any) -> Any:
    """A result of the wrong shape is the node's fault, named as such (not a KeyError from deep inside)."""
    try:
        return read()
    except (KeyError, IndexError, TypeError, ValueError) as e:
        raise RpcBadAnswer(f"{method} answered a result of the wrong shape ({type(e).__name__}: {e})") from None
