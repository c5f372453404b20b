/* The commitment's hashing (client/training/ef_parts.py) in C, so a trainer does not pay a Python call per
 * leaf and per node every round: ~2,900 hashlib calls and a gather of every block on the demo's model, most of
 * the commitment's CPU. The bytes hashed are exactly ef_parts' (leaf: sha256(0x00 || leaf); node:
 * sha256(0x01 || left || right); an odd last node carried up), so both paths give the same root; the Python
 * one stays the reference and the fallback (tests/unit/test_ef_native.py compares them).
 *
 * SHA-256 is OpenSSL's libcrypto, the library Python's hashlib already loads (its SHA-NI / AVX2 code paths).
 * Its low-level SHA256_* calls are declared here so no OpenSSL headers are needed to build. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* OpenSSL's SHA256_CTX is 112 bytes (8 + 2 + 16 + 2 32-bit words); reserved with room to spare. */
typedef struct { uint64_t words[32]; } sha_ctx;
int SHA256_Init(sha_ctx *c);
int SHA256_Update(sha_ctx *c, const void *data, size_t len);
int SHA256_Final(unsigned char *md, sha_ctx *c);

/* One parameter's leaves, written and hashed: row b of `rows` (blocks x (1 + leaf bytes)) becomes 0x00 || leaf b
 * and out[32 * b] its hash. `delta`: the parameter's δ as a contiguous f32 matrix of `nrows` x `ncols` (its
 * leading dims folded into the rows), cut into h x w blocks taken row-major over the (nrows / h) x (ncols / w)
 * grid, ChunkPlan.blocks_shape's order. A leaf is δ on the block's cells, row by row, then (when `idx` is not
 * NULL) the block's k sent indices (i64) and k values (f32). The rows are the trainer's kept copy of its state
 * (openings read them later), so the copy and the hashing are one pass over δ. */
int psyche_hash_blocks(const float *delta, size_t nrows, size_t ncols, size_t h, size_t w,
                       const int64_t *idx, const float *val, size_t k, uint8_t *rows, uint8_t *out) {
    if (h == 0 || w == 0 || nrows % h || ncols % w)
        return -2;
    size_t size = 1 + 4 * h * w + (idx ? 12 * k : 0), across = ncols / w, blocks = nrows / h * across;
    sha_ctx c;
    for (size_t b = 0; b < blocks; b++) {
        const float *corner = delta + (b / across) * h * ncols + (b % across) * w;
        uint8_t *leaf = rows + b * size, *at = leaf + 1;
        leaf[0] = 0x00;
        for (size_t r = 0; r < h; r++, at += 4 * w)
            memcpy(at, corner + r * ncols, 4 * w);
        if (idx) {
            memcpy(at, idx + b * k, 8 * k);
            memcpy(at + 8 * k, val + b * k, 4 * k);
        }
        if (!SHA256_Init(&c) || !SHA256_Update(&c, leaf, size) || !SHA256_Final(out + 32 * b, &c))
            return -1;
    }
    return 0;
}

/* Every level above the `n` leaf hashes at `leaves` (32 B each), written one after another into `out`
 * (room for psyche_tree_size(n) hashes): the level sizes are ceil(n / 2), ceil(n / 4), ... down to 1. */
size_t psyche_tree_size(size_t n) {
    size_t total = 0;
    while (n > 1) {
        n = (n + 1) / 2;
        total += n;
    }
    return total;
}

int psyche_build_tree(const uint8_t *leaves, size_t n, uint8_t *out) {
    static const uint8_t node_prefix = 0x01;
    const uint8_t *level = leaves;
    sha_ctx primed, c;
    if (!SHA256_Init(&primed) || !SHA256_Update(&primed, &node_prefix, 1))
        return -1;
    while (n > 1) {
        size_t pairs = n / 2;
        for (size_t i = 0; i < pairs; i++) {
            memcpy(&c, &primed, sizeof c);
            if (!SHA256_Update(&c, level + 64 * i, 64) || !SHA256_Final(out + 32 * i, &c))
                return -1;
        }
        if (n % 2)
            memcpy(out + 32 * pairs, level + 32 * (n - 1), 32);
        level = out;
        n = (n + 1) / 2;
        out += 32 * n;
    }
    return 0;
}
