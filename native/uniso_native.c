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
 * Also seekData() (SEEK_DATA / SEEK_HOLE), which Node's fs lacks.
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <lzma.h>
#include <lz4.h>
#include <lzo/lzo1x.h>
#include <zstd.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>

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

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "decompress", NAPI_AUTO_LENGTH, decompress, NULL, &fn);
  napi_set_named_property(env, exports, "decompress", fn);
  napi_create_function(env, "seekData", NAPI_AUTO_LENGTH, seek_data, NULL, &fn);
  napi_set_named_property(env, exports, "seekData", fn);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
