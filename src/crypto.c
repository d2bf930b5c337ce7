/*
 * crypto.c - SHA-256, HMAC-SHA256, random bytes and a constant-time comparison on libcrypto.
 */
#include "crypto.h"

#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

int kl_sha256(const void *data, size_t n, unsigned char out[KL_SHA256_LEN]) {
    unsigned int len = 0;
    return EVP_Digest(data, n, out, &len, EVP_sha256(), NULL) == 1 && len == KL_SHA256_LEN ? 0 : -1;
}

int kl_hmac_sha256(const void *key, size_t klen, const void *data, size_t n, unsigned char out[KL_SHA256_LEN]) {
    unsigned int len = 0;
    if (klen > INT_MAX) return -1;
    if (!HMAC(EVP_sha256(), key, (int)klen, data, n, out, &len) || len != KL_SHA256_LEN) return -1;
    return 0;
}

int kl_random_bytes(void *out, size_t n) {
    if (n > INT_MAX) return -1;
    return RAND_bytes(out, (int)n) == 1 ? 0 : -1;
}

int kl_equal_ct(const void *a, const void *b, size_t n) {
    return CRYPTO_memcmp(a, b, n) == 0;
}
