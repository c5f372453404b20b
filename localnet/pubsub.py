"""Solana pubsub over websockets: account, program, signature, logs, slot and root subscriptions and their
unsubscribes.

Chain events are collected while a request is handled and turned into notifications only afterwards (on
the next loop turn), so a sender's reply never waits on, nor fails because of, a subscriber: a
subscription whose notification cannot be encoded gets its own error and is dropped. Each connection has
one writer task and a bounded queue, so a slow client never blocks the chain (overflowing closes it).
A subscription's id is always sent before its first notification."""
from __future__ import annotations

import asyncio
import itertools
import json
import logging

from aiohttp import web
from solders.account import Account
from solders.pubkey import Pubkey

from localnet.chain import Chain, RpcError
from localnet.encoding import account_json, matches_filters, parse_pubkey

log = logging.getLogger("localnet.pubsub")
QUEUE_LIMIT = 10_000
_EMPTY = Account(0, b"", Pubkey.default(), False, 0)
_NEVER_CAUGHT = (KeyboardInterrupt, SystemExit, asyncio.CancelledError, GeneratorExit)
_KINDS = {"account", "program", "signature", "logs", "slot", "root"}


class Connection:
    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(QUEUE_LIMIT)
        self.subs: dict[int, tuple[str, object, dict]] = {}  # id -> (kind, key, config)
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


def _notification(method: str, sub: int, result: object) -> dict:
    return {"jsonrpc": "2.0", "method": method, "params": {"result": result, "subscription": sub}}


class PubSub:
    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self.conns: set[Connection] = set()
        self.ids = itertools.count(1)
        self.pending: list[tuple[str, object]] = []
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

    # ---- requests -----------------------------------------------------------------------------------
    def handle(self, conn: Connection, req: object) -> None:
        """Answer one request on this connection; a notification it triggers follows the answer."""
        req_id = req.get("id") if isinstance(req, dict) else None
        if not isinstance(req, dict) or not isinstance(req.get("method"), str):
            conn.send({"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid request"}, "id": req_id})
            return
        params = req.get("params") or []
        after = None
        try:
            if not isinstance(params, list):
                raise RpcError(-32602, "Invalid params: expected an array")
            result, after = self._dispatch(conn, req["method"], params)
        except RpcError as e:
            conn.send({"jsonrpc": "2.0", "error": {"code": e.code, "message": e.message}, "id": req_id})
            return
        except (TypeError, ValueError, KeyError, AttributeError) as e:
            conn.send({"jsonrpc": "2.0", "error": {"code": -32602, "message": f"Invalid params: {e}"}, "id": req_id})
            return
        except _NEVER_CAUGHT:
            raise
        except BaseException as e:  # a bug or a Rust panic stays in this one reply
            log.exception("internal error in %s", req.get("method"))
            conn.send({"jsonrpc": "2.0", "error": {"code": -32603, "message": f"Internal error: {e}"}, "id": req_id})
            return
        conn.send({"jsonrpc": "2.0", "result": result, "id": req_id})
        if after is not None:
            after()

    def _dispatch(self, conn: Connection, method: str, params: list) -> tuple[object, object]:
        cfg = params[1] if len(params) > 1 and isinstance(params[1], dict) else {}
        if method == "accountSubscribe":
            key = parse_pubkey(params[0] if params else None)
            acc = self.chain.get_account(key)
            if acc is not None:
                account_json(acc, cfg.get("encoding", "base64"))  # refuse now what could never be encoded
            return self._subscribe(conn, "account", key, cfg), None
        if method == "programSubscribe":
            key = parse_pubkey(params[0] if params else None, "program id")
            filters = cfg.get("filters") or []
            if not isinstance(filters, list):
                raise RpcError(-32602, "Invalid params: filters must be an array")
            matches_filters(_EMPTY, filters)  # a malformed filter is refused at subscription time
            return self._subscribe(conn, "program", key, cfg), None
        if method == "logsSubscribe":
            return self._subscribe(conn, "logs", self._logs_filter(params[0] if params else None), cfg), None
        if method == "signatureSubscribe":
            sig = str(params[0]) if params else ""
            if not sig:
                raise RpcError(-32602, "Invalid params: missing signature")
            sub = self._subscribe(conn, "signature", sig, cfg)
            rec = self.chain.status(sig)
            if rec is None:
                return sub, None
            return sub, lambda: self._notify_signature(conn, sub, rec["err"])
        if method == "slotSubscribe":
            return self._subscribe(conn, "slot", None, cfg), None
        if method == "rootSubscribe":
            return self._subscribe(conn, "root", None, cfg), None
        if method.endswith("Unsubscribe") and method[:-len("Unsubscribe")] in _KINDS:
            sub = params[0] if params else None
            kind = method[:-len("Unsubscribe")]
            if not isinstance(sub, int) or conn.subs.get(sub, ("",))[0] != kind:
                raise RpcError(-32602, f"Invalid subscription id: {sub!r}")
            del conn.subs[sub]
            return True, None
        raise RpcError(-32601, f"Method not found: {method}")

    @staticmethod
    def _logs_filter(spec: object) -> Pubkey | None:
        """None for "all"/"allWithVotes", else the one mentioned address (validators allow exactly one)."""
        if spec in ("all", "allWithVotes"):
            return None
        if isinstance(spec, dict) and isinstance(spec.get("mentions"), list) and len(spec["mentions"]) == 1:
            return parse_pubkey(spec["mentions"][0], "mentions address")
        raise RpcError(-32602, "Invalid params: logsSubscribe takes \"all\", \"allWithVotes\" or "
                               "{\"mentions\": [one pubkey]}")

    def _subscribe(self, conn: Connection, kind: str, key: object, cfg: dict) -> int:
        sub = next(self.ids)
        conn.subs[sub] = (kind, key, cfg)
        return sub

    def _notify_signature(self, conn: Connection, sub: int, err: object) -> None:
        if conn.subs.pop(sub, None) is None:  # signature subscriptions end with their one notification
            return
        conn.send(_notification("signatureNotification", sub, self._ctx({"err": err})))

    # ---- chain events -------------------------------------------------------------------------------
    def on_event(self, kind: str, payload: object) -> None:
        """Called by the chain while it handles a request: remember, notify on the next loop turn."""
        if not self.conns:
            return
        if not self.pending:
            try:
                asyncio.get_running_loop().call_soon(self._flush)
            except RuntimeError:  # no loop (a Chain used directly, e.g. in tests): nobody to notify
                return
        self.pending.append((kind, payload))

    def _flush(self) -> None:
        events, self.pending = self.pending, []
        for kind, payload in events:
            for conn in list(self.conns):
                for sub, (sub_kind, key, cfg) in list(conn.subs.items()):
                    if sub_kind != kind and not (kind == "account" and sub_kind == "program") and \
                            not (kind == "slot" and sub_kind == "root"):
                        continue
                    try:
                        self._deliver(conn, sub, sub_kind, key, cfg, payload)
                    except _NEVER_CAUGHT:
                        raise
                    except BaseException as e:  # this subscriber's problem only: tell it, drop the subscription
                        if isinstance(e, RpcError):
                            code, message = e.code, e.message
                        else:
                            code, message = -32603, f"Internal error: {e}"
                        conn.subs.pop(sub, None)
                        conn.send({"jsonrpc": "2.0", "method": f"{sub_kind}Notification", "params": {
                            "error": {"code": code, "message": message}, "subscription": sub}})

    def _deliver(self, conn: Connection, sub: int, kind: str, key: object, cfg: dict, payload) -> None:
        enc = cfg.get("encoding", "base64")
        if kind == "account" and payload[0] == key:
            acc = payload[1] or _EMPTY
            conn.send(_notification("accountNotification", sub, self._ctx(account_json(acc, enc, chain=self.chain))))
        elif kind == "program":
            acc = payload[1]
            if acc is not None and acc.owner == key and matches_filters(acc, cfg.get("filters") or []):
                value = {"pubkey": str(payload[0]), "account": account_json(acc, enc, chain=self.chain)}
                conn.send(_notification("programNotification", sub, self._ctx(value)))
        elif kind == "signature" and payload[0] == key:
            self._notify_signature(conn, sub, payload[1])
        elif kind == "logs":
            sig, err, logs, keys = payload
            if key is None or key in keys:
                conn.send(_notification("logsNotification", sub,
                                        self._ctx({"signature": sig, "err": err, "logs": logs})))
        elif kind == "slot":
            slot = int(payload)
            conn.send(_notification("slotNotification", sub, {"parent": slot - 1, "root": slot - 1, "slot": slot}))
        elif kind == "root":  # every produced slot is final at once on a single node
            conn.send(_notification("rootNotification", sub, int(payload) - 1))
