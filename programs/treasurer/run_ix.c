/* run_create and run_update: the Run PDA, its vault, and the coordinator run it administers. */
#include "treasurer.h"

/* The Run of a run id lives at ["Run", index]: index must be the first 8 bytes of sha256(run_id), little-endian
 * (Psyche's compute_deterministic_treasurer_index, the SDK's run_index), or a junk run could occupy another run
 * id's address and every lookup by run id would find it. */
static bool index_of_run_id(uint64_t index, const uint8_t *run_id, uint64_t len) {
    SolBytes part = {run_id, len};
    uint8_t hash[32];
    return sol_sha256(&part, 1, hash) == 0 && sol_read_u64(hash) == index;
}

/* run_create(index: u64, run_id: string<=32, main_authority: pubkey, join_authority: pubkey,
 *            collateral_per_point: u64)
 * accounts: payer (signer, w), run (w), run_collateral (w, the Run's associated token account),
 *           collateral_mint, coordinator_instance (w), coordinator_account (w), coordinator_program,
 *           token_program, associated_token_program, system_program */
uint64_t ix_run_create(const SolParameters *p, Args *args) {
    uint64_t err = require_signer(p, 0);
    if (err) return err;
    if (p->ka_num < 10) return T_NOT_ENOUGH_ACCOUNTS;
    uint64_t index = args_u64(args), id_len = 0;
    bool too_long = false;
    const uint8_t *run_id = args_string(args, RUN_ID_MAX, &id_len, &too_long);
    if (too_long) return T_RUN_ID_INVALID_LENGTH;
    const uint8_t *main_auth = args_take(args, 32), *join_auth = args_take(args, 32);
    uint64_t rate = args_u64(args);
    if (!args_done(args)) return T_INVALID_INSTRUCTION;
    if (id_len == 0) return T_RUN_ID_INVALID_LENGTH;
    if (rate == 0) return T_INVALID_RATE;
    if (!index_of_run_id(index, run_id, id_len)) return T_RUN_INDEX_MISMATCH;
    SolAccountInfo *payer = &p->ka[0], *run = &p->ka[1], *vault = &p->ka[2], *mint = &p->ka[3];
    SolAccountInfo *instance = &p->ka[4], *account = &p->ka[5], *coordinator = &p->ka[6], *token = &p->ka[7];
    SolAccountInfo *ata = &p->ka[8], *sys = &p->ka[9];
    if (!payer->is_writable || !run->is_writable || !vault->is_writable) return T_NOT_WRITABLE;
    /* The coordinator is whichever executable program the creator names (bound below: Run.coordinator_program),
     * never this program itself. */
    if (sol_pubkey_eq(coordinator->key, p->program_id)) return T_WRONG_COORDINATOR_PROGRAM;
    if (!coordinator->executable) return T_COORDINATOR_NOT_EXECUTABLE;
    if ((err = check_token_program(token))) return err;
    uint8_t decimals;
    if ((err = check_mint(mint, &decimals))) return err;
    SolPubkey expected;
    uint8_t bump;
    SolSignerSeed find[2] = {{(const uint8_t *)"Run", 3}, {(const uint8_t *)&index, 8}};
    if (sol_find_pda(find, 2, p->program_id, &expected, &bump) || !sol_pubkey_eq(&expected, run->key))
        return T_INVALID_PDA;
    SolSignerSeed seeds[3] = {{(const uint8_t *)"Run", 3}, {(const uint8_t *)&index, 8}, {&bump, 1}};
    PdaCreate req = {payer, run, sys, sizeof(Run), seeds, 3};
    if ((err = create_pda(p, &req))) return err;
    VaultCreate vreq = {payer, vault, run, mint, sys, token, ata};
    if ((err = create_vault(p, &vreq))) return err;
    InitRunCpi init = {payer, instance, account, sys, coordinator->key, run_id, id_len, run->key, join_auth};
    if ((err = coordinator_init_run(p, &init))) return err;
    Run *r = (Run *)run->data;
    r->discriminator = DISC_RUN;
    r->bump = bump;
    r->run_id_len = (uint8_t)id_len;
    r->index = index;
    sol_memcpy(r->main_authority.x, main_auth, 32);
    sol_memcpy(r->join_authority.x, join_auth, 32);
    r->coordinator_instance = *instance->key;
    r->coordinator_account = *account->key;
    r->collateral_mint = *mint->key;
    r->collateral_vault = *vault->key;
    r->collateral_per_point = rate;
    r->coordinator_program = *coordinator->key;
    sol_memcpy(r->run_id, run_id, id_len);
    return SOL_SUCCESS;
}

/* One Option<T> of run_update: tag 0 (absent) or 1 followed by T = `strings` borsh strings then `fixed`
 * bytes; *span covers T's borsh bytes, forwarded to the coordinator unchanged (it checks the contents). */
static bool take_option(Args *a, uint64_t strings, uint64_t fixed, const uint8_t **span, uint64_t *span_len) {
    const uint8_t *tag = args_take(a, 1);
    *span = 0;
    if (!tag || *tag > 1) {
        a->bad = true;
        return false;
    }
    if (*tag == 0) return true;
    uint64_t start = a->pos;
    for (uint64_t i = 0; i < strings; i++) {
        const uint8_t *lp = args_take(a, 4);
        if (!lp || !args_take(a, sol_read_u32(lp))) return false;
    }
    if (fixed && !args_take(a, fixed)) return false;
    *span = a->data + start;
    *span_len = a->pos - start;
    return true;
}

#define N_FIELDS 7

/* run_update(metadata?, config?, model?, progress?, checkpoint?, epoch_rates?, paused?): forwards each
 * present field, in this order, to the coordinator by a CPI the Run PDA signs. Only the Run's main
 * authority may. accounts: authority (signer), run, coordinator_instance, coordinator_account (w),
 *           coordinator_program, slot_hashes */
uint64_t ix_run_update(const SolParameters *p, Args *args) {
    /* metadata: name, description, num_parameters u64, vocab_size u64; checkpoint: one string */
    static const uint64_t strings[N_FIELDS] = {2, 0, 0, 0, 1, 0, 0};
    static const uint64_t fixed[N_FIELDS] = {16, 72, 232, 4, 0, 16, 1};
    static const uint64_t calls[N_FIELDS] = {CIX_UPDATE_METADATA, CIX_UPDATE_CONFIG, CIX_UPDATE_MODEL,
                                             CIX_UPDATE_PROGRESS, CIX_SET_CHECKPOINT, CIX_SET_FUTURE_EPOCH_RATES,
                                             CIX_SET_PAUSED};
    const uint8_t *span[N_FIELDS];
    uint64_t len[N_FIELDS] = {0}, present = 0;
    for (int i = 0; i < N_FIELDS; i++) {
        if (!take_option(args, strings[i], fixed[i], &span[i], &len[i])) return T_INVALID_INSTRUCTION;
        present += span[i] != 0;
    }
    if (!args_done(args)) return T_INVALID_INSTRUCTION;
    uint64_t err = require_signer(p, 0);
    if (err) return err;
    if (p->ka_num < 6) return T_NOT_ENOUGH_ACCOUNTS;
    Run *run;
    if ((err = load_run(p, 1, &run))) return err;
    if (!sol_pubkey_eq(p->ka[0].key, &run->main_authority)) return T_UNAUTHORIZED;
    if (!sol_pubkey_eq(p->ka[2].key, &run->coordinator_instance) ||
        !sol_pubkey_eq(p->ka[3].key, &run->coordinator_account))
        return T_ACCOUNT_MISMATCH;
    if (!sol_pubkey_eq(p->ka[4].key, &run->coordinator_program)) return T_WRONG_COORDINATOR_PROGRAM;
    if (present == 0) return T_NOTHING_TO_UPDATE;
    uint8_t bump = run->bump;
    SolSignerSeed seeds[3] = {{(const uint8_t *)"Run", 3}, {(const uint8_t *)&run->index, 8}, {&bump, 1}};
    SolSignerSeeds signer = {seeds, 3};
    for (int i = 0; i < N_FIELDS; i++) {
        if (!span[i]) continue;
        OwnerCall call = {calls[i], span[i], len[i], &p->ka[1], &p->ka[2], &p->ka[3],
                          calls[i] == CIX_SET_PAUSED ? &p->ka[5] : 0, &signer, &run->coordinator_program};
        if ((err = coordinator_owner_call(p, &call))) return err;
    }
    return SOL_SUCCESS;
}
