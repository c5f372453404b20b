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

/* Create a PDA of this program (pda_create.h: pre-funded addresses are taken over, not refused). */
uint64_t create_pda(const SolParameters *p, const PdaCreate *req) {
    static const PdaCreateErrors errors = {T_NOT_SYSTEM_PROGRAM, T_ALREADY_INITIALIZED};
    return pda_create(p, req, &errors);
}
