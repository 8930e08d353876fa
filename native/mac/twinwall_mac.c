/*
 * HMAC-SHA256 for sync datagrams and election adverts (src/sync/auth.ts), with each key's pads
 * absorbed once: a MAC is then one copy of the inner state, the message, and one 32-byte
 * outer block. SHA-256 is OpenSSL's (the copy inside node: its symbols are exported to addons),
 * so it uses the CPU's SHA extensions where they exist.
 *
 * Why here and not node:crypto: crypto.hash() costs ~1.3 us per call before hashing a byte
 * (measured: 1.5 us for 96 bytes, 2.2 us for 1.5 KB), and an HMAC is two of them plus copies:
 * ~6 us per 1.5 KB datagram, 0.17 us per entry of a bulk resync on each side. Here: ~1 us.
 *
 *   key(secret: Buffer) -> ArrayBuffer          the two precomputed states (opaque)
 *   sign(key, buf, len)                          writes the 16-byte tag at buf[len..len+16)
 *   verify(key, buf, len) -> boolean             the tag at buf[len..len+16) matches (constant time)
 *   digest(key, buf, len) -> Buffer              the full 32-byte HMAC (tests)
 */
#include <node_api.h>
#include <stdint.h>
#include <string.h>

#include "../common/tw_hmac.h"
#include "../common/tw_napi.h"

#define BLOCK TW_MAC_BLOCK
#define DIGEST TW_MAC_DIGEST
#define TAG TW_MAC_TAG

/* key(secret) -> ArrayBuffer holding the pads' states (RFC 2104: a key longer than the block is hashed first). */
static napi_value js_key(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  TW_CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  void *sp;
  size_t slen;
  bool isbuf = false;
  if (argc < 1 || napi_is_buffer(env, argv[0], &isbuf) != napi_ok || !isbuf || napi_get_buffer_info(env, argv[0], &sp, &slen) != napi_ok) {
    napi_throw_type_error(env, "TW_MAC_ARGS", "key(secret): secret must be a Buffer");
    return NULL;
  }
  uint8_t k[BLOCK];
  memset(k, 0, sizeof(k));
  if (slen > BLOCK) SHA256(sp, slen, k);
  else memcpy(k, sp, slen);
  uint8_t ipad[BLOCK], opad[BLOCK];
  for (int i = 0; i < BLOCK; i++) {
    ipad[i] = k[i] ^ 0x36;
    opad[i] = k[i] ^ 0x5c;
  }
  napi_value ab;
  void *p;
  TW_CHECK(napi_create_arraybuffer(env, sizeof(tw_mac_key_t), &p, &ab));
  tw_mac_key_t *mk = p;
  SHA256_Init(&mk->inner);
  SHA256_Update(&mk->inner, ipad, BLOCK);
  SHA256_Init(&mk->outer);
  SHA256_Update(&mk->outer, opad, BLOCK);
  memset(k, 0, sizeof(k));
  memset(ipad, 0, sizeof(ipad));
  memset(opad, 0, sizeof(opad));
  return ab;
}

/* The key's states, the message and len (checked: len + extra bytes lie within the buffer), or NULL with a TypeError thrown. */
static const tw_mac_key_t *args(napi_env env, napi_callback_info info, const char *what, size_t extra, uint8_t **buf, uint32_t *len) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3) goto bad;
  void *kp;
  size_t klen;
  bool isab = false;
  if (napi_is_arraybuffer(env, argv[0], &isab) != napi_ok || !isab) goto bad;
  if (napi_get_arraybuffer_info(env, argv[0], &kp, &klen) != napi_ok || klen != sizeof(tw_mac_key_t)) goto bad;
  void *bp;
  size_t blen;
  if (napi_get_buffer_info(env, argv[1], &bp, &blen) != napi_ok) goto bad;
  if (napi_get_value_uint32(env, argv[2], len) != napi_ok) goto bad;
  if ((size_t)*len + extra > blen) {
    napi_throw_range_error(env, "TW_MAC_RANGE", "mac: len + tag is beyond the buffer");
    return NULL;
  }
  *buf = bp;
  return kp;
bad:
  napi_throw_type_error(env, "TW_MAC_ARGS", what);
  return NULL;
}

static napi_value js_sign(napi_env env, napi_callback_info info) {
  uint8_t *buf;
  uint32_t len;
  const tw_mac_key_t *k = args(env, info, "sign(key, buf, len): key from key(), buf a Buffer, len a length", TAG, &buf, &len);
  if (!k) return NULL;
  uint8_t d[DIGEST];
  tw_hmac(k, buf, len, d);
  memcpy(buf + len, d, TAG);
  return NULL;
}

static napi_value js_verify(napi_env env, napi_callback_info info) {
  uint8_t *buf;
  uint32_t len;
  const tw_mac_key_t *k = args(env, info, "verify(key, buf, len): key from key(), buf a Buffer, len a length", TAG, &buf, &len);
  if (!k) return NULL;
  uint8_t d[DIGEST];
  tw_hmac(k, buf, len, d);
  uint8_t diff = 0;
  for (int i = 0; i < TAG; i++) diff |= d[i] ^ buf[len + i];
  napi_value r;
  napi_get_boolean(env, diff == 0, &r);
  return r;
}

static napi_value js_digest(napi_env env, napi_callback_info info) {
  uint8_t *buf;
  uint32_t len;
  const tw_mac_key_t *k = args(env, info, "digest(key, buf, len): key from key(), buf a Buffer, len a length", 0, &buf, &len);
  if (!k) return NULL;
  napi_value out;
  void *p;
  TW_CHECK(napi_create_buffer(env, DIGEST, &p, &out));
  tw_hmac(k, buf, len, p);
  return out;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"key", NULL, js_key, NULL, NULL, NULL, napi_default, NULL},
      {"sign", NULL, js_sign, NULL, NULL, NULL, napi_default, NULL},
      {"verify", NULL, js_verify, NULL, NULL, NULL, napi_default, NULL},
      {"digest", NULL, js_digest, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  tw_set_uint(env, exports, "TAG_BYTES", TAG);
  return exports;
}

NAPI_MODULE(twinwall_mac, init)
