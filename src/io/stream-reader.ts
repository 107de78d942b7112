// Pull-style exact reads over an async iterable of chunks (a file stream,
// a gunzip stream, a child's stdout): read(n) returns exactly n bytes or
// fewer only at the end of the stream.

export class StreamReader {
  private chunks: Buffer[] = [];
  private have = 0;
  private ended = false;
  private readonly it: AsyncIterator<Buffer>;
  consumed = 0;

  constructor(source: AsyncIterable<Buffer>) {
    this.it = source[Symbol.asyncIterator]();
  }

  private async fill(n: number): Promise<void> {
    while (this.have < n && !this.ended) {
      const r = await this.it.next();
      if (r.done) {
        this.ended = true;
        break;
      }
      const b = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
      if (b.length) {
        this.chunks.push(b);
        this.have += b.length;
      }
    }
  }

  /** Exactly n bytes, or fewer at end of stream. */
  async read(n: number): Promise<Buffer> {
    await this.fill(n);
    const take = Math.min(n, this.have);
    let out: Buffer;
    if (this.chunks.length && this.chunks[0].length >= take) {
      out = this.chunks[0].subarray(0, take);
      this.chunks[0] = this.chunks[0].subarray(take);
      if (this.chunks[0].length === 0) this.chunks.shift();
    } else {
      out = Buffer.allocUnsafe(take);
      let o = 0;
      while (o < take) {
        const c = this.chunks[0];
        const k = Math.min(c.length, take - o);
        c.copy(out, o, 0, k);
        o += k;
        if (k === c.length) this.chunks.shift();
        else this.chunks[0] = c.subarray(k);
      }
    }
    this.have -= take;
    this.consumed += take;
    return out;
  }

  /** Up to `max` bytes of whatever is buffered (at least 1 unless at end). */
  async readSome(max: number): Promise<Buffer> {
    if (this.have === 0) await this.fill(1);
    if (this.have === 0) return Buffer.alloc(0);
    const c = this.chunks[0];
    const k = Math.min(c.length, max);
    return this.read(k);
  }

  async skip(n: number): Promise<number> {
    let left = n;
    while (left > 0) {
      const b = await this.readSome(Math.min(left, 1 << 20));
      if (b.length === 0) break;
      left -= b.length;
    }
    return n - left;
  }

  /** Drain the rest of the stream (so a producer process can exit). */
  async drain(): Promise<void> {
    while ((await this.readSome(1 << 20)).length) { /* discard */ }
  }
}
