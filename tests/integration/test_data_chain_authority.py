"""`psyche data serve-tcp --run-id`: the data server asks the chain who may fetch what. A real localnet,
a real run driven through the coordinator program, the real CLI server, real authenticated clients."""
from __future__ import annotations

import asyncio
import re

import pytest
from data_helpers import SEQ_LEN, pydoc_dataset
from localnet_harness import Localnet, funded_wallet_file
from nacl.signing import SigningKey
from solders.pubkey import Pubkey
from test_data_cli_serve import psyche

from client.cli_common import ExitCode
from coordinator_sdk.client import Coordinator
from coordinator_sdk.round_assignment import current_assignment
from data_providers.local import LocalProvider
from data_providers.tcp_client import TcpDataProvider
from data_providers.tcp_protocol import RejectedError
from data_providers.types import BatchId

CONFIG = dict(warmup_time=120, cooldown_time=5, max_round_train_time=120, round_witness_time=2,
              global_batch_size_warmup_tokens=0, epoch_time=600, total_steps=100, max_seq_len=SEQ_LEN,
              init_min_clients=2, min_clients=1, witness_nodes=0, global_batch_size_start=10,
              global_batch_size_end=10, waiting_for_members_extra_time=1)


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    ln = Localnet(tmp_path_factory.mktemp("data-chain") / "ledger")
    yield ln
    ln.stop()


def test_serve_tcp_follows_the_chain(net: Localnet, tmp_path) -> None:
    data_dir = pydoc_dataset(tmp_path / "d")
    p2p = [SigningKey.generate() for _ in range(2)]
    outsider = SigningKey.generate()

    async def setup_run() -> dict:
        async def wallet(name: str) -> str:
            return (await funded_wallet_file(net.url, tmp_path, name))[1]

        owner = Coordinator.from_wallet_file(net.url, "data-run", await wallet("owner"))
        await owner.create_run()
        await owner.update_config(**CONFIG)
        await owner.set_paused(False)
        clients = [Coordinator.from_wallet_file(net.url, "data-run", await wallet(f"c{i}")) for i in range(2)]
        for c, k in zip(clients, p2p, strict=True):
            await c.join_run(Pubkey.from_bytes(bytes(k.verify_key)), "127.0.0.1:0")
        await asyncio.sleep(1.2)
        await clients[0].tick()
        for c in clients:
            await c.warmup_witness()
        await asyncio.sleep(0.5)  # round 0 starts in a slot after the Warmup's (its seed is that slot's hash)
        await clients[0].tick()
        state = await owner.fetch_state()
        assert state.run_state == 3  # RoundTrain: batches are assigned
        for c in [owner, *clients]:
            await c.close()
        return current_assignment(state)

    assignment = asyncio.run(setup_run())
    assert sorted(assignment.values()) == [(0, 4), (5, 9)]
    with psyche("data", "serve-tcp", str(data_dir), "--seq-len", str(SEQ_LEN), "--port", "0",
                "--run-id", "data-run", "-u", net.url) as line:
        port = int(re.search(r"over TCP at 127\.0\.0\.1:(\d+)", line).group(1))  # type: ignore[union-attr]
        assert "clients of run 'data-run'" in line

        async def fetch() -> None:
            local = LocalProvider(data_dir, SEQ_LEN)
            for k in p2p:
                first, last = assignment[bytes(k.verify_key)]
                async with TcpDataProvider("127.0.0.1", port, k) as client:
                    assert await client.get_samples(BatchId(first, last)) == await local.get_samples(
                        BatchId(first, last))
                    other = (0, 4) if (first, last) == (5, 9) else (5, 9)
                    with pytest.raises(RejectedError, match="wrong_batch_for_round"):
                        await client.get_samples(BatchId(*other))
            with pytest.raises(RejectedError, match="not_in_this_round"):
                await TcpDataProvider("127.0.0.1", port, outsider, reconnect_attempts=0).open()

        asyncio.run(fetch())


def test_serve_tcp_needs_exactly_one_policy_and_a_real_run(net: Localnet, tmp_path) -> None:
    from click.testing import CliRunner

    from client.cli import main

    d = pydoc_dataset(tmp_path / "d")
    r = CliRunner().invoke(main, ["data", "serve-tcp", str(d), "--seq-len", str(SEQ_LEN)])
    assert r.exit_code == 2 and "exactly one policy" in r.output
    r = CliRunner().invoke(main, ["data", "serve-tcp", str(d), "--seq-len", str(SEQ_LEN), "--run-id", "nope",
                                  "-u", net.url, "--port", "0"])
    assert r.exit_code == ExitCode.RUN_NOT_FOUND and "no run 'nope'" in r.output
    r = CliRunner().invoke(main, ["data", "serve-tcp", str(d), "--run-id", "nope", "--rpc", net.url, "--port", "0"])
    assert r.exit_code == ExitCode.RUN_NOT_FOUND and "--rpc is deprecated" in r.output  # the old spelling works
