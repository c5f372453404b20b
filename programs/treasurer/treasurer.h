/*
 * The treasurer program: administers coordinator runs whose rewards are SPL tokens. A `Run` PDA owns the
 * run's token account (its associated token account, "the vault") and is the coordinator run's main
 * authority, so only the treasurer (for the Run's own main authority) can administer that run. Every user
 * claims what the points the coordinator gave them are worth; `Participant` PDAs remember what was claimed.
 * Layouts are zero-copy C structs with explicit padding, read byte for byte by the IDL (programs/treasurer/idl.json).
 */
#ifndef TREASURER_H
#define TREASURER_H
#define SOL_MAX_ACCOUNTS 12 /* the account array lives on the heap (HEAP_ACCOUNTS), not the 512-byte stack */
#include "sol_sdk.h"
#include "pda_create.h" /* PdaCreate, pda_create */

/* Anchor discriminators (sha256("global:<name>")[:8] and sha256("account:<Name>")[:8], little-endian). */
#define IX_RUN_CREATE 0xfda73a0ef7a338c6ULL
#define IX_RUN_UPDATE 0x9d14420d742e5633ULL
#define IX_PARTICIPANT_CREATE 0xb546b075288eb132ULL
#define IX_PARTICIPANT_CLAIM 0x26ad6b3b56e896a0ULL
#define DISC_RUN 0xbdf673eb569b36c7ULL
#define DISC_PARTICIPANT 0x0636b3f74f6c8e20ULL

/* Errors start at 7000, not Anchor's 6000, so that a coordinator error (6000+) passed up through a CPI
 * keeps its own name in clients that decode both programs' errors. Names and messages are in the IDL. */
enum {
    T_INVALID_INSTRUCTION = 7000, T_NOT_ENOUGH_ACCOUNTS, T_MISSING_SIGNER, T_NOT_WRITABLE, T_WRONG_OWNER,
    T_WRONG_ACCOUNT_SIZE, T_WRONG_DISCRIMINATOR, T_INVALID_PDA, T_ALREADY_INITIALIZED, T_ACCOUNT_MISMATCH,
    T_UNAUTHORIZED, T_RUN_ID_INVALID_LENGTH, T_NOT_SYSTEM_PROGRAM, T_WRONG_TOKEN_PROGRAM,
    T_WRONG_ASSOCIATED_TOKEN_PROGRAM, T_WRONG_COORDINATOR_PROGRAM, T_INVALID_MINT, T_WRONG_MINT,
    T_TOKEN_ACCOUNT_INVALID, T_TOKEN_ACCOUNT_WRONG_OWNER, T_TOKEN_ACCOUNT_DELEGATED, T_TOKEN_ACCOUNT_FROZEN,
    T_COORDINATOR_ACCOUNT_INVALID, T_NOT_A_CLIENT, T_NOTHING_TO_CLAIM, T_CLAIM_EXCEEDS_EARNED,
    T_VAULT_UNDERFUNDED, T_ARITHMETIC_OVERFLOW, T_INVALID_RATE, T_NOTHING_TO_UPDATE, T_RUN_INDEX_MISMATCH,
    T_COORDINATOR_NOT_EXECUTABLE,
};

#define RUN_ID_MAX 32

typedef struct {
    uint64_t discriminator;
    uint8_t bump, run_id_len;
    uint8_t _pad[6];
    uint64_t index;
    SolPubkey main_authority, join_authority, coordinator_instance, coordinator_account, collateral_mint,
        collateral_vault;
    uint64_t collateral_per_point; /* token base units paid per point, fixed at run_create */
    uint64_t total_claimed_collateral_amount, total_claimed_earned_points;
    uint8_t run_id[RUN_ID_MAX];
    /* The coordinator program this Run administers, bound at run_create (the program the transaction named,
     * which must be executable): every CPI goes to it and every coordinator account read must belong to it,
     * so a treasurer serves a coordinator deployed at any id and a Run never talks to another one. */
    SolPubkey coordinator_program;
    uint8_t reserved[32];
} Run; /* 336 */

typedef struct {
    uint64_t discriminator;
    uint8_t bump;
    uint8_t _pad[7];
    SolPubkey run, user;
    uint64_t claimed_collateral_amount, claimed_earned_points;
    uint8_t reserved[32];
} Participant; /* 128 */

sol_assert_static(sizeof(Run) == 336, run_size);
sol_assert_static(sizeof(Participant) == 128, participant_size);

/* Heap scratch (SOL_HEAP_START + offset), disjoint per user. */
#define HEAP_ACCOUNTS 0
#define HEAP_CPI_DATA 1024

/* ---- program ids ------------------------------------------------------------------------------------ */
extern const SolPubkey TOKEN_PROGRAM_ID, ATA_PROGRAM_ID;

/* ---- helpers (accounts.c) --------------------------------------------------------------------------- */
uint64_t require_signer(const SolParameters *p, uint64_t i);
uint64_t load_run(const SolParameters *p, uint64_t i, Run **out);
uint64_t create_pda(const SolParameters *p, const PdaCreate *req);

/* ---- SPL Token / Associated Token Account (token.c) -------------------------------------------------- */
uint64_t check_token_program(const SolAccountInfo *acc);
uint64_t check_mint(const SolAccountInfo *mint, uint8_t *decimals);
uint64_t check_token_account(const SolAccountInfo *acc, const SolPubkey *mint, const SolPubkey *owner,
                             uint64_t *amount);
/* (BPF calls take at most 5 arguments, hence the request structs.) */
typedef struct {
    SolAccountInfo *payer, *vault, *owner, *mint, *sys, *token, *ata;
} VaultCreate;
uint64_t create_vault(const SolParameters *p, const VaultCreate *req);
typedef struct {
    SolAccountInfo *from, *mint, *to, *authority;
    uint64_t amount;
    uint8_t decimals;
    const SolSignerSeeds *signer;
} SignedTransfer;
uint64_t transfer_checked_signed(const SolParameters *p, const SignedTransfer *req);

/* ---- the coordinator, in one place (coordinator_cpi.c) ----------------------------------------------- */
typedef struct {
    SolAccountInfo *payer, *instance, *account, *sys;
    const SolPubkey *program; /* the coordinator program being bound */
    const uint8_t *run_id;
    uint64_t run_id_len;
    const SolPubkey *main_authority;
    const uint8_t *join_authority;
} InitRunCpi;
uint64_t coordinator_init_run(const SolParameters *p, const InitRunCpi *req);
/* An owner instruction signed by the Run PDA: data = discriminator + borsh args (already framed). */
typedef struct {
    uint64_t discriminator;
    const uint8_t *args;
    uint64_t len;
    SolAccountInfo *run, *instance, *account, *slot_hashes; /* slot_hashes: set_paused only, else 0 */
    const SolSignerSeeds *signer;
    const SolPubkey *program; /* the Run's bound coordinator program */
} OwnerCall;
uint64_t coordinator_owner_call(const SolParameters *p, const OwnerCall *c);
uint64_t coordinator_points(const SolAccountInfo *account, const Run *run, const SolPubkey *user, uint64_t *earned,
                            uint64_t *slashed);
uint64_t banked_points(const SolAccountInfo *points, const Run *run, const SolPubkey *user, uint64_t *earned,
                       uint64_t *slashed);

#include "coord_layout.h" /* the coordinator instructions the treasurer calls (CIX_*) */

/* ---- instructions ------------------------------------------------------------------------------------ */
#include "borsh_args.h"
uint64_t ix_run_create(const SolParameters *p, Args *args);
uint64_t ix_run_update(const SolParameters *p, Args *args);
uint64_t ix_participant_create(const SolParameters *p, Args *args);
uint64_t ix_participant_claim(const SolParameters *p, Args *args);

#endif
