/**
 * The state file's schema: its version, its shape, the migrations from older versions, and the check
 * a file must pass to be used. Pure: no I/O.
 */
import { ACTUAL_STATES, DESIRED_STATES, PROVIDERS, REGISTER_TARGETS, TASK_KINDS, TASK_STATES, type AuditEvent, type Cluster, type Task } from '../core/types.js';

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
export const byTaskSeq = (a: Task, b: Task) => {
  const x = Number(/^t-(\d+)$/.exec(a.id)?.[1] ?? NaN);
  const y = Number(/^t-(\d+)$/.exec(b.id)?.[1] ?? NaN);
  return Number.isNaN(x) || Number.isNaN(y) ? a.id.localeCompare(b.id) : x - y;
};
export const isInt = (v: unknown) => Number.isInteger(v);

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

