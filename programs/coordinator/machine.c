/* The phase machine: a line-by-line mirror of coordinator_sdk/model/machine.py (_tick and helpers). */
#include "coordinator.h"

bool is_halted(const CoordinatorAccount *a) {
    return a->run_state == RS_UNINITIALIZED || a->run_state == RS_FINISHED || a->run_state == RS_PAUSED;
}

void change_state(CoordinatorAccount *a, uint8_t state, uint64_t now) {
    a->run_state = state;
    a->run_state_start_unix_timestamp = now;
}

/* now >= start + duration without wrapping (a duration near u64::MAX never ends), and never at start itself. */
static bool reached(uint64_t now, uint64_t start, uint64_t duration) {
    uint64_t end;
    return sol_add_u64(start, duration, &end) && now != start && now >= end;
}

static bool timed_out(const CoordinatorAccount *a, uint64_t now, uint64_t duration) {
    return reached(now, a->run_state_start_unix_timestamp, duration);
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

/* The registry entry of an epoch client, or 0 when its slot now belongs to someone else (an evicted client). */
const RegisteredClient *registry_entry(const CoordinatorAccount *a, const EpochClient *c) {
    if (c->registry_index >= a->num_clients || c->registry_index >= MAX_CLIENTS) return 0;
    const RegisteredClient *r = &a->clients[c->registry_index];
    return sol_pubkey_eq(&r->signer, &c->signer) ? r : 0;
}

/* Non-healthy epoch clients leave the list (order kept) for the exited list. In Warmup the warmup witnesses
 * are epoch indices: they follow their client to its new index, and those of clients that left are dropped,
 * so a withdrawal can neither give one client a second vote nor refuse an honest one as a duplicate. */
static void move_to_exited(CoordinatorAccount *a, uint32_t height) {
    uint16_t *remap = (uint16_t *)(SOL_HEAP_START + HEAP_SCRATCH_U16);
    uint32_t keep = 0;
    for (uint32_t i = 0; i < a->num_epoch_clients; i++) {
        EpochClient *c = &a->epoch_clients[i];
        if (c->state == CS_HEALTHY) {
            remap[i] = (uint16_t)keep;
            if (keep != i) sol_memcpy(&a->epoch_clients[keep], c, sizeof(EpochClient));
            keep++;
        } else {
            remap[i] = 0xffff;
            if (a->num_exited_clients < MAX_CLIENTS) {
                c->exited_height = height;
                sol_memcpy(&a->exited_clients[a->num_exited_clients++], c, sizeof(EpochClient));
            }
        }
    }
    if (keep == a->num_epoch_clients) return;
    sol_memset(&a->epoch_clients[keep], 0, (a->num_epoch_clients - keep) * sizeof(EpochClient));
    uint32_t before = a->num_epoch_clients;
    a->num_epoch_clients = keep;
    if (a->run_state != RS_WARMUP) return;
    Round *r = &a->rounds[a->rounds_head];
    uint32_t kept = 0;
    for (uint32_t w = 0; w < r->num_witnesses && w < MAX_WITNESSES; w++) {
        uint16_t old = r->witnesses[w].client_index;
        if (old >= before || remap[old] == 0xffff) continue;
        r->witnesses[kept++].client_index = remap[old];
    }
    for (uint32_t w = kept; w < r->num_witnesses && w < MAX_WITNESSES; w++) r->witnesses[w].client_index = 0;
    r->num_witnesses = (uint16_t)kept;
}

uint64_t start_round_train(CoordinatorAccount *a, const Chain *ch) {
    uint64_t data_index;
    uint32_t height;
    uint64_t seed = round_seed(a, ch);
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
    clear_tallies(a, a->rounds_head); /* the slot's verdicts were of height - 4, no longer kept */
    elect_witnesses(a, r->clients_len, seed);
    set_seed_slot(a, ch->slot); /* the round after this one: the hash of this slot, unknown to all yet */
    change_state(a, RS_ROUND_TRAIN, ch->now);
    return SOL_SUCCESS;
}

/* Elected witnesses, still healthy, that posted nothing lose slashing_rate points (Psyche leaves idle
 * witnesses unpunished). The elected list is stored: a scan of at most 32 slots, O(1) registry lookups. */
SOL_NOINLINE static void penalize_idle_witnesses(CoordinatorAccount *a) {
    const Round *r = &a->rounds[a->rounds_head];
    uint32_t slots = witness_slots(a->config.witness_nodes, r->clients_len);
    if (r->num_witnesses >= slots || a->slashing_rate == 0) return;
    for (uint32_t pos = 0; pos < slots && pos < a->elected_count; pos++) {
        if ((r->posted_slots >> pos) & 1) continue;
        uint32_t idx = a->elected[pos];
        /* one that withdrew or was dropped may not post any more: it is not penalised for silence */
        if (idx >= a->num_epoch_clients || a->epoch_clients[idx].state != CS_HEALTHY) continue;
        RegisteredClient *reg = (RegisteredClient *)registry_entry(a, &a->epoch_clients[idx]);
        if (!reg) continue;
        if (!sol_add_u64(reg->slashed, a->slashing_rate, &reg->slashed)) reg->slashed = UINT64_MAX;
    }
}

/* RoundTrain may end before its timeout once at least one witness posted and every elected witness of the round
 * either posted or can no longer post (it withdrew or was dropped: witness takes a healthy client; an index
 * past the epoch's list counts as gone), so a client that left does not cost everyone the round's timeout.
 * A scan of the stored elected list (at most 32 slots) and posted_slots; the tick checks it, so witness,
 * withdraw and health_check, which tick after they change a witness or a client, move the run at once. */
static bool round_witnessed(const CoordinatorAccount *a) {
    const Round *r = &a->rounds[a->rounds_head];
    if (r->num_witnesses == 0) return false;
    uint32_t slots = witness_slots(a->config.witness_nodes, r->clients_len);
    for (uint32_t pos = 0; pos < slots && pos < a->elected_count; pos++) {
        if ((r->posted_slots >> pos) & 1) continue;
        uint32_t idx = a->elected[pos];
        if (idx < a->num_epoch_clients && a->epoch_clients[idx].state == CS_HEALTHY) return false;
    }
    return true;
}

/* Every round counts, the epoch's first and last included: when a round's witnessing ends, each healthy client
 * of the round that a quorum of the round's elected witnesses (posted or not) left out of their participant
 * bits is Dropped (so not paid for the epoch), before compaction moves the indices the bits are keyed by.
 * Event ("absent", height u32, mask[32]): bit i, epoch client i of that round, when any was dropped. */
SOL_NOINLINE static void drop_absent(CoordinatorAccount *a) {
    const Round *r = &a->rounds[a->rounds_head];
    uint64_t mask[PARTICIPANT_BYTES / 8];
    uint32_t quorum = witness_quorum(witness_slots(a->config.witness_nodes, r->clients_len), a->config.witness_nodes);
    if (absent_mask(r, quorum, mask) == 0) return;
    uint32_t dropped = 0;
    for (uint32_t w = 0; w < PARTICIPANT_BYTES / 8; w++)
        for (uint32_t b = 0; b < 64 && (mask[w] >> b); b++) { /* no ctz on SBF: stop past the top bit */
            uint32_t i = 64 * w + b;
            if (!((mask[w] >> b) & 1)) continue;
            if (i >= a->num_epoch_clients || a->epoch_clients[i].state != CS_HEALTHY) {
                mask[w] &= ~(1ULL << b); /* withdrew or already dropped: not this round's drop */
                continue;
            }
            a->epoch_clients[i].state = CS_DROPPED;
            dropped++;
        }
    if (dropped == 0) return;
    SolBytes event[3] = {{(const uint8_t *)"absent", 6}, {(const uint8_t *)&r->height, 4},
                         {(const uint8_t *)mask, PARTICIPANT_BYTES}};
    sol_log_data(event, 3);
}

SOL_NOINLINE static void end_epoch_rewards(CoordinatorAccount *a) {
    if (a->clients_at_start == 0) return;
    uint64_t share = a->earning_rate / a->clients_at_start;
    for (uint32_t i = 0; i < a->num_epoch_clients; i++) {
        if (a->epoch_clients[i].state != CS_HEALTHY) continue;
        RegisteredClient *reg = (RegisteredClient *)registry_entry(a, &a->epoch_clients[i]);
        if (!reg) continue;
        if (!sol_add_u64(reg->earned, share, &reg->earned)) reg->earned = UINT64_MAX;
    }
}

SOL_NOINLINE static uint64_t tick_waiting(CoordinatorAccount *a, const Chain *ch) {
    uint64_t now = ch->now;
    uint32_t pending = 0;
    for (uint32_t i = 0; i < a->num_clients; i++)
        if (a->clients[i].active == a->next_active) pending++;
    if (pending < a->config.init_min_clients || !timed_out(a, now, a->config.waiting_for_members_extra_time))
        return SOL_SUCCESS;
    uint8_t cold = a->cold_start_epoch;
    sol_memset(a->rounds, 0, sizeof(a->rounds));
    sol_memset(a->epoch_clients, 0, sizeof(a->epoch_clients));
    sol_memset(a->exited_clients, 0, sizeof(a->exited_clients));
    sol_memset(a->checkpoint_votes, 0, sizeof(a->checkpoint_votes)); /* no vote of an older epoch counts */
    a->num_epoch_clients = a->num_exited_clients = 0;
    a->rounds_head = a->last_step = 0;
    for (uint32_t i = 0; i < a->num_clients && a->num_epoch_clients < MAX_CLIENTS; i++) {
        if (a->clients[i].active != a->next_active) continue;
        EpochClient *c = &a->epoch_clients[a->num_epoch_clients++];
        copy_key(&c->signer, &a->clients[i].signer);
        copy_key(&c->p2p, &a->clients[i].p2p);
        c->registry_index = (uint16_t)i;
    }
    a->start_step = a->step;
    a->start_timestamp = now;
    a->first_round = 1;
    a->cold_start_epoch = cold;
    a->clients_at_start = a->num_epoch_clients;
    a->earning_rate = a->future_earning_rate;
    a->slashing_rate = a->future_slashing_rate;
    set_seed_slot(a, ch->slot); /* round 0's seed: the hash of this slot, unknown to whoever sent this */
    change_state(a, RS_WARMUP, now);
    return SOL_SUCCESS;
}

SOL_NOINLINE static uint64_t tick_round_witness(CoordinatorAccount *a, const Chain *ch) {
    uint64_t now = ch->now;
    if (!timed_out(a, now, a->config.round_witness_time) || !seed_ready(a, ch)) return SOL_SUCCESS;
    const Round *r = &a->rounds[a->rounds_head];
    penalize_idle_witnesses(a);
    drop_absent(a);
    a->first_round = 0;
    a->step += 1;
    move_to_exited(a, r->height);
    uint32_t n = r->num_witnesses;
    if (n == 0) {
        withdraw_all(a);
        change_state(a, RS_COOLDOWN, now);
        return SOL_SUCCESS;
    }
    /* two more steps, saturating: past u32::MAX - 2 the run ends by total_steps (a u32) first; a refusal here
     * would stall the run for good, since every way out of RoundWitness is this tick */
    if (a->last_step == 0 && reached(now, a->start_timestamp, a->config.epoch_time))
        a->last_step = a->step <= UINT32_MAX - 2 ? a->step + 2 : UINT32_MAX;
    if ((a->last_step && a->step >= a->last_step) || a->num_epoch_clients < a->config.min_clients ||
        n < witness_quorum(n, a->config.witness_nodes) || a->step >= a->config.total_steps || a->pending_pause) {
        change_state(a, RS_COOLDOWN, now);
        return SOL_SUCCESS;
    }
    return start_round_train(a, ch);
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

uint64_t tick(CoordinatorAccount *a, const Chain *ch) {
    uint64_t now = ch->now;
    /* while the entry of seed_slot is in SlotHashes, whoever comes first (only a phase a round follows) */
    if (a->run_state == RS_WARMUP || a->run_state == RS_ROUND_TRAIN || a->run_state == RS_ROUND_WITNESS)
        capture_seed(a, ch);
    switch (a->run_state) {
        case RS_WAITING_FOR_MEMBERS: return tick_waiting(a, ch);
        case RS_WARMUP: {
            /* leavers go first (their warmup votes with them); round 0 starts when the warmup timed out or
             * every witness slot voted, in a slot after the one that began the warmup: its seed is that
             * slot's hash, whoever votes last and whenever the tick lands. */
            move_to_exited(a, 0);
            uint32_t slots = witness_slots(a->config.witness_nodes, a->num_epoch_clients);
            bool voted = slots > 0 && a->rounds[a->rounds_head].num_witnesses >= slots;
            if ((timed_out(a, now, a->config.warmup_time) || voted) && seed_ready(a, ch)) {
                uint64_t err = start_round_train(a, ch);
                if (err) return err;
            }
            if (a->num_epoch_clients < a->config.min_clients)
                change_state(a, a->step >= a->config.total_steps ? RS_FINISHED : RS_WAITING_FOR_MEMBERS, now);
            return SOL_SUCCESS;
        }
        case RS_ROUND_TRAIN:
            if (timed_out(a, now, a->config.max_round_train_time) || round_witnessed(a))
                change_state(a, RS_ROUND_WITNESS, now);
            return SOL_SUCCESS;
        case RS_ROUND_WITNESS: return tick_round_witness(a, ch);
        case RS_COOLDOWN: return tick_cooldown(a, now);
        default: return E_HALTED;
    }
}
