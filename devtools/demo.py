"""The main demo: a localnet, a run created from examples/run.toml, and three `psyche run-client` processes
(each its own wallet and iroh node) that train it end to end. Prints each client's final weights sha256
(all equal, or the demo fails), the loss curve, the points each client earned (from `psyche run status`),
and where the checkpoints are. The run is administered by the treasurer program: its rewards are SPL tokens
in a funded vault, and the demo ends with every client claiming them and `psyche rewards show`.

    scripts/loopback-only .venv/bin/python -m devtools.demo [--clients 3] [--workdir .demo]

Why in devtools and not a `psyche demo` command: it stands up a whole network of this checkout (a localnet,
examples/run.toml, the bundled corpus, scripts/loopback-only) through `devtools.local_cluster`, which only
exists in a checkout; the product commands it drives (`psyche localnet`, `run create`, `run-client`,
`rewards ...`) are what ships. scripts/demo.sh runs it as `python -m devtools.demo`.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from devtools.local_cluster import REPO, LocalCluster, psyche


def _reward_token(url: str, owner: Path) -> str:
    """A fresh SPL mint (6 decimals) with 1000 tokens in the owner's account: the run's rewards."""
    out = psyche("token", "create-mint", "--decimals", "6", "-u", url, "-k", str(owner)).stdout
    mint = out.split()[1]
    psyche("token", "mint", mint, "1000", "-u", url, "-k", str(owner))
    return mint


def _run_toml(workdir: Path, data: Path) -> Path:
    """examples/run.toml with its data and initial checkpoint placed in `workdir` (any --workdir works)."""
    text = (REPO / "examples" / "run.toml").read_text()
    text = text.replace('"../.demo/data/pydoc"', f'"{data.resolve()}"')
    text = text.replace('"../.demo/initial-checkpoint"', f'"{(workdir / "initial-checkpoint").resolve()}"')
    path = workdir / "run.toml"
    path.write_text(text)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=REPO / ".demo")
    ap.add_argument("--timeout", type=float, default=240.0)
    a = ap.parse_args(argv)
    if not 1 <= a.clients <= 16:
        ap.error("--clients must be 1..16")
    from devtools.netns import reexec_in_loopback_namespace

    reexec_in_loopback_namespace("devtools.demo")
    t0 = time.monotonic()
    data = a.workdir / "data" / "pydoc"
    if not data.exists():
        print("== tokenizing the bundled pydoc corpus (once)", flush=True)
        psyche("data", "prepare", "--corpus", "pydoc", "--seq-len", "65", "-o", str(data), timeout=300)
    for stale in ("initial-checkpoint", "net"):
        shutil.rmtree(a.workdir / stale, ignore_errors=True)
    run_id = f"demo-{int(time.time())}"
    with LocalCluster(a.workdir / "net") as net:
        print(f"== localnet at {net.url}; creating run {run_id!r} from examples/run.toml", flush=True)
        owner = net.wallet("owner")
        mint = _reward_token(net.url, owner)
        print(net.create_run(run_id, _run_toml(a.workdir, data), owner, "--treasurer", "--mint", mint,
                             "--collateral-per-point", "1000").rstrip(), flush=True)
        print(psyche("run", "fund", run_id, "100", "-u", net.url, "-k", str(owner)).stdout.rstrip(), flush=True)
        clients = [net.start_client(f"client{i}", run_id) for i in range(a.clients)]
        print(f"== dashboard (inside the loopback-only namespace): {net.start_dashboard(run_id)}", flush=True)
        print(f"== {a.clients} run-client processes training (logs: {net.dir}/client*.log)", flush=True)
        shown = 0
        deadline = time.monotonic() + a.timeout
        while time.monotonic() < deadline and any(c.proc.poll() is None for c in clients):
            rounds = clients[0].of_kind("round")
            for e in rounds[shown:]:
                loss = "-" if e["loss"] is None else f"{e['loss']:.4f}"
                print(f"   client0  epoch {e['epoch']} step {e['step']:>3}  loss {loss}  results {e['gathered']}/"
                      f"{e['expected']}  applied {e['applied']}  witness {e['witness']}", flush=True)
            shown = len(rounds)
            time.sleep(0.5)
        codes = [c.proc.poll() for c in clients]
        if codes != [0] * a.clients:
            print(f"clients exited with {codes} (None: still running at the timeout): the demo failed", file=sys.stderr)
            for c in clients:
                print(f"--- {c.name}\n{c.log_path.read_text()[-1500:]}", file=sys.stderr)
            return 1
        finals = [c.of_kind("finished")[-1] for c in clients]
        status = net.status(run_id)
        print("== each client claims its rewards in tokens (psyche rewards claim), then psyche rewards show")
        for c in clients:
            out = psyche("rewards", "claim", "--run-id", run_id, "-u", net.url, "-k", str(c.wallet)).stdout
            print(f"   {c.name}: " + "; ".join(out.strip().splitlines()[::2]), flush=True)
        print(psyche("rewards", "show", "--run-id", run_id, "-u", net.url).stdout.rstrip(), flush=True)
    print("== results")
    for c, f in zip(clients, finals, strict=True):
        print(f"   {c.name}: weights sha256 {f['weights_sha256']}  loss {f.get('loss_first')} -> {f.get('loss_last')}"
              f"  checkpoint {f.get('checkpoint')}")
    same = len({f["weights_sha256"] for f in finals}) == 1
    print("   all clients hold bit-identical weights" if same else "   CLIENTS DIVERGED: weights differ")
    print(f"   run {run_id}: {status['phase']} at step {status['step']}, epoch {status['epoch']};"
          f" last checkpoint on chain {status['checkpoint']}")
    for cl in status["clients"]:
        print(f"   points  {cl['wallet']}  earned {cl['earned']}  penalised {cl['penalised']}")
    print(f"== demo finished in {time.monotonic() - t0:.0f}s")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
