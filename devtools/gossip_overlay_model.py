"""A model of the gossip overlay (client/p2p/gossip.py) as clients arrive one by one: how often some client is
left with nobody forwarding to it, so it hears no gossip at all (seen once at N=32 in bench.scale with the old
rule: that client applied only its own result and diverged silently).

The rules modelled: a node keeps `fanout` neighbours chosen at random from the members it knows and tops up
only below `fanout`; a node dialled by a member adopts it as a neighbour. The old rule adopted only while the
node had fewer than 2 x fanout (`cap=6`): a latecomer is chosen by nobody (everyone already has `fanout`), so
it was heard only if one of the nodes it dials still had room, and early nodes, chosen by many, were often
full. The current rule never refuses adoption (`cap=None`): every node a latecomer picks forwards to it, so
each node is heard by at least min(fanout, N-1) others; the price is a higher degree for early nodes (reported).

    python -m devtools.gossip_overlay_model
"""
from __future__ import annotations

import random


def overlay(n: int, fanout: int = 3, cap: int | None = None, seed: int = 0) -> dict[int, list[int]]:
    rng = random.Random(seed)
    nb: dict[int, list[int]] = {i: [] for i in range(n)}
    for k in range(n):  # node k arrives; every arrived node then runs a maintenance tick (top up, dial)
        for i in [k, *range(k)]:
            spare = [j for j in range(k + 1) if j != i and j not in nb[i]]
            rng.shuffle(spare)
            nb[i] += spare[:max(0, fanout - len(nb[i]))]
            for p in nb[i]:
                if i not in nb[p] and (cap is None or len(nb[p]) < cap):
                    nb[p].append(i)
    return nb


def isolated(n: int, fanout: int = 3, cap: int | None = None, seed: int = 0) -> int:
    """How many of `n` nodes no other node has as a neighbour (receive no forwarded gossip)."""
    nb = overlay(n, fanout, cap, seed)
    heard = {j for i in range(n) for j in nb[i]}
    return sum(1 for i in range(n) if i not in heard)


def main() -> None:
    for n in (8, 16, 32, 64, 128, 256):
        runs = 100 if n <= 64 else 30
        old = [isolated(n, cap=6, seed=s) for s in range(runs)]
        new = [isolated(n, seed=s) for s in range(runs)]
        degrees = [len(v) for s in range(min(runs, 10)) for v in overlay(n, seed=s).values()]
        old_share = sum(1 for c in old if c) / runs
        print(f"N={n:>3}: runs with a client nobody forwards to: old rule (adopt below 6) {old_share:>4.0%}"
              f" (mean {sum(old) / runs:.2f}); current rule (always adopt) {sum(1 for c in new if c) / runs:.0%};"
              f" degree mean {sum(degrees) / len(degrees):.1f}, max {max(degrees)}")


if __name__ == "__main__":
    main()
