"""The ledger lock and the listening sockets, both taken before anything in the ledger is touched, so a
second localnet on the same ledger (or a `--reset` aimed at a ledger in use, or a busy port) stops with a
clear message and deletes or writes nothing."""
from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path


class StartupError(Exception):
    """The localnet cannot start; the message says why in one line."""


class LedgerLock:
    """An exclusive flock on LEDGER/localnet.lock holding the owner's PID; released when the process ends
    (even by kill -9), so a stale lock file never blocks a restart."""

    def __init__(self, ledger_dir: Path) -> None:
        try:
            ledger_dir.mkdir(parents=True, exist_ok=True)
            self.path = ledger_dir / "localnet.lock"
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise StartupError(f"cannot use the ledger directory {ledger_dir}: {e.strerror or e}") from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(self.fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(self.fd)
            raise StartupError(f"the ledger {ledger_dir} is in use by another localnet (pid {holder}); stop it "
                               "or pick another --ledger") from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def bind_listeners(host: str, ports: list[int]) -> list[socket.socket]:
    """Listening sockets on every port, or StartupError naming the busy one (and none left open)."""
    socks: list[socket.socket] = []
    for port in ports:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            s.listen(1024)
        except OSError as e:
            s.close()
            for other in socks:
                other.close()
            raise StartupError(f"cannot listen on {host}:{port}: {e.strerror or e} (is another localnet or "
                               "validator running? pick another --rpc-port)") from None
        s.setblocking(False)
        socks.append(s)
    return socks
