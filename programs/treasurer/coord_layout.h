/* Where the treasurer reads the coordinator's account: byte offsets into CoordinatorAccount and
 * RegisteredClient, and the instructions it calls. layout_check.c asserts each one against programs/coordinator/coordinator.h at build
 * time, so a coordinator layout change breaks the treasurer build instead of its claims. */
#ifndef COORD_LAYOUT_H
#define COORD_LAYOUT_H
#define CA_SIZE 150976
#define CA_DISCRIMINATOR 0x2b569b2c37b121efULL
#define CA_VERSION_VALUE 1
#define CA_OFF_VERSION 8
#define CA_OFF_INSTANCE 24
#define CA_OFF_RUN_ID 56
#define CA_OFF_RUN_ID_LEN 92
#define CA_OFF_NUM_CLIENTS 256
#define CA_OFF_CLIENTS 57792
#define CA_MAX_CLIENTS 256
#define RC_SIZE 152
#define RC_OFF_SIGNER 0
#define RC_OFF_EARNED 136
#define RC_OFF_SLASHED 144
/* A wallet's banked points: ClientPoints, PDA ["points", coordinator account, wallet] of the coordinator. */
#define CP_SIZE 96
#define CP_DISCRIMINATOR 0xb3bc853ecdc585a0ULL
#define CP_OFF_ACCOUNT 8
#define CP_OFF_SIGNER 40
#define CP_OFF_EARNED 72
#define CP_OFF_SLASHED 80
#define CP_OFF_BUMP 88
/* The coordinator instructions the treasurer calls by CPI (its Anchor discriminators). */
#define CIX_INIT_RUN 0x2a65dfe6ac796994ULL
#define CIX_UPDATE_CONFIG 0x63db530abffc9e1dULL
#define CIX_UPDATE_METADATA 0xbae14e61ef2bb6aaULL
#define CIX_UPDATE_MODEL 0x49185367102ce64cULL
#define CIX_UPDATE_PROGRESS 0x6f159e1b714e2f87ULL
#define CIX_SET_FUTURE_EPOCH_RATES 0x81b6c8c757a015efULL
#define CIX_SET_PAUSED 0xdaa6e1b0c07d3c5bULL
#define CIX_SET_CHECKPOINT 0x506826df87ee4fc7ULL
#endif
