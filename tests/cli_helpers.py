"""Run the installed `psyche` console script as a user would: a real process, so exit codes, signals and
tracebacks are what a shell sees (CliRunner catches exceptions differently from `client.cli:entry`)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PSYCHE = str(Path(sys.executable).parent / "psyche")


def psyche_env(**extra: str) -> dict[str, str]:
    """The environment without PSYCHE_* settings from the caller's shell, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PSYCHE_")}
    return {**env, **extra}


def run_psyche(*args: str, timeout: float = 120, env: dict[str, str] | None = None,
               stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PSYCHE, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          env=env if env is not None else psyche_env(), input=stdin, check=False)


def assert_one_line_error(res: subprocess.CompletedProcess[str], code: int, fragment: str) -> None:
    """Exit `code`, no traceback, and the last stderr line (click may print usage above it) names the problem."""
    assert res.returncode == code, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr + res.stdout, res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert fragment in last, res.stderr


@contextmanager
def silent_server() -> Iterator[tuple[int, list[socket.socket]]]:
    """A TCP listener that accepts connections and never answers: (port, accepted sockets so far)."""
    import threading

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    srv.settimeout(0.2)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                accepted.append(srv.accept()[0])
            except OSError:
                pass

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        yield srv.getsockname()[1], accepted
    finally:
        stop.set()
        t.join()
        for c in accepted:
            c.close()
        srv.close()


def sigint_to_a_worker_thread(pid: int) -> None:
    """SIGINT delivered to a thread other than the main one, as the kernel may choose on a busy machine (a
    command then ignored Ctrl-C for good: asyncio.run's handler has no wake-up fd; client/interrupts.py)."""
    import ctypes
    import signal

    tids = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))
    workers = [t for t in tids if t != pid]
    assert workers, "the command runs one thread only: the test no longer checks what it was written for"
    sys_tgkill = 234 if os.uname().machine == "x86_64" else 131  # aarch64
    assert ctypes.CDLL(None, use_errno=True).syscall(sys_tgkill, pid, workers[0], signal.SIGINT) == 0
