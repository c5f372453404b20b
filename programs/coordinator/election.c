/* Deterministic arithmetic shared with coordinator_sdk (shuffle.py, bloom.py, assignment.py, consensus.py):
 * swap-or-not witness election, keyed-FNV bloom lookups, quorum, the batch-size ramp and the round seed. */
#include "coordinator.h"

static const uint8_t WITNESS_SALT[7] = {'w', 'i', 't', 'n', 'e', 's', 's'};

/* key = sha256(sha256(seed_u64_le) || "witness") */
static void election_key(uint64_t round_seed, uint8_t key[32]) {
    uint8_t inner[32];
    SolBytes a[1] = {{(const uint8_t *)&round_seed, 8}};
    sol_sha256(a, 1, inner);
    SolBytes b[2] = {{inner, 32}, {WITNESS_SALT, sizeof(WITNESS_SALT)}};
    sol_sha256(b, 2, key);
}

/* Swap-or-not with count <= 256: every position/256 is 0, so the whole permutation is fixed by 90 pivots and
 * 90 source digests. They are hashed once per instruction into heap scratch (180 sha256 calls), after which
 * mapping any index, forwards or backwards, is arithmetic only. Each round is an involution, so the inverse
 * permutation runs the rounds backwards. */
void shuffle_prepare(CoordinatorAccount *a, uint64_t count, uint64_t round_seed) {
    if (a->shuffle_count == count && a->shuffle_seed == round_seed && count) return;
    uint8_t buf[40] = {0}, digest[32]; /* key || round || u32 0: one slice per hash is the cheapest call */
    election_key(round_seed, buf);
    for (int i = 0; i < SHUFFLE_ROUNDS; i++) {
        buf[32] = (uint8_t)i;
        SolBytes piv[1] = {{buf, 33}};
        sol_sha256(piv, 1, digest);
        a->shuffle_pivots[i] = (uint8_t)(sol_read_u64(digest) % count); /* count <= 256 */
        SolBytes src[1] = {{buf, 37}};
        sol_sha256(src, 1, a->shuffle_sources[i]);
    }
    a->shuffle_count = (uint16_t)count;
    a->shuffle_seed = round_seed;
}

uint64_t shuffled_index(CoordinatorAccount *a, uint64_t index, uint64_t count, uint64_t round_seed, bool inverse) {
    shuffle_prepare(a, count, round_seed);
    for (int i = 0; i < SHUFFLE_ROUNDS; i++) {
        int r = inverse ? SHUFFLE_ROUNDS - 1 - i : i;
        uint64_t flip = (a->shuffle_pivots[r] + count - index) % count;
        uint64_t position = index > flip ? index : flip;
        if ((a->shuffle_sources[r][position / 8] >> (position % 8)) & 1) index = flip;
    }
    return index;
}

uint32_t witness_slots(uint32_t witness_nodes, uint32_t n_clients) {
    uint32_t slots = witness_nodes ? witness_nodes : MAX_WITNESSES;
    if (slots > n_clients) slots = n_clients;
    return slots > MAX_WITNESSES ? MAX_WITNESSES : slots;
}

uint32_t witness_quorum(uint32_t n_witnesses, uint32_t witness_nodes) {
    uint32_t w = witness_nodes ? witness_nodes : n_witnesses;
    if (w == 0) return 1;
    if (w <= 2) return w;
    if (w == 3) return 2;
    uint32_t q = 2 * w / 3;
    return q ? q : 1;
}

/* 8 keyed FNV-1a-64 hashes into 1024 bits; layout: keys[8] u64 then words[16] u64. */
bool bloom_contains(const uint8_t *bloom, const uint8_t *item, uint64_t len) {
    for (int k = 0; k < 8; k++) {
        uint64_t h = sol_read_u64(bloom + 8 * k);
        for (uint64_t i = 0; i < len; i++) {
            h ^= item[i];
            h *= 0x100000001b3ULL;
        }
        uint64_t pos = h % 1024;
        uint64_t word = sol_read_u64(bloom + 64 + 8 * (pos / 64));
        if (!((word >> (pos % 64)) & 1)) return false;
    }
    return true;
}

/* Sequences in the round starting at data_index: linear ramp start -> end over the warmup tokens, rounded
 * half up, in exact integers (config_check bounds warmup tokens by 2^47 so nothing here can overflow). */
uint64_t batch_size(const CoordinatorAccount *a, uint64_t data_index) {
    const Config *c = &a->config;
    uint64_t warm = c->global_batch_size_warmup_tokens, msl = c->max_seq_len;
    /* tokens = data_index * msl >= warm  <=>  data_index >= ceil(warm / msl): no product can overflow */
    if (warm == 0 || msl == 0 || data_index >= (warm + msl - 1) / msl) return c->global_batch_size_end;
    uint64_t tokens = data_index * msl;
    uint64_t span = (uint64_t)(c->global_batch_size_end - c->global_batch_size_start);
    uint64_t num = 2 * ((uint64_t)c->global_batch_size_start * warm + span * tokens) + warm;
    return num / (2 * warm);
}

/* The seed of the round about to start: sha256(previous seed || newest SlotHashes entry || clock ||
 * the previous round's witnesses' merkle roots)[:8]. Mixing the slot hash and the witnesses' roots makes it
 * harder for one validator, or one client, to choose the election than Psyche's timestamp+slot. */
uint64_t round_seed(const CoordinatorAccount *a, const SolAccountInfo *slot_hashes, uint64_t now) {
    const Round *cur = &a->rounds[a->rounds_head];
    uint8_t zero[40] = {0};
    const uint8_t *recent = zero;
    if (slot_hashes && slot_hashes->data_len >= 48 && sol_read_u64(slot_hashes->data) > 0)
        recent = slot_hashes->data + 8; /* newest entry: slot u64 then hash[32] */
    SolClock clock;
    sol_get_clock_sysvar(&clock);
    SolBytes *parts = (SolBytes *)(SOL_HEAP_START + HEAP_SEED_PARTS); /* 35 slices: too big for the stack */
    parts[0].addr = (const uint8_t *)&cur->random_seed; parts[0].len = 8;
    parts[1].addr = recent; parts[1].len = 40;
    parts[2].addr = (const uint8_t *)&now; parts[2].len = 8;
    uint64_t n = cur->num_witnesses > MAX_WITNESSES ? MAX_WITNESSES : cur->num_witnesses;
    for (uint64_t i = 0; i < n; i++) {
        parts[3 + i].addr = cur->witnesses[i].broadcast_merkle;
        parts[3 + i].len = 32;
    }
    uint8_t digest[32];
    sol_sha256(parts, 3 + n, digest);
    (void)clock;
    return sol_read_u64(digest);
}
