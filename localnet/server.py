"""The localnet server: JSON-RPC over HTTP on 127.0.0.1:PORT and Solana pubsub websockets on PORT+1 (as
real validators do), a slot ticker that follows wall time, and a clean shutdown.

Everything runs on one asyncio loop, so LiteSVM (not thread-safe) is only ever touched from one thread.
Start-up takes the ledger lock and both ports before the ledger is opened (let alone reset). Bodies are
read whole (capped, gzip included, answered 413 beyond the cap) within a time limit, CORS is answered as
validators do, and nothing a request does (a Rust panic included) reaches anything but its own reply."""
from __future__ import annotations

import asyncio
import json
import logging
import zlib
from pathlib import Path

from aiohttp import WSMsgType, web

from localnet.chain import SLOT_SECONDS, Chain, RpcError
from localnet.hostile import Latency, RateLimiter
from localnet.http_guard import guarded_protocol_factory
from localnet.ledger import LedgerWriteError
from localnet.lock import LedgerLock, bind_listeners
from localnet.pubsub import PubSub
from localnet.rpc import RpcMethods

log = logging.getLogger("localnet")
MAX_BODY = 2 * 1024 * 1024
MAX_BATCH = 1000
REQUEST_TIMEOUT = 10.0   # seconds for a client to send a request's headers, and again its body
KEEPALIVE_IDLE = 75.0    # an idle keep-alive connection lasts this long (aiohttp's default; clients close first)
CORS_HEADERS = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "POST, GET, OPTIONS",
                "Access-Control-Max-Age": "86400"}
_NEVER_CAUGHT = (KeyboardInterrupt, SystemExit, asyncio.CancelledError, GeneratorExit)


class BodyError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


async def read_body(request: web.Request, timeout: float = REQUEST_TIMEOUT) -> bytes:
    """The whole body, however it was split into writes, at most MAX_BODY bytes after gzip decoding."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise BodyError(413, -32600, f"Request too large: {request.content_length} bytes (max {MAX_BODY})")
    chunks, size = [], 0
    async with asyncio.timeout(timeout):
        async for chunk in request.content.iter_any():
            size += len(chunk)
            if size > MAX_BODY:
                raise BodyError(413, -32600, f"Request too large: over {MAX_BODY} bytes")
            chunks.append(chunk)
    body = b"".join(chunks)
    if body[:2] == b"\x1f\x8b":  # anchorpy labels bodies gzip but sends them plain: unzip only real gzip
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            body = inflater.decompress(body, MAX_BODY + 1)
        except zlib.error as e:
            raise BodyError(400, -32700, f"Parse error: bad gzip body ({e})") from None
        if len(body) > MAX_BODY or inflater.unconsumed_tail:
            raise BodyError(413, -32600, f"Request too large: gzip body inflates beyond {MAX_BODY} bytes")
    return body


def parse_json(body: bytes | str) -> object:
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BodyError(200, -32700, f"Parse error: {e}") from None
    except RecursionError:
        raise BodyError(200, -32700, "Parse error: JSON nested too deeply") from None


def _error(code: int, message: str, req_id: object = None, data: object = None) -> dict:
    err: dict = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return {"jsonrpc": "2.0", "error": err, "id": req_id}


class LocalnetServer:
    def __init__(self, chain: Chain, host: str = "127.0.0.1", rpc_port: int = 8899,
                 request_timeout: float = REQUEST_TIMEOUT, drop_tx_rate: float = 0.0, rate_limit: float = 0.0,
                 latency_ms: float = 0.0) -> None:
        self.chain, self.host, self.rpc_port, self.request_timeout = chain, host, rpc_port, request_timeout
        self.limiter = RateLimiter(rate_limit) if rate_limit else None
        self.latency = Latency(latency_ms)
        self.methods = RpcMethods(chain, f"{host}:{rpc_port}", drop_tx_rate)
        self.pubsub = PubSub(chain)
        self._runners: list[web.AppRunner] = []
        self._servers: list[asyncio.AbstractServer] = []
        self._ticker: asyncio.Task | None = None

    @property
    def rpc_url(self) -> str:
        return f"http://{self.host}:{self.rpc_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.rpc_port + 1}"

    # ---- JSON-RPC over HTTP -------------------------------------------------------------------------
    def handle_one(self, req: object) -> dict | None:
        if not isinstance(req, dict) or req.get("jsonrpc") != "2.0" or not isinstance(req.get("method"), str):
            return _error(-32600, "Invalid request", req.get("id") if isinstance(req, dict) else None)
        req_id = req.get("id")
        try:
            result = self.methods.call(req["method"], req.get("params"))
        except RpcError as e:
            return _error(e.code, e.message, req_id, e.data)
        except LedgerWriteError as e:
            return _error(-32603, f"Internal error: {e}", req_id)
        except _NEVER_CAUGHT:
            raise
        except BaseException as e:  # a handler bug or a Rust panic (a BaseException) must stay in this reply
            log.exception("internal error in %s", req.get("method"))
            return _error(-32603, f"Internal error: {type(e).__name__}: {e}", req_id)
        return {"jsonrpc": "2.0", "result": result, "id": req_id}

    def _reply(self, payload: object, status: int = 200) -> web.Response:
        try:
            text = json.dumps(payload)
        except (RecursionError, ValueError):  # e.g. an id nested too deeply to echo
            text, status = json.dumps(_error(-32600, "Invalid request: id nested too deeply")), 200
        return web.Response(text=text, status=status, content_type="application/json", headers=CORS_HEADERS)

    async def http_handler(self, request: web.Request) -> web.Response:
        if request.method == "OPTIONS":  # CORS preflight from a browser dApp
            allow = request.headers.get("Access-Control-Request-Headers", "content-type")
            return web.Response(status=200, headers={**CORS_HEADERS, "Access-Control-Allow-Headers": allow})
        if request.method == "GET" and request.path == "/health":
            return web.Response(text="ok", headers=CORS_HEADERS)
        if request.method != "POST":
            return self._reply(_error(-32600, "Invalid request: use POST with a JSON-RPC body"), status=405)
        try:
            req = parse_json(await read_body(request, self.request_timeout))
        except BodyError as e:
            return self._reply(_error(e.code, e.message), status=e.status)
        except TimeoutError:
            return self._reply(_error(-32600, f"Request body not received within {self.request_timeout:g} s"), 408)
        if isinstance(req, list) and (not req or len(req) > MAX_BATCH):
            return self._reply(_error(-32600, f"Invalid request: batch of {len(req)} (1..{MAX_BATCH})"))
        await self.latency.before()
        wait = self.limiter.take(len(req) if isinstance(req, list) else 1) if self.limiter else 0.0
        if wait:
            await self.latency.after()
            return web.Response(status=429, text=json.dumps(_error(429, "Too many requests for a specific RPC call")),
                                content_type="application/json",
                                headers={**CORS_HEADERS, "Retry-After": RateLimiter.retry_after(wait)})
        reply = [self.handle_one(r) for r in req] if isinstance(req, list) else self.handle_one(req)
        await self.latency.after()
        return self._reply(reply)

    # ---- websockets ---------------------------------------------------------------------------------
    async def ws_handler(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=MAX_BODY)
        await ws.prepare(request)
        conn = self.pubsub.connect(ws)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    if msg.type == WSMsgType.ERROR:
                        break
                    continue
                try:
                    req = parse_json(msg.data)
                except BodyError as e:
                    conn.send(_error(e.code, e.message))
                    continue
                await self.latency.before()
                for r in req if isinstance(req, list) else [req]:
                    if self.limiter and self.limiter.take():
                        conn.send(_error(429, "Too many requests for a specific RPC call",
                                         r.get("id") if isinstance(r, dict) else None))
                        continue
                    self.pubsub.handle(conn, r)
        finally:
            self.pubsub.disconnect(conn)
        return ws

    # ---- lifecycle ----------------------------------------------------------------------------------
    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        failing = False
        while True:
            next_at += SLOT_SECONDS
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            try:
                self.chain.advance()
                failing = False
            except LedgerWriteError as e:  # the clock waits for the disk rather than hand out forgotten slots
                if not failing:
                    log.error("slot clock stopped: %s", e)
                failing = True

    async def start(self, sockets: list | None = None) -> None:
        """Serve on the given listening sockets (RPC, websocket), or bind the two ports now."""
        if sockets is None:
            sockets = bind_listeners(self.host, [self.rpc_port, self.rpc_port + 1])
        rpc_app = web.Application(client_max_size=MAX_BODY)
        rpc_app.router.add_route("*", "/{tail:.*}", self.http_handler)
        ws_app = web.Application()
        ws_app.router.add_get("/", self.ws_handler)
        loop = asyncio.get_running_loop()
        for app, sock in ((rpc_app, sockets[0]), (ws_app, sockets[1])):
            runner = web.AppRunner(app, auto_decompress=False, access_log=None, handle_signals=False,
                                   keepalive_timeout=KEEPALIVE_IDLE)
            await runner.setup()
            factory = guarded_protocol_factory(runner.server, self.request_timeout)
            self._servers.append(await loop.create_server(factory, sock=sock))
            self._runners.append(runner)
        self._ticker = asyncio.create_task(self._tick())

    async def stop(self) -> None:
        if self._ticker:
            self._ticker.cancel()
        for srv in self._servers:
            srv.close()
        await self.pubsub.close()
        for runner in self._runners:
            await runner.cleanup()
        self.chain.close()


async def serve(ledger: Path, rpc_port: int, reset: bool, ready: asyncio.Event | None = None,
                announce=print, request_timeout: float = REQUEST_TIMEOUT, drop_tx_rate: float = 0.0,
                rate_limit: float = 0.0, latency_ms: float = 0.0) -> None:
    """Run until cancelled (Ctrl-C / SIGTERM are turned into cancellation by the CLI). The ledger lock and
    both ports are held before the ledger is opened or reset: a failed start changes nothing."""
    lock = LedgerLock(ledger)
    try:
        sockets = bind_listeners("127.0.0.1", [rpc_port, rpc_port + 1])
        try:
            chain = Chain(ledger, reset=reset)
        except BaseException:
            for sock in sockets:
                sock.close()
            raise
        server = LocalnetServer(chain, rpc_port=rpc_port, request_timeout=request_timeout, drop_tx_rate=drop_tx_rate,
                                rate_limit=rate_limit, latency_ms=latency_ms)
        try:
            await server.start(sockets)
            announce(server)
            if ready:
                ready.set()
            await asyncio.Event().wait()
        finally:
            await server.stop()
    finally:
        lock.release()
