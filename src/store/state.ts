/**
 * The one state file, `<dataDir>/state.json`, through lowdb with an adapter that writes atomically
 * (temp file, fsync, rename) and validates on read. Only the process holding the lock writes it.
 */
import { mkdirSync } from 'node:fs';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Low, type Adapter } from 'lowdb';
import { ACTUAL_STATES, DESIRED_STATES, PROVIDERS, REGISTER_TARGETS, TASK_KINDS, TASK_STATES, type AuditEvent, type Cluster, type Task } from '../core/types.js';

export const SCHEMA_VERSION = 2;

export interface StateData {
  schemaVersion: number;
  nextTaskSeq: number;
  clusters: Cluster[];
  tasks: Task[];
  audit: AuditEvent[];
}

export const emptyState = (): StateData => ({ schemaVersion: SCHEMA_VERSION, nextTaskSeq: 1, clusters: [], tasks: [], audit: [] });

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
  private readonly tmp: string;
  constructor(readonly file: string) {
    this.tmp = `${file}.${process.pid}.tmp`;
  }

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
    const data = migrate(doc as Record<string, unknown>, this.file);
    const problem = stateProblem(data);
    if (problem) throw new StateFileError(`state file ${this.file}: ${problem}; it was left untouched`);
    return data;
  }

  async write(data: StateData): Promise<void> {
    // One buffer, one write call (writeFile would split it into 512 KiB round trips), then fsync.
    const buf = Buffer.from(JSON.stringify(data));
    const fh = await open(this.tmp, 'w', 0o600);
    try {
      let off = 0;
      while (off < buf.length) off += (await fh.write(buf, off, buf.length - off, off)).bytesWritten;
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await rename(this.tmp, this.file);
    } catch (e) {
      await unlink(this.tmp).catch(() => undefined);
      throw e;
    }
  }
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
  /** Durations of the last writes, in ms (for benchmarks and the doctor). */
  readonly writeTimes: number[] = [];

  private constructor(db: Low<StateData>, file: string) {
    this.db = db;
    this.file = file;
  }

  /** Opens (and validates) the state file in dataDir; a missing file starts empty. */
  static async open(dataDir: string): Promise<Store> {
    mkdirSync(dataDir, { recursive: true, mode: 0o750 });
    const file = join(dataDir, 'state.json');
    const db = new Low<StateData>(new AtomicJsonFile(file), emptyState());
    await db.read();
    const store = new Store(db, file);
    return store;
  }

  get data(): StateData {
    return this.db.data;
  }

  /** Applies fn to the data now; the returned promise resolves once it is durable. */
  update<T>(fn: (d: StateData) => T): Promise<T> {
    const result = fn(this.db.data);
    return this.flushSoon().then(() => result);
  }

  /** Schedules a write of the current data (coalesced per tick). */
  flushSoon(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => void this.drain());
      }
    });
  }

  private async drain(): Promise<void> {
    if (this.writing) await this.writing.catch(() => undefined);
    this.scheduled = false;
    const waiters = this.pending.splice(0);
    if (waiters.length === 0) return;
    const t0 = performance.now();
    this.writing = this.db.write();
    try {
      await this.writing;
      this.writeTimes.push(performance.now() - t0);
      if (this.writeTimes.length > 1000) this.writeTimes.splice(0, this.writeTimes.length - 1000);
      for (const w of waiters) w.resolve();
    } catch (e) {
      for (const w of waiters) w.reject(e as Error);
    } finally {
      this.writing = null;
    }
  }

  /** Waits until every scheduled change is on disk. */
  async flush(): Promise<void> {
    await this.flushSoon();
  }
}
