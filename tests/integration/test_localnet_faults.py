"""Nothing confirmed is lost or corrupted under operator mistakes and faults: a second localnet on the same
ledger, `--reset` aimed at a ledger in use, a v0 transfer through a lookup table then `kill -9`, a
subscriber whose notification cannot be encoded, a full disk, restarts after idling, corrupt files."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import localnet_fixture as fx
import pytest
from localnet_harness import Localnet, free_port_pair, rpc
from solana.rpc.api import Client
from solders.keypair import Keypair
from solders.system_program import CreateAccountParams, TransferParams, create_account, transfer
from solders.transaction import Transaction

REPO = Path(__file__).resolve().parents[2]


def _cli(ledger: Path, *args: str, port: int | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "localnet", "--rpc-port", str(port or free_port_pair()),
                           "--ledger", str(ledger), "--quiet", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60)


def _one_line_error(out: subprocess.CompletedProcess, *fragments: str) -> None:
    assert out.returncode == 1, out
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


def test_second_localnet_and_reset_on_a_ledger_in_use_change_nothing(tmp_path) -> None:
    ledger = tmp_path / "ledger"
    net = Localnet(ledger)
    try:
        c = Client(net.url)
        kp = fx.funded(c, 7 * 10**9)
        _one_line_error(_cli(ledger), "in use by another localnet", f"pid {net.proc.pid}")
        _one_line_error(_cli(ledger, "--reset"), f"pid {net.proc.pid}")
        _one_line_error(_cli(tmp_path / "other", port=net.port), "cannot listen", str(net.port))
        assert not (tmp_path / "other" / "ledger.sqlite").exists()  # a failed start created no ledger
        kp2 = fx.funded(c, 3 * 10**9)  # the running node still confirms into its (undeleted) ledger
    finally:
        net.stop()
    net = Localnet(ledger, reset=False)
    try:
        c = Client(net.url)
        assert c.get_balance(kp.pubkey()).value == 7 * 10**9 and c.get_balance(kp2.pubkey()).value == 3 * 10**9
    finally:
        net.stop()


def test_lookup_table_transfer_survives_kill_9_and_reports_loaded_accounts(tmp_path) -> None:
    ledger = tmp_path / "ledger"
    net = Localnet(ledger)
    try:
        c = Client(net.url)
        payer, to = fx.funded(c), Keypair().pubkey()
        table = fx.create_lookup_table(c, payer, [to])  # recentSlot = getSlot(): SlotHashes is current
        sig = fx.v0_transfer_through_table(c, payer, table, [to], to, 1_234_567)
        slot_before = c.get_slot().value
    finally:
        net.stop(hard=True)
    net = Localnet(ledger, reset=False)
    try:
        assert rpc(net.url, "getBalance", [str(to)])["result"]["value"] == 1_234_567
        tx = rpc(net.url, "getTransaction", [sig, {"maxSupportedTransactionVersion": 0}])["result"]
        assert tx["meta"]["loadedAddresses"] == {"writable": [str(to)], "readonly": []}
        assert tx["meta"]["postBalances"][-1] == 1_234_567 and len(tx["meta"]["postBalances"]) == 3
        assert rpc(net.url, "getSlot")["result"] > slot_before
    finally:
        net.stop()


def test_slot_never_goes_back_across_restarts_after_idling(tmp_path) -> None:
    """Slots and lastValidBlockHeight only grow, blockhashes are never handed out twice, and a transaction
    signed just before a restart still lands after it (its blockhash is still recent)."""
    ledger = tmp_path / "ledger"
    seen, hashes = 0, set()
    for hard in (True, False):
        net = Localnet(ledger, reset=seen == 0)
        try:
            start = rpc(net.url, "getSlot")["result"]
            assert start > seen
            time.sleep(1.5)  # idle: no transaction commits
            seen = rpc(net.url, "getSlot")["result"]
            latest = rpc(net.url, "getLatestBlockhash")["result"]["value"]
            assert seen >= start + 2 and latest["lastValidBlockHeight"] > seen
            assert latest["blockhash"] not in hashes
            hashes.add(latest["blockhash"])
            c = Client(net.url)
            payer = fx.funded(c, 10**9)
            bh = c.get_latest_blockhash().value.blockhash
            pending = Transaction.new_signed_with_payer([transfer(TransferParams(
                from_pubkey=payer.pubkey(), to_pubkey=payer.pubkey(), lamports=1))], payer.pubkey(), [payer], bh)
        finally:
            net.stop(hard=hard)
    net = Localnet(ledger, reset=False)
    try:
        assert rpc(net.url, "getSlot")["result"] > seen
        assert rpc(net.url, "getLatestBlockhash")["result"]["value"]["blockhash"] not in hashes
        sig = Client(net.url).send_transaction(pending, opts=fx.OPTS).value
        assert rpc(net.url, "getSignatureStatuses", [[str(sig)]])["result"]["value"][0]["err"] is None
    finally:
        net.stop()


def test_a_subscriber_that_cannot_be_served_never_affects_the_sender(tmp_path) -> None:
    import websockets

    net = Localnet(tmp_path / "ledger")
    try:
        c = Client(net.url)
        payer, big = fx.funded(c), Keypair()

        async def main():
            async with websockets.connect(net.ws_url) as bad, websockets.connect(net.ws_url) as good:
                for ws, enc in ((bad, "base58"), (good, "base64")):
                    await ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "accountSubscribe",
                                              "params": [str(big.pubkey()), {"encoding": enc}]}))
                    assert isinstance(json.loads(await ws.recv())["result"], int)
                rent = c.get_minimum_balance_for_rent_exemption(300).value
                sig = fx.send(c, payer, [create_account(CreateAccountParams(
                    from_pubkey=payer.pubkey(), to_pubkey=big.pubkey(), lamports=rent, space=300,
                    owner=payer.pubkey()))], [big])  # a 300-byte account: base58 cannot carry it
                bad_msg = json.loads(await asyncio.wait_for(bad.recv(), 5))
                good_msg = json.loads(await asyncio.wait_for(good.recv(), 5))
                return sig, bad_msg, good_msg

        sig, bad_msg, good_msg = asyncio.run(main())
        assert rpc(net.url, "getSignatureStatuses", [[sig]])["result"]["value"][0]["err"] is None
        assert "base 58" in bad_msg["params"]["error"]["message"]
        assert good_msg["params"]["result"]["value"]["space"] == 300
    finally:
        net.stop()


def test_disk_full_refuses_the_transfer_and_keeps_memory_and_ledger_consistent(tmp_path) -> None:
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root): the disk-full path is covered in-process only")
    try:
        net = Localnet(mnt / "ledger")
        try:
            c = Client(net.url)
            fx.funded(c)
            to = Keypair().pubkey()
            filler = mnt / "filler"
            fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
            for chunk in (1 << 16, 1 << 12, 1 << 9):  # take every free byte
                try:
                    while True:
                        os.write(fd, b"\0" * chunk)
                except OSError:
                    pass
            os.close(fd)
            errors, landed = [], 0
            for i in range(300):  # enough to use up any slack inside the WAL file too
                r = rpc(net.url, "requestAirdrop", [str(to), 1000 + i])
                if "error" in r:
                    errors.append(r["error"])
                    break
                landed += 1000 + i
            assert errors, "the ledger never ran out of space"
            assert errors[0]["code"] == -32603 and "not applied" in errors[0]["message"], errors[0]
            assert rpc(net.url, "getBalance", [str(to)])["result"]["value"] == landed  # memory = what was confirmed
            _one_line_error(_cli(mnt / "second"), "cannot start the localnet")  # no room for a new ledger either
            filler.unlink()
            time.sleep(1)
            assert "result" in rpc(net.url, "requestAirdrop", [str(to), 5])
            landed += 5
        finally:
            net.stop(hard=True)
        net = Localnet(mnt / "ledger", reset=False)
        try:
            assert rpc(net.url, "getBalance", [str(to)])["result"]["value"] == landed
        finally:
            net.stop()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.mark.parametrize("victim", ["ledger.sqlite", "faucet.json"])
def test_corrupt_ledger_files_get_one_line_naming_the_file(tmp_path, victim: str) -> None:
    ledger = tmp_path / "ledger"
    Localnet(ledger).stop()
    (ledger / victim).write_bytes(os.urandom(4096))
    for name in ("ledger.sqlite-wal", "ledger.sqlite-shm"):
        (ledger / name).unlink(missing_ok=True)
    _one_line_error(_cli(ledger), victim)
    assert (ledger / victim).exists()


def test_the_harnesses_take_another_port_when_a_free_one_is_taken_before_the_localnet_binds_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Parallel test workers race for ports: a port found free, then taken by another worker before the
    localnet binds it, costs a retry with another port (once seen as a flaky failure), never the test (the
    localnet waits ~10 s for a busy port before it gives up)."""
    import socket

    import localnet_harness

    from devtools import local_cluster
    (tmp_path / "a").mkdir()
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        # the held port first, then ports found free when asked: one found ahead of time could itself be taken
        # by another worker while the first attempt waits out the busy port (a third try, seen once)
        def taken_first() -> Callable[[], int]:
            first = iter([taken])
            return lambda: next(first, None) or free_port_pair()

        monkeypatch.setattr(localnet_harness, "free_port_pair", taken_first())
        net = Localnet(tmp_path / "a" / "ledger")
        try:
            assert net.port != taken and rpc(net.url, "getHealth")["result"] == "ok"
        finally:
            net.stop()
        monkeypatch.setattr(local_cluster, "free_port_pair", taken_first())
        with local_cluster.LocalCluster(tmp_path / "c") as cluster:
            assert cluster.port != taken and cluster.rpc("getHealth", []) == "ok"
