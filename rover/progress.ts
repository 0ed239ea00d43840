/**
 * Progress of a file transfer for people: a bar rewritten in place on a terminal, plain lines
 * (every 10 %) otherwise, so logs and CI output stay readable. Formatting is pure.
 */

const MiB = 1024 * 1024;

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < MiB) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 * MiB) return `${(n / MiB).toFixed(1)} MiB`;
  return `${(n / 1024 / MiB).toFixed(2)} GiB`;
}

/** Decimal megabytes per second, as throughput is usually quoted. */
export function formatRate(bytes: number, ms: number): string {
  return ms > 0 ? `${(bytes / 1e6 / (ms / 1000)).toFixed(1)} MB/s` : "– MB/s";
}

export function percent(done: number, size: number): number {
  return size === 0 ? 100 : Math.floor((done / size) * 100);
}

/** `name  42% [########............]  42.0 MiB / 100.0 MiB  3.2 MB/s` */
export function formatBar(
  name: string,
  done: number,
  size: number,
  ms: number,
  width = 24,
): string {
  const p = percent(done, size);
  const full = Math.round((p / 100) * width);
  const bar = `${"#".repeat(full)}${".".repeat(width - full)}`;
  return `${name} ${String(p).padStart(3)}% [${bar}] ${formatBytes(done)} / ${formatBytes(size)} ${formatRate(done, ms)}`;
}

/** The 10 % step a plain line is due for, or null when the last line covered it. */
export function plainStep(done: number, size: number, lastStep: number): number | null {
  const step = Math.floor(percent(done, size) / 10) * 10;
  return step > lastStep ? step : null;
}

/** Writes progress to a stream: in place on a TTY, a line per 10 % otherwise. */
export class ProgressView {
  #out: NodeJS.WriteStream;
  #tty: boolean;
  #lastStep = -1;
  #lastDraw = 0;
  #started = Date.now();
  readonly name: string;
  constructor(name: string, out: NodeJS.WriteStream = process.stderr) {
    this.name = name;
    this.#out = out;
    this.#tty = Boolean(out.isTTY);
  }

  update(done: number, size: number): void {
    const ms = Date.now() - this.#started;
    if (this.#tty) {
      // At most 10 redraws a second; always the last one.
      if (done < size && Date.now() - this.#lastDraw < 100) return;
      this.#lastDraw = Date.now();
      const cols = this.#out.columns || 0;
      const line = formatBar(this.name, done, size, ms);
      this.#out.write(`\r\x1b[2K${cols > 1 ? line.slice(0, cols - 1) : line}`);
      return;
    }
    const step = plainStep(done, size, this.#lastStep);
    if (step === null) return;
    this.#lastStep = step;
    this.#out.write(
      `${this.name}: ${step}% (${formatBytes(done)} of ${formatBytes(size)}, ${formatRate(done, ms)})\n`,
    );
  }

  /** A note on its own line (a resume, an interruption). */
  note(line: string): void {
    this.#out.write(this.#tty ? `\r\x1b[2K${line}\n` : `${line}\n`);
  }

  end(): void {
    if (this.#tty) this.#out.write("\n");
  }
}
