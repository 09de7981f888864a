/**
 * A script's output, from bytes to log lines.
 *
 * `LineSplitter` cuts text into lines. `ByteLines` sits in front of it for a byte stream (the stdout
 * spool) and adds a bulk path for floods: a run of complete lines that are plain printable ASCII,
 * none a `::kindler:` marker and none longer than the storage cap, needs nothing done to it line by
 * line (sanitizing and capping would leave every one as it is). Such a run goes on as its bytes, a
 * line count and its last few lines as strings, instead of one decoded string and one call per
 * line; everything else (escapes, control characters, any UTF-8 beyond ASCII, markers, long lines,
 * \r) takes the per-line path, so what ends up in the log is the same either way.
 */
import { StringDecoder } from 'node:string_decoder';
import { MARKER_PREFIX } from '../core/markers.js';
import { LINE_CAP } from '../core/text.js';
/** Byte runs shorter than this are not worth a bulk (the per-line path is as cheap). */
const BULK_MIN_BYTES = 4096;
const MARKER = Buffer.from(MARKER_PREFIX);

/** Complete plain lines, in bulk: `bytes` holds `count` lines, each ending in \n; `tail` is the last up to N of them. */
export interface Bulk {
  bytes: Buffer;
  count: number;
  tail: string[];
}

/** Splits a byte stream into lines, handling \n, \r\n and bare \r; caps a pending line at 1 MiB. */
export class LineSplitter {
  private buf = '';
  constructor(
    private readonly emit: (line: string) => void,
    private readonly maxPending = 1 << 20,
  ) {}
  /** Whether part of a line (or a trailing \r) is waiting for the rest of it. */
  get pending(): boolean {
    return this.buf.length > 0;
  }
  push(chunk: string): void {
    this.buf += chunk;
    const buf = this.buf;
    let start = 0;
    if (buf.indexOf('\r') < 0) {
      // The common case, no carriage returns: split on \n with indexOf (no per-character loop).
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n', start)) {
        this.emit(buf.slice(start, i));
        start = i + 1;
      }
    } else {
      for (let i = 0; i < buf.length; i++) {
        const c = buf.charCodeAt(i);
        if (c === 10 || c === 13) {
          if (c === 13 && buf.charCodeAt(i + 1) === 10) {
            this.emit(buf.slice(start, i));
            i++;
          } else if (c === 13 && i + 1 === buf.length) {
            // A trailing \r may be half of \r\n: keep it for the next chunk.
            break;
          } else {
            this.emit(buf.slice(start, i));
          }
          start = i + 1;
        }
      }
    }
    this.buf = start ? buf.slice(start) : buf;
    if (this.buf.length > this.maxPending) {
      this.emit(this.buf);
      this.buf = '';
    }
  }
  end(): void {
    if (this.buf.length) this.emit(this.buf.replace(/\r$/, ''));
    this.buf = '';
  }
}

/**
 * Counts the lines of `b` (which must end in \n) if every byte is printable ASCII or \n and no line
 * is longer than `maxLine`; -1 otherwise.
 */
export function countPlainLines(b: Uint8Array, maxLine = LINE_CAP): number {
  let count = 0;
  let lineStart = 0;
  for (let i = 0; i < b.length; i++) {
    const c = b[i]!;
    if (c === 10) {
      if (i - lineStart > maxLine) return -1;
      count++;
      lineStart = i + 1;
    } else if (c < 0x20 || c > 0x7e) return -1;
  }
  return lineStart === b.length ? count : -1;
}

/** The last `n` lines of `b` (complete plain lines, ending in \n) as strings. */
function lastLines(b: Buffer, n: number): string[] {
  // Walk back from the final \n to the \n before the first line wanted (-1: from the beginning).
  let start = b.length - 1;
  for (let k = 0; k < n && start >= 0; k++) start = start === 0 ? -1 : b.lastIndexOf(10, start - 1);
  return b.toString('latin1', start + 1, b.length - 1).split('\n');
}

/**
 * Lines from a byte stream: each through `onLine` (decoded as UTF-8), or, with `onBulk`, runs of
 * plain lines in bulk (see the module comment). The order of lines is kept across both paths.
 */
export class ByteLines {
  private readonly decoder = new StringDecoder('utf8');
  private readonly split: LineSplitter;
  /** The decoder holds no partial character (the last byte it was given was ASCII). */
  private decoderEmpty = true;

  constructor(
    onLine: (line: string) => void,
    private readonly onBulk?: (b: Bulk) => void,
    /** How many of a bulk's last lines to pass as strings (at least 1). */
    private readonly tailLines = 1000,
  ) {
    this.split = new LineSplitter(onLine);
  }

  /** Takes a chunk; it is not kept (the caller may reuse its memory). */
  push(b: Buffer): void {
    if (!this.onBulk || b.length < BULK_MIN_BYTES || !this.decoderEmpty) return this.text(b);
    let i = 0;
    if (this.split.pending) {
      // The line begun in an earlier chunk ends through the per-line path.
      const nl = b.indexOf(10);
      if (nl < 0) return this.text(b);
      this.text(b.subarray(0, nl + 1));
      i = nl + 1;
    }
    const last = b.lastIndexOf(10);
    if (last + 1 - i >= BULK_MIN_BYTES) {
      const body = b.subarray(i, last + 1);
      const count = body.indexOf(MARKER) < 0 ? countPlainLines(body) : -1;
      if (count > 0) {
        // Copied: the caller reuses the chunk's memory, and the log writes these bytes later.
        const bytes = Buffer.from(body);
        this.onBulk({ bytes, count, tail: lastLines(bytes, Math.max(1, this.tailLines)) });
        i = last + 1;
      }
    }
    if (i < b.length) this.text(b.subarray(i));
  }

  /** The stream ended: any incomplete character and unterminated line go out. */
  end(): void {
    const rest = this.decoder.end();
    if (rest) this.split.push(rest);
    this.split.end();
  }

  private text(b: Buffer): void {
    if (b.length === 0) return;
    this.decoderEmpty = b[b.length - 1]! < 0x80;
    this.split.push(this.decoder.write(b));
  }
}
