/**
 * Task logs: every line goes to `<dataDir>/logs/<taskId>.log` (complete), and the last N lines stay
 * in a memory ring for live views. Lines are batched: one file write and one event per tick.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Lines longer than this are copied on the way in (see `add`). */
const LONG_LINE = 1024;

/** One task's log: the complete file on disk, a ring of the last lines, one batch event per tick. */
export class TaskLog {
  readonly file: string;
  /** Lines ever written (the ring may hold fewer). */
  total = 0;
  private ring: string[] = [];
  private pending: string[] = [];
  private stream: WriteStream | null = null;
  private scheduled = false;

  constructor(dir: string, readonly taskId: string, private readonly ringSize: number, private readonly onBatch: (lines: string[], from: number) => void) {
    this.file = join(dir, `${taskId}.log`);
  }

  /** Adds a line (already sanitized). */
  add(line: string): void {
    // A long line is usually a piece cut from a much longer string (a capped 10 MB line is 16 KiB
    // sliced from megabytes): copy it, so the ring and every viewer do not keep the whole original alive.
    this.pending.push(line.length > LONG_LINE ? Buffer.from(line, 'utf8').toString('utf8') : line);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flushBatch());
    }
  }

  private flushBatch(): void {
    this.scheduled = false;
    if (this.pending.length === 0) return;
    const lines = this.pending;
    this.pending = [];
    if (!this.stream) this.stream = createWriteStream(this.file, { flags: 'a', mode: 0o640 });
    this.stream.write(`${lines.join('\n')}\n`);
    const from = this.total;
    this.total += lines.length;
    if (lines.length >= this.ringSize) this.ring = lines.slice(-this.ringSize);
    else {
      this.ring.push(...lines);
      if (this.ring.length > this.ringSize) this.ring.splice(0, this.ring.length - this.ringSize);
    }
    this.onBatch(lines, from);
  }

  /** The lines in memory, and how many earlier ones are only on disk. */
  tail(): { lines: string[]; dropped: number } {
    return { lines: [...this.ring], dropped: this.total - this.ring.length };
  }

  /** Resolves once every line added so far is in the file (the task keeps logging). */
  drain(): Promise<void> {
    this.flushBatch();
    const s = this.stream;
    if (!s) return Promise.resolve();
    return new Promise((resolve) => s.write('', () => resolve()));
  }

  /** Flushes pending lines and closes the file. */
  close(): Promise<void> {
    this.flushBatch();
    const s = this.stream;
    this.stream = null;
    if (!s) return Promise.resolve();
    return new Promise((resolve) => s.end(() => resolve()));
  }
}

/** Reads a task's full log from disk (empty when it has none). */
export async function readLogFile(dir: string, taskId: string): Promise<string[]> {
  try {
    const text = await readFile(join(dir, `${taskId}.log`), 'utf8');
    if (!text) return [];
    const lines = text.split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    return lines;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}
