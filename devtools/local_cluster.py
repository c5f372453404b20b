"""A whole training network on this machine, made of the real commands as separate processes: a
`psyche localnet`, wallets funded by its faucet, a run made with `psyche run create`, and any number of
`psyche run-client` processes whose JSON logs are collected. The demo, the end-to-end tests and the
round-overhead bench all drive it, so each of them exercises exactly what a user would type.

Anything that starts iroh endpoints must run in the loopback-only namespace (scripts/loopback-only).
It lives in devtools because it needs the checkout (REPO, examples/, the programs' build) and only the rig
uses it; the product it starts is invoked as `python -m client.cli`, exactly what `psyche` runs.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PSYCHE = [sys.executable, "-m", "client.cli"]


def free_port_pair() -> int:
    """A port P such that P and P+1 (RPC and websocket) are both free on 127.0.0.1 right now."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port >= 65534:
            continue
        with socket.socket() as s2:
            try:
                s2.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair on 127.0.0.1")


def psyche(*args: str, check: bool = True, timeout: float = 120.0, env: dict | None = None
           ) -> subprocess.CompletedProcess:
    """Run one `psyche` command to completion (the same entry point as .venv/bin/psyche)."""
    proc = subprocess.run([*PSYCHE, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise RuntimeError(f"psyche {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return proc


@dataclass
class ClientProcess:
    name: str
    wallet: Path
    proc: subprocess.Popen
    log_path: Path
    events: list[dict[str, Any]] = field(default_factory=list)

    def read_events(self) -> list[dict[str, Any]]:
        self.events = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    self.events.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return self.events

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.read_events() if e.get("kind") == kind]


class LocalCluster:
    def __init__(self, workdir: Path, localnet_args: tuple[str, ...] = ()) -> None:
        """`localnet_args`: extra `psyche localnet` flags (e.g. --drop-tx-rate for a hostile cluster)."""
        self.localnet_args = localnet_args
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port_pair()
        self.url = f"http://127.0.0.1:{self.port}"
        self.localnet: subprocess.Popen | None = None
        self.clients: list[ClientProcess] = []
        self.dashboards: list[subprocess.Popen] = []
        self._healthy_once = False  # a restart must keep the port the clients know

    def __enter__(self) -> LocalCluster:
        self.start_localnet()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start_localnet(self) -> None:
        for _ in range(5):
            if self._start_localnet():
                self._healthy_once = True
                return
            # the port found free was taken by another process before the localnet bound it (parallel test
            # workers): before anyone knows the address, another one will do
            self.port = free_port_pair()
            self.url = f"http://127.0.0.1:{self.port}"
        raise RuntimeError(f"localnet found no free port: {(self.dir / 'localnet.log').read_text()[-2000:]}")

    def _start_localnet(self) -> bool:
        log = (self.dir / "localnet.log").open("a")
        self.localnet = subprocess.Popen([*PSYCHE, "localnet", "--rpc-port", str(self.port), "--ledger",
                                          str(self.dir / "ledger"), "--quiet", *self.localnet_args],
                                         stdout=log, stderr=subprocess.STDOUT,
                                         cwd=REPO)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.localnet.poll() is not None:
                text = (self.dir / "localnet.log").read_text()[-2000:]
                if not self._healthy_once and "Address already in use" in text:
                    return False
                raise RuntimeError(f"localnet exited: {text}")
            try:
                self.rpc("getHealth", [])
                return True
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("localnet did not answer within 60 s")

    def wallet(self, name: str, sol: int = 10) -> Path:
        """A new keypair file, funded from the faucet."""
        from solders.keypair import Keypair

        from coordinator_sdk.keypair_file import write_keypair

        path = self.dir / f"{name}.json"
        if not path.exists():
            write_keypair(path, Keypair())
        self._airdrop(path, sol)
        return path

    def restart_localnet(self, down_s: float) -> None:
        """An RPC outage: the validator stops, stays down `down_s` seconds, and comes back on the same port
        with the same ledger (what clients see when their node restarts)."""
        assert self.localnet is not None
        self.localnet.send_signal(signal.SIGTERM)
        self.localnet.wait(timeout=30)
        time.sleep(down_s)
        self.start_localnet()

    def rpc(self, method: str, params: list) -> Any:
        """One JSON-RPC call; a 429 from a rate-limited localnet is waited out as its Retry-After says."""
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
        req = urllib.request.Request(self.url, body, {"content-type": "application/json"})
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    return json.loads(r.read())["result"]
            except urllib.error.HTTPError as e:
                if e.code != 429 or time.monotonic() > deadline:
                    raise
                time.sleep(float(e.headers.get("Retry-After") or 1))

    def _airdrop(self, path: Path, sol: int) -> None:
        from coordinator_sdk.keypair_file import read_keypair

        sig = self.rpc("requestAirdrop", [str(read_keypair(path).pubkey()), sol * 10**9])
        for _ in range(100):
            if self.rpc("getSignatureStatuses", [[sig]])["value"][0]:
                return
            time.sleep(0.1)
        raise RuntimeError("airdrop did not confirm")

    def create_run(self, run_id: str, config: Path, owner: Path, *extra: str) -> str:
        return psyche("run", "create", run_id, "--config", str(config), "-u", self.url, "-k", str(owner),
                      *extra).stdout

    def status(self, run_id: str) -> dict[str, Any]:
        return json.loads(psyche("run", "status", run_id, "--json", "-u", self.url).stdout)

    def start_client(self, name: str, run_id: str, wallet: Path | None = None, *extra: str,
                     env: dict[str, str] | None = None, entry: list[str] | None = None) -> ClientProcess:
        """`psyche run-client` as its own process; `entry` replaces `python -m client.cli` (a test's own
        client with an injected fault, e.g. devtools.faulty_client, which takes the same arguments)."""
        wallet = wallet or self.wallet(name)
        log_path = self.dir / f"{name}.log"
        log = log_path.open("a")
        proc = subprocess.Popen([*(entry or PSYCHE), "run-client", "--run-id", run_id, "-u", self.url, "-k",
                                 str(wallet), "--logs", "json", "--checkpoint-dir",
                                 str(self.dir / f"{name}-checkpoints"), *extra],
                                stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                                env={**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", **(env or {})})
        client = ClientProcess(name, wallet, proc, log_path)
        self.clients.append(client)
        return client

    def start_dashboard(self, run_id: str) -> str:
        """`psyche dashboard` for this run on a free port; its URL (it stops with the cluster)."""
        proc = subprocess.Popen([*PSYCHE, "dashboard", "--run-id", run_id, "-u", self.url, "--port", "0"], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.dashboards.append(proc)
        line = proc.stdout.readline()
        if not line.startswith("dashboard: http://"):
            raise RuntimeError(f"psyche dashboard did not start: {line}{proc.stdout.read()[-2000:]}")
        return line.split()[1]

    def wait_all(self, clients: list[ClientProcess], timeout: float) -> list[int | None]:
        deadline = time.monotonic() + timeout
        for c in clients:
            try:
                c.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        return [c.proc.poll() for c in clients]

    def stop(self) -> None:
        for d in self.dashboards:
            d.terminate()
            d.wait(timeout=20)
        for c in self.clients:
            if c.proc.poll() is None:
                c.proc.send_signal(signal.SIGKILL)
                c.proc.wait()
        if self.localnet is not None and self.localnet.poll() is None:
            self.localnet.send_signal(signal.SIGTERM)
            try:
                self.localnet.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.localnet.kill()
