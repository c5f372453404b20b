"""A model of the gossip overlay (client/p2p/gossip.py) as clients arrive one by one: how often some client is
left with nobody forwarding to it, so it hears no gossip at all (seen once at N=32 in bench.scale: that client
applied only its own result and diverged silently).

The rules modelled: a node keeps `fanout` neighbours chosen at random from the members it knows and tops up
only below `fanout`; a node dialled by a member adopts it as a neighbour only while it has fewer than
2 x fanout. A latecomer is chosen by nobody (everyone already has `fanout`), so it is heard only if one of
the nodes it dials adopts it, and early nodes, chosen by many, are often full.

    python -m devtools.gossip_overlay_model
"""
from __future__ import annotations

import random


def isolated(n: int, fanout: int = 3, cap: int = 6, seed: int = 0) -> int:
    """How many of `n` nodes no other node has as a neighbour (receive no forwarded gossip)."""
    rng = random.Random(seed)
    nb: dict[int, list[int]] = {i: [] for i in range(n)}
    for k in range(n):  # node k arrives; every arrived node then runs a maintenance tick (top up, dial)
        for i in [k, *range(k)]:
            spare = [j for j in range(k + 1) if j != i and j not in nb[i]]
            rng.shuffle(spare)
            nb[i] += spare[:max(0, fanout - len(nb[i]))]
            for p in nb[i]:
                if i not in nb[p] and len(nb[p]) < cap:
                    nb[p].append(i)
    heard = {j for i in range(n) for j in nb[i]}
    return sum(1 for i in range(n) if i not in heard)


def main() -> None:
    for n in (8, 16, 32, 64, 128, 256):
        runs = 100 if n <= 64 else 30
        counts = [isolated(n, seed=s) for s in range(runs)]
        unlimited = [isolated(n, cap=n, seed=s) for s in range(runs)]
        print(f"N={n:>3}: runs with a client nobody forwards to {sum(1 for c in counts if c) / runs:>5.0%}"
              f" (mean {sum(counts) / runs:.2f}); with adoption uncapped {sum(1 for c in unlimited if c) / runs:.0%}")


if __name__ == "__main__":
    main()
