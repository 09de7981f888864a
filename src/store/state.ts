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
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Low, type Adapter } from 'lowdb';
import { KindlerError } from '../core/errors.js';
import { errnoText, writeFileAtomic } from '../os/atomic.js';
import { LockLostError } from './lock.js';
import { dayOf, Journal, type Segment } from './journal.js';
import { isTerminal, ACTUAL_STATES, DESIRED_STATES, PROVIDERS, REGISTER_TARGETS, TASK_KINDS, TASK_STATES, type AuditEvent, type Cluster, type StoreHealth, type Task } from '../core/types.js';

export const SCHEMA_VERSION = 3;

export interface StateData {
  schemaVersion: number;
  nextTaskSeq: number;
  clusters: Cluster[];
  tasks: Task[];
  audit: AuditEvent[];
}

export const emptyState = (): StateData => ({ schemaVersion: SCHEMA_VERSION, nextTaskSeq: 1, clusters: [], tasks: [], audit: [] });

/**
 * What the version-3 file adds to StateData on disk (kept out of `data`): the next audit sequence number,
 * the lowest one still kept (older ones are pruned), and on each audit event its number `n`.
 */
export interface AuditSeqs {
  nextAuditSeq: number;
  auditFrom: number;
}

/** A state file that cannot be used; the message names the file and the problem. */
export class StateFileError extends Error {}

/**
 * Explicit migrations: MIGRATIONS[n] turns a version-n document into version n+1.
 * Version 0 is the pre-release layout: no schemaVersion, no audit list, no task counter.
 */
export const MIGRATIONS: Record<number, (d: Record<string, unknown>) => Record<string, unknown>> = {
  0: (d) => {
    const tasks = Array.isArray(d.tasks) ? (d.tasks as Task[]) : [];
    const maxSeq = tasks.reduce((m, t) => Math.max(m, Number(/^t-(\d+)$/.exec(String(t.id))?.[1] ?? 0)), 0);
    return {
      schemaVersion: 1,
      nextTaskSeq: maxSeq + 1,
      clusters: d.clusters ?? [],
      tasks: tasks.map((t) => ({ ...t, notes: t.notes ?? [], steps: t.steps ?? [], logLines: t.logLines ?? 0 })),
      audit: [],
    };
  },
  /**
   * 1 -> 2: per-cluster choices. Version 1 kept only what import-csv set, as options {route, registerPortainer};
   * version 2 has options {route, register: [...]} on every cluster (route defaults to true, register to none).
   */
  1: (d) => ({
    ...d,
    schemaVersion: 2,
    clusters: Array.isArray(d.clusters)
      ? (d.clusters as Record<string, unknown>[]).map((c) => {
        if (!c || typeof c !== 'object') return c;
        const old = (c.options && typeof c.options === 'object' ? c.options : {}) as { route?: unknown; registerPortainer?: unknown };
        return { ...c, options: { route: old.route !== false, register: old.registerPortainer === true ? ['portainer'] : [] } };
      })
      : d.clusters,
  }),
  /**
   * 2 -> 3: the journal. Version 3 keeps in state.json only what is live (clusters, queued and running
   * tasks, counters) plus records not yet moved to the append-only journals under journal/. Every audit
   * event becomes {n, e: event} with its sequence number n (1, 2, … in file order); the finished tasks and the numbered events
   * stay in the document and are moved to the journal by the first write after opening, which
   * `Store.open` does at once, after copying the version-2 file to state.json.v2.bak.
   */
  2: (d) => {
    const audit = Array.isArray(d.audit) ? (d.audit as Record<string, unknown>[]) : [];
    return {
      ...d,
      schemaVersion: 3,
      nextAuditSeq: audit.length + 1,
      auditFrom: 1,
      audit: audit.map((ev, i) => ({ n: i + 1, e: ev })),
    };
  },
};

/** Applies migrations up to the current version. Throws for a newer version. */
export function migrate(doc: Record<string, unknown>, file: string): StateData {
  const raw = doc.schemaVersion === undefined ? 0 : doc.schemaVersion;
  if (typeof raw !== 'number' || !Number.isInteger(raw) || raw < 0) throw new StateFileError(`state file ${file}: schemaVersion must be a whole number (got ${JSON.stringify(raw)})`);
  let v: number = raw;
  if (v > SCHEMA_VERSION) throw new StateFileError(`state file ${file}: schemaVersion ${v} is newer than this kindler understands (${SCHEMA_VERSION}); upgrade kindler`);
  let d = doc;
  while (v < SCHEMA_VERSION) {
    const step = MIGRATIONS[v];
    if (!step) throw new StateFileError(`state file ${file}: no migration from schemaVersion ${v}`);
    d = step(d);
    v = d.schemaVersion as number;
  }
  return d as unknown as StateData;
}

const isStr = (v: unknown) => typeof v === 'string';
/** Tasks in the order they were created (t-1, t-2, …). */
const byTaskSeq = (a: Task, b: Task) => {
  const x = Number(/^t-(\d+)$/.exec(a.id)?.[1] ?? NaN);
  const y = Number(/^t-(\d+)$/.exec(b.id)?.[1] ?? NaN);
  return Number.isNaN(x) || Number.isNaN(y) ? a.id.localeCompare(b.id) : x - y;
};
const isInt = (v: unknown) => Number.isInteger(v);

/** Validates a migrated document; returns the first problem as "path: rule", or null. */
export function stateProblem(d: StateData): string | null {
  if (!isInt(d.nextTaskSeq) || d.nextTaskSeq < 1) return 'nextTaskSeq: must be a whole number >= 1';
  for (const key of ['clusters', 'tasks', 'audit'] as const) if (!Array.isArray(d[key])) return `${key}: must be a list`;
  const names = new Set<string>();
  for (const [i, c] of d.clusters.entries()) {
    const at = `clusters[${i}]`;
    if (!c || typeof c !== 'object') return `${at}: must be an object`;
    if (!isStr(c.name) || !c.name) return `${at}.name: must be a non-empty string`;
    if (names.has(c.name)) return `${at}.name: "${c.name}" appears twice`;
    names.add(c.name);
    if (!PROVIDERS.includes(c.provider)) return `${at}.provider: must be one of ${PROVIDERS.join(', ')}`;
    if (!DESIRED_STATES.includes(c.desired)) return `${at}.desired: must be one of ${DESIRED_STATES.join(', ')}`;
    if (!ACTUAL_STATES.includes(c.actual)) return `${at}.actual: must be one of ${ACTUAL_STATES.join(', ')}`;
    for (const p of ['httpPort', 'httpsPort', 'apiPort', 'servers', 'agents'] as const) if (!isInt(c[p])) return `${at}.${p}: must be a whole number`;
    for (const s of ['owner', 'createdAt', 'kubeContext', 'kubeconfig'] as const) if (!isStr(c[s])) return `${at}.${s}: must be a string`;
    if (c.options !== undefined) {
      const o = c.options as Record<string, unknown>;
      if (!o || typeof o !== 'object' || Array.isArray(o)) return `${at}.options: must be an object`;
      if (o.route !== undefined && typeof o.route !== 'boolean') return `${at}.options.route: must be true or false`;
      if (o.register !== undefined && (!Array.isArray(o.register) || !o.register.every((r) => (REGISTER_TARGETS as readonly unknown[]).includes(r)) || new Set(o.register).size !== o.register.length)) {
        return `${at}.options.register: must be a list of distinct ${REGISTER_TARGETS.join(', ')}`;
      }
    }
  }
  const ids = new Set<string>();
  for (const [i, t] of d.tasks.entries()) {
    const at = `tasks[${i}]`;
    if (!t || typeof t !== 'object') return `${at}: must be an object`;
    if (!isStr(t.id) || !t.id) return `${at}.id: must be a non-empty string`;
    if (ids.has(t.id)) return `${at}.id: "${t.id}" appears twice`;
    ids.add(t.id);
    if (!TASK_KINDS.includes(t.kind)) return `${at}.kind: must be one of ${TASK_KINDS.join(', ')}`;
    if (!TASK_STATES.includes(t.state)) return `${at}.state: must be one of ${TASK_STATES.join(', ')}`;
    if (!isStr(t.cluster) || !isStr(t.user) || !isStr(t.createdAt)) return `${at}: cluster, user and createdAt must be strings`;
    if (typeof t.progress !== 'number' || t.progress < 0 || t.progress > 100) return `${at}.progress: must be 0-100`;
    if (!Array.isArray(t.steps) || !Array.isArray(t.notes)) return `${at}: steps and notes must be lists`;
  }
  return null;
}

/** lowdb adapter: validated read, atomic durable write. */
export class AtomicJsonFile implements Adapter<StateData> {
  /** The schemaVersion the file had when read (before migrations), or null for no file. */
  readVersion: number | null = null;
  constructor(readonly file: string) {}

  async read(): Promise<StateData | null> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (err.code === 'ENOENT') return null;
      throw new StateFileError(`state file ${this.file}: cannot be read (${err.code ?? err.message})`);
    }
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (e) {
      throw new StateFileError(`state file ${this.file}: is not valid JSON (${(e as Error).message}); it was left untouched`);
    }
    if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new StateFileError(`state file ${this.file}: must hold a JSON object; it was left untouched`);
    const raw = (doc as Record<string, unknown>).schemaVersion;
    this.readVersion = typeof raw === 'number' ? raw : 0;
    const data = migrate(doc as Record<string, unknown>, this.file);
    const problem = stateProblem(data);
    if (problem) throw new StateFileError(`state file ${this.file}: ${problem}; it was left untouched`);
    return data;
  }

  write(data: StateData | Record<string, unknown>): Promise<void> {
    // The document is serialized now, synchronously: later changes in memory go into the next write.
    return writeFileAtomic(this.file, Buffer.from(JSON.stringify(data)), 0o600);
  }
}

/**
 * A state write failed. `reason` says why in one line ("the state file could not be written (ENOSPC:
 * no space left on device)"); the message adds what became of the change it carried.
 */
export class StateWriteError extends KindlerError {
  constructor(readonly reason: string, readonly code: string | undefined, readonly lockLost: boolean) {
    super('failed', `${reason}; the change is kept in memory and saved once a write succeeds (kindler doctor shows the state of saving)`);
  }
}

export interface StoreOptions {
  /** Called before every write; throws (LockLostError) when this process may not write any more. */
  guard?: () => void;
  /** Backoff of the retries of a failed write: first delay and cap, in ms (250 and 5000 by default). */
  retryMs?: { first: number; max: number };
}

function writeError(e: unknown): StateWriteError {
  if (e instanceof StateWriteError) return e;
  if (e instanceof LockLostError) return new StateWriteError(`the state file was not written: ${e.message}`, 'ELOCKLOST', true);
  const code = (e as NodeJS.ErrnoException)?.code;
  return new StateWriteError(`the state file could not be written (${errnoText(e)})`, code, false);
}

/**
 * The single writer. Mutations go through `update`, which applies the change in memory at once and
 * resolves when a write containing it is on disk. Changes within one tick share one write.
 */
export class Store {
  readonly db: Low<StateData>;
  readonly file: string;
  private writing: Promise<void> | null = null;
  private pending: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private scheduled = false;
  /** Bumped for every change scheduled; `saved` is the last one known to be on disk. */
  private gen = 0;
  private saved = 0;
  private failure: { error: StateWriteError; since: string; count: number } | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private readonly guard: (() => void) | undefined;
  private readonly retryMs: { first: number; max: number };
  /** Told when saving stops, changes its reason, or resumes. */
  onHealth: ((h: StoreHealth, previous: StoreHealth) => void) | null = null;
  /** Durations of the last writes, in ms (for benchmarks and the doctor). */
  readonly writeTimes: number[] = [];
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
    this.retryMs = opts.retryMs ?? { first: 250, max: 5000 };
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

  /** Whether state is being saved, and if not, why and since when. */
  health(): StoreHealth {
    const f = this.failure;
    if (!f) return { saving: true };
    return { saving: false, problem: f.error.reason, since: f.since, failures: f.count, ...(f.error.lockLost ? { lockLost: true } : {}) };
  }

  /** True while some change in memory is not on disk yet. */
  get unsaved(): boolean {
    return this.gen > this.saved;
  }

  /**
   * Applies fn to the data now; the returned promise resolves once it is durable. When the write
   * fails it rejects with a StateWriteError; the change stays in memory (the caller may undo it,
   * synchronously in its rejection handler, before any retry runs) and the write is retried.
   */
  update<T>(fn: (d: StateData) => T): Promise<T> {
    const result = fn(this.db.data);
    return this.flushSoon().then(() => result);
  }

  /** Schedules a write of the current data (coalesced per tick). */
  flushSoon(): Promise<void> {
    this.gen++;
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => void this.drain());
  }

  private async drain(): Promise<void> {
    if (this.writing) await this.writing.catch(() => undefined);
    this.scheduled = false;
    const waiters = this.pending.splice(0);
    if (waiters.length === 0 && !this.unsaved) return;
    if (this.retryTimer) {
      clearTimeout(this.retryTimer);
      this.retryTimer = null;
    }
    const gen = this.gen;
    const t0 = performance.now();
    try {
      this.writing = this.persist();
      await this.writing;
      this.saved = Math.max(this.saved, gen);
      this.writeTimes.push(performance.now() - t0);
      if (this.writeTimes.length > 1000) this.writeTimes.splice(0, this.writeTimes.length - 1000);
      if (this.failure) {
        const before = this.health();
        this.failure = null;
        this.tell(before);
      }
      for (const w of waiters) w.resolve();
    } catch (e) {
      const err = writeError(e);
      const before = this.health();
      if (this.failure && this.failure.error.reason === err.reason) {
        this.failure.count++;
      } else {
        this.failure = { error: err, since: this.failure?.since ?? new Date().toISOString(), count: (this.failure?.count ?? 0) + 1 };
        this.tell(before);
      }
      for (const w of waiters) w.reject(err);
      this.retryLater();
    } finally {
      this.writing = null;
    }
  }

  /** Retries the write of what is still unsaved, with a growing delay (macrotask: undo handlers run first). */
  private retryLater(): void {
    // A lost lock does not come back: only a restart (which takes the lock again) resumes writing.
    if (this.retryTimer || !this.failure || this.failure.error.lockLost) return;
    const n = Math.min(this.failure.count, 16);
    const delay = Math.min(this.retryMs.max, this.retryMs.first * 2 ** (n - 1));
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (this.unsaved || this.failure) this.schedule();
    }, delay);
    this.retryTimer.unref();
  }

  private tell(before: StoreHealth): void {
    try {
      this.onHealth?.(this.health(), before);
    } catch { /* a broken listener must not break writing */ }
  }

  /** Waits until every scheduled change is on disk (rejects with the write's error when it fails). */
  async flush(): Promise<void> {
    await this.flushSoon();
  }

  /**
   * For shutdown: flushes, retrying failed writes until `ms` have passed. Rejects with the last
   * error if state could still not be saved (a lost lock is not retried).
   */
  async flushWithin(ms: number): Promise<void> {
    const end = Date.now() + ms;
    for (let delay = 100; ; delay = Math.min(delay * 2, 2000)) {
      try {
        await this.flush();
        return;
      } catch (e) {
        if ((e as StateWriteError).lockLost || Date.now() + delay > end) throw e;
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  /** Stops retrying (the process is going away). */
  close(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }
}
