"""Serve a dataset directory over HTTP with Range support (`psyche data serve-http DIR`).

Only token files and the manifest are served, by plain name (no sub-paths, so nothing outside the
directory is reachable). Range, HEAD and 416 handling come from aiohttp's FileResponse.
"""
from __future__ import annotations

from pathlib import Path

from aiohttp import web

from data_providers.manifest import MANIFEST_NAME
from data_providers.token_files import is_data_file


def _servable(name: str) -> bool:
    return name == MANIFEST_NAME or is_data_file(name)


def make_app(directory: Path) -> web.Application:
    root = directory.resolve()

    async def index(_: web.Request) -> web.Response:
        files = sorted(p for p in root.iterdir() if p.is_file() and _servable(p.name))
        body = {"files": [{"name": p.name, "size": p.stat().st_size} for p in files]}
        return web.json_response(body)

    async def serve_file(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        path = root / name
        if not _servable(name) or "/" in name or name.startswith(".") or not path.is_file():
            raise web.HTTPNotFound(text=f"no such token file: {name}\n")
        return web.FileResponse(path, headers={"Accept-Ranges": "bytes"})

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/{name}", serve_file)  # add_get also answers HEAD
    return app


class HttpDataServer:
    """An aiohttp site on host:port (port 0 picks a free one); `url` is its base URL once started."""

    def __init__(self, directory: str | Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise FileNotFoundError(f"{self.directory}: not a directory")
        self.host, self.port = host, port
        self._runner: web.AppRunner | None = None

    async def start(self) -> HttpDataServer:
        self._runner = web.AppRunner(make_app(self.directory), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        sockets = site._server.sockets if site._server else []  # the bound port when port=0
        if sockets:
            self.port = sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> HttpDataServer:
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

