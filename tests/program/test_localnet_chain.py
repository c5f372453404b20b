"""The localnet chain and RPC methods in process: blockhash expiry, filters, encodings, bad params."""
from __future__ import annotations

import base64
import json

import based58
import pytest
from solders.account import Account
from solders.hash import Hash
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.rpc.responses import GetProgramAccountsResp
from solders.system_program import TransferParams, transfer
from solders.transaction import Transaction, VersionedTransaction

from localnet.chain import BLOCKHASH_WINDOW, Chain, RpcError
from localnet.rpc import RpcMethods


@pytest.fixture
def chain(tmp_path) -> Chain:
    c = Chain(tmp_path / "ledger", deploy_programs=False)
    yield c
    c.close()


def _transfer(chain: Chain, payer: Keypair, blockhash: str) -> VersionedTransaction:
    return VersionedTransaction.from_legacy(Transaction.new_signed_with_payer(
        [transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=Pubkey.new_unique(), lamports=5))],
        payer.pubkey(), [payer], Hash.from_string(blockhash)))


def test_blockhash_expires_after_150_slots(chain: Chain) -> None:
    payer = Keypair()
    chain.airdrop(payer.pubkey(), 10**9)
    old, last_valid = chain.latest_blockhash()
    assert last_valid == chain.slot + BLOCKHASH_WINDOW
    for _ in range(BLOCKHASH_WINDOW):
        chain.advance()
    assert chain.is_blockhash_valid(old)
    chain.send(_transfer(chain, payer, old))  # still inside the window
    chain.advance()
    assert not chain.is_blockhash_valid(old)
    with pytest.raises(RpcError, match="Blockhash not found"):
        chain.send(_transfer(chain, payer, old))


def test_program_account_filters_and_encodings(chain: Chain) -> None:
    owner = Pubkey.new_unique()
    keys = []
    for data in [b"AAAA" + bytes(4), b"AAAB" + bytes(4), b"AAAA" + bytes(12)]:
        k = Pubkey.new_unique()
        chain.svm.set_account(k, Account(10**6, data, owner, False, 0))
        chain.owners.setdefault(owner, set()).add(k)
        keys.append(k)
    m = RpcMethods(chain)

    def gpa(filters, **cfg):
        out = m.call("getProgramAccounts", [str(owner), {"filters": filters, **cfg}])
        GetProgramAccountsResp.from_json(json.dumps({"jsonrpc": "2.0", "id": 1, "result": out}))
        return {Pubkey.from_string(r["pubkey"]) for r in out}

    assert gpa([{"dataSize": 8}]) == {keys[0], keys[1]}
    assert gpa([{"memcmp": {"offset": 0, "bytes": based58.b58encode(b"AAAA").decode()}}]) == {keys[0], keys[2]}
    assert gpa([{"memcmp": {"offset": 3, "bytes": base64.b64encode(b"B").decode(), "encoding": "base64"}}]) == {keys[1]}
    assert gpa([{"dataSize": 8}, {"memcmp": {"offset": 0, "bytes": based58.b58encode(b"AAAA").decode()}}]) == {keys[0]}
    sliced = m.call("getAccountInfo", [str(keys[2]), {"encoding": "base64", "dataSlice": {"offset": 2, "length": 3}}])
    assert base64.b64decode(sliced["value"]["data"][0]) == b"AA\x00"
    b58 = m.call("getAccountInfo", [str(keys[0]), {"encoding": "base58"}])
    assert based58.b58decode(b58["value"]["data"][0].encode()) == b"AAAA" + bytes(4)
    with pytest.raises(RpcError, match="filter"):
        m.call("getProgramAccounts", [str(owner), {"filters": [{"weird": 1}]}])


@pytest.mark.parametrize("method,params,fragment", [
    ("getBalance", [], "missing pubkey"),
    ("getBalance", ["xyz"], "not a base-58 public key"),
    ("getMultipleAccounts", ["not-a-list"], "array"),
    ("getMinimumBalanceForRentExemption", [-1], "outside"),
    ("requestAirdrop", [str(Pubkey.new_unique()), 0], "airdrop of 0"),
    ("sendTransaction", ["AAAA", {"encoding": "base64"}], "failed to deserialize"),
    ("getSignatureStatuses", ["x"], "array"),
    ("getAccountInfo", [str(Pubkey.new_unique()), "oops"], "config object"),
])
def test_bad_params_get_named_errors(chain: Chain, method: str, params: list, fragment: str) -> None:
    with pytest.raises(RpcError) as info:
        RpcMethods(chain).call(method, params)
    assert info.value.code == -32602 and fragment in info.value.message


def test_slot_sysvars_follow_the_slots(chain: Chain) -> None:
    """SlotHashes and SlotHistory advance with the chain (address lookup tables and programs read them)."""
    from solders.slot_history import SlotHistoryCheck

    for _ in range(3):
        chain.advance()
    hashes = dict(chain.svm.get_slot_hashes())
    assert {chain.slot, chain.slot - 1, chain.slot - 2} <= hashes.keys()
    assert str(hashes[chain.slot]) == chain.latest_blockhash()[0]
    history = chain.svm.get_slot_history()
    assert history.check(chain.slot) == SlotHistoryCheck.Found and history.next_slot == chain.slot + 1


def test_a_panic_in_a_handler_becomes_a_json_rpc_error(chain: Chain, monkeypatch) -> None:
    """pyo3 turns a Rust panic into PanicException, a BaseException: it must stay inside its one reply."""
    from localnet.server import LocalnetServer

    class RustPanic(BaseException):  # what pyo3_runtime.PanicException derives from
        pass

    server = LocalnetServer(chain)

    def panics(params):
        raise RustPanic("index out of bounds")

    monkeypatch.setitem(server.methods.methods, "getSlot", panics)
    out = server.handle_one({"jsonrpc": "2.0", "id": 3, "method": "getSlot"})
    assert out["id"] == 3 and out["error"]["code"] == -32603 and "index out of bounds" in out["error"]["message"]
    assert server.handle_one({"jsonrpc": "2.0", "id": 4, "method": "getHealth"})["result"] == "ok"


def test_prioritization_fees_come_from_landed_transactions(chain: Chain) -> None:
    from solders.compute_budget import set_compute_unit_price

    payer = Keypair()
    chain.airdrop(payer.pubkey(), 10**9)
    chain.advance()
    h = Hash.from_string(chain.latest_blockhash()[0])
    tx = Transaction.new_signed_with_payer(
        [set_compute_unit_price(1234), transfer(TransferParams(from_pubkey=payer.pubkey(),
                                                              to_pubkey=Pubkey.new_unique(), lamports=5))],
        payer.pubkey(), [payer], h)
    chain.send(VersionedTransaction.from_legacy(tx))
    slot = chain.slot
    chain.advance()
    m = RpcMethods(chain)
    fees = {f["slot"]: f["prioritizationFee"] for f in m.call("getRecentPrioritizationFees", [[str(payer.pubkey())]])}
    assert fees[slot] == 1234 and fees[slot - 1] == 0
    unrelated = m.call("getRecentPrioritizationFees", [[str(Pubkey.new_unique())]])
    assert all(f["prioritizationFee"] == 0 for f in unrelated)


def test_unsigned_transactions_simulate_unless_sig_verify_is_asked(chain: Chain) -> None:
    """Wallets and kit's compute-unit estimator simulate before signing (sigVerify false by default)."""
    from solders.message import Message
    from solders.signature import Signature

    payer = Keypair()
    chain.airdrop(payer.pubkey(), 10**9)
    msg = Message.new_with_blockhash([transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=Pubkey.new_unique(),
                                                              lamports=5))], payer.pubkey(),
                                     Hash.from_string(chain.latest_blockhash()[0]))
    raw = base64.b64encode(bytes(Transaction.populate(msg, [Signature.default()]))).decode()
    m = RpcMethods(chain)
    cfg = {"encoding": "base64", "replaceRecentBlockhash": True}
    out = m.call("simulateTransaction", [raw, cfg])["value"]
    assert out["err"] is None and out["unitsConsumed"] > 0 and out["replacementBlockhash"]["blockhash"]
    assert m.call("simulateTransaction", [raw, {"encoding": "base64", "sigVerify": True}])["value"]["err"] \
        == "SignatureFailure"
    with pytest.raises(RpcError):  # sending it still verifies every signature
        m.call("sendTransaction", [raw, {"encoding": "base64", "skipPreflight": True}])
