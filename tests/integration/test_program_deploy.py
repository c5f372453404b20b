"""`psyche program deploy|upgrade|set-upgrade-authority|close|show|verify` against a real localnet over
JSON-RPC: programs at fresh ids through the upgradeable loader, as on a validator."""
from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from cli_helpers import psyche_env, run_psyche
from localnet_harness import Localnet, funded_wallet_file
from solana.rpc.api import Client
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import Transaction

from coordinator_sdk.client import Coordinator
from coordinator_sdk.codec import CoordinatorCodec
from programs import loader as ldr
from programs.build import DEPLOY


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    ln = Localnet(tmp_path_factory.mktemp("deploy") / "ledger")
    yield ln
    ln.stop()


@pytest.fixture()
def wallet(net: Localnet, tmp_path: Path) -> tuple[Keypair, str]:
    return asyncio.run(funded_wallet_file(net.url, tmp_path, "wallet", 50 * 10**9))


def cli(net: Localnet, wallet_path: str, *args: str) -> tuple[int, dict | list | None, str]:
    env = psyche_env(PSYCHE_URL=net.url, PSYCHE_KEYPAIR=wallet_path)
    res = run_psyche("program", *args, "--output", "json", env=env)
    out = json.loads(res.stdout) if res.returncode == 0 and res.stdout.strip().startswith(("{", "[")) else None
    return res.returncode, out, res.stderr


def keyfile(tmp_path: Path, name: str) -> tuple[Keypair, str]:
    kp = Keypair()
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(list(bytes(kp))))
    return kp, str(path)


def test_deploy_show_verify_and_run_the_coordinator_at_a_fresh_id(net: Localnet, wallet, tmp_path: Path) -> None:
    _, wpath = wallet
    coord, cpath = keyfile(tmp_path, "coordinator")
    rc, out, err = cli(net, wpath, "deploy", "coordinator", "--program-keypair", cpath)
    assert rc == 0, err
    elf = (DEPLOY / "coordinator.so").read_bytes()
    # one create-buffer, one Write per chunk, one deploy: the figure the README reports
    chunks = -(-len(elf) // (ldr.WRITE_CHUNK - 52))
    assert out["transactions"] == chunks + 2 and out["program_id"] == str(coord.pubkey())
    print(f"\ncoordinator deploy: {len(elf)} bytes, {out['transactions']} transactions, {out['seconds']} s")
    logs = Client(net.url).get_transaction(Signature.from_string(out["signature"])).value.transaction.meta.log_messages
    assert f"Deployed program {coord.pubkey()}" in logs
    rc, shown, err = cli(net, wpath, "show", str(coord.pubkey()))
    assert rc == 0, err
    assert shown["data_length"] == len(elf) and shown["max_data_length"] == 2 * len(elf)
    assert shown["authority"] == str(Keypair.from_json(Path(wpath).read_text()).pubkey())
    import hashlib
    assert shown["sha256"] == hashlib.sha256(elf).hexdigest() and shown["last_deploy_slot"] > 0
    rc, out, err = cli(net, wpath, "verify", "coordinator", "--program-id", str(coord.pubkey()))
    assert rc == 0 and out["identical"], err
    rc, out, err = cli(net, wpath, "verify", "hello", "--program-id", str(coord.pubkey()))
    assert rc == 1 and "differs from hello at byte offset" in err.strip().splitlines()[-1]

    async def run_at_fresh_id() -> None:
        _, owner_file = await funded_wallet_file(net.url, tmp_path, "owner")
        await asyncio.sleep(0.5)  # a program deployed in slot N runs from slot N+1
        async with Coordinator.from_wallet_file(net.url, "fresh-run", owner_file,
                                                codec=CoordinatorCodec(program_id=coord.pubkey())) as owner:
            account = await owner.create_run()
            st = await owner.fetch_state()
            acc = Client(net.url).get_account_info(account).value
            assert acc.owner == coord.pubkey() and st.run_state == 0

    asyncio.run(run_at_fresh_id())


def test_upgrade_then_hand_over_authority(net: Localnet, wallet, tmp_path: Path) -> None:
    _, wpath = wallet
    prog, ppath = keyfile(tmp_path, "prog")
    rc, _, err = cli(net, wpath, "deploy", "hello", "--program-keypair", ppath, "--max-len", "30000")
    assert rc == 0, err
    rc, before, _ = cli(net, wpath, "show", str(prog.pubkey()))
    treasurer = str(DEPLOY / "treasurer.so")
    import time
    time.sleep(0.5)  # the loader refuses a second deploy in the slot of the first
    rc, out, err = cli(net, wpath, "upgrade", treasurer, "--program-id", str(prog.pubkey()))
    assert rc == 0, err
    rc, out, err = cli(net, wpath, "verify", treasurer, "--program-id", str(prog.pubkey()))
    assert rc == 0 and out["identical"], err
    rc, after, _ = cli(net, wpath, "show", str(prog.pubkey()))
    assert after["last_deploy_slot"] > before["last_deploy_slot"]
    assert after["data_length"] == Path(treasurer).stat().st_size
    # bigger than the reserved room: ExtendProgram first, then the upgrade
    time.sleep(0.5)
    rc, _, err = cli(net, wpath, "upgrade", "coordinator", "--program-id", str(prog.pubkey()))
    assert rc == 0, err
    rc, out, err = cli(net, wpath, "verify", "coordinator", "--program-id", str(prog.pubkey()))
    assert rc == 0 and out["identical"], err
    rc, shown, _ = cli(net, wpath, "show", str(prog.pubkey()))
    assert shown["max_data_length"] == 30000 + max((DEPLOY / "coordinator.so").stat().st_size - 30000, 10240)
    new, npath = keyfile(tmp_path, "new-authority")
    rc, out, err = cli(net, wpath, "set-upgrade-authority", str(prog.pubkey()), "--new-upgrade-authority", npath)
    assert rc == 0, err
    rc, shown, _ = cli(net, wpath, "show", str(prog.pubkey()))
    assert shown["authority"] == str(new.pubkey())
    time.sleep(0.5)
    rc, _, err = cli(net, wpath, "upgrade", "hello", "--program-id", str(prog.pubkey()))
    assert rc == 1 and "IncorrectAuthority" in err, err  # the loader's own refusal
    rc, out, err = cli(net, wpath, "close", "--buffers")  # the refused upgrade's buffer
    assert rc == 0 and len(out) == 1, err
    # the new authority signs (two signers: smaller chunks), the wallet pays
    rc, out, err = cli(net, wpath, "upgrade", "hello", "--program-id", str(prog.pubkey()), "--upgrade-authority", npath)
    assert rc == 0, err
    rc, out, err = cli(net, wpath, "verify", "hello", "--program-id", str(prog.pubkey()))
    assert rc == 0 and out["identical"], err


def test_interrupted_deploy_resumes_from_its_buffer_and_buffers_close(net: Localnet, wallet, tmp_path: Path) -> None:
    payer, wpath = wallet
    client = Client(net.url)
    elf = (DEPLOY / "coordinator.so").read_bytes()
    size = ldr.WRITE_CHUNK - 52
    buffer, bpath = keyfile(tmp_path, "buffer")

    def send(ixs, signers) -> None:
        blockhash = client.get_latest_blockhash().value.blockhash
        tx = Transaction.new_signed_with_payer(ixs, payer.pubkey(), signers, blockhash)
        client.confirm_transaction(client.send_raw_transaction(bytes(tx)).value)

    # what a deploy killed after 20 chunks leaves behind
    rent = client.get_minimum_balance_for_rent_exemption(ldr.BUFFER_META + len(elf)).value
    send(ldr.create_buffer(payer.pubkey(), buffer.pubkey(), payer.pubkey(), len(elf), rent), [payer, buffer])
    for off in range(0, 20 * size, size):
        send([ldr.write(buffer.pubkey(), payer.pubkey(), off, elf[off:off + size])], [payer])
    prog, ppath = keyfile(tmp_path, "prog")
    rc, out, err = cli(net, wpath, "deploy", "coordinator", "--program-keypair", ppath, "--buffer", bpath)
    assert rc == 0, err
    assert out["chunks_resumed"] == 20 and out["chunks_written"] == -(-len(elf) // size) - 20
    assert client.get_account_info(buffer.pubkey()).value is None  # drained into the program
    rc, out, err = cli(net, wpath, "verify", "coordinator", "--program-id", str(prog.pubkey()))
    assert rc == 0 and out["identical"], err

    other, _ = keyfile(tmp_path, "other")
    send(ldr.create_buffer(payer.pubkey(), other.pubkey(), payer.pubkey(), 100, rent), [payer, other])
    held = client.get_balance(other.pubkey()).value
    before = client.get_balance(payer.pubkey()).value
    rc, out, err = cli(net, wpath, "close", str(other.pubkey()))
    assert rc == 0 and out[0]["lamports"] == held, err
    assert client.get_balance(payer.pubkey()).value == before + held - 5000
    assert client.get_account_info(other.pubkey()).value is None


def test_bad_input_is_named(net: Localnet, wallet, tmp_path: Path) -> None:
    _, wpath = wallet
    res = run_psyche("program", "deploy", "nosuch", "--program-keypair", wpath, env=psyche_env(PSYCHE_URL=net.url))
    assert res.returncode == 2 and "neither a program under programs/" in res.stderr
    rc, _, err = cli(net, wpath, "show", str(Pubkey.new_unique()))
    assert rc == 1 and "no account at" in err
    rc, _, err = cli(net, wpath, "deploy", "hello", "--program-keypair", wpath)  # the wallet exists: not a new id
    assert rc == 1 and "already exists" in err
    _, poor = asyncio.run(funded_wallet_file(net.url, tmp_path, "poor", 10**8))
    _, ppath = keyfile(tmp_path, "prog")
    rc, _, err = cli(net, poor, "deploy", "coordinator", "--program-keypair", ppath)
    # the programdata account alone (twice the .so, the default max length) is rent for 2 x its size
    so_len = (DEPLOY / "coordinator.so").stat().st_size
    needs = re.search(r"needs (\d+\.\d+) SOL", err)
    assert rc == 1 and needs and "has 0.100000000" in err, err
    assert 2 * so_len * 6960 / 1e9 < float(needs.group(1)) < 3 * so_len * 6960 / 1e9 + 0.01, err


def test_deployed_and_closed_programs_survive_a_restart(tmp_path: Path) -> None:
    ln = Localnet(tmp_path / "ledger")
    try:
        _, wpath = asyncio.run(funded_wallet_file(ln.url, tmp_path, "wallet", 10 * 10**9))
        kept, kpath = keyfile(tmp_path, "kept")
        gone, gpath = keyfile(tmp_path, "gone")
        assert cli(ln, wpath, "deploy", "hello", "--program-keypair", kpath)[0] == 0
        assert cli(ln, wpath, "deploy", "hello", "--program-keypair", gpath)[0] == 0
        import time
        time.sleep(0.5)  # a program cannot be closed in the slot it was deployed in
        rc, out, err = cli(ln, wpath, "close", str(gone.pubkey()), "--program")
        assert rc == 0 and out[0]["lamports"] > 0, err
        ln.stop()
        ln = Localnet(tmp_path / "ledger", reset=False, port=ln.port)
        rc, out, err = cli(ln, wpath, "verify", "hello", "--program-id", str(kept.pubkey()))
        assert rc == 0 and out["identical"], err
        rc, _, err = cli(ln, wpath, "show", str(gone.pubkey()))
        assert rc == 1 and "has no ProgramData" in err
        payer = Keypair.from_json(Path(wpath).read_text())
        client = Client(ln.url)

        def call(program: Pubkey) -> dict:
            tx = Transaction.new_signed_with_payer([Instruction(program, b"", [])], payer.pubkey(), [payer],
                                                   client.get_latest_blockhash().value.blockhash)
            return json.loads(client.simulate_transaction(tx).value.to_json())

        ran = call(kept.pubkey())
        assert any(line.startswith(f"Program {kept.pubkey()} consumed") for line in ran["logs"]), ran
        assert call(gone.pubkey())["err"] == {"InstructionError": [0, "UnsupportedProgramId"]}
    finally:
        ln.stop()


@pytest.mark.parametrize("same_signer", [True, False])
def test_a_write_fits_the_packet_with_compute_budget_instructions(same_signer: bool) -> None:
    """The sender may prepend SetComputeUnitLimit and SetComputeUnitPrice: a full chunk must still fit."""
    from solders.compute_budget import set_compute_unit_limit, set_compute_unit_price
    from solders.hash import Hash

    from client.commands.program_ops import chunk_size

    payer = Keypair()
    authority = payer if same_signer else Keypair()
    size = chunk_size(payer.pubkey(), authority.pubkey())
    ixs = [set_compute_unit_limit(200_000), set_compute_unit_price(10**9),
           ldr.write(Pubkey.new_unique(), authority.pubkey(), 2**31, bytes(size))]
    signers = list({payer.pubkey(): payer, authority.pubkey(): authority}.values())
    tx = Transaction.new_signed_with_payer(ixs, payer.pubkey(), signers, Hash.default())
    assert len(bytes(tx)) <= ldr.PACKET_DATA_SIZE


def test_deploy_lands_on_a_localnet_that_drops_transactions(tmp_path: Path) -> None:
    """A congested leader: 30% of sendTransaction calls are accepted and never land; the chunks are resent."""
    ln = Localnet(tmp_path / "ledger", extra=("--drop-tx-rate", "0.3"))
    try:
        _, wpath = asyncio.run(funded_wallet_file(ln.url, tmp_path, "wallet", 10 * 10**9))
        prog, ppath = keyfile(tmp_path, "prog")
        rc, out, err = cli(ln, wpath, "deploy", "treasurer", "--program-keypair", ppath)
        assert rc == 0, err
        assert out["resent"] > 0
        rc, out, err = cli(ln, wpath, "verify", "treasurer", "--program-id", str(prog.pubkey()))
        assert rc == 0 and out["identical"], err
    finally:
        ln.stop()


def test_final_makes_a_program_immutable_and_a_pubkey_authority_needs_no_signature(net: Localnet, wallet,
                                                                                   tmp_path: Path) -> None:
    _, wpath = wallet
    prog, ppath = keyfile(tmp_path, "prog")
    assert cli(net, wpath, "deploy", "hello", "--program-keypair", ppath)[0] == 0
    other, opath = keyfile(tmp_path, "other")
    rc, out, err = cli(net, wpath, "set-upgrade-authority", str(prog.pubkey()),
                       "--new-upgrade-authority", str(other.pubkey()))  # SetAuthority: only the current one signs
    assert rc == 0 and out["upgrade_authority"] == str(other.pubkey()), err
    rc, out, err = cli(net, wpath, "set-upgrade-authority", str(prog.pubkey()), "--final", "--upgrade-authority", opath)
    assert rc == 0, err
    rc, shown, _ = cli(net, wpath, "show", str(prog.pubkey()))
    assert shown["authority"] == "none (immutable)"
    import time
    time.sleep(0.5)
    rc, _, err = cli(net, wpath, "upgrade", "hello", "--program-id", str(prog.pubkey()), "--upgrade-authority", opath)
    assert rc == 1 and "Immutable" in err, err
    res = run_psyche("program", "set-upgrade-authority", str(prog.pubkey()), env=psyche_env(PSYCHE_URL=net.url))
    assert res.returncode == 2 and "exactly one of --new-upgrade-authority and --final" in res.stderr
