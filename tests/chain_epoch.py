"""Play a run's epoch over JSON-RPC without training: clients join, witness the warmup and post participant
bits as elected witnesses until the epoch ends and points are paid. Tests that need points on chain fast
(the treasurer's) use it; `psyche run-client` is what does this around real training."""
from __future__ import annotations

import asyncio
import time

from solders.keypair import Keypair

from coordinator_sdk.bloom import Bloom
from coordinator_sdk.client import Coordinator
from coordinator_sdk.model.state import RunState
from coordinator_sdk.participation import participants_bitmap
from coordinator_sdk.shuffle import elected_witnesses

CONFIG = dict(warmup_time=30, cooldown_time=2, max_round_train_time=20, round_witness_time=1,
              global_batch_size_warmup_tokens=0, epoch_time=60, total_steps=6, max_seq_len=512, init_min_clients=3,
              min_clients=2, witness_nodes=2, global_batch_size_start=6, global_batch_size_end=6,
              waiting_for_members_extra_time=1)


async def play_epoch(reader: Coordinator, clients: list[Coordinator], timeout: float = 120.0) -> None:
    """Clients join, witness the warmup and play rounds (the elected witnesses post participant bits: everyone
    trained) until the epoch ends and points are paid; `reader` only reads the state. Prints one line per phase
    change."""
    for c in clients:
        await c.join_run(Keypair().pubkey(), "127.0.0.1:0")
    by_key = {c.wallet.pubkey(): c for c in clients}
    last = None
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        st = await reader.fetch_state()
        phase = RunState(st.run_state).name
        if (phase, st.step) != last:
            r = st.rounds[st.rounds_head]
            print(f"  t={time.monotonic() - t0:5.1f}s  {phase:18} epoch {st.epoch} step {st.step} "
                  f"round {r.height} data_index {r.data_index} clients {st.num_epoch_clients}")
            last = (phase, st.step)
        if st.run_state in (RunState.Finished, RunState.Paused) or (st.epoch >= 1 and phase == "WaitingForMembers"):
            break
        if phase == "Warmup":
            for i in range(st.num_epoch_clients):
                await by_key[st.epoch_clients[i].signer].warmup_witness()
            continue
        if phase == "RoundTrain":
            r = st.rounds[st.rounds_head]
            everyone = participants_bitmap(range(r.clients_len))
            for i in elected_witnesses(r.clients_len, r.random_seed, st.config.witness_nodes):
                await by_key[st.epoch_clients[i].signer].witness(everyone, Bloom.random().to_bytes(),
                                                                 bytes(32), st.step)
            continue
        await asyncio.sleep(0.5)
        await clients[0].tick()
