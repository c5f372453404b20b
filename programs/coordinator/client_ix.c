/* Instructions of clients (and of anyone, for tick): accounts start with signer, instance, coordinator
 * account (w); SlotHashes follows (index 3, or 4 for join_run whose index 3 is the authorization). */
#include "args.h"

uint64_t load_client(const SolParameters *p, Ctx *ctx, uint64_t slot_hashes_i) {
    uint64_t err = require_signer(p, 0);
    if (err) return err;
    if ((err = load_run(p, 1, 2, true, ctx))) return err;
    if ((err = check_slot_hashes(p, slot_hashes_i))) return err;
    ctx->signer = &p->ka[0];
    return SOL_SUCCESS;
}

uint64_t tick_now(const Ctx *ctx, uint64_t slot_hashes_i) {
    Chain ch = {ctx->now, ctx->slot, &ctx->p->ka[slot_hashes_i]};
    return tick(ctx->acc, &ch);
}

/* Tick as a side effect: only while the run is live; "nothing to do" is not an error. */
static uint64_t maybe_tick(Ctx *ctx, uint64_t slot_hashes_i) {
    if (is_halted(ctx->acc)) return SOL_SUCCESS;
    return tick_now(ctx, slot_hashes_i);
}

/* The signer's index among the current epoch's clients, which must be healthy: a client that withdrew or
 * was dropped may not witness, vote in warmup, report health or vote for a checkpoint. */
uint64_t healthy_epoch_client(const Ctx *ctx, int64_t *index) {
    *index = find_epoch_client(ctx->acc, ctx->signer->key);
    if (*index < 0) return E_SIGNER_NOT_A_CLIENT;
    return ctx->acc->epoch_clients[*index].state == CS_HEALTHY ? SOL_SUCCESS : E_CLIENT_NOT_HEALTHY;
}

static uint64_t check_authorization(const SolParameters *p, const Ctx *ctx) {
    SolAccountInfo *au = &p->ka[3];
    if (!sol_pubkey_eq(au->owner, p->program_id)) return E_NOT_AUTHORIZED;
    if (au->data_len != sizeof(Authorization)) return E_NOT_AUTHORIZED;
    const Authorization *a = (const Authorization *)au->data;
    if (a->discriminator != DISC_AUTHORIZATION || !sol_pubkey_eq(&a->instance, p->ka[1].key)) return E_NOT_AUTHORIZED;
    static const SolPubkey ANYONE = {{0}};
    if (!sol_pubkey_eq(&a->grantee, ctx->signer->key) && !sol_pubkey_eq(&a->grantee, &ANYONE)) return E_NOT_AUTHORIZED;
    uint8_t bump = a->bump;
    SolSignerSeed seeds[5] = {{(const uint8_t *)"authorization", 13}, {p->ka[1].key->x, 32}, {p->ka[2].key->x, 32},
                              {a->grantee.x, 32}, {&bump, 1}};
    if (!sol_pda_matches(seeds, 5, p->program_id, au->key))
        return E_INVALID_PDA;
    return SOL_SUCCESS;
}

/* When the registry is full, a newcomer takes the slot of the least useful client that may be evicted.
 * Never evicted: a healthy client of the epoch in progress. Among the rest: one not waiting for the next
 * epoch before one that is, then one without earned points before one with (whose points the joiner must
 * bank in its points PDA, see bank_points), then the most penalised, then the longest since it last joined,
 * then round-robin from evict_cursor (so a newcomer's slot is not the next one taken). So wallets that rejoin every epoch or were penalised cannot lock a run:
 * each newcomer displaces one of them, and only after every other tied slot was taken is it displaced. */
static bool epoch_in_progress(const CoordinatorAccount *a) {
    return a->run_state == RS_WARMUP || a->run_state == RS_ROUND_TRAIN || a->run_state == RS_ROUND_WITNESS ||
           a->run_state == RS_COOLDOWN;
}

typedef struct {
    int64_t slot;
    uint64_t rank, slashed, active; /* rank: 2 x waiting for the next epoch + has earned points; 4: none yet */
} Evictee;

/* Slots [from, to) against the best so far; the first of equals (in the scan order) stays. Kept lean: at a
 * full registry this loop is most of join_run's cost. */
static void consider(const CoordinatorAccount *a, const uint8_t *busy, uint64_t from, uint64_t to, Evictee *b) {
    uint64_t next = a->next_active;
    const RegisteredClient *c = &a->clients[from];
    for (uint64_t i = from; i < to; i++, c++) {
        if (busy[i]) continue;
        uint64_t rank = (uint64_t)(c->active == next) * 2 + (c->earned != 0);
        if (rank > b->rank) continue;
        if (rank == b->rank && (c->slashed < b->slashed || (c->slashed == b->slashed && c->active >= b->active)))
            continue;
        b->slot = (int64_t)i, b->rank = rank, b->slashed = c->slashed, b->active = c->active;
    }
}

static int64_t evictable_slot(CoordinatorAccount *a) {
    uint8_t *busy = (uint8_t *)(SOL_HEAP_START + HEAP_SCRATCH_U16); /* registry slots of healthy epoch clients */
    sol_memset(busy, 0, MAX_CLIENTS);
    if (epoch_in_progress(a))
        for (uint64_t i = 0; i < a->num_epoch_clients && i < MAX_CLIENTS; i++) {
            const EpochClient *c = &a->epoch_clients[i];
            if (c->state == CS_HEALTHY && registry_entry(a, c)) busy[c->registry_index] = 1;
        }
    uint64_t n = a->num_clients < MAX_CLIENTS ? a->num_clients : MAX_CLIENTS;
    if (n == 0) return -1;
    uint64_t cursor = a->evict_cursor % n;
    Evictee best = {-1, 4, 0, 0};
    consider(a, busy, cursor, n, &best); /* round-robin from evict_cursor */
    consider(a, busy, 0, cursor, &best);
    if (best.slot >= 0) a->evict_cursor = (uint32_t)(((uint64_t)best.slot + 1) % n);
    return best.slot;
}

/* P2P keys are unique: no two registry entries and no two epoch entries share one (off-chain lookups are keyed
 * by it, so a second holder would hijack the first one's address and batch). A wallet key belongs to its
 * wallet: no entry holds another registered wallet's signer key as its P2P key, so the key an entry falls back
 * to (its own signer key, see release_p2p) is never held by anyone else. One pass over the registry and the
 * epoch's list: the signer's slot (or -1), and who else holds or owns the claimed key. */
typedef struct {
    bool in_registry; /* another entry holds p2p as its P2P key */
    bool in_epoch;    /* another client of the epoch's list holds it */
    bool owned;       /* p2p is another registered wallet's signer key: never to be taken */
    bool squatted;    /* another entry holds the signer's own wallet key as its P2P key */
} P2pScan;

static int64_t scan_registry(const CoordinatorAccount *a, const SolPubkey *signer, const SolPubkey *p2p,
                             P2pScan *s) {
    int64_t self = -1;
    s->in_registry = s->in_epoch = s->owned = s->squatted = false;
    /* the first 8 bytes of each key, held in registers, screen the four comparisons per entry */
    uint64_t s0 = load_u64(signer->x), k0 = load_u64(p2p->x);
    for (uint64_t i = 0; i < a->num_clients && i < MAX_CLIENTS; i++) {
        const RegisteredClient *c = &a->clients[i];
        uint64_t cs = load_u64(c->signer.x), cp = load_u64(c->p2p.x);
        if (cs == s0 && sol_pubkey_eq(&c->signer, signer)) {
            self = (int64_t)i;
            continue;
        }
        if (cp == k0 && sol_pubkey_eq(&c->p2p, p2p)) s->in_registry = true;
        if (cs == k0 && sol_pubkey_eq(&c->signer, p2p)) s->owned = true;
        if (cp == s0 && sol_pubkey_eq(&c->p2p, signer)) s->squatted = true;
    }
    for (uint64_t i = 0; i < a->num_epoch_clients && i < MAX_CLIENTS; i++) {
        const EpochClient *c = &a->epoch_clients[i];
        if (sol_pubkey_eq(&c->p2p, p2p) && !sol_pubkey_eq(&c->signer, signer)) s->in_epoch = true;
    }
    return self;
}

/* A claim proven by the P2P key's own signature (the wallet's own key, or the optional 6th account) takes the
 * key from clients that registered it without holding it, and a wallet's join takes its own wallet key back
 * from anyone who registered it as a P2P key: their registry entries fall back to their signer key (the
 * current epoch's list keeps its copy until the epoch ends). Without the proof, first come. */
static void release_p2p(CoordinatorAccount *a, const SolPubkey *signer, const SolPubkey *p2p) {
    for (uint64_t i = 0; i < a->num_clients && i < MAX_CLIENTS; i++) {
        RegisteredClient *c = &a->clients[i];
        if (sol_pubkey_eq(&c->signer, signer)) continue;
        if (sol_pubkey_eq(&c->p2p, p2p) || sol_pubkey_eq(&c->p2p, signer)) copy_key(&c->p2p, &c->signer);
    }
}

/* join_run(p2p: pubkey, addr_hint: string<=64); accounts: user, instance, account, authorization, SlotHashes,
 * [the P2P key as signer: proves the claim, see release_p2p; any non-signer stands in for it when the next
 * two are needed], [the evictee's points PDA (w), System program: when the slot taken holds points] */
uint64_t ix_join_run(const SolParameters *p, Args *args) {
    Ctx ctx;
    uint64_t err = load_client(p, &ctx, 4);
    if (err) return err;
    const uint8_t *p2p = args_take(args, 32);
    uint64_t hint_len = 0;
    bool too_long = false;
    const uint8_t *hint = args_string(args, ADDR_HINT_MAX, &hint_len, &too_long);
    if (too_long) return E_STRING_TOO_LONG;
    if (!args_done(args)) return E_INVALID_INSTRUCTION;
    if ((err = check_authorization(p, &ctx))) return err;
    CoordinatorAccount *a = ctx.acc;
    if (a->run_state == RS_FINISHED) return E_RUN_FINISHED;
    P2pScan scan;
    int64_t i = scan_registry(a, ctx.signer->key, (const SolPubkey *)p2p, &scan);
    bool proven = sol_pubkey_eq(ctx.signer->key, (const SolPubkey *)p2p) ||
                  (p->ka_num > 5 && p->ka[5].is_signer && sol_pubkey_eq(p->ka[5].key, (const SolPubkey *)p2p));
    if (scan.owned || ((scan.in_registry || scan.in_epoch) && !proven)) return E_P2P_KEY_TAKEN;
    if (scan.in_registry || scan.squatted) release_p2p(a, ctx.signer->key, (const SolPubkey *)p2p);
    if (i < 0) {
        uint32_t limit = a->config.global_batch_size_end < MAX_CLIENTS ? a->config.global_batch_size_end : MAX_CLIENTS;
        if (a->num_clients < limit) {
            i = a->num_clients++;
        } else {
            i = evictable_slot(a);
            if (i < 0) return a->num_clients >= MAX_CLIENTS ? E_CLIENTS_FULL : E_MORE_CLIENTS_THAN_BATCHES;
            if ((err = bank_points(p, a, (uint64_t)i))) return err;
            sol_memset(&a->clients[i], 0, sizeof(RegisteredClient));
        }
        a->clients[i].signer = *ctx.signer->key;
    }
    RegisteredClient *c = &a->clients[i];
    sol_memcpy(c->p2p.x, p2p, 32);
    sol_memset(c->addr_hint, 0, ADDR_HINT_MAX);
    sol_memcpy(c->addr_hint, hint, hint_len);
    c->active = a->next_active;
    SolBytes event[3] = {{(const uint8_t *)"join", 4}, {ctx.signer->key->x, 32}, {p2p, 32}};
    sol_log_data(event, 3);
    if ((err = maybe_tick(&ctx, 4))) return err;
    return bump_nonce(a);
}

uint64_t ix_withdraw(const SolParameters *p, Args *args) {
    Ctx ctx;
    uint64_t err = load_client(p, &ctx, 3);
    if (err) return err;
    if (!args_done(args)) return E_INVALID_INSTRUCTION;
    CoordinatorAccount *a = ctx.acc;
    int64_t i = find_registered(a, ctx.signer->key);
    if (i < 0) return E_SIGNER_NOT_A_CLIENT;
    a->clients[i].active = 0;
    int64_t e = find_epoch_client(a, ctx.signer->key);
    if (e >= 0 && a->epoch_clients[e].state == CS_HEALTHY) a->epoch_clients[e].state = CS_WITHDRAWN;
    /* then the tick: in RoundTrain, an elected witness that withdrew no longer holds the round (round_witnessed) */
    if ((err = maybe_tick(&ctx, 3))) return err;
    return bump_nonce(a);
}

uint64_t ix_tick(const SolParameters *p, Args *args) {
    Ctx ctx;
    uint64_t err = load_client(p, &ctx, 3);
    if (err) return err;
    if (!args_done(args)) return E_INVALID_INSTRUCTION;
    if (is_halted(ctx.acc)) return E_HALTED;
    if ((err = tick_now(&ctx, 3))) return err;
    return bump_nonce(ctx.acc);
}

uint64_t ix_warmup_witness(const SolParameters *p, Args *args) {
    Ctx ctx;
    uint64_t err = load_client(p, &ctx, 3);
    if (err) return err;
    if (!args_done(args)) return E_INVALID_INSTRUCTION;
    CoordinatorAccount *a = ctx.acc;
    if (is_halted(a)) return E_HALTED;
    int64_t index;
    if (a->run_state != RS_WARMUP) {
        if (find_epoch_client(a, ctx.signer->key) < 0) return E_SIGNER_NOT_A_CLIENT;
        if (a->run_state == RS_ROUND_TRAIN && a->rounds[a->rounds_head].height == 0) return bump_nonce(a);
        return E_WRONG_STATE;
    }
    if ((err = healthy_epoch_client(&ctx, &index))) return err;
    /* A repeated vote adds nothing but is not an error: it only ticks, so a client may safely repeat it. So
     * does a vote past 32 (every witness slot voted; round 0 waits for a slot after the Warmup's, see tick). */
    Round *r = &a->rounds[a->rounds_head];
    bool repeated = false;
    for (uint32_t w = 0; w < r->num_witnesses; w++)
        if (r->witnesses[w].client_index == index) repeated = true;
    if (!repeated && r->num_witnesses < MAX_WITNESSES) r->witnesses[r->num_witnesses++].client_index = (uint16_t)index;
    if ((err = tick_now(&ctx, 3))) return err; /* starts round 0 once every slot voted and the seed is ready */
    return bump_nonce(a);
}

/* witness(participants[32], broadcast_bloom[192], broadcast_merkle[32], step u32, loss f32,
 *         tokens_per_sec f32, bandwidth_per_sec f32) -- participants: one bit per epoch client of the round
 * (see Witness); the metadata is for indexers (logged, not stored) */
uint64_t ix_witness(const SolParameters *p, Args *args) {
    Ctx ctx;
    uint64_t err = load_client(p, &ctx, 3);
    if (err) return err;
    const uint8_t *participants = args_take(args, PARTICIPANT_BYTES), *broadcast = args_take(args, BLOOM_BYTES);
    const uint8_t *merkle = args_take(args, 32), *metadata = args_take(args, 16);
    if (!args_done(args)) return E_INVALID_INSTRUCTION;
    CoordinatorAccount *a = ctx.acc;
    if (is_halted(a)) return E_HALTED;
    if (a->run_state != RS_ROUND_TRAIN && a->run_state != RS_ROUND_WITNESS) return E_WRONG_STATE;
    int64_t index;
    if ((err = healthy_epoch_client(&ctx, &index))) return err;
    if (sol_read_u32(metadata) != a->step) return E_STALE_ROUND; /* a witness meant for another round */
    Round *r = &a->rounds[a->rounds_head];
    if (!participants_in_range(participants, r->clients_len)) return E_PARTICIPANT_OUT_OF_RANGE;
    uint32_t slots = witness_slots(a->config.witness_nodes, r->clients_len);
    if ((uint64_t)index >= r->clients_len) return E_WITNESS_NOT_ELECTED;
    int64_t slot = elected_slot(a, (uint64_t)index);
    if (slot < 0 || (uint64_t)slot >= slots) return E_WITNESS_NOT_ELECTED;
    for (uint32_t w = 0; w < r->num_witnesses; w++)
        if (r->witnesses[w].client_index == index) return E_DUPLICATE_WITNESS;
    if (r->num_witnesses >= MAX_WITNESSES) return E_WITNESSES_FULL;
    r->posted_slots |= 1U << slot;
    Witness *w = &r->witnesses[r->num_witnesses++];
    w->client_index = (uint16_t)index;
    sol_memcpy(w->participants, participants, PARTICIPANT_BYTES);
    sol_memcpy(w->broadcast_bloom, broadcast, BLOOM_BYTES);
    sol_memcpy(w->broadcast_merkle, merkle, 32);
    SolBytes event[3] = {{(const uint8_t *)"witness", 7}, {ctx.signer->key->x, 32}, {metadata, 16}};
    sol_log_data(event, 3);
    /* the tick moves RoundTrain on once every elected witness posted or left (round_witnessed) */
    if ((err = tick_now(&ctx, 3))) return err;
    return bump_nonce(a);
}

/* health_check(target_index: u16): a quorum of the witnesses elected for the current round posted participant
 * bits without the target -> Dropped now, in any round of the epoch (the round-ending tick drops every such
 * client anyway, see drop_absent; this only stops the round waiting for an elected witness that is gone).
 * Dropping takes a quorum of the witnesses elected, posted or not, that left the target out: when most
 * elected witnesses stay silent, one witness alone cannot drop anybody. Counting stops once the outcome is
 * known. The round's indices hold: compaction runs only between rounds. */
uint64_t ix_health_check(const SolParameters *p, Args *args) {
    Ctx ctx;
    uint64_t err = load_client(p, &ctx, 3);
    if (err) return err;
    uint16_t target = args_u16(args);
    if (!args_done(args)) return E_INVALID_INSTRUCTION;
    CoordinatorAccount *a = ctx.acc;
    if (is_halted(a)) return E_HALTED;
    int64_t reporter;
    if ((err = healthy_epoch_client(&ctx, &reporter))) return err;
    if (a->run_state != RS_ROUND_TRAIN && a->run_state != RS_ROUND_WITNESS) return E_HEALTH_CHECK_TOO_EARLY;
    const Round *r = &a->rounds[a->rounds_head];
    if (target >= a->num_epoch_clients || target >= r->clients_len) return E_NOT_AN_EPOCH_CLIENT;
    uint32_t quorum = witness_quorum(witness_slots(a->config.witness_nodes, r->clients_len), a->config.witness_nodes);
    uint32_t posted = r->num_witnesses < MAX_WITNESSES ? r->num_witnesses : MAX_WITNESSES;
    if (posted < quorum) return E_CLIENT_IS_HEALTHY;
    uint32_t absent = 0, present = 0, byte = target / 8, bit = target % 8;
    for (uint32_t w = 0; w < posted && absent < quorum; w++) {
        if (!((r->witnesses[w].participants[byte] >> bit) & 1)) absent++;
        else if (++present > posted - quorum) return E_CLIENT_IS_HEALTHY;
    }
    if (absent < quorum) return E_CLIENT_IS_HEALTHY;
    if (a->epoch_clients[target].state == CS_HEALTHY) {
        a->epoch_clients[target].state = CS_DROPPED;
        SolBytes event[3] = {{(const uint8_t *)"drop", 4}, {a->epoch_clients[target].signer.x, 32},
                             {ctx.signer->key->x, 32}};
        sol_log_data(event, 3);
    }
    /* then the tick: in RoundTrain, a dropped elected witness no longer holds the round (round_witnessed) */
    if ((err = tick_now(&ctx, 3))) return err;
    return bump_nonce(a);
}

/* A checkpoint vote: the first 8 bytes of sha256(reference) as a LE u64. 0 stands for "no vote", so a
 * reference whose hash begins with 8 zero bytes votes 1 instead (the model's checkpoint_vote agrees). */
static uint64_t checkpoint_vote(const uint8_t *ref, uint64_t len) {
    uint8_t digest[32];
    SolBytes s[1] = {{ref, len}};
    sol_sha256(s, 1, digest);
    uint64_t vote = load_u64(digest);
    return vote ? vote : 1;
}

/* checkpoint(reference: string<=127): in Cooldown, a healthy epoch client votes for the weights the next epoch
 * starts from. One vote per epoch client (voting again replaces it, so a retried transaction is harmless); the
 * reference becomes the run's checkpoint only when a strict majority of the healthy epoch clients voted for
 * the same reference (votes * 2 > healthy), so a client whose weights diverged cannot name them alone.
 * Events: ("checkpoint_vote", signer, vote u64, votes u32, healthy u32) for every vote, and
 * ("checkpoint_adopted", reference, votes u32, healthy u32) whenever a vote leaves its reference with a
 * majority (and so stores it). */
uint64_t ix_checkpoint(const SolParameters *p, Args *args) {
    Ctx ctx;
    uint64_t err = load_client(p, &ctx, 3);
    if (err) return err;
    const uint8_t *ref;
    uint64_t len;
    if ((err = args_checkpoint(args, &ref, &len))) return err;
    CoordinatorAccount *a = ctx.acc;
    if (a->run_state != RS_COOLDOWN) return E_WRONG_STATE;
    int64_t index;
    if ((err = healthy_epoch_client(&ctx, &index))) return err;
    uint64_t vote = checkpoint_vote(ref, len);
    a->checkpoint_votes[index] = vote;
    uint32_t healthy = 0, votes = 0;
    for (uint32_t i = 0; i < a->num_epoch_clients && i < MAX_CLIENTS; i++) {
        if (a->epoch_clients[i].state != CS_HEALTHY) continue;
        healthy++;
        if (a->checkpoint_votes[i] == vote) votes++;
    }
    SolBytes event[5] = {{(const uint8_t *)"checkpoint_vote", 15}, {ctx.signer->key->x, 32},
                         {(const uint8_t *)&vote, 8}, {(const uint8_t *)&votes, 4}, {(const uint8_t *)&healthy, 4}};
    sol_log_data(event, 5);
    if ((uint64_t)votes * 2 > healthy) {
        store_checkpoint(a, ref, len);
        SolBytes adopted[4] = {{(const uint8_t *)"checkpoint_adopted", 18}, {ref, len}, {(const uint8_t *)&votes, 4},
                               {(const uint8_t *)&healthy, 4}};
        sol_log_data(adopted, 4);
    }
    if ((err = tick_now(&ctx, 3))) return err;
    return bump_nonce(a);
}
