"""`psyche run-client` and `psyche run ...` refuse bad input with one line and a distinct exit code, before
anything is sent: missing or corrupt wallets, unknown runs, unreachable RPC, bad run.toml, a device or a
model the client lacks. Each command runs as the real console entry point in its own process."""
from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pytest
from run_client_helpers import write_run_toml

from client.cli_common import ExitCode
from client.local_cluster import LocalCluster, psyche


def _one_line(proc) -> str:
    err = proc.stderr.strip()
    assert "Traceback" not in err and "Traceback" not in proc.stdout, err
    assert err, proc.stdout
    return err.splitlines()[-1]


@pytest.fixture(scope="module")
def net(tmp_path_factory) -> LocalCluster:
    with LocalCluster(tmp_path_factory.mktemp("runcli")) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def made_run(net: LocalCluster) -> tuple[str, Path]:
    toml = write_run_toml(net.dir / "cfg", epoch_time=30, total_steps=50)
    owner = net.wallet("owner")
    out = net.create_run("cli-run", toml, owner, "--paused")
    assert "created run 'cli-run'" in out
    return "cli-run", owner


def test_missing_and_corrupt_wallets(net, made_run, tmp_path) -> None:
    run_id, _ = made_run
    p = psyche("run-client", "--run-id", run_id, "-u", net.url, "-k", str(tmp_path / "nope.json"), check=False)
    assert p.returncode == ExitCode.WALLET and "no such keypair file" in _one_line(p)
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2, 3")
    p = psyche("run-client", "--run-id", run_id, "-u", net.url, "-k", str(bad), check=False)
    assert p.returncode == ExitCode.WALLET and "not a JSON keypair file" in _one_line(p)


def test_unknown_run_and_unfunded_wallet(net, made_run, tmp_path) -> None:
    funded = net.wallet("funded-cli")
    p = psyche("run-client", "--run-id", "no-such-run", "-u", net.url, "-k", str(funded), check=False)
    assert p.returncode == ExitCode.RUN_NOT_FOUND and "no run 'no-such-run'" in p.stdout + p.stderr
    from solders.keypair import Keypair

    from coordinator_sdk.keypair_file import write_keypair

    empty = tmp_path / "empty.json"
    write_keypair(empty, Keypair())
    p = psyche("run-client", "--run-id", made_run[0], "-u", net.url, "-k", str(empty), check=False)
    assert p.returncode == ExitCode.WALLET and "has no SOL" in p.stdout + p.stderr


def test_unreachable_rpc(tmp_path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    wallet = tmp_path / "w.json"
    from solders.keypair import Keypair

    from coordinator_sdk.keypair_file import write_keypair

    write_keypair(wallet, Keypair())
    p = psyche("run-client", "--run-id", "x", "-u", f"127.0.0.1:{port}", "-k", str(wallet), check=False, timeout=180)
    assert p.returncode == ExitCode.RPC_UNREACHABLE, p.stdout + p.stderr
    assert "Traceback" not in p.stdout + p.stderr


def test_bad_arguments(net, made_run, tmp_path) -> None:
    run_id, owner = made_run
    for args, needle in ((["--run-id", "x" * 33], "bytes"), (["--run-id", run_id, "--bind-p2p", "nonsense"],
                                                             "HOST:PORT"),
                         (["--run-id", run_id, "-u", "ftp://x"], "RPC URL")):
        p = psyche("run-client", *args, "-k", str(owner), check=False)
        assert p.returncode == ExitCode.USAGE and needle in p.stderr, (args, p.stderr)


def test_device_it_lacks(net, made_run) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the refusal of a missing device cannot be shown here")
    p = psyche("run-client", "--run-id", made_run[0], "-u", net.url, "-k", str(net.wallet("gpu-less")),
               "--device", "cuda", check=False)
    assert p.returncode == ExitCode.DEVICE_UNAVAILABLE and "no CUDA device" in p.stdout + p.stderr


def test_model_it_cannot_build(net, tmp_path) -> None:
    """A run whose model description names an architecture this client does not train (set over the SDK,
    since `run create` refuses it up front)."""
    toml = write_run_toml(tmp_path, epoch_time=30, total_steps=50)
    owner = net.wallet("owner-hf")
    net.create_run("cli-hf", toml, owner, "--paused")
    from coordinator_sdk.client import Coordinator

    async def set_arch() -> None:
        async with Coordinator.from_wallet_file(net.url, "cli-hf", owner) as c:
            m = (await c.fetch_state()).model
            fields = {k: getattr(m, k) for k in ("data_type", "optimizer", "lr_schedule", "cold_start_warmup_steps",
                                                 "lr_base", "lr_warmup_init", "lr_final", "lr_warmup_steps",
                                                 "lr_total_steps", "distro_decay", "distro_chunk", "distro_topk",
                                                 "distro_quantize1bit", "data_location_len")}
            floats = {"lr_base", "lr_warmup_init", "lr_final", "distro_decay"}
            desc = c.codec.program.type["ModelDescription"](
                architecture=2, pad=[0, 0], data_location=list(bytes(m.data_location)),
                **{k: float(v) if k in floats else int(v) for k, v in fields.items()})
            await c.update_model(desc)

    asyncio.run(set_arch())
    p = psyche("run-client", "--run-id", "cli-hf", "-u", net.url, "-k", str(net.wallet("any")), check=False)
    assert p.returncode == ExitCode.MODEL_UNSUPPORTED and "hf_auto" in p.stdout + p.stderr


@pytest.mark.parametrize("edit,needle", [
    (lambda t: t.replace("epoch_time = 30", "epoch_time = 1"), "warmup_time must be < epoch_time"),
    (lambda t: t.replace('schedule = "cosine"', 'schedule = "wsd"'), "lr.schedule"),
    (lambda t: t.replace('arch = "llama"', 'arch = "gpt9"'), "arch"),
    (lambda t: t + "\n[extra]\nx = 1\n", "unknown section"),
    (lambda t: t.replace("[config]", "[config]\nbogus = 1"), "unknown"),
    (lambda t: t.replace("max_seq_len = 32\nglobal", "max_seq_len = 4096\nglobal"), "max_seq_len"),
    (lambda t: t[: len(t) // 2] + " = =", "not a readable TOML file"),
])
def test_bad_run_toml_is_refused_before_any_transaction(net, tmp_path, edit, needle) -> None:
    toml = write_run_toml(tmp_path, epoch_time=30, total_steps=50)
    toml.write_text(edit(toml.read_text()))
    owner = net.wallet("owner-bad")
    p = psyche("run", "create", "bad-toml", "--config", str(toml), "-u", net.url, "-k", str(owner), check=False)
    assert p.returncode == ExitCode.USAGE and needle in _one_line(p), p.stderr
    assert net.rpc("getAccountInfo", [str(_instance("bad-toml")), {"encoding": "base64"}])["value"] is None


def test_reused_run_id_status_and_list(net, made_run) -> None:
    run_id, owner = made_run
    toml = net.dir / "cfg" / "run.toml"
    p = psyche("run", "create", run_id, "--config", str(toml), "-u", net.url, "-k", str(owner), check=False)
    assert p.returncode == ExitCode.ERROR and "already used" in _one_line(p)
    status = json.loads(psyche("run", "status", run_id, "--json", "-u", net.url).stdout)
    assert status["phase"] in ("Uninitialized", "Paused") and status["checkpoint"].startswith("sha256:")
    runs = json.loads(psyche("run", "list", "--json", "-u", net.url).stdout)
    assert run_id in [r["run_id"] for r in runs]
    p = psyche("run", "status", "missing-run", "-u", net.url, check=False)
    assert p.returncode == ExitCode.RUN_NOT_FOUND


def _instance(run_id: str):
    from coordinator_sdk.client import default_codec

    return default_codec().instance_pda(run_id)
