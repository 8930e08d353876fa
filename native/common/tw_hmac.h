/*
 * HMAC-SHA256 with a key's pads absorbed once (RFC 2104), on the OpenSSL inside node (its
 * symbols are exported to addons). Shared by native/mac (sync datagrams and adverts signed from
 * JavaScript) and native/pacer (the master's periodic adverts, signed on the pacer's thread).
 * A key's state is made by native/mac key() and handed around as an opaque ArrayBuffer.
 */
#ifndef TW_HMAC_H
#define TW_HMAC_H

#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>
#include <stddef.h>
#include <stdint.h>

#define TW_MAC_BLOCK 64
#define TW_MAC_DIGEST 32
#define TW_MAC_TAG 16

typedef struct {
  SHA256_CTX inner; /* after K xor ipad */
  SHA256_CTX outer; /* after K xor opad */
} tw_mac_key_t;

static inline void tw_hmac(const tw_mac_key_t *k, const uint8_t *msg, size_t len, uint8_t out[TW_MAC_DIGEST]) {
  SHA256_CTX c = k->inner;
  SHA256_Update(&c, msg, len);
  SHA256_Final(out, &c);
  c = k->outer;
  SHA256_Update(&c, out, TW_MAC_DIGEST);
  SHA256_Final(out, &c);
}

#endif
