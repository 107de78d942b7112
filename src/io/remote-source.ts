// A remote file (http:// or https:// URL) as a ByteSource: what a universal
// ISO on a mirror is to everything that reads an image. Reads are served
// in CHUNK-sized pieces from a memory LRU, then the disk cache
// (--cache-dir), then the server: missing neighbouring chunks go in one
// Range request, pieces are handed to their readers as the body arrives,
// and a reader that a request already covers waits for it rather than
// asking again. Sequential readers (the pool read in order by a view)
// get readahead that grows while they stay sequential, up to what keeps
// the connection busy: a few times throughput times latency, as measured.
// willNeed() (the pool reader's exact hint of the blocks it reads next)
// is fetched the same way. Every read gives up after a bounded time
// without progress (below FUSE's timeout) with a one-line RemoteError.

import { LRUCache } from 'lru-cache';
import { ByteSource } from './source';
import { HttpClientOptions, HttpRangeClient, NO_PROGRESS_DEADLINE_MS, RemoteError } from './http-client';
import { DiskChunkCache } from './chunk-cache';

/** Bytes per chunk: the unit of caching (pool blocks are at most 64 KiB stored). */
export const CHUNK = 64 * 1024;
/** Readahead of a sequential reader: from this, doubling while it stays sequential... */
const READAHEAD_MIN = 256 * 1024;
/** ...up to this many times throughput times latency, within these bounds. */
const READAHEAD_BDP_FACTOR = 4;
const READAHEAD_FLOOR = 1 << 20;
const READAHEAD_MAX = 16 << 20;
/** A readahead request is at most this long (several go out at once, on separate connections). */
const REQUEST_MAX = 2 << 20;
/** A read this far after the end of the last one (e.g. the zlib framing between pool blocks) still counts as sequential. */
const SEQUENTIAL_GAP = 256 * 1024;
/** Sequential streams tracked at once (concurrent readers). */
const STREAMS = 8;
/** Memory for chunks when there is a disk cache (hot chunks only). */
const MEMORY_WITH_DISK = 32 << 20;

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
  private readonly streams: Stream[] = [];
  private chunksFromDisk = 0;
  private readonly deadlineMs: number;

  private constructor(private readonly client: HttpRangeClient, first: Buffer, opts: RemoteSourceOptions) {
    this.size = client.pin.size;
    this.name = client.name;
    this.deadlineMs = opts.deadlineMs ?? NO_PROGRESS_DEADLINE_MS;
    const memBytes = opts.cacheDir ? MEMORY_WITH_DISK : Math.max(4 << 20, opts.cacheBytes ?? 256 << 20);
    this.memory = new LRUCache<number, Buffer>({ maxSize: memBytes, sizeCalculation: (b) => Math.max(1, b.length) });
    this.disk = opts.cacheDir
      ? new DiskChunkCache(opts.cacheDir, { url: client.url.href, size: this.size, etag: client.pin.etag, lastModified: client.pin.lastModified },
        Math.max(16 << 20, opts.cacheBytes ?? 2 << 30), opts.log)
      : undefined;
    this.keep(0, first);
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

  private keep(i: number, data: Buffer): void {
    this.memory.set(i, data);
    this.disk?.put(i, data);
  }

  async pread(buf: Buffer, offset: number): Promise<number> {
    const len = Math.max(0, Math.min(buf.length, this.size - offset));
    if (len === 0) return 0;
    const end = offset + len;
    const c0 = Math.floor(offset / CHUNK);
    const c1 = Math.floor((end - 1) / CHUNK);
    const ahead = this.readahead(offset, end);
    const chunks = this.chunks(c0, c1 + 1, ahead);
    let done = 0;
    for (let i = c0; i <= c1; i++) {
      const data = await this.bounded(chunks[i - c0], i);
      const from = i === c0 ? offset - i * CHUNK : 0;
      const to = Math.min(data.length, end - i * CHUNK);
      data.copy(buf, done, from, to);
      done += to - from;
    }
    return done;
  }

  /** Fail a wait for chunk `i` that makes no progress for the deadline (the request behind it may be stuck). */
  private bounded(p: Promise<Buffer>, i: number): Promise<Buffer> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new RemoteError(`${this.name}: no answer for bytes ${i * CHUNK}-${i * CHUNK + this.chunkLen(i) - 1} within ${this.deadlineMs / 1000} s`)), this.deadlineMs);
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
    const bdp = this.client.throughput * (this.client.latencyMs / 1000);
    const max = Math.min(READAHEAD_MAX, Math.max(READAHEAD_FLOOR, READAHEAD_BDP_FACTOR * bdp));
    s.window = Math.min(max, s.window ? s.window * 2 : READAHEAD_MIN);
    if (s.aheadTo < end) s.aheadTo = end;
    // top up when less than half the window is left ahead
    if (s.aheadTo - end >= s.window / 2 || s.aheadTo >= this.size) return undefined;
    const from = s.aheadTo;
    s.aheadTo = Math.min(this.size, end + s.window);
    return [from, s.aheadTo];
  }

  /** Hint: [offset, offset + len) will be read soon (the pool reader's readahead). */
  willNeed(offset: number, len: number): void {
    if (len <= 0 || offset >= this.size) return;
    const c0 = Math.floor(offset / CHUNK);
    const c1 = Math.floor((Math.min(this.size, offset + len) - 1) / CHUNK);
    this.chunks(c0, c1 + 1).forEach((p) => p.catch(() => { /* reported to whoever reads it */ }));
  }

  /**
   * Promises of chunks [a, b), starting what is needed: memory, disk,
   * requests in flight, else new requests (runs of missing chunks, each
   * with `ahead` joined to the last when it follows on).
   */
  private chunks(a: number, b: number, ahead?: [number, number]): Promise<Buffer>[] {
    const out: Promise<Buffer>[] = [];
    const missing: number[] = [];
    for (let i = a; i < b; i++) out.push(this.chunk(i, missing));
    if (ahead) {
      const ca = Math.floor(ahead[0] / CHUNK);
      const cb = Math.ceil(ahead[1] / CHUNK);
      for (let i = Math.max(ca, b); i < cb; i++) this.chunk(i, missing).catch(() => { /* a reader asks again */ });
    }
    this.request(missing);
    return out;
  }

  /** The promise of chunk `i`; a missing one is registered as in flight and its index added to `missing`. */
  private chunk(i: number, missing: number[]): Promise<Buffer> {
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
    if (this.disk?.has(i)) {
      const len = this.chunkLen(i);
      void this.disk.get(i, len).then((data) => {
        if (data) {
          this.chunksFromDisk++;
          this.memory.set(i, data);
          this.inflight.delete(i);
          resolve(data);
        } else {
          this.request([i]);
        }
      });
      return p;
    }
    missing.push(i);
    return p;
  }

  /** Fetch chunks `ids` (registered in flight), runs of consecutive ones in requests of at most REQUEST_MAX. */
  private request(ids: number[]): void {
    ids.sort((x, y) => x - y);
    for (let k = 0; k < ids.length;) {
      let e = k + 1;
      while (e < ids.length && ids[e] === ids[e - 1] + 1 && (e - k + 1) * CHUNK <= REQUEST_MAX) e++;
      this.fetchRun(ids[k], ids[e - 1] + 1);
      k = e;
    }
  }

  /** One request for chunks [a, b), each handed to its waiters as soon as its bytes are in. */
  private fetchRun(a: number, b: number): void {
    let cur: Buffer | undefined;
    let curIdx = a;
    let filled = 0;
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
    this.client.fetch(a * CHUNK, Math.min(this.size, b * CHUNK), (pos, d) => {
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
          cur = Buffer.allocUnsafe(this.chunkLen(i));
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
          this.keep(i, cur);
          s?.resolve(cur);
          cur = undefined;
        }
      }
    }).then(() => {
      // every byte asked for arrived, yet a chunk was not completed (see above): its readers fail, not hang
      const e = new RemoteError(`${this.name}: incomplete answer for bytes ${a * CHUNK}-${Math.min(this.size, b * CHUNK) - 1}`);
      for (const i of [...mine.keys()]) settle(i)?.reject(e);
    }, (e: Error) => {
      for (const i of [...mine.keys()]) settle(i)?.reject(e);
    });
  }

  close(): void {
    this.client.close();
  }
}

type PendingChunk = Promise<Buffer> & { settle?: { resolve: (b: Buffer) => void; reject: (e: Error) => void } };
