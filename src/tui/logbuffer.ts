/**
 * One task's log as the TUI holds it: the end of its history fetched once (`logs ID --tail CAP
 * --json`), then live `log` events joined by their `from` index so no line is doubled or skipped,
 * bounded to `cap` lines (plus at most 10% slack, trimmed in chunks). In a flood the feed itself
 * skips lines (an event's `skipped`): the window then starts over at the event's lines.
 *
 * Lines are kept as they arrive and sanitized when read (`line(i)`): a log flood brings thousands
 * of lines per frame to every session, and only the ~30 drawn ones need the work.
 */
import { MAX_TEXT, plain } from './text.js';

/** Any character `plain` might remove or change: anything but printable ASCII (controls, escapes, wide or combining characters). */
const UNSAFE = /[^\x20-\x7e]/;

/** `plain(s)`, without the work when `s` is already safe to draw. */
export function safeLine(s: string): string {
  return typeof s === 'string' && s.length <= MAX_TEXT && !UNSAFE.test(s) ? s : plain(s);
}

/** Default number of log lines kept in memory per shown task. */
export const LOG_CAP = 5000;

/** What appending a live batch did. */
export type AppendResult = { ok: true; trimmed: number } | { ok: false; gap: number };

/** A bounded, gap-free window onto the end of a task's log. */
export class LogBuffer {
  private buf: string[] = [];
  /** Absolute index (in the task's whole log) of the first line held. */
  private first = 0;
  private pending: { from: number; lines: string[]; skipped: number }[] = [];
  /** Whether the history has arrived (live lines are held back until then). */
  loaded = false;
  /** Why the history could not be loaded, if it could not. */
  error: string | undefined;

  private readonly slack: number;
  private held = 0;
  private heldTrimmed = false;

  constructor(
    readonly taskId: string,
    readonly cap = LOG_CAP,
  ) {
    this.slack = Math.min(500, Math.ceil(cap / 10));
  }

  /** All lines held in memory, sanitized (a copy: O(n); the pane uses `size` and `line`). */
  get lines(): readonly string[] {
    return this.buf.map(safeLine);
  }

  /** While the history loads: the newest `n` live lines held so far (sanitized, oldest first). */
  heldTail(n: number): string[] {
    const out: string[] = [];
    for (let i = this.pending.length - 1; i >= 0 && out.length < n; i--) {
      const l = this.pending[i]!.lines;
      for (let j = l.length - 1; j >= 0 && out.length < n; j--) out.push(safeLine(l[j]!));
    }
    return out.reverse();
  }

  /** Number of lines held in memory. */
  get size(): number {
    return this.buf.length;
  }

  /** The i-th line held (0 = the oldest in memory), sanitized; '' outside the range. */
  line(i: number): string {
    const l = this.buf[i];
    return l === undefined ? '' : safeLine(l);
  }

  /** How many earlier lines of this task's log are not in memory. */
  get dropped(): number {
    return this.first;
  }

  /** Absolute index of the next line expected from the live feed. */
  get end(): number {
    return this.first + this.buf.length;
  }

  /**
   * Live lines (a `log` event). Held until the history arrives; a gap means the caller must refetch,
   * unless the event says it skipped those lines (`skipped`: the middle of a flood): then the window
   * starts over at `from`.
   */
  live(from: number, lines: readonly string[], skipped = 0): AppendResult {
    if (!this.loaded) {
      this.hold(from, lines, skipped);
      return { ok: true, trimmed: 0 };
    }
    return this.append(from, lines, skipped);
  }

  /** Held live lines are bounded too: only the newest `cap` are kept (older ones would be trimmed anyway). */
  private hold(from: number, lines: readonly string[], skipped: number): void {
    const keep = lines.length > this.cap ? lines.slice(-this.cap) : lines;
    if (skipped > 0 && this.pending.length) {
      // Lines held before a skip cannot be joined to these: they go, as if trimmed.
      this.pending = [];
      this.held = 0;
      this.heldTrimmed = true;
    }
    this.pending.push({ from: from + lines.length - keep.length, lines: [...keep], skipped: skipped > 0 ? skipped + lines.length - keep.length : 0 });
    this.held += keep.length;
    if (keep.length < lines.length) this.heldTrimmed = true;
    while (this.pending.length > 1 && this.held - this.pending[0]!.lines.length >= this.cap) {
      this.held -= this.pending.shift()!.lines.length;
      this.heldTrimmed = true;
    }
  }

  /**
   * The history (or its failure): the log's lines from index `from` to its end, usually the last
   * `cap` of them (`logs ID --tail CAP --json`); then the held live lines are joined on. Returns
   * lines trimmed.
   */
  history(all: readonly string[] | null, error?: string, from = 0): AppendResult {
    const keep = all ? all.slice(-this.cap) : [];
    this.buf = keep.map(String);
    this.first = all ? from + all.length - keep.length : 0;
    this.loaded = true;
    this.error = all ? undefined : (error ?? 'log unavailable');
    let trimmed = 0;
    const pending = this.pending.splice(0);
    if (this.heldTrimmed && pending.length && pending[0]!.from > this.end) {
      // The held lines alone fill the buffer: everything before them counts as not in memory.
      this.buf = [];
      this.first = pending[0]!.from;
    }
    this.held = 0;
    this.heldTrimmed = false;
    for (const p of pending) {
      const r = this.append(p.from, p.lines, p.skipped);
      if (!r.ok) return r;
      trimmed += r.trimmed;
    }
    return { ok: true, trimmed };
  }

  private append(from: number, lines: readonly string[], skipped = 0): AppendResult {
    let restarted = 0;
    if (from > this.end) {
      // Lines the feed skipped on purpose are not fetched either: start over at `from`.
      const explained = skipped > 0 && from - skipped <= this.end;
      // A small gap: the caller refetches the history to fill it. A gap wider than the buffer (a
      // client that fell behind a flood) would be mostly trimmed after a refetch anyway: start over
      // here instead, the lines before counting as not in memory. With nothing held yet there is
      // nothing to join either.
      if (!explained && this.buf.length > 0 && from - this.end <= this.cap) return { ok: false, gap: from - this.end };
      restarted = this.buf.length;
      this.buf = [];
      this.first = from;
    }
    let skip = this.end - from;
    if (skip >= lines.length) return { ok: true, trimmed: 0 };
    const fresh = lines.length - skip;
    if (fresh >= this.cap) {
      // This batch alone fills the buffer: keep only its newest `cap` lines.
      const trimmed = restarted + this.buf.length + fresh - this.cap;
      skip = lines.length - this.cap;
      this.buf = lines.slice(skip).map(String);
      this.first = from + skip;
      return { ok: true, trimmed };
    }
    for (let i = skip; i < lines.length; i++) this.buf.push(String(lines[i]));
    // Trim in chunks (not per batch) so a chatty task does not shift 5000 lines on every event.
    const excess = this.buf.length > this.cap + this.slack ? this.buf.length - this.cap : 0;
    if (excess > 0) {
      this.buf.splice(0, excess);
      this.first += excess;
    }
    return { ok: true, trimmed: restarted + excess };
  }

  /** Indexes (into `lines`) of lines containing `query`, case-insensitive. */
  search(query: string): number[] {
    const q = query.toLowerCase();
    if (!q) return [];
    const out: number[] = [];
    this.buf.forEach((l, i) => {
      if (safeLine(l).toLowerCase().includes(q)) out.push(i);
    });
    return out;
  }
}
