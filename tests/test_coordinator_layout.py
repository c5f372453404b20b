"""The C structs and the IDL can never drift: values written by the program (from arguments built in
Python) decode field by field through the IDL; discriminators and error codes agree with the C header."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

from solders.keypair import Keypair

from coordinator_sdk.codec import IDL_PATH, PROGRAM_ID, CoordinatorCodec
from coordinator_sdk.litesvm_harness import CoordinatorSvm
from coordinator_sdk.shuffle import elected_witnesses

HEADER = (Path(IDL_PATH).parent / "coordinator.h").read_text()


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def test_instruction_and_account_discriminators_match_the_header() -> None:
    codec = CoordinatorCodec()
    for ix in codec.idl_json["instructions"]:
        want = int.from_bytes(hashlib.sha256(f"global:{_snake(ix['name'])}".encode()).digest()[:8], "little")
        m = re.search(rf"#define IX_{_snake(ix['name']).upper()} 0x([0-9a-f]+)ULL", HEADER)
        assert m and int(m.group(1), 16) == want, ix["name"]
    for acc, macro in (("RunInstance", "RUN_INSTANCE"), ("CoordinatorAccount", "COORDINATOR_ACCOUNT"),
                       ("Authorization", "AUTHORIZATION")):
        want = int.from_bytes(hashlib.sha256(f"account:{acc}".encode()).digest()[:8], "little")
        m = re.search(rf"#define DISC_{macro} 0x([0-9a-f]+)ULL", HEADER)
        assert m and int(m.group(1), 16) == want, acc


def test_error_codes_match_the_c_enum_in_order() -> None:
    body = re.search(r"enum \{\s*E_INVALID_INSTRUCTION = 6000,(.*?)\};", HEADER, re.S).group(1)
    names = ["E_INVALID_INSTRUCTION"] + re.findall(r"E_[A-Z_]+", body)
    idl = CoordinatorCodec().idl_json["errors"]
    assert [e["code"] for e in idl] == list(range(6000, 6000 + len(idl)))
    assert [_snake(e["name"]).upper() for e in idl] == [n[2:] for n in names]
    assert f"== {CoordinatorCodec().account_size}" in HEADER  # the C static assert pins the IDL's size


def test_program_written_fields_decode_through_the_idl() -> None:
    h = CoordinatorSvm()
    cfg = dict(warmup_time=11, cooldown_time=12, max_round_train_time=13, round_witness_time=14,
               global_batch_size_warmup_tokens=15_000, epoch_time=160, total_steps=17, max_seq_len=18,
               init_min_clients=2, min_clients=2, witness_nodes=1, global_batch_size_start=21,
               global_batch_size_end=22, waiting_for_members_extra_time=23)
    run = h.create_run("layout-run", config=cfg, rates=(31, 32))
    inst = h.codec.decode(bytes(h.raw(run.instance).data))
    assert (bytes(inst.run_id[:inst.run_id_len]), inst.main_authority, inst.join_authority, inst.coordinator_account) \
        == (b"layout-run", run.owner.pubkey(), run.owner.pubkey(), run.account)
    auth = h.codec.decode(bytes(h.raw(h.codec.authorization_pda(run.instance, h.codec.program_id.default())).data))
    assert auth.instance == run.instance and bytes(auth.grantee) == bytes(32)
    st = h.state(run)
    for k, v in cfg.items():
        assert getattr(st.config, k) == v, k
    assert (st.future_earning_rate, st.future_slashing_rate, st.version, st.run_state) == (31, 32, 1, 0)
    assert bytes(st.run_id[:st.run_id_len]) == b"layout-run" and st.instance == run.instance

    assert h.owner(run, "set_paused", False).ok
    users = [h.fund(Keypair()) for _ in range(2)]
    p2ps = [Keypair().pubkey() for _ in users]
    for u, p in zip(users, p2ps, strict=True):
        assert h.send(h.codec.join_run(u.pubkey(), run.instance, run.account, p, f"10.0.0.{len(p2ps)}:7"), [u]).ok
    st = h.state(run)
    for i, (u, p) in enumerate(zip(users, p2ps, strict=True)):
        c = st.clients[i]
        assert (c.signer, c.p2p, bytes(c.addr_hint).rstrip(b"\0"), c.active) == (u.pubkey(), p, b"10.0.0.2:7", 2)
    h.advance(cfg["waiting_for_members_extra_time"])
    assert h.client(run, "tick", users[0]).ok
    h.advance(cfg["warmup_time"])
    assert h.client(run, "tick", users[0]).ok
    st = h.state(run)
    r = st.rounds[st.rounds_head]
    assert (st.run_state, r.height, r.clients_len, r.data_index, st.earning_rate, st.slashing_rate) == (3, 0, 2, 0,
                                                                                                       31, 32)
    by_signer = {bytes(u.pubkey()): u for u in users}
    elected = by_signer[bytes(st.epoch_clients[elected_witnesses(2, r.random_seed, 1)[0]].signer)]
    participant, broadcast, merkle = bytes(range(192)), bytes(reversed(range(192))), hashlib.sha256(b"m").digest()
    h.advance(1)
    res = h.client(run, "witness", elected, list(participant), list(broadcast), list(merkle), st.step, 1.5, 2.5, 3.5)
    assert res.ok, res.error
    w = h.state(run).rounds[st.rounds_head].witnesses[0]
    assert (bytes(w.participant_bloom), bytes(w.broadcast_bloom), bytes(w.broadcast_merkle)) == (participant,
                                                                                                  broadcast, merkle)
    assert any(line.startswith("Program data: d2l0bmVzcw==") for line in res.logs)  # "witness" event
    assert PROGRAM_ID == h.codec.program_id
