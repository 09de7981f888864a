/**
 * Append-only journals under `<dataDir>/journal/`: finished tasks (`tasks-YYYYMMDD-N.jsonl`) and audit
 * events (`audit-YYYYMMDD-N.jsonl`), one JSON object a line. A segment is named by the UTC day of the
 * records it holds and rolls to N+1 past `SEGMENT_MAX_BYTES`, so retention drops whole files.
 *
 * Appends open the segment with O_APPEND | O_NOFOLLOW (a planted symlink is refused), write the batch
 * in one call and fsync before resolving. A failed append is cut back to the segment's known good size
 * (or, failing that, the next append starts a new segment), so a torn line is only ever the last one.
 * Reading ignores and reports a line that does not parse; it is never fatal.
 */
import { mkdirSync, readdirSync, readFileSync, unlinkSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { APPEND_NOFOLLOW } from '../os/atomic.js';

export type JournalKind = 'tasks' | 'audit';

/** Past this size a segment is closed and the next append for its day goes to N+1. */
export const SEGMENT_MAX_BYTES = 8 * 1024 * 1024;

const NAME = /^(tasks|audit)-(\d{8})-(\d+)\.jsonl$/;

export interface Segment {
  kind: JournalKind;
  day: string;
  n: number;
  file: string;
  size: number;
  /** A torn or damaged line was found in it (or an append to it failed): never appended to again. */
  sealed: boolean;
}

/** "20260103" for an ISO time (today's UTC day for anything unreadable). */
export function dayOf(iso: string | undefined): string {
  const ms = iso ? Date.parse(iso) : NaN;
  return new Date(Number.isNaN(ms) ? Date.now() : ms).toISOString().slice(0, 10).replace(/-/g, '');
}

export const segmentOrder = (a: Segment, b: Segment) => (a.day < b.day ? -1 : a.day > b.day ? 1 : a.n - b.n);

export class Journal {
  readonly dir: string;
  readonly segments: Segment[] = [];
  /** Lines that did not parse at open, one message each (for the daemon log and doctor). */
  readonly problems: string[] = [];

  constructor(dataDir: string) {
    this.dir = join(dataDir, 'journal');
  }

  /** Lists the segments (oldest first) and reads each one's records; bad lines are skipped and reported. */
  load(onRecord: (kind: JournalKind, rec: Record<string, unknown>, seg: Segment) => void): void {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
    for (const name of names) {
      const m = NAME.exec(name);
      if (!m) continue;
      this.segments.push({ kind: m[1] as JournalKind, day: m[2], n: Number(m[3]), file: join(this.dir, name), size: 0, sealed: false });
    }
    this.segments.sort(segmentOrder);
    for (const seg of this.segments) {
      const buf = readFileSync(seg.file);
      seg.size = buf.length;
      const text = buf.toString('utf8');
      // The common case parses in one call; a file with a bad line is read line by line.
      let recs: Record<string, unknown>[] | null = null;
      if (text.endsWith('\n') || text.length === 0) {
        try {
          // A newline inside a JSON text is always escaped: each raw one ends a line.
          recs = JSON.parse(`[${text.slice(0, -1).replaceAll('\n', ',')}]`) as Record<string, unknown>[];
          if (!recs.every((r) => r && typeof r === 'object' && !Array.isArray(r))) recs = null;
        } catch {
          recs = null;
        }
      }
      if (recs) {
        for (const r of recs) onRecord(seg.kind, r, seg);
        continue;
      }
      const lines = text.split('\n');
      const lastIndex = text.endsWith('\n') ? lines.length - 2 : lines.length - 1;
      for (let i = 0; i < lines.length; i++) {
        const line = lines[i];
        if (line === '' && i > lastIndex) continue;
        let rec: unknown;
        try {
          rec = JSON.parse(line);
        } catch {
          rec = undefined;
        }
        if (rec && typeof rec === 'object' && !Array.isArray(rec)) {
          onRecord(seg.kind, rec as Record<string, unknown>, seg);
          continue;
        }
        seg.sealed = true;
        const torn = i === lastIndex && !text.endsWith('\n');
        this.problems.push(`journal ${seg.file}: ${torn ? 'torn last line' : `damaged line ${i + 1}`} (${Buffer.byteLength(line)} bytes) ignored`);
      }
    }
  }

  /** The segment the next `kind` record of `day` goes to. */
  private target(kind: JournalKind, day: string, bytes: number): Segment {
    let last: Segment | undefined;
    for (const s of this.segments) if (s.kind === kind && s.day === day && (!last || s.n > last.n)) last = s;
    if (last && !last.sealed && (last.size === 0 || last.size + bytes <= SEGMENT_MAX_BYTES)) return last;
    const n = (last?.n ?? 0) + 1;
    const seg: Segment = { kind, day, n, file: join(this.dir, `${kind}-${day}-${n}.jsonl`), size: 0, sealed: false };
    this.segments.push(seg);
    this.segments.sort(segmentOrder);
    return seg;
  }

  /**
   * Appends records, each to the segment of its day, and fsyncs every segment written before resolving.
   * Calls `placed` for each record with the segment that holds it. `guard` runs before each file is opened.
   */
  async append(kind: JournalKind, recs: { day: string; rec: unknown; placed?: (seg: Segment) => void }[], guard?: () => void): Promise<void> {
    const byDay = new Map<string, typeof recs>();
    for (const r of recs) {
      const l = byDay.get(r.day);
      if (l) l.push(r);
      else byDay.set(r.day, [r]);
    }
    for (const [day, list] of [...byDay].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
      let text = '';
      for (const r of list) text += `${JSON.stringify(r.rec)}\n`;
      const buf = Buffer.from(text);
      const seg = this.target(kind, day, buf.length);
      guard?.();
      // Made at the first append: a data dir with nothing finished yet has no journal directory.
      mkdirSync(this.dir, { recursive: true, mode: 0o750 });
      await appendDurably(seg, buf);
      for (const r of list) r.placed?.(seg);
    }
  }

  /** Deletes a segment file and forgets it. */
  drop(seg: Segment): void {
    try {
      unlinkSync(seg.file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    const i = this.segments.indexOf(seg);
    if (i >= 0) this.segments.splice(i, 1);
  }
}

/** O_APPEND | O_NOFOLLOW, one write, fsync; on failure the segment is cut back (or sealed). */
async function appendDurably(seg: Segment, buf: Buffer): Promise<void> {
  const fh: FileHandle = await open(seg.file, APPEND_NOFOLLOW, 0o600);
  try {
    let off = 0;
    while (off < buf.length) off += (await fh.write(buf, off, buf.length - off)).bytesWritten;
    await fh.sync();
    seg.size += buf.length;
  } catch (e) {
    // Whatever part of the batch got in is cut off again, so the next append starts on a line boundary.
    try {
      await fh.truncate(seg.size);
      await fh.sync();
    } catch {
      seg.sealed = true;
    }
    throw e;
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/** Reads a journal directory's records synchronously (tests and tools). */
export function readJournal(dataDir: string): { tasks: Record<string, unknown>[]; audit: Record<string, unknown>[]; problems: string[]; segments: Segment[] } {
  const j = new Journal(dataDir);
  const tasks: Record<string, unknown>[] = [];
  const audit: Record<string, unknown>[] = [];
  j.load((kind, rec) => (kind === 'tasks' ? tasks : audit).push(rec));
  return { tasks, audit, problems: j.problems, segments: j.segments };
}
