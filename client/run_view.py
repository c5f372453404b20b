"""A run as people and scripts read it: `run_snapshot` is the one decoding of a coordinator account into plain
data, and `render` its text. `psyche run status` (text, `--json`, `--watch`), `psyche run list`, the dashboard's
feed and its terminal view all print these, so they never disagree. Shared by client/commands/run_status.py and
client/dashboard/ (neither imports the other for them), and light: no torch, anchorpy or numpy.
"""
from __future__ import annotations

import time
from dataclasses import fields
from typing import Any

from client.runner.witnessing import round_at, round_signers, witness_participants
from coordinator_sdk.account_view import CoordinatorView, view
from coordinator_sdk.deadlines import tick_due_at
from coordinator_sdk.events import PHASES
from coordinator_sdk.model.state import ClientState, Config, RunState
from coordinator_sdk.shuffle import elected_witnesses


def _client_state(raw: Any) -> str:
    return ClientState(int(raw)).name.lower()


def _text(raw: Any, n: int) -> str:
    return bytes(raw[:n]).decode("utf-8", errors="replace")


def _delivered_heights(st: CoordinatorView) -> dict[bytes, int]:
    """signer -> the newest round height (of the 4 kept, this epoch) some witness listed that client in."""
    heights: dict[bytes, int] = {}
    current = int(view(st).current_round.height)
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


def phase_name(st: CoordinatorView) -> str:
    """The run's phase as a person should read it. `run create --paused` leaves the account Uninitialized
    (the program initialises it at the first `resume`), which would read like a broken run; one whose config
    passes the program's resume check (config_check, mirrored by Config.violations) and whose initial
    checkpoint is set is fully set up and only waits for `resume`, so it reads Paused. Uninitialized stays for
    an account that `resume` would refuse (created but never configured)."""
    st = view(st)
    state = st.run_state
    if state == RunState.Uninitialized and st.checkpoint_len > 0:
        cfg = Config(**{f.name: int(getattr(st.config, f.name)) for f in fields(Config)})
        if not cfg.violations():
            return PHASES[RunState.Paused]
    return PHASES[state]


def run_snapshot(st: CoordinatorView, now: float | None = None, banked: dict[bytes, tuple[int, int]] | None = None
                 ) -> dict[str, Any]:
    """The run as plain JSON data. `last_round` per client: the newest kept round a witness saw it deliver.
    `banked`: wallet -> (earned, slashed) banked when newcomers took their slots (Coordinator.banked_points):
    a registered client's earned/penalised include its banked points, and wallets with only banked points
    are listed as "evicted"."""
    st = view(st)
    banked = banked or {}
    now = time.time() if now is None else now
    due = tick_due_at(st)
    r = st.current_round
    in_round = st.in_round
    epoch_state = {bytes(st.epoch_clients[i].signer): _client_state(st.epoch_clients[i].state)
                   for i in range(st.num_epoch_clients)}
    for i in range(st.num_exited_clients):
        c = st.exited_clients[i]
        epoch_state.setdefault(bytes(c.signer), _client_state(c.state))
    from solders.pubkey import Pubkey

    delivered = _delivered_heights(st)
    clients = []
    for i in range(st.num_clients):
        c = st.clients[i]
        key = bytes(c.signer)
        bank_e, bank_s = banked.get(key, (0, 0))
        clients.append({"wallet": str(Pubkey(key)), "p2p": bytes(c.p2p).hex(), "addr": _text(c.addr_hint, 64)
                        .split("\x00")[0], "state": epoch_state.get(key, "registered" if int(c.active) == int(
                            st.next_active) else "idle"), "earned": int(c.earned) + bank_e,
                        "penalised": int(c.slashed) + bank_s, "banked_earned": bank_e, "banked_penalised": bank_s,
                        "last_round": delivered.get(key)})
    registered = {bytes(st.clients[i].signer) for i in range(st.num_clients)}
    for key, (bank_e, bank_s) in sorted(banked.items()):
        if key not in registered:
            clients.append({"wallet": str(Pubkey(key)), "p2p": None, "addr": "", "state": "evicted",
                            "earned": bank_e, "penalised": bank_s, "banked_earned": bank_e,
                            "banked_penalised": bank_s, "last_round": None})
    witnesses = []
    if in_round and int(r.clients_len):
        posted = {int(r.witnesses[w].client_index) for w in range(int(r.num_witnesses))}
        for idx in elected_witnesses(int(r.clients_len), int(r.random_seed), int(st.config.witness_nodes)):
            if idx < st.num_epoch_clients:
                witnesses.append({"wallet": str(Pubkey(bytes(st.epoch_clients[idx].signer))), "posted": idx in posted})
    history = []
    for back in range(4):
        rr = round_at(st, back)
        if int(rr.height) or back == 0:
            history.append({"height": int(rr.height), "data_index": int(rr.data_index),
                            "witnesses": int(rr.num_witnesses), "clients": int(rr.clients_len)})
    return {
        "run_id": _text(st.run_id, int(st.run_id_len)), "phase": phase_name(st),
        "epoch": st.epoch, "step": st.step, "total_steps": int(st.config.total_steps),
        "round": int(r.height) if in_round else None, "data_index": int(r.data_index),
        "phase_seconds_left": None if due is None else max(0.0, round(due - now, 1)),
        "phase_started_at": st.run_state_start_unix_timestamp, "phase_due_at": due, "nonce": st.nonce,
        "pending_pause": bool(st.pending_pause), "clients": clients, "epoch_clients": st.num_epoch_clients,
        "witnesses": witnesses, "rounds": history,
        "checkpoint": _text(st.checkpoint, st.checkpoint_len) or None,
        "name": _text(st.metadata.name, int(st.metadata.name_len)),
        "earning_rate": int(st.earning_rate), "slashing_rate": int(st.slashing_rate),
        "distro": _distro(st.model),
    }


SELECTIONS = ("topk", "shared")  # ModelDescription.distro_selection (coordinator.h SEL_*; client/runner/run_model)
PIPELINES = ("overlapped", "synchronous")  # ModelDescription.distro_pipeline (coordinator.h PIPE_*)


def _distro(m: Any) -> dict[str, Any]:
    """The DisTrO settings every client trains with; an operator checks them before joining or comparing runs."""
    sel, pipe = int(m.distro_selection), int(m.distro_pipeline)
    return {"selection": SELECTIONS[sel] if sel < len(SELECTIONS) else f"unknown ({sel})",
            "pipeline": PIPELINES[pipe] if pipe < len(PIPELINES) else f"unknown ({pipe})",
            "chunk": int(m.distro_chunk), "topk": int(m.distro_topk), "decay": round(float(m.distro_decay), 6),
            "quantize_1bit": bool(m.distro_quantize1bit)}


def run_summary(st: CoordinatorView, account: str) -> dict[str, Any]:
    """One line of `psyche run list` (and the dashboard's run list)."""
    s = run_snapshot(st)
    return {k: s[k] for k in ("run_id", "name", "phase", "epoch", "step", "total_steps", "epoch_clients")} | {
        "account": account, "clients": view(st).num_clients}


def render(s: dict[str, Any]) -> str:
    left = "" if s["phase_seconds_left"] is None else f" ({s['phase_seconds_left']:.0f}s left)"
    lines = [f"run {s['run_id']!r} {s['name'] and '(' + s['name'] + ')'}",
             f"  phase {s['phase']}{left}{' [pause pending]' if s['pending_pause'] else ''}   epoch {s['epoch']}"
             f"   step {s['step']}/{s['total_steps']}" + (f"   round {s['round']}" if s['round'] is not None else ""),
             f"  checkpoint {s['checkpoint'] or '-'}",
             f"  distro {s['distro']['selection']}: {s['distro']['topk']} coefficients per {s['distro']['chunk']}x"
             f"{s['distro']['chunk']} DCT block, decay {s['distro']['decay']:g}"
             f"{', 1-bit' if s['distro']['quantize_1bit'] else ''}, {s['distro']['pipeline']} pipeline",
             f"  clients ({sum(c['state'] != 'evicted' for c in s['clients'])} registered, {s['epoch_clients']} in"
             f" this epoch; earned/penalised include points banked when a newcomer took a slot):"]
    for c in s["clients"]:
        lines.append(f"    {c['wallet']:<44}  {c['state']:<10}  earned {c['earned']:>8}  penalised {c['penalised']:>6}")
    if s["witnesses"]:
        lines.append("  this round's witnesses: " + ", ".join(
            f"{w['wallet'][:8]}… {'posted' if w['posted'] else 'pending'}" for w in s["witnesses"]))
    return "\n".join(lines)
