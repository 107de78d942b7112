/*
 * Pool block compression on the thread pool:
 *
 *   deflateBlocks(level, inputs: Buffer[], callback(err, out: Uint8Array, meta: Uint32Array))
 *
 * compresses each input (at most 64 KiB) on its own with libdeflate at
 * `level` (1-12; 10-12 search near-optimal matches) into the form the pool
 * keeps: raw deflate made of non-final blocks and ended by a sync flush
 * (an empty stored block), byte aligned, so the block can be spliced into
 * any deflate stream and framed as a zlib stream for squashfs.
 *
 * libdeflate only writes complete streams (the last block final), so each
 * result is inflated again with zlib in Z_BLOCK mode (the way zlib's
 * gzappend example finds the last block): that gives the bit where the last
 * block's header starts and the bit where the stream ends, and checks that
 * the stream gives back the input exactly. The last block's BFINAL bit is
 * cleared and an empty stored block (3 header bits, padding, 00 00 FF FF)
 * is written after the end.
 *
 * `out` holds the results back to back; meta[5k..5k+4] for input k: its
 * length in `out` (0: libdeflate found nothing shorter than the input, keep
 * it raw), CRC-32 and Adler-32 of the input, the low 32 bits of the
 * result's XXH3-64 (the pool's stored-bytes check), and 0. zlib is Node's
 * own (its headers and exported symbols), libdeflate the system's.
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <libdeflate.h>
#include <zlib.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#define XXH_INLINE_ALL
#include <xxhash.h>
#include "deflate_blocks.h"
#include "napi_util.h"

#define DEFLATE_MAX_INPUT 65536
#define DEFLATE_MAX_BLOCKS 64
#define DEFLATE_META 5
/* room for a result: libdeflate's bound for the input, plus the stored block added after it */
#define RESULT_CAP (DEFLATE_MAX_INPUT + 1024)
/* an empty stored block's LEN and NLEN */
static const uint8_t SYNC_MARKER[4] = { 0x00, 0x00, 0xff, 0xff };

typedef struct {
  napi_async_work work;
  napi_ref callback_ref;
  napi_ref inputs_ref;
  int level;
  size_t count;
  const uint8_t *in[DEFLATE_MAX_BLOCKS];
  size_t in_len[DEFLATE_MAX_BLOCKS];
  uint8_t *out; /* count * RESULT_CAP bytes */
  uint32_t meta[DEFLATE_META * DEFLATE_MAX_BLOCKS];
  const char *error;
} deflate_job_t;

static __thread struct libdeflate_compressor *compressor;
static __thread int compressor_level;
static __thread uint8_t *check_buf;

/*
 * Inflate the complete stream s[0..n) with zlib in Z_BLOCK mode, which
 * returns at the end of each block, before anything else happens (for the
 * last block: before the padding to the next byte is dropped), with
 * data_type = unused bits in the last byte taken, +64 in the last block,
 * +128 at a block's end. The stream must give back exactly want[0..want_len)
 * and end in s's last byte. Sets the bit offsets of the last block's header
 * and of its end. 0 when good.
 */
static int find_last_block(const uint8_t *s, size_t n, const uint8_t *want, size_t want_len, uint64_t *last_hdr, uint64_t *end) {
  if (!check_buf && !(check_buf = malloc(DEFLATE_MAX_INPUT + 1))) return -1;
  z_stream z;
  memset(&z, 0, sizeof z);
  if (inflateInit2(&z, -15) != Z_OK) return -1;
  z.next_in = (Bytef *)s;
  z.avail_in = (uInt)n;
  z.next_out = check_buf;
  z.avail_out = DEFLATE_MAX_INPUT + 1;
  uint64_t hdr = 0; /* bit where the block being decoded starts */
  int bad = 0;
  for (;;) {
    int ret = inflate(&z, Z_BLOCK);
    if (ret != Z_OK || !(z.data_type & 128)) { bad = 1; break; }
    uint64_t at = (uint64_t)z.total_in * 8 - (uint64_t)(z.data_type & 7);
    if (z.data_type & 64) { /* the end of the last block */
      *last_hdr = hdr;
      *end = at;
      break;
    }
    hdr = at;
  }
  bad = bad || z.total_out != want_len || z.total_in != n || memcmp(check_buf, want, want_len) != 0;
  inflateEnd(&z);
  return bad ? -1 : 0;
}

/* Compress input k into dst (RESULT_CAP bytes); returns the result's length, 0 to keep the input raw, -1 on error. */
static long deflate_one(deflate_job_t *j, size_t k, uint8_t *dst) {
  if (!compressor || compressor_level != j->level) {
    libdeflate_free_compressor(compressor);
    compressor = libdeflate_alloc_compressor(j->level);
    compressor_level = j->level;
    if (!compressor) return -1;
  }
  size_t n = libdeflate_deflate_compress(compressor, j->in[k], j->in_len[k], dst, RESULT_CAP - 8);
  if (n == 0 || n >= j->in_len[k]) return 0;
  uint64_t last_hdr, end;
  if (find_last_block(dst, n, j->in[k], j->in_len[k], &last_hdr, &end) != 0) return -1;
  dst[last_hdr / 8] &= (uint8_t)~(1u << (last_hdr % 8)); /* BFINAL = 0 */
  /* the empty stored block: 3 header bits of 0 at `end`, zero padding to the byte, LEN, NLEN */
  size_t used = (size_t)((end + 7) / 8);
  size_t hdr_end = (size_t)((end + 3 + 7) / 8);
  if (end % 8) dst[used - 1] &= (uint8_t)((1u << (end % 8)) - 1);
  memset(dst + used, 0, hdr_end - used);
  memcpy(dst + hdr_end, SYNC_MARKER, sizeof SYNC_MARKER);
  return (long)(hdr_end + sizeof SYNC_MARKER);
}

static void run_deflate(napi_env env, void *data) {
  (void)env;
  deflate_job_t *j = (deflate_job_t *)data;
  for (size_t k = 0; k < j->count; k++) {
    uint8_t *dst = j->out + k * RESULT_CAP;
    long len = deflate_one(j, k, dst);
    if (len < 0) { j->error = "deflate failed (libdeflate output did not inflate back to its input)"; return; }
    uint32_t *m = &j->meta[DEFLATE_META * k];
    m[0] = (uint32_t)len;
    m[1] = libdeflate_crc32(0, j->in[k], j->in_len[k]);
    m[2] = libdeflate_adler32(1, j->in[k], j->in_len[k]);
    m[3] = len ? (uint32_t)(XXH3_64bits(dst, (size_t)len) & 0xffffffffu) : 0;
    m[4] = 0;
  }
}

static void finish_deflate(napi_env env, napi_status status, void *data) {
  deflate_job_t *j = (deflate_job_t *)data;
  napi_value cb, global, args[3];
  napi_get_reference_value(env, j->callback_ref, &cb);
  napi_get_global(env, &global);
  napi_get_undefined(env, &args[1]);
  napi_get_undefined(env, &args[2]);
  if (status != napi_ok || j->error) {
    napi_value msg;
    napi_create_string_utf8(env, j->error ? j->error : "deflate cancelled", NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &args[0]);
  } else {
    size_t total = 0;
    for (size_t k = 0; k < j->count; k++) total += j->meta[DEFLATE_META * k];
    napi_value ab, mab;
    void *out, *meta;
    napi_get_null(env, &args[0]);
    napi_create_arraybuffer(env, total ? total : 1, &out, &ab);
    for (size_t k = 0, at = 0; k < j->count; k++) {
      uint32_t len = j->meta[DEFLATE_META * k];
      memcpy((uint8_t *)out + at, j->out + k * RESULT_CAP, len);
      at += len;
    }
    napi_create_typedarray(env, napi_uint8_array, total, ab, 0, &args[1]);
    napi_create_arraybuffer(env, j->count * DEFLATE_META * sizeof(uint32_t), &meta, &mab);
    memcpy(meta, j->meta, j->count * DEFLATE_META * sizeof(uint32_t));
    napi_create_typedarray(env, napi_uint32_array, j->count * DEFLATE_META, mab, 0, &args[2]);
  }
  napi_call_function(env, global, cb, 3, args, NULL);
  napi_delete_reference(env, j->callback_ref);
  napi_delete_reference(env, j->inputs_ref);
  napi_delete_async_work(env, j->work);
  free(j->out);
  free(j);
}

napi_value deflate_blocks(napi_env env, napi_callback_info info) {
  static const char *usage = "deflateBlocks(level 1-12, inputs: Buffer[] (1 to 64, each 1 to 65536 bytes), callback)";
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t level;
  bool is;
  uint32_t n;
  napi_valuetype cbt;
  if (argc < 3 || napi_get_value_int32(env, argv[0], &level) != napi_ok || level < 1 || level > 12 ||
      napi_is_array(env, argv[1], &is) != napi_ok || !is || napi_get_array_length(env, argv[1], &n) != napi_ok ||
      n == 0 || n > DEFLATE_MAX_BLOCKS || napi_typeof(env, argv[2], &cbt) != napi_ok || cbt != napi_function) {
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  deflate_job_t *j = calloc(1, sizeof *j);
  if (!j || !(j->out = malloc((size_t)n * RESULT_CAP))) {
    if (j) free(j);
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  j->level = level;
  j->count = n;
  for (uint32_t k = 0; k < n; k++) {
    void *data;
    if (!buffer_at(env, argv[1], k, &data, &j->in_len[k]) || j->in_len[k] == 0 || j->in_len[k] > DEFLATE_MAX_INPUT) {
      free(j->out);
      free(j);
      napi_throw_type_error(env, NULL, usage);
      return NULL;
    }
    j->in[k] = data;
  }
  napi_create_reference(env, argv[1], 1, &j->inputs_ref);
  napi_create_reference(env, argv[2], 1, &j->callback_ref);
  queue_job(env, "uniso:deflateBlocks", run_deflate, finish_deflate, j, &j->work);
  return NULL;
}
