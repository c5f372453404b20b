"""The loopback-only wrapper: a fresh network namespace with only `lo`, and it is up."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

WRAPPER = Path(__file__).resolve().parents[2] / "scripts" / "loopback-only"


def _wrapped(*cmd: str) -> subprocess.CompletedProcess:
    res = subprocess.run([str(WRAPPER), *cmd], capture_output=True, text=True, timeout=30, check=False)
    if res.returncode != 0 and "unshare" in res.stderr:
        pytest.skip(f"network namespaces are not available here: {res.stderr.strip()}")
    return res


def test_only_loopback_interface_exists() -> None:
    res = _wrapped("cat", "/proc/net/dev")
    assert res.returncode == 0, res.stderr
    ifaces = {line.split(":")[0].strip() for line in res.stdout.splitlines()[2:]}
    assert ifaces == {"lo"}


def test_loopback_works_and_nothing_else_is_routable() -> None:
    code = ("import socket\n"
            "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(1)\n"
            "c = socket.create_connection(s.getsockname(), timeout=5); print('lo-ok')\n"
            "u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "try:\n    u.sendto(b'x', ('239.255.255.250', 1900)); print('multicast-sent')\n"
            "except OSError as e:\n    print('unreachable', e.errno)\n")
    import sys
    res = _wrapped(sys.executable, "-c", code)
    assert res.returncode == 0, res.stderr
    assert "lo-ok" in res.stdout and "unreachable" in res.stdout


def test_wrapper_without_command_is_a_usage_error() -> None:
    res = subprocess.run([str(WRAPPER)], capture_output=True, text=True, check=False)
    assert res.returncode == 2 and "usage" in res.stderr
