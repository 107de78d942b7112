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
 * Also seekData() (SEEK_DATA / SEEK_HOLE), which Node's fs lacks, and
 * checkBlocks(), which reads a range of a file and checks the blocks in it
 * on the thread pool, so verifying pool blocks costs the event loop nothing,
 * and inflateBlocks(), which reads, checks and inflates pool blocks on the
 * thread pool (libdeflate), the read path of every inflating view.
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
#define XXH_INLINE_ALL
#include <xxhash.h>

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
  napi_value name;
  napi_create_string_utf8(env, "uniso:decompress", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, run_job, finish_job, j, &j->work);
  napi_queue_async_work(env, j->work);
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

/*
 * checkBlocks(fd, offset, length, starts, sizes, expected, callback(err, ok)):
 * pread `length` bytes at `offset` on the thread pool, then check each block
 * i (bytes [starts[i], starts[i] + sizes[i]) of that range, Float64Array /
 * Uint32Array) against expected[i], the low 32 bits of its XXH3-64. ok is a
 * Uint8Array: 1 where the block matches. A short read is an error.
 */
typedef struct {
  napi_async_work work;
  napi_ref callback_ref;
  int fd;
  int64_t offset;
  size_t length;
  size_t count;
  double *starts;
  uint32_t *sizes;
  uint32_t *expected;
  uint8_t *ok;
  int err;
  int short_read;
  int bad_layout;
} check_job_t;

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

static __thread uint8_t *check_buf;
static __thread size_t check_cap;

static void run_check(napi_env env, void *data) {
  (void)env;
  check_job_t *j = (check_job_t *)data;
  if (!grow(&check_buf, &check_cap, j->length)) { j->err = ENOMEM; return; }
  int r = read_full(j->fd, check_buf, j->length, j->offset, &j->err);
  if (r < 0) return;
  if (r == 0) { j->short_read = 1; return; }
  for (size_t i = 0; i < j->count; i++) {
    double st = j->starts[i];
    if (st < 0 || st + (double)j->sizes[i] > (double)j->length) { j->bad_layout = 1; return; }
    uint64_t h = XXH3_64bits(check_buf + (size_t)st, j->sizes[i]);
    j->ok[i] = (uint32_t)(h & 0xffffffffu) == j->expected[i];
  }
}

static void free_check(check_job_t *j) {
  free(j->starts);
  free(j->sizes);
  free(j->expected);
  free(j->ok);
  free(j);
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

static void finish_check(napi_env env, napi_status status, void *data) {
  check_job_t *j = (check_job_t *)data;
  const char *error = status != napi_ok ? "check cancelled" : j->short_read ? "short read"
    : j->bad_layout ? "block outside the range" : j->err ? strerror(j->err) : NULL;
  call_back_bytes(env, j->callback_ref, error, j->ok, j->count);
  napi_delete_async_work(env, j->work);
  free_check(j);
}

static int typed_copy(napi_env env, napi_value v, napi_typedarray_type want, size_t count, void **out, size_t elem) {
  bool is;
  napi_typedarray_type type;
  size_t len;
  void *data;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return 0;
  if (napi_get_typedarray_info(env, v, &type, &len, &data, NULL, NULL) != napi_ok || type != want || len != count) return 0;
  *out = malloc(count * elem + 1);
  if (!*out) return 0;
  memcpy(*out, data, count * elem);
  return 1;
}

static napi_value check_blocks(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd;
  int64_t offset, length;
  uint32_t count;
  napi_valuetype cbt;
  bool is;
  napi_typedarray_type type;
  size_t n;
  if (argc < 7 || napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      napi_get_value_int64(env, argv[1], &offset) != napi_ok || offset < 0 ||
      napi_get_value_int64(env, argv[2], &length) != napi_ok || length < 0 || length > (64 << 20) ||
      napi_is_typedarray(env, argv[3], &is) != napi_ok || !is ||
      napi_get_typedarray_info(env, argv[3], &type, &n, NULL, NULL, NULL) != napi_ok ||
      napi_typeof(env, argv[6], &cbt) != napi_ok || cbt != napi_function) {
    napi_throw_type_error(env, NULL, "checkBlocks(fd, offset, length, starts, sizes, expected, callback): bad arguments");
    return NULL;
  }
  count = (uint32_t)n;
  check_job_t *j = calloc(1, sizeof *j);
  if (!j) { napi_throw_error(env, NULL, "out of memory"); return NULL; }
  if (!typed_copy(env, argv[3], napi_float64_array, count, (void **)&j->starts, sizeof(double)) ||
      !typed_copy(env, argv[4], napi_uint32_array, count, (void **)&j->sizes, sizeof(uint32_t)) ||
      !typed_copy(env, argv[5], napi_uint32_array, count, (void **)&j->expected, sizeof(uint32_t)) ||
      !(j->ok = calloc(count + 1, 1))) {
    free_check(j);
    napi_throw_type_error(env, NULL, "checkBlocks: starts must be a Float64Array, sizes and expected Uint32Arrays of one length");
    return NULL;
  }
  j->fd = fd;
  j->offset = offset;
  j->length = (size_t)length;
  j->count = count;
  napi_create_reference(env, argv[6], 1, &j->callback_ref);
  napi_value name;
  napi_create_string_utf8(env, "uniso:checkBlocks", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, run_check, finish_check, j, &j->work);
  napi_queue_async_work(env, j->work);
  return NULL;
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
enum { BLOCK_OK = 0, BLOCK_STORED_BAD = 1, BLOCK_INFLATE_BAD = 2, BLOCK_CRC_BAD = 3, BLOCK_SHORT = 4 };
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
    napi_value b;
    void *data;
    bool is_buf;
    if (j->pos[k] < 0 || j->meta[4 * k] > (64u << 20) ||
        napi_get_element(env, argv[3], (uint32_t)k, &b) != napi_ok || napi_is_buffer(env, b, &is_buf) != napi_ok || !is_buf ||
        napi_get_buffer_info(env, b, &data, &j->out_len[k]) != napi_ok) {
      free(j);
      napi_throw_type_error(env, NULL, usage);
      return NULL;
    }
    j->out[k] = data;
  }
  napi_create_reference(env, argv[3], 1, &j->outs_ref);
  napi_create_reference(env, argv[4], 1, &j->callback_ref);
  napi_value name;
  napi_create_string_utf8(env, "uniso:inflateBlocks", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, run_inflate, finish_inflate, j, &j->work);
  napi_queue_async_work(env, j->work);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "decompress", NAPI_AUTO_LENGTH, decompress, NULL, &fn);
  napi_set_named_property(env, exports, "decompress", fn);
  napi_create_function(env, "seekData", NAPI_AUTO_LENGTH, seek_data, NULL, &fn);
  napi_set_named_property(env, exports, "seekData", fn);
  napi_create_function(env, "checkBlocks", NAPI_AUTO_LENGTH, check_blocks, NULL, &fn);
  napi_set_named_property(env, exports, "checkBlocks", fn);
  napi_create_function(env, "inflateBlocks", NAPI_AUTO_LENGTH, inflate_blocks, NULL, &fn);
  napi_set_named_property(env, exports, "inflateBlocks", fn);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
