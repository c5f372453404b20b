"""Solana pubsub over websockets: accountSubscribe, signatureSubscribe, slotSubscribe and their
unsubscribes. Chain events are queued per connection and written by one task per connection, so a slow
client never blocks the chain (its queue is bounded; overflowing it closes that connection)."""
from __future__ import annotations

import asyncio
import itertools
import json
import logging

from aiohttp import web
from solders.account import Account
from solders.pubkey import Pubkey

from localnet.chain import Chain, RpcError
from localnet.encoding import account_json, parse_pubkey

log = logging.getLogger("localnet.pubsub")
QUEUE_LIMIT = 10_000
_EMPTY = Account(0, b"", Pubkey.default(), False, 0)


class Connection:
    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(QUEUE_LIMIT)
        self.subs: dict[int, tuple[str, object, str]] = {}  # id -> (kind, key, encoding)
        self.writer = asyncio.create_task(self._write())

    def send(self, message: dict | None) -> None:
        if message is None:
            return
        try:
            self.queue.put_nowait(json.dumps(message))
        except asyncio.QueueFull:
            log.warning("closing a websocket whose client does not read its notifications")
            self.queue = asyncio.Queue(1)
            self.queue.put_nowait(None)
            asyncio.create_task(self.ws.close())

    async def _write(self) -> None:
        while True:
            msg = await self.queue.get()
            if msg is None or self.ws.closed:
                return
            try:
                await self.ws.send_str(msg)
            except (ConnectionError, RuntimeError):
                return


class PubSub:
    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self.conns: set[Connection] = set()
        self.ids = itertools.count(1)
        chain.listeners.append(self.on_event)

    def connect(self, ws: web.WebSocketResponse) -> Connection:
        conn = Connection(ws)
        self.conns.add(conn)
        return conn

    def disconnect(self, conn: Connection) -> None:
        self.conns.discard(conn)
        conn.writer.cancel()

    async def close(self) -> None:
        for conn in list(self.conns):
            await conn.ws.close()
            self.disconnect(conn)

    def _ctx(self, value: object) -> dict:
        return {"context": {"slot": self.chain.slot}, "value": value}

    def handle(self, conn: Connection, req: object) -> dict:
        req_id = req.get("id") if isinstance(req, dict) else None
        if not isinstance(req, dict) or not isinstance(req.get("method"), str):
            return {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid request"}, "id": req_id}
        params = req.get("params") or []
        try:
            if not isinstance(params, list):
                raise RpcError(-32602, "Invalid params: expected an array")
            result = self._dispatch(conn, req["method"], params)
        except RpcError as e:
            return {"jsonrpc": "2.0", "error": {"code": e.code, "message": e.message}, "id": req_id}
        return {"jsonrpc": "2.0", "result": result, "id": req_id}

    def _dispatch(self, conn: Connection, method: str, params: list) -> object:
        cfg = params[1] if len(params) > 1 and isinstance(params[1], dict) else {}
        if method == "accountSubscribe":
            key = parse_pubkey(params[0] if params else None)
            return self._subscribe(conn, "account", key, cfg.get("encoding", "base64"))
        if method == "signatureSubscribe":
            sig = str(params[0]) if params else ""
            if not sig:
                raise RpcError(-32602, "Invalid params: missing signature")
            sub = self._subscribe(conn, "signature", sig, "")
            rec = self.chain.statuses.get(sig)
            if rec is not None:
                self._notify_signature(conn, sub, rec["err"])
            return sub
        if method == "slotSubscribe":
            return self._subscribe(conn, "slot", None, "")
        if method in ("accountUnsubscribe", "signatureUnsubscribe", "slotUnsubscribe"):
            sub = params[0] if params else None
            kind = method[:-len("Unsubscribe")]
            if not isinstance(sub, int) or conn.subs.get(sub, ("",))[0] != kind:
                raise RpcError(-32602, f"Invalid subscription id: {sub!r}")
            del conn.subs[sub]
            return True
        raise RpcError(-32601, f"Method not found: {method}")

    def _subscribe(self, conn: Connection, kind: str, key: object, encoding: str) -> int:
        sub = next(self.ids)
        conn.subs[sub] = (kind, key, encoding)
        return sub

    def _notify_signature(self, conn: Connection, sub: int, err: object) -> None:
        conn.send({"jsonrpc": "2.0", "method": "signatureNotification",
                   "params": {"result": self._ctx({"err": err}), "subscription": sub}})
        conn.subs.pop(sub, None)  # signature subscriptions end with their one notification

    def on_event(self, kind: str, payload: object) -> None:
        for conn in list(self.conns):
            for sub, (sub_kind, key, encoding) in list(conn.subs.items()):
                if sub_kind != kind:
                    continue
                if kind == "account" and payload[0] == key:
                    acc = payload[1] or _EMPTY
                    conn.send({"jsonrpc": "2.0", "method": "accountNotification",
                               "params": {"result": self._ctx(account_json(acc, encoding)), "subscription": sub}})
                elif kind == "signature" and payload[0] == key:
                    self._notify_signature(conn, sub, payload[1])
                elif kind == "slot":
                    slot = int(payload)
                    conn.send({"jsonrpc": "2.0", "method": "slotNotification",
                               "params": {"result": {"parent": slot - 1, "root": slot - 1, "slot": slot},
                                          "subscription": sub}})
