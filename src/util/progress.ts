// Progress on stderr: a redrawn bar on a TTY, plain lines otherwise (one per
// phase start and at most one per 10% step), nothing with --quiet.

export class Progress {
  private phaseName = '';
  private total = 0;
  private done = 0;
  private lastPct = -1;
  private lastDraw = 0;
  private readonly tty: boolean;

  constructor(private readonly enabled = true, private readonly stream: NodeJS.WriteStream = process.stderr) {
    this.tty = !!stream.isTTY;
  }

  phase(name: string, total = 0): void {
    this.finishLine();
    this.phaseName = name;
    this.total = total;
    this.done = 0;
    this.lastPct = -1;
    if (!this.enabled) return;
    if (this.tty) this.draw(true);
    else this.stream.write(`uniso: ${name}${total ? ` (${fmtBytes(total)})` : ''}\n`);
  }

  add(n: number): void {
    this.done += n;
    if (!this.enabled || !this.total) return;
    const pct = Math.min(100, Math.floor((this.done * 100) / this.total));
    if (this.tty) {
      const now = Date.now();
      if (now - this.lastDraw > 100 || pct === 100) this.draw(false);
    } else if (pct >= this.lastPct + 10) {
      this.lastPct = pct - (pct % 10);
      this.stream.write(`uniso: ${this.phaseName} ${this.lastPct}%\n`);
    }
  }

  note(line: string): void {
    if (!this.enabled) return;
    this.finishLine();
    this.stream.write(`uniso: ${line}\n`);
  }

  private draw(force: boolean): void {
    this.lastDraw = Date.now();
    const width = 30;
    const frac = this.total ? Math.min(1, this.done / this.total) : 0;
    const filled = Math.round(frac * width);
    const bar = this.total ? `[${'#'.repeat(filled)}${' '.repeat(width - filled)}] ${String(Math.floor(frac * 100)).padStart(3)}%` : '';
    const amount = this.total ? ` ${fmtBytes(this.done)}/${fmtBytes(this.total)}` : '';
    this.stream.write(`\r\x1b[K${this.phaseName} ${bar}${amount}`);
    if (force && !this.total) this.lastDraw = 0;
  }

  private finishLine(): void {
    if (this.enabled && this.tty && this.phaseName) {
      this.draw(false);
      this.stream.write('\n');
    }
  }

  end(): void {
    this.finishLine();
    this.phaseName = '';
  }
}

export function fmtBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}
