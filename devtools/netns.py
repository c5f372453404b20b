"""Make sure a demo or bench that starts iroh endpoints runs in a loopback-only network namespace.

iroh's port mapper sends UPnP multicast off the machine even when the endpoint is bound to 127.0.0.1, so
demos and benchmarks that start nodes re-execute themselves through `scripts/loopback-only` (a fresh
namespace with only `lo` up) when started elsewhere, instead of asking every user to remember the wrapper.

Why here and not in `client/p2p`: only the rig (the demo, benches, test helpers) uses it; no `psyche`
command does, since an installed client runs on a real network and the namespace is a property of this
checkout's test and demo setup. It finds the wrapper in the checkout it lives in (devtools is never
installed, see pyproject.toml), so the path walk below cannot break for an installed product.
"""
from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

WRAPPER = Path(__file__).resolve().parents[1] / "scripts" / "loopback-only"
_MARK = "PSYCHE_LOOPBACK_REEXEC"


def loopback_only() -> bool:
    """True in a network namespace whose only interface is lo (sysfs may still list the host's)."""
    return [name for _, name in socket.if_nameindex()] == ["lo"]


def reexec_in_loopback_namespace(module: str) -> None:
    """Return if already loopback-only; else replace this process with `module` run under the wrapper."""
    if loopback_only():
        return
    if os.environ.get(_MARK):
        raise SystemExit("not in a loopback-only namespace even via scripts/loopback-only; refusing to run")
    if not WRAPPER.exists():
        raise SystemExit(f"{WRAPPER} is missing: cannot start iroh endpoints outside a loopback-only namespace")
    os.environ[_MARK] = "1"
    print("not in a loopback-only namespace: re-running through scripts/loopback-only", flush=True)
    os.execv(str(WRAPPER), [str(WRAPPER), sys.executable, "-m", module, *sys.argv[1:]])
