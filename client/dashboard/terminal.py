"""`psyche run status ID --watch`: the dashboard's live view in a terminal, for people on SSH. It follows
the same RunFeed (websocket, polling fallback, "reconnecting") and prints `run_view.render` of the same
snapshot plus what only the events tell: loss and tokens/s per step, recent rounds, checkpoints."""
from __future__ import annotations

import time
from typing import Any

import aiohttp
import click

from client.cli_common import CommandFailed, ExitCode, emit_json
from client.dashboard.feed import JsonRpc, RunFeed
from client.run_view import render

CLEAR = "\x1b[H\x1b[2J"
FINISHED = "Finished"  # coordinator_sdk.events.PHASES[RunState.Finished]: nothing will change any more


def finished(view: dict[str, Any]) -> bool:
    """Whether the run in `view` has finished (the watch then ends: it used to refresh a final screen forever)."""
    return (view.get("run") or {}).get("phase") == FINISHED


def render_live(view: dict[str, Any], now: float | None = None) -> str:
    """The whole watch screen for one view (time left counted from the phase's deadline, not the view's age)."""
    now = time.time() if now is None else now
    lines = [f"[{view['connection']}]" + (f" {view['error']}" if view.get("error") else "")]
    run = view.get("run")
    if run is None:
        return "\n".join([*lines, "  waiting for the chain"])
    due = run.get("phase_due_at")
    lines.append(render({**run, "phase_seconds_left": None if due is None else max(0.0, due - now)}))
    for c in run["clients"]:
        if c.get("last_round") is not None:
            lines.append(f"    {c['wallet'][:8]}… last delivered round {c['last_round']}")
    steps = view.get("metrics") or []
    if steps:
        lines.append("  loss by step (witness reports): " + "  ".join(
            f"{m['step']}:{m['loss']:.4f}" for m in steps[-8:] if m["loss"] is not None))
        last = steps[-1]
        if last["tokens_per_sec"] is not None:
            lines.append(f"  tokens/s at step {last['step']}: {last['tokens_per_sec']:,.0f}")
    history = view.get("round_history") or []
    if history:
        lines.append("  last rounds: " + ", ".join(
            f"e{r['epoch']}/r{r['height']} ({r['witnesses']}w, {r['clients']}c)" for r in history[-6:]))
    for cp in (view.get("checkpoints") or [])[-3:] if len(view.get("checkpoints") or []) > 1 else []:
        lines.append(f"  checkpoint at epoch {cp['epoch']} step {cp['step']}: {cp['reference']}")
    return "\n".join(lines)


async def watch(url: str, run_id: str, as_json: bool) -> None:
    """Refresh on every change and once a second (the countdown), until Ctrl-C or the run has finished."""
    async with aiohttp.ClientSession() as session:
        feed = RunFeed(JsonRpc(session, url), run_id).start()
        try:
            await feed.ready(10.0)
            if feed.connection == "not found":
                raise CommandFailed(feed.error or f"no run {run_id!r}", ExitCode.RUN_NOT_FOUND)
            if feed.connection in ("connecting", "reconnecting") and feed.snapshot is None:
                raise CommandFailed(f"no RPC node answers at {url}: {feed.error}", ExitCode.RPC_UNREACHABLE)
            version = -1
            while True:
                new = await feed.wait_change(version, 1.0)
                if as_json:
                    if new != version:
                        emit_json(feed.view())
                else:
                    click.echo(CLEAR + render_live(feed.view()))
                version = new
                if finished(feed.view()):
                    if not as_json:
                        click.echo("the run has finished")
                    return
        finally:
            await feed.stop()
