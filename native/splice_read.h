/* The addon's spliced-view reader (splice_read.c), registered by uniso_native.c, and its page-cache read. */
#ifndef UNISO_SPLICE_READ_H
#define UNISO_SPLICE_READ_H
#include <node_api.h>
#include <sys/types.h>
#include <sys/uio.h>

/* preadv2(RWF_NOWAIT), retried on EINTR: only what the page cache holds (readCached uses it too). */
ssize_t read_nowait(int fd, const struct iovec *iov, int n, off_t offset);

napi_value splice_context(napi_env env, napi_callback_info info);
napi_value splice_read(napi_env env, napi_callback_info info);

#endif
