/*
 * uniso native decompressors for squashfs input: xz, lzma (alone), lzo,
 * lz4 and zstd, which Node 20's zlib does not provide. One async function:
 *
 *   decompress(codec, input, outSize, callback(err, output))
 *
 * runs on the libuv thread pool, so both cores decompress at once.
 * codec numbers follow the squashfs superblock: 2 lzma, 3 lzo, 4 xz,
 * 5 lz4, 6 zstd. The output is at most outSize bytes; a stream that does
 * not decode, or decodes to more than outSize bytes, is an error.
 * Also seekData() (SEEK_DATA / SEEK_HOLE), which Node's fs lacks;
 * inflateBlocks(), which reads, checks and inflates pool blocks on the
 * thread pool (libdeflate), the read path of every inflating view;
 * readCached(), a read that takes only what the page cache already holds;
 * and willNeed(), which has the kernel start reading a range into the page
 * cache from a thread-pool thread. spliceContext() and spliceRead(), the
 * read of a spliced view, live in splice_read.c; deflateBlocks(), which
 * compresses pool blocks at build time, in deflate_blocks.c.
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <lzma.h>
#include <lz4.h>
#include <lzo/lzo1x.h>
#include <zstd.h>
#include <libdeflate.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
#include <sys/uio.h>
#include <fcntl.h>
#define XXH_INLINE_ALL
#include <xxhash.h>
#include "splice_read.h"
#include "deflate_blocks.h"
#include "napi_util.h"
#include "pool_format.h"

enum { CODEC_LZMA = 2, CODEC_LZO = 3, CODEC_XZ = 4, CODEC_LZ4 = 5, CODEC_ZSTD = 6 };

typedef struct {
  napi_async_work work;
  napi_ref input_ref;
  napi_ref callback_ref;
  int codec;
  const uint8_t *in;
  size_t in_len;
  uint8_t *out;
  size_t out_cap;
  size_t out_len;
  const char *error;
} job_t;

static int lzo_ready = 0;

static void run_job(napi_env env, void *data) {
  (void)env;
  job_t *j = (job_t *)data;
  switch (j->codec) {
  case CODEC_XZ: {
    uint64_t memlimit = UINT64_MAX;
    size_t in_pos = 0, out_pos = 0;
    lzma_ret r = lzma_stream_buffer_decode(&memlimit, 0, NULL, j->in, &in_pos, j->in_len, j->out, &out_pos, j->out_cap);
    if (r != LZMA_OK) { j->error = "xz stream does not decode"; return; }
    j->out_len = out_pos;
    return;
  }
  case CODEC_LZMA: {
    lzma_stream s = LZMA_STREAM_INIT;
    if (lzma_alone_decoder(&s, UINT64_MAX) != LZMA_OK) { j->error = "lzma decoder init failed"; return; }
    s.next_in = j->in; s.avail_in = j->in_len;
    s.next_out = j->out; s.avail_out = j->out_cap;
    lzma_ret r = lzma_code(&s, LZMA_FINISH);
    j->out_len = j->out_cap - s.avail_out;
    lzma_end(&s);
    if (r != LZMA_STREAM_END && r != LZMA_OK) { j->error = "lzma stream does not decode"; return; }
    return;
  }
  case CODEC_LZO: {
    lzo_uint out_len = j->out_cap;
    if (lzo1x_decompress_safe(j->in, j->in_len, j->out, &out_len, NULL) != LZO_E_OK) {
      j->error = "lzo block does not decode"; return;
    }
    j->out_len = out_len;
    return;
  }
  case CODEC_LZ4: {
    int n = LZ4_decompress_safe((const char *)j->in, (char *)j->out, (int)j->in_len, (int)j->out_cap);
    if (n < 0) { j->error = "lz4 block does not decode"; return; }
    j->out_len = (size_t)n;
    return;
  }
  case CODEC_ZSTD: {
    size_t n = ZSTD_decompress(j->out, j->out_cap, j->in, j->in_len);
    if (ZSTD_isError(n)) { j->error = "zstd frame does not decode"; return; }
    j->out_len = n;
    return;
  }
  default:
    j->error = "unknown codec";
  }
}

static void finish_job(napi_env env, napi_status status, void *data) {
  job_t *j = (job_t *)data;
  napi_value cb, global, args[2];
  napi_get_reference_value(env, j->callback_ref, &cb);
  napi_get_global(env, &global);
  if (status != napi_ok || j->error) {
    napi_value msg;
    napi_create_string_utf8(env, j->error ? j->error : "decompression cancelled", NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &args[0]);
    napi_get_undefined(env, &args[1]);
    free(j->out);
  } else {
    void *copy;
    napi_get_null(env, &args[0]);
    napi_create_buffer_copy(env, j->out_len, j->out, &copy, &args[1]);
    free(j->out);
  }
  napi_call_function(env, global, cb, 2, args, NULL);
  napi_delete_reference(env, j->input_ref);
  napi_delete_reference(env, j->callback_ref);
  napi_delete_async_work(env, j->work);
  free(j);
}

static napi_value decompress(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 4) { napi_throw_type_error(env, NULL, "decompress(codec, input, outSize, callback)"); return NULL; }
  int32_t codec, out_size;
  bool is_buf;
  napi_valuetype cbt;
  if (napi_get_value_int32(env, argv[0], &codec) != napi_ok ||
      napi_is_buffer(env, argv[1], &is_buf) != napi_ok || !is_buf ||
      napi_get_value_int32(env, argv[2], &out_size) != napi_ok || out_size <= 0 || out_size > (64 << 20) ||
      napi_typeof(env, argv[3], &cbt) != napi_ok || cbt != napi_function) {
    napi_throw_type_error(env, NULL, "decompress(codec, input, outSize, callback): bad arguments");
    return NULL;
  }
  if (codec == CODEC_LZO && !lzo_ready) {
    if (lzo_init() != LZO_E_OK) { napi_throw_error(env, NULL, "lzo_init failed"); return NULL; }
    lzo_ready = 1;
  }
  job_t *j = calloc(1, sizeof *j);
  if (!j) { napi_throw_error(env, NULL, "out of memory"); return NULL; }
  j->codec = codec;
  void *in;
  napi_get_buffer_info(env, argv[1], &in, &j->in_len);
  j->in = in;
  j->out_cap = (size_t)out_size;
  j->out = malloc(j->out_cap);
  if (!j->out) { free(j); napi_throw_error(env, NULL, "out of memory"); return NULL; }
  napi_create_reference(env, argv[1], 1, &j->input_ref);
  napi_create_reference(env, argv[3], 1, &j->callback_ref);
  queue_job(env, "uniso:decompress", run_job, finish_job, j, &j->work);
  return NULL;
}

/*
 * seekData(fd, offset, hole) -> next data (hole=false) or hole (hole=true)
 * offset at or after `offset`, or -1 when there is none (ENXIO). Lets the
 * directory reader skip holes of sparse files instead of reading zeros.
 */
static napi_value seek_data(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd;
  int64_t off;
  bool hole = false;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_int64(env, argv[1], &off) != napi_ok) {
    napi_throw_type_error(env, NULL, "seekData(fd, offset, hole)");
    return NULL;
  }
  if (argc > 2) napi_get_value_bool(env, argv[2], &hole);
  off_t r = lseek(fd, (off_t)off, hole ? SEEK_HOLE : SEEK_DATA);
  napi_value out;
  if (r < 0) {
    if (errno != ENXIO) {
      napi_throw_error(env, NULL, strerror(errno));
      return NULL;
    }
    napi_create_int64(env, -1, &out);
  } else {
    napi_create_int64(env, (int64_t)r, &out);
  }
  return out;
}

/* Grow a per-thread scratch buffer to at least `need` bytes; 0 when out of memory. */
static int grow(uint8_t **buf, size_t *cap, size_t need) {
  if (*cap >= need) return 1;
  free(*buf);
  *buf = malloc(need ? need : 1);
  *cap = *buf ? need : 0;
  return *buf != NULL;
}

/* 1 when all len bytes were read, 0 at end of file (short), -1 on error (errno in *err) */
static int read_full(int fd, uint8_t *buf, size_t len, int64_t offset, int *err) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = pread(fd, buf + done, len - done, (off_t)(offset + (int64_t)done));
    if (n < 0) {
      if (errno == EINTR) continue;
      *err = errno;
      return -1;
    }
    if (n == 0) return 0;
    done += (size_t)n;
  }
  return 1;
}

/*
 * Call a job's callback(err, bytes): err an Error with `error` as its
 * message when `error` is set, else null and bytes a Uint8Array copy of
 * `bytes[0..n)`. Then release the callback reference.
 */
static void call_back_bytes(napi_env env, napi_ref callback_ref, const char *error, const uint8_t *bytes, size_t n) {
  napi_value cb, global, args[2];
  napi_get_reference_value(env, callback_ref, &cb);
  napi_get_global(env, &global);
  if (error) {
    napi_value msg;
    napi_create_string_utf8(env, error, NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &args[0]);
    napi_get_undefined(env, &args[1]);
  } else {
    napi_value ab;
    void *out;
    napi_get_null(env, &args[0]);
    napi_create_arraybuffer(env, n, &out, &ab);
    memcpy(out, bytes, n);
    napi_create_typedarray(env, napi_uint8_array, n, ab, 0, &args[1]);
  }
  napi_call_function(env, global, cb, 2, args, NULL);
  napi_delete_reference(env, callback_ref);
}

/*
 * inflateBlocks(fd, pos, meta, outs, callback(err, status)): on the thread
 * pool, for each pool block k: pread its meta[4k] stored bytes at pos[k]
 * (Float64Array), check them against meta[4k+1] (low 32 bits of their
 * XXH3-64), inflate them (raw deflate ended by a sync flush; meta[4k+3]=1:
 * stored uncompressed) into the Buffer outs[k], which must come out
 * exactly full, and check its CRC-32 against meta[4k+2]. One job for
 * several blocks keeps thread hand-offs and completions few. status is a
 * Uint8Array: 0 good, 1 stored bytes mismatch, 2 does not inflate to
 * outs[k].length bytes, 3 CRC-32 mismatch, 4 short read (pool truncated).
 * An I/O error fails the whole call. The outs are kept alive until the
 * callback.
 */
#define INFLATE_MAX_BLOCKS 64

typedef struct {
  napi_async_work work;
  napi_ref callback_ref;
  napi_ref outs_ref;
  int fd;
  size_t count;
  double pos[INFLATE_MAX_BLOCKS];
  uint32_t meta[4 * INFLATE_MAX_BLOCKS];
  uint8_t *out[INFLATE_MAX_BLOCKS];
  size_t out_len[INFLATE_MAX_BLOCKS];
  uint8_t status[INFLATE_MAX_BLOCKS];
  int err;
} inflate_job_t;

static __thread uint8_t *inflate_in;
static __thread size_t inflate_in_cap;
static __thread struct libdeflate_decompressor *inflater;

static int inflate_one(inflate_job_t *j, size_t k) {
  uint32_t csize = j->meta[4 * k], sxh = j->meta[4 * k + 1], crc = j->meta[4 * k + 2], raw = j->meta[4 * k + 3];
  int64_t offset = (int64_t)j->pos[k];
  uint8_t *out = j->out[k];
  size_t out_len = j->out_len[k];
  int r;
  if (raw) {
    if (csize != out_len) return BLOCK_INFLATE_BAD;
    if ((r = read_full(j->fd, out, out_len, offset, &j->err)) <= 0) return r < 0 ? -1 : BLOCK_SHORT;
    if ((uint32_t)(XXH3_64bits(out, out_len) & 0xffffffffu) != sxh) return BLOCK_STORED_BAD;
  } else {
    /* room for the stored bytes and a final empty block, which ends the stream for libdeflate */
    size_t need = (size_t)csize + 2;
    if (!grow(&inflate_in, &inflate_in_cap, need)) { j->err = ENOMEM; return -1; }
    if (!inflater && !(inflater = libdeflate_alloc_decompressor())) { j->err = ENOMEM; return -1; }
    if ((r = read_full(j->fd, inflate_in, csize, offset, &j->err)) <= 0) return r < 0 ? -1 : BLOCK_SHORT;
    if ((uint32_t)(XXH3_64bits(inflate_in, csize) & 0xffffffffu) != sxh) return BLOCK_STORED_BAD;
    inflate_in[csize] = 0x03; /* BFINAL=1, fixed Huffman, end of block */
    inflate_in[csize + 1] = 0x00;
    if (libdeflate_deflate_decompress(inflater, inflate_in, need, out, out_len, NULL) != LIBDEFLATE_SUCCESS) return BLOCK_INFLATE_BAD;
  }
  return libdeflate_crc32(0, out, out_len) == crc ? BLOCK_OK : BLOCK_CRC_BAD;
}

static void run_inflate(napi_env env, void *data) {
  (void)env;
  inflate_job_t *j = (inflate_job_t *)data;
  for (size_t k = 0; k < j->count; k++) {
    int st = inflate_one(j, k);
    if (st < 0) return;
    j->status[k] = (uint8_t)st;
  }
}

static void finish_inflate(napi_env env, napi_status status, void *data) {
  inflate_job_t *j = (inflate_job_t *)data;
  const char *error = status != napi_ok ? "inflate cancelled" : j->err ? strerror(j->err) : NULL;
  call_back_bytes(env, j->callback_ref, error, j->status, j->count);
  napi_delete_reference(env, j->outs_ref);
  napi_delete_async_work(env, j->work);
  free(j);
}

static napi_value inflate_blocks(napi_env env, napi_callback_info info) {
  static const char *usage = "inflateBlocks(fd, pos: Float64Array, meta: Uint32Array, outs: Buffer[], callback): bad arguments";
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd;
  bool is;
  napi_typedarray_type type;
  size_t npos, nmeta;
  void *pos, *meta;
  uint32_t nouts;
  napi_valuetype cbt;
  if (argc < 5 || napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      napi_is_typedarray(env, argv[1], &is) != napi_ok || !is ||
      napi_get_typedarray_info(env, argv[1], &type, &npos, &pos, NULL, NULL) != napi_ok || type != napi_float64_array ||
      napi_is_typedarray(env, argv[2], &is) != napi_ok || !is ||
      napi_get_typedarray_info(env, argv[2], &type, &nmeta, &meta, NULL, NULL) != napi_ok || type != napi_uint32_array ||
      napi_is_array(env, argv[3], &is) != napi_ok || !is || napi_get_array_length(env, argv[3], &nouts) != napi_ok ||
      npos == 0 || npos > INFLATE_MAX_BLOCKS || nmeta != 4 * npos || nouts != npos ||
      napi_typeof(env, argv[4], &cbt) != napi_ok || cbt != napi_function) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  inflate_job_t *j = calloc(1, sizeof *j);
  if (!j) { napi_throw_error(env, NULL, "out of memory"); return NULL; }
  j->fd = fd;
  j->count = npos;
  memcpy(j->pos, pos, npos * sizeof(double));
  memcpy(j->meta, meta, nmeta * sizeof(uint32_t));
  for (size_t k = 0; k < npos; k++) {
    void *data;
    if (j->pos[k] < 0 || j->meta[4 * k] > (64u << 20) || !buffer_at(env, argv[3], (uint32_t)k, &data, &j->out_len[k])) {
      free(j);
      napi_throw_type_error(env, NULL, usage);
      return NULL;
    }
    j->out[k] = data;
  }
  napi_create_reference(env, argv[3], 1, &j->outs_ref);
  napi_create_reference(env, argv[4], 1, &j->callback_ref);
  queue_job(env, "uniso:inflateBlocks", run_inflate, finish_inflate, j, &j->work);
  return NULL;
}

/*
 * readCached(fd, buffers, offset) -> bytes read into `buffers` (one after
 * another) at `offset`, taking only what the page cache holds right now:
 * preadv2 with RWF_NOWAIT, on the calling thread, never waiting for the
 * disk (the kernel still starts its readahead). 0 when the first byte is
 * not cached (EAGAIN) or the kernel or file system cannot read without
 * waiting (EOPNOTSUPP, ENOSYS): the caller then reads on the thread pool.
 * Other errors throw.
 */
#define READ_CACHED_MAX_BUFS 64
static napi_value read_cached(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd;
  int64_t off;
  uint32_t n;
  bool is;
  struct iovec iov[READ_CACHED_MAX_BUFS];
  if (argc < 3 || napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      napi_is_array(env, argv[1], &is) != napi_ok || !is || napi_get_array_length(env, argv[1], &n) != napi_ok ||
      n == 0 || n > READ_CACHED_MAX_BUFS || napi_get_value_int64(env, argv[2], &off) != napi_ok || off < 0) {
    napi_throw_type_error(env, NULL, "readCached(fd, buffers (1 to 64), offset)");
    return NULL;
  }
  for (uint32_t k = 0; k < n; k++) {
    napi_value b;
    bool is_buf;
    if (napi_get_element(env, argv[1], k, &b) != napi_ok || napi_is_buffer(env, b, &is_buf) != napi_ok || !is_buf ||
        napi_get_buffer_info(env, b, &iov[k].iov_base, &iov[k].iov_len) != napi_ok) {
      napi_throw_type_error(env, NULL, "readCached(fd, buffers (1 to 64), offset)");
      return NULL;
    }
  }
  ssize_t r = read_nowait(fd, iov, (int)n, (off_t)off);
  if (r < 0) {
    if (errno != EAGAIN && errno != EOPNOTSUPP && errno != ENOSYS) {
      napi_throw_error(env, NULL, strerror(errno));
      return NULL;
    }
    r = 0;
  }
  napi_value out;
  napi_create_int64(env, (int64_t)r, &out);
  return out;
}

/*
 * willNeed(fd, offset, length): posix_fadvise(POSIX_FADV_WILLNEED) on the
 * thread pool. The kernel allocates the pages and starts reading them on
 * that thread, not the caller's, so a reader that takes what is cached with
 * readCached() finds it there without doing the readahead work itself.
 * Advice only: nothing is reported back.
 */
typedef struct {
  napi_async_work work;
  int fd;
  int64_t offset;
  int64_t length;
} advise_job_t;

static void run_advise(napi_env env, void *data) {
  (void)env;
  advise_job_t *j = (advise_job_t *)data;
  (void)posix_fadvise(j->fd, (off_t)j->offset, (off_t)j->length, POSIX_FADV_WILLNEED);
}

static void finish_advise(napi_env env, napi_status status, void *data) {
  (void)status;
  advise_job_t *j = (advise_job_t *)data;
  napi_delete_async_work(env, j->work);
  free(j);
}

static napi_value will_need(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd;
  int64_t off, len;
  if (argc < 3 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_value_int64(env, argv[1], &off) != napi_ok ||
      napi_get_value_int64(env, argv[2], &len) != napi_ok || fd < 0 || off < 0 || len <= 0) {
    napi_throw_type_error(env, NULL, "willNeed(fd, offset, length)");
    return NULL;
  }
  advise_job_t *j = calloc(1, sizeof *j);
  if (!j) { napi_throw_error(env, NULL, "out of memory"); return NULL; }
  j->fd = fd;
  j->offset = off;
  j->length = len;
  queue_job(env, "uniso:willNeed", run_advise, finish_advise, j, &j->work);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  static const struct { const char *name; napi_callback fn; } fns[] = {
    { "decompress", decompress }, { "seekData", seek_data }, { "inflateBlocks", inflate_blocks },
    { "readCached", read_cached }, { "willNeed", will_need }, { "spliceContext", splice_context },
    { "spliceRead", splice_read }, { "deflateBlocks", deflate_blocks },
  };
  for (size_t k = 0; k < sizeof fns / sizeof fns[0]; k++) {
    napi_value fn;
    napi_create_function(env, fns[k].name, NAPI_AUTO_LENGTH, fns[k].fn, NULL, &fn);
    napi_set_named_property(env, exports, fns[k].name, fn);
  }
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
