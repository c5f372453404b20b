"""Compute units of every coordinator instruction and every state-transition tick at its worst case, at
4, 64 and 256 clients (deployed through the loader). Goal: every row <= 30k CU, witness <= 20k.

    .venv/bin/python -m bench.program_cu [--clients 4 64 256]

Worst cases: the round-ending tick with every elected witness but one silent (each is penalised), the
epoch-ending tick that pays every client of a full epoch, join_run into a full registry (the eviction scan),
health checks that test every witness's participant bits, withdrawals in Warmup (compaction and vote
remapping), a round-ending tick that moves almost every client out, one that drops every client a quorum of
witnesses left out (all of them), a witness, withdrawal or health check that ends RoundTrain early because the
elected witnesses still pending left (a scan of every elected slot).
"""
from __future__ import annotations

import argparse
from collections.abc import Callable

from solders.keypair import Keypair
from solders.pubkey import Pubkey

from coordinator_sdk.participation import participants_bitmap
from coordinator_sdk.points import evictee
from coordinator_sdk.shuffle import elected_witnesses, witness_slots
from devtools.litesvm_harness import CoordinatorSvm, Run

GOAL, WITNESS_GOAL = 30_000, 20_000


class Scenario:
    """One run with n clients driven to the states whose instructions are measured."""

    def __init__(self, h: CoordinatorSvm, n: int, run_id: str, **overrides: int) -> None:
        self.h, self.n = h, n
        self.cfg = dict(warmup_time=10, cooldown_time=5, max_round_train_time=20, round_witness_time=2,
                        global_batch_size_warmup_tokens=0, epoch_time=10_000, total_steps=1000, max_seq_len=512,
                        init_min_clients=n, min_clients=2, witness_nodes=0, global_batch_size_start=max(8, n),
                        global_batch_size_end=max(8, n), waiting_for_members_extra_time=1)
        self.cfg.update(overrides)
        self.run: Run = h.create_run(run_id, config=self.cfg, rates=(10_000, 5))
        self.users = [h.fund(Keypair(), 10**8) for _ in range(n)]
        self.by_signer = {bytes(u.pubkey()): u for u in self.users}

    def tick(self) -> int:
        res = self.h.client(self.run, "tick", self.users[0])
        assert res.ok, res.logs[-3:]
        return res.cu

    def state(self):
        return self.h.state(self.run)

    def start(self) -> dict[str, int]:
        out = {"set_paused(false): start the run": self.h.owner(self.run, "set_paused", False).cu}
        joins = [self.h.join(self.run, u) for u in self.users]
        assert all(j.ok for j in joins)
        out["join_run (the last client to join)"] = joins[-1].cu
        self.h.advance(2)
        out["tick: WaitingForMembers -> Warmup"] = self.tick()
        return out

    def warmup_votes(self) -> int:
        self.h.advance(0)  # round 0 starts in a slot after the warmup's
        st = self.state()
        cus = [self.h.client(self.run, "warmup_witness", self.by_signer[bytes(st.epoch_clients[i].signer)]).cu
               for i in range(min(st.num_epoch_clients, 32))]
        assert self.state().run_state == 3
        return cus[-1]

    def witness_args(self, missing: set[bytes] = frozenset()) -> tuple:
        """Participant bits for every client of the round but `missing`."""
        st = self.state()
        seen = [i for i in range(st.num_epoch_clients) if bytes(st.epoch_clients[i].signer) not in missing]
        return list(participants_bitmap(seen)), [0] * 192, [7] * 32, st.step, 2.0, 3.0, 4.0

    def witnesses(self, posting: int | None = None, missing: set[bytes] = frozenset()) -> list[int]:
        """The first `posting` elected witnesses (all when None) post, each in its own slot."""
        st = self.state()
        r = st.rounds[st.rounds_head]
        chosen = elected_witnesses(r.clients_len, r.random_seed, st.config.witness_nodes)
        args = self.witness_args(missing)
        cus = []
        chosen = [i for i in chosen if st.epoch_clients[i].state == 0]  # only healthy clients may witness
        for i in chosen[:posting]:
            self.h.advance(0)
            res = self.h.client(self.run, "witness", self.by_signer[bytes(st.epoch_clients[i].signer)], *args)
            assert res.ok, res.logs[-3:]
            cus.append(res.cu)
        return cus

    def end_round(self) -> int:
        """Let the round time out (RoundTrain, when a witness is missing) and end: the CU of the ending tick."""
        if self.state().run_state == 3:
            self.h.advance(self.cfg["max_round_train_time"])
            self.tick()
        self.h.advance(self.cfg["round_witness_time"])
        return self.tick()


def main_run(h: CoordinatorSvm, n: int) -> dict[str, int]:
    s = Scenario(h, n, f"cu-{n}")
    out = {"update_config (halted)": h.owner(s.run, "update_config", h.codec.config(**s.cfg)).cu,
           "set_future_epoch_rates": h.owner(s.run, "set_future_epoch_rates", 10_000, 5).cu}
    out.update(s.start())
    out["warmup_witness (the last one starts round 0)"] = s.warmup_votes()
    out["witness (max over the round)"] = max(s.witnesses())
    out["tick: RoundWitness -> next round"] = s.end_round()
    lazy = bytes(s.users[-1].pubkey())  # any client: the participant bits are exact
    s.witnesses(posting=1, missing={lazy})
    h.advance(s.cfg["max_round_train_time"])
    out["tick: RoundTrain -> RoundWitness (timeout)"] = s.tick()
    h.advance(s.cfg["round_witness_time"])
    out["tick: RoundWitness -> next round (all silent but 1)"] = s.tick()
    st = s.state()
    assert st.run_state == 3 and st.rounds[st.rounds_head].height == 2
    out["health_check (refused: too few posted)"] = h.client(s.run, "health_check", s.users[0], 0).cu
    s.witnesses(missing={lazy})
    seen = h.client(s.run, "health_check", s.users[0], 0)
    assert not seen.ok and seen.error_name == "ClientIsHealthy"
    out["health_check (refused: every witness saw it)"] = seen.cu
    st = s.state()
    lazy_i = [bytes(st.epoch_clients[i].signer) for i in range(st.num_epoch_clients)].index(lazy)
    drop = h.client(s.run, "health_check", s.users[0], lazy_i)
    assert drop.ok, drop.logs[-3:]
    out["health_check (drops the client)"] = drop.cu
    out["withdraw"] = h.client(s.run, "withdraw", s.users[1]).cu
    out["set_paused(true): pending pause"] = h.owner(s.run, "set_paused", True).cu
    out["tick: RoundWitness -> Cooldown (pending pause)"] = s.end_round()
    out.update(checkpoint_votes(s))
    h.advance(s.cfg["cooldown_time"])
    out["tick: Cooldown -> Paused (epoch end, points)"] = s.tick()
    assert s.state().run_state == 7
    return out


def checkpoint_votes(s: Scenario) -> dict[str, int]:
    """In Cooldown, the healthy clients last in the epoch's list (the longest signer scan) vote until their
    reference has a majority: the first vote and the one that stores the reference."""
    st = s.state()
    assert st.run_state == 5
    healthy = [bytes(st.epoch_clients[i].signer) for i in range(st.num_epoch_clients) if st.epoch_clients[i].state == 0]
    ref = "sha256:" + "r" * 44 + "@p2p"
    results = [s.h.client(s.run, "checkpoint", s.by_signer[k], ref) for k in healthy[::-1][:len(healthy) // 2 + 1]]
    assert all(r.ok for r in results), results[-1].logs[-3:]
    st = s.state()
    assert bytes(st.checkpoint[:st.checkpoint_len]) == ref.encode()
    return {"checkpoint (vote, no majority yet)": results[0].cu, "checkpoint (the vote that makes a majority)":
            results[-1].cu}


def epoch_end_run(h: CoordinatorSvm, n: int) -> dict[str, int]:
    """A full epoch that ends by its epoch_time: every client is paid at the epoch-ending tick."""
    s = Scenario(h, n, f"cu-epoch-{n}", epoch_time=30)
    s.start()
    s.warmup_votes()
    out: dict[str, int] = {}
    while s.state().run_state in (3, 4):
        s.witnesses()
        cu = s.end_round()
        if s.state().run_state == 5:
            out["tick: RoundWitness -> Cooldown (epoch time)"] = cu
    h.advance(s.cfg["cooldown_time"])
    out["tick: Cooldown -> WaitingForMembers (pays all)"] = s.tick()
    st = s.state()
    assert st.run_state == 1 and st.epoch == 1 and all(st.clients[i].earned > 0 for i in range(n))
    return out


def warmup_run(h: CoordinatorSvm, n: int) -> dict[str, int]:
    """Warmup with leavers (compaction, vote remapping), round 0 by timeout, a round nobody witnesses, and a
    newcomer into a full registry."""
    s = Scenario(h, n, f"cu-warm-{n}", global_batch_size_start=n, global_batch_size_end=n)
    s.start()
    s.h.advance(0)
    st = s.state()
    signers = [bytes(st.epoch_clients[i].signer) for i in range(st.num_epoch_clients)]
    for k in signers[:min(n, 32) - 1]:
        assert h.client(s.run, "warmup_witness", s.by_signer[k]).ok
    leavers = [s.by_signer[k] for k in signers[1:n // 2 + 1]]
    cus = [h.client(s.run, "withdraw", u).cu for u in leavers]
    out = {"withdraw in Warmup (compaction, votes remapped)": max(cus)}
    assert s.state().run_state == 2
    out["join_run (full registry: evicts a leaver)"] = s.h.join(s.run, h.fund(Keypair(), 10**8)).cu
    h.advance(s.cfg["warmup_time"])
    out["tick: Warmup -> RoundTrain (timeout)"] = s.tick()
    for k in signers[n // 2 + 2:]:  # all but two leave during round 0: the ending tick moves them all out
        assert h.client(s.run, "withdraw", s.by_signer[k]).ok
    h.advance(s.cfg["max_round_train_time"])
    s.tick()
    h.advance(s.cfg["round_witness_time"])
    out["tick: RoundWitness -> Cooldown (no witness, mass exit)"] = s.tick()
    assert s.state().run_state == 5
    return out


def early_run(h: CoordinatorSvm, n: int) -> dict[str, int]:
    """Rounds that end early because the elected witnesses still pending left (the scan of all 32 slots): the
    last post after another elected witness withdrew, a health check that drops the last pending one (the
    others posted participant bits without it), and the withdrawal of the last pending one."""
    s = Scenario(h, n, f"cu-early-{n}")
    s.start()
    s.warmup_votes()
    out: dict[str, int] = {}

    def pending() -> list[int]:
        st = s.state()
        r = st.rounds[st.rounds_head]
        posted = {r.witnesses[w].client_index for w in range(r.num_witnesses)}
        return [i for i in st.elected[:witness_slots(st.config.witness_nodes, r.clients_len)]
                if i not in posted and st.epoch_clients[i].state == 0]

    def signer_of(i: int) -> Keypair:
        return s.by_signer[bytes(s.state().epoch_clients[i].signer)]

    def moved(res, label: str) -> None:
        assert res.ok and s.state().run_state == 4, (label, res.logs[-3:])
        out[label] = res.cu

    s.witnesses(posting=len(pending()) - 2)
    first, last = pending()
    assert h.client(s.run, "withdraw", signer_of(first)).ok and s.state().run_state == 3
    h.advance(0)
    moved(h.client(s.run, "witness", signer_of(last), *s.witness_args()),
          "witness (last post, one elected left: early move)")
    s.end_round()
    st = s.state()
    assert st.run_state == 3 and st.rounds[st.rounds_head].height == 1
    target = pending()[-1]
    reporter = next(i for i in range(st.num_epoch_clients) if st.epoch_clients[i].state == 0 and i != target)
    gone = {bytes(st.epoch_clients[target].signer)}
    for i in pending()[:-1]:  # the others post participant bits without the target
        h.advance(0)
        assert h.client(s.run, "witness", signer_of(i), *s.witness_args(gone)).ok
    moved(h.client(s.run, "health_check", signer_of(reporter), target),
          "health_check (drops the last pending witness: early)")
    assert s.state().epoch_clients[target].state == 1
    s.end_round()
    s.witnesses(posting=len(pending()) - 1)
    [last] = pending()
    moved(h.client(s.run, "withdraw", signer_of(last)), "withdraw (the last pending witness: early move)")
    return out


def absent_run(h: CoordinatorSvm, n: int) -> dict[str, int]:
    """The round-ending tick that drops whoever a quorum of the witnesses left out: an eighth of the clients
    (issue 21: 32 of 256), then everyone (the drop scan and the compaction of every client)."""
    s = Scenario(h, n, f"cu-absent-{n}")
    s.start()
    s.warmup_votes()
    st = s.state()
    signers = [bytes(st.epoch_clients[i].signer) for i in range(st.num_epoch_clients)]
    absent = set(signers[-max(1, n // 8):])
    s.witnesses(missing=absent)
    out = {"tick: RoundWitness -> next round (1/8 absent: dropped)": s.end_round()}
    st = s.state()
    exited = {bytes(st.exited_clients[i].signer) for i in range(st.num_exited_clients)
              if st.exited_clients[i].state == 1}
    assert st.run_state == 3 and exited == absent and st.num_epoch_clients == n - len(absent)
    s.witnesses(missing=set(signers))
    out["tick: RoundWitness -> Cooldown (nobody seen: all out)"] = s.end_round()
    assert s.state().run_state == 5 and s.state().num_epoch_clients == 0
    return out


def _drawn_three(s: Scenario) -> tuple[int, int, list[int]]:
    """Play rounds until a kept result drew three verifiers: (height, trainer, the last three drawn)."""
    from coordinator_sdk.verdicts import eligible

    for _ in range(12):
        s.witnesses()
        s.end_round()
        st = s.state()
        cur = st.rounds[st.rounds_head].height
        p2p = [bytes(st.epoch_clients[i].p2p) for i in range(st.num_epoch_clients)]
        for height in range(cur - 1, max(-1, cur - 4), -1):
            seed, n = st.rounds[(height + 1) % 4].random_seed, st.rounds[height % 4].clients_len
            for t in range(len(p2p) - 1, -1, -1):
                drawn = [v for v in range(len(p2p)) if eligible(seed, p2p[v], p2p[t], n)]
                if len(drawn) >= 3:
                    return height, t, drawn[::-1][:3]
    raise AssertionError("no result drew three verifiers in 12 rounds")


def verdict_run(h: CoordinatorSvm, n: int) -> dict[str, int]:
    """Verdicts by drawn verifiers last in the epoch's list (the longest signer scan): on one result a pass, a
    fail, then the fail that convicts (Ejected, slashed); in another run a fail, a pass, then the pass that
    vindicates the result (the first accuser, found by a scan of the epoch's and exited lists, is slashed)."""
    out: dict[str, int] = {}
    for kind in ("convict", "vindicate"):
        s = Scenario(h, n, f"cu-{kind}-{n}")
        s.start()
        s.warmup_votes()
        height, t, vs = _drawn_three(s)
        st = s.state()

        def post(v: int, outcome: int, s=s, st=st, t=t, height=height) -> int:
            res = h.client(s.run, "verdict", s.by_signer[bytes(st.epoch_clients[v].signer)], t,
                           list(bytes(st.epoch_clients[t].p2p)), height, outcome, [1] * 32, [2] * 32)
            assert res.ok, res.logs[-3:]
            return res.cu

        if kind == "convict":
            out["verdict (pass)"] = post(vs[0], 1)
            out["verdict (fail, no conviction yet)"] = post(vs[1], 0)
            out["verdict (the fail that convicts: ejected, slashed)"] = post(vs[2], 0)
            assert s.state().epoch_clients[t].state == 3
        else:
            post(vs[0], 0)
            post(vs[1], 1)
            out["verdict (the pass that vindicates: accuser slashed)"] = post(vs[2], 1)
    return out


def _bank(h: CoordinatorSvm, n: int, low_bump: bool) -> int:
    """A registry of n slots full of clients that all earned points in a played epoch: a newcomer evicts one
    (slot 0: all tie, evict_cursor is 0) and banks its points in a new points PDA. Creating it searches the
    PDA's bump (sol_find_pda, ~320 CU per step below 255): slot 0's wallet is picked with bump 255 (half of
    all wallets), or with bump 250 (1 wallet in 64; 31 in 32 have a higher one) for the low-bump figure."""
    s = Scenario(h, n, f"cu-bank-{n}", epoch_time=30, global_batch_size_start=n, global_batch_size_end=n)
    while not _bump_fits(Pubkey.find_program_address([b"points", bytes(s.run.account), bytes(s.users[0].pubkey())],
                                                     h.codec.program_id)[1], low_bump):
        s.users[0] = h.fund(Keypair(), 10**8)
    s.by_signer = {bytes(u.pubkey()): u for u in s.users}
    s.start()
    s.warmup_votes()
    while s.state().run_state in (3, 4):
        s.witnesses()
        s.end_round()
    h.advance(s.cfg["cooldown_time"])
    s.tick()
    st = s.state()
    assert st.run_state == 1 and all(st.clients[i].earned > 0 for i in range(n))
    newcomer = h.fund(Keypair(), 10**8)
    assert evictee(st, newcomer.pubkey()) == s.users[0].pubkey()
    res = h.join(s.run, newcomer)
    assert res.ok and h.banked(s.run, s.users[0].pubkey())[0] > 0, res.logs[-3:]
    return res.cu


def _bump_fits(bump: int, low_bump: bool) -> bool:
    return bump == 250 if low_bump else bump == 255


def bank_run(h: CoordinatorSvm, n: int) -> dict[str, int]:
    return {"join_run (full registry of earners: banks the evictee)": _bank(h, n, low_bump=False)}


def bank_low_bump_run(h: CoordinatorSvm, n: int) -> dict[str, int]:
    return {"join_run (banks the evictee, bump <= 250)": _bank(h, n, low_bump=True)}


SCENARIOS: list[Callable[[CoordinatorSvm, int], dict[str, int]]] = [main_run, epoch_end_run, warmup_run, early_run,
                                                                    absent_run, verdict_run, bank_run,
                                                                    bank_low_bump_run]


def measure(n: int) -> dict[str, int]:
    out: dict[str, int] = {}
    for scenario in SCENARIOS:
        out.update(scenario(CoordinatorSvm(), n))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, nargs="+", default=[4, 64, 256])
    args = ap.parse_args()
    results = {n: measure(n) for n in args.clients}
    names = list(next(iter(results.values())))
    print(f"{'instruction':56}" + "".join(f"{n:>9} cl" for n in args.clients))
    for name in names:
        print(f"{name:56}" + "".join(f"{results[n][name]:>12,}" for n in args.clients))
    worst = max((cu, name) for r in results.values() for name, cu in r.items())
    witness = max(r["witness (max over the round)"] for r in results.values())
    print(f"max: {worst[0]:,} ({worst[1]}), goal {GOAL:,}; witness max {witness:,}, goal {WITNESS_GOAL:,}: "
          f"{'within' if worst[0] <= GOAL and witness <= WITNESS_GOAL else 'OVER'}")
    acc = CoordinatorSvm().codec.account_size
    print(f"CoordinatorAccount: {acc:,} bytes; RunInstance: 144 bytes; Authorization: 80 bytes")
    from bench.treasurer_cu import report as treasurer_report  # the treasurer's table (bench/treasurer_cu.py)

    treasurer_report([max(3, n) for n in args.clients])


if __name__ == "__main__":
    main()
