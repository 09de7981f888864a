/**
 * The one state file, `<dataDir>/state.json`, through lowdb with an adapter that writes atomically
 * (a temp file with a random name created with O_EXCL, fsync, rename) and validates on read. Only the
 * process holding the lock writes it, and it checks that it still holds it before every write.
 *
 * Since schema 3 the file holds only what is live (clusters, queued and running tasks, counters) and the
 * records not yet moved: finished tasks and audit events go to append-only journals (see journal.ts).
 * A write first appends and fsyncs what may leave the file, then writes the file without it; a record
 * found in both at start (a crash between the two) is taken from the journal. In memory `data.tasks` and
 * `data.audit` still hold every task and event, so readers see no difference.
 *
 * A write that fails (a full disk, an immutable file, a lost lock) is an error of the operations whose
 * changes it carried; the changes stay in memory (unless their caller undoes them), the write is retried
 * with backoff, and `health()` says that state is not being saved until a write succeeds again.
 */
import { constants as fsc, copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Low } from 'lowdb';
import { dayOf, Journal, type Segment } from './journal.js';
import { isTerminal, type AuditEvent, type StoreHealth, type Task } from '../core/types.js';

import { byTaskSeq, emptyState, isInt, type AuditSeqs, type StateData } from './schema.js';
import { AtomicJsonFile } from './file.js';
import { StateWriteError, Writer, type StoreOptions } from './writer.js';

export { emptyState, migrate, MIGRATIONS, SCHEMA_VERSION, StateFileError, stateProblem, type AuditSeqs, type StateData } from './schema.js';
export { AtomicJsonFile } from './file.js';
export { StateWriteError, type StoreOptions } from './writer.js';

/**
 * The single writer. Mutations go through `update`, which applies the change in memory at once and
 * resolves when a write containing it is on disk. Changes within one tick share one write.
 */
export class Store {
  readonly db: Low<StateData>;
  readonly file: string;
  private readonly guard: (() => void) | undefined;
  /** Schedules, coalesces and retries the writes (writer.ts). */
  private readonly writer: Writer;
  /** The append-only journals of finished tasks and audit events. */
  readonly journal: Journal;
  /** Finished tasks whose latest copy is in the journal (so not in state.json), with the segment holding it. */
  private readonly taskSeg = new WeakMap<Task, Segment>();
  /** Journaled tasks changed since (re-appended by the next write). */
  private readonly changedTasks = new Set<Task>();
  /**
   * Finished tasks whose finished copy is durable in state.json (or the journal), with the generation it
   * was written at. Only these may move to the journal: a task that ends in a write goes to state.json
   * first, in the same atomic write as what its end did to its cluster (a delete's record removed, say),
   * and to the journal at a later write. Moving it at once would let a crash between the journal append
   * and the state write leave the task's end durable without its effect.
   */
  private readonly durableGen = new WeakMap<Task, number>();
  /** Bumped by taskChanged: a change after the durable copy must be written to state.json again first. */
  private readonly taskGen = new WeakMap<Task, number>();
  /**
   * Audit events by sequence number n. Events are only appended (and the oldest dropped), so the list is
   * always [in the journal: n <= journaledUpTo][in state.json: n <= persistedUpTo][only in memory].
   */
  private readonly auditSeq = new WeakMap<AuditEvent, number>();
  private journaledUpTo = 0;
  private persistedUpTo = 0;
  /** The highest n each audit segment holds. */
  private readonly segMaxN = new Map<Segment, number>();
  private seqs: AuditSeqs = { nextAuditSeq: 1, auditFrom: 1 };

  private constructor(db: Low<StateData>, file: string, opts: StoreOptions, journal: Journal) {
    this.db = db;
    this.file = file;
    this.journal = journal;
    this.guard = opts.guard;
    this.writer = new Writer(() => this.persist(), opts.retryMs ?? { first: 250, max: 5000 });
  }

  /**
   * Opens (and validates) the state file in dataDir (a missing file starts empty) and reads the journals
   * into memory: `data.tasks` and `data.audit` hold every task and event, as before the journal.
   *
   * A task in both the journal and state.json (a crash between moving it and rewriting the state file)
   * is taken from the journal; one whose journal line is torn is still in state.json and is taken from
   * there. Audit events are matched by their number the same way. A version-2 file is copied to
   * state.json.v2.bak (once) and its finished tasks and audit events are moved to the journal at once.
   */
  static async open(dataDir: string, opts: StoreOptions = {}): Promise<Store> {
    mkdirSync(dataDir, { recursive: true, mode: 0o750 });
    const file = join(dataDir, 'state.json');
    const adapter = new AtomicJsonFile(file);
    const db = new Low<StateData>(adapter, emptyState());
    await db.read();
    const from = adapter.readVersion;
    if (from !== null && from < 3) {
      // No journal exists before version 3: anything there is what a migration that crashed wrote.
      rmSync(join(dataDir, 'journal'), { recursive: true, force: true });
      try {
        copyFileSync(file, `${file}.v${from}.bak`, fsc.COPYFILE_EXCL);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
    }
    const store = new Store(db, file, opts, new Journal(dataDir));
    store.load();
    if (from !== null && from < 3) {
      try {
        await store.flush();
      } catch (e) {
        // Not fatal: the store retries, health says so, and a restart before it succeeds migrates again.
        if (!(e instanceof StateWriteError) || e.lockLost) throw e;
      }
    }
    return store;
  }

  /** Merges the journals into the data read from state.json (see `open`). */
  private load(): void {
    const d = this.db.data as StateData & Partial<AuditSeqs>;
    const seqs: AuditSeqs = { nextAuditSeq: isInt(d.nextAuditSeq) ? d.nextAuditSeq! : 1, auditFrom: isInt(d.auditFrom) ? d.auditFrom! : 1 };
    delete d.nextAuditSeq;
    delete d.auditFrom;
    const jTasks = new Map<string, { t: Task; seg: Segment }>();
    // Journal events come in n order (segments by day, lines by time); sorted below if a clock said otherwise.
    const jEvents: AuditEvent[] = [];
    const jN: number[] = [];
    this.journal.load((kind, rec, seg) => {
      if (kind === 'tasks') {
        if (typeof rec.pruned === 'string') jTasks.delete(rec.pruned);
        else if (typeof rec.id === 'string' && rec.id) jTasks.set(rec.id, { t: rec as unknown as Task, seg });
        return;
      }
      const n = rec.n;
      if (!isInt(n) || !rec.e || typeof rec.e !== 'object') return;
      jEvents.push(rec.e as AuditEvent);
      jN.push(n as number);
      if ((n as number) > (this.segMaxN.get(seg) ?? 0)) this.segMaxN.set(seg, n as number);
    });
    const tasks: Task[] = [];
    for (const t of d.tasks) {
      if (jTasks.has(t.id)) continue;
      tasks.push(t);
      if (isTerminal(t.state)) this.durableGen.set(t, 0); // read from a durable file
    }
    for (const { t, seg } of jTasks.values()) {
      this.taskSeg.set(t, seg);
      this.durableGen.set(t, 0);
      tasks.push(t);
    }
    // Creation order (t-1, t-2, …), as the list was before the journal; the sort keys are computed once.
    const keyed = tasks.map((t) => ({ t, k: Number(/^t-(\d+)$/.exec(t.id)?.[1] ?? NaN) }));
    keyed.sort((a, b) => (Number.isNaN(a.k) || Number.isNaN(b.k) ? byTaskSeq(a.t, b.t) : a.k - b.k));
    tasks.length = 0;
    for (const x of keyed) tasks.push(x.t);
    d.tasks = tasks;
    let order = jEvents.map((_, k) => k);
    if (jN.some((n, k) => k > 0 && n < jN[k - 1]!)) order = order.sort((x, y) => jN[x]! - jN[y]!);
    const all: AuditEvent[] = [];
    const allN: number[] = [];
    for (const k of order) {
      const n = jN[k]!;
      // The same n twice: a batch appended again (a migration done over) — one copy.
      if (allN.length && allN[allN.length - 1] === n) continue;
      all.push(jEvents[k]!);
      allN.push(n);
    }
    this.journaledUpTo = allN.length ? allN[allN.length - 1]! : 0;
    // state.json's events not yet moved; one already in the journal (a crash between the two steps) is skipped.
    for (const rec of d.audit as unknown as { n: unknown; e: AuditEvent }[]) {
      const n = rec?.n;
      if (!isInt(n) || (n as number) <= this.journaledUpTo || !rec.e || typeof rec.e !== 'object') continue;
      all.push(rec.e);
      allN.push(n as number);
    }
    this.persistedUpTo = Math.max(this.journaledUpTo, allN.length ? allN[allN.length - 1]! : 0);
    d.audit = [];
    for (let k = 0; k < all.length; k++) {
      const n = allN[k]!;
      if (n < seqs.auditFrom) continue;
      this.auditSeq.set(all[k]!, n);
      d.audit.push(all[k]!);
      if (n >= seqs.nextAuditSeq) seqs.nextAuditSeq = n + 1;
    }
    const maxTask = tasks.reduce((m, t) => Math.max(m, Number(/^t-(\d+)$/.exec(t.id)?.[1] ?? 0)), 0);
    if (d.nextTaskSeq <= maxTask) d.nextTaskSeq = maxTask + 1;
    this.seqs = seqs;
  }

  /** Problems found reading the journal (torn or damaged lines, ignored). */
  get journalProblems(): readonly string[] {
    return this.journal.problems;
  }

  /** A finished task already moved to the journal was changed (its cleanup, say): the next write appends it again. */
  taskChanged(t: Task): void {
    this.taskGen.set(t, (this.taskGen.get(t) ?? 0) + 1);
    if (this.taskSeg.has(t)) this.changedTasks.add(t);
  }

  /**
   * Moves to the journal what may leave state.json: finished tasks (not yet journaled, or changed since)
   * and audit events that a successful write already put in state.json (an event only in memory may
   * still be undone by its operation). Each record is appended and fsynced before the state file that
   * no longer holds it is written.
   */
  private async moveToJournal(): Promise<void> {
    const d = this.db.data;
    const tasks: { day: string; rec: unknown; placed: (seg: Segment) => void }[] = [];
    for (const t of d.tasks) {
      if (!isTerminal(t.state)) continue;
      // Not yet durable as finished (it ended in this write, or changed since): state.json first.
      if (this.durableGen.get(t) !== (this.taskGen.get(t) ?? 0)) continue;
      const moved = this.taskSeg.has(t);
      if (moved && !this.changedTasks.has(t)) continue;
      // A first move files the task under the day it finished; a re-append goes to today's segment, after its older copy.
      tasks.push({ day: moved ? dayOf(undefined) : dayOf(t.finishedAt ?? t.createdAt), rec: t, placed: (seg) => {
        this.taskSeg.set(t, seg);
        this.changedTasks.delete(t);
      } });
    }
    if (tasks.length) await this.journal.append('tasks', tasks, this.guard);
    const events: { day: string; rec: unknown; placed: (seg: Segment) => void }[] = [];
    for (let i = d.audit.length - 1; i >= 0; i--) {
      const ev = d.audit[i]!;
      const n = this.auditSeq.get(ev);
      if (n === undefined || n > this.persistedUpTo) continue;
      if (n <= this.journaledUpTo) break;
      events.push({ day: dayOf(ev.at), rec: { n, e: ev }, placed: (seg) => {
        if (n > (this.segMaxN.get(seg) ?? 0)) this.segMaxN.set(seg, n);
      } });
    }
    events.reverse();
    if (events.length) {
      await this.journal.append('audit', events, this.guard);
      this.journaledUpTo = (events[events.length - 1]!.rec as { n: number }).n;
    }
  }

  /** The version-3 document for state.json: what is live, plus what was not moved yet. Sets `inState`. */
  private project(inState: number[], written: [Task, number][] = []): Record<string, unknown> {
    const d = this.db.data;
    const tasks: Task[] = [];
    for (const t of d.tasks) {
      if (this.taskSeg.has(t) && !this.changedTasks.has(t)) continue;
      tasks.push(t);
      if (isTerminal(t.state)) written.push([t, this.taskGen.get(t) ?? 0]);
    }
    const audit: Record<string, unknown>[] = [];
    let start = d.audit.length;
    while (start > 0 && (this.auditSeq.get(d.audit[start - 1]!) ?? Infinity) > this.journaledUpTo) start--;
    for (let i = start; i < d.audit.length; i++) {
      const ev = d.audit[i]!;
      let n = this.auditSeq.get(ev);
      if (n === undefined) {
        n = this.seqs.nextAuditSeq++;
        this.auditSeq.set(ev, n);
      }
      inState.push(n);
      audit.push({ n, e: ev });
    }
    const first = d.audit[0];
    const auditFrom = first ? this.auditSeq.get(first)! : this.seqs.nextAuditSeq;
    this.seqs.auditFrom = auditFrom;
    return { schemaVersion: d.schemaVersion, nextTaskSeq: d.nextTaskSeq, nextAuditSeq: this.seqs.nextAuditSeq, auditFrom, clusters: d.clusters, tasks, audit };
  }

  /** One durable write: the journal appends, then state.json. */
  private async persist(): Promise<void> {
    this.guard?.();
    await this.moveToJournal();
    this.guard?.();
    const inState: number[] = [];
    const written: [Task, number][] = [];
    // Serialized now, synchronously: later changes in memory go into the next write.
    await this.db.adapter.write(this.project(inState, written) as unknown as StateData);
    for (const n of inState) if (n > this.persistedUpTo) this.persistedUpTo = n;
    // Finished as written: these may move to the journal from the next write on.
    for (const [t, gen] of written) if (isTerminal(t.state)) this.durableGen.set(t, gen);
  }

  /** Drops the audit segments holding no event still kept (all below the oldest one in memory). Returns how many. */
  dropAuditSegments(): number {
    const first = this.db.data.audit[0];
    const firstKept = first ? this.auditSeq.get(first) ?? 0 : Infinity;
    let dropped = 0;
    for (const seg of [...this.journal.segments]) {
      if (seg.kind !== 'audit' || (this.segMaxN.get(seg) ?? 0) >= firstKept) continue;
      this.guard?.();
      this.journal.drop(seg);
      this.segMaxN.delete(seg);
      dropped++;
    }
    return dropped;
  }

  /**
   * Removes finished tasks for good, by whole segments: the tasks leave memory (a write), then every
   * segment that held one of them is closed, the tasks it holds that are still wanted are appended
   * again to a new segment (fsynced) and the old segment is deleted. A crash before the deletion only
   * leaves the removed tasks to be pruned again by the next run; one after it, the copies are in place.
   * Returns the segments dropped.
   */
  async removeTasks(ids: Set<string>): Promise<number> {
    const affected = new Set<Segment>();
    for (const t of this.db.data.tasks) {
      const seg = ids.has(t.id) ? this.taskSeg.get(t) : undefined;
      if (seg) affected.add(seg);
    }
    await this.update((d) => {
      d.tasks = d.tasks.filter((t) => !ids.has(t.id));
    });
    if (affected.size === 0) return 0;
    for (const seg of affected) seg.sealed = true;
    for (const t of this.db.data.tasks) {
      const seg = this.taskSeg.get(t);
      if (seg && affected.has(seg)) this.changedTasks.add(t);
    }
    await this.flush();
    let dropped = 0;
    const still = new Set<Segment>();
    for (const t of this.db.data.tasks) {
      const seg = this.taskSeg.get(t);
      if (seg) still.add(seg);
    }
    for (const seg of affected) {
      if (still.has(seg)) continue;
      this.guard?.();
      this.journal.drop(seg);
      dropped++;
    }
    return dropped;
  }

  get data(): StateData {
    return this.db.data;
  }

  /** Told when saving stops, changes its reason, or resumes. */
  get onHealth(): ((h: StoreHealth, previous: StoreHealth) => void) | null {
    return this.writer.onHealth;
  }
  set onHealth(f: ((h: StoreHealth, previous: StoreHealth) => void) | null) {
    this.writer.onHealth = f;
  }

  /** Durations of the last writes, in ms (for benchmarks and the doctor). */
  get writeTimes(): number[] {
    return this.writer.writeTimes;
  }

  /** Whether state is being saved, and if not, why and since when. */
  health(): StoreHealth {
    return this.writer.health();
  }

  /** True while some change in memory is not on disk yet. */
  get unsaved(): boolean {
    return this.writer.unsaved;
  }

  /**
   * Applies fn to the data now; the returned promise resolves once it is durable. When the write
   * fails it rejects with a StateWriteError; the change stays in memory (the caller may undo it,
   * synchronously in its rejection handler, before any retry runs) and the write is retried.
   */
  update<T>(fn: (d: StateData) => T): Promise<T> {
    const result = fn(this.db.data);
    return this.writer.flushSoon().then(() => result);
  }

  /** Schedules a write of the current data (coalesced per tick). */
  flushSoon(): Promise<void> {
    return this.writer.flushSoon();
  }

  /** Waits until every scheduled change is on disk (rejects with the write's error when it fails). */
  flush(): Promise<void> {
    return this.writer.flush();
  }

  /** For shutdown: flushes, retrying failed writes until `ms` have passed (see Writer.flushWithin). */
  flushWithin(ms: number): Promise<void> {
    return this.writer.flushWithin(ms);
  }

  /** Stops retrying (the process is going away). */
  close(): void {
    this.writer.close();
  }
}
