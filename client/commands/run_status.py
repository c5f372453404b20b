"""`psyche run status` and `psyche run list`: a run (or every run) as a person or a script reads it.

The decoding and the text live in client/run_view.py (run_snapshot, render), shared with the dashboard.
"""
from __future__ import annotations

from typing import Any

import click

from client.cli_common import CommandFailed, ExitCode, emit_json, output_option, url_option, validate_run_id
from client.errors import exception_text
from client.run_view import render, run_snapshot, run_summary


@click.command("status")
@click.argument("run_id", callback=lambda _c, _p, v: validate_run_id(v))
@output_option
@click.option("--json", "as_json", is_flag=True, help="Same as --output json.")
@click.option("--watch", is_flag=True, help="Refresh in place as the chain changes, until the run finishes or Ctrl-C.")
@url_option
def status(run_id: str, output: str, as_json: bool, watch: bool, url: str) -> None:
    """Phase, epoch, step, time left, clients and their points, this round's witnesses, last checkpoint."""
    if watch:  # the dashboard's live view (websocket + events), refreshed in place
        from client.dashboard.terminal import watch as watch_live
        from client.interrupts import run_until_interrupted

        if run_until_interrupted(watch_live(url, run_id, as_json or output == "json")):
            raise KeyboardInterrupt  # run_main's Ctrl-C policy: "interrupted", exit 130
        return
    # one snapshot: three blocking reads (coordinator_sdk.rpc_sync), not the async client's import bill
    from client.cli_chain import sync_reads
    from coordinator_sdk.run_reads import RunNotFound, read_run

    with sync_reads(url, attempts=4) as rpc:
        try:
            state, banked = read_run(rpc, run_id)
        except RunNotFound as e:
            raise CommandFailed(str(e), ExitCode.RUN_NOT_FOUND) from None
    snap = run_snapshot(state, banked=banked)
    if as_json or output == "json":
        emit_json(snap)
    else:
        click.echo(render(snap))


@click.command("list")
@output_option
@click.option("--json", "as_json", is_flag=True, help="Same as --output json.")
@url_option
def run_list(output: str, as_json: bool, url: str) -> None:
    """Every run of the coordinator program on the cluster (getProgramAccounts)."""
    from coordinator_sdk.client import default_codec
    from coordinator_sdk.rpc_pool import AllEndpointsFailed, RpcPool

    codec = default_codec()

    async def main() -> list[dict[str, Any]]:
        async with RpcPool([url]) as pool:
            try:
                res = await pool.call(lambda c: c.get_program_accounts(codec.program_id, encoding="base64",
                                                                       filters=[codec.account_size]))
            except AllEndpointsFailed as e:
                raise CommandFailed(f"no RPC node answers at {url}: {exception_text(e)}",
                                    ExitCode.RPC_UNREACHABLE) from None
        out = []
        for acc in res.value:
            try:
                st = codec.decode_state(bytes(acc.account.data))
            except ValueError:
                continue
            out.append(run_summary(st, str(acc.pubkey)))
        return sorted(out, key=lambda r: r["run_id"])

    from client.cli_chain import quiet_rpc_warnings
    from client.interrupts import run_async

    with quiet_rpc_warnings():
        runs = run_async(main())
    if as_json or output == "json":
        emit_json(runs)
        return
    if not runs:
        click.echo("no runs on this cluster")
    for r in runs:
        click.echo(f"{r['run_id']:<32}  {r['phase']:<17}  epoch {r['epoch']:>3}"
                   f"  step {r['step']:>6}/{r['total_steps']:<6}"
                   f"  clients {r['epoch_clients']}/{r['clients']}  {r['name']}")
