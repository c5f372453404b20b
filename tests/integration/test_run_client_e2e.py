"""`psyche run-client` end to end: a real localnet and real client processes (each its own wallet and iroh
node) train one model together, and faults are injected the way they happen: kill -9, Ctrl-C, a client that
sends garbage or trains another model, a client that arrives late."""
from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from run_client_helpers import expected_points, finished, logs, points, prepare_data, pubkey_of, write_run_toml

from devtools.local_cluster import PSYCHE, REPO, LocalCluster

FAULTY = [sys.executable, "-m", "devtools.faulty_client", "--fault"]

pytestmark = pytest.mark.slow


def _wait_for(pred, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_three_clients_two_epochs_and_a_late_joiner(tmp_path: Path) -> None:
    toml = write_run_toml(tmp_path, epoch_time=8, total_steps=18)
    with LocalCluster(tmp_path / "net") as net:
        net.create_run("e2e-main", toml, net.wallet("owner"))
        first = [net.start_client(f"c{i}", "e2e-main") for i in range(3)]
        _wait_for(lambda: len(first[0].of_kind("round")) >= 2, 120, "the first rounds")
        late = net.start_client("late", "e2e-main")  # registers for the next epoch
        codes = net.wait_all([*first, late], 300)
        everyone = [*first, late]
        assert codes == [0, 0, 0, 0], logs(everyone)
        digests = {finished(c)["weights_sha256"] for c in everyone}
        assert len(digests) == 1, f"weights differ: {digests}\n{logs(everyone)}"
        losses = [(e["step"], e["loss"]) for e in first[0].of_kind("round") if e.get("loss") is not None]
        assert losses[-1][1] < losses[0][1] - 0.5, losses
        late_models = late.of_kind("model")
        assert late_models and late_models[0]["source"] == "peers", logs([late])
        assert min(late.of_kind("warmup"), key=lambda e: e["epoch"])["epoch"] >= 1
        pts = points(net, "e2e-main")
        epochs = {c.name: sorted(e["epoch"] for e in c.of_kind("warmup")) for c in everyone}
        assert len(epochs["c0"]) >= 2, epochs
        for c in everyone:
            earned, penalised, _ = pts[pubkey_of(c.wallet)]
            assert (earned, penalised) == (expected_points(c, 900), 0), (c.name, earned, epochs)
        assert (tmp_path / "net" / "c0-checkpoints").is_dir()
        assert net.status("e2e-main")["phase"] == "Finished"
        watch = subprocess.run([*PSYCHE, "run", "status", "e2e-main", "--watch", "-u", net.url], cwd=REPO,
                               capture_output=True, text=True, timeout=60, check=False)
        assert watch.returncode == 0 and watch.stdout.rstrip().endswith("the run has finished"), watch  # not forever


def test_kill_9_mid_round_then_rejoin(tmp_path: Path) -> None:
    toml = write_run_toml(tmp_path, epoch_time=20, total_steps=26, init_min=4, min_clients=2, round_time=6)
    with LocalCluster(tmp_path / "net") as net:
        net.create_run("e2e-kill", toml, net.wallet("owner"))
        clients = [net.start_client(f"c{i}", "e2e-kill") for i in range(4)]
        victim = clients[3]
        _wait_for(lambda: len(victim.of_kind("round")) >= 2, 150, "the victim's second round")
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait()
        wallet = pubkey_of(victim.wallet)
        _wait_for(lambda: points(net, "e2e-kill")[wallet][2] in ("dropped", "idle", "registered")
                  or any(e.get("result") == "dropped" for c in clients[:3] for e in c.of_kind("health_check")),
                  90, "a health check that drops the killed client")
        step_at_drop = net.status("e2e-kill")["step"]
        again = net.start_client("c3-again", "e2e-kill", victim.wallet)  # same wallet: same P2P key
        _wait_for(lambda: net.status("e2e-kill")["step"] >= step_at_drop + 2, 90, "the run stepping on")
        codes = net.wait_all([*clients[:3], again], 300)
        assert codes == [0, 0, 0, 0], logs([*clients, again])
        assert again.of_kind("warmup"), logs([again])
        assert len({finished(c)["weights_sha256"] for c in [*clients[:3], again]}) == 1


def test_garbage_client_is_excluded_named_and_dropped(tmp_path: Path) -> None:
    toml = write_run_toml(tmp_path, epoch_time=40, total_steps=7, init_min=4, min_clients=2, round_time=6)
    with LocalCluster(tmp_path / "net") as net:
        net.create_run("e2e-bad", toml, net.wallet("owner"))
        honest = [net.start_client(f"h{i}", "e2e-bad") for i in range(3)]
        bad = net.start_client("garbage", "e2e-bad", entry=FAULTY + ["garbage"])
        codes = net.wait_all([*honest, bad], 300)
        assert codes[:3] == [0, 0, 0], logs([*honest, bad])
        assert codes[3] == 7, logs([bad])  # dropped by a health check: exit code REMOVED_FROM_RUN
        bad_key = next(e for e in bad.of_kind("started"))["p2p"]
        named = [e for c in honest for e in c.of_kind("rejected") if e["peer"].startswith(bad_key)]
        assert named, logs(honest)
        assert len({finished(c)["weights_sha256"] for c in honest}) == 1


def test_wrong_model_client_is_rejected(tmp_path: Path) -> None:
    toml = write_run_toml(tmp_path, epoch_time=40, total_steps=6, init_min=3, min_clients=2, round_time=6)
    with LocalCluster(tmp_path / "net") as net:
        net.create_run("e2e-model", toml, net.wallet("owner"))
        honest = [net.start_client(f"h{i}", "e2e-model") for i in range(2)]
        wrong = net.start_client("wrong", "e2e-model", entry=FAULTY + ["wrong-model"])
        codes = net.wait_all([*honest, wrong], 240)
        assert codes[:2] == [0, 0], logs([*honest, wrong])
        key = wrong.of_kind("started")[0]["p2p"]
        reasons = [e["reason"] for c in honest for e in c.of_kind("rejected") if e["peer"].startswith(key)]
        assert reasons, logs(honest)
        assert len({finished(c)["weights_sha256"] for c in honest}) == 1


def test_ctrl_c_withdraws_cleanly_with_data_over_tcp(tmp_path: Path) -> None:
    """Also: the clients fetch their batches from a `psyche data serve-tcp --run-id` server (the --data
    override), which serves each client of the epoch only its assigned batch, authenticated by P2P key."""
    toml = write_run_toml(tmp_path, epoch_time=30, total_steps=40)
    with LocalCluster(tmp_path / "net") as net:
        net.create_run("e2e-sigint", toml, net.wallet("owner"))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = subprocess.Popen([*PSYCHE, "data", "serve-tcp", str(prepare_data(tmp_path)), "--run-id", "e2e-sigint",
                                   "-u", net.url, "--port", str(port)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, cwd=REPO)
        clients = [net.start_client(f"c{i}", "e2e-sigint", None, "--data", f"tcp://127.0.0.1:{port}")
                   for i in range(3)]
        _wait_for(lambda: len(clients[2].of_kind("round")) >= 2, 150, "two rounds")
        clients[2].proc.send_signal(signal.SIGINT)
        assert clients[2].proc.wait(timeout=60) == 0, logs([clients[2]])
        assert clients[2].of_kind("withdraw")
        state = {c["wallet"]: c["state"] for c in net.status("e2e-sigint")["clients"]}
        assert state[pubkey_of(clients[2].wallet)] in ("withdrawn", "idle"), state
        step = net.status("e2e-sigint")["step"]
        _wait_for(lambda: net.status("e2e-sigint")["step"] >= step + 2, 60, "the others stepping on")
        assert all(e["loss"] is not None for c in clients for e in c.of_kind("round")), "a client had no batch"
        server.kill()
        server.wait()


def test_rpc_outage_is_retried_not_fatal(tmp_path: Path) -> None:
    toml = write_run_toml(tmp_path, epoch_time=40, total_steps=12, init_min=3, min_clients=2, round_time=10)
    with LocalCluster(tmp_path / "net") as net:
        net.create_run("e2e-outage", toml, net.wallet("owner"))
        clients = [net.start_client(f"c{i}", "e2e-outage") for i in range(3)]
        _wait_for(lambda: len(clients[0].of_kind("round")) >= 3, 150, "three rounds")
        net.restart_localnet(down_s=4.0)
        codes = net.wait_all(clients, 240)
        assert codes == [0, 0, 0], logs(clients)
        assert len({finished(c)["weights_sha256"] for c in clients}) == 1
        assert net.status("e2e-outage")["phase"] == "Finished"
