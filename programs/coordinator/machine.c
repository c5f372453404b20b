/* The phase machine: a line-by-line mirror of coordinator_sdk/model/machine.py (_tick and helpers). */
#include "coordinator.h"

bool is_halted(const CoordinatorAccount *a) {
    return a->run_state == RS_UNINITIALIZED || a->run_state == RS_FINISHED || a->run_state == RS_PAUSED;
}

void change_state(CoordinatorAccount *a, uint8_t state, uint64_t now) {
    a->run_state = state;
    a->run_state_start_unix_timestamp = now;
}

static bool timed_out(const CoordinatorAccount *a, uint64_t now, uint64_t duration) {
    uint64_t start = a->run_state_start_unix_timestamp, end;
    if (!sol_add_u64(start, duration, &end)) return false;
    return now != start && now >= end;
}

int64_t find_registered(const CoordinatorAccount *a, const SolPubkey *signer) {
    for (uint32_t i = 0; i < a->num_clients && i < MAX_CLIENTS; i++)
        if (sol_pubkey_eq(&a->clients[i].signer, signer)) return i;
    return -1;
}

int64_t find_epoch_client(const CoordinatorAccount *a, const SolPubkey *signer) {
    for (uint32_t i = 0; i < a->num_epoch_clients && i < MAX_CLIENTS; i++)
        if (sol_pubkey_eq(&a->epoch_clients[i].signer, signer)) return i;
    return -1;
}

static void withdraw_all(CoordinatorAccount *a) {
    for (uint32_t i = 0; i < a->num_epoch_clients; i++)
        if (a->epoch_clients[i].state == CS_HEALTHY) a->epoch_clients[i].state = CS_WITHDRAWN;
}

/* Non-healthy epoch clients leave the list (order kept) for the exited list. */
static void move_to_exited(CoordinatorAccount *a, uint32_t height) {
    uint32_t keep = 0;
    for (uint32_t i = 0; i < a->num_epoch_clients; i++) {
        EpochClient *c = &a->epoch_clients[i];
        if (c->state == CS_HEALTHY) {
            if (keep != i) sol_memcpy(&a->epoch_clients[keep], c, sizeof(EpochClient));
            keep++;
        } else if (a->num_exited_clients < MAX_CLIENTS) {
            c->exited_height = height;
            sol_memcpy(&a->exited_clients[a->num_exited_clients++], c, sizeof(EpochClient));
        }
    }
    if (keep < a->num_epoch_clients)
        sol_memset(&a->epoch_clients[keep], 0, (a->num_epoch_clients - keep) * sizeof(EpochClient));
    a->num_epoch_clients = keep;
}

uint64_t start_round_train(CoordinatorAccount *a, uint64_t now, uint64_t seed) {
    uint64_t data_index;
    uint32_t height;
    if (a->first_round) {
        a->rounds_head = 0;
        height = 0;
        data_index = a->epoch_start_data_index;
        if (!sol_add_u64(a->next_active, 1, &a->next_active)) return E_ARITHMETIC_OVERFLOW;
    } else {
        const Round *prev = &a->rounds[a->rounds_head];
        a->rounds_head = (a->rounds_head + 1) % NUM_ROUNDS;
        height = prev->height + 1;
        if (!sol_add_u64(prev->data_index, batch_size(a, prev->data_index), &data_index))
            return E_ARITHMETIC_OVERFLOW;
    }
    Round *r = &a->rounds[a->rounds_head];
    r->num_witnesses = 0;
    sol_memset(r->witnesses, 0, sizeof(r->witnesses));
    r->data_index = data_index;
    r->random_seed = seed;
    r->height = height;
    r->clients_len = (uint16_t)a->num_epoch_clients;
    r->posted_slots = 0;
    if (r->clients_len) shuffle_prepare(a, r->clients_len, seed);
    change_state(a, RS_ROUND_TRAIN, now);
    return SOL_SUCCESS;
}

/* Elected witnesses that posted nothing lose slashing_rate points (Psyche leaves idle witnesses unpunished).
 * Only the silent slots are inverted back to client indices. */
SOL_NOINLINE static void penalize_idle_witnesses(CoordinatorAccount *a) {
    const Round *r = &a->rounds[a->rounds_head];
    uint32_t slots = witness_slots(a->config.witness_nodes, r->clients_len);
    if (r->num_witnesses >= slots || a->slashing_rate == 0) return;
    for (uint32_t pos = 0; pos < slots; pos++) {
        if ((r->posted_slots >> pos) & 1) continue;
        uint64_t idx = shuffled_index(a, pos, r->clients_len, r->random_seed, true);
        if (idx >= a->num_epoch_clients) continue;
        int64_t reg = find_registered(a, &a->epoch_clients[idx].signer);
        if (reg < 0) continue;
        uint64_t *s = &a->clients[reg].slashed;
        if (!sol_add_u64(*s, a->slashing_rate, s)) *s = UINT64_MAX;
    }
}

SOL_NOINLINE static void end_epoch_rewards(CoordinatorAccount *a) {
    if (a->clients_at_start == 0) return;
    uint64_t share = a->earning_rate / a->clients_at_start;
    for (uint32_t i = 0; i < a->num_epoch_clients; i++) {
        if (a->epoch_clients[i].state != CS_HEALTHY) continue;
        int64_t reg = find_registered(a, &a->epoch_clients[i].signer);
        if (reg < 0) continue;
        uint64_t *e = &a->clients[reg].earned;
        if (!sol_add_u64(*e, share, e)) *e = UINT64_MAX;
    }
}

SOL_NOINLINE static uint64_t tick_waiting(CoordinatorAccount *a, uint64_t now) {
    uint32_t pending = 0;
    for (uint32_t i = 0; i < a->num_clients; i++)
        if (a->clients[i].active == a->next_active) pending++;
    if (pending < a->config.init_min_clients || !timed_out(a, now, a->config.waiting_for_members_extra_time))
        return SOL_SUCCESS;
    uint8_t cold = a->cold_start_epoch;
    sol_memset(a->rounds, 0, sizeof(a->rounds));
    sol_memset(a->epoch_clients, 0, sizeof(a->epoch_clients));
    sol_memset(a->exited_clients, 0, sizeof(a->exited_clients));
    a->num_epoch_clients = a->num_exited_clients = 0;
    a->rounds_head = a->last_step = 0;
    for (uint32_t i = 0; i < a->num_clients && a->num_epoch_clients < MAX_CLIENTS; i++) {
        if (a->clients[i].active != a->next_active) continue;
        EpochClient *c = &a->epoch_clients[a->num_epoch_clients++];
        c->signer = a->clients[i].signer;
        c->p2p = a->clients[i].p2p;
    }
    a->start_step = a->step;
    a->start_timestamp = now;
    a->first_round = 1;
    a->cold_start_epoch = cold;
    a->clients_at_start = a->num_epoch_clients;
    a->earning_rate = a->future_earning_rate;
    a->slashing_rate = a->future_slashing_rate;
    change_state(a, RS_WARMUP, now);
    return SOL_SUCCESS;
}

SOL_NOINLINE static uint64_t tick_round_witness(CoordinatorAccount *a, uint64_t now, uint64_t seed) {
    if (!timed_out(a, now, a->config.round_witness_time)) return SOL_SUCCESS;
    const Round *r = &a->rounds[a->rounds_head];
    penalize_idle_witnesses(a);
    a->first_round = 0;
    a->step += 1;
    move_to_exited(a, r->height);
    uint32_t n = r->num_witnesses;
    if (n == 0) {
        withdraw_all(a);
        change_state(a, RS_COOLDOWN, now);
        return SOL_SUCCESS;
    }
    if (a->last_step == 0 && now != a->start_timestamp && now >= a->start_timestamp + a->config.epoch_time)
        a->last_step = a->step + 2;
    if ((a->last_step && a->step >= a->last_step) || a->num_epoch_clients < a->config.min_clients ||
        n < witness_quorum(n, a->config.witness_nodes) || a->step >= a->config.total_steps || a->pending_pause) {
        change_state(a, RS_COOLDOWN, now);
        return SOL_SUCCESS;
    }
    return start_round_train(a, now, seed);
}

SOL_NOINLINE static uint64_t tick_cooldown(CoordinatorAccount *a, uint64_t now) {
    if (!timed_out(a, now, a->config.cooldown_time)) return SOL_SUCCESS;
    const Round *r = &a->rounds[a->rounds_head];
    if (!sol_add_u64(r->data_index, batch_size(a, r->data_index), &a->epoch_start_data_index))
        return E_ARITHMETIC_OVERFLOW;
    a->epoch += 1;
    end_epoch_rewards(a);
    SolBytes event[4] = {{(const uint8_t *)"epoch_end", 9}, {(const uint8_t *)&a->epoch, 4},
                         {(const uint8_t *)&a->step, 4}, {(const uint8_t *)&a->clients_at_start, 4}};
    sol_log_data(event, 4);
    move_to_exited(a, r->height);
    if (a->pending_pause) {
        withdraw_all(a);
        a->pending_pause = 0;
        change_state(a, RS_PAUSED, now);
        a->cold_start_epoch = 1;
    } else {
        change_state(a, a->step >= a->config.total_steps ? RS_FINISHED : RS_WAITING_FOR_MEMBERS, now);
        a->cold_start_epoch = 0;
    }
    return SOL_SUCCESS;
}

uint64_t tick(CoordinatorAccount *a, uint64_t now, uint64_t seed) {
    switch (a->run_state) {
        case RS_WAITING_FOR_MEMBERS: return tick_waiting(a, now);
        case RS_WARMUP: {
            uint64_t err = SOL_SUCCESS;
            if (timed_out(a, now, a->config.warmup_time)) err = start_round_train(a, now, seed);
            else move_to_exited(a, 0);
            if (err) return err;
            if (a->num_epoch_clients < a->config.min_clients)
                change_state(a, a->step >= a->config.total_steps ? RS_FINISHED : RS_WAITING_FOR_MEMBERS, now);
            return SOL_SUCCESS;
        }
        case RS_ROUND_TRAIN:
            if (timed_out(a, now, a->config.max_round_train_time)) change_state(a, RS_ROUND_WITNESS, now);
            return SOL_SUCCESS;
        case RS_ROUND_WITNESS: return tick_round_witness(a, now, seed);
        case RS_COOLDOWN: return tick_cooldown(a, now);
        default: return E_HALTED;
    }
}
