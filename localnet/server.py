"""The localnet server: JSON-RPC over HTTP on 127.0.0.1:PORT and Solana pubsub websockets on PORT+1 (as
real validators do), a slot ticker that follows wall time, and a clean shutdown.

Everything runs on one asyncio loop, so LiteSVM (not thread-safe) is only ever touched from one thread."""
from __future__ import annotations

import asyncio
import gzip
import json
import logging
from pathlib import Path

from aiohttp import WSMsgType, web

from localnet.chain import SLOT_SECONDS, Chain, RpcError
from localnet.pubsub import PubSub
from localnet.rpc import RpcMethods

log = logging.getLogger("localnet")
MAX_BODY = 2 * 1024 * 1024
MAX_BATCH = 1000


def _error(code: int, message: str, req_id: object = None, data: object = None) -> dict:
    err: dict = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return {"jsonrpc": "2.0", "error": err, "id": req_id}


class LocalnetServer:
    def __init__(self, chain: Chain, host: str = "127.0.0.1", rpc_port: int = 8899) -> None:
        self.chain, self.host, self.rpc_port = chain, host, rpc_port
        self.methods = RpcMethods(chain)
        self.pubsub = PubSub(chain)
        self._runners: list[web.AppRunner] = []
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
        except Exception as e:  # a bug in a handler must not take the server down
            log.exception("internal error in %s", req.get("method"))
            return _error(-32603, f"Internal error: {e}", req_id)
        return {"jsonrpc": "2.0", "result": result, "id": req_id}

    async def http_handler(self, request: web.Request) -> web.Response:
        if request.method != "POST":
            return web.json_response(_error(-32600, "Invalid request: use POST with a JSON-RPC body"), status=405)
        body = await request.content.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            return web.json_response(_error(-32600, f"Request too large (max {MAX_BODY} bytes)"), status=413)
        if body[:2] == b"\x1f\x8b":  # anchorpy labels bodies gzip but sends them plain: unzip only real gzip
            try:
                body = gzip.decompress(body)
            except OSError:
                return web.json_response(_error(-32700, "Parse error: bad gzip body"))
        try:
            req = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            return web.json_response(_error(-32700, f"Parse error: {e}"))
        if isinstance(req, list):
            if not req or len(req) > MAX_BATCH:
                return web.json_response(_error(-32600, f"Invalid request: batch of {len(req)} (1..{MAX_BATCH})"))
            out = [self.handle_one(r) for r in req]
            return web.json_response(out)
        resp = self.handle_one(req)
        return web.json_response(resp)

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
                    req = json.loads(msg.data)
                except json.JSONDecodeError as e:
                    conn.send(_error(-32700, f"Parse error: {e}"))
                    continue
                for r in req if isinstance(req, list) else [req]:
                    conn.send(self.pubsub.handle(conn, r))
        finally:
            self.pubsub.disconnect(conn)
        return ws

    # ---- lifecycle ----------------------------------------------------------------------------------
    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at += SLOT_SECONDS
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            self.chain.advance()

    async def start(self) -> None:
        rpc_app = web.Application(client_max_size=MAX_BODY)
        rpc_app.router.add_route("*", "/", self.http_handler)
        ws_app = web.Application()
        ws_app.router.add_get("/", self.ws_handler)
        for app, port in ((rpc_app, self.rpc_port), (ws_app, self.rpc_port + 1)):
            runner = web.AppRunner(app, auto_decompress=False, access_log=None, handle_signals=False)
            await runner.setup()
            await web.TCPSite(runner, self.host, port).start()
            self._runners.append(runner)
        self._ticker = asyncio.create_task(self._tick())

    async def stop(self) -> None:
        if self._ticker:
            self._ticker.cancel()
        await self.pubsub.close()
        for runner in self._runners:
            await runner.cleanup()
        self.chain.close()


async def serve(ledger: Path, rpc_port: int, reset: bool, ready: asyncio.Event | None = None,
                announce=print) -> None:
    """Run until cancelled (Ctrl-C / SIGTERM are turned into cancellation by the CLI)."""
    chain = Chain(ledger, reset=reset)
    server = LocalnetServer(chain, rpc_port=rpc_port)
    try:
        await server.start()
        announce(server)
        if ready:
            ready.set()
        await asyncio.Event().wait()
    finally:
        await server.stop()
