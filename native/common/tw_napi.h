/*
 * What twinwall's native addons share: errors thrown to JavaScript, the object <-> state wrap,
 * counters handed out as a Float64Array, and the one call per batch into JavaScript.
 */
#ifndef TW_NAPI_H
#define TW_NAPI_H

#include <node_api.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define TW_CHECK(call)                                                   \
  do {                                                                   \
    if ((call) != napi_ok) {                                             \
      napi_throw_error(env, "TW_NAPI", "twinwall addon: " #call " failed"); \
      return NULL;                                                       \
    }                                                                    \
  } while (0)

/* Throws an Error "what: strerror(err)" with code E<errno> and an errno property. */
static inline napi_value tw_throw_errno(napi_env env, const char *what, int err) {
  char msg[256];
  char code[32];
  snprintf(msg, sizeof(msg), "%s: %s", what, strerror(err));
  snprintf(code, sizeof(code), "E%d", err);
  napi_value m, c, e, no;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &c);
  napi_create_error(env, c, m, &e);
  napi_create_int32(env, err, &no);
  napi_set_named_property(env, e, "errno", no);
  napi_throw(env, e);
  return NULL;
}

/* The state napi_wrap()ed on the first argument, or NULL. */
static inline void *tw_unwrap_arg(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv) {
  if (napi_get_cb_info(env, info, argc, argv, NULL, NULL) != napi_ok || *argc < 1) return NULL;
  void *p = NULL;
  if (napi_unwrap(env, argv[0], &p) != napi_ok) return NULL;
  return p;
}

/* The state wrapped on the only argument, or NULL with a TypeError `code`: `usage` thrown. */
static inline void *tw_unwrap_only(napi_env env, napi_callback_info info, const char *code, const char *usage) {
  size_t argc = 1;
  napi_value argv[1];
  void *p = tw_unwrap_arg(env, info, &argc, argv);
  if (!p) napi_throw_type_error(env, code, usage);
  return p;
}

/* A copy of `n` counters as a Float64Array. */
static inline napi_value tw_counters(napi_env env, const double *counters, size_t n) {
  napi_value ab, arr;
  void *p;
  TW_CHECK(napi_create_arraybuffer(env, n * sizeof(double), &p, &ab));
  memcpy(p, counters, n * sizeof(double));
  TW_CHECK(napi_create_typedarray(env, napi_float64_array, n, ab, 0, &arr));
  return arr;
}

/* uv_close callback of a poll handle allocated apart from its owner (libuv may touch it late). */
static inline void tw_free_handle(uv_handle_t *h) {
  free(h);
}

/* cb.call(self, count) inside the async context; returns the status (exception still pending). */
static inline napi_status tw_call_batch(napi_env env, napi_async_context actx, napi_ref self_ref, napi_ref cb_ref, int count) {
  napi_value cb, recv, arg, result;
  napi_get_reference_value(env, cb_ref, &cb);
  napi_get_reference_value(env, self_ref, &recv);
  napi_create_int32(env, count, &arg);
  return napi_make_callback(env, actx, recv, cb, 1, &arg, &result);
}

/* A handler that threw: its exception goes to process 'uncaughtException', as from an event. */
static inline void tw_rethrow(napi_env env) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) {
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_fatal_exception(env, err);
  }
}

/* obj[name] = v (an unsigned integer). */
static inline void tw_set_uint(napi_env env, napi_value obj, const char *name, uint32_t v) {
  napi_value x;
  napi_create_uint32(env, v, &x);
  napi_set_named_property(env, obj, name, x);
}

/* A poll handle of its own (freed by tw_free_handle on close) watching fd for reading; NULL on failure. */
static inline uv_poll_t *tw_poll_readable(napi_env env, int fd, void *data, uv_poll_cb cb) {
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return NULL;
  uv_poll_t *h = calloc(1, sizeof(uv_poll_t));
  if (!h) return NULL;
  if (uv_poll_init(loop, h, fd) != 0) {
    free(h);
    return NULL;
  }
  h->data = data;
  uv_poll_start(h, UV_READABLE, cb);
  return h;
}

#endif
