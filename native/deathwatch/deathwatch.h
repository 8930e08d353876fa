/* What the daemon (twinwall_deathwatch.c) and its watcher (deathwatch.c) share. */
#ifndef TW_DEATHWATCH_H
#define TW_DEATHWATCH_H

#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#define DW_MAGIC 0x54574457u /* "TWDW" */

/* The memfd's contents: a robust, process-shared mutex a thread of the daemon holds for life. */
typedef struct {
  uint32_t magic;
  pthread_mutex_t owner;
} dw_shared_t;

/* Messages on the SOCK_SEQPACKET pair, daemon -> watcher. */
enum { DW_ADD = 1, DW_RELEASE = 2 };
typedef struct {
  uint32_t op; /* DW_ADD carries the link's descriptor (SCM_RIGHTS) */
  uint32_t id;
} dw_msg_t;

/* One message with room for one descriptor: the header points into it. */
typedef struct {
  dw_msg_t m;
  struct iovec iov;
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } u;
  struct msghdr h;
} dw_frame_t;

/* Point f's header at its message and, with_fd, at its room for a descriptor. */
static inline struct msghdr *dw_frame(dw_frame_t *f, int with_fd) {
  memset(&f->h, 0, sizeof(f->h));
  memset(&f->u, 0, sizeof(f->u));
  f->iov.iov_base = &f->m;
  f->iov.iov_len = sizeof(f->m);
  f->h.msg_iov = &f->iov;
  f->h.msg_iovlen = 1;
  if (with_fd) {
    f->h.msg_control = f->u.buf;
    f->h.msg_controllen = sizeof(f->u.buf);
  }
  return &f->h;
}

/* The watcher's descriptors: the memfd and its end of the pair. */
#define DW_MEMFD 3
#define DW_SOCK 4

#endif
