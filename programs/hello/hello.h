/* Shared declarations of the hello program's two objects (linking two objects exercises cross-object calls). */
#ifndef HELLO_H
#define HELLO_H
#include "sol_sdk.h"

/* Custom errors, Anchor-style numbering (>= 6000); the client sees InstructionErrorCustom(code). */
#define HELLO_ERR_NO_INSTRUCTION 6000
#define HELLO_ERR_UNKNOWN_INSTRUCTION 6001
#define HELLO_ERR_NOT_ENOUGH_ACCOUNTS 6002
#define HELLO_ERR_NOT_WRITABLE 6003
#define HELLO_ERR_WRONG_OWNER 6004
#define HELLO_ERR_PAYLOAD_TOO_BIG 6005
#define HELLO_ERR_MISSING_SIGNER 6006
#define HELLO_ERR_WRONG_PDA 6007
#define HELLO_ERR_NOT_SYSTEM_PROGRAM 6008
#define HELLO_ERR_BAD_ARGS 6009
#define HELLO_ERR_DELIBERATE 0x1234

/* Instruction tags (first byte of instruction data). */
enum { HELLO_WRITE = 0, HELLO_HASH = 1, HELLO_CLOCK = 2, HELLO_CREATE_PDA = 3, HELLO_FAIL = 4, HELLO_COUNT };

uint32_t hello_fnv1a(const uint8_t *data, uint64_t len);
const char *hello_instruction_name(uint8_t tag, uint64_t *len);
#endif
