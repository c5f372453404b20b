"""`psyche` with one fault injected into `run-client`, for end-to-end tests of how peers treat a bad client.

    python -m devtools.faulty_client --fault garbage|wrong-model run-client --run-id ... (same arguments)

Why here and not behind an environment switch in the product: a fault is the test's doing, so it goes in
through the runner's hooks (a result transform, a model transform) from the rig; the shipped client has no
code path that produces a bad result on purpose.
"""
from __future__ import annotations

import hashlib
import sys
from typing import Any

FAULTS = ("garbage", "wrong-model")


def garbage(wire: bytes) -> bytes:
    """A result of the right size whose bytes are noise: it fails validation at every peer."""
    return hashlib.sha256(wire).digest() * (len(wire) // 32 + 1)


def wrong_model(model: Any) -> Any:
    """Another model (one layer, other weights): its results do not fit the run's layout."""
    from client.training.model import build_model

    return build_model(model.cfg.__class__.from_dict({**model.cfg.to_dict(), "n_layers": 1}), seed=7)


def install(fault: str) -> None:
    import client.runner.engine as engine
    from client.runner.round_work import RoundWork

    hooks = {"garbage": {"wire_hook": garbage}, "wrong-model": {"model_hook": wrong_model}}[fault]

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
