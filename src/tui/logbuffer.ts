/**
 * One task's log as the TUI holds it: the history fetched once (`logs ID --json`), then live `log`
 * events joined by their `from` index so no line is doubled or skipped, bounded to `cap` lines
 * (plus at most 10% slack, trimmed in chunks).
 */
import { plain } from './text.js';

/** Default number of log lines kept in memory per shown task. */
export const LOG_CAP = 5000;

/** What appending a live batch did. */
export type AppendResult = { ok: true; trimmed: number } | { ok: false; gap: number };

/** A bounded, gap-free window onto the end of a task's log. */
export class LogBuffer {
  private buf: string[] = [];
  /** Absolute index (in the task's whole log) of the first line held. */
  private first = 0;
  private pending: { from: number; lines: string[] }[] = [];
  /** Whether the history has arrived (live lines are held back until then). */
  loaded = false;
  /** Why the history could not be loaded, if it could not. */
  error: string | undefined;

  private readonly slack: number;
  private held = 0;
  private heldTrimmed = false;

  constructor(readonly taskId: string, readonly cap = LOG_CAP) {
    this.slack = Math.min(500, Math.ceil(cap / 10));
  }

  /** Lines held in memory (sanitized). */
  get lines(): readonly string[] {
    return this.buf;
  }

  /** How many earlier lines of this task's log are not in memory. */
  get dropped(): number {
    return this.first;
  }

  /** Absolute index of the next line expected from the live feed. */
  get end(): number {
    return this.first + this.buf.length;
  }

  /** Live lines (a `log` event). Held until the history arrives; a gap means the caller must refetch. */
  live(from: number, lines: readonly string[]): AppendResult {
    if (!this.loaded) {
      this.hold(from, lines);
      return { ok: true, trimmed: 0 };
    }
    return this.append(from, lines);
  }

  /** Held live lines are bounded too: only the newest `cap` are kept (older ones would be trimmed anyway). */
  private hold(from: number, lines: readonly string[]): void {
    const keep = lines.length > this.cap ? lines.slice(-this.cap) : lines;
    this.pending.push({ from: from + lines.length - keep.length, lines: [...keep] });
    this.held += keep.length;
    if (keep.length < lines.length) this.heldTrimmed = true;
    while (this.pending.length > 1 && this.held - this.pending[0]!.lines.length >= this.cap) {
      this.held -= this.pending.shift()!.lines.length;
      this.heldTrimmed = true;
    }
  }

  /** The complete history (or its failure); then the held live lines are joined on. Returns lines trimmed. */
  history(all: readonly string[] | null, error?: string): AppendResult {
    const keep = all ? all.slice(-this.cap) : [];
    this.buf = keep.map((l) => plain(l));
    this.first = all ? all.length - keep.length : 0;
    this.loaded = true;
    this.error = all ? undefined : error ?? 'log unavailable';
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
      const r = this.append(p.from, p.lines);
      if (!r.ok) return r;
      trimmed += r.trimmed;
    }
    return { ok: true, trimmed };
  }

  private append(from: number, lines: readonly string[]): AppendResult {
    if (from > this.end) {
      // Nothing held yet: there is nothing to join, so start here (earlier lines count as not in memory).
      if (this.buf.length > 0) return { ok: false, gap: from - this.end };
      this.first = from;
    }
    const skip = this.end - from;
    if (skip >= lines.length) return { ok: true, trimmed: 0 };
    for (let i = skip; i < lines.length; i++) this.buf.push(plain(lines[i]));
    // Trim in chunks (not per batch) so a chatty task does not shift 5000 lines on every event.
    const excess = this.buf.length > this.cap + this.slack ? this.buf.length - this.cap : 0;
    if (excess > 0) {
      this.buf.splice(0, excess);
      this.first += excess;
      return { ok: true, trimmed: excess };
    }
    return { ok: true, trimmed: 0 };
  }

  /** Indexes (into `lines`) of lines containing `query`, case-insensitive. */
  search(query: string): number[] {
    const q = query.toLowerCase();
    if (!q) return [];
    const out: number[] = [];
    this.buf.forEach((l, i) => {
      if (l.toLowerCase().includes(q)) out.push(i);
    });
    return out;
  }
}
