/*
 * The coordinator program: a training run's state machine on chain. Layouts are zero-copy C structs with
 * no implicit padding (every gap is an explicit _pad field), so the borsh decoding of the IDL reads them
 * byte for byte. All integers are little-endian. The Python reference model (coordinator_sdk.model) is
 * the specification these functions follow.
 */
#ifndef COORDINATOR_H
#define COORDINATOR_H
#define SOL_MAX_ACCOUNTS 8 /* join_run: 5 + the P2P proof + an evictee's points PDA and the System program */
#include "sol_sdk.h"
#include "pda_create.h" /* PdaCreate, pda_create */

/* ---- sizes and constants ----------------------------------------------------------------------------- */
#define MAX_CLIENTS 256
#define MAX_WITNESSES 32
#define MAX_VERIFIERS_PER_MILLE 10000 /* Config.verifiers_per_mille: at most 10 expected verifiers per trainer */
#define NUM_ROUNDS 4
#define RUN_ID_MAX 32
#define ADDR_HINT_MAX 64
#define CHECKPOINT_MAX 127
#define BLOOM_BYTES 192
#define PARTICIPANT_BYTES (MAX_CLIENTS / 8) /* one bit per epoch client of the round */
#define ACCOUNT_VERSION 1

enum { RS_UNINITIALIZED = 0, RS_WAITING_FOR_MEMBERS, RS_WARMUP, RS_ROUND_TRAIN, RS_ROUND_WITNESS, RS_COOLDOWN,
       RS_FINISHED, RS_PAUSED };
enum { CS_HEALTHY = 0, CS_DROPPED, CS_WITHDRAWN, CS_EJECTED };

/* Anchor discriminators: sha256("global:<name>")[:8] and sha256("account:<Name>")[:8], as LE u64. */
#define IX_INIT_RUN 0x2a65dfe6ac796994ULL
#define IX_UPDATE_CONFIG 0x63db530abffc9e1dULL
#define IX_SET_PAUSED 0xdaa6e1b0c07d3c5bULL
#define IX_SET_FUTURE_EPOCH_RATES 0x81b6c8c757a015efULL
#define IX_AUTHORIZE 0x787189dbd266c1adULL
#define IX_REVOKE 0xf25dad85221f17aaULL
#define IX_JOIN_RUN 0x4bf6866a667da048ULL
#define IX_WITHDRAW 0x22a16d949c4612b7ULL
#define IX_TICK 0x0f3f5065082c4f5cULL
#define IX_WARMUP_WITNESS 0x5e37163fe87ae8d3ULL
#define IX_WITNESS 0x2715df8e1995f4d5ULL
#define IX_HEALTH_CHECK 0x839d128aa8635a73ULL
#define IX_CHECKPOINT 0xfcb88ff0cc13c8d5ULL
#define IX_CLOSE_RUN 0xccab934a4c823d1fULL
#define IX_UPDATE_METADATA 0xbae14e61ef2bb6aaULL
#define IX_UPDATE_MODEL 0x49185367102ce64cULL
#define IX_UPDATE_PROGRESS 0x6f159e1b714e2f87ULL
#define IX_SET_CHECKPOINT 0x506826df87ee4fc7ULL
#define IX_VERDICT 0xe7223d0bb11f1ed8ULL
#define DISC_RUN_INSTANCE 0x0fba572748ffcb9cULL
#define DISC_COORDINATOR_ACCOUNT 0x2b569b2c37b121efULL
#define DISC_AUTHORIZATION 0x4b20a8c3f3a84403ULL
#define DISC_CLIENT_POINTS 0xb3bc853ecdc585a0ULL

/* ---- custom errors (Anchor-style, >= 6000; names and messages are in the IDL) ----------------------- */
enum {
    E_INVALID_INSTRUCTION = 6000, E_NOT_ENOUGH_ACCOUNTS, E_MISSING_SIGNER, E_NOT_WRITABLE, E_WRONG_OWNER,
    E_WRONG_ACCOUNT_SIZE, E_WRONG_DISCRIMINATOR, E_INVALID_PDA, E_ALREADY_INITIALIZED, E_NOT_INITIALIZED,
    E_ACCOUNT_MISMATCH, E_UNAUTHORIZED, E_RUN_ID_INVALID_LENGTH, E_STRING_TOO_LONG, E_INVALID_CONFIG,
    E_NOT_HALTED, E_RUN_FINISHED, E_NOT_PAUSED, E_WRONG_STATE, E_HALTED, E_CLIENTS_FULL,
    E_MORE_CLIENTS_THAN_BATCHES, E_SIGNER_NOT_A_CLIENT, E_DUPLICATE_WITNESS, E_WITNESS_NOT_ELECTED,
    E_WITNESSES_FULL, E_HEALTH_CHECK_TOO_EARLY, E_CLIENT_IS_HEALTHY, E_NOT_AN_EPOCH_CLIENT,
    E_ARITHMETIC_OVERFLOW, E_NOT_AUTHORIZED, E_INVALID_ARGUMENT, E_NOT_SYSTEM_PROGRAM, E_ACCOUNT_NOT_ZEROED,
    E_WRONG_SYSVAR, E_STALE_ROUND, E_INVALID_MODEL, E_INVALID_PROGRESS, E_CLIENT_NOT_HEALTHY, E_P2P_KEY_TAKEN,
    E_PARTICIPANT_OUT_OF_RANGE,
    E_WRONG_POINTS_ACCOUNT, E_NOT_A_VERIFIER, E_DUPLICATE_VERDICT, E_WRONG_TRAINER,
};

/* ---- layouts ----------------------------------------------------------------------------------------- */
typedef struct {
    uint64_t warmup_time, cooldown_time, max_round_train_time, round_witness_time;
    uint64_t global_batch_size_warmup_tokens, epoch_time;
    uint32_t total_steps, max_seq_len;
    uint16_t init_min_clients, min_clients, witness_nodes, global_batch_size_start, global_batch_size_end;
    uint16_t verifiers_per_mille; /* expected verifiers per trainer and round x 1000 (issue 25); 0: no verdicts */
    uint8_t waiting_for_members_extra_time;
    uint8_t _pad[3];
} Config; /* 72 bytes */

/* participants: bit i (byte i / 8, bit i % 8) says epoch client i of this round trained it, as this witness
 * saw; exact, where a 1024-bit bloom of 256 clients answered "present" for ~1 absent client in 5. Indexed by
 * the round's epoch-client index, which holds for the whole round (compaction runs only between rounds);
 * bits at or past the round's clients_len are refused. The bloom's other 160 bytes are reserved (zero). */
typedef struct {
    uint16_t client_index;
    uint8_t _pad[6];
    uint8_t participants[PARTICIPANT_BYTES];
    uint8_t _reserved[BLOOM_BYTES - PARTICIPANT_BYTES];
    uint8_t broadcast_bloom[BLOOM_BYTES];
    uint8_t broadcast_merkle[32];
} Witness; /* 424 */

typedef struct {
    uint64_t data_index, random_seed;
    uint32_t height;
    uint16_t clients_len, num_witnesses;
    uint32_t posted_slots; /* bit p: the witness elected at slot p posted */
    uint8_t _pad[4];
    Witness witnesses[MAX_WITNESSES];
} Round; /* 32 + 13568 */

/* Verdicts (issue 25, see verdict_ix.c). As a verifier: verdict_height / verdict_key, the (1 + height, LE u64 of
 * the trainer's first 8 P2P-key bytes) of its last verdict; each verdict must order strictly after it, so one
 * verdict per (verifier, trainer, round) costs 12 bytes. As a trainer, per kept round (ring slot height % 4,
 * cleared when a round takes the slot): fail and pass verdict counts, and accuser: 1 + the registry slot of
 * the first fail verdict's verifier (0 none, 0xffff settled: penalised once for it); and over the whole epoch
 * (all its results, never cleared within it): epoch_fails / epoch_passes, which convict at a low verifier rate,
 * and epoch_accuser, whose fails after its first are not counted (one verifier alone never convicts). */
#define VERDICT_SETTLED 0xffff
typedef struct {
    SolPubkey signer, p2p;
    uint8_t state;
    uint8_t _pad;
    uint16_t registry_index; /* its slot in clients[] (checked against signer before use: slots are reused) */
    uint32_t exited_height;
    uint64_t verdict_key;
    uint32_t verdict_height;
    uint8_t fails[NUM_ROUNDS], passes[NUM_ROUNDS];
    uint16_t accuser[NUM_ROUNDS];
    uint8_t epoch_fails, epoch_passes; /* this epoch's verdicts on all its results (saturating, zeroed per epoch) */
    uint16_t epoch_accuser;            /* 1 + the registry slot of the epoch's first fail; its later fails don't count */
} EpochClient; /* 104 */

typedef struct {
    SolPubkey signer, p2p;
    uint8_t addr_hint[ADDR_HINT_MAX];
    uint64_t active, earned, slashed;
} RegisteredClient; /* 152 */

/* Descriptive run metadata (may change while running, for explorers and dashboards). */
typedef struct {
    uint8_t name[64];
    uint8_t description[280];
    uint64_t num_parameters, vocab_size;
    uint8_t name_len, _pad0;
    uint16_t description_len;
    uint8_t _pad1[4];
} RunMetadata; /* 368 */

enum { ARCH_LLAMA = 0, ARCH_DEEPSEEK, ARCH_HF_AUTO, ARCH_TORCHTITAN, ARCH_COUNT };
enum { OPT_ADAMW = 0, OPT_DISTRO, OPT_DUMMY };
enum { SEL_TOPK = 0, SEL_SHARED, SEL_COUNT };
enum { PIPE_OVERLAPPED = 0, PIPE_SYNCHRONOUS, PIPE_COUNT };
enum { LR_CONSTANT = 0, LR_LINEAR, LR_COSINE, LR_WSD, LR_COUNT };

/* What is trained and how (only while halted). Floats are carried as IEEE-754 f32 bit patterns. */
typedef struct {
    uint8_t architecture, data_type, optimizer, lr_schedule;
    uint32_t cold_start_warmup_steps;
    uint32_t lr_base, lr_warmup_init, lr_final;
    uint32_t lr_warmup_steps, lr_total_steps;
    uint32_t distro_decay;
    uint16_t distro_chunk, distro_topk;
    uint8_t distro_quantize_1bit, data_location_len;
    uint8_t distro_selection; /* SEL_TOPK: own top-k, indices sent; SEL_SHARED: seeded common draw (issue 26) */
    uint8_t distro_pipeline; /* PIPE_OVERLAPPED: round S trains without S-1's results (Psyche); PIPE_SYNCHRONOUS:
                              * S's results are witnessed and applied before S+1 trains (issue 26) */
    uint8_t data_location[192];
} ModelDescription; /* 232 */

typedef struct {
    uint64_t discriminator, version, nonce;
    SolPubkey instance;
    uint8_t run_id[RUN_ID_MAX];
    uint8_t run_state, pending_pause, first_round, cold_start_epoch, run_id_len, checkpoint_len;
    uint8_t _pad0[2];
    Config config;
    uint32_t epoch, step;
    uint64_t epoch_start_data_index, run_state_start_unix_timestamp;
    uint32_t rounds_head, start_step, last_step, clients_at_start;
    uint64_t start_timestamp;
    uint64_t earning_rate, slashing_rate, future_earning_rate, future_slashing_rate;
    uint64_t next_active;
    uint32_t num_clients, num_epoch_clients, num_exited_clients;
    uint32_t evict_cursor; /* ties between evictable registry slots go round-robin from here */
    uint8_t checkpoint[CHECKPOINT_MAX + 1];
    /* The current round's elected witnesses (epoch-client indices in slot order), drawn once when the round
     * starts, so that witness verification and the idle-witness penalty are O(32) lookups. seed_slot: the
     * slot in which the current round (or the Warmup) began; the next round's seed is fixed by the hash of
     * that slot alone, which nobody knew when the round began and nothing done during the round can change
     * (see capture_seed). seed_captured / next_seed: that seed, computed by the first instruction of a later
     * slot while the entry is in SlotHashes (every party captures the same value). */
    uint64_t seed_slot;
    uint16_t elected_count;
    uint8_t seed_captured;
    uint8_t _pad2[5];
    uint16_t elected[MAX_WITNESSES];
    /* The checkpoint votes of the epoch in progress, by epoch-client index (see ix_checkpoint): the first 8
     * bytes of sha256(reference) as a LE u64, 0 for no vote (a hash whose first 8 bytes are all 0 votes 1).
     * Cleared when an epoch starts (WaitingForMembers -> Warmup); votes are only taken in Cooldown, when the
     * epoch-client indices no longer move. */
    uint64_t checkpoint_votes[MAX_CLIENTS];
    uint64_t next_seed;
    uint8_t _reserved_election[856];
    Round rounds[NUM_ROUNDS];
    RegisteredClient clients[MAX_CLIENTS];
    EpochClient epoch_clients[MAX_CLIENTS];
    EpochClient exited_clients[MAX_CLIENTS];
    RunMetadata metadata;
    ModelDescription model;
    uint8_t reserved[424];
} CoordinatorAccount;

typedef struct {
    uint64_t discriminator;
    uint8_t bump, run_id_len;
    uint8_t _pad[6];
    SolPubkey main_authority, join_authority, coordinator_account;
    uint8_t run_id[RUN_ID_MAX];
} RunInstance; /* 144 */

/* PDA ["authorization", instance, coordinator_account, grantee]: the coordinator account in the seeds binds a
 * grant to one incarnation of the run (a run re-created under the same run_id has another account). */
typedef struct {
    uint64_t discriminator;
    SolPubkey instance, grantee;
    uint8_t bump;
    uint8_t _pad[7];
} Authorization; /* 80 */

/* PDA ["points", coordinator_account, signer]: the points of a wallet whose registry slot a newcomer took.
 * join_run banks the evicted slot's earned/slashed here (creating it, the joiner paying rent), so that slots
 * can be reused without anyone losing points; a returning wallet earns anew in its new slot and keeps these.
 * The treasurer pays claims on slot + banked points. */
typedef struct {
    uint64_t discriminator;
    SolPubkey coordinator_account, signer;
    uint64_t earned, slashed;
    uint8_t bump;
    uint8_t _pad[7];
} ClientPoints; /* 96 */

sol_assert_static(sizeof(Config) == 72, config_size);
sol_assert_static(sizeof(RunMetadata) == 368, metadata_size);
sol_assert_static(sizeof(ModelDescription) == 232, model_size);
sol_assert_static(sizeof(Witness) == 424, witness_size);
sol_assert_static(sizeof(Round) == 13600, round_size);
sol_assert_static(sizeof(EpochClient) == 104, epoch_client_size);
sol_assert_static(sizeof(RegisteredClient) == 152, registered_client_size);
sol_assert_static(sizeof(RunInstance) == 144, instance_size);
sol_assert_static(sizeof(Authorization) == 80, authorization_size);
sol_assert_static(sizeof(ClientPoints) == 96, client_points_size);
sol_assert_static(sizeof(CoordinatorAccount) == 150976, account_size); /* == the IDL's size (tested) */
sol_assert_static(__builtin_offsetof(CoordinatorAccount, checkpoint_votes) % 8 == 0, votes_aligned);

/* Heap scratch offsets (SOL_HEAP_START + offset), disjoint per user. */
#define HEAP_ACCOUNTS 0 /* the entrypoint's SolAccountInfo array (8 x 56 bytes: too big for a 512-byte frame) */
#define HEAP_SCRATCH_U16 1024 /* 256 u16: partial Fisher-Yates in elections, index remaps in compaction */
#define HEAP_ZEROES 2048 /* from here to the heap's end is never written: init_run compares accounts with it */

/* An unaligned little-endian u64 load as one instruction (SBPF allows unaligned loads); sol_read_u64 goes
 * through the memcpy syscall, ~10x dearer, which matters in the bloom and election loops. */
typedef uint64_t __attribute__((may_alias)) u64_unaligned; /* no aligned(1): clang would split it into bytes */
static inline uint64_t load_u64(const uint8_t *p) { return *(const u64_unaligned *)p; }
/* A 32-byte key copy as four u64 moves (a struct copy of byte arrays compiles to 64 byte moves). */
static inline void copy_key(SolPubkey *dst, const SolPubkey *src) {
    u64_unaligned *d = (u64_unaligned *)dst->x;
    const u64_unaligned *s = (const u64_unaligned *)src->x;
    d[0] = s[0], d[1] = s[1], d[2] = s[2], d[3] = s[3];
}

/* ---- shared helpers (machine.c, election.c, accounts.c) ----------------------------------------------- */
typedef struct {
    const SolParameters *p;
    CoordinatorAccount *acc;
    RunInstance *inst;
    SolAccountInfo *signer;
    uint64_t now, slot;
} Ctx;

uint64_t load_run(const SolParameters *p, uint64_t inst_i, uint64_t acc_i, bool writable, Ctx *ctx);
uint64_t require_signer(const SolParameters *p, uint64_t i);
int64_t find_registered(const CoordinatorAccount *a, const SolPubkey *signer);
int64_t find_epoch_client(const CoordinatorAccount *a, const SolPubkey *signer);
bool is_halted(const CoordinatorAccount *a);
uint64_t config_check(const Config *c);
/* What a tick needs from the chain: time, the current slot, and SlotHashes for the next round's seed. */
typedef struct {
    uint64_t now, slot;
    const SolAccountInfo *slot_hashes;
} Chain;
uint64_t tick(CoordinatorAccount *a, const Chain *ch);
void change_state(CoordinatorAccount *a, uint8_t state, uint64_t now);
bool seed_ready(const CoordinatorAccount *a, const Chain *ch);
void set_seed_slot(CoordinatorAccount *a, uint64_t slot);
void capture_seed(CoordinatorAccount *a, const Chain *ch);
uint64_t start_round_train(CoordinatorAccount *a, const Chain *ch);
uint64_t round_seed(CoordinatorAccount *a, const Chain *ch);
void elect_witnesses(CoordinatorAccount *a, uint32_t count, uint64_t round_seed);
int64_t elected_slot(const CoordinatorAccount *a, uint64_t index);
const RegisteredClient *registry_entry(const CoordinatorAccount *a, const EpochClient *c);
uint64_t batch_size(const CoordinatorAccount *a, uint64_t data_index);
uint32_t witness_slots(uint32_t witness_nodes, uint32_t n_clients);
uint32_t witness_quorum(uint32_t n_witnesses, uint32_t witness_nodes);
bool participants_in_range(const uint8_t *bits, uint32_t clients_len);
uint32_t absent_mask(const Round *r, uint32_t quorum, uint64_t out[PARTICIPANT_BYTES / 8]);
uint64_t get_clock(uint64_t *now, uint64_t *slot);
uint64_t check_slot_hashes(const SolParameters *p, uint64_t i);
uint64_t find_instance_address(const uint8_t *run_id, uint64_t len, const SolPubkey *program_id, SolPubkey *out,
                               uint8_t *bump);
uint64_t bump_nonce(CoordinatorAccount *a);
uint64_t create_pda(const SolParameters *p, const PdaCreate *req);
uint64_t bank_points(const SolParameters *p, CoordinatorAccount *a, uint64_t slot); /* points.c */
/* client_ix.c, shared with verdict_ix.c */
uint64_t load_client(const SolParameters *p, Ctx *ctx, uint64_t slot_hashes_i);
uint64_t tick_now(const Ctx *ctx, uint64_t slot_hashes_i);
uint64_t healthy_epoch_client(const Ctx *ctx, int64_t *index);
void clear_tallies(CoordinatorAccount *a, uint32_t ring_slot); /* verdict_ix.c */

#endif
