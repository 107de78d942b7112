// A remote file (http:// or https:// URL) as a ByteSource: what a universal
// ISO on a mirror is to everything that reads an image. Reads are served
// in CHUNK-sized pieces from a memory LRU (at once, without a promise, when
// every piece is there: preadCached), then the disk cache (--cache-dir),
// then the server. Missing neighbouring chunks go in one Range request, and
// pieces are handed to their readers as the body arrives. A reader whose
// chunks a request already covers waits for that request instead of asking
// again. Requests are scheduled here, at most one per connection: what a
// reader waits for goes first, readahead after, in order. Readahead is
// mostly exact: sequential readers of the pool (through recipes) announce
// the blocks they read next with willNeed, as far ahead as announceAhead
// asks (a few times throughput times latency, as measured). The source's
// own blind readahead for other sequential reads stays small. Every read
// gives up after a bounded time without progress (below FUSE's timeout)
// with a one-line RemoteError.

import { LRUCache } from 'lru-cache';
import { ByteSource } from './source';
import { HttpClientOptions, HttpRangeClient, MAX_SOCKETS, NO_PROGRESS_DEADLINE_MS, RemoteError } from './http-client';
import { DiskChunkCache } from './chunk-cache';

/** Bytes per chunk: the unit of caching (pool blocks are at most 64 KiB stored). */
export const CHUNK = 64 * 1024;
/** Readahead of a sequential reader: from this, doubling while it stays sequential, up to READAHEAD_MAX. */
const READAHEAD_MIN = 256 * 1024;
/**
 * Small: it reads blindly past what the reader will want. Readers that
 * know what they read next (the pool's, through recipes) announce it with
 * willNeed, as far ahead as `announceAhead` says: a few times throughput times
 * latency, within these bounds.
 */
const READAHEAD_MAX = 2 << 20;
const HINT_BDP_FACTOR = 4;
const HINT_MIN = 4 << 20;
const HINT_MAX = 64 << 20;
/** A request is at most this long (several go out at once, on separate connections). */
const REQUEST_MAX = 8 << 20;
/** Requests in flight at once: one per connection the client keeps. */
const MAX_FETCHES = MAX_SOCKETS;
/** A read this far after the end of the last one (e.g. the zlib framing between pool blocks) still counts as sequential. */
const SEQUENTIAL_GAP = 256 * 1024;
/** Sequential streams tracked at once (concurrent readers). */
const STREAMS = 8;
/** Cap of the disk cache when --cache-size is not given (2 GiB; not `2 << 30`, which is negative in 32-bit shifts). */
const DISK_CACHE_DEFAULT = 2 * 2 ** 30;
/** Beyond the readahead, chunks of the disk cache the kernel is asked to read ahead (posix_fadvise). */
const DISK_ADVISE = 8 << 20;
/** Buffers of evicted chunks kept for reuse (CHUNK bytes each). */
const SPARE_CHUNKS = 256;
/** Fetched chunks are written to the disk cache this many at a time. */
const DISK_WRITE_CHUNKS = 16;
/** Memory for chunks when there is a disk cache (hot chunks only). */
const MEMORY_WITH_DISK = 64 << 20;

export interface RemoteSourceOptions extends HttpClientOptions {
  /** directory for the disk cache; memory only when absent */
  cacheDir?: string;
  /** cap of the disk cache, or of the memory cache without one */
  cacheBytes?: number;
}

/** Bytes fetched and how, for `uniso info` and the bench. */
export interface RemoteStats {
  requests: number;
  bytesFetched: number;
  retries: number;
  chunksFromDisk: number;
}

interface Stream {
  /** end of the last read */
  next: number;
  /** how far ahead to keep fetched */
  window: number;
  /** end of what has been asked for ahead */
  aheadTo: number;
}

export class RemoteSource implements ByteSource {
  readonly size: number;
  readonly name: string;
  private readonly memory: LRUCache<number, Buffer>;
  private readonly disk: DiskChunkCache | undefined;
  private readonly inflight = new Map<number, Promise<Buffer>>();
  /** requests not yet started, and the run each queued chunk is in */
  private readonly queue: QueuedRun[] = [];
  private readonly queued = new Map<number, QueuedRun>();
  private running = 0;
  private readonly streams: Stream[] = [];
  private chunksFromDisk = 0;
  /** buffers of evicted chunks, for the next ones */
  private readonly spare: Buffer[] = [];
  /** chunk buffers waiting to be written to the disk cache: not reused */
  private readonly pinned = new Set<Buffer>();
  /** whether evicted chunks' buffers are reused (see preadv) */
  private recycle = true;
  private readonly deadlineMs: number;

  private constructor(private readonly client: HttpRangeClient, first: Buffer, opts: RemoteSourceOptions) {
    this.size = client.pin.size;
    this.name = client.name;
    this.deadlineMs = opts.deadlineMs ?? NO_PROGRESS_DEADLINE_MS;
    const memBytes = opts.cacheDir ? MEMORY_WITH_DISK : Math.max(4 << 20, opts.cacheBytes ?? 256 << 20);
    this.memory = new LRUCache<number, Buffer>({
      maxSize: memBytes, sizeCalculation: (b) => Math.max(1, b.length),
      // chunk buffers never leave this source (reads copy out of them): an evicted one takes the next chunk
      dispose: (b) => { if (this.recycle && b.length === CHUNK && !this.pinned.has(b) && this.spare.length < SPARE_CHUNKS) this.spare.push(b); },
    });
    this.disk = opts.cacheDir
      ? new DiskChunkCache(opts.cacheDir, { url: client.url.href, size: this.size, etag: client.pin.etag, lastModified: client.pin.lastModified },
        CHUNK, Math.max(16 << 20, opts.cacheBytes ?? DISK_CACHE_DEFAULT), opts.log)
      : undefined;
    this.memory.set(0, first);
    if (!this.disk?.has(0)) this.disk?.put(0, [first]);
  }

  /** Open `url` (one request: its first chunk, which pins the file's size and version). */
  static async open(url: string, opts: RemoteSourceOptions = {}): Promise<RemoteSource> {
    const first = Buffer.alloc(CHUNK);
    let got = 0;
    const client = await HttpRangeClient.open(url, opts, CHUNK, (pos, d) => {
      d.copy(first, pos);
      got = Math.max(got, pos + d.length);
    });
    try {
      return new RemoteSource(client, first.subarray(0, Math.min(got, client.pin.size)), opts);
    } catch (e) {
      client.close();
      throw e;
    }
  }

  get stats(): RemoteStats {
    return { requests: this.client.stats.requests, bytesFetched: this.client.stats.bytes, retries: this.client.stats.retries, chunksFromDisk: this.chunksFromDisk };
  }

  private chunkLen(i: number): number {
    return Math.min(CHUNK, this.size - i * CHUNK);
  }

  /** A buffer for chunk `i`: an evicted chunk's when it is a whole one. */
  private chunkBuffer(i: number): Buffer {
    const len = this.chunkLen(i);
    return len === CHUNK && this.spare.length ? this.spare.pop()! : Buffer.allocUnsafeSlow(len);
  }

  async pread(buf: Buffer, offset: number): Promise<number> {
    return this.preadv([buf], offset);
  }

  /** Scatter read: consecutive bytes from `offset` into `bufs` in turn (short only at the end of the file). */
  async preadv(bufs: Buffer[], offset: number): Promise<number> {
    const { len, end, c0, c1 } = this.span(bufs, offset);
    if (len === 0) return 0;
    let ahead = this.readahead(offset, end);
    for (let attempt = 0; ; attempt++) {
      const data = await this.bounded(Promise.all(this.chunks(c0, c1 + 1, ahead)), offset, len);
      ahead = undefined;
      // a chunk evicted while this read waited for the others may have had its buffer reused:
      // copy only when every chunk is still cached in the buffer it came in (it then holds that chunk)
      if (data.every((b, k) => this.memory.peek(c0 + k) === b)) {
        this.copyOut(data, c0, bufs, offset, len);
        return len;
      }
      if (attempt >= 2) this.recycle = false; // the cache is too small for the reads: stop reusing buffers
      if (!this.recycle) {
        this.copyOut(data, c0, bufs, offset, len);
        return len;
      }
    }
  }

  /**
   * Read into `bufs` (one after another) from `offset` at once, when every
   * byte is in memory (fetched ahead); else 0, having started what the read
   * needs (the caller then reads the usual way). Synchronous.
   */
  preadCached(bufs: Buffer[], offset: number): number {
    const { len, end, c0, c1 } = this.span(bufs, offset);
    if (len === 0) return 0;
    const data: Buffer[] = [];
    for (let i = c0; i <= c1; i++) {
      const b = this.memory.get(i);
      if (!b) return 0;
      data.push(b);
    }
    const ahead = this.readahead(offset, end);
    if (ahead) this.chunks(c1 + 1, c1 + 1, ahead);
    this.copyOut(data, c0, bufs, offset, len);
    return len;
  }

  /** What a read of `bufs` at `offset` covers: its length (short at the end of the file), end, first and last chunk. */
  private span(bufs: Buffer[], offset: number): { len: number; end: number; c0: number; c1: number } {
    const len = Math.max(0, Math.min(bufs.reduce((n, b) => n + b.length, 0), this.size - offset));
    const end = offset + len;
    return { len, end, c0: Math.floor(offset / CHUNK), c1: Math.floor((end - 1) / CHUNK) };
  }

  /** Copy `len` bytes from `offset` out of chunks `data` (chunk c0 first) into `bufs` in turn. */
  private copyOut(data: Buffer[], c0: number, bufs: Buffer[], offset: number, len: number): void {
    let k = 0;
    let within = 0; // position in bufs[k]
    for (let pos = offset; pos < offset + len;) {
      const i = Math.floor(pos / CHUNK);
      const chunk = data[i - c0];
      const from = pos - i * CHUNK;
      const n = Math.min(chunk.length - from, offset + len - pos, bufs[k].length - within);
      chunk.copy(bufs[k], within, from, from + n);
      pos += n;
      within += n;
      if (within === bufs[k].length) {
        k++;
        within = 0;
      }
    }
  }

  /** Fail a read that makes no progress for the deadline (the request behind it may be stuck). */
  private bounded<T>(p: Promise<T>, offset: number, len: number): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new RemoteError(`${this.name}: no answer for bytes ${offset}-${offset + len - 1} within ${this.deadlineMs / 1000} s`)), this.deadlineMs);
    });
    return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
  }

  /**
   * Readahead for a read of [offset, end): the range to fetch beyond it
   * when the read continues a sequential stream (and that stream's
   * fetched-ahead bytes run low), else undefined.
   */
  private readahead(offset: number, end: number): [number, number] | undefined {
    let s = this.streams.find((x) => offset >= x.next - CHUNK && offset <= x.next + SEQUENTIAL_GAP);
    if (!s) {
      if (this.streams.length >= STREAMS) this.streams.shift();
      this.streams.push({ next: end, window: 0, aheadTo: end });
      return undefined;
    }
    // the stream goes on: to the back of the list (the front is dropped first)
    this.streams.splice(this.streams.indexOf(s), 1);
    this.streams.push(s);
    s.next = Math.max(s.next, end);
    s.window = Math.min(READAHEAD_MAX, s.window ? s.window * 2 : READAHEAD_MIN);
    if (s.aheadTo < end) s.aheadTo = end;
    // top up when less than half the window is left ahead
    if (s.aheadTo - end >= s.window / 2 || s.aheadTo >= this.size) return undefined;
    const from = s.aheadTo;
    s.aheadTo = Math.min(this.size, end + s.window);
    return [from, s.aheadTo];
  }

  /** How far ahead sequential readers should announce their reads: a few times throughput times latency. */
  get announceAhead(): number {
    const bdp = this.client.throughput * (this.client.latencyMs / 1000);
    return Math.round(Math.min(HINT_MAX, Math.max(HINT_MIN, HINT_BDP_FACTOR * bdp)));
  }

  /** Hint: [offset, offset + len) will be read soon (the pool reader's readahead). */
  willNeed(offset: number, len: number): void {
    if (len <= 0 || offset >= this.size) return;
    const c0 = Math.floor(offset / CHUNK);
    const c1 = Math.floor((Math.min(this.size, offset + len) - 1) / CHUNK);
    this.chunks(c0, c1 + 1, undefined, false).forEach((p) => p.catch(() => { /* reported to whoever reads it */ }));
  }

  /**
   * Promises of chunks [a, b), starting what is needed: memory, disk,
   * requests in flight, else new requests (runs of missing chunks, each
   * with `ahead` joined to the last when it follows on).
   */
  private chunks(a: number, b: number, ahead?: [number, number], urgent = true): Promise<Buffer>[] {
    const out: Promise<Buffer>[] = [];
    const missing: number[] = [];
    const later: number[] = [];
    const onDisk: number[] = [];
    for (let i = a; i < b; i++) {
      out.push(this.chunk(i, urgent ? missing : later, onDisk));
      if (urgent) this.hurry(i);
    }
    if (ahead) {
      const ca = Math.floor(ahead[0] / CHUNK);
      const cb = Math.ceil(ahead[1] / CHUNK);
      for (let i = Math.max(ca, b); i < cb; i++) this.chunk(i, later, onDisk).catch(() => { /* a reader asks again */ });
      // what the disk cache has further on: have the kernel read it ahead (no memory of ours, no network)
      this.disk?.advise(Math.max(cb, b), DISK_ADVISE / CHUNK);
    }
    this.request(missing, true);
    this.request(later, false);
    this.fromDisk(onDisk);
    return out;
  }

  /** A reader waits for chunk `i`: if its request is still queued, it goes first. */
  private hurry(i: number): void {
    const run = this.queued.get(i);
    if (run && !run.urgent) run.urgent = true;
  }

  /**
   * The promise of chunk `i`; a chunk not in memory or in flight is
   * registered as in flight and its index added to `onDisk` (the disk
   * cache has it) or `missing`.
   */
  private chunk(i: number, missing: number[], onDisk: number[]): Promise<Buffer> {
    const hit = this.memory.get(i);
    if (hit) return Promise.resolve(hit);
    const flying = this.inflight.get(i);
    if (flying) return flying;
    let resolve!: (b: Buffer) => void;
    let reject!: (e: Error) => void;
    const p = new Promise<Buffer>((res, rej) => { resolve = res; reject = rej; });
    p.catch(() => { /* handled by the readers */ });
    this.inflight.set(i, p);
    (p as PendingChunk).settle = { resolve, reject };
    (this.disk?.has(i) ? onDisk : missing).push(i);
    return p;
  }

  /** Read chunks `ids` (registered in flight) from the disk cache, a run at a time; what it lacks is fetched. */
  private fromDisk(ids: number[]): void {
    const disk = this.disk;
    if (!disk || !ids.length) return;
    ids.sort((x, y) => x - y);
    for (let k = 0; k < ids.length;) {
      const a = ids[k];
      let n = 1;
      const limit = disk.runLength(a, ids.length - k);
      while (n < limit && ids[k + n] === a + n) n++;
      k += n;
      const bufs = Array.from({ length: n }, (_, j) => this.chunkBuffer(a + j));
      void disk.getRun(a, bufs).then((ok) => {
        const refetch: number[] = [];
        ok.forEach((good, j) => {
          const i = a + j;
          const p = this.inflight.get(i) as PendingChunk | undefined;
          const data = bufs[j];
          if (!good) {
            if (this.recycle && data.length === CHUNK && this.spare.length < SPARE_CHUNKS) this.spare.push(data);
            refetch.push(i);
            return;
          }
          this.chunksFromDisk++;
          this.memory.set(i, data);
          this.inflight.delete(i);
          p?.settle?.resolve(data);
        });
        this.request(refetch, true);
      });
    }
  }

  /** Fetch chunks `ids` (registered in flight), runs of consecutive ones in requests of at most REQUEST_MAX. */
  private request(ids: number[], urgent: boolean): void {
    ids.sort((x, y) => x - y);
    for (let k = 0; k < ids.length;) {
      let e = k + 1;
      while (e < ids.length && ids[e] === ids[e - 1] + 1 && (e - k + 1) * CHUNK <= REQUEST_MAX) e++;
      const run: QueuedRun = { a: ids[k], b: ids[e - 1] + 1, urgent };
      this.queue.push(run);
      for (let i = run.a; i < run.b; i++) this.queued.set(i, run);
      k = e;
    }
    this.pump();
  }

  /** Start queued requests while fewer than MAX_FETCHES run: what a reader waits for first, then readahead in order. */
  private pump(): void {
    while (this.running < MAX_FETCHES && this.queue.length) {
      let k = this.queue.findIndex((r) => r.urgent);
      if (k < 0) k = 0;
      const [run] = this.queue.splice(k, 1);
      for (let i = run.a; i < run.b; i++) if (this.queued.get(i) === run) this.queued.delete(i);
      this.running++;
      this.fetchRun(run.a, run.b).finally(() => {
        this.running--;
        this.pump();
      });
    }
  }

  /** One request for chunks [a, b), each handed to its waiters as soon as its bytes are in. */
  private fetchRun(a: number, b: number): Promise<void> {
    let cur: Buffer | undefined;
    let curIdx = a;
    let filled = 0;
    // complete chunks not yet given to the disk cache (consecutive, from doneFrom)
    let done: Buffer[] = [];
    let doneFrom = a;
    const store = () => {
      if (done.length) this.disk?.put(doneFrom, done); // copies them at once
      for (const c of done) this.pinned.delete(c);
      done = [];
    };
    // the chunks this request stands for (a chunk done, evicted and asked for again belongs to another)
    const mine = new Map<number, PendingChunk>();
    for (let i = a; i < b; i++) {
      const p = this.inflight.get(i) as PendingChunk | undefined;
      if (p?.settle) mine.set(i, p);
    }
    const settle = (i: number) => {
      const p = mine.get(i);
      mine.delete(i);
      if (p && this.inflight.get(i) === p) this.inflight.delete(i);
      return p?.settle;
    };
    return this.client.fetch(a * CHUNK, Math.min(this.size, b * CHUNK), (pos, d) => {
      while (d.length) {
        const i = Math.floor(pos / CHUNK);
        const off = pos - i * CHUNK;
        if (!cur || i !== curIdx || off > filled) {
          if (off !== 0) {
            // not the start of its chunk, nor the continuation of what this chunk received: its
            // start is missing, so it cannot be completed from this answer (never keep a chunk
            // partly unwritten); the chunk fails below and is fetched again by the next read
            const skip = Math.min(d.length, this.chunkLen(i) - off);
            pos += skip;
            d = d.subarray(skip);
            cur = undefined;
            continue;
          }
          curIdx = i;
          cur = this.chunkBuffer(i);
          filled = 0;
        } else if (off < filled) {
          filled = off; // bytes received again: the same bytes (the file is pinned), written again in place
        }
        const n = Math.min(d.length, cur.length - filled);
        d.copy(cur, filled, 0, n);
        filled += n;
        pos += n;
        d = d.subarray(n);
        if (filled === cur.length) {
          const s = settle(i);
          this.memory.set(i, cur);
          if (done.length && doneFrom + done.length !== i) store(); // a chunk was skipped: not consecutive
          if (!done.length) doneFrom = i;
          done.push(cur);
          this.pinned.add(cur); // not reused if evicted before store() copies it
          if (done.length >= DISK_WRITE_CHUNKS) store();
          s?.resolve(cur);
          cur = undefined;
        }
      }
    }).then(() => {
      store();
      // every byte asked for arrived, yet a chunk was not completed (see above): its readers fail, not hang
      const e = new RemoteError(`${this.name}: incomplete answer for bytes ${a * CHUNK}-${Math.min(this.size, b * CHUNK) - 1}`);
      for (const i of [...mine.keys()]) settle(i)?.reject(e);
    }, (e: Error) => {
      store();
      for (const i of [...mine.keys()]) settle(i)?.reject(e);
    });
  }

  close(): void {
    this.client.close();
    this.disk?.close();
  }
}

/** Chunks [a, b) to fetch in one request; urgent when a reader waits for them. */
interface QueuedRun {
  a: number;
  b: number;
  urgent: boolean;
}

type PendingChunk = Promise<Buffer> & { settle?: { resolve: (b: Buffer) => void; reject: (e: Error) => void } };
