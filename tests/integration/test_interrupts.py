"""Ctrl-C ends every command, even when the library it waits in swallows the cancellation
(client/interrupts.py: cancellation repeated, then a hard exit 130 after the grace period)."""
from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import asyncio, sys
from client.interrupts import run_async
swallow = int(sys.argv[1])  # how many cancellations the work swallows (-1: all)

async def work():
    n = 0
    print("ready", flush=True)
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            n += 1
            if swallow != -1 and n > swallow:
                raise
try:
    run_async(work())
except KeyboardInterrupt:
    print("interrupted", file=sys.stderr)
    sys.exit(130)
"""


@pytest.mark.parametrize("swallow", [0, 2, -1])
def test_ctrl_c_ends_work_that_swallows_cancellation(swallow: int) -> None:
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(swallow)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)  # swallow=-1 ends by the hard exit, 5 s after Ctrl-C
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and err.strip() == "interrupted", err
