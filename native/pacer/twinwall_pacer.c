/*
 * The master's periodic adverts, sent by a thread of their own (src/failover/advert-pacer.ts).
 *
 * Why: the election ran its advert timer on a JavaScript thread, whose isolate stops for its own
 * garbage collections (13-14 ms full GCs measured with a 1 M entry table, the GC's helper threads
 * shared with the busy main isolate) and whose thread competes with the packet path for two
 * cores. With a 10 ms interval the backup takes over after ~30 ms of silence: a master held
 * 31-40 ms was a false takeover (bench/RESULTS.md, run L). This thread allocates nothing, takes
 * no lock shared with JavaScript but its own, and runs SCHED_FIFO where allowed (as keepalived's
 * vrrp_rt_priority): it wakes every interval, stamps the next sequence number into the advert,
 * signs it (HMAC-SHA256, native/common/tw_hmac.h) and sends it on every link's socket.
 *
 * JavaScript keeps the decisions. It sends adverts itself (send(): the same sequence numbers and
 * signing, from the calling thread) and tells the thread to repeat the last one (pace()) while it
 * is master. The thread stops by itself, and says why (state()), when:
 *   - it woke over three intervals late (the process was frozen: SIGSTOP, a stalled machine):
 *     the backup may have taken over, so it must not go on as a second master (frozen);
 *   - JavaScript did not renew its lease in time (the election thread hung): a master whose
 *     decisions are not being made must let the backup take over (lease).
 *
 *   create(fds, addrs, port, key, keyId, rtPriority, nice) -> pacer   fds: the links' sockets
 *                            (dup()ed), addrs: per link the destination IPv4 (host order)
 *   send(pacer, buf)         buf: an encoded advert (its first 44 bytes; 60 with the tag):
 *                            stamps seq, signs, sends on every link; keeps it as the template
 *   pace(pacer, intervalMs, leaseMs)   repeat the template every interval from now + interval,
 *                            until leaseMs from now unless renewed; intervalMs 0: stop
 *   renew(pacer, leaseMs)    the lease runs until leaseMs from now
 *   state(pacer) -> Float64Array  S_* below (with how long ago the last advert went out: the
 *                            election's test of whether it was frozen, whichever thread wakes first)
 *   close(pacer)             stops and joins the thread, closes the dups
 *   setCallerRealtime(priority) -> errno   the calling thread (a node's main thread: its packet
 *                            path and sync) to SCHED_RR at `priority` (1-99), or back to normal
 *                            scheduling with 0; 0 on success, else the errno (EPERM without
 *                            CAP_SYS_NICE). As conntrackd's and keepalived's Scheduler settings.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <node_api.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../common/tw_hmac.h"
#include "../common/tw_napi.h"

#define MAX_LINKS 16
#define ADVERT_BYTES 44
#define SEQ_OFFSET 24
#define DATAGRAM_BYTES (ADVERT_BYTES + TW_MAC_TAG)

/* state(): indexes of the Float64Array. */
enum {
  S_PACING,       /* 1 while the thread repeats the advert */
  S_STOPPED,      /* why it stopped by itself: 0 not, 1 frozen, 2 lease (until the next pace()) */
  S_SENT,         /* adverts sent by the thread */
  S_SENT_NOW,     /* adverts sent by send() */
  S_SEQ,          /* the last sequence number */
  S_LATE_MAX_US,  /* the thread's wake-up at worst this late past the due time */
  S_LATE,         /* wake-ups over one interval late */
  S_ERRORS,       /* sendto() failures (a link down: the others carry on) */
  S_POLICY,       /* 1: SCHED_FIFO, 0: normal scheduling */
  S_SCHED_ERRNO,  /* why SCHED_FIFO (or the nice value) was refused, 0 if not */
  S_STOP_LATE_US, /* how late the wake-up that stopped it was */
  S_SINCE_SENT_US, /* how long ago the last advert went out (by either), at the time of state(); -1 none yet */
  S_COUNT
};

typedef struct {
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cond;
  int started;
  int quit;
  int nlinks;
  int fds[MAX_LINKS];
  struct sockaddr_in dest[MAX_LINKS];
  tw_mac_key_t key;
  uint8_t key_id;
  int rt_priority;
  int nice;
  int nice_given;
  uint8_t tmpl[DATAGRAM_BYTES];
  int have_tmpl;
  uint32_t seq;
  int64_t last_sent_ns;
  /* Pacing, in CLOCK_MONOTONIC ns. */
  int pacing;
  int64_t interval_ns;
  int64_t due_ns;
  int64_t lease_until_ns;
  double st[S_COUNT];
  int closed;
} pacer_t;

static int64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Stamp the next seq into the template, sign it and send it on every link. Under p->mu. */
static void send_locked(pacer_t *p) {
  p->seq++;
  uint8_t *b = p->tmpl;
  b[SEQ_OFFSET] = (uint8_t)(p->seq >> 24);
  b[SEQ_OFFSET + 1] = (uint8_t)(p->seq >> 16);
  b[SEQ_OFFSET + 2] = (uint8_t)(p->seq >> 8);
  b[SEQ_OFFSET + 3] = (uint8_t)p->seq;
  b[4] = p->key_id;
  uint8_t d[TW_MAC_DIGEST];
  tw_hmac(&p->key, b, ADVERT_BYTES, d);
  memcpy(b + ADVERT_BYTES, d, TW_MAC_TAG);
  for (int i = 0; i < p->nlinks; i++) {
    if (sendto(p->fds[i], b, DATAGRAM_BYTES, MSG_DONTWAIT, (struct sockaddr *)&p->dest[i], sizeof(p->dest[i])) < 0) p->st[S_ERRORS]++;
  }
  p->st[S_SEQ] = p->seq;
  p->last_sent_ns = mono_ns();
}

static void stop_locked(pacer_t *p, int why, int64_t late_ns) {
  p->pacing = 0;
  p->st[S_PACING] = 0;
  p->st[S_STOPPED] = why;
  p->st[S_STOP_LATE_US] = (double)(late_ns / 1000);
}

static void set_scheduling(pacer_t *p) {
  if (p->rt_priority > 0) {
    struct sched_param sp = {.sched_priority = p->rt_priority};
    int err = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);
    if (err == 0) {
      p->st[S_POLICY] = 1;
      return;
    }
    p->st[S_SCHED_ERRNO] = err;
  }
  /* Normal scheduling: this thread's nice value (Linux: setpriority on the thread id). */
  if (p->nice_given && setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), p->nice) != 0 && p->st[S_SCHED_ERRNO] == 0) {
    p->st[S_SCHED_ERRNO] = errno;
  }
}

static void *run(void *arg) {
  pacer_t *p = arg;
  pthread_mutex_lock(&p->mu);
  set_scheduling(p);
  while (!p->quit) {
    if (!p->pacing) {
      pthread_cond_wait(&p->cond, &p->mu);
      continue;
    }
    int64_t now = mono_ns();
    if (now < p->due_ns) {
      struct timespec ts = {.tv_sec = p->due_ns / 1000000000, .tv_nsec = p->due_ns % 1000000000};
      pthread_cond_timedwait(&p->cond, &p->mu, &ts);
      continue; /* re-read everything: pace(), close() may have changed it */
    }
    int64_t late = now - p->due_ns;
    if (late > 3 * p->interval_ns) {
      stop_locked(p, 1, late);
      continue;
    }
    if (now > p->lease_until_ns) {
      stop_locked(p, 2, late);
      continue;
    }
    double late_us = (double)(late / 1000);
    if (late_us > p->st[S_LATE_MAX_US]) p->st[S_LATE_MAX_US] = late_us;
    if (late > p->interval_ns) p->st[S_LATE]++;
    send_locked(p);
    p->st[S_SENT]++;
    p->due_ns = now + p->interval_ns;
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

static void close_pacer(pacer_t *p) {
  if (p->closed) return;
  p->closed = 1;
  if (p->started) {
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
  }
  for (int i = 0; i < p->nlinks; i++) close(p->fds[i]);
  p->nlinks = 0;
}

/* The environment going away (the worker thread ends) stops the thread first. */
static void cleanup_hook(void *arg) {
  close_pacer(arg);
}

static void finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  pacer_t *p = data;
  if (!p->closed) {
    close_pacer(p);
    napi_remove_env_cleanup_hook(env, cleanup_hook, p);
  }
  pthread_cond_destroy(&p->cond);
  pthread_mutex_destroy(&p->mu);
  free(p);
}

static int get_int(napi_env env, napi_value v, int32_t *out) {
  return napi_get_value_int32(env, v, out) == napi_ok;
}

static napi_value js_create(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  TW_CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  const char *usage = "create(fds, addrs, port, key, keyId, rtPriority, nice): fds and addrs arrays of the same length (1-16), key from native/mac key()";
  bool isarr = false, isarr2 = false, isab = false;
  uint32_t n = 0, n2 = 0;
  if (argc < 7 || napi_is_array(env, argv[0], &isarr) != napi_ok || !isarr || napi_is_array(env, argv[1], &isarr2) != napi_ok || !isarr2 ||
      napi_get_array_length(env, argv[0], &n) != napi_ok || napi_get_array_length(env, argv[1], &n2) != napi_ok || n != n2 || n < 1 ||
      n > MAX_LINKS || napi_is_arraybuffer(env, argv[3], &isab) != napi_ok || !isab) {
    napi_throw_type_error(env, "TW_PACER_ARGS", usage);
    return NULL;
  }
  int32_t port, key_id, rt, nice;
  void *kp;
  size_t klen;
  if (!get_int(env, argv[2], &port) || port < 1 || port > 65535 || !get_int(env, argv[4], &key_id) || key_id < 0 || key_id > 255 ||
      !get_int(env, argv[5], &rt) || rt < 0 || rt > 99 || napi_get_arraybuffer_info(env, argv[3], &kp, &klen) != napi_ok ||
      klen != sizeof(tw_mac_key_t)) {
    napi_throw_type_error(env, "TW_PACER_ARGS", usage);
    return NULL;
  }
  napi_valuetype nt;
  napi_typeof(env, argv[6], &nt);
  int nice_given = nt == napi_number;
  if (nice_given && (!get_int(env, argv[6], &nice) || nice < -20 || nice > 19)) {
    napi_throw_type_error(env, "TW_PACER_ARGS", usage);
    return NULL;
  }
  pacer_t *p = calloc(1, sizeof(*p));
  if (!p) return tw_throw_errno(env, "pacer: create", ENOMEM);
  pthread_mutex_init(&p->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&p->cond, &ca);
  pthread_condattr_destroy(&ca);
  memcpy(&p->key, kp, sizeof(p->key));
  p->key_id = (uint8_t)key_id;
  p->rt_priority = rt;
  p->nice = nice_given ? nice : 0;
  p->nice_given = nice_given;
  for (uint32_t i = 0; i < n; i++) {
    napi_value fv, av;
    int32_t fd;
    uint32_t addr;
    if (napi_get_element(env, argv[0], i, &fv) != napi_ok || !get_int(env, fv, &fd) || fd < 0 || napi_get_element(env, argv[1], i, &av) != napi_ok ||
        napi_get_value_uint32(env, av, &addr) != napi_ok) {
      close_pacer(p);
      free(p);
      napi_throw_type_error(env, "TW_PACER_ARGS", usage);
      return NULL;
    }
    int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (d < 0) {
      int err = errno;
      close_pacer(p);
      free(p);
      return tw_throw_errno(env, "pacer: dup of a link's socket", err);
    }
    p->fds[p->nlinks++] = d;
    p->dest[i].sin_family = AF_INET;
    p->dest[i].sin_port = htons((uint16_t)port);
    p->dest[i].sin_addr.s_addr = htonl(addr);
  }
  int err = pthread_create(&p->thread, NULL, run, p);
  if (err != 0) {
    close_pacer(p);
    free(p);
    return tw_throw_errno(env, "pacer: pthread_create", err);
  }
  p->started = 1;
  napi_value obj;
  TW_CHECK(napi_create_object(env, &obj));
  TW_CHECK(napi_wrap(env, obj, p, finalize, NULL, NULL));
  napi_add_env_cleanup_hook(env, cleanup_hook, p);
  return obj;
}

static pacer_t *open_arg(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv, const char *usage) {
  pacer_t *p = tw_unwrap_arg(env, info, argc, argv);
  if (!p) {
    napi_throw_type_error(env, "TW_PACER_ARGS", usage);
    return NULL;
  }
  if (p->closed) {
    napi_throw_error(env, "TW_PACER_CLOSED", "pacer: closed");
    return NULL;
  }
  return p;
}

static napi_value js_send(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  const char *usage = "send(pacer, buf): buf an encoded advert of at least 44 bytes";
  pacer_t *p = open_arg(env, info, &argc, argv, usage);
  if (!p) return NULL;
  void *bp;
  size_t blen;
  if (argc < 2 || napi_get_buffer_info(env, argv[1], &bp, &blen) != napi_ok || blen < ADVERT_BYTES) {
    napi_throw_type_error(env, "TW_PACER_ARGS", usage);
    return NULL;
  }
  pthread_mutex_lock(&p->mu);
  memcpy(p->tmpl, bp, ADVERT_BYTES);
  p->have_tmpl = 1;
  send_locked(p);
  p->st[S_SENT_NOW]++;
  uint32_t seq = p->seq;
  pthread_mutex_unlock(&p->mu);
  napi_value r;
  napi_create_uint32(env, seq, &r);
  return r;
}

static napi_value js_pace(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  const char *usage = "pace(pacer, intervalMs, leaseMs): intervalMs 0 stops, else 1-65535 after a send(); leaseMs > 0";
  pacer_t *p = open_arg(env, info, &argc, argv, usage);
  if (!p) return NULL;
  int32_t iv, lease;
  if (argc < 3 || !get_int(env, argv[1], &iv) || iv < 0 || iv > 65535 || !get_int(env, argv[2], &lease) || lease < 1 || (iv > 0 && !p->have_tmpl)) {
    napi_throw_type_error(env, "TW_PACER_ARGS", usage);
    return NULL;
  }
  pthread_mutex_lock(&p->mu);
  if (iv == 0) {
    p->pacing = 0;
    p->st[S_PACING] = 0;
  } else {
    int64_t now = mono_ns();
    p->pacing = 1;
    p->interval_ns = (int64_t)iv * 1000000;
    p->due_ns = now + p->interval_ns;
    p->lease_until_ns = now + (int64_t)lease * 1000000;
    p->st[S_PACING] = 1;
    p->st[S_STOPPED] = 0;
  }
  pthread_cond_signal(&p->cond);
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

static napi_value js_renew(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  const char *usage = "renew(pacer, leaseMs): leaseMs > 0";
  pacer_t *p = open_arg(env, info, &argc, argv, usage);
  if (!p) return NULL;
  int32_t lease;
  if (argc < 2 || !get_int(env, argv[1], &lease) || lease < 1) {
    napi_throw_type_error(env, "TW_PACER_ARGS", usage);
    return NULL;
  }
  int64_t until = mono_ns() + (int64_t)lease * 1000000;
  pthread_mutex_lock(&p->mu);
  p->lease_until_ns = until;
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

static napi_value js_state(napi_env env, napi_callback_info info) {
  pacer_t *p = tw_unwrap_only(env, info, "TW_PACER_ARGS", "state(pacer)");
  if (!p) return NULL;
  double st[S_COUNT];
  pthread_mutex_lock(&p->mu);
  memcpy(st, p->st, sizeof(st));
  st[S_SINCE_SENT_US] = p->last_sent_ns == 0 ? -1 : (double)((mono_ns() - p->last_sent_ns) / 1000);
  pthread_mutex_unlock(&p->mu);
  return tw_counters(env, st, S_COUNT);
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  pacer_t *p = tw_unwrap_only(env, info, "TW_PACER_ARGS", "close(pacer)");
  if (!p) return NULL;
  if (!p->closed) {
    close_pacer(p);
    napi_remove_env_cleanup_hook(env, cleanup_hook, p);
  }
  return NULL;
}

static napi_value js_set_caller_realtime(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t prio;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || !get_int(env, argv[0], &prio) || prio < 0 || prio > 99) {
    napi_throw_range_error(env, "TW_PACER_ARGS", "setCallerRealtime(priority): an integer 0-99");
    return NULL;
  }
  struct sched_param sp = {.sched_priority = prio};
  int err = pthread_setschedparam(pthread_self(), prio > 0 ? SCHED_RR : SCHED_OTHER, &sp);
  napi_value r;
  napi_create_int32(env, err, &r);
  return r;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"create", NULL, js_create, NULL, NULL, NULL, napi_default, NULL},
      {"send", NULL, js_send, NULL, NULL, NULL, napi_default, NULL},
      {"pace", NULL, js_pace, NULL, NULL, NULL, napi_default, NULL},
      {"renew", NULL, js_renew, NULL, NULL, NULL, napi_default, NULL},
      {"state", NULL, js_state, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL},
      {"setCallerRealtime", NULL, js_set_caller_realtime, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  tw_set_uint(env, exports, "STATE_COUNT", S_COUNT);
  return exports;
}

NAPI_MODULE(twinwall_pacer, init)
