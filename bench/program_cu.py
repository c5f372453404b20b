"""Compute units of every coordinator instruction at 4, 64 and 256 clients (deployed through the loader).

    .venv/bin/python -m bench.program_cu [--clients 4 64 256]

Each row is the CU of one transaction in a realistic state; "tick: RoundWitness -> next round (+penalty)"
is the worst case of tick: elected witnesses stayed silent, so the elected set is recomputed to slash them.
"""
from __future__ import annotations

import argparse

from solders.keypair import Keypair

from coordinator_sdk.litesvm_harness import CoordinatorSvm
from coordinator_sdk.shuffle import elected_witnesses


def measure(n: int) -> dict[str, int]:
    h = CoordinatorSvm()
    cfg = dict(warmup_time=10, cooldown_time=5, max_round_train_time=20, round_witness_time=2,
               global_batch_size_warmup_tokens=0, epoch_time=10_000, total_steps=1000, max_seq_len=512,
               init_min_clients=n, min_clients=2, witness_nodes=0, global_batch_size_start=max(8, n),
               global_batch_size_end=max(8, n), waiting_for_members_extra_time=1)
    out: dict[str, int] = {}
    run = h.create_run(f"cu-{n}", config=cfg, rates=(10_000, 5))
    out["update_config (halted)"] = h.owner(run, "update_config", h.codec.config(**cfg)).cu
    out["set_future_epoch_rates"] = h.owner(run, "set_future_epoch_rates", 10_000, 5).cu
    out["set_paused(false): start the run"] = h.owner(run, "set_paused", False).cu
    users = [h.fund(Keypair(), 10**8) for _ in range(n)]
    joins = [h.join(run, u) for u in users]
    out["join_run (the last client to join)"] = joins[-1].cu
    h.advance(2)
    out["tick: WaitingForMembers -> Warmup"] = h.client(run, "tick", users[0]).cu
    ww = [h.client(run, "warmup_witness", u) for u in users[:min(n, 32)]]
    out["warmup_witness (the last one starts round 0)"] = ww[-1].cu
    st = h.state(run)

    def round_witnesses(skip_first: bool) -> list[int]:
        st = h.state(run)
        r = st.rounds[st.rounds_head]
        chosen = elected_witnesses(r.clients_len, r.random_seed, 0)
        by_signer = {bytes(u.pubkey()): u for u in users}
        cus = []
        for i in chosen[1:] if skip_first else chosen:
            h.advance(0)
            args = ([0] * 192, [0] * 192, [0] * 32, st.step, 2.0, 3.0, 4.0)
            cus.append(h.client(run, "witness", by_signer[bytes(st.epoch_clients[i].signer)], *args).cu)
        return cus

    cus = round_witnesses(False)
    out["witness (max over the round)"] = max(cus)
    h.advance(2)
    out["tick: RoundWitness -> next round"] = h.client(run, "tick", users[0]).cu
    round_witnesses(True)
    h.advance(20)
    out["tick: RoundTrain -> RoundWitness (timeout)"] = h.client(run, "tick", users[0]).cu
    h.advance(2)
    out["tick: RoundWitness -> next round (+penalty)"] = h.client(run, "tick", users[0]).cu
    st = h.state(run)
    out["health_check (refused: client is healthy)"] = h.client(run, "health_check", users[0], 0).cu
    out["checkpoint"] = h.client(run, "checkpoint", users[0], "hf://org/model@" + "r" * 40).cu
    out["withdraw"] = h.client(run, "withdraw", users[-1]).cu
    out["set_paused(true): pending pause"] = h.owner(run, "set_paused", True).cu
    assert st.run_state in (3, 4)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, nargs="+", default=[4, 64, 256])
    args = ap.parse_args()
    results = {n: measure(n) for n in args.clients}
    names = list(next(iter(results.values())))
    print(f"{'instruction':48}" + "".join(f"{n:>9} cl" for n in args.clients))
    for name in names:
        print(f"{name:48}" + "".join(f"{results[n][name]:>12,}" for n in args.clients))
    acc = CoordinatorSvm().codec.account_size
    print(f"CoordinatorAccount: {acc:,} bytes; RunInstance: 144 bytes; Authorization: 80 bytes")
    from bench.treasurer_cu import report as treasurer_report  # the treasurer's table (bench/treasurer_cu.py)

    treasurer_report([max(3, n) for n in args.clients])


if __name__ == "__main__":
    main()
