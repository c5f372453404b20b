"""Eight `RunClient`s in one process (devtools.swarm) against a real localnet, training with
`simulate_training`: every client finishes, all hold bit-identical weights, and the chain paid exactly what the
protocol pays. Simulated results go through the whole protocol (codec, P2P, witnessing, apply)."""
from __future__ import annotations

import asyncio
from pathlib import Path

from devtools.swarm import Swarm, SwarmConfig, round_stats


def test_eight_simulated_clients_in_one_process(tmp_path: Path) -> None:
    async def go() -> None:
        swarm = Swarm(tmp_path, SwarmConfig(8, simulate=0.2, total_steps=6))
        try:
            await asyncio.to_thread(swarm.start_chain)
            await swarm.start_clients()
            codes = await swarm.wait(timeout=120)
            swarm.dump(tmp_path / "events.log")
            assert codes == [0] * 8, f"exit codes {codes}; events in {tmp_path / 'events.log'}"
            assert swarm.check() == [], f"events in {tmp_path / 'events.log'}"
            rounds = [e for c in swarm.clients for e in c.of_kind("round")]
            assert rounds and all(e["simulated"] and e["loss"] is None for e in rounds)
            assert any(e["applied"] == 8 for e in rounds)  # every client's simulated result was applied
            assert round_stats(swarm)["round_s"] is not None
        finally:
            await swarm.close()

    asyncio.run(go())
