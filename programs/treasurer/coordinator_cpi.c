/* Everything the treasurer knows about the coordinator program lives here: the instructions it invokes
 * (init_run; the owner instructions update_config, update_metadata, update_model, update_progress,
 * set_checkpoint, set_future_epoch_rates, set_paused), their account orders as in
 * programs/coordinator/idl.json, and where the points are in its account (coord_layout.h). Adapting to a
 * coordinator change means editing this file (and the CIX_ discriminators in treasurer.h). */
#include "treasurer.h"
#include "coord_layout.h"


/* init_run(run_id: string, main_authority: pubkey, join_authority: pubkey)
 * accounts: payer (signer, w), instance (w), coordinator_account (w), system_program. The coordinator
 * account's signer flag is passed on as the transaction gave it, so a coordinator that wants the fresh
 * account to sign gets that signature. */
uint64_t coordinator_init_run(const SolParameters *p, const InitRunCpi *req) {
    uint8_t *data = SOL_HEAP_START + HEAP_CPI_DATA;
    uint64_t disc = CIX_INIT_RUN, n = 0;
    uint64_t run_id_len = req->run_id_len;
    uint32_t len32 = (uint32_t)run_id_len;
    sol_memcpy(data, &disc, 8);
    sol_memcpy(data + 8, &len32, 4);
    sol_memcpy(data + 12, req->run_id, run_id_len);
    n = 12 + run_id_len;
    sol_memcpy(data + n, req->main_authority->x, 32);
    sol_memcpy(data + n + 32, req->join_authority, 32);
    n += 64;
    SolAccountMeta metas[4] = {{req->payer->key, true, true}, {req->instance->key, true, false},
                               {req->account->key, true, req->account->is_signer}, {req->sys->key, false, false}};
    SolInstruction ix = {(SolPubkey *)req->program, metas, 4, data, n};
    return sol_invoke_signed_c(&ix, p->ka, p->ka_num, 0, 0);
}

/* Owner instructions: authority (signer = the Run PDA), instance, coordinator_account (w)
 * [, slot_hashes for set_paused]. */
uint64_t coordinator_owner_call(const SolParameters *p, const OwnerCall *c) {
    uint8_t *data = SOL_HEAP_START + HEAP_CPI_DATA;
    sol_memcpy(data, &c->discriminator, 8);
    sol_memcpy(data + 8, c->args, c->len);
    SolAccountMeta metas[4] = {{c->run->key, false, true}, {c->instance->key, false, false},
                               {c->account->key, true, false}, {c->slot_hashes ? c->slot_hashes->key : 0, false, false}};
    SolInstruction ix = {(SolPubkey *)c->program, metas, c->slot_hashes ? 4 : 3, data, 8 + c->len};
    return sol_invoke_signed_c(&ix, p->ka, p->ka_num, c->signer, 1);
}

/* The user's points in the run's coordinator account, after checking that the account is the
 * coordinator's (owner, size, discriminator, version), the one this Run created (key, instance, run id). */
uint64_t coordinator_points(const SolAccountInfo *account, const Run *run, const SolPubkey *user, uint64_t *earned,
                            uint64_t *slashed) {
    if (!sol_pubkey_eq(account->owner, &run->coordinator_program)) return T_WRONG_OWNER;
    if (account->data_len != CA_SIZE) return T_WRONG_ACCOUNT_SIZE;
    const uint8_t *d = account->data;
    if (sol_read_u64(d) != CA_DISCRIMINATOR) return T_WRONG_DISCRIMINATOR;
    if (sol_read_u64(d + CA_OFF_VERSION) != CA_VERSION_VALUE) return T_COORDINATOR_ACCOUNT_INVALID;
    if (!sol_pubkey_eq(account->key, &run->coordinator_account) ||
        !sol_pubkey_eq((const SolPubkey *)(d + CA_OFF_INSTANCE), &run->coordinator_instance))
        return T_ACCOUNT_MISMATCH;
    if (d[CA_OFF_RUN_ID_LEN] != run->run_id_len || !sol_memeq(d + CA_OFF_RUN_ID, run->run_id, RUN_ID_MAX))
        return T_ACCOUNT_MISMATCH;
    uint32_t n = sol_read_u32(d + CA_OFF_NUM_CLIENTS);
    if (n > CA_MAX_CLIENTS) return T_COORDINATOR_ACCOUNT_INVALID;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *c = d + CA_OFF_CLIENTS + (uint64_t)i * RC_SIZE;
        if (sol_pubkey_eq((const SolPubkey *)(c + RC_OFF_SIGNER), user)) {
            *earned = sol_read_u64(c + RC_OFF_EARNED);
            *slashed = sol_read_u64(c + RC_OFF_SLASHED);
            return SOL_SUCCESS;
        }
    }
    return T_NOT_A_CLIENT;
}

/* Add the user's banked points (the coordinator's ClientPoints PDA, see coord_layout.h) to earned/slashed,
 * after checking that the account is the coordinator's (owner, size, discriminator) record of this run's
 * coordinator account and this user, at the address its stored bump gives. */
uint64_t banked_points(const SolAccountInfo *points, const Run *run, const SolPubkey *user, uint64_t *earned,
                       uint64_t *slashed) {
    if (!sol_pubkey_eq(points->owner, &run->coordinator_program)) return T_WRONG_OWNER;
    if (points->data_len != CP_SIZE) return T_WRONG_ACCOUNT_SIZE;
    const uint8_t *d = points->data;
    if (sol_read_u64(d) != CP_DISCRIMINATOR) return T_WRONG_DISCRIMINATOR;
    if (!sol_pubkey_eq((const SolPubkey *)(d + CP_OFF_ACCOUNT), &run->coordinator_account) ||
        !sol_pubkey_eq((const SolPubkey *)(d + CP_OFF_SIGNER), user))
        return T_ACCOUNT_MISMATCH;
    uint8_t bump = d[CP_OFF_BUMP];
    SolSignerSeed seeds[4] = {{(const uint8_t *)"points", 6}, {run->coordinator_account.x, 32}, {user->x, 32},
                              {&bump, 1}};
    if (!sol_pda_matches(seeds, 4, &run->coordinator_program, points->key))
        return T_INVALID_PDA;
    uint64_t e = *earned + sol_read_u64(d + CP_OFF_EARNED), s = *slashed + sol_read_u64(d + CP_OFF_SLASHED);
    *earned = e < *earned ? UINT64_MAX : e; /* saturating, as the coordinator's counters */
    *slashed = s < *slashed ? UINT64_MAX : s;
    return SOL_SUCCESS;
}
