/*
 * One read of a view whose bytes are literals, zeros and spliced pool
 * bytes (the gzip, OVA and streamOptimized VMDK views), done in C on the
 * caller's thread with what the page cache holds. It does what
 * RecipeReader.pread and BlockStore.readDeflatedInto do in JavaScript for
 * such a read, so a FUSE read costs one call instead of a walk over the
 * tens of segments (a tar header, a file's blocks) that 128 KiB span.
 *
 *   spliceContext(extents, size, starts, kinds, args, offs, litData,
 *                 litStart, offset, csize, usize, flags, sxh, state) -> ctx
 *     where the pool's bytes are (Float64Array: pool offset, fd, file
 *     position, length for each piece; a universal ISO's pool is its
 *     squashfs, then its side pool), the recipe's columns (size, then
 *     Float64Array, Uint8Array, Uint32Array, Uint32Array, Buffer,
 *     Uint32Array) and the pool's block table (Float64Array, Uint32Array
 *     x2, Uint8Array, Uint32Array) with the store's per-block check state
 *     (Uint8Array, indexed by block id: 0 not checked, 1 good, 2 corrupt).
 *     The arrays are referenced, not copied: the state the JavaScript store
 *     sees is the one updated here.
 *   spliceRead(ctx, buf, pos) -> bytes read into buf, or -1
 *     -1 whenever the read needs the JavaScript path: a segment to inflate,
 *     pool bytes not in the page cache, a block marked corrupt or whose
 *     check fails here, pool bytes that cross from one piece to the next,
 *     anything out of range. The caller then does the whole read again in
 *     JavaScript, which reports errors properly.
 *
 * Pool bytes read for one call are contiguous runs, each one preadv2; runs
 * up to RUN_GAP_MAX bytes apart are joined, the bytes between going to a
 * scratch buffer (the zlib framing between a squashfs pool's blocks).
 *
 * A block's stored bytes are checked (low 32 bits of their XXH3-64) the
 * first time a read covers them, on the bytes read for the caller when
 * they hold the whole block, else on the block read again into a scratch
 * buffer; a block passes into state 1 only after its check.
 */
#define _GNU_SOURCE
#include <node_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <pthread.h>
#include <sys/uio.h>
#define XXH_INLINE_ALL
#include <xxhash.h>
#include "splice_read.h"
#include "pool_format.h"

/* most pool pieces and unchecked blocks one read may touch (more: the JavaScript path) */
#define MAX_PIECES 2048
#define MAX_UNCHECKED 128
/* iovecs per preadv2 call */
#define MAX_IOV 64
#define CTX_ARRAYS 12
/* pool pieces (files, or extents of the ISO) at most */
#define MAX_EXTENTS 64
/* the bytes between runs read as one (RUN_GAP_MAX) */
static uint8_t gap_sink[RUN_GAP_MAX];

/* a run of one block's stored bytes copied to the caller's buffer */
typedef struct {
  uint32_t id;
  uint32_t soff; /* offset in the block's stored bytes */
  uint32_t n;
  uint8_t *dst;
  int64_t pool; /* pool offset */
} piece_t;

/* a block this read touched that is not checked yet, and its hash so far */
typedef struct {
  uint32_t id;
  uint32_t next;
  XXH3_state_t st;
} pending_t;

/*
 * One read's work arrays (~140 KiB), one set per thread: a read runs to its
 * end on the thread that called it, so every context that thread uses
 * shares them. (A set per context cost that much per recipe read: a hash
 * worker reading the VMDK of a million-file disk reads ~100k included grain
 * recipes, each through its own context, all alive until the digest ends.)
 */
typedef struct {
  piece_t pieces[MAX_PIECES];
  size_t npieces;
  pending_t pend[MAX_UNCHECKED];
  size_t npend;
  uint8_t *scratch;
  size_t scratch_cap;
} work_t;

/* `len` bytes of the pool from `at` lie at `pos` in `fd` */
typedef struct {
  int64_t at;
  int fd;
  int64_t pos;
  int64_t len;
} extent_t;

typedef struct {
  napi_ref refs[CTX_ARRAYS];
  work_t *work; /* the calling thread's (thread_work), set at each read */
  extent_t ext[MAX_EXTENTS];
  size_t n_ext;
  double size;
  uint32_t count;
  const double *starts;
  const uint8_t *kinds;
  const uint32_t *args;
  const uint32_t *offs;
  const uint8_t *lit;
  size_t lit_len;
  const uint32_t *lit_start;
  uint32_t lit_count;
  uint32_t blocks;
  const double *b_offset;
  const uint32_t *b_csize;
  const uint32_t *b_usize;
  const uint8_t *b_flags;
  const uint32_t *b_sxh;
  uint8_t *state;
  double pool_bytes;
} splice_ctx_t;

static int typed(napi_env env, napi_value v, napi_typedarray_type want, void **data, size_t *len) {
  bool is;
  napi_typedarray_type type;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return 0;
  if (napi_get_typedarray_info(env, v, &type, len, data, NULL, NULL) != napi_ok || type != want) return 0;
  return 1;
}

static void finalize_ctx(napi_env env, void *data, void *hint) {
  (void)hint;
  splice_ctx_t *c = (splice_ctx_t *)data;
  for (int k = 0; k < CTX_ARRAYS; k++) if (c->refs[k]) napi_delete_reference(env, c->refs[k]);
  free(c);
}

static pthread_key_t work_key;
static pthread_once_t work_once = PTHREAD_ONCE_INIT;

static void free_work(void *p) {
  work_t *w = (work_t *)p;
  free(w->scratch);
  free(w);
}

static void make_work_key(void) {
  pthread_key_create(&work_key, free_work);
}

/* The calling thread's work arrays (made on its first read, freed when it ends); NULL when out of memory. */
static work_t *thread_work(void) {
  pthread_once(&work_once, make_work_key);
  work_t *w = pthread_getspecific(work_key);
  if (!w) {
    void *m;
    /* XXH3 states want 64-byte alignment */
    if (posix_memalign(&m, 64, sizeof *w) != 0) return NULL;
    w = memset(m, 0, sizeof *w);
    if (pthread_setspecific(work_key, w) != 0) {
      free(w);
      return NULL;
    }
  }
  return w;
}

napi_value splice_context(napi_env env, napi_callback_info info) {
  size_t argc = 14;
  napi_value argv[14];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  static const char *usage = "spliceContext(extents, size, starts, kinds, args, offs, litData, litStart, offset, csize, usize, flags, sxh, state)";
  splice_ctx_t *c = calloc(1, sizeof *c);
  if (!c) { napi_throw_error(env, NULL, "out of memory"); return NULL; }
  size_t n_starts, n_kinds, n_args, n_offs, n_litstart, n_off, n_csize, n_usize, n_flags, n_sxh, n_state, n_ext;
  static const napi_typedarray_type types[CTX_ARRAYS] = {
    napi_float64_array, napi_uint8_array, napi_uint32_array, napi_uint32_array, napi_uint8_array, napi_uint32_array,
    napi_float64_array, napi_uint32_array, napi_uint32_array, napi_uint8_array, napi_uint32_array, napi_uint8_array,
  };
  void *data[CTX_ARRAYS];
  void *ext;
  size_t *lens[CTX_ARRAYS] = { &n_starts, &n_kinds, &n_args, &n_offs, &c->lit_len, &n_litstart,
    &n_off, &n_csize, &n_usize, &n_flags, &n_sxh, &n_state };
  int ok = argc == 14 && typed(env, argv[0], napi_float64_array, &ext, &n_ext) && n_ext > 0 && n_ext % 4 == 0 &&
    n_ext / 4 <= MAX_EXTENTS && napi_get_value_double(env, argv[1], &c->size) == napi_ok && c->size >= 0;
  for (size_t k = 0; ok && k < n_ext / 4; k++) {
    const double *e = (const double *)ext + 4 * k;
    ok = e[0] >= 0 && e[1] >= 0 && e[1] <= INT32_MAX && e[2] >= 0 && e[3] >= 0 && (k == 0 || e[0] >= e[-4] + e[-1]);
    c->ext[k] = (extent_t){ (int64_t)e[0], (int)e[1], (int64_t)e[2], (int64_t)e[3] };
  }
  c->n_ext = n_ext / 4;
  for (int k = 0; ok && k < CTX_ARRAYS; k++) ok = typed(env, argv[2 + k], types[k], &data[k], lens[k]);
  ok = ok && n_starts == n_kinds && n_starts == n_args && n_starts == n_offs && n_starts <= UINT32_MAX && n_litstart >= 1 &&
    n_off == n_csize && n_off == n_usize && n_off == n_flags && n_off == n_sxh && n_state == n_off + 1 && n_off < UINT32_MAX;
  if (!ok) {
    free(c);
    napi_throw_type_error(env, NULL, usage);
    return NULL;
  }
  c->count = (uint32_t)n_starts;
  c->starts = data[0];
  c->kinds = data[1];
  c->args = data[2];
  c->offs = data[3];
  c->lit = data[4];
  c->lit_start = data[5];
  c->lit_count = (uint32_t)(n_litstart - 1);
  c->b_offset = data[6];
  c->b_csize = data[7];
  c->b_usize = data[8];
  c->b_flags = data[9];
  c->b_sxh = data[10];
  c->state = data[11];
  c->blocks = (uint32_t)n_off;
  c->pool_bytes = c->blocks ? c->b_offset[c->blocks - 1] + c->b_csize[c->blocks - 1] : 0;
  for (int k = 0; k < CTX_ARRAYS; k++) napi_create_reference(env, argv[2 + k], 1, &c->refs[k]);
  napi_value out;
  if (napi_create_external(env, c, finalize_ctx, NULL, &out) != napi_ok) {
    finalize_ctx(env, c, NULL);
    napi_throw_error(env, NULL, "spliceContext: cannot create the context");
    return NULL;
  }
  return out;
}

/* Note bytes [soff, soff + n) of block id's stored bytes, to be read into dst. */
static int add_piece(const splice_ctx_t *c, uint32_t id, uint32_t soff, uint8_t *dst, uint32_t n) {
  work_t *w = c->work;
  if (n == 0) return 0;
  if (w->npieces == MAX_PIECES) return -1;
  w->pieces[w->npieces++] = (piece_t){ id, soff, n, dst, (int64_t)c->b_offset[id - 1] + soff };
  if (c->state[id] != CHECK_UNCHECKED) return 0;
  for (size_t k = 0; k < w->npend; k++) if (w->pend[k].id == id) return 0;
  if (w->npend == MAX_UNCHECKED) return -1;
  w->pend[w->npend].id = id;
  w->pend[w->npend].next = 0;
  w->npend++;
  return 0;
}

/* Bytes [w, w + n) of block id's deflate segment into dst: its stored bytes, or for a raw
   block its data wrapped in stored deflate blocks (headers made here, data read in place). */
static int add_block(const splice_ctx_t *c, uint32_t id, uint64_t w, uint8_t *dst, uint64_t n) {
  if (id < 1 || id > c->blocks || c->state[id] == CHECK_CORRUPT) return -1;
  uint32_t csize = c->b_csize[id - 1];
  if (c->b_offset[id - 1] + csize > c->pool_bytes) return -1;
  if (!(c->b_flags[id - 1] & FLAG_RAW)) {
    if (w + n > csize) return -1;
    return add_piece(c, id, (uint32_t)w, dst, (uint32_t)n);
  }
  uint64_t usize = c->b_usize[id - 1];
  uint64_t chunks = usize ? (usize + STORED_MAX - 1) / STORED_MAX : 1;
  uint64_t end = w + n;
  if (csize != usize || end > usize + STORED_HEADER * chunks) return -1;
  for (uint64_t k = 0, cs = 0; cs < end; k++, cs += STORED_MAX + STORED_HEADER) {
    uint32_t clen = (uint32_t)(usize - k * STORED_MAX < STORED_MAX ? usize - k * STORED_MAX : STORED_MAX);
    uint8_t hdr[STORED_HEADER] = { 0, clen & 0xff, clen >> 8, ~clen & 0xff, (~clen >> 8) & 0xff };
    for (uint64_t b = cs > w ? cs : w; b < cs + STORED_HEADER && b < end; b++) dst[b - w] = hdr[b - cs];
    uint64_t ds = cs + STORED_HEADER > w ? cs + STORED_HEADER : w;
    uint64_t de = cs + STORED_HEADER + clen < end ? cs + STORED_HEADER + clen : end;
    if (de > ds && add_piece(c, id, (uint32_t)(k * STORED_MAX + (ds - cs - STORED_HEADER)), dst + (ds - w), (uint32_t)(de - ds)) < 0) return -1;
  }
  return 0;
}

ssize_t read_nowait(int fd, const struct iovec *iov, int n, off_t offset) {
  ssize_t r;
  do r = preadv2(fd, iov, n, offset, RWF_NOWAIT);
  while (r < 0 && errno == EINTR);
  return r;
}

/* One preadv2 of the page cache for pool bytes [pos, pos + len) into iov; all of it or -1 (also when they cross pieces). */
static int read_cached_all(const splice_ctx_t *c, struct iovec *iov, int n, int64_t pos, size_t len) {
  size_t k = c->n_ext;
  while (k > 0 && c->ext[k - 1].at > pos) k--;
  if (k == 0) return -1;
  const extent_t *e = &c->ext[k - 1];
  if (pos + (int64_t)len > e->at + e->len) return -1;
  ssize_t r = read_nowait(e->fd, iov, n, (off_t)(e->pos + (pos - e->at)));
  return r >= 0 && (size_t)r == len ? 0 : -1;
}

/* Read every noted piece: contiguous pool bytes (or nearly: gaps of RUN_GAP_MAX at most) in one call. */
static int read_pieces(const splice_ctx_t *c) {
  const work_t *w = c->work;
  struct iovec iov[MAX_IOV];
  int n = 0;
  int64_t run = 0;
  size_t len = 0;
  for (size_t k = 0; k < w->npieces; k++) {
    const piece_t *p = &w->pieces[k];
    int64_t gap = p->pool - (run + (int64_t)len);
    if (n > 0 && (n >= MAX_IOV - 1 || gap < 0 || gap > RUN_GAP_MAX)) {
      if (read_cached_all(c, iov, n, run, len) < 0) return -1;
      n = 0;
    }
    if (n == 0) {
      run = p->pool;
      len = 0;
    } else if (gap > 0) {
      iov[n].iov_base = gap_sink;
      iov[n].iov_len = (size_t)gap;
      n++;
      len += (size_t)gap;
    }
    iov[n].iov_base = p->dst;
    iov[n].iov_len = p->n;
    n++;
    len += p->n;
  }
  return n > 0 ? read_cached_all(c, iov, n, run, len) : 0;
}

/* Check the blocks not checked yet that this read touched. */
static int check_pending(const splice_ctx_t *c) {
  work_t *w = c->work;
  for (size_t q = 0; q < w->npend; q++) {
    pending_t *b = &w->pend[q];
    uint32_t csize = c->b_csize[b->id - 1];
    XXH3_64bits_reset(&b->st);
    for (size_t k = 0; k < w->npieces && b->next < csize; k++) {
      const piece_t *p = &w->pieces[k];
      if (p->id != b->id || p->soff != b->next) continue;
      XXH3_64bits_update(&b->st, p->dst, p->n);
      b->next += p->n;
    }
    uint64_t h;
    if (b->next == csize) {
      h = XXH3_64bits_digest(&b->st);
    } else {
      /* the read held part of the block: read all of it */
      if (csize > w->scratch_cap) {
        uint8_t *nb = realloc(w->scratch, csize);
        if (!nb) return -1;
        w->scratch = nb;
        w->scratch_cap = csize;
      }
      struct iovec v = { w->scratch, csize };
      if (read_cached_all(c, &v, 1, (int64_t)c->b_offset[b->id - 1], csize) < 0) return -1;
      h = XXH3_64bits(w->scratch, csize);
    }
    if ((uint32_t)(h & 0xffffffffu) != c->b_sxh[b->id - 1]) return -1;
    c->state[b->id] = CHECK_GOOD;
  }
  return 0;
}

static int64_t do_splice(splice_ctx_t *c, uint8_t *buf, size_t len, double pos) {
  if (pos >= c->size || len == 0) return 0;
  if (c->count == 0) return -1;
  c->work = thread_work();
  if (!c->work) return -1;
  double endd = pos + (double)len < c->size ? pos + (double)len : c->size;
  uint32_t lo = 0, hi = c->count - 1;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo + 1) / 2;
    if (c->starts[mid] <= pos) lo = mid;
    else hi = mid - 1;
  }
  /* a segment to inflate: leave the whole read to the JavaScript path before copying anything */
  for (uint32_t i = lo; i < c->count && c->starts[i] < endd; i++) {
    if (c->kinds[i] != SEG_ZERO && c->kinds[i] != SEG_LITERAL && c->kinds[i] != SEG_DEFLATE) return -1;
  }
  c->work->npieces = 0;
  c->work->npend = 0;
  double p = pos;
  for (uint32_t i = lo; p < endd; i++) {
    if (i >= c->count) return -1;
    double seg_end = i + 1 < c->count ? c->starts[i + 1] : c->size;
    uint64_t within = (uint64_t)(p - c->starts[i]);
    uint64_t n = (uint64_t)((endd < seg_end ? endd : seg_end) - p);
    uint8_t *dst = buf + (size_t)(p - pos);
    uint32_t arg = c->args[i];
    switch (c->kinds[i]) {
    case SEG_ZERO:
      memset(dst, 0, n);
      break;
    case SEG_LITERAL: {
      if (arg >= c->lit_count) return -1;
      uint64_t s = (uint64_t)c->lit_start[arg] + c->offs[i] + within;
      if (s + n > c->lit_start[arg + 1] || c->lit_start[arg + 1] > c->lit_len) return -1;
      memcpy(dst, c->lit + s, n);
      break;
    }
    case SEG_DEFLATE:
      if (add_block(c, arg, (uint64_t)c->offs[i] + within, dst, n) < 0) return -1;
      break;
    default:
      return -1;
    }
    p += (double)n;
  }
  if (read_pieces(c) < 0 || check_pending(c) < 0) return -1;
  return (int64_t)(endd - pos);
}

napi_value splice_read(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  splice_ctx_t *c;
  void *buf;
  size_t len;
  double pos;
  if (argc < 3 || napi_get_value_external(env, argv[0], (void **)&c) != napi_ok ||
      !typed(env, argv[1], napi_uint8_array, &buf, &len) ||
      napi_get_value_double(env, argv[2], &pos) != napi_ok || !(pos >= 0) || pos > 9007199254740991.0) {
    napi_throw_type_error(env, NULL, "spliceRead(ctx, buffer, position)");
    return NULL;
  }
  napi_value out;
  napi_create_int64(env, do_splice(c, buf, len, pos), &out);
  return out;
}
