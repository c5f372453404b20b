"""One run's live view, built from public chain data only: the coordinator account (decoded by
`run_snapshot`) and the program's events (decoded by `coordinator_sdk.events`).

Live updates come from the RPC websocket (`accountSubscribe` on the coordinator account and `logsSubscribe`
mentioning it); when the websocket does not work the feed polls over HTTP; when HTTP does not answer either,
the view says "reconnecting" and keeps its last data until the node is back, then catches up on the events
it missed (`getSignaturesForAddress` until the newest one it had). The dashboard's server-sent events and
`psyche run status --watch` both render this view, so they never disagree.
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from collections import deque
from typing import Any

import aiohttp

from client.cli_common import derive_ws_url
from client.dashboard.treasury_view import treasurer_run_for, treasury_view
from client.run_view import run_snapshot, run_summary
from coordinator_sdk.client import default_codec
from coordinator_sdk.events import RunEvent, backfill, decode_logs, loss_by_step

log = logging.getLogger("psyche.dashboard")
_TRANSPORT = (aiohttp.ClientError, OSError, asyncio.TimeoutError, ConnectionError)


class RpcDown(ConnectionError):
    """The RPC node did not answer (refused, reset, timed out)."""


class JsonRpc:
    """Plain JSON-RPC over one aiohttp session: no retries, so an outage shows at once."""

    def __init__(self, session: aiohttp.ClientSession, url: str, timeout: float = 5.0) -> None:
        self.session, self.url, self.timeout = session, url, aiohttp.ClientTimeout(total=timeout)

    async def __call__(self, method: str, params: list) -> Any:
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        try:
            async with self.session.post(self.url, json=body, timeout=self.timeout) as r:
                reply = await r.json(content_type=None)
        except _TRANSPORT as e:
            raise RpcDown(f"{self.url}: {type(e).__name__}: {e}") from None
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error'].get('message')}")
        return reply["result"]

    async def account_data(self, key: str) -> bytes | None:
        value = (await self("getAccountInfo", [key, {"encoding": "base64"}]))["value"]
        return None if value is None else base64.b64decode(value["data"][0])


async def list_runs(rpc: JsonRpc) -> list[dict[str, Any]]:
    codec = default_codec()
    accounts = await rpc("getProgramAccounts", [str(codec.program_id), {
        "encoding": "base64", "filters": [{"dataSize": codec.account_size}]}])
    out = []
    for acc in accounts:
        try:
            out.append(run_summary(codec.decode_state(base64.b64decode(acc["account"]["data"][0])), acc["pubkey"]))
        except ValueError:
            continue
    return sorted(out, key=lambda r: r["run_id"])


class RunFeed:
    HISTORY = 32  # rounds kept for the history table (the account itself keeps 4)

    def __init__(self, rpc: JsonRpc, run_id: str, ws_url: str | None = None, poll_interval: float = 1.0) -> None:
        self.rpc, self.run_id, self.ws_url = rpc, run_id, ws_url or derive_ws_url(rpc.url)
        self.poll_interval = poll_interval
        self.codec = default_codec()
        self.account: str | None = None
        self.treasurer_run: Any = None  # the treasurer's Run PDA when the treasurer administers this run
        self.treasury: dict[str, Any] | None = None
        self.snapshot: dict[str, Any] | None = None
        self.events: deque[RunEvent] = deque(maxlen=5000)
        self.seen: set[str] = set()
        self.newest_sig: str | None = None
        self.rounds: dict[int, dict[str, Any]] = {}
        self.checkpoints: list[dict[str, Any]] = []
        self.last_delivered: dict[str, int] = {}
        self.connection = "connecting"
        self.error: str | None = None
        self.version = 0
        self.updated_at = 0.0
        self.changed = asyncio.Condition()
        self._task: asyncio.Task | None = None

    # ---- the view -----------------------------------------------------------------------------------
    def view(self) -> dict[str, Any]:
        """Everything the page and the terminal show, as plain JSON."""
        snap = dict(self.snapshot or {})
        claimed = (self.treasury or {}).get("claimed", {})
        if snap:
            snap["clients"] = [{**c, "last_round": self.last_delivered.get(c["wallet"], c.get("last_round")),
                                "claimed": claimed.get(c["wallet"]) if self.treasury else None}
                               for c in snap["clients"]]
        recent = [e.to_json() for e in list(self.events)[-40:]]
        return {"run_id": self.run_id, "account": self.account, "connection": self.connection, "error": self.error,
                "version": self.version, "updated_at": self.updated_at, "server_time": time.time(), "run": snap or None,
                "treasury": None if self.treasury is None else {
                    k: v for k, v in self.treasury.items() if k != "claimed"},
                "metrics": loss_by_step(self.events), "events": recent, "checkpoints": self.checkpoints,
                "round_history": [self.rounds[h] for h in sorted(self.rounds)[-self.HISTORY:]]}

    async def _changed(self) -> None:
        self.version += 1
        self.updated_at = time.time()
        async with self.changed:
            self.changed.notify_all()

    async def ready(self, timeout: float) -> None:
        """Wait (up to `timeout`) until the first answer from the node, or the failure to get one."""
        async with self.changed:
            with contextlib.suppress(asyncio.TimeoutError):
                async with asyncio.timeout(timeout):
                    await self.changed.wait_for(lambda: self.connection != "connecting")

    async def wait_change(self, version: int, timeout: float) -> int:
        """Wait until the view is newer than `version` (or `timeout`); the current version."""
        async with self.changed:
            with contextlib.suppress(asyncio.TimeoutError):
                async with asyncio.timeout(timeout):
                    await self.changed.wait_for(lambda: self.version != version)
        return self.version

    async def _set_connection(self, state: str, error: str | None = None) -> None:
        if (state, error) != (self.connection, self.error):
            self.connection, self.error = state, error
            await self._changed()

    # ---- applying chain data ------------------------------------------------------------------------
    async def _apply_account(self, data: bytes | None) -> None:
        if data is None:
            await self._set_connection(self.connection, f"the coordinator account of run {self.run_id!r} is gone")
            return
        snap = run_snapshot(self.codec.decode_state(data))
        if self.snapshot is not None and snap["nonce"] < self.snapshot["nonce"]:
            return  # a late notification
        self.snapshot = snap
        for c in snap["clients"]:
            if c["last_round"] is not None:
                self.last_delivered[c["wallet"]] = max(self.last_delivered.get(c["wallet"], -1), c["last_round"])
        for r in snap["rounds"]:  # keyed by data index: unique over the run, while heights restart each epoch
            if r["height"]:
                epoch = self.rounds.get(r["data_index"], {}).get("epoch", snap["epoch"])  # the epoch it began in
                self.rounds[r["data_index"]] = {**r, "epoch": epoch}
        for key in sorted(self.rounds)[:-self.HISTORY]:
            del self.rounds[key]
        ref = snap["checkpoint"]
        if ref and (not self.checkpoints or self.checkpoints[-1]["reference"] != ref):
            self.checkpoints.append({"reference": ref, "epoch": snap["epoch"], "step": snap["step"],
                                     "seen_at": time.time()})
        await self._changed()

    async def _apply_events(self, events: list[RunEvent]) -> None:
        fresh = [e for e in events if e.signature not in self.seen or not e.signature]
        self.seen.update(e.signature for e in fresh)
        if fresh:
            self.events.extend(fresh)
            await self._changed()

    async def _resolve_account(self) -> None:
        if self.account is None:
            raw = await self.rpc.account_data(str(self.codec.instance_pda(self.run_id)))
            if raw is None:
                await self._set_connection("not found", f"no run {self.run_id!r} on this cluster")
                raise LookupError(self.run_id)
            instance = self.codec.decode(raw)
            self.account = str(instance.coordinator_account)
            self.treasurer_run = treasurer_run_for(self.run_id, instance.main_authority)

    async def _refresh_treasury(self) -> None:
        """Claims and vault transfers do not change the coordinator account: read them on each catch-up,
        each program log, and every few seconds."""
        if self.treasurer_run is None or self.snapshot is None:
            return
        view = await treasury_view(self.rpc, self.treasurer_run, [c["wallet"] for c in self.snapshot["clients"]])
        if view != self.treasury:
            self.treasury = view
            await self._changed()

    async def _catch_up(self) -> None:
        """One HTTP pass: the account now and the events since the newest signature seen."""
        await self._resolve_account()
        await self._apply_account(await self.rpc.account_data(self.account))
        events, self.newest_sig = await backfill(self.rpc, self.account, self.codec.program_id, self.newest_sig,
                                                 skip=self.seen)
        await self._apply_events(events)
        await self._refresh_treasury()
        if self.connection != "live":  # the node answers again; the websocket upgrades this to "live"
            await self._set_connection("polling")

    async def _websocket(self) -> None:
        async with self.rpc.session.ws_connect(self.ws_url, heartbeat=10) as ws:
            await ws.send_json({"jsonrpc": "2.0", "id": 1, "method": "accountSubscribe",
                                "params": [self.account, {"encoding": "base64", "commitment": "confirmed"}]})
            await ws.send_json({"jsonrpc": "2.0", "id": 2, "method": "logsSubscribe",
                                "params": [{"mentions": [self.account]}, {"commitment": "confirmed"}]})
            await self._catch_up()  # whatever happened before the subscriptions took effect
            await self._set_connection("live")
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                note = json.loads(msg.data)
                result = (note.get("params") or {}).get("result") or {}
                if note.get("method") == "accountNotification":
                    await self._apply_account(base64.b64decode(result["value"]["data"][0]))
                elif note.get("method") == "logsNotification" and result["value"].get("err") is None:
                    sig = result["value"]["signature"]
                    await self._apply_events(decode_logs(result["value"]["logs"], self.codec.program_id, sig,
                                                         result.get("context", {}).get("slot"), int(time.time())))
                    await self._refresh_treasury()

    async def _treasury_timer(self) -> None:
        while True:
            await asyncio.sleep(5.0)
            with contextlib.suppress(Exception):  # an outage shows through the main loop
                await self._refresh_treasury()

    async def run(self) -> None:
        """Follow the run until cancelled: websocket when it works, polling when not, never giving up."""
        timer = asyncio.create_task(self._treasury_timer())
        try:
            await self._follow()
        finally:
            timer.cancel()

    async def _follow(self) -> None:
        delay = 0.5
        while True:
            try:
                await self._catch_up()
                delay = 0.5
                try:
                    await self._websocket()
                except _TRANSPORT as e:
                    log.info("websocket %s: %s; polling", self.ws_url, e)
                await self._set_connection("polling")
                await asyncio.sleep(self.poll_interval)
            except RpcDown as e:
                await self._set_connection("reconnecting", str(e))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 4.0)
            except LookupError:
                await asyncio.sleep(2.0)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # an answer we cannot use (an RPC error, a foreign account): say so, retry
                log.warning("run %s: %s", self.run_id, e)
                await self._set_connection("error", f"{type(e).__name__}: {e}")
                await asyncio.sleep(2.0)

    def start(self) -> RunFeed:
        if self._task is None:
            self._task = asyncio.create_task(self.run())
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
