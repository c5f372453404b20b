"""Compute units of every treasurer instruction (deployed through the loader, with the real coordinator and
LiteSVM's SPL Token 3.5.0 / ATA 1.1.1), with the claimant first or last among N registered clients (a claim
scans the coordinator's client list for the user).

    .venv/bin/python -m bench.treasurer_cu [--clients 3 64 256]     (also printed by bench.program_cu)
"""
from __future__ import annotations

import argparse

from solders.keypair import Keypair
from solders.system_program import TransferParams, transfer

from coordinator_sdk.points import evictee
from coordinator_sdk.treasurer_codec import run_index
from devtools.treasurer_svm import EPOCH_CONFIG, TreasurerSvm


def measure(n: int) -> dict[str, int]:
    h = TreasurerSvm()
    cfg = {**EPOCH_CONFIG, "init_min_clients": n, "min_clients": 2, "global_batch_size_start": max(6, n),
           "global_batch_size_end": max(6, n)}
    out: dict[str, int] = {}
    authority, account = h.fund(Keypair()), Keypair()
    mint, mint_authority = h.create_mint()
    res = h.send([h.create_account_ix(authority, account),
                  h.tcodec.run_create(authority.pubkey(), "cu-probe", account.pubkey(), mint, authority.pubkey(),
                                      authority.pubkey())], [authority, account])
    assert res.ok, res.error
    out["run_create (Run PDA + vault ATA + init_run CPIs)"] = treasurer_cu(h, res.logs)
    tr = h.treasury_run(f"cu-{n}", config=cfg)
    model = h.tcodec.program.type["ModelDescription"](
        architecture=0, data_type=0, optimizer=1, lr_schedule=0, cold_start_warmup_steps=0, lr_base=0.001,
        lr_warmup_init=0.0, lr_final=0.0, lr_warmup_steps=0, lr_total_steps=0, distro_decay=0.99, distro_chunk=16,
        distro_topk=1, distro_quantize1bit=1, data_location_len=3, distro_selection=0, distro_pipeline=0,
        data_location=list(b"abc") + [0] * 189)
    users = [h.fund(Keypair(), 10**8) for _ in range(n)]
    h.play_epoch(tr, users)  # includes run_update(paused=False) through the treasurer
    out["run_update(paused=true)"] = h.update(tr, paused=True).cu
    out["run_update(config)"] = h.update(tr, config=cfg).cu
    res = h.update(tr, metadata=("cu", "a run paid in tokens", 10**6, 256), model=model, progress=18,
                   epoch_rates=(900, 0))
    assert res.ok, res.error
    out["run_update(metadata, model, progress, rates)"] = res.cu
    # Every field at once, ending with the unpause (Paused -> WaitingForMembers): seven CPIs, the most a
    # run_update makes. Recurring (an operator's reconfigure-and-resume), so under the 30k budget.
    res = h.update(tr, metadata=("cu", "a run paid in tokens", 10**6, 256), config=cfg, model=model, progress=18,
                   checkpoint="hf://psyche/cu-probe@main", epoch_rates=(900, 0), paused=False)
    assert res.ok, res.error
    out["run_update (every field)"] = res.cu
    h.mint_to(tr.mint, tr.mint_authority, tr.vault, 10**12)
    first, last = users[0], users[-1]
    for u in (first, last):
        h.token_account(u.pubkey(), tr.mint)
    out["participant_create"] = h.participant(tr, first).cu
    squatted = users[1] if n > 2 else h.fund(Keypair())  # its PDA pre-funded: transfer, allocate, assign
    part = h.tcodec.participant_pda(tr.run, squatted.pubkey())
    assert h.send(transfer(TransferParams(from_pubkey=h.payer.pubkey(), to_pubkey=part, lamports=890_880))).ok
    res = h.participant(tr, squatted)
    assert res.ok and h.svm.get_account(part).owner == h.tcodec.program_id, res.error
    out["participant_create (pre-funded address)"] = res.cu
    assert h.participant(tr, last).ok
    out["participant_claim (claimant 1st client)"] = h.claim(tr, first, 1).cu
    out["participant_claim (claimant last client)"] = h.claim(tr, last, 1).cu
    assert h.tcodec.run_pda(run_index(f"cu-{n}")) == tr.run
    out.update(banked_claim(n))
    return out


def banked_claim(n: int) -> dict[str, int]:
    """A claim by a wallet whose registry slot a newcomer took (a full registry of n earners): no slot in
    the coordinator account (a scan of all n), its points in the points PDA (checked, one PDA derivation)."""
    h = TreasurerSvm()
    cfg = {**EPOCH_CONFIG, "init_min_clients": n, "min_clients": 2, "global_batch_size_start": n,
           "global_batch_size_end": n}
    tr = h.treasury_run(f"cu-bank-{n}", config=cfg)
    users = [h.fund(Keypair(), 10**8) for _ in range(n)]
    h.play_epoch(tr, users)
    h.mint_to(tr.mint, tr.mint_authority, tr.vault, 10**12)
    newcomer = h.fund(Keypair(), 10**8)
    gone = evictee(h.state(tr), newcomer.pubkey())
    assert h.join(tr, newcomer).ok
    user = next(u for u in users if u.pubkey() == gone)
    h.token_account(gone, tr.mint)
    assert h.participant(tr, user).ok
    res = h.claim(tr, user, 1, banked=True)
    assert res.ok, res.logs[-3:]
    return {"participant_claim (evicted: banked points only)": res.cu}


def bump_spread(samples: int = 24) -> dict[str, tuple[int, int]]:
    """run_create and participant_create over `samples` run ids / wallets: (min, max) CU. Their cost depends on
    the addresses: each PDA whose canonical bump is below 255 costs one more try per step (~320 CU in our
    programs' sol_find_pda: the Run PDA, the coordinator's instance PDA, the vault's ATA check, the
    Participant PDA; ~1,500 CU inside the ATA program, which searches the vault's bump itself)."""
    h = TreasurerSvm()
    mint, _ = h.create_mint()
    runs, parts = [], []
    for i in range(samples):
        authority, account = h.fund(Keypair()), Keypair()
        res = h.send([h.create_account_ix(authority, account),
                      h.tcodec.run_create(authority.pubkey(), f"cu-spread-{i}", account.pubkey(), mint,
                                          authority.pubkey(), authority.pubkey())], [authority, account])
        assert res.ok, res.error
        runs.append(treasurer_cu(h, res.logs))
    tr = h.treasury_run("cu-spread")
    for _ in range(samples):
        res = h.participant(tr, h.fund(Keypair()))
        assert res.ok, res.error
        parts.append(res.cu)
    return {"run_create": (min(runs), max(runs)), "participant_create": (min(parts), max(parts))}


def treasurer_cu(h: TreasurerSvm, logs: list[str]) -> int:
    """The treasurer's own top-level consumption (CPIs included), without the System CreateAccount of the
    coordinator account that shares its transaction."""
    tag = f"Program {h.tcodec.program_id} consumed "
    return int([line for line in logs if line.startswith(tag)][-1][len(tag):].split()[0])


def report(clients: list[int]) -> None:
    results = {n: measure(n) for n in clients}
    rows: list[str] = []
    for res in results.values():
        rows += [k for k in res if k not in rows]
    print(f"{'treasurer instruction':52}" + "".join(f"{n:>9} cl" for n in clients))
    for name in rows:
        cells = "".join(f"{results[n][name]:>12,}" if name in results[n] else f"{'':>12}" for n in clients)
        print(f"{name:52}" + cells)
    spread = bump_spread()
    print("Run: 336 bytes; Participant: 128 bytes; vault: an SPL token account (165 bytes). Over 24 run ids /\n"
          "wallets (the PDA bumps vary): " + "; ".join(f"{k} {lo:,} to {hi:,} CU" for k, (lo, hi) in spread.items()))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, nargs="+", default=[3, 64, 256])
    report(ap.parse_args().clients)


if __name__ == "__main__":
    main()
