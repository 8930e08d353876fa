/*
 * The daemon's half of the death watch (src/failover/death-watch.ts): a thread of this process
 * holds a robust, process-shared mutex in a memfd; the watcher process (deathwatch.c) waits on
 * it and holds dups of the master's proved peer links, sent here with SCM_RIGHTS.
 *
 * Why: a master killed outright is seen by its backup when the peer link closes, and the kernel
 * closes a dying process's sockets only after tearing down its memory (do_exit: exit_mm before
 * exit_files): 20-40 ms for a daemon of 100-300 MB, ~100 ms at 1 GB. A robust mutex's owner
 * dying is handled at the start of that thread's exit (exit_mm -> futex_exit_release, before the
 * memory goes): the kernel marks the mutex OWNER_DIED and wakes the waiter at once, which shuts
 * the links down (FIN to the backup) while the dead process is still being taken apart.
 *
 *   arm() -> { memfd, sock, peerSock }   the mutex is held by a thread of ours when it returns;
 *                                        memfd and peerSock go to the watcher (then closeFd)
 *   add(sock, fd, id)                     a dup of fd goes to the watcher, known as id
 *   release(sock, id)                     the watcher shuts that link down and closes its dup
 *   closeFd(fd)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <node_api.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/tw_napi.h"
#include "deathwatch.h"

static pthread_mutex_t armed_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t armed_cond = PTHREAD_COND_INITIALIZER;
static int armed = 0;
static dw_shared_t *shared = NULL;

/* The holder: locks the shared mutex and never lets go; it dies with the process. */
static void *holder(void *arg) {
  (void)arg;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);
  int r = pthread_mutex_lock(&shared->owner);
  pthread_mutex_lock(&armed_lock);
  armed = r == 0 || r == EOWNERDEAD ? 1 : -r;
  pthread_cond_signal(&armed_cond);
  pthread_mutex_unlock(&armed_lock);
  for (;;) pause();
  return NULL;
}

static napi_value js_arm(napi_env env, napi_callback_info info) {
  (void)info;
  if (shared != NULL) {
    napi_throw_error(env, "TW_DEATHWATCH", "arm(): already armed in this process");
    return NULL;
  }
  int memfd = memfd_create("twinwall-deathwatch", MFD_CLOEXEC);
  if (memfd < 0) return tw_throw_errno(env, "arm: memfd_create", errno);
  if (ftruncate(memfd, sizeof(dw_shared_t)) < 0) { int e = errno; close(memfd); return tw_throw_errno(env, "arm: ftruncate", e); }
  void *p = mmap(NULL, sizeof(dw_shared_t), PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
  if (p == MAP_FAILED) { int e = errno; close(memfd); return tw_throw_errno(env, "arm: mmap", e); }
  shared = p;
  shared->magic = DW_MAGIC;
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
  int r = pthread_mutex_init(&shared->owner, &a);
  pthread_mutexattr_destroy(&a);
  if (r != 0) return tw_throw_errno(env, "arm: pthread_mutex_init", r);
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) return tw_throw_errno(env, "arm: socketpair", errno);
  pthread_t t;
  pthread_attr_t ta;
  pthread_attr_init(&ta);
  pthread_attr_setstacksize(&ta, 64 * 1024);
  pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
  r = pthread_create(&t, &ta, holder, NULL);
  pthread_attr_destroy(&ta);
  if (r != 0) return tw_throw_errno(env, "arm: pthread_create", r);
  pthread_mutex_lock(&armed_lock);
  while (armed == 0) pthread_cond_wait(&armed_cond, &armed_lock);
  int got = armed;
  pthread_mutex_unlock(&armed_lock);
  if (got < 0) return tw_throw_errno(env, "arm: locking the shared mutex", -got);
  napi_value out;
  TW_CHECK(napi_create_object(env, &out));
  tw_set_uint(env, out, "memfd", (uint32_t)memfd);
  tw_set_uint(env, out, "sock", (uint32_t)sv[0]);
  tw_set_uint(env, out, "peerSock", (uint32_t)sv[1]);
  return out;
}

/* Read n uint32 arguments; false with a TypeError thrown. */
static bool uint_args(napi_env env, napi_callback_info info, size_t n, uint32_t *v, const char *usage) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < n) goto bad;
  for (size_t i = 0; i < n; i++)
    if (napi_get_value_uint32(env, argv[i], &v[i]) != napi_ok) goto bad;
  return true;
bad:
  napi_throw_type_error(env, "TW_DEATHWATCH_ARGS", usage);
  return false;
}

/* One message to the watcher, with a descriptor or without (fd < 0). */
static napi_value tell(napi_env env, int sock, uint32_t op, uint32_t id, int fd) {
  dw_frame_t f;
  struct msghdr *h = dw_frame(&f, fd >= 0);
  f.m.op = op;
  f.m.id = id;
  if (fd >= 0) {
    struct cmsghdr *c = CMSG_FIRSTHDR(h);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
  }
  ssize_t r;
  do r = sendmsg(sock, h, MSG_DONTWAIT | MSG_NOSIGNAL);
  while (r < 0 && errno == EINTR);
  if (r < 0) return tw_throw_errno(env, op == DW_ADD ? "deathwatch add" : "deathwatch release", errno);
  return NULL;
}

static napi_value js_add(napi_env env, napi_callback_info info) {
  uint32_t v[3];
  if (!uint_args(env, info, 3, v, "add(sock, fd, id)")) return NULL;
  return tell(env, (int)v[0], DW_ADD, v[2], (int)v[1]);
}

static napi_value js_release(napi_env env, napi_callback_info info) {
  uint32_t v[2];
  if (!uint_args(env, info, 2, v, "release(sock, id)")) return NULL;
  return tell(env, (int)v[0], DW_RELEASE, v[1], -1);
}

static napi_value js_close_fd(napi_env env, napi_callback_info info) {
  uint32_t v[1];
  if (!uint_args(env, info, 1, v, "closeFd(fd)")) return NULL;
  if (close((int)v[0]) < 0) return tw_throw_errno(env, "closeFd", errno);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"arm", NULL, js_arm, NULL, NULL, NULL, napi_default, NULL},
      {"add", NULL, js_add, NULL, NULL, NULL, napi_default, NULL},
      {"release", NULL, js_release, NULL, NULL, NULL, napi_default, NULL},
      {"closeFd", NULL, js_close_fd, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

NAPI_MODULE(twinwall_deathwatch, init)
