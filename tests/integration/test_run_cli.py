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
from devtools.local_cluster import LocalCluster, psyche


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
                                                 "distro_quantize1bit", "data_location_len", "distro_selection",
                                                 "distro_pipeline")}
            floats = {"lr_base", "lr_warmup_init", "lr_final", "distro_decay"}
            desc = c.codec.program.type["ModelDescription"](
                architecture=2, data_location=list(bytes(m.data_location)),
                **{k: float(v) if k in floats else int(v) for k, v in fields.items()})
            await c.update_model(desc)

    asyncio.run(set_arch())
    p = psyche("run-client", "--run-id", "cli-hf", "-u", net.url, "-k", str(net.wallet("any")), check=False)
    assert p.returncode == ExitCode.MODEL_UNSUPPORTED and "hf_auto" in p.stdout + p.stderr


def _set_location(text: str, location: str) -> str:
    head, _, tail = text.partition("[data]")
    return head + "[data]\nlocation = " + json.dumps(location) + "\n" + tail.split("\n", 2)[2]


@pytest.mark.parametrize("edit,needle", [
    (lambda t: t.replace("epoch_time = 30", "epoch_time = 1"), "warmup_time must be < epoch_time"),
    (lambda t: t.replace('schedule = "cosine"', 'schedule = "wsd"'), "lr.schedule"),
    (lambda t: t.replace('arch = "llama"', 'arch = "gpt9"'), "arch"),
    (lambda t: t + "\n[extra]\nx = 1\n", "unknown section"),
    (lambda t: t.replace("[config]", "[config]\nbogus = 1"), "unknown"),
    (lambda t: t.replace("max_seq_len = 32\nglobal", "max_seq_len = 4096\nglobal"), "max_seq_len"),
    (lambda t: t[: len(t) // 2] + " = =", "not a readable TOML file"),
    (lambda t: t.replace("decay = 0.99", "decay = 5.0"), "distro.decay = 5.0: must lie in (0, 1]"),
    (lambda t: t.replace("decay = 0.99", "decay = 0.0"), "distro.decay"),
    (lambda t: t.replace("topk = 1\n", "topk = 257\n"), "distro.topk = 257: must lie in [1, 256]"),
    (lambda t: t.replace("base = 3e-3", "base = -3e-3"), "lr.base = -0.003: a learning rate must be"),
    (lambda t: t.replace("base = 3e-3", "base = inf"), "lr.base = inf"),
    (lambda t: t.replace("base = 3e-3", "base = nan"), "lr.base = nan"),
    (lambda t: t.replace("base = 3e-3", "base = -0.0"), "lr.base"),
    (lambda t: t.replace("final = 3e-4", "final = 1e39"), "lr.final"),
    (lambda t: t.replace("warmup_steps = 2", "warmup_steps = -1"), "lr.warmup_steps = -1"),
    (lambda t: t.replace("[lr]", "[lr]\ncold_start_warmup_steps = 99"), "lr.cold_start_warmup_steps = 99"),
    (lambda t: t.replace("[distro]", "[distro]\nchunk = 70000").replace("chunk = 16\n", ""), "distro.chunk"),
    (lambda t: _set_location(t, "/nonexistent/data"), "no such directory"),
    (lambda t: _set_location(t, "local:/proc/self"), "not a prepared data directory"),
    (lambda t: t.replace("vocab_size = 256", "vocab_size = 100"), "its tokenizer has 256 tokens"),
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
    assert p.returncode == ExitCode.ERROR and "already used" in _one_line(p) and "created in full" in _one_line(p)
    status = json.loads(psyche("run", "status", run_id, "--json", "-u", net.url).stdout)
    assert status["phase"] in ("Uninitialized", "Paused") and status["checkpoint"].startswith("sha256:")
    runs = json.loads(psyche("run", "list", "--json", "-u", net.url).stdout)
    assert run_id in [r["run_id"] for r in runs]
    p = psyche("run", "status", "missing-run", "-u", net.url, check=False)
    assert p.returncode == ExitCode.RUN_NOT_FOUND


def _instance(run_id: str):
    from coordinator_sdk.client import default_codec

    return default_codec().instance_pda(run_id)


# ---- a create that stopped part-way: a re-run by the same wallet finishes it, anyone else stays refused ----

def _half_create(net, run_id: str, toml: Path, owner: Path, steps: tuple[str, ...], mint: str | None = None) -> None:
    """What an interrupted `run create` leaves: the run (and with --treasurer its Run and vault) created by
    the first transaction, then only `steps` of the later ones; sent over the SDK as the CLI sends them."""
    from solders.pubkey import Pubkey

    from client.run_config import load_run_config
    from coordinator_sdk.client import Coordinator
    from coordinator_sdk.codec import ANYONE
    from coordinator_sdk.treasurer import Treasurer

    async def go() -> None:
        if mint is None:
            async with Coordinator.from_wallet_file(net.url, run_id, owner) as c:
                await c.create_run(open_to_all=False)
                await _steps(c)
        else:
            async with Treasurer.from_wallet_file(net.url, run_id, owner) as t:
                await t.create_run(Pubkey.from_string(mint), collateral_per_point=5, open_to_all=False)
                await _steps(t)

    async def _steps(c) -> None:
        if "authorize" in steps:
            await c.authorize(ANYONE)
        if "config" in steps:
            await c.update_config(**load_run_config(toml).config)

    asyncio.run(go())


def _create(net, run_id: str, toml: Path, wallet: Path, *extra: str):
    return psyche("run", "create", run_id, "--config", str(toml), "-u", net.url, "-k", str(wallet), *extra,
                  check=False)


@pytest.mark.parametrize("steps", [(), ("authorize", "config")])
def test_create_stopped_part_way_is_finished_by_a_rerun(net, tmp_path, steps) -> None:
    toml = write_run_toml(tmp_path, epoch_time=30, total_steps=50)
    owner, run_id = net.wallet("owner-half"), f"half-{len(steps)}"
    _half_create(net, run_id, toml, owner, steps)
    before = net.status(run_id)
    assert before["phase"] == "Uninitialized" and not before["checkpoint"], before
    p = _create(net, run_id, toml, net.wallet("squatter"))
    assert p.returncode == ExitCode.ERROR and "already used" in _one_line(p) and "another wallet" in _one_line(p)
    p = _create(net, run_id, toml, owner)
    assert p.returncode == 0, p.stderr
    assert "finishing its creation" in p.stdout and f"created run {run_id!r}" in p.stdout, p.stdout
    after = net.status(run_id)
    assert after["phase"] == "WaitingForMembers" and after["checkpoint"].startswith("sha256:"), after
    p = _create(net, run_id, toml, owner)  # started: the id is used for good
    assert p.returncode == ExitCode.ERROR and "already used" in _one_line(p) and "WaitingForMembers" in _one_line(p)


def test_create_killed_part_way_is_finished_by_a_rerun(net, tmp_path) -> None:
    """The real command killed as soon as its first transaction landed; the same command then completes."""
    import subprocess
    import time

    from devtools.local_cluster import PSYCHE, REPO

    toml = write_run_toml(tmp_path, epoch_time=30, total_steps=50)
    owner = net.wallet("owner-killed")
    for attempt in range(5):  # on a starved machine the whole create can land before the kill: try a new id
        run_id = f"killed-create-{attempt}"
        proc = subprocess.Popen([*PSYCHE, "run", "create", run_id, "--config", str(toml), "-u", net.url, "-k",
                                 str(owner)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            while net.rpc("getAccountInfo", [str(_instance(run_id)), {"encoding": "base64"}])["value"] is None:
                assert proc.poll() is None and time.monotonic() < deadline, "run create ended before creating the run"
                time.sleep(0.02)
        finally:
            proc.kill()
            proc.wait()
        before = net.status(run_id)
        if before["phase"] == "Uninitialized" and not before["checkpoint"]:  # it really stopped part-way
            break
    else:
        pytest.fail("run create finished before it could be killed, 5 times")
    p = _create(net, run_id, toml, owner)
    assert p.returncode == 0 and "finishing its creation" in p.stdout, p.stdout + p.stderr
    after = net.status(run_id)
    assert after["phase"] == "WaitingForMembers" and after["checkpoint"].startswith("sha256:"), after


def test_treasurer_create_stopped_part_way_is_finished_by_a_rerun(net, tmp_path) -> None:
    import re

    toml = write_run_toml(tmp_path, epoch_time=30, total_steps=50)
    owner, run_id = net.wallet("owner-tr-half"), "half-treasurer"
    mint = re.search(r"mint (\w+)", psyche("token", "create-mint", "-k", str(owner), "-u", net.url).stdout).group(1)
    _half_create(net, run_id, toml, owner, ("authorize",), mint=mint)
    p = _create(net, run_id, toml, owner)
    assert p.returncode == ExitCode.ERROR and "--treasurer --mint" in _one_line(p), p.stderr
    p = _create(net, run_id, toml, owner, "--treasurer", "--mint", mint)  # collateral per point 1, not 5
    assert p.returncode == ExitCode.ERROR and "--collateral-per-point 5" in _one_line(p), p.stderr
    p = _create(net, run_id, toml, net.wallet("tr-squatter"), "--treasurer", "--mint", mint,
                "--collateral-per-point", "5")
    assert p.returncode == ExitCode.ERROR and "another wallet" in _one_line(p), p.stderr
    finish = ("--treasurer", "--mint", mint, "--collateral-per-point", "5", "--paused")
    p = _create(net, run_id, toml, owner, *finish)
    assert p.returncode == 0 and "finishing its creation" in p.stdout, p.stdout + p.stderr
    after = net.status(run_id)
    assert after["phase"] == "Paused" and after["checkpoint"].startswith("sha256:"), after  # set up, not started
    p = _create(net, run_id, toml, owner, *finish)  # complete (paused): nothing left to finish
    assert p.returncode == ExitCode.ERROR and "created in full" in _one_line(p), p.stderr
    psyche("run", "resume", run_id, "-u", net.url, "-k", str(owner))
    assert net.status(run_id)["phase"] == "WaitingForMembers"
