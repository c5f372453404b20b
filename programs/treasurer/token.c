/* The SPL Token program (Tokenkeg..., v3 layouts) and the Associated Token Account program: account checks
 * on the raw layouts and the two CPIs the treasurer makes. Token-2022 is refused (WrongTokenProgram). */
#include "treasurer.h"

#define MINT_SIZE 82
#define TOKEN_ACCOUNT_SIZE 165
#define TA_OFF_MINT 0
#define TA_OFF_OWNER 32
#define TA_OFF_AMOUNT 64
#define TA_OFF_DELEGATE_TAG 72
#define TA_OFF_STATE 108
#define MINT_OFF_DECIMALS 44
#define MINT_OFF_INITIALIZED 45
#define TOKEN_STATE_INITIALIZED 1
#define TOKEN_STATE_FROZEN 2
#define TOKEN_IX_TRANSFER_CHECKED 12
#define ATA_IX_CREATE_IDEMPOTENT 1

uint64_t check_token_program(const SolAccountInfo *acc) {
    return sol_pubkey_eq(acc->key, &TOKEN_PROGRAM_ID) ? SOL_SUCCESS : T_WRONG_TOKEN_PROGRAM;
}

uint64_t check_mint(const SolAccountInfo *mint, uint8_t *decimals) {
    if (!sol_pubkey_eq(mint->owner, &TOKEN_PROGRAM_ID) || mint->data_len != MINT_SIZE ||
        mint->data[MINT_OFF_INITIALIZED] != 1)
        return T_INVALID_MINT;
    *decimals = mint->data[MINT_OFF_DECIMALS];
    return SOL_SUCCESS;
}

/* An initialized, unfrozen token account of `mint` held by `owner`, with no delegate. */
uint64_t check_token_account(const SolAccountInfo *acc, const SolPubkey *mint, const SolPubkey *owner,
                             uint64_t *amount) {
    if (!sol_pubkey_eq(acc->owner, &TOKEN_PROGRAM_ID) || acc->data_len != TOKEN_ACCOUNT_SIZE)
        return T_TOKEN_ACCOUNT_INVALID;
    const uint8_t *d = acc->data;
    if (d[TA_OFF_STATE] == 0) return T_TOKEN_ACCOUNT_INVALID;
    if (!sol_pubkey_eq((const SolPubkey *)(d + TA_OFF_MINT), mint)) return T_WRONG_MINT;
    if (!sol_pubkey_eq((const SolPubkey *)(d + TA_OFF_OWNER), owner)) return T_TOKEN_ACCOUNT_WRONG_OWNER;
    if (sol_read_u32(d + TA_OFF_DELEGATE_TAG) != 0) return T_TOKEN_ACCOUNT_DELEGATED;
    if (d[TA_OFF_STATE] != TOKEN_STATE_INITIALIZED) return T_TOKEN_ACCOUNT_FROZEN;
    *amount = sol_read_u64(d + TA_OFF_AMOUNT);
    return SOL_SUCCESS;
}

/* CreateIdempotent: an attacker who creates the Run PDA's token account first cannot block run_create. */
uint64_t create_vault(const SolParameters *p, const VaultCreate *r) {
    SolAccountInfo *payer = r->payer, *vault = r->vault, *owner = r->owner, *mint = r->mint, *ata = r->ata;
    if (!sol_pubkey_eq(ata->key, &ATA_PROGRAM_ID)) return T_WRONG_ASSOCIATED_TOKEN_PROGRAM;
    SolPubkey expected;
    uint8_t bump;
    SolSignerSeed seeds[3] = {{owner->key->x, 32}, {TOKEN_PROGRAM_ID.x, 32}, {mint->key->x, 32}};
    if (sol_find_pda(seeds, 3, &ATA_PROGRAM_ID, &expected, &bump) ||
        !sol_pubkey_eq(&expected, vault->key))
        return T_INVALID_PDA;
    uint8_t data[1] = {ATA_IX_CREATE_IDEMPOTENT};
    SolAccountMeta metas[6] = {{payer->key, true, true}, {vault->key, true, false}, {owner->key, false, false},
                               {mint->key, false, false}, {r->sys->key, false, false}, {r->token->key, false, false}};
    SolInstruction ix = {ata->key, metas, 6, data, sizeof(data)};
    return sol_invoke_signed_c(&ix, p->ka, p->ka_num, 0, 0);
}

uint64_t transfer_checked_signed(const SolParameters *p, const SignedTransfer *r) {
    uint8_t data[10];
    data[0] = TOKEN_IX_TRANSFER_CHECKED;
    sol_memcpy(data + 1, &r->amount, 8);
    data[9] = r->decimals;
    SolAccountMeta metas[4] = {{r->from->key, true, false}, {r->mint->key, false, false}, {r->to->key, true, false},
                               {r->authority->key, false, true}};
    SolInstruction ix = {(SolPubkey *)&TOKEN_PROGRAM_ID, metas, 4, data, sizeof(data)};
    return sol_invoke_signed_c(&ix, p->ka, p->ka_num, r->signer, 1);
}
