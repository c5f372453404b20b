/* Instructions of the run owner (main authority) and the join authority. */
#include "args.h"

static const uint8_t SEED_AUTHORIZATION[] = {'a', 'u', 't', 'h', 'o', 'r', 'i', 'z', 'a', 't', 'i', 'o', 'n'};

/* init_run(run_id: string, main_authority: pubkey, join_authority: pubkey)
 * accounts: payer (signer, w), instance PDA (w), coordinator account (signer, w, program-owned, zeroed),
 * system. The account must sign: otherwise anyone could initialise (and later close, taking its rent) an
 * account someone else prepared in an earlier transaction. */
uint64_t ix_init_run(const SolParameters *p, Args *args) {
    uint64_t err = require_signer(p, 0);
    if (err) return err;
    if (p->ka_num < 4) return E_NOT_ENOUGH_ACCOUNTS;
    uint64_t id_len = 0;
    bool too_long = false;
    const uint8_t *run_id = args_string(args, RUN_ID_MAX, &id_len, &too_long);
    if (too_long) return E_RUN_ID_INVALID_LENGTH;
    const uint8_t *main_auth = args_take(args, 32), *join_auth = args_take(args, 32);
    if (!args_done(args)) return E_INVALID_INSTRUCTION;
    if (id_len == 0) return E_RUN_ID_INVALID_LENGTH;
    SolAccountInfo *payer = &p->ka[0], *inst = &p->ka[1], *acc = &p->ka[2];
    if (!acc->is_signer) return E_MISSING_SIGNER;
    if (!payer->is_writable || !inst->is_writable || !acc->is_writable) return E_NOT_WRITABLE;
    if (!sol_pubkey_eq(acc->owner, p->program_id)) return E_WRONG_OWNER;
    if (acc->data_len != sizeof(CoordinatorAccount)) return E_WRONG_ACCOUNT_SIZE;
    CoordinatorAccount *ca = (CoordinatorAccount *)acc->data;
    if (ca->discriminator != 0) return E_ALREADY_INITIALIZED;
    const uint64_t chunk = SOL_HEAP_SIZE - HEAP_ZEROES; /* the untouched top of the heap: zeroes */
    for (uint64_t off = 0; off < sizeof(CoordinatorAccount); off += chunk) {
        uint64_t n = sizeof(CoordinatorAccount) - off < chunk ? sizeof(CoordinatorAccount) - off : chunk;
        if (!sol_memeq(acc->data + off, SOL_HEAP_START + SOL_HEAP_SIZE - n, n)) return E_ACCOUNT_NOT_ZEROED;
    }
    SolPubkey expected;
    uint8_t bump;
    if (find_instance_address(run_id, id_len, p->program_id, &expected, &bump)) return E_INVALID_PDA;
    if (!sol_pubkey_eq(&expected, inst->key)) return E_INVALID_PDA;
    SolSignerSeed seeds[3] = {{(const uint8_t *)"coordinator", 11}, {run_id, id_len}, {&bump, 1}};
    PdaCreate req = {payer, inst, &p->ka[3], sizeof(RunInstance), seeds, 3};
    err = create_pda(p, &req);
    if (err) return err;
    RunInstance *ri = (RunInstance *)inst->data;
    ri->discriminator = DISC_RUN_INSTANCE;
    ri->bump = bump;
    ri->run_id_len = (uint8_t)id_len;
    sol_memcpy(ri->main_authority.x, main_auth, 32);
    sol_memcpy(ri->join_authority.x, join_auth, 32);
    ri->coordinator_account = *acc->key;
    sol_memcpy(ri->run_id, run_id, id_len);
    ca->discriminator = DISC_COORDINATOR_ACCOUNT;
    ca->version = ACCOUNT_VERSION;
    ca->instance = *inst->key;
    sol_memcpy(ca->run_id, run_id, id_len);
    ca->run_id_len = (uint8_t)id_len;
    ca->step = 1;
    ca->next_active = 1;
    ca->run_state = RS_UNINITIALIZED;
    return SOL_SUCCESS;
}

/* Accounts of owner instructions: authority (signer), instance, coordinator account (w). */
static uint64_t load_owner(const SolParameters *p, Ctx *ctx) {
    uint64_t err = require_signer(p, 0);
    if (err) return err;
    err = load_run(p, 1, 2, true, ctx);
    if (err) return err;
    return sol_pubkey_eq(p->ka[0].key, &ctx->inst->main_authority) ? SOL_SUCCESS : E_UNAUTHORIZED;
}

/* Shared preamble of the "only while halted" updates: owner accounts, exactly one fixed-size argument,
 * a run that is not finished and is paused or not started. */
static uint64_t load_halted_update(const SolParameters *p, Args *args, uint64_t size, Ctx *ctx,
                                   const uint8_t **raw) {
    uint64_t err = load_owner(p, ctx);
    if (err) return err;
    *raw = args_take(args, size);
    if (!args_done(args)) return E_INVALID_INSTRUCTION;
    if (ctx->acc->run_state == RS_FINISHED) return E_RUN_FINISHED;
    return is_halted(ctx->acc) ? SOL_SUCCESS : E_NOT_HALTED;
}

uint64_t ix_update_config(const SolParameters *p, Args *args) {
    Ctx ctx;
    const uint8_t *raw;
    uint64_t err = load_halted_update(p, args, sizeof(Config), &ctx, &raw);
    if (err) return err;
    Config cfg;
    sol_memcpy(&cfg, raw, sizeof(Config));
    sol_memset(cfg._pad, 0, sizeof(cfg._pad));
    err = config_check(&cfg);
    if (err) return err;
    ctx.acc->config = cfg;
    return bump_nonce(ctx.acc);
}

uint64_t ix_set_future_epoch_rates(const SolParameters *p, Args *args) {
    Ctx ctx;
    uint64_t err = load_owner(p, &ctx);
    if (err) return err;
    uint64_t earning = args_u64(args), slashing = args_u64(args);
    if (!args_done(args)) return E_INVALID_INSTRUCTION;
    ctx.acc->future_earning_rate = earning;
    ctx.acc->future_slashing_rate = slashing;
    return bump_nonce(ctx.acc);
}

/* set_paused(paused: bool); accounts: authority, instance, account, SlotHashes */
uint64_t ix_set_paused(const SolParameters *p, Args *args) {
    Ctx ctx;
    uint64_t err = load_owner(p, &ctx);
    if (err) return err;
    if ((err = check_slot_hashes(p, 3))) return err;
    uint8_t paused = args_u8(args);
    if (!args_done(args) || paused > 1) return E_INVALID_INSTRUCTION;
    CoordinatorAccount *a = ctx.acc;
    if (paused) {
        if (a->run_state == RS_ROUND_TRAIN || a->run_state == RS_ROUND_WITNESS || a->run_state == RS_COOLDOWN) {
            a->pending_pause = 1;
        } else if (a->run_state == RS_WAITING_FOR_MEMBERS || a->run_state == RS_WARMUP) {
            for (uint32_t i = 0; i < a->num_epoch_clients; i++)
                if (a->epoch_clients[i].state == CS_HEALTHY) a->epoch_clients[i].state = CS_WITHDRAWN;
            change_state(a, RS_PAUSED, ctx.now);
            a->cold_start_epoch = 1;
        } else {
            return E_WRONG_STATE;
        }
        return bump_nonce(a);
    }
    if (a->run_state == RS_UNINITIALIZED) {
        if ((err = config_check(&a->config))) return err;
        if (a->step == 0) a->step = 1;
        change_state(a, RS_PAUSED, ctx.now);
    }
    if (a->run_state != RS_PAUSED) return E_NOT_PAUSED;
    change_state(a, a->step >= a->config.total_steps ? RS_FINISHED : RS_WAITING_FOR_MEMBERS, ctx.now);
    if (!sol_add_u64(a->next_active, 1, &a->next_active)) return E_ARITHMETIC_OVERFLOW;
    Chain ch = {ctx.now, ctx.slot, &p->ka[3]};
    if (!is_halted(a) && (err = tick(a, &ch))) return err;
    return bump_nonce(a);
}

/* authorize(grantee) / revoke(grantee): accounts: join authority (signer, w), instance, authorization (w),
 * [system program for authorize]. grantee all-zero = anyone may join. The PDA is ["authorization", instance,
 * the run's coordinator account, grantee]: grants of a closed run do not apply to a later one. */
static uint64_t load_join_authority(const SolParameters *p, Ctx *ctx, SolPubkey *expected, uint8_t *bump,
                                    const uint8_t *grantee) {
    uint64_t err = require_signer(p, 0);
    if (err) return err;
    if (p->ka_num < 3) return E_NOT_ENOUGH_ACCOUNTS;
    SolAccountInfo *inst = &p->ka[1];
    if (!sol_pubkey_eq(inst->owner, p->program_id)) return E_WRONG_OWNER;
    if (inst->data_len != sizeof(RunInstance)) return E_WRONG_ACCOUNT_SIZE;
    ctx->inst = (RunInstance *)inst->data;
    if (ctx->inst->discriminator != DISC_RUN_INSTANCE) return E_WRONG_DISCRIMINATOR;
    if (!sol_pubkey_eq(p->ka[0].key, &ctx->inst->join_authority)) return E_UNAUTHORIZED;
    if (!p->ka[0].is_writable || !p->ka[2].is_writable) return E_NOT_WRITABLE;
    SolSignerSeed seeds[4] = {{SEED_AUTHORIZATION, sizeof(SEED_AUTHORIZATION)}, {inst->key->x, 32},
                              {ctx->inst->coordinator_account.x, 32}, {grantee, 32}};
    if (sol_find_pda(seeds, 4, p->program_id, expected, bump)) return E_INVALID_PDA;
    return sol_pubkey_eq(expected, p->ka[2].key) ? SOL_SUCCESS : E_INVALID_PDA;
}

uint64_t ix_authorize(const SolParameters *p, Args *args) {
    const uint8_t *grantee = args_take(args, 32);
    if (!args_done(args)) return E_INVALID_INSTRUCTION;
    Ctx ctx;
    SolPubkey expected;
    uint8_t bump;
    uint64_t err = load_join_authority(p, &ctx, &expected, &bump, grantee);
    if (err) return err;
    if (p->ka_num < 4) return E_NOT_ENOUGH_ACCOUNTS;
    SolSignerSeed seeds[5] = {{SEED_AUTHORIZATION, sizeof(SEED_AUTHORIZATION)}, {p->ka[1].key->x, 32},
                              {ctx.inst->coordinator_account.x, 32}, {grantee, 32}, {&bump, 1}};
    PdaCreate req = {&p->ka[0], &p->ka[2], &p->ka[3], sizeof(Authorization), seeds, 5};
    if ((err = create_pda(p, &req))) return err;
    Authorization *au = (Authorization *)p->ka[2].data;
    au->discriminator = DISC_AUTHORIZATION;
    au->instance = *p->ka[1].key;
    sol_memcpy(au->grantee.x, grantee, 32);
    au->bump = bump;
    return SOL_SUCCESS;
}

uint64_t ix_revoke(const SolParameters *p, Args *args) {
    const uint8_t *grantee = args_take(args, 32);
    if (!args_done(args)) return E_INVALID_INSTRUCTION;
    Ctx ctx;
    SolPubkey expected;
    uint8_t bump;
    uint64_t err = load_join_authority(p, &ctx, &expected, &bump, grantee);
    if (err) return err;
    SolAccountInfo *au = &p->ka[2];
    if (!sol_pubkey_eq(au->owner, p->program_id)) return E_WRONG_OWNER;
    if (au->data_len != sizeof(Authorization)) return E_WRONG_ACCOUNT_SIZE;
    if (((Authorization *)au->data)->discriminator != DISC_AUTHORIZATION) return E_WRONG_DISCRIMINATOR;
    uint64_t total;
    if (!sol_add_u64(*p->ka[0].lamports, *au->lamports, &total)) return E_ARITHMETIC_OVERFLOW;
    *p->ka[0].lamports = total;
    *au->lamports = 0;
    sol_memset(au->data, 0, au->data_len);
    return SOL_SUCCESS;
}

/* close_run: only while halted; returns both accounts' lamports to the authority and wipes them.
 * accounts: authority (signer, w), instance (w), coordinator account (w) */
uint64_t ix_close_run(const SolParameters *p, Args *args) {
    if (!args_done(args)) return E_INVALID_INSTRUCTION;
    Ctx ctx;
    uint64_t err = load_owner(p, &ctx);
    if (err) return err;
    if (!is_halted(ctx.acc)) return E_NOT_HALTED;
    if (!p->ka[0].is_writable || !p->ka[1].is_writable) return E_NOT_WRITABLE;
    uint64_t total = *p->ka[0].lamports;
    for (int i = 1; i <= 2; i++) {
        if (!sol_add_u64(total, *p->ka[i].lamports, &total)) return E_ARITHMETIC_OVERFLOW;
        *p->ka[i].lamports = 0;
        sol_memset(p->ka[i].data, 0, p->ka[i].data_len);
    }
    *p->ka[0].lamports = total;
    return SOL_SUCCESS;
}

/* update_metadata(name: string<=64, description: string<=280, num_parameters u64, vocab_size u64) */
uint64_t ix_update_metadata(const SolParameters *p, Args *args) {
    Ctx ctx;
    uint64_t err = load_owner(p, &ctx);
    if (err) return err;
    uint64_t name_len = 0, desc_len = 0;
    bool too_long = false;
    const uint8_t *name = args_string(args, 64, &name_len, &too_long);
    const uint8_t *desc = too_long ? 0 : args_string(args, 280, &desc_len, &too_long);
    if (too_long) return E_STRING_TOO_LONG;
    uint64_t num_parameters = args_u64(args), vocab_size = args_u64(args);
    if (!args_done(args)) return E_INVALID_INSTRUCTION;
    if (ctx.acc->run_state == RS_FINISHED) return E_RUN_FINISHED;
    RunMetadata *m = &ctx.acc->metadata;
    sol_memset(m, 0, sizeof(RunMetadata));
    sol_memcpy(m->name, name, name_len);
    sol_memcpy(m->description, desc, desc_len);
    m->name_len = (uint8_t)name_len;
    m->description_len = (uint16_t)desc_len;
    m->num_parameters = num_parameters;
    m->vocab_size = vocab_size;
    return bump_nonce(ctx.acc);
}

/* A learning rate must be a finite, non-negative f32: sign bit clear, exponent not all ones. */
static bool lr_ok(uint32_t bits) { return !(bits >> 31) && ((bits >> 23) & 0xff) != 0xff; }

/* update_model(model: ModelDescription): only while halted; the Model::check rules of psyche-facts §2.1. */
uint64_t ix_update_model(const SolParameters *p, Args *args) {
    Ctx ctx;
    const uint8_t *raw;
    uint64_t err = load_halted_update(p, args, sizeof(ModelDescription), &ctx, &raw);
    if (err) return err;
    ModelDescription m;
    sol_memcpy(&m, raw, sizeof(m));
    const Config *c = &ctx.acc->config;
    uint64_t cold_limit = c->max_round_train_time ? (c->epoch_time - c->warmup_time) / c->max_round_train_time : 0;
    bool ok = m.architecture < ARCH_COUNT && m.data_type <= 1 && (m.optimizer == OPT_ADAMW || m.optimizer == OPT_DISTRO) &&
              m.lr_schedule < LR_COUNT && m.data_location_len > 0 && m.data_location_len <= sizeof(m.data_location) &&
              lr_ok(m.lr_base) && lr_ok(m.lr_warmup_init) && lr_ok(m.lr_final) && lr_ok(m.distro_decay) &&
              m.distro_quantize_1bit <= 1 && m.distro_selection < SEL_COUNT &&
              m.distro_pipeline < PIPE_COUNT && m.cold_start_warmup_steps <= cold_limit &&
              (m.optimizer != OPT_DISTRO || (m.distro_chunk > 0 && m.distro_topk > 0));
    if (!ok) return E_INVALID_MODEL;
    sol_memset(m.data_location + m.data_location_len, 0, sizeof(m.data_location) - m.data_location_len);
    ctx.acc->model = m;
    return bump_nonce(ctx.acc);
}

/* update_progress(step: u32): where training resumes; only while halted, step > 0. */
uint64_t ix_update_progress(const SolParameters *p, Args *args) {
    Ctx ctx;
    const uint8_t *raw;
    uint64_t err = load_halted_update(p, args, 4, &ctx, &raw);
    if (err) return err;
    uint32_t step = sol_read_u32(raw);
    if (step == 0) return E_INVALID_PROGRESS;
    ctx.acc->step = step;
    return bump_nonce(ctx.acc);
}

/* set_checkpoint(reference: string<=127): the weights a run starts (or restarts) from, named by its owner;
 * only while halted. Later checkpoints are voted by the run's own clients at cooldown (`checkpoint`). */
uint64_t ix_set_checkpoint(const SolParameters *p, Args *args) {
    Ctx ctx;
    uint64_t err = load_owner(p, &ctx);
    if (err) return err;
    const uint8_t *ref;
    uint64_t len;
    if ((err = args_checkpoint(args, &ref, &len))) return err;
    CoordinatorAccount *a = ctx.acc;
    if (a->run_state == RS_FINISHED) return E_RUN_FINISHED;
    if (!is_halted(a)) return E_NOT_HALTED;
    store_checkpoint(a, ref, len);
    return bump_nonce(a);
}
