/* Deterministic arithmetic shared with coordinator_sdk (shuffle.py, bloom.py, assignment.py, consensus.py):
 * witness election (partial Fisher-Yates), participant-bit counts, quorum, the batch-size ramp and the round seed. */
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

/* Witness election: the first min(32, count) positions of a Fisher-Yates permutation of range(count),
 * drawn with u64s from sha256(key || u32 block) (four per digest). Ten sha256 calls per round instead of the
 * 180 of a 90-round swap-or-not, and the elected list is stored, so verifying a witness or finding the
 * silent ones is a scan of 32 entries. The slot of a client is its position in the list; the configured
 * witness count takes the first witness_slots() of them. */
void elect_witnesses(CoordinatorAccount *a, uint32_t count, uint64_t round_seed) {
    uint8_t buf[36] = {0}, digest[32];
    uint16_t *perm = (uint16_t *)(SOL_HEAP_START + HEAP_SCRATCH_U16);
    election_key(round_seed, buf);
    uint32_t k = count < MAX_WITNESSES ? count : MAX_WITNESSES;
    for (uint32_t i = 0; i < count; i++) perm[i] = (uint16_t)i;
    for (uint32_t i = 0; i < k; i++) {
        if (i % 4 == 0) {
            uint32_t block = i / 4;
            sol_memcpy(buf + 32, &block, 4);
            SolBytes part[1] = {{buf, 36}};
            sol_sha256(part, 1, digest);
        }
        uint32_t j = i + (uint32_t)(load_u64(digest + 8 * (i % 4)) % (count - i));
        uint16_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
        a->elected[i] = perm[i];
    }
    for (uint32_t i = k; i < MAX_WITNESSES; i++) a->elected[i] = 0;
    a->elected_count = (uint16_t)k;
}

/* The witness slot of epoch client `index` in the current round, or -1 when it was not drawn. */
int64_t elected_slot(const CoordinatorAccount *a, uint64_t index) {
    for (uint32_t i = 0; i < a->elected_count && i < MAX_WITNESSES; i++)
        if (a->elected[i] == index) return i;
    return -1;
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

/* A witness's participant bits are exact: nothing may be set at or past the round's clients_len (a bit there
 * would name nobody, or a client of another round's order). */
bool participants_in_range(const uint8_t *bits, uint32_t clients_len) {
    for (uint32_t w = 0; w < PARTICIPANT_BYTES / 8; w++) {
        uint64_t word = load_u64(bits + 8 * w), first = 64 * w;
        if (clients_len >= first + 64) continue;
        if (clients_len <= first ? word != 0 : (word >> (clients_len - first)) != 0) return false;
    }
    return true;
}

/* out: bit i set when at least `quorum` of the round's posted witnesses left epoch client i (i < clients_len)
 * out of their participant bits; all clear when fewer than `quorum` posted. A bit-sliced count: per 64
 * clients, six u64 counter planes take one witness word at a time (~25 ops), so 32 witnesses x 256 clients
 * cost ~3k CU where a bit-by-bit count would cost ~40k. Returns how many bits are set. */
uint32_t absent_mask(const Round *r, uint32_t quorum, uint64_t out[PARTICIPANT_BYTES / 8]) {
    uint32_t posted = r->num_witnesses < MAX_WITNESSES ? r->num_witnesses : MAX_WITNESSES, dropped = 0;
    uint32_t n = r->clients_len < MAX_CLIENTS ? r->clients_len : MAX_CLIENTS;
    for (uint32_t w = 0; w < PARTICIPANT_BYTES / 8; w++) {
        out[w] = 0;
        uint32_t first = 64 * w;
        if (posted < quorum || quorum == 0 || n <= first) continue;
        uint64_t c[6] = {0, 0, 0, 0, 0, 0}; /* counts up to 32 < 64 */
        for (uint32_t k = 0; k < posted; k++) {
            uint64_t carry = ~load_u64(r->witnesses[k].participants + 8 * w);
            for (uint32_t b = 0; b < 6 && carry; b++) {
                uint64_t t = c[b] & carry;
                c[b] ^= carry;
                carry = t;
            }
        }
        uint64_t gt = 0, eq = ~0ULL; /* count > quorum's high bits so far, == so far */
        for (int b = 5; b >= 0; b--) {
            if ((quorum >> b) & 1) eq &= c[b];
            else gt |= eq & c[b], eq &= ~c[b];
        }
        uint64_t valid = n >= first + 64 ? ~0ULL : (1ULL << (n - first)) - 1;
        out[w] = (gt | eq) & valid;
        for (uint64_t x = out[w]; x; x &= x - 1) dropped++;
    }
    return dropped;
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

/* A round may start only in a slot after seed_slot (the slot in which the current round began): only then can
 * the hash of that slot exist, and the next round's seed is made of it. */
bool seed_ready(const CoordinatorAccount *a, const Chain *ch) { return ch->slot > a->seed_slot; }

/* A round (or the Warmup) began in `slot`: the next round's seed will be made of that slot's hash. */
void set_seed_slot(CoordinatorAccount *a, uint64_t slot) {
    a->seed_slot = slot;
    a->seed_captured = 0;
    a->next_seed = 0;
}

/* The SlotHashes entry (slot u64, hash[32]) of exactly seed_slot; entries are newest first (slots descending),
 * so a binary search. 0 when it is not there: it left the 512-entry window, or the sysvar has no history. */
static const uint8_t *seed_entry(const CoordinatorAccount *a, const SolAccountInfo *sh) {
    if (!sh || sh->data_len < 8) return 0;
    uint64_t n = load_u64(sh->data), fit = (sh->data_len - 8) / 40;
    if (n > fit) n = fit;
    const uint8_t *e = sh->data + 8;
    uint64_t lo = 0, hi = n; /* entries [lo, hi) may hold it */
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2, s = load_u64(e + 40 * mid);
        if (s == a->seed_slot) return e + 40 * mid;
        if (s > a->seed_slot) lo = mid + 1;
        else hi = mid;
    }
    return 0;
}

/* The next round's seed is sha256(current round's seed || seed_slot u64 || hash of seed_slot)[:8]: inputs all
 * fixed when the current round began, before any of its witnesses acted. The first instruction (any, from
 * anyone) that ticks in a later slot captures it while the entry is in SlotHashes; every party computes the
 * same value, so neither a witness (posting or not) nor the ticker (by its timing) can choose among seeds.
 * When the entry is gone before anyone captured it (nobody sent anything for 512 slots), the hash is taken
 * as 32 zero bytes: deterministic, and still no party's choice. */
void capture_seed(CoordinatorAccount *a, const Chain *ch) {
    if (a->seed_captured || !seed_ready(a, ch)) return;
    static const uint8_t zero[32] = {0};
    const uint8_t *entry = seed_entry(a, ch->slot_hashes);
    const Round *cur = &a->rounds[a->rounds_head];
    SolBytes parts[3] = {{(const uint8_t *)&cur->random_seed, 8}, {(const uint8_t *)&a->seed_slot, 8},
                         {entry ? entry + 8 : zero, 32}};
    uint8_t digest[32];
    sol_sha256(parts, 3, digest);
    a->next_seed = load_u64(digest);
    a->seed_captured = 1;
}

/* The seed of the round about to start (the tick captured it first; a round only starts once seed_ready). */
uint64_t round_seed(CoordinatorAccount *a, const Chain *ch) {
    capture_seed(a, ch);
    return a->next_seed;
}
