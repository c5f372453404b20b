/* Entrypoint: deserialize, dispatch on the 8-byte Anchor instruction discriminator, and log state changes. */
#include "args.h"

uint64_t ix_init_run(const SolParameters *p, Args *args);
uint64_t ix_update_config(const SolParameters *p, Args *args);
uint64_t ix_set_future_epoch_rates(const SolParameters *p, Args *args);
uint64_t ix_set_paused(const SolParameters *p, Args *args);
uint64_t ix_authorize(const SolParameters *p, Args *args);
uint64_t ix_revoke(const SolParameters *p, Args *args);
uint64_t ix_close_run(const SolParameters *p, Args *args);
uint64_t ix_join_run(const SolParameters *p, Args *args);
uint64_t ix_withdraw(const SolParameters *p, Args *args);
uint64_t ix_tick(const SolParameters *p, Args *args);
uint64_t ix_warmup_witness(const SolParameters *p, Args *args);
uint64_t ix_witness(const SolParameters *p, Args *args);
uint64_t ix_health_check(const SolParameters *p, Args *args);
uint64_t ix_checkpoint(const SolParameters *p, Args *args);
uint64_t ix_update_metadata(const SolParameters *p, Args *args);
uint64_t ix_update_model(const SolParameters *p, Args *args);
uint64_t ix_update_progress(const SolParameters *p, Args *args);
uint64_t ix_set_checkpoint(const SolParameters *p, Args *args);
uint64_t ix_verdict(const SolParameters *p, Args *args);

/* After any instruction that can move the phase machine: emit ("state", run_state, step, epoch) when the
 * state changed, so indexers can follow a run from logs alone. */
static void log_state_change(const SolParameters *p, uint8_t before) {
    if (p->ka_num < 3 || p->ka[2].data_len != sizeof(CoordinatorAccount)) return;
    const CoordinatorAccount *a = (const CoordinatorAccount *)p->ka[2].data;
    if (a->discriminator != DISC_COORDINATOR_ACCOUNT || a->run_state == before) return;
    SolBytes event[4] = {{(const uint8_t *)"state", 5}, {&a->run_state, 1}, {(const uint8_t *)&a->step, 4},
                         {(const uint8_t *)&a->epoch, 4}};
    sol_log_data(event, 4);
}

uint64_t entrypoint(const uint8_t *input) {
    SolParameters p = {.ka = (SolAccountInfo *)(SOL_HEAP_START + HEAP_ACCOUNTS)};
    if (!sol_deserialize(input, &p)) return SOL_ERR_INVALID_ARGUMENT;
    if (p.data_len < 8) return E_INVALID_INSTRUCTION;
    Args args = {p.data + 8, p.data_len - 8, 0, false};
    uint8_t before = 0xff;
    if (p.ka_num >= 3 && p.ka[2].data_len == sizeof(CoordinatorAccount))
        before = ((const CoordinatorAccount *)p.ka[2].data)->run_state;
    uint64_t err;
    switch (sol_read_u64(p.data)) {
        case IX_INIT_RUN: err = ix_init_run(&p, &args); break;
        case IX_UPDATE_CONFIG: err = ix_update_config(&p, &args); break;
        case IX_SET_FUTURE_EPOCH_RATES: err = ix_set_future_epoch_rates(&p, &args); break;
        case IX_SET_PAUSED: err = ix_set_paused(&p, &args); break;
        case IX_AUTHORIZE: err = ix_authorize(&p, &args); break;
        case IX_REVOKE: err = ix_revoke(&p, &args); break;
        case IX_CLOSE_RUN: err = ix_close_run(&p, &args); break;
        case IX_JOIN_RUN: err = ix_join_run(&p, &args); break;
        case IX_WITHDRAW: err = ix_withdraw(&p, &args); break;
        case IX_TICK: err = ix_tick(&p, &args); break;
        case IX_WARMUP_WITNESS: err = ix_warmup_witness(&p, &args); break;
        case IX_WITNESS: err = ix_witness(&p, &args); break;
        case IX_HEALTH_CHECK: err = ix_health_check(&p, &args); break;
        case IX_CHECKPOINT: err = ix_checkpoint(&p, &args); break;
        case IX_UPDATE_METADATA: err = ix_update_metadata(&p, &args); break;
        case IX_UPDATE_MODEL: err = ix_update_model(&p, &args); break;
        case IX_UPDATE_PROGRESS: err = ix_update_progress(&p, &args); break;
        case IX_SET_CHECKPOINT: err = ix_set_checkpoint(&p, &args); break;
        case IX_VERDICT: err = ix_verdict(&p, &args); break;
        default: return E_INVALID_INSTRUCTION;
    }
    if (err == SOL_SUCCESS && before != 0xff) log_state_change(&p, before);
    return err;
}
