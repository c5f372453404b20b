"""The reference model's state written into the program's real account layout, then decoded as clients do.

Why bytes and not a look-alike object: the runner, the SDK's assignment and P2P membership code all read
decoded accounts; encoding the model into the same numpy layout and decoding it with the same decoder
means an in-process client sees exactly the shapes (and only the fields) a client of the real chain sees.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from coordinator_sdk.codec import ACCOUNT_DISCRIMINATOR, CoordinatorCodec
from coordinator_sdk.model.state import NUM_ROUNDS, EpochClient, State

CONFIG_FIELDS = ("warmup_time", "cooldown_time", "max_round_train_time", "round_witness_time",
                 "global_batch_size_warmup_tokens", "epoch_time", "total_steps", "max_seq_len", "init_min_clients",
                 "min_clients", "witness_nodes", "global_batch_size_start", "global_batch_size_end",
                 "waiting_for_members_extra_time", "verifiers_per_mille")
TOP_FIELDS = ("nonce", "epoch", "step", "epoch_start_data_index", "run_state_start_unix_timestamp", "earning_rate",
              "slashing_rate", "future_earning_rate", "future_slashing_rate", "next_active", "evict_cursor",
              "seed_slot")


def _put(arr: Any, data: bytes) -> None:
    n = min(len(arr), len(data))
    arr[:] = 0
    arr[:n] = np.frombuffer(data[:n], dtype=np.uint8)


def _epoch_client(rec: Any, c: EpochClient) -> None:
    _put(rec["signer"]["publicKey"], c.signer)
    _put(rec["p2p"]["publicKey"], c.p2p)
    rec["state"], rec["registry_index"], rec["exited_height"] = int(c.state), c.registry_index, c.exited_height
    rec["verdict_height"], rec["verdict_key"] = c.verdict_height, c.verdict_key
    rec["fails"], rec["passes"], rec["accuser"] = c.fails, c.passes, c.accuser
    rec["epoch_fails"], rec["epoch_passes"], rec["epoch_accuser"] = c.epoch_fails, c.epoch_passes, c.epoch_accuser


class ModelAccount:
    """Encoder for one run: `template` holds what the model does not (version, run id, model description)."""

    def __init__(self, codec: CoordinatorCodec, template: bytes) -> None:
        self.codec = codec
        self.dtype = codec._compiler.struct("CoordinatorAccount")
        if len(template) != 8 + self.dtype.itemsize or template[:8] != ACCOUNT_DISCRIMINATOR:
            raise ValueError("template is not a CoordinatorAccount")
        self.template = template

    @classmethod
    def blank(cls, codec: CoordinatorCodec, run_id: str, model_fields: dict[str, Any]) -> ModelAccount:
        """A template with version 1, `run_id` and the ModelDescription `model_fields` (run_model's names)."""
        dt = codec._compiler.struct("CoordinatorAccount")
        rec = np.zeros(1, dtype=dt)[0]
        rec["version"] = 1
        _put(rec["run_id"], run_id.encode())
        rec["run_id_len"] = len(run_id.encode())
        for k, v in model_fields.items():
            if k == "pad":
                continue
            if k == "data_location":
                _put(rec["model"][k], bytes(v))
            else:
                rec["model"][k] = v
        return cls(codec, ACCOUNT_DISCRIMINATOR + rec.tobytes())

    def encode(self, s: State) -> bytes:
        rec = np.frombuffer(bytearray(self.template[8:]), dtype=self.dtype, count=1)[0].copy()
        es = s.epoch_state
        for f in TOP_FIELDS:
            rec[f] = getattr(s, f)
        rec["run_state"], rec["pending_pause"] = int(s.run_state), int(s.pending_pause)
        rec["first_round"], rec["cold_start_epoch"] = int(es.first_round), int(es.cold_start_epoch)
        rec["checkpoint_len"] = len(s.checkpoint)
        _put(rec["checkpoint"], s.checkpoint)
        for f in CONFIG_FIELDS:
            rec["config"][f] = getattr(s.config, f)
        for f in ("rounds_head", "start_step", "last_step", "clients_at_start", "start_timestamp"):
            rec[f] = getattr(es, f)
        for i in range(NUM_ROUNDS):
            r, out = es.rounds[i], rec["rounds"][i]
            out["data_index"], out["random_seed"], out["height"] = r.data_index, r.random_seed, r.height
            out["clients_len"], out["num_witnesses"] = r.clients_len, len(r.witnesses)
            for w, wit in enumerate(r.witnesses):
                ow = out["witnesses"][w]
                ow["client_index"] = wit.client_index
                _put(ow["participants"], wit.participants)
                _put(ow["broadcast_bloom"], wit.broadcast_bloom)
                _put(ow["broadcast_merkle"], wit.broadcast_merkle)
        rec["num_clients"] = len(s.clients)
        for i, c in enumerate(s.clients):
            out = rec["clients"][i]
            _put(out["signer"]["publicKey"], c.signer)
            _put(out["p2p"]["publicKey"], c.p2p)
            _put(out["addr_hint"], c.addr_hint)
            out["active"], out["earned"], out["slashed"] = c.active, c.earned, c.slashed
        rec["num_epoch_clients"] = len(es.clients)
        for i, c in enumerate(es.clients):
            _epoch_client(rec["epoch_clients"][i], c)
        rec["num_exited_clients"] = len(es.exited_clients)
        for i, c in enumerate(es.exited_clients):
            _epoch_client(rec["exited_clients"][i], c)
        return ACCOUNT_DISCRIMINATOR + rec.tobytes()

    def decode(self, s: State) -> Any:
        return self.codec.decode_state(self.encode(s))
