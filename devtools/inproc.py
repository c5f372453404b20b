"""Several real `RunClient`s in one process on one in-process chain (hivemind's style of testing peers).

Each client has its own wallet, its own real iroh node and torch trainer; the chain is the reference model
(devtools.sim_chain). A test starts clients, injects faults from outside (kill: the client's task dies
without withdrawing and its node goes away; leave: Ctrl-C; freeze: its transactions hang; duplicate: a
second client on the same wallet) and reads each client's events and the chain's state afterwards.
Anything that starts iroh endpoints must run in the loopback-only namespace.
"""
from __future__ import annotations

import asyncio
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from solders.keypair import Keypair

from client.runner.checkpoint_ref import P2P, CheckpointRef, save_reference
from client.runner.engine import RunClient
from client.runner.p2p_session import derive_p2p_identity
from client.runner.report import Reporter
from client.runner.round_work import RoundWork
from client.runner.run_model import model_description_fields
from client.runner.settings import ClientSettings
from client.training.config import ModelConfig
from client.training.model import build_model
from coordinator_sdk.model import Config
from devtools.sim_chain import SimChain

MODEL = dict(arch="llama", vocab_size=256, dim=32, n_layers=1, n_heads=2, n_kv_heads=1, ffn_dim=64, max_seq_len=32)
LR = dict(schedule="constant", base=3e-3, warmup_steps=0)
DISTRO = dict(chunk=16, topk=1, decay=0.99)


class _Lines(io.StringIO):
    """A reporter's output, kept as parsed events."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, Any]] = []

    def write(self, s: str) -> int:
        for line in s.splitlines():
            if line.startswith("{"):
                self.events.append(json.loads(line))
        return len(s)


@dataclass
class SimClient:
    name: str
    wallet: Keypair
    client: RunClient
    out: _Lines
    task: asyncio.Task | None = None
    code: int | None = None
    faults: list[str] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.out.events if e.get("kind") == kind]

    @property
    def done(self) -> bool:
        return self.task is not None and self.task.done()


class InProcessRun:
    def __init__(self, workdir: Path, data_dir: Path, config: Config, run_id: str = "sim",
                 earning_rate: int = 900, slashing_rate: int = 10, seed: int = 0, initial_on_p2p: bool = False,
                 distro: dict[str, Any] | None = None) -> None:
        """`initial_on_p2p`: the run names its initial weights as `sha256:<digest>@p2p` (only peers could have
        them), as it does after an epoch; they are still written to `workdir/initial` for a test to place.
        `distro`: run.toml [distro] keys over DISTRO (e.g. pipeline = "synchronous")."""
        self.dir, self.run_id = workdir, run_id
        workdir.mkdir(parents=True, exist_ok=True)
        model = build_model(ModelConfig.from_dict(MODEL), seed=seed)
        ref = save_reference(model, workdir / "initial")
        if initial_on_p2p:
            ref = CheckpointRef(ref.digest, P2P)
        fields = model_description_fields(MODEL, LR, {**DISTRO, **(distro or {})}, f"local:{data_dir}")
        self.chain = SimChain(run_id, config, ref.encode(), fields, earning_rate, slashing_rate, seed)
        self.clients: list[SimClient] = []

    def start(self) -> None:
        self.chain.start()

    def client(self, name: str, wallet: Keypair | None = None, work: type[RoundWork] = RoundWork,
               **settings_over: Any) -> SimClient:
        """A client on its own task; `work` is where a test injects a fault into its phases; `settings_over`:
        ClientSettings fields a test sets (e.g. simulate_training)."""
        wallet = wallet or Keypair()
        settings = ClientSettings(rpc_urls=[], ws_url=None, run_id=self.run_id, wallet=wallet,
                                  p2p=derive_p2p_identity(wallet, self.run_id), bind_p2p="127.0.0.1:0",
                                  checkpoint_dir=self.dir / name, **settings_over)
        (self.dir / name).mkdir(exist_ok=True)
        out = _Lines()
        rc = RunClient(settings, Reporter("json", 0, out), backend=self.chain.backend(wallet), work=work)
        c = SimClient(name, wallet, rc, out)
        c.task = asyncio.create_task(self._run(c))
        self.clients.append(c)
        return c

    async def _run(self, c: SimClient) -> int:
        c.code = await c.client.run()
        return c.code

    async def kill(self, c: SimClient) -> None:
        """Dies on the spot: no withdraw, its P2P node goes away. Cancelled again every 3 s until it has ended,
        as SIGKILL cannot be ignored: one cancellation can be swallowed (Python 3.11's `asyncio.wait_for`
        drops it when the awaited thing completes at the same moment, gh-86296; the product now uses
        `asyncio.timeout`, but a library may still do it), and the "killed" client then trained on to the end
        of the run, so its restart found the run finished (a CI failure)."""
        c.faults.append("kill")
        assert c.task is not None
        while not c.task.done():
            c.task.cancel()
            await asyncio.wait([c.task], timeout=3.0)
        await asyncio.gather(c.task, return_exceptions=True)

    def leave(self, c: SimClient) -> None:
        """Ctrl-C: the client withdraws and exits 0."""
        c.faults.append("leave")
        c.client.stop.set()

    async def wait(self, clients: list[SimClient], timeout: float) -> list[int | None]:
        tasks = [c.task for c in clients if c.task is not None]
        await asyncio.wait(tasks, timeout=timeout)
        return [c.code for c in clients]

    async def until(self, condition: Any, timeout: float, what: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not condition():
            if loop.time() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.1)

    def points(self) -> dict[bytes, tuple[int, int]]:
        """signer -> (earned, slashed) from the chain's registry."""
        return {c.signer: (c.earned, c.slashed) for c in self.chain.machine.state.clients}

    def dump(self, path: Path) -> None:
        """Every client's events and the chain's instruction log, merged in time order (for a failed test)."""
        rows = [(e["t"], c.name, json.dumps({k: v for k, v in e.items() if k != "t"}, default=str))
                for c in self.clients for e in c.out.events]
        rows += [(t, "chain", f"{name} {who}") for t, name, who in self.chain.log]
        path.write_text("\n".join(f"{t:.2f} {who:<10} {what}" for t, who, what in sorted(rows)))

    async def close(self) -> None:
        for c in self.clients:
            if c.task is not None and not c.task.done():
                c.task.cancel()
        await asyncio.gather(*(c.task for c in self.clients if c.task is not None), return_exceptions=True)
