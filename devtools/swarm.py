"""Many `psyche run-client`s in ONE process against a real localnet (issue 24: 128 clients on one machine).

A `psyche run-client` process costs ~330 MB and a torch import; here N `client.runner.engine.RunClient`s share
one asyncio loop and one torch import, each with its own wallet, its own iroh endpoint and its own RPC and
websocket connections (the real ChainBackend over JSON-RPC, exactly what `psyche run-client` builds). The
chain is a real `psyche localnet` started with devtools.local_cluster.LocalCluster, the run is made with
`psyche run create`, and clients normally train with `simulate_training` (a fixed delay and a seeded result;
nothing in the protocol knows). While the swarm runs, a sampler records this process's CPU (per thread
group: the event loop, iroh's runtime, worker threads), the event-loop CPU of each client and of each task,
the localnet's CPU and its transaction count. With `processes` > 1 the clients are split over this process
and shard children (`--shard`), one event loop each, for N past what one loop's core carries.

Never imported by the product. Anything that starts iroh endpoints must run in the loopback-only namespace:

    PYTHONPATH=$PWD scripts/loopback-only .venv/bin/python -m devtools.swarm -n 8 --simulate 0.2
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from solders.keypair import Keypair

from devtools.inproc import _Lines
from devtools.local_cluster import LocalCluster
from devtools.swarm_metrics import CLIENT, LoopCpu, Sample, cpu_of, round_stats, rss_mb, thread_groups

TOML = """
[run]
name = "swarm"
open = true
earning_rate = {earning}
slashing_rate = 0

[config]
warmup_time = {warmup}
cooldown_time = 2
max_round_train_time = {round_time}
round_witness_time = 1
epoch_time = {epoch_time}
total_steps = {total_steps}
max_seq_len = 32
global_batch_size_start = {batch}
global_batch_size_end = {batch}
global_batch_size_warmup_tokens = 0
init_min_clients = {n}
waiting_for_members_extra_time = 1
min_clients = {min_clients}
witness_nodes = 0
verifiers_per_mille = 0

[model]
arch = "llama"
vocab_size = 256
dim = 64
n_layers = 2
n_heads = 4
n_kv_heads = 2
ffn_dim = 128
max_seq_len = 32
seed = 3

[lr]
schedule = "constant"
base = 3e-3

[distro]
chunk = 16
topk = 1
decay = 0.99

[data]
location = "{data}"

[checkpoint]
path = "initial"
"""


@dataclass(frozen=True)
class SwarmConfig:
    n: int
    simulate: float | None = 0.2  # seconds of simulated training per round; None: real forward/backward
    total_steps: int = 8
    epoch_time: int = 0  # 0: long enough that the run ends by total_steps within one epoch
    round_time: int = 0  # 0: scaled with n
    warmup: int = 0  # 0: scaled with n
    earning: int = 900

    @staticmethod
    def round_timeout(n: int) -> int:
        return max(10, 6 + n + n * n // 60)

    def toml(self, data: Path) -> str:
        # generous: in one process every client's Python shares one event-loop thread and each client's share
        # grows about linearly with N (gossip), so a round takes ~N * (30 + 11 N) ms of that thread (measured to
        # N=32); a round that times out ends the epoch early (nobody is paid for it and the figures are of
        # recovery, not rounds). A timeout is an upper bound: rounds end as soon as the witnesses post.
        round_time = self.round_time or self.round_timeout(self.n)
        warmup = self.warmup or max(20, 4 + self.round_timeout(self.n))
        epoch_time = self.epoch_time or (self.total_steps + 2) * (round_time + 2)
        return TOML.format(earning=self.earning, warmup=warmup, round_time=round_time, epoch_time=epoch_time,
                           total_steps=self.total_steps, batch=self.n, n=self.n, min_clients=max(1, self.n // 2),
                           data=data)


@dataclass
class SwarmClient:
    name: str
    wallet: Keypair
    out: _Lines
    client: Any = None
    task: asyncio.Task | None = None
    code: int | None = None

    @property
    def events(self) -> list[dict[str, Any]]:
        return self.out.events

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.out.events if e.get("kind") == kind]


@dataclass
class Swarm:
    workdir: Path
    cfg: SwarmConfig
    run_id: str = "swarm"
    processes: int = 1  # >1: clients split over this many processes (this one and shard children), one loop each
    net: LocalCluster | None = None
    url: str = ""
    clients: list[SwarmClient] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    shard_samples: list[list[Sample]] = field(default_factory=list)  # each shard child's samples
    base_rss_mb: float = 0.0  # this process and every shard child, before their clients started
    loop_cpu: LoopCpu = field(default_factory=LoopCpu)
    _shards: list[tuple[Any, Path, list[SwarmClient]]] = field(default_factory=list)

    # ---- setup ------------------------------------------------------------------------------------------
    def start_chain(self) -> None:
        """A localnet, the run created with `psyche run create`, and N funded wallets (airdrops batched)."""
        from devtools.chaos_config import prepare_data

        _raise_fd_limit()
        self.workdir.mkdir(parents=True, exist_ok=True)
        data = prepare_data()
        toml = self.workdir / "run.toml"
        toml.write_text(self.cfg.toml(data))
        self.net = LocalCluster(self.workdir / "net")
        self.net.start_localnet()
        self.url = self.net.url
        self.net.create_run(self.run_id, toml, self.net.wallet("owner"))
        wallets = [Keypair() for _ in range(self.cfg.n)]
        sigs = [self.net.rpc("requestAirdrop", [str(w.pubkey()), 10 * 10**9]) for w in wallets]
        deadline = time.monotonic() + 60 + self.cfg.n
        pending = list(sigs)
        while pending:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(pending)} airdrops did not confirm")
            statuses = []
            for i in range(0, len(pending), 200):
                statuses += self.net.rpc("getSignatureStatuses", [pending[i:i + 200]])["value"]
            pending = [s for s, st in zip(pending, statuses, strict=True) if not st]
            if pending:
                time.sleep(0.2)
        self.clients = [SwarmClient(f"c{i:03d}", w, _Lines()) for i, w in enumerate(wallets)]

    def local_clients(self) -> list[SwarmClient]:
        """The clients this process runs (the first share when they are split over processes)."""
        return self.clients[:-(-len(self.clients) // self.processes)]

    async def start_shards(self, timeout: float) -> None:
        """The clients beyond this process's share, in `processes - 1` child processes (`--shard`), each
        running its clients exactly as this one does and writing their events and its samples at the end."""
        rest = self.clients[len(self.local_clients()):]
        per = -(-len(rest) // max(1, self.processes - 1)) if rest else 0
        for k in range(self.processes - 1):
            part = rest[k * per:(k + 1) * per]
            if not part:
                continue
            spec = self.workdir / f"shard-{k + 1}.json"
            spec.write_text(json.dumps({"url": self.url, "run_id": self.run_id, "simulate": self.cfg.simulate,
                                        "timeout": timeout, "out": str(self.workdir / f"shard-{k + 1}-out.json"),
                                        "clients": [[c.name, list(bytes(c.wallet))] for c in part]}))
            log = (self.workdir / f"shard-{k + 1}.log").open("w")
            proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "devtools.swarm", "--shard", str(spec),
                                                        stdout=log, stderr=asyncio.subprocess.STDOUT,
                                                        env={**os.environ, "OMP_NUM_THREADS": "1"})
            self._shards.append((proc, spec, part))

    async def start_clients(self, stagger_s: float = 0.0) -> None:
        """Every client of this process on its own task in this loop (each with its own RPC, websocket and
        iroh endpoint)."""
        import torch

        from client.cli_common import derive_ws_url
        from client.runner.engine import RunClient
        from client.runner.p2p_session import derive_p2p_identity
        from client.runner.report import Reporter
        from client.runner.settings import ClientSettings

        torch.set_num_threads(1)  # one process of many clients: no intra-op thread pools fighting for cores
        self.base_rss_mb = rss_mb()
        self.loop_cpu.install()
        for c in self.local_clients():
            settings = ClientSettings(rpc_urls=[self.url], ws_url=derive_ws_url(self.url), run_id=self.run_id,
                                      wallet=c.wallet, p2p=derive_p2p_identity(c.wallet, self.run_id),
                                      bind_p2p="127.0.0.1:0", checkpoint_dir=None,
                                      simulate_training=self.cfg.simulate)
            c.client = RunClient(settings, Reporter("json", 0, c.out))
            token = CLIENT.set(c.name)
            try:
                c.task = asyncio.create_task(self._run(c))  # copies the context: the client's name goes along
            finally:
                CLIENT.reset(token)
            if stagger_s:
                await asyncio.sleep(stagger_s)

    async def _run(self, c: SwarmClient) -> int:
        c.code = await c.client.run()
        return c.code

    # ---- running ----------------------------------------------------------------------------------------
    async def sample_forever(self, every_s: float = 1.0) -> None:
        net = self.net  # None in a shard child: the localnet is the parent's to watch
        pid = net.localnet.pid if net is not None and net.localnet is not None else None
        lag = 0.0
        while True:
            tx = None
            if net is not None:
                try:
                    tx = await asyncio.to_thread(net.rpc, "getTransactionCount", [])
                except Exception:  # a busy localnet: the count is optional
                    tx = None
            groups = thread_groups()
            self.samples.append(Sample(time.time(), cpu_of("/proc/self/stat"), groups,
                                       cpu_of(f"/proc/{pid}/stat") if pid else 0.0, tx, rss_mb(),
                                       rss_mb(pid) if pid else 0.0,
                                       dict(self.loop_cpu.seconds), dict(self.loop_cpu.by_task), lag))
            t0 = time.monotonic()
            await asyncio.sleep(every_s)
            lag = time.monotonic() - t0 - every_s

    async def wait(self, timeout: float) -> list[int | None]:
        tasks: list[Any] = [c.task for c in self.clients if c.task is not None]
        tasks += [asyncio.create_task(proc.wait()) for proc, _, _ in self._shards]
        sampler = asyncio.create_task(self.sample_forever())
        try:
            await asyncio.wait(tasks, timeout=timeout + 30 if self._shards else timeout)
        finally:
            sampler.cancel()
            await asyncio.gather(sampler, return_exceptions=True)
        for _proc, spec, part in self._shards:
            out = Path(json.loads(spec.read_text())["out"])
            if not out.exists():
                continue
            got = json.loads(out.read_text())
            for c in part:
                c.out.events = got["events"].get(c.name, [])
                exits = c.of_kind("exit")
                c.code = exits[-1]["code"] if exits else None
            self.shard_samples.append([Sample(**s) for s in got["samples"]])
            self.base_rss_mb += got["base_rss_mb"]
        return [c.code for c in self.clients]

    async def close(self) -> None:
        for c in self.clients:
            if c.task is not None and not c.task.done():
                c.task.cancel()
        await asyncio.gather(*(c.task for c in self.clients if c.task is not None), return_exceptions=True)
        for proc, _, _ in self._shards:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        self.loop_cpu.uninstall()
        if self.net is not None:
            self.net.stop()

    # ---- results ----------------------------------------------------------------------------------------
    def chain_points(self) -> dict[str, tuple[int, int, str]]:
        assert self.net is not None
        return {c["wallet"]: (c["earned"], c["penalised"], c["state"]) for c in self.net.status(self.run_id)["clients"]}

    def expected_points(self, c: SwarmClient) -> int:
        """What the protocol pays: earning_rate split among the clients that started each epoch the client took
        part in (tests/run_client_helpers.expected_points, except that an epoch counts when the client trained
        in it even if its own warmup vote was not needed, and its size is what any client's vote saw)."""
        sizes: dict[int, int] = {}
        for other in self.clients:
            for e in other.of_kind("warmup"):
                sizes[e["epoch"]] = max(sizes.get(e["epoch"], 0), e["ready"])
        epochs = {e["epoch"] for kind in ("warmup", "round") for e in c.of_kind(kind)}
        return sum(self.cfg.earning // sizes[ep] for ep in epochs if ep in sizes)

    def check(self) -> list[str]:
        """Problems with the finished run: clients that did not finish, weights that differ, points off."""
        problems = []
        done = {c.name: c.of_kind("finished") for c in self.clients}
        missing = [n for n, f in done.items() if not f]
        if missing:
            problems.append(f"{len(missing)} clients did not finish: {missing[:8]}")
        digests = {f[-1].get("weights_sha256") for f in done.values() if f}
        if len(digests) != 1:
            problems.append(f"weights differ: {len(digests)} distinct digests")
        pts = self.chain_points()
        for c in self.clients:
            got = pts.get(str(c.wallet.pubkey()))
            want = self.expected_points(c)
            if got is None or (got[0], got[1]) != (want, 0):
                problems.append(f"{c.name}: chain points {got}, protocol pays {want}")
        return problems

    def dump(self, path: Path) -> None:
        rows = [(e["t"], c.name, json.dumps({k: v for k, v in e.items() if k != "t"}, default=str))
                for c in self.clients for e in c.out.events]
        path.write_text("\n".join(f"{t:.2f} {who:<6} {what}" for t, who, what in sorted(rows)))


def _raise_fd_limit() -> None:
    """Each client holds sockets (RPC, websocket, iroh): lift the soft open-files limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def shard_main(spec_path: Path) -> None:
    """A shard child: run the clients the spec names against the parent's localnet, then write their events,
    this process's samples and its RSS before they started."""
    spec = json.loads(spec_path.read_text())

    async def go() -> None:
        swarm = Swarm(spec_path.parent, SwarmConfig(len(spec["clients"]), simulate=spec["simulate"]),
                      run_id=spec["run_id"], url=spec["url"])
        swarm.clients = [SwarmClient(name, Keypair.from_bytes(bytes(secret)), _Lines())
                         for name, secret in spec["clients"]]
        _raise_fd_limit()
        try:
            await swarm.start_clients()
            await swarm.wait(spec["timeout"])
        finally:
            await swarm.close()
        Path(spec["out"]).write_text(json.dumps({"events": {c.name: c.out.events for c in swarm.clients},
                                                 "samples": [asdict(s) for s in swarm.samples],
                                                 "base_rss_mb": swarm.base_rss_mb}, default=str))

    asyncio.run(go())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=8)
    ap.add_argument("--simulate", type=float, default=0.2, help="seconds of simulated training; <0: train for real")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--processes", type=int, default=1, help="split the clients over this many processes")
    ap.add_argument("--shard", type=Path, default=None, help=argparse.SUPPRESS)  # a shard child (see shard_main)
    a = ap.parse_args()
    if a.shard is not None:
        shard_main(a.shard)
        return
    import tempfile

    async def go() -> None:
        workdir = a.dir or Path(tempfile.mkdtemp(prefix="swarm-"))
        cfg = SwarmConfig(a.n, None if a.simulate < 0 else a.simulate, total_steps=a.steps)
        swarm = Swarm(workdir, cfg, processes=a.processes)
        try:
            await asyncio.to_thread(swarm.start_chain)
            await swarm.start_shards(a.timeout)
            await swarm.start_clients()
            codes = await swarm.wait(a.timeout)
            swarm.dump(workdir / "events.log")
            print(json.dumps(round_stats(swarm), indent=1, default=str))
            problems = swarm.check()
            print(f"exit codes: {sorted(set(codes), key=str)}; problems: {problems or 'none'}; events: {workdir}")
        finally:
            await swarm.close()

    asyncio.run(go())


if __name__ == "__main__":
    main()
