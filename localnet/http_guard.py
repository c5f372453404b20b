"""A header timeout for aiohttp, which has none of its own: a connection whose request headers are not
complete `header_timeout` seconds after they began is closed, so half-sent requests cannot pile up and
starve everyone else of file descriptors. Idle keep-alive connections are left to aiohttp's (long)
keep-alive timeout, as validators keep them, so clients that pool connections never race a close."""
from __future__ import annotations

import asyncio

from aiohttp.web_protocol import RequestHandler
from aiohttp.web_server import Server


class HeaderTimeoutHandler(RequestHandler):
    header_timeout = 10.0
    _header_timer: asyncio.TimerHandle | None = None

    def _awaiting_headers(self) -> bool:
        return not self._messages and not self._request_in_progress and not self._force_close

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._awaiting_headers():
            if self._header_timer is None:  # the first bytes of a request whose headers are incomplete
                self._header_timer = self._loop.call_later(self.header_timeout, self._headers_too_slow)
        elif self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().connection_lost(exc)

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self._awaiting_headers():
            self.force_close()


def guarded_protocol_factory(server: Server, header_timeout: float):
    """What loop.create_server needs: a RequestHandler with the header timeout for each connection."""
    def make() -> HeaderTimeoutHandler:
        handler = HeaderTimeoutHandler(server, loop=asyncio.get_running_loop(), **server._kwargs)
        handler.header_timeout = header_timeout
        return handler
    return make
