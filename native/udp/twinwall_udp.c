/*
 * Batched receiving for a UDP socket node's dgram opened (the sync link): recvmmsg() of up to
 * SLOTS datagrams into a shared arena per readable event, then ONE JavaScript call with the
 * count, instead of a libuv callback, a Buffer and an event per datagram (~15 us each measured
 * on a bulk resync of 30 k datagrams, most of the receiving node's time).
 *
 * The socket stays node's (it binds, joins the group, sends); this addon polls a dup() of its
 * descriptor after node stopped reading it (handle.recvStop()).
 *
 * Shared memory, ArrayBuffers held by the returned object:
 *   arena: SLOTS x SLOT_SIZE bytes, datagram i at i x SLOT_SIZE
 *   desc:  per datagram DESC_INTS int32: length, flags (1 = truncated), source IPv4 address
 *          (host order), source port
 * A datagram's bytes are valid only during the call: the next read reuses the slot.
 *
 * Batched sending: sender(fd, addr, port) and send(tx, bufs, count) hand count Buffers
 * to the kernel with sendmmsg() (up to SEND_BATCH per call) on a dup of the same socket, instead
 * of one dgram send (a SendWrap, a lookup, a libuv request: ~5-8 us) per datagram. It stops at
 * the first EAGAIN (socket buffer full) and returns how many went: the caller hands the rest to
 * dgram, which waits for the socket to drain. Other errors (ENOBUFS, an unreachable peer) skip
 * that datagram and are counted, as the sync repairs loss by itself.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <node_api.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "../common/tw_napi.h"

#define SLOTS 64
#define SLOT_SIZE 65536
#define DESC_INTS 4
#define BATCHES_PER_EVENT 8
#define SEND_BATCH 64

enum { C_BATCHES, C_DATAGRAMS, C_TRUNCATED, C_ERRORS, C_MAX_BATCH, C_COUNT };

typedef struct {
  int fd;
  int closed;
  int in_callback;
  int close_pending;
  napi_env env;
  uv_poll_t *poll;
  napi_ref cb_ref;
  napi_ref self_ref;
  napi_async_context actx;
  uint8_t *arena;
  int32_t *desc;
  struct mmsghdr msgs[SLOTS];
  struct iovec iov[SLOTS];
  struct sockaddr_in from[SLOTS];
  double counters[C_COUNT];
} rx_t;

static void rx_close(rx_t *q) {
  if (q->closed) return;
  q->closed = 1;
  q->close_pending = 0;
  if (q->poll) {
    uv_poll_stop(q->poll);
    uv_close((uv_handle_t *)q->poll, tw_free_handle);
    q->poll = NULL;
  }
  if (q->fd >= 0) close(q->fd);
  q->fd = -1;
}

static void on_readable(uv_poll_t *handle, int status, int events) {
  (void)events;
  rx_t *q = (rx_t *)handle->data;
  if (q->closed) return;
  if (status < 0) {
    q->counters[C_ERRORS]++;
    return;
  }
  napi_env env = q->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  for (int round = 0; round < BATCHES_PER_EVENT && !q->closed; round++) {
    for (int i = 0; i < SLOTS; i++) {
      q->iov[i].iov_base = q->arena + (size_t)i * SLOT_SIZE;
      q->iov[i].iov_len = SLOT_SIZE;
      memset(&q->msgs[i].msg_hdr, 0, sizeof(struct msghdr));
      q->msgs[i].msg_hdr.msg_iov = &q->iov[i];
      q->msgs[i].msg_hdr.msg_iovlen = 1;
      q->msgs[i].msg_hdr.msg_name = &q->from[i];
      q->msgs[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_in);
    }
    int n = recvmmsg(q->fd, q->msgs, SLOTS, MSG_DONTWAIT, NULL);
    if (n < 0) {
      if (errno == EINTR) continue;
      /* EAGAIN: drained. Anything else (an ICMP error queued on the socket) is counted. */
      if (errno != EAGAIN && errno != EWOULDBLOCK) q->counters[C_ERRORS]++;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      continue;
    }
    if (n == 0) break;
    for (int i = 0; i < n; i++) {
      int32_t *d = q->desc + (size_t)i * DESC_INTS;
      int trunc = (q->msgs[i].msg_hdr.msg_flags & MSG_TRUNC) != 0;
      d[0] = (int32_t)(trunc ? SLOT_SIZE : q->msgs[i].msg_len);
      d[1] = trunc;
      d[2] = (int32_t)ntohl(q->from[i].sin_addr.s_addr);
      d[3] = ntohs(q->from[i].sin_port);
      if (trunc) q->counters[C_TRUNCATED]++;
    }
    q->counters[C_BATCHES]++;
    q->counters[C_DATAGRAMS] += n;
    if (n > q->counters[C_MAX_BATCH]) q->counters[C_MAX_BATCH] = n;
    q->in_callback = 1;
    napi_status st = tw_call_batch(env, q->actx, q->self_ref, q->cb_ref, n);
    q->in_callback = 0;
    if (q->close_pending) rx_close(q);
    if (st != napi_ok) {
      tw_rethrow(env);
      break;
    }
    if (n < SLOTS) break;
  }
  napi_close_handle_scope(env, scope);
}

static void finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  rx_t *q = (rx_t *)data;
  rx_close(q);
  if (q->actx) napi_async_destroy(env, q->actx);
  free(q);
}


/* open(fd, onBatch) -> { arena, desc }: polls a dup of fd. */
static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], self;
  TW_CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  napi_valuetype t;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_typeof(env, argv[1], &t) != napi_ok || t != napi_function || fd < 0) {
    napi_throw_type_error(env, "TW_UDP_ARGS", "open(fd, onBatch)");
    return NULL;
  }
  rx_t *q = calloc(1, sizeof(rx_t));
  if (!q) return tw_throw_errno(env, "open", ENOMEM);
  q->env = env;
  q->fd = -1;
  napi_value arena, desc;
  void *p;
  if (napi_create_arraybuffer(env, (size_t)SLOTS * SLOT_SIZE, &p, &arena) != napi_ok) { free(q); return tw_throw_errno(env, "open: the arena", ENOMEM); }
  q->arena = p;
  if (napi_create_arraybuffer(env, SLOTS * DESC_INTS * 4, &p, &desc) != napi_ok) { free(q); return tw_throw_errno(env, "open: the descriptors", ENOMEM); }
  q->desc = p;
  q->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (q->fd < 0) { int e = errno; free(q); return tw_throw_errno(env, "open: dup", e); }
  int fl = fcntl(q->fd, F_GETFL);
  if (fl < 0 || fcntl(q->fd, F_SETFL, fl | O_NONBLOCK) < 0) { int e = errno; close(q->fd); free(q); return tw_throw_errno(env, "open: O_NONBLOCK", e); }
  TW_CHECK(napi_create_object(env, &self));
  TW_CHECK(napi_set_named_property(env, self, "arena", arena));
  TW_CHECK(napi_set_named_property(env, self, "desc", desc));
  TW_CHECK(napi_create_reference(env, argv[1], 1, &q->cb_ref));
  TW_CHECK(napi_create_reference(env, self, 0, &q->self_ref));
  napi_value name;
  TW_CHECK(napi_create_string_utf8(env, "twinwall:udp", NAPI_AUTO_LENGTH, &name));
  TW_CHECK(napi_async_init(env, self, name, &q->actx));
  TW_CHECK(napi_wrap(env, self, q, finalize, NULL, NULL));
  q->poll = tw_poll_readable(env, q->fd, q, on_readable);
  if (!q->poll) {
    rx_close(q);
    return tw_throw_errno(env, "open: polling the socket", EINVAL);
  }
  uint32_t rc;
  napi_reference_ref(env, q->self_ref, &rc);
  return self;
}

/* close(rx): stop polling, close the dup (node's socket stays open). */
static napi_value js_close(napi_env env, napi_callback_info info) {
  rx_t *q = tw_unwrap_only(env, info, "TW_UDP_ARGS", "close(rx): not a receiver");
  if (!q) return NULL;
  if (!q->closed && !q->close_pending) {
    napi_reference_unref(env, q->self_ref, NULL);
    if (q->in_callback) q->close_pending = 1;
    else rx_close(q);
  }
  return NULL;
}

/* stats(rx) -> Float64Array: batches, datagrams, truncated, errors, largest batch. */
static napi_value js_stats(napi_env env, napi_callback_info info) {
  rx_t *q = tw_unwrap_only(env, info, "TW_UDP_ARGS", "stats(rx): not a receiver");
  if (!q) return NULL;
  return tw_counters(env, q->counters, C_COUNT);
}

enum { T_CALLS, T_SYSCALLS, T_DATAGRAMS, T_ERRORS, T_AGAIN, T_COUNT };

typedef struct {
  int fd;
  struct sockaddr_in to;
  struct mmsghdr msgs[SEND_BATCH];
  struct iovec iov[SEND_BATCH];
  double counters[T_COUNT];
  int last_errno;
} tx_t;

static void tx_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  tx_t *t = data;
  if (t->fd >= 0) close(t->fd);
  free(t);
}

/* sender(fd, addr, port) -> tx: sends to addr:port (IPv4, host order) on a dup of fd. */
static napi_value js_sender(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3], self;
  TW_CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  uint32_t addr, port;
  if (argc < 3 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0 || napi_get_value_uint32(env, argv[1], &addr) != napi_ok ||
      napi_get_value_uint32(env, argv[2], &port) != napi_ok || port == 0 || port > 65535) {
    napi_throw_type_error(env, "TW_UDP_ARGS", "sender(fd, addr, port)");
    return NULL;
  }
  tx_t *t = calloc(1, sizeof(tx_t));
  if (!t) return tw_throw_errno(env, "sender", ENOMEM);
  t->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (t->fd < 0) { int e = errno; free(t); return tw_throw_errno(env, "sender: dup", e); }
  t->to.sin_family = AF_INET;
  t->to.sin_addr.s_addr = htonl(addr);
  t->to.sin_port = htons((uint16_t)port);
  for (int i = 0; i < SEND_BATCH; i++) {
    t->msgs[i].msg_hdr.msg_iov = &t->iov[i];
    t->msgs[i].msg_hdr.msg_iovlen = 1;
    t->msgs[i].msg_hdr.msg_name = &t->to;
    t->msgs[i].msg_hdr.msg_namelen = sizeof(t->to);
  }
  TW_CHECK(napi_create_object(env, &self));
  if (napi_wrap(env, self, t, tx_finalize, NULL, NULL) != napi_ok) {
    tx_finalize(env, t, NULL);
    napi_throw_error(env, "TW_NAPI", "sender: napi_wrap failed");
    return NULL;
  }
  return self;
}

/* send(tx, bufs, count) -> how many of bufs[0..count) went (stops at EAGAIN). */
static napi_value js_send(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  tx_t *t = tw_unwrap_arg(env, info, &argc, argv);
  uint32_t count;
  if (!t || argc < 3 || napi_get_value_uint32(env, argv[2], &count) != napi_ok) {
    napi_throw_type_error(env, "TW_UDP_ARGS", "send(tx, bufs, count)");
    return NULL;
  }
  t->counters[T_CALLS]++;
  uint32_t done = 0;
  while (done < count) {
    uint32_t n = count - done < SEND_BATCH ? count - done : SEND_BATCH;
    for (uint32_t i = 0; i < n; i++) {
      napi_value b;
      void *p;
      size_t len;
      if (napi_get_element(env, argv[1], done + i, &b) != napi_ok || napi_get_buffer_info(env, b, &p, &len) != napi_ok) {
        napi_throw_type_error(env, "TW_UDP_ARGS", "send: bufs must hold Buffers");
        return NULL;
      }
      t->iov[i].iov_base = p;
      t->iov[i].iov_len = len;
    }
    t->counters[T_SYSCALLS]++;
    int r = sendmmsg(t->fd, t->msgs, n, MSG_DONTWAIT);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        t->counters[T_AGAIN]++;
        break;
      }
      /* This datagram cannot go (ENOBUFS, ENETUNREACH, ...): skip it, count it. */
      t->last_errno = errno;
      t->counters[T_ERRORS]++;
      done++;
      continue;
    }
    t->counters[T_DATAGRAMS] += r;
    done += (uint32_t)r;
  }
  napi_value out;
  napi_create_uint32(env, done, &out);
  return out;
}

/* txStats(tx) -> Float64Array: calls, sendmmsg calls, datagrams sent, errors, EAGAIN stops, last errno. */
static napi_value js_tx_stats(napi_env env, napi_callback_info info) {
  tx_t *t = tw_unwrap_only(env, info, "TW_UDP_ARGS", "txStats(tx): not a sender");
  if (!t) return NULL;
  double c[T_COUNT + 1];
  memcpy(c, t->counters, sizeof(t->counters));
  c[T_COUNT] = t->last_errno;
  return tw_counters(env, c, T_COUNT + 1);
}

/* txClose(tx): close the dup (node's socket stays open). */
static napi_value js_tx_close(napi_env env, napi_callback_info info) {
  tx_t *t = tw_unwrap_only(env, info, "TW_UDP_ARGS", "txClose(tx): not a sender");
  if (!t) return NULL;
  if (t->fd >= 0) close(t->fd);
  t->fd = -1;
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"open", NULL, js_open, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL},
      {"stats", NULL, js_stats, NULL, NULL, NULL, napi_default, NULL},
      {"sender", NULL, js_sender, NULL, NULL, NULL, napi_default, NULL},
      {"send", NULL, js_send, NULL, NULL, NULL, napi_default, NULL},
      {"txStats", NULL, js_tx_stats, NULL, NULL, NULL, napi_default, NULL},
      {"txClose", NULL, js_tx_close, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  tw_set_uint(env, exports, "SLOTS", SLOTS);
  tw_set_uint(env, exports, "SLOT_SIZE", SLOT_SIZE);
  tw_set_uint(env, exports, "DESC_INTS", DESC_INTS);
  return exports;
}

NAPI_MODULE(twinwall_udp, init)
