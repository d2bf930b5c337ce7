/*
 * crypto.h - the few cryptographic primitives the library needs, from OpenSSL's libcrypto
 * (which libcurl already links): SHA-256 (PKCE challenges), HMAC-SHA256 (webhook signatures),
 * random bytes (PKCE verifiers, OAuth state) and a comparison whose time does not depend on
 * where two strings differ (signature checks).
 */
#ifndef KL_CRYPTO_H
#define KL_CRYPTO_H

#include <stddef.h>

#define KL_SHA256_LEN 32

/* out = SHA-256(data): 0, or -1 when libcrypto failed. */
int kl_sha256(const void *data, size_t n, unsigned char out[KL_SHA256_LEN]);

/* out = HMAC-SHA256(key, data): 0, or -1 when libcrypto failed. */
int kl_hmac_sha256(const void *key, size_t klen, const void *data, size_t n, unsigned char out[KL_SHA256_LEN]);

/* n bytes from the system's cryptographic random source: 0, or -1 when none could be had. */
int kl_random_bytes(void *out, size_t n);

/* 1 when a and b (n bytes each) are equal, else 0, in time that depends on n alone. */
int kl_equal_ct(const void *a, const void *b, size_t n);

#endif
