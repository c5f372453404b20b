"""The dashboard's pieces without a browser: the event decoder (coordinator_sdk.events) on hand-built logs,
and the page's data endpoints served in-process against a real localnet with a real run on it."""
from __future__ import annotations

import asyncio
import base64
import json
import math
import struct
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from run_client_helpers import write_run_toml
from solders.keypair import Keypair

from client.dashboard.server import Dashboard
from coordinator_sdk.client import Coordinator, default_codec
from coordinator_sdk.events import backfill, decode_logs, decode_record, loss_by_step
from devtools.local_cluster import LocalCluster

PID = str(default_codec().program_id)
OTHER = "11111111111111111111111111111111"


def data_line(*parts: bytes) -> str:
    return "Program data: " + " ".join(base64.b64encode(p).decode() for p in parts)


def witness(signer: bytes, step: int, loss: float, tps: float = 100.0) -> str:
    return data_line(b"witness", signer, struct.pack("<Ifff", step, loss, tps, 7.0))


def invoke(pid: str, *lines: str, ok: bool = True) -> list[str]:
    return [f"Program {pid} invoke [1]", *lines, f"Program {pid} " + ("success" if ok else "failed: custom")]


def test_each_event_kind_decodes() -> None:
    a, b = Keypair().pubkey(), Keypair().pubkey()
    logs = invoke(PID, data_line(b"join", bytes(a), bytes(b)), witness(bytes(a), 7, 3.25, 1500.0),
                  data_line(b"drop", bytes(b), bytes(a)), data_line(b"state", bytes([3]), struct.pack("<I", 8),
                                                                    struct.pack("<I", 1)),
                  data_line(b"epoch_end", *(struct.pack("<I", v) for v in (1, 12, 3))))
    events = decode_logs(logs, PID, "sig", 5, 99)
    assert [e.kind for e in events] == ["join", "witness", "drop", "state", "epoch_end"]
    assert events[0].fields == {"wallet": str(a), "p2p": bytes(b).hex()}
    assert events[1].fields == {"wallet": str(a), "step": 7, "loss": 3.25, "tokens_per_sec": 1500.0, "bandwidth": 7.0}
    assert events[2].fields == {"wallet": str(b), "reporter": str(a)}
    assert events[3].fields == {"phase": "RoundTrain", "step": 8, "epoch": 1}
    assert events[4].fields == {"epoch": 1, "step": 12, "clients": 3}
    assert events[1].to_json() == {"kind": "witness", "signature": "sig", "slot": 5, "block_time": 99,
                                   **events[1].fields}


def test_verdict_events_decode() -> None:
    a, b = Keypair().pubkey(), Keypair().pubkey()
    logs = invoke(PID, data_line(b"verdict", bytes(a), bytes(b), struct.pack("<I", 4), bytes([0]), b"r" * 32,
                                 b"e" * 32), data_line(b"convicted", bytes(b), struct.pack("<I", 4)))
    verdict, convicted = decode_logs(logs, PID)
    assert verdict.kind == "verdict" and verdict.fields == {"wallet": str(a), "trainer": str(b), "height": 4,
                                                            "outcome": "fail", "result": (b"r" * 32).hex(),
                                                            "ef": (b"e" * 32).hex()}
    assert convicted.kind == "convicted" and convicted.fields == {"wallet": str(b), "height": 4}


def test_only_the_coordinators_own_records_count() -> None:
    signer = bytes(Keypair().pubkey())
    nested = [f"Program {PID} invoke [1]", f"Program {OTHER} invoke [2]", witness(signer, 1, 9.0),
              f"Program {OTHER} success", witness(signer, 2, 4.0), f"Program {PID} success"]
    outside = invoke(OTHER, witness(signer, 3, 1.0))
    events = decode_logs(nested + outside + [witness(signer, 4, 1.0)], PID)
    assert [e.fields["step"] for e in events] == [2]


@pytest.mark.parametrize("line", [
    "Program data: !!!notbase64",
    data_line(b"witness", b"\x01" * 31, b"\x00" * 16),   # a short signer
    data_line(b"state", b"\x03", b"\x00" * 4),           # a missing field
    data_line(b"rename", b"x" * 32),                     # a kind this reader does not know
    data_line(),
])
def test_malformed_or_unknown_records_are_skipped(line: str) -> None:
    good = witness(bytes(32), 5, 2.0)
    assert [e.fields["step"] for e in decode_logs(invoke(PID, line, good), PID)] == [5]


def test_non_finite_metadata_reads_as_missing() -> None:
    kind, fields = decode_record([b"witness", bytes(32), struct.pack("<Ifff", 1, math.nan, math.inf, 0.0)])
    assert kind == "witness" and fields["loss"] is None and fields["tokens_per_sec"] is None


def test_loss_by_step_means_the_witness_reports() -> None:
    a, b = bytes(range(32)), bytes(32)
    events = decode_logs(invoke(PID, witness(a, 2, 4.0, 100.0), witness(b, 2, 6.0, 300.0), witness(a, 1, 7.0),
                                witness(b, 3, 0.0, 50.0)), PID)
    assert loss_by_step(events) == [
        {"step": 1, "loss": 7.0, "tokens_per_sec": 100.0, "witnesses": 1},
        {"step": 2, "loss": 5.0, "tokens_per_sec": 200.0, "witnesses": 2},
        {"step": 3, "loss": None, "tokens_per_sec": 50.0, "witnesses": 1}]  # 0.0: the witness had no loss


# ---- the data endpoints against a real localnet ------------------------------------------------------
@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("dashnet")
    with LocalCluster(d) as cluster:
        owner = cluster.wallet("owner")
        cluster.create_run("board", write_run_toml(d, init_min=3), owner)
        yield cluster


def test_data_endpoints_follow_the_chain(net: LocalCluster) -> None:
    joiner = Path(net.wallet("joiner"))

    async def main() -> None:
        board = Dashboard(net.url, None, poll_interval=0.5)
        async with TestClient(TestServer(board.app())) as http:
            assert (await (await http.get("/api/config")).json()) == {"run_id": None, "rpc": net.url}
            runs = (await (await http.get("/api/runs")).json())["runs"]  # other tests' runs may share the cluster
            assert [(r["run_id"], r["phase"], r["clients"]) for r in runs if r["run_id"] == "board"] == [
                ("board", "WaitingForMembers", 0)]
            page = await http.get("/run/board")
            assert page.status == 200 and "dashboard.js" in await page.text()
            assert (await http.get("/static/dashboard.js")).status == 200

            view = await (await http.get("/api/run/board")).json()
            assert view["connection"] in ("live", "polling") and view["run"]["phase"] == "WaitingForMembers"
            assert view["run"]["clients"] == [] and view["metrics"] == []
            assert [e["kind"] for e in view["events"]] == ["state"]  # init_run entered WaitingForMembers

            stream = await http.get("/api/run/board/stream")
            first = await _next_view(stream)
            async with Coordinator.from_wallet_file(net.url, "board", joiner) as c:
                p2p = Keypair()
                await c.join_run(p2p.pubkey(), "127.0.0.1:1", p2p_keypair=p2p)
            for _ in range(20):  # the join shows up as a client row and a join event, pushed to the stream
                later = await _next_view(stream)
                if later["run"]["clients"] and any(e["kind"] == "join" for e in later["events"]):
                    break
            assert later["version"] > first["version"]
            row = later["run"]["clients"][0]
            assert row["wallet"] == str(c.wallet.pubkey()) and row["p2p"] == bytes(p2p.pubkey()).hex()
            assert row["state"] == "registered" and row["earned"] == 0 and row["last_round"] is None
            join = [e for e in later["events"] if e["kind"] == "join"]
            assert join[0]["wallet"] == row["wallet"] and join[0]["p2p"] == row["p2p"]
            stream.close()

            missing = await (await http.get("/api/run/nope")).json()
            assert missing["connection"] == "not found" and missing["run"] is None
            bad = await http.get("/api/run/a%20b")
            assert bad.status == 400 and "whitespace" in (await bad.json())["error"]

    asyncio.run(main())


async def _next_view(stream) -> dict:
    while True:
        line = await asyncio.wait_for(stream.content.readline(), 20)
        assert line, "the event stream ended"
        if line.startswith(b"data: "):
            return json.loads(line[len(b"data: "):])


def test_backfill_reads_history_from_signatures(net: LocalCluster) -> None:
    """getSignaturesForAddress + getTransaction give the same events the live feed saw, oldest first."""
    account = net.rpc("getProgramAccounts", [PID, {"encoding": "base64",
                                                   "filters": [{"dataSize": default_codec().account_size}]}])
    key = account[0]["pubkey"]

    async def call(method: str, params: list):
        return await asyncio.to_thread(net.rpc, method, params)

    async def main():
        events, newest = await backfill(call, key, PID)
        again, newest2 = await backfill(call, key, PID, until=newest)
        return events, newest, again, newest2

    events, newest, again, newest2 = asyncio.run(main())
    assert events[0].kind == "state" and events[0].fields["phase"] == "WaitingForMembers"
    assert newest and again == [] and newest2 == newest


def test_status_watch_is_the_live_view_in_a_terminal(net: LocalCluster) -> None:
    import subprocess
    import time

    from devtools.local_cluster import PSYCHE, REPO

    proc = subprocess.Popen([*PSYCHE, "run", "status", "board", "--watch", "-u", net.url], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        seen = b""
        deadline = time.monotonic() + 30
        while seen.count(b"run 'board'") < 3 and time.monotonic() < deadline:  # refreshed (no ANSI on a pipe)
            seen += proc.stdout.read1(65536)
        screen = seen.decode().split("\n[")[-2]
        assert screen.startswith("live]") or screen.startswith("polling]"), seen.decode()
        assert "run 'board'" in screen and "phase WaitingForMembers" in screen
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    missing = subprocess.run([*PSYCHE, "run", "status", "nope", "--watch", "-u", net.url], cwd=REPO,
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 3 and "no run 'nope'" in missing.stderr, missing.stderr


def test_render_live_shows_what_only_the_events_tell() -> None:
    from client.dashboard.terminal import render_live

    run = {"run_id": "r", "name": "", "phase": "RoundTrain", "phase_due_at": 110.0, "pending_pause": False,
           "epoch": 0, "step": 3, "total_steps": 6, "round": 2, "checkpoint": None, "epoch_clients": 1,
           "clients": [{"wallet": "W" * 44, "state": "healthy", "earned": 0, "penalised": 0, "last_round": 2}],
           "witnesses": [], "distro": {"selection": "shared", "chunk": 16, "topk": 15, "decay": 0.99,
                                       "quantize_1bit": True, "pipeline": "synchronous"}}
    text = render_live({"connection": "reconnecting", "error": "down", "run": run, "round_history": [],
                        "metrics": [{"step": 1, "loss": 5.5, "tokens_per_sec": 1000.0, "witnesses": 2}],
                        "checkpoints": []}, now=100.0)
    assert text.splitlines()[0] == "[reconnecting] down"
    assert "(10s left)" in text and "1:5.5000" in text and "tokens/s at step 1: 1,000" in text
    assert "last delivered round 2" in text
    assert "distro shared: 15 coefficients per 16x16 DCT block, decay 0.99, 1-bit, synchronous pipeline" in text


def test_a_treasurer_run_shows_its_vault_and_claims(net: LocalCluster, tmp_path: Path) -> None:
    import re

    from devtools.local_cluster import psyche

    owner = str(net.wallet("treasury-owner"))
    mint = re.search(r"mint (\w+)", psyche("token", "create-mint", "--decimals", "6", "-k", owner, "-u",
                                           net.url).stdout).group(1)
    psyche("token", "mint", mint, "500", "-k", owner, "-u", net.url)
    net.create_run("vaulted", write_run_toml(tmp_path, init_min=3), Path(owner), "--treasurer", "--mint", mint,
                   "--collateral-per-point", "1000")
    psyche("run", "fund", "vaulted", "120", "-k", owner, "-u", net.url)

    async def main() -> None:
        board = Dashboard(net.url, "vaulted", poll_interval=0.5)
        async with TestClient(TestServer(board.app())) as http:
            view = await (await http.get("/api/run/vaulted")).json()
            t = view["treasury"]
            assert (t["mint"], t["vault_balance"], t["decimals"], t["collateral_per_point"]) == \
                (mint, 120 * 10**6, 6, 1000)
            assert t["total_claimed_points"] == 0 and t["total_claimed_amount"] == 0
            plain = await (await http.get("/api/run/board")).json()
            assert plain["treasury"] is None

    asyncio.run(main())


def test_without_a_websocket_the_feed_polls(net: LocalCluster) -> None:
    """A node whose pubsub port does not answer: the view says "polling" and still follows the chain."""
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead_ws = f"ws://127.0.0.1:{s.getsockname()[1]}"
    joiner = Path(net.wallet("poll-joiner"))

    async def main() -> None:
        board = Dashboard(net.url, None, ws_url=dead_ws, poll_interval=0.3)
        async with TestClient(TestServer(board.app())) as http:
            view = await (await http.get("/api/run/board")).json()
            assert view["connection"] == "polling"
            before = {c["wallet"] for c in view["run"]["clients"]}
            async with Coordinator.from_wallet_file(net.url, "board", joiner) as c:
                p2p = Keypair()
                await c.join_run(p2p.pubkey(), "127.0.0.1:2", p2p_keypair=p2p)
            me = str(c.wallet.pubkey())
            for _ in range(100):  # the client row and the join event (from the transaction's logs, which a
                # poll may read before the signature is listed: then the next poll has it) both show
                view = await (await http.get("/api/run/board")).json()
                row = me in {r["wallet"] for r in view["run"]["clients"]} - before
                if row and any(e["kind"] == "join" and e["wallet"] == me for e in view["events"]):
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"the join never showed while polling (client row: {row})")
            assert view["connection"] == "polling"

    asyncio.run(main())
