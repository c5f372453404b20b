/* Where the treasurer reads the coordinator's account: byte offsets into CoordinatorAccount and
 * RegisteredClient. layout_check.c asserts each one against programs/coordinator/coordinator.h at build
 * time, so a coordinator layout change breaks the treasurer build instead of its claims. */
#ifndef COORD_LAYOUT_H
#define COORD_LAYOUT_H
#define CA_SIZE 134592
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
#endif
