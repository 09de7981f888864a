/**
 * Task logs: every line goes to `<dataDir>/logs/<taskId>.log` (complete), and the last N lines stay
 * in a memory ring for live views. Lines are batched: one file write and one event per tick.
 *
 * The file is opened with O_NOFOLLOW, for writing and for reading (a symlink planted in the logs
 * directory is refused, never written through nor shown to whoever reads the log). A log that cannot be written (a full disk, a directory or a symlink in the way)
 * never throws: the first error is kept in `error`, reported once through `onError`, and later lines
 * only reach the ring and the events.
 */
import { open, readFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { APPEND_NOFOLLOW, errnoText, READ_NOFOLLOW } from '../os/atomic.js';
import type { Bulk } from '../os/lines.js';

/** Lines longer than this are copied on the way in (see `add`). */
const LONG_LINE = 1024;

/** One task's log: the complete file on disk, a ring of the last lines, one batch event per tick. */
export class TaskLog {
  readonly file: string;
  /** Lines ever written (the ring may hold fewer). */
  total = 0;
  private ring: string[] = [];
  /** In order: single lines, and bulks of plain lines (`Bulk`). */
  private pending: (string | Bulk)[] = [];
  /** Bytes waiting for the file, in order. */
  private out: Buffer[] = [];
  private fh: FileHandle | null = null;
  /** A write loop is running (set and cleared synchronously with its last check of `out`). */
  private writing = false;
  /** Resolves when the current write loop ends. */
  private written: Promise<void> = Promise.resolve();
  private scheduled = false;
  /** Why the file could not be written, once it could not: "the task log F could not be written (…)". */
  error: string | null = null;

  /**
   * `onBatch` gets each tick's new lines from absolute index `from`; `skipped` > 0 says that many
   * lines just before `from` are in the file but not in the batch (a bulk's middle: see `addBulk`).
   * `onError` is told (once) when the file cannot be written.
   */
  constructor(
    dir: string,
    readonly taskId: string,
    private readonly ringSize: number,
    private readonly onBatch: (lines: string[], from: number, skipped: number) => void,
    private readonly onError?: (reason: string) => void,
  ) {
    this.file = join(dir, `${taskId}.log`);
  }

  /** Adds a line (already sanitized). */
  add(line: string): void {
    // A long line is usually a piece cut from a much longer string (a capped 10 MB line is 16 KiB
    // sliced from megabytes): copy it, so the ring and every viewer do not keep the whole original alive.
    this.pending.push(line.length > LONG_LINE ? Buffer.from(line, 'utf8').toString('utf8') : line);
    this.schedule();
  }

  /**
   * Adds a bulk of plain lines (nothing to sanitize): its bytes go to the file as they are, and only
   * its last lines (`tail`) to the ring and the batch event; live views show the end of a log, and
   * `logs` reads the file.
   */
  addBulk(b: Bulk): void {
    this.pending.push(b);
    this.schedule();
  }

  private schedule(): void {
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flushBatch());
    }
  }

  private flushBatch(): void {
    this.scheduled = false;
    if (this.pending.length === 0) return;
    const parts = this.pending;
    this.pending = [];
    // The file gets everything, in order, in one write; the event and the ring get the lines after
    // the last bulk's skipped middle.
    const chunks: Buffer[] = [];
    let run: string[] = [];
    const endRun = () => {
      if (run.length) chunks.push(Buffer.from(`${run.join('\n')}\n`));
      run = [];
    };
    let lines: string[] = [];
    let from = this.total;
    let n = this.total;
    for (const p of parts) {
      if (typeof p === 'string') {
        run.push(p);
        lines.push(p);
        n++;
        continue;
      }
      endRun();
      chunks.push(p.bytes);
      const gap = p.count - p.tail.length;
      if (gap > 0) {
        lines = p.tail.slice();
        from = n + gap;
      } else lines.push(...p.tail);
      n += p.count;
    }
    endRun();
    const skipped = from - this.total;
    if (!this.error) {
      this.out.push(...chunks);
      this.kick();
    }
    this.total = n;
    if (skipped > 0 || lines.length >= this.ringSize) this.ring = lines.slice(-this.ringSize);
    else {
      this.ring.push(...lines);
      if (this.ring.length > this.ringSize) this.ring.splice(0, this.ring.length - this.ringSize);
    }
    this.onBatch(lines, from, skipped);
  }

  /** The lines in memory, and how many earlier ones are only on disk. */
  tail(): { lines: string[]; dropped: number } {
    return { lines: [...this.ring], dropped: this.total - this.ring.length };
  }

  private kick(): void {
    if (this.writing) return;
    this.writing = true;
    this.written = this.writeLoop();
  }

  /** Writes `out` to the file until it is empty; never rejects (the first error goes to `fail`). */
  private async writeLoop(): Promise<void> {
    try {
      while (this.out.length > 0 && !this.error) {
        if (!this.fh) this.fh = await open(this.file, APPEND_NOFOLLOW, 0o640);
        const parts = this.out.splice(0);
        const buf = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
        for (let off = 0; off < buf.length;) off += (await this.fh.write(buf, off, buf.length - off, null)).bytesWritten;
      }
    } catch (e) {
      this.fail(e);
    }
    this.writing = false;
  }

  private fail(e: unknown): void {
    this.out = [];
    if (this.error) return;
    this.error = `the task log ${this.file} could not be written (${errnoText(e)})`;
    try {
      this.onError?.(this.error);
    } catch {
      /* the listener's trouble is not the log's */
    }
  }

  /** Resolves once every line added so far is in the file, or could not be (see `error`). */
  async drain(): Promise<void> {
    this.flushBatch();
    await this.written;
  }

  /** Flushes pending lines and closes the file; never rejects. Lines added later reopen it. */
  async close(): Promise<void> {
    do await this.drain();
    while (this.writing || this.pending.length > 0);
    const fh = this.fh;
    this.fh = null;
    if (!fh) return;
    try {
      await fh.close();
    } catch (e) {
      this.fail(e);
    }
  }
}

/** Reads a task's full log from disk (empty when it has none). */
export async function readLogFile(dir: string, taskId: string): Promise<string[]> {
  try {
    const text = await readFile(join(dir, `${taskId}.log`), { encoding: 'utf8', flag: READ_NOFOLLOW });
    if (!text) return [];
    const lines = text.split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    return lines;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

/** The end of a task's log: its last lines, and the index of the first of them in the whole log. */
export interface LogTail {
  lines: string[];
  /** How many lines come before `lines` (0 when `lines` is the whole log). */
  from: number;
  /** The file's length when read: where a `LogCursor` goes on from. */
  bytes: number;
}

/** Bytes read per step when looking for a log's last lines and counting the ones before them. */
const TAIL_CHUNK = 256 * 1024;

/**
 * Reads the last `n` lines of a task's log without reading the whole file into memory: the end is
 * read backwards until `n` line breaks are found, and the lines before are only counted. The index
 * agrees with `readLogFile` (a last line without its line break counts as a line).
 */
export async function readLogTail(dir: string, taskId: string, n: number): Promise<LogTail> {
  let fh;
  try {
    fh = await open(join(dir, `${taskId}.log`), READ_NOFOLLOW);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { lines: [], from: 0, bytes: 0 };
    throw e;
  }
  try {
    const size = (await fh.stat()).size;
    if (size === 0) return { lines: [], from: 0, bytes: 0 };
    // A final line break ends the last line; it does not start another.
    const last = Buffer.alloc(1);
    await fh.read(last, 0, 1, size - 1);
    const end = last[0] === 0x0a ? size - 1 : size;
    // Walk back from `end` to just after the n-th line break, or to the start of the file.
    const parts: Buffer[] = [];
    let cut = 0;
    let found = 0;
    let pos = end;
    scan: while (pos > 0) {
      const len = Math.min(TAIL_CHUNK, pos);
      const buf = Buffer.alloc(len);
      await readFully(fh, buf, pos - len);
      let i = len;
      while (i > 0) {
        const nl = buf.lastIndexOf(0x0a, i - 1);
        if (nl < 0) break;
        if (++found === n) {
          parts.unshift(buf.subarray(nl + 1));
          cut = pos - len + nl + 1;
          break scan;
        }
        i = nl;
      }
      parts.unshift(buf);
      pos -= len;
    }
    const text = Buffer.concat(parts).toString('utf8', 0, end - cut);
    const lines = end > cut ? text.split('\n') : [''];
    // Count the lines before the cut (each ends with a line break).
    let before = 0;
    for (let at = 0; at < cut;) {
      const len = Math.min(TAIL_CHUNK, cut - at);
      const buf = Buffer.alloc(len);
      await readFully(fh, buf, at);
      for (let i = buf.indexOf(0x0a); i >= 0; i = buf.indexOf(0x0a, i + 1)) before++;
      at += len;
    }
    return { lines, from: before, bytes: size };
  } finally {
    await fh.close();
  }
}

async function readFully(fh: FileHandle, buf: Buffer, at: number): Promise<void> {
  for (let off = 0; off < buf.length;) {
    const { bytesRead } = await fh.read(buf, off, buf.length - off, at + off);
    if (bytesRead === 0) throw new Error('log file shrank while being read');
    off += bytesRead;
  }
}

/**
 * Reads a task's log forward from a byte offset, whole lines at a time: how a follower streams a
 * log at the pace its client reads, instead of holding lines in memory for it. The file may not
 * exist yet (a queued task) or keep growing (a running one).
 */
export class LogCursor {
  private fh: FileHandle | null = null;

  constructor(
    readonly file: string,
    public offset = 0,
  ) {}

  /**
   * The next whole lines, about `max` bytes of them; [] when no whole line is there yet. With
   * `final`, a last line without its line break (left by a crash) counts as a line too.
   */
  async next(max: number, final = false): Promise<string[]> {
    if (!this.fh) {
      try {
        this.fh = await open(this.file, READ_NOFOLLOW);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
        throw e;
      }
    }
    let buf = Buffer.alloc(max);
    let got = 0;
    for (;;) {
      const { bytesRead } = await this.fh.read(buf, got, buf.length - got, this.offset + got);
      got += bytesRead;
      const nl = got > 0 ? buf.lastIndexOf(0x0a, got - 1) : -1;
      if (nl >= 0) {
        this.offset += nl + 1;
        return buf.toString('utf8', 0, nl).split('\n');
      }
      if (got < buf.length) {
        // The end of the file, inside a line: wait for its line break unless this is the last read.
        if (!final || got === 0) return [];
        this.offset += got;
        return [buf.toString('utf8', 0, got)];
      }
      // A line longer than the buffer: read on with a larger one.
      const bigger = Buffer.alloc(buf.length * 2);
      buf.copy(bigger, 0, 0, got);
      buf = bigger;
    }
  }

  async close(): Promise<void> {
    const fh = this.fh;
    this.fh = null;
    await fh?.close();
  }
}
