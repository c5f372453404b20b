"""Start a real `python -m localnet` subprocess on free loopback ports for tests and benches."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from devtools.local_cluster import free_port_pair


def rpc(url: str, method: str, params: list | None = None) -> dict:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
    req = urllib.request.Request(url, body, {"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


class Localnet:
    def __init__(self, ledger: Path, reset: bool = True, port: int | None = None, extra: tuple[str, ...] = ()) -> None:
        # a port found free can be taken by another test worker before the localnet binds it: a chosen port is
        # retried with a fresh one (a port the caller named is not)
        for _ in range(5):
            if self._start(ledger, reset, port or free_port_pair(), extra):
                return
            self.log.close()
            if port is not None:
                break
        raise RuntimeError(f"localnet exited early: {self.log_path.read_text()}")

    def _start(self, ledger: Path, reset: bool, port: int, extra: tuple[str, ...]) -> bool:
        """True once healthy; False when the port was taken under it; raises on any other failure."""
        self.ledger, self.port = ledger, port
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port + 1}"
        args = [sys.executable, "-m", "localnet", "--rpc-port", str(self.port), "--ledger", str(ledger), "--quiet"]
        if reset:
            args.append("--reset")
        args += list(extra)
        self.log_path = ledger.parent / f"localnet-{self.port}.log"
        self.log = self.log_path.open("w")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, cwd=Path(__file__).parent.parent,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                text = self.log_path.read_text()
                if "Address already in use" in text:
                    return False
                raise RuntimeError(f"localnet exited early: {text}")
            try:
                if rpc(self.url, "getHealth").get("result") == "ok":
                    return True
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("localnet did not become healthy in 60 s")

    def stop(self, hard: bool = False) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if hard else signal.SIGTERM)
            self.proc.wait(timeout=30)
        self.log.close()


async def funded_wallet_file(url: str, directory: Path, name: str, lamports: int = 5 * 10**9):
    """A new keypair saved as a Solana CLI wallet file and funded through requestAirdrop: (keypair, path)."""
    from solana.rpc.async_api import AsyncClient
    from solders.keypair import Keypair

    kp = Keypair()
    path = directory / f"{name}.json"
    path.write_text(json.dumps(list(bytes(kp))))
    async with AsyncClient(url) as client:
        await client.confirm_transaction((await client.request_airdrop(kp.pubkey(), lamports)).value)
    return kp, str(path)
