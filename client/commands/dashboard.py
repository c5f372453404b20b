"""`psyche dashboard`: serve the run dashboard on 127.0.0.1 (one static page fed by server-sent events)."""
from __future__ import annotations

import asyncio
import errno

import click

from client.cli_common import CommandFailed, url_option, validate_run_id


def _run_id(_ctx: click.Context, _param: click.Parameter, value: str) -> str | None:
    return None if value == "all" else validate_run_id(value)


@click.command("dashboard")
@click.option("--run-id", default="all", show_default=True, callback=_run_id, envvar="PSYCHE_RUN_ID",
              help="The run to show, or `all` for the list of every run on the cluster.")
@url_option
@click.option("--ws-url", default=None, help="Pubsub websocket URL (default: the RPC port + 1).")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="Port on 127.0.0.1 (0: any free port).")
def dashboard(run_id: str | None, url: str, ws_url: str | None, port: int) -> None:
    """A live web page of a run (or of every run): phase, clients, witnesses, loss, checkpoints."""
    from client.dashboard.server import Dashboard, serve

    board = Dashboard(url, run_id, ws_url)

    async def main() -> None:
        ready = asyncio.Event()
        task = asyncio.create_task(serve(board, "127.0.0.1", port, ready))
        done, _ = await asyncio.wait([task, asyncio.create_task(ready.wait())], return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()  # raises the bind error
        path = "/" if run_id is None else f"/run/{run_id}"
        click.echo(f"dashboard: http://127.0.0.1:{board.port}{path}  (RPC {url}; Ctrl-C to stop)", err=False)
        await task

    from client.interrupts import run_until_interrupted

    try:
        run_until_interrupted(main())
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise CommandFailed(f"port {port} on 127.0.0.1 is in use (pick another with --port, or 0)") from None
        raise CommandFailed(f"cannot serve on 127.0.0.1:{port}: {e}") from None
