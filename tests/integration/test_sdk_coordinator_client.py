"""The async Coordinator client against a real localnet (which deploys the committed coordinator.so):
owner and clients drive a run over JSON-RPC, watch it through the decoded-state stream, and get program
errors as named exceptions with logs."""
from __future__ import annotations

import asyncio

import pytest
from localnet_harness import Localnet, funded_wallet_file
from solders.keypair import Keypair

from coordinator_sdk.client import Coordinator, RunNotFound
from coordinator_sdk.codec import CoordinatorCodec
from coordinator_sdk.program_errors import ProgramError
from coordinator_sdk.shuffle import elected_witnesses

CONFIG = dict(warmup_time=60, cooldown_time=5, max_round_train_time=30, round_witness_time=2,
              global_batch_size_warmup_tokens=0, epoch_time=600, total_steps=100, max_seq_len=512,
              init_min_clients=2, min_clients=1, witness_nodes=1, global_batch_size_start=8,
              global_batch_size_end=8, waiting_for_members_extra_time=1)


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    ln = Localnet(tmp_path_factory.mktemp("coord") / "ledger")
    yield ln
    ln.stop()


def test_a_run_over_json_rpc_with_stream_and_named_errors(net: Localnet, tmp_path) -> None:
    async def main():
        _, owner_file = await funded_wallet_file(net.url, tmp_path, "owner")
        owner = Coordinator.from_wallet_file([f"http://127.0.0.1:{net.port + 7}", net.url], "rpc-run", owner_file)
        with pytest.raises(RunNotFound):
            await owner.fetch_state()
        await owner.create_run()
        await owner.update_config(**CONFIG)
        await owner.set_future_epoch_rates(500, 3)
        await owner.update_metadata("rpc-run", "driven over JSON-RPC", 1234, 256)
        await owner.set_paused(False)
        clients = []
        for i in range(2):
            kp, path = await funded_wallet_file(net.url, tmp_path, f"client{i}")
            clients.append(Coordinator.from_wallet_file(net.url, "rpc-run", path))
        async with await owner.states(poll_interval=0.3) as stream:
            first = await stream.next(timeout=10)
            for c in clients:
                await c.join_run(Keypair().pubkey(), "127.0.0.1:5000")
            await asyncio.sleep(1.2)  # waiting_for_members_extra_time on the real-time clock
            await clients[0].tick()
            nonces = [first.nonce]
            state = first
            while state.run_state != 2:
                state = await stream.next(timeout=10)
                nonces.append(state.nonce)
            assert nonces == sorted(set(nonces))  # strictly increasing: stale updates never come out
        st = await owner.fetch_state()
        assert st.run_state == 2 and st.num_epoch_clients == 2
        for c in clients:
            await c.warmup_witness()
        st = await owner.fetch_state()
        for _ in range(20):  # round 0 starts in a slot after the warmup's (its hash seeds the round)
            if st.run_state == 3:
                break
            await asyncio.sleep(0.45)
            await clients[0].tick()
            st = await owner.fetch_state()
        assert st.run_state == 3
        r = st.rounds[st.rounds_head]
        chosen = elected_witnesses(r.clients_len, r.random_seed, 1)
        by_key = {c.wallet.pubkey(): c for c in clients}
        loser = by_key[st.epoch_clients[1 - chosen[0]].signer]
        with pytest.raises(CoordinatorCodec().errors["WitnessNotElected"]) as info:
            await loser.witness(bytes(32), bytes(192), bytes(32), st.step)
        err = info.value
        assert isinstance(err, ProgramError) and type(err).__name__ == "WitnessNotElected"
        assert err.code == 6024 and any("custom program error" in line for line in err.logs)
        outsider_kp, outsider_file = await funded_wallet_file(net.url, tmp_path, "outsider")
        outsider = Coordinator.from_wallet_file(net.url, "rpc-run", outsider_file)
        with pytest.raises(CoordinatorCodec().errors["SignerNotAClient"]):
            await outsider.withdraw()
        meta = (await owner.fetch_state()).metadata
        assert bytes(meta.name[:meta.name_len]) == b"rpc-run"
        for c in [owner, outsider, *clients]:
            await c.close()
    asyncio.run(main())
