"""`psyche` with one fault injected into `run-client`, for end-to-end tests of how peers treat a bad client.

    python -m devtools.faulty_client --fault FAULT run-client --run-id ... (same arguments)

FAULT is one of FAULTS: `garbage` (noise bytes), `wrong-model` (another model), and the cheats of issue 25,
each a client paid for work it did not do: `lazy` (well-formed random values), `copier` (another trainer's
result of the same step, re-signed as its own), `replayer` (its own first result, relabelled with each later
step) and `half-batch` (it trains on half of its assigned batch).

Why here and not behind an environment switch in the product: a fault is the test's doing, so it goes in
through the runner's hooks (a result transform, a model transform) or by patching this process's modules
from the rig; the shipped client has no code path that produces a bad result on purpose.
"""
from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import os
import sys
import time
from typing import Any

import msgpack

FAULTS = ("garbage", "wrong-model", "lazy", "copier", "replayer", "half-batch")
COPY_WAIT_S = 6.0  # how long the copier waits for another trainer's result before it sends its own


def garbage(wire: bytes) -> bytes:
    """A result of the right size whose bytes are noise: it fails validation at every peer."""
    return hashlib.sha256(wire).digest() * (len(wire) // 32 + 1)


def wrong_model(model: Any) -> Any:
    """Another model (one layer, other weights): its results do not fit the run's layout."""
    from client.training.model import build_model

    return build_model(model.cfg.__class__.from_dict({**model.cfg.to_dict(), "n_layers": 1}), seed=7)


def random_values(wire: bytes) -> bytes:
    """A lazy trainer: a well-formed result of random values (the indices and `ef` of its real one are kept,
    so only a recomputation can tell). A sign-1 result's last byte must keep its zero padding bits, whose
    count the wire does not say: its bits below the real byte's highest set bit are certainly signs, and are
    randomized too (keeping the whole last byte left small parameters honest, and a check that drew only
    their blocks passed)."""
    env = msgpack.unpackb(wire, raw=False)

    def lazy(v: bytes) -> bytes:
        if not v:
            return v
        mask = (1 << v[-1].bit_length()) - 1
        return os.urandom(len(v) - 1) + bytes([v[-1] ^ (os.urandom(1)[0] & mask)])

    env["val"] = [lazy(v) for v in env["val"]]
    return msgpack.packb(env, use_bin_type=True)


class Replay:
    """Resends its first result, relabelled with each later step (sender and `ef` unchanged)."""

    def __init__(self) -> None:
        self.first: bytes | None = None

    def __call__(self, wire: bytes) -> bytes:
        env = msgpack.unpackb(wire, raw=False)
        if self.first is None:
            self.first = wire
            return wire
        old = msgpack.unpackb(self.first, raw=False)
        old["step"] = env["step"]
        return msgpack.packb(old, use_bin_type=True)


async def copy_of_another(exchange: Any, step: int, own_wire: bytes) -> bytes | None:
    """Another trainer's result of `step`, re-encoded as the copier's own: its sender key and its real `ef`
    (so the sender binding holds and the copier can still serve the state it commits to). None when no other
    result was announced within COPY_WAIT_S."""
    from client.training.result_codec import decode_result, encode_result

    me = exchange.gossip.node.public
    deadline = time.monotonic() + COPY_WAIT_S
    while time.monotonic() < deadline:
        others = {k: h for k, h in exchange.announced(step).items() if k != me}
        for sender, h in others.items():
            try:
                wire = await exchange.blobs.fetch(h, [sender], step)
                res = decode_result(wire, exchange.layout, exchange.cfg, h, step, sender)
            except Exception:  # noqa: BLE001 - a peer that does not serve: try the next one
                continue
            ef = msgpack.unpackb(own_wire, raw=False)["ef"]
            return encode_result(dataclasses.replace(res, ef=ef), exchange.layout, exchange.cfg, sender=me)
        await asyncio.sleep(0.05)
    return None


def install_copier() -> None:
    from client.p2p.result_exchange import ResultExchange

    publish = ResultExchange.publish

    async def copying_publish(self: Any, step: int, wire: bytes, state: Any = None) -> bytes:
        copied = await copy_of_another(self, step, wire)
        return await publish(self, step, wire if copied is None else copied, state)

    ResultExchange.publish = copying_publish  # type: ignore[method-assign]


def install_half_batch() -> None:
    """Training (phase_train) gets the first half of the assigned batch; verifying (phase_verify, its own
    import of fetch_batch) still gets whole batches, so this client checks others honestly."""
    import client.runner.phase_train as phase_train

    fetch = phase_train.fetch_batch

    async def half(provider: Any, first: int, last: int) -> Any:
        batch = await fetch(provider, first, last)
        return batch[:max(1, batch.shape[0] // 2)]

    phase_train.fetch_batch = half  # type: ignore[assignment]


def install(fault: str) -> None:
    import client.runner.engine as engine
    from client.runner.round_work import RoundWork

    if fault == "copier":
        install_copier()
    elif fault == "half-batch":
        install_half_batch()
    hooks: dict[str, Any] = {"garbage": {"wire_hook": garbage}, "wrong-model": {"model_hook": wrong_model},
                             "lazy": {"wire_hook": random_values}, "replayer": {"wire_hook": Replay()}}.get(fault, {})

    class FaultyWork(RoundWork):
        def __init__(self, ctx: Any) -> None:
            super().__init__(ctx, **hooks)

    base = engine.RunClient

    class FaultyClient(base):  # type: ignore[misc, valid-type]
        def __init__(self, settings: Any, report: Any, backend: Any = None, work: Any = None) -> None:
            super().__init__(settings, report, backend, FaultyWork)

    engine.RunClient = FaultyClient  # type: ignore[misc]


def main() -> None:
    args = sys.argv[1:]
    if len(args) < 2 or args[0] != "--fault" or args[1] not in FAULTS:
        sys.exit(f"usage: python -m devtools.faulty_client --fault {{{','.join(FAULTS)}}} run-client ...")
    install(args[1])
    from client.cli import entry

    sys.argv = ["psyche", *args[2:]]
    entry()


if __name__ == "__main__":
    main()
