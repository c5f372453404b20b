"""The dashboard's HTTP server: one static page (HTML/JS/CSS shipped in this package, nothing from a CDN)
and the JSON it draws, from public chain data only.

    GET /                      the run list (or a redirect to the one run given with --run-id)
    GET /run/<id>              the run page (the same static page; its script reads the path)
    GET /api/config            {"run_id": <the --run-id> | null, "rpc": <URL>}
    GET /api/runs              every run of the coordinator program (getProgramAccounts)
    GET /api/run/<id>          one run's view now (RunFeed.view)
    GET /api/run/<id>/stream   server-sent events: the view again each time it changes
"""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
from aiohttp import web

from client.cli_common import validate_run_id
from client.dashboard.feed import JsonRpc, RpcDown, RunFeed, list_runs

STATIC = Path(__file__).resolve().parent / "static"
MAX_FEEDS = 64  # runs followed at once; the oldest is dropped beyond this (the page reconnects to it)


class Dashboard:
    def __init__(self, rpc_url: str, run_id: str | None = None, ws_url: str | None = None,
                 poll_interval: float = 1.0) -> None:
        self.rpc_url, self.run_id, self.ws_url, self.poll_interval = rpc_url, run_id, ws_url, poll_interval
        self.session: aiohttp.ClientSession | None = None
        self.rpc: JsonRpc | None = None
        self.feeds: dict[str, RunFeed] = {}
        self.port: int | None = None

    def feed(self, run_id: str) -> RunFeed:
        if run_id not in self.feeds:
            if len(self.feeds) >= MAX_FEEDS:
                oldest = next(iter(self.feeds))
                asyncio.create_task(self.feeds.pop(oldest).stop())
            assert self.rpc is not None
            self.feeds[run_id] = RunFeed(self.rpc, run_id, self.ws_url, self.poll_interval).start()
        return self.feeds[run_id]

    # ---- handlers -----------------------------------------------------------------------------------
    async def index(self, request: web.Request) -> web.StreamResponse:
        if self.run_id is not None:
            raise web.HTTPFound(f"/run/{self.run_id}")
        return web.FileResponse(STATIC / "index.html")

    async def run_page(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html")

    async def config(self, request: web.Request) -> web.Response:
        return web.json_response({"run_id": self.run_id, "rpc": self.rpc_url})

    async def runs(self, request: web.Request) -> web.Response:
        assert self.rpc is not None
        try:
            return web.json_response({"connection": "live", "runs": await list_runs(self.rpc)})
        except RpcDown as e:
            return web.json_response({"connection": "reconnecting", "error": str(e), "runs": None}, status=503)

    def _run_id(self, request: web.Request) -> str:
        run_id = request.match_info["run_id"]
        try:
            return validate_run_id(run_id)
        except Exception as e:
            raise web.HTTPBadRequest(text=json.dumps({"error": str(e)}), content_type="application/json") from None

    async def run_view(self, request: web.Request) -> web.Response:
        feed = self.feed(self._run_id(request))
        await feed.ready(5.0)
        return web.json_response(feed.view())

    async def stream(self, request: web.Request) -> web.StreamResponse:
        feed = self.feed(self._run_id(request))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
        await resp.prepare(request)
        version = -1
        try:
            while True:
                new = await feed.wait_change(version, 15.0)
                if new == version:
                    await resp.write(b": keep-alive\n\n")
                    continue
                version = new
                await resp.write(f"event: view\ndata: {json.dumps(feed.view())}\n\n".encode())
                await asyncio.sleep(0.05)  # coalesce bursts (a tick and its logs land together)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return resp

    # ---- lifecycle ----------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self.index)
        app.router.add_get("/run/{run_id}", self.run_page)
        app.router.add_get("/api/config", self.config)
        app.router.add_get("/api/runs", self.runs)
        app.router.add_get("/api/run/{run_id}", self.run_view)
        app.router.add_get("/api/run/{run_id}/stream", self.stream)
        app.router.add_static("/static/", STATIC)
        app.on_startup.append(self._startup)
        app.on_cleanup.append(self._cleanup)
        return app

    async def _startup(self, app: web.Application) -> None:
        self.session = aiohttp.ClientSession()
        self.rpc = JsonRpc(self.session, self.rpc_url)
        if self.run_id is not None:
            self.feed(self.run_id)

    async def _cleanup(self, app: web.Application) -> None:
        for feed in list(self.feeds.values()):
            await feed.stop()
        if self.session is not None:
            await self.session.close()


async def serve(dashboard: Dashboard, host: str, port: int, ready: asyncio.Event | None = None) -> None:
    """Serve until cancelled; prints nothing (the command prints the URL)."""
    runner = web.AppRunner(dashboard.app(), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:  # a port in use fails here, after setup opened the RPC session: cleanup closes it either way
        site = web.TCPSite(runner, host, port)
        await site.start()
        dashboard.port = site._server.sockets[0].getsockname()[1]  # the port the OS gave when asked for 0
        if ready is not None:
            ready.set()
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
