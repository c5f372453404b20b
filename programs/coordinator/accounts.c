/* Account checks shared by every instruction: owner, size, discriminator, version, PDA re-derivation with
 * the stored bump, and the binding between a run's instance and its coordinator account. */
#include "coordinator.h"

static const uint8_t SEED_COORDINATOR[] = {'c', 'o', 'o', 'r', 'd', 'i', 'n', 'a', 't', 'o', 'r'};
static const SolPubkey SLOT_HASHES_ID = {{6, 167, 213, 23, 25, 47, 10, 175, 198, 242, 101, 227, 251, 119, 204, 122,
                                          218, 130, 197, 41, 208, 190, 59, 19, 110, 45, 0, 85, 32, 0, 0, 0}};

uint64_t require_signer(const SolParameters *p, uint64_t i) {
    if (p->ka_num <= i) return E_NOT_ENOUGH_ACCOUNTS;
    return p->ka[i].is_signer ? SOL_SUCCESS : E_MISSING_SIGNER;
}

uint64_t get_clock(uint64_t *now, uint64_t *slot) {
    SolClock clock;
    if (sol_get_clock_sysvar(&clock)) return E_INVALID_ARGUMENT;
    *now = clock.unix_timestamp < 0 ? 0 : (uint64_t)clock.unix_timestamp;
    *slot = clock.slot;
    return SOL_SUCCESS;
}

uint64_t check_slot_hashes(const SolParameters *p, uint64_t i) {
    if (p->ka_num <= i) return E_NOT_ENOUGH_ACCOUNTS;
    return sol_pubkey_eq(p->ka[i].key, &SLOT_HASHES_ID) ? SOL_SUCCESS : E_WRONG_SYSVAR;
}

uint64_t find_instance_address(const uint8_t *run_id, uint64_t len, const SolPubkey *program_id, SolPubkey *out,
                               uint8_t *bump) {
    SolSignerSeed seeds[2] = {{SEED_COORDINATOR, sizeof(SEED_COORDINATOR)}, {run_id, len}};
    return sol_find_pda(seeds, 2, program_id, out, bump);
}

/* Validate the (instance, coordinator account) pair of a run and fill ctx. */
uint64_t load_run(const SolParameters *p, uint64_t inst_i, uint64_t acc_i, bool writable, Ctx *ctx) {
    if (p->ka_num <= inst_i || p->ka_num <= acc_i) return E_NOT_ENOUGH_ACCOUNTS;
    SolAccountInfo *inst = &p->ka[inst_i], *acc = &p->ka[acc_i];
    if (!sol_pubkey_eq(inst->owner, p->program_id) || !sol_pubkey_eq(acc->owner, p->program_id))
        return E_WRONG_OWNER;
    if (inst->data_len != sizeof(RunInstance) || acc->data_len != sizeof(CoordinatorAccount))
        return E_WRONG_ACCOUNT_SIZE;
    RunInstance *ri = (RunInstance *)inst->data;
    CoordinatorAccount *ca = (CoordinatorAccount *)acc->data;
    if (ri->discriminator != DISC_RUN_INSTANCE) return E_WRONG_DISCRIMINATOR;
    if (ca->discriminator == 0) return E_NOT_INITIALIZED;
    if (ca->discriminator != DISC_COORDINATOR_ACCOUNT) return E_WRONG_DISCRIMINATOR;
    if (ca->version != ACCOUNT_VERSION) return E_NOT_INITIALIZED;
    if (ri->run_id_len == 0 || ri->run_id_len > RUN_ID_MAX) return E_RUN_ID_INVALID_LENGTH;
    /* The instance's address re-derived from its stored run id and bump (the hash, sol_pda_matches: every
     * owner instruction the treasurer forwards pays this once per CPI). */
    uint8_t bump = ri->bump;
    SolSignerSeed seeds[3] = {{SEED_COORDINATOR, sizeof(SEED_COORDINATOR)}, {ri->run_id, ri->run_id_len}, {&bump, 1}};
    if (!sol_pda_matches(seeds, 3, p->program_id, inst->key)) return E_INVALID_PDA;
    if (!sol_pubkey_eq(&ri->coordinator_account, acc->key) || !sol_pubkey_eq(&ca->instance, inst->key))
        return E_ACCOUNT_MISMATCH;
    if (writable && !acc->is_writable) return E_NOT_WRITABLE;
    ctx->p = p;
    ctx->inst = ri;
    ctx->acc = ca;
    return get_clock(&ctx->now, &ctx->slot);
}

uint64_t bump_nonce(CoordinatorAccount *a) {
    return sol_add_u64(a->nonce, 1, &a->nonce) ? SOL_SUCCESS : E_ARITHMETIC_OVERFLOW;
}

/* Create a PDA of this program (pda_create.h: pre-funded addresses are taken over, not refused). */
uint64_t create_pda(const SolParameters *p, const PdaCreate *req) {
    static const PdaCreateErrors errors = {E_NOT_SYSTEM_PROGRAM, E_ALREADY_INITIALIZED};
    return pda_create(p, req, &errors);
}

uint64_t config_check(const Config *c) {
    bool ok = c->epoch_time > 0 && c->warmup_time < c->epoch_time && c->max_round_train_time > 0 &&
              c->max_round_train_time < c->epoch_time && c->round_witness_time > 0 && c->min_clients > 0 &&
              c->min_clients <= c->init_min_clients && c->init_min_clients <= MAX_CLIENTS &&
              c->global_batch_size_start > 0 && c->global_batch_size_start <= c->global_batch_size_end &&
              c->total_steps > 0 && c->witness_nodes <= c->min_clients && c->witness_nodes <= MAX_WITNESSES &&
              c->cooldown_time > 0 && c->waiting_for_members_extra_time > 0 && c->max_seq_len > 0 &&
              c->global_batch_size_warmup_tokens <= (1ULL << 47) &&
              c->verifiers_per_mille <= MAX_VERIFIERS_PER_MILLE;
    return ok ? SOL_SUCCESS : E_INVALID_CONFIG;
}
