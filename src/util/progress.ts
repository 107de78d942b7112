// Progress on stderr: a redrawn bar on a TTY, plain lines otherwise (one
// when a phase starts, then at most one every few seconds), nothing with
// --quiet.

const LINE_INTERVAL_MS = 3000;
const BAR_INTERVAL_MS = 100;

export type Unit = 'bytes' | 'items';

export class Progress {
  private phaseName = '';
  private total = 0;
  private done = 0;
  private unit: Unit = 'bytes';
  private lastOut = 0;
  private readonly tty: boolean;

  constructor(private readonly enabled = true, private readonly stream: NodeJS.WriteStream = process.stderr) {
    this.tty = !!stream.isTTY;
  }

  private amount(n: number): string {
    return this.unit === 'bytes' ? fmtBytes(n) : String(n);
  }

  phase(name: string, total = 0, unit: Unit = 'bytes'): void {
    this.finishLine();
    this.phaseName = name;
    this.total = total;
    this.done = 0;
    this.unit = unit;
    this.lastOut = Date.now();
    if (!this.enabled) return;
    if (this.tty) this.draw();
    else this.stream.write(`uniso: ${name}${total ? ` (${this.amount(total)}${unit === 'items' ? ' items' : ''})` : ''}\n`);
  }

  add(n: number): void {
    this.done += n;
    if (!this.enabled || !this.total) return;
    const now = Date.now();
    if (this.tty) {
      if (now - this.lastOut >= BAR_INTERVAL_MS) this.draw();
    } else if (now - this.lastOut >= LINE_INTERVAL_MS) {
      this.lastOut = now;
      this.stream.write(`uniso: ${this.phaseName}: ${this.percent()}% (${this.amount(Math.min(this.done, this.total))})\n`);
    }
  }

  note(line: string): void {
    if (!this.enabled) return;
    this.finishLine();
    this.stream.write(`uniso: ${line}\n`);
  }

  private percent(): number {
    return this.total ? Math.min(100, Math.floor((this.done * 100) / this.total)) : 0;
  }

  private draw(): void {
    this.lastOut = Date.now();
    const width = 30;
    const frac = this.total ? Math.min(1, this.done / this.total) : 0;
    const filled = Math.round(frac * width);
    const bar = this.total ? ` [${'#'.repeat(filled)}${' '.repeat(width - filled)}] ${String(this.percent()).padStart(3)}%` : '';
    const amount = this.total ? ` ${this.amount(Math.min(this.done, this.total))}/${this.amount(this.total)}` : '';
    this.stream.write(`\r\x1b[K${this.phaseName}${bar}${amount}`);
  }

  private finishLine(): void {
    if (this.enabled && this.tty && this.phaseName) {
      this.draw();
      this.stream.write('\n');
    }
    this.phaseName = '';
  }

  end(): void {
    this.finishLine();
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
