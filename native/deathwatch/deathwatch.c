/*
 * twinwall-deathwatch: started by the daemon (src/failover/death-watch.ts) with the memfd as
 * fd 3 and its end of a SOCK_SEQPACKET pair as fd 4. It holds dups of the master's proved peer
 * links and shuts them down (FIN to the backup) the moment the daemon dies: a thread waits on
 * the robust mutex a thread of the daemon holds, which the kernel hands over (EOWNERDEAD) at the
 * start of that thread's exit, before the dead process's memory is torn down. See
 * twinwall_deathwatch.c for why.
 *
 * Messages: DW_ADD id + descriptor (keep it), DW_RELEASE id (the daemon closed that link: shut
 * it down, close it). End of the pair (the daemon's descriptors closed): the same as a death.
 * Termination signals are ignored: it ends when the daemon does.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "deathwatch.h"

#define MAX_LINKS 64

static pthread_mutex_t tab_lock = PTHREAD_MUTEX_INITIALIZER;
static struct { uint32_t id; int fd; } links[MAX_LINKS];
static int nlinks = 0;

/* The daemon: our parent, read at start (a dying parent is still our parent, but be sure). */
static pid_t daemon_pid = 0;

/*
 * The dead daemon's threads (still exiting: the one that drops the last reference to its memory
 * tears it down, ~0.1 s of kernel time per GB) go to SCHED_IDLE, else nice 19, so that teardown
 * takes only what the machine leaves: not the CPU of a daemon starting in its place, or of the
 * peer when both run on one machine (the lab, a compose pair; measured: bench/failover, SIGKILL
 * with a 1 M entry table). Lowering a priority needs no privilege. Returns the threads lowered.
 */
static int lower_dead_daemon(void) {
  if (daemon_pid <= 1) return 0;
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/task", (int)daemon_pid);
  DIR *d = opendir(path);
  if (d == NULL) return 0;
  int n = 0;
  struct dirent *e;
  const struct sched_param idle = {.sched_priority = 0};
  while ((e = readdir(d)) != NULL) {
    pid_t tid = (pid_t)atoi(e->d_name);
    if (tid <= 0) continue;
    if (sched_setscheduler(tid, SCHED_IDLE, &idle) == 0 || setpriority(PRIO_PROCESS, (id_t)tid, 19) == 0) n++;
  }
  closedir(d);
  return n;
}

/* Shut every held link down and end. Called once by whichever thread sees the end first. */
static void fire(const char *why, int died) {
  pthread_mutex_lock(&tab_lock);
  int n = nlinks;
  for (int i = 0; i < nlinks; i++) shutdown(links[i].fd, SHUT_RDWR);
  int lowered = died ? lower_dead_daemon() : 0;
  char msg[200];
  int len = snprintf(msg, sizeof(msg), "twinwall-deathwatch: %s: %d peer link%s shut down, %d of its threads lowered to idle priority\n", why, n,
                     n == 1 ? "" : "s", lowered);
  if (n > 0 && len > 0) (void)!write(2, msg, (size_t)len);
  _exit(0);
}

static void *waiter(void *arg) {
  dw_shared_t *s = arg;
  int r = pthread_mutex_lock(&s->owner);
  fire(r == EOWNERDEAD ? "the daemon died" : "the daemon let go", r == EOWNERDEAD);
  return NULL;
}

int main(void) {
  signal(SIGTERM, SIG_IGN);
  signal(SIGINT, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  daemon_pid = getppid();
  dw_shared_t *s = mmap(NULL, sizeof(dw_shared_t), PROT_READ | PROT_WRITE, MAP_SHARED, DW_MEMFD, 0);
  if (s == MAP_FAILED || s->magic != DW_MAGIC) {
    fprintf(stderr, "twinwall-deathwatch: fd 3 is not the daemon's memfd (%s): it is started by twinwall only\n", s == MAP_FAILED ? strerror(errno) : "bad magic");
    return 2;
  }
  pthread_t t;
  if (pthread_create(&t, NULL, waiter, s) != 0) {
    fprintf(stderr, "twinwall-deathwatch: pthread_create failed\n");
    return 2;
  }
  for (;;) {
    dw_frame_t f;
    struct msghdr *h = dw_frame(&f, 1);
    ssize_t n = recvmsg(DW_SOCK, h, MSG_CMSG_CLOEXEC);
    const dw_msg_t m = f.m;
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fire("the daemon's end closed", 1);
    int fd = -1;
    struct cmsghdr *c = CMSG_FIRSTHDR(h);
    if (c != NULL && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) memcpy(&fd, CMSG_DATA(c), sizeof(int));
    if (n != sizeof(m)) {
      if (fd >= 0) close(fd);
      continue;
    }
    pthread_mutex_lock(&tab_lock);
    if (m.op == DW_ADD && fd >= 0) {
      if (nlinks < MAX_LINKS) {
        links[nlinks].id = m.id;
        links[nlinks].fd = fd;
        nlinks++;
        fd = -1;
      }
    } else if (m.op == DW_RELEASE) {
      for (int i = 0; i < nlinks; i++) {
        if (links[i].id != m.id) continue;
        shutdown(links[i].fd, SHUT_RDWR);
        close(links[i].fd);
        links[i] = links[--nlinks];
        break;
      }
    }
    pthread_mutex_unlock(&tab_lock);
    if (fd >= 0) close(fd);
  }
}
