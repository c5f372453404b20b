/* Shared account checks: signers, the Run PDA (owner, size, discriminator, re-derived address), PDA creation. */
#include "treasurer.h"

const SolPubkey TOKEN_PROGRAM_ID = {{6, 221, 246, 225, 215, 101, 161, 147, 217, 203, 225, 70, 206, 235, 121, 172, 28,
                                     180, 133, 237, 95, 91, 55, 145, 58, 140, 245, 133, 126, 255, 0, 169}};
const SolPubkey ATA_PROGRAM_ID = {{140, 151, 37, 143, 78, 36, 137, 241, 187, 61, 16, 41, 20, 142, 13, 131, 11, 90, 19,
                                   153, 218, 255, 16, 132, 4, 142, 123, 216, 219, 233, 248, 89}};

uint64_t require_signer(const SolParameters *p, uint64_t i) {
    if (p->ka_num <= i) return T_NOT_ENOUGH_ACCOUNTS;
    return p->ka[i].is_signer ? SOL_SUCCESS : T_MISSING_SIGNER;
}

/* The Run at account i: owned by this program, exactly sized, the Run discriminator, at its PDA (the
 * stored index and bump hashed: sol_pda_matches). */
uint64_t load_run(const SolParameters *p, uint64_t i, Run **out) {
    if (p->ka_num <= i) return T_NOT_ENOUGH_ACCOUNTS;
    SolAccountInfo *acc = &p->ka[i];
    if (!sol_pubkey_eq(acc->owner, p->program_id)) return T_WRONG_OWNER;
    if (acc->data_len != sizeof(Run)) return T_WRONG_ACCOUNT_SIZE;
    Run *run = (Run *)acc->data;
    if (run->discriminator != DISC_RUN) return T_WRONG_DISCRIMINATOR;
    SolSignerSeed seeds[3] = {{(const uint8_t *)"Run", 3}, {(const uint8_t *)&run->index, 8}, {&run->bump, 1}};
    if (!sol_pda_matches(seeds, 3, p->program_id, acc->key)) return T_INVALID_PDA;
    *out = run;
    return SOL_SUCCESS;
}

/* One System program instruction for the new PDA, signed by its seeds (and by the payer when it pays). */
static uint64_t system_call(const SolParameters *p, const PdaCreate *req, const uint8_t *data, uint64_t len,
                            bool with_payer) {
    SolAccountMeta metas[2] = {{req->payer->key, true, true}, {req->target->key, true, true}};
    SolInstruction ix = {req->sys->key, with_payer ? metas : metas + 1, with_payer ? 2 : 1, (uint8_t *)data, len};
    SolSignerSeeds signer = {req->seeds, req->n_seeds};
    return sol_invoke_signed_c(&ix, p->ka, p->ka_num, &signer, 1);
}

/* Create a PDA of this program funded by `payer` with the rent-exempt minimum at the default rent (a
 * cluster with other rent parameters makes the CPI fail, never under-funds). Anyone can send lamports to
 * an address, and System CreateAccount refuses one that holds any: so a target that holds lamports but no
 * data and still belongs to the System program (pre-funded to squat a user's Participant or a run id's Run)
 * is taken over the way the System program allows, as the coordinator's create_pda does: transfer the
 * shortfall, allocate, assign. A target with data or another owner is AlreadyInitialized. */
uint64_t create_pda(const SolParameters *p, const PdaCreate *req) {
    SolAccountInfo *target = req->target;
    uint64_t space = req->space;
    if (!sol_is_system_program(req->sys->key)) return T_NOT_SYSTEM_PROGRAM;
    if (target->data_len != 0) return T_ALREADY_INITIALIZED;
    uint64_t lamports = (space + 128) * 6960, held = *target->lamports;
    uint8_t data[52];
    if (held == 0) {
        uint32_t create = 0;
        sol_memcpy(data, &create, 4);
        sol_memcpy(data + 4, &lamports, 8);
        sol_memcpy(data + 12, &space, 8);
        sol_memcpy(data + 20, p->program_id->x, 32);
        return system_call(p, req, data, 52, true);
    }
    if (!sol_is_system_program(target->owner)) return T_ALREADY_INITIALIZED;
    uint64_t err;
    if (held < lamports) {
        uint32_t transfer = 2;
        uint64_t shortfall = lamports - held;
        sol_memcpy(data, &transfer, 4);
        sol_memcpy(data + 4, &shortfall, 8);
        if ((err = system_call(p, req, data, 12, true))) return err;
    }
    uint32_t allocate = 8, assign = 1;
    sol_memcpy(data, &allocate, 4);
    sol_memcpy(data + 4, &space, 8);
    if ((err = system_call(p, req, data, 12, false))) return err;
    sol_memcpy(data, &assign, 4);
    sol_memcpy(data + 4, p->program_id->x, 32);
    return system_call(p, req, data, 36, false);
}
