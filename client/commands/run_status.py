"""`psyche run status` and `psyche run list`: a run (or every run) as a person or a script reads it.

`run_snapshot` is the one decoding of a coordinator account into plain data; the text view, `--json` and
`--watch` all print it, so they never disagree.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import fields
from typing import Any

import click

from client.cli_common import CommandFailed, ExitCode, emit_json, output_option, url_option, validate_run_id
from client.errors import exception_text
from client.runner.witnessing import round_at, round_signers, witness_participants
from coordinator_sdk.deadlines import tick_due_at
from coordinator_sdk.events import PHASES
from coordinator_sdk.model.state import Config, RunState
from coordinator_sdk.shuffle import elected_witnesses

CLIENT_STATES = ["healthy", "dropped", "withdrawn", "ejected"]


def _text(raw: Any, n: int) -> str:
    return bytes(raw[:n]).decode("utf-8", errors="replace")


def _delivered_heights(st: Any) -> dict[bytes, int]:
    """signer -> the newest round height (of the 4 kept, this epoch) some witness listed that client in."""
    heights: dict[bytes, int] = {}
    current = int(st.rounds[st.rounds_head].height)
    for back in range(4):
        rr = round_at(st, back)
        if int(rr.height) > current or (back and int(rr.height) == current):
            continue  # a slot not (re)used this epoch
        seen = [0] * 32
        for bits in witness_participants(rr):
            seen = [a | b for a, b in zip(seen, bits, strict=True)]
        for i, signer in enumerate(round_signers(st, rr)):
            if seen[i // 8] >> (i % 8) & 1:
                heights[signer] = max(heights.get(signer, -1), int(rr.height))
    return heights


def phase_name(st: Any) -> str:
    """The run's phase as a person should read it. `run create --paused` leaves the account Uninitialized
    (the program initialises it at the first `resume`), which would read like a broken run; one whose config
    passes the program's resume check (config_check, mirrored by Config.violations) and whose initial
    checkpoint is set is fully set up and only waits for `resume`, so it reads Paused. Uninitialized stays for
    an account that `resume` would refuse (created but never configured)."""
    state = int(st.run_state)
    if state == RunState.Uninitialized and int(st.checkpoint_len) > 0:
        cfg = Config(**{f.name: int(getattr(st.config, f.name)) for f in fields(Config)})
        if not cfg.violations():
            return PHASES[RunState.Paused]
    return PHASES[state]


def run_snapshot(st: Any, now: float | None = None, banked: dict[bytes, tuple[int, int]] | None = None
                 ) -> dict[str, Any]:
    """The run as plain JSON data. `last_round` per client: the newest kept round a witness saw it deliver.
    `banked`: wallet -> (earned, slashed) banked when newcomers took their slots (Coordinator.banked_points):
    a registered client's earned/penalised include its banked points, and wallets with only banked points
    are listed as "evicted"."""
    banked = banked or {}
    now = time.time() if now is None else now
    due = tick_due_at(st)
    r = st.rounds[st.rounds_head]
    in_round = int(st.run_state) in (3, 4)
    epoch_state = {bytes(st.epoch_clients[i].signer): CLIENT_STATES[int(st.epoch_clients[i].state)]
                   for i in range(int(st.num_epoch_clients))}
    for i in range(int(st.num_exited_clients)):
        c = st.exited_clients[i]
        epoch_state.setdefault(bytes(c.signer), CLIENT_STATES[int(c.state)])
    from solders.pubkey import Pubkey

    delivered = _delivered_heights(st)
    clients = []
    for i in range(int(st.num_clients)):
        c = st.clients[i]
        key = bytes(c.signer)
        bank_e, bank_s = banked.get(key, (0, 0))
        clients.append({"wallet": str(Pubkey(key)), "p2p": bytes(c.p2p).hex(), "addr": _text(c.addr_hint, 64)
                        .split("\x00")[0], "state": epoch_state.get(key, "registered" if int(c.active) == int(
                            st.next_active) else "idle"), "earned": int(c.earned) + bank_e,
                        "penalised": int(c.slashed) + bank_s, "banked_earned": bank_e, "banked_penalised": bank_s,
                        "last_round": delivered.get(key)})
    registered = {bytes(st.clients[i].signer) for i in range(int(st.num_clients))}
    for key, (bank_e, bank_s) in sorted(banked.items()):
        if key not in registered:
            clients.append({"wallet": str(Pubkey(key)), "p2p": None, "addr": "", "state": "evicted",
                            "earned": bank_e, "penalised": bank_s, "banked_earned": bank_e,
                            "banked_penalised": bank_s, "last_round": None})
    witnesses = []
    if in_round and int(r.clients_len):
        posted = {int(r.witnesses[w].client_index) for w in range(int(r.num_witnesses))}
        for idx in elected_witnesses(int(r.clients_len), int(r.random_seed), int(st.config.witness_nodes)):
            if idx < int(st.num_epoch_clients):
                witnesses.append({"wallet": str(Pubkey(bytes(st.epoch_clients[idx].signer))), "posted": idx in posted})
    history = []
    for back in range(4):
        rr = round_at(st, back)
        if int(rr.height) or back == 0:
            history.append({"height": int(rr.height), "data_index": int(rr.data_index),
                            "witnesses": int(rr.num_witnesses), "clients": int(rr.clients_len)})
    return {
        "run_id": _text(st.run_id, int(st.run_id_len)), "phase": phase_name(st),
        "epoch": int(st.epoch), "step": int(st.step), "total_steps": int(st.config.total_steps),
        "round": int(r.height) if in_round else None, "data_index": int(r.data_index),
        "phase_seconds_left": None if due is None else max(0.0, round(due - now, 1)),
        "phase_started_at": int(st.run_state_start_unix_timestamp), "phase_due_at": due, "nonce": int(st.nonce),
        "pending_pause": bool(st.pending_pause), "clients": clients, "epoch_clients": int(st.num_epoch_clients),
        "witnesses": witnesses, "rounds": history,
        "checkpoint": _text(st.checkpoint, int(st.checkpoint_len)) or None,
        "name": _text(st.metadata.name, int(st.metadata.name_len)),
        "earning_rate": int(st.earning_rate), "slashing_rate": int(st.slashing_rate),
    }


def run_summary(st: Any, account: str) -> dict[str, Any]:
    """One line of `psyche run list` (and the dashboard's run list)."""
    s = run_snapshot(st)
    return {k: s[k] for k in ("run_id", "name", "phase", "epoch", "step", "total_steps", "epoch_clients")} | {
        "account": account, "clients": int(st.num_clients)}


def render(s: dict[str, Any]) -> str:
    left = "" if s["phase_seconds_left"] is None else f" ({s['phase_seconds_left']:.0f}s left)"
    lines = [f"run {s['run_id']!r} {s['name'] and '(' + s['name'] + ')'}",
             f"  phase {s['phase']}{left}{' [pause pending]' if s['pending_pause'] else ''}   epoch {s['epoch']}"
             f"   step {s['step']}/{s['total_steps']}" + (f"   round {s['round']}" if s['round'] is not None else ""),
             f"  checkpoint {s['checkpoint'] or '-'}",
             f"  clients ({sum(c['state'] != 'evicted' for c in s['clients'])} registered, {s['epoch_clients']} in"
             f" this epoch; earned/penalised include points banked when a newcomer took a slot):"]
    for c in s["clients"]:
        lines.append(f"    {c['wallet']:<44}  {c['state']:<10}  earned {c['earned']:>8}  penalised {c['penalised']:>6}")
    if s["witnesses"]:
        lines.append("  this round's witnesses: " + ", ".join(
            f"{w['wallet'][:8]}… {'posted' if w['posted'] else 'pending'}" for w in s["witnesses"]))
    return "\n".join(lines)


@click.command("status")
@click.argument("run_id", callback=lambda _c, _p, v: validate_run_id(v))
@output_option
@click.option("--json", "as_json", is_flag=True, help="Same as --output json.")
@click.option("--watch", is_flag=True, help="Refresh in place as the chain changes, until the run finishes or Ctrl-C.")
@url_option
def status(run_id: str, output: str, as_json: bool, watch: bool, url: str) -> None:
    """Phase, epoch, step, time left, clients and their points, this round's witnesses, last checkpoint."""
    from solders.keypair import Keypair

    from coordinator_sdk.client import Coordinator, RunNotFound
    from coordinator_sdk.rpc_pool import AllEndpointsFailed

    async def once(c) -> dict[str, Any]:
        return run_snapshot(await c.fetch_state(), banked=await c.banked_points())

    async def main() -> None:
        async with Coordinator(url, run_id, Keypair()) as c:
            try:
                snap = await once(c)
            except RunNotFound as e:
                raise CommandFailed(str(e), ExitCode.RUN_NOT_FOUND) from None
            except AllEndpointsFailed as e:
                raise CommandFailed(f"no RPC node answers at {url}: {exception_text(e)}",
                                    ExitCode.RPC_UNREACHABLE) from None
        if as_json or output == "json":
            emit_json(snap)
        else:
            click.echo(render(snap))

    if watch:  # the dashboard's live view (websocket + events), refreshed in place
        from client.dashboard.terminal import watch as watch_live
        from client.interrupts import run_until_interrupted

        if run_until_interrupted(watch_live(url, run_id, as_json or output == "json")):
            raise KeyboardInterrupt  # run_main's Ctrl-C policy: "interrupted", exit 130
        return
    from client.cli_chain import quiet_rpc_warnings

    with quiet_rpc_warnings():
        asyncio.run(main())


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

    with quiet_rpc_warnings():
        runs = asyncio.run(main())
    if as_json or output == "json":
        emit_json(runs)
        return
    if not runs:
        click.echo("no runs on this cluster")
    for r in runs:
        click.echo(f"{r['run_id']:<32}  {r['phase']:<17}  epoch {r['epoch']:>3}"
                   f"  step {r['step']:>6}/{r['total_steps']:<6}"
                   f"  clients {r['epoch_clients']}/{r['clients']}  {r['name']}")
