/*
 * Memory advice for the conntrack table's large arrays (src/node/conntrack/huge-pages.ts).
 *
 * Why: a 1 M entry table is ~190 MB of entry records and a ~21 MB hash index. With 4 KiB pages
 * every random index probe is also a TLB miss, whose page walk on a VM is two-dimensional, and
 * preallocating the table takes one page fault per 4 KiB (~0.75 s for 1.1 M entries measured
 * here); a dying node's teardown of that memory is paid by the failover. Linux's transparent huge
 * pages serve a range advised with MADV_HUGEPAGE from 2 MiB pages where it can (the kernel's
 * "madvise" mode, Debian's default; "always" needs no advice, "never" ignores it). JavaScript
 * cannot give that advice; this does, for the 2 MiB-aligned part of an ArrayBuffer's memory,
 * before it is first written.
 *
 *   adviseHugePages(buffer: ArrayBuffer) -> errno    0 when the advice was taken (or the buffer
 *                                                    holds no whole 2 MiB page), else madvise's
 *                                                    errno (EINVAL: a kernel without THP)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <node_api.h>
#include <stdint.h>
#include <sys/mman.h>

#include "../common/tw_napi.h"

#define HUGE_PAGE ((uintptr_t)2 << 20)

static napi_value js_advise_huge_pages(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  TW_CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  bool is_ab = false;
  if (argc < 1 || napi_is_arraybuffer(env, argv[0], &is_ab) != napi_ok || !is_ab) {
    napi_throw_type_error(env, "TW_MEM_ARG", "adviseHugePages(buffer): buffer must be an ArrayBuffer");
    return NULL;
  }
  void *data = NULL;
  size_t len = 0;
  TW_CHECK(napi_get_arraybuffer_info(env, argv[0], &data, &len));
  uintptr_t from = ((uintptr_t)data + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
  uintptr_t to = ((uintptr_t)data + len) & ~(HUGE_PAGE - 1);
  int err = 0;
  if (to > from && madvise((void *)from, to - from, MADV_HUGEPAGE) != 0) err = errno;
  napi_value out;
  TW_CHECK(napi_create_int32(env, err, &out));
  return out;
}

NAPI_MODULE_INIT() {
  napi_value f;
  TW_CHECK(napi_create_function(env, "adviseHugePages", NAPI_AUTO_LENGTH, js_advise_huge_pages, NULL, &f));
  TW_CHECK(napi_set_named_property(env, exports, "adviseHugePages", f));
  return exports;
}
