/**
 * Cluster lifecycle rules run by the scheduler: time-to-live, task retention, and the per-user quota.
 * The rules are pure; `ttlPass` is the only part that acts, and only through ordinary engine tasks.
 */
import { expiryOf } from '../core/expiry.js';
import { cleanLine } from '../core/text.js';
import { isTerminal, type Cluster, type Task } from '../core/types.js';

/**
 * Clusters past their expiry that the TTL job may delete: desired not `absent`, no active task (`active`
 * holds the names of clusters with a queued or running task), not mid-create or mid-delete. An expiry that
 * does not parse never expires anything.
 */
export function expired(clusters: readonly Cluster[], nowMs: number, active: ReadonlySet<string> = new Set()): Cluster[] {
  return clusters
    .filter((c) => {
      const at = expiryOf(c);
      return at !== null && at <= nowMs && c.desired !== 'absent' && !active.has(c.name) && c.actual !== 'creating' && c.actual !== 'deleting';
    })
    .sort((a, b) => expiryOf(a)! - expiryOf(b)! || a.name.localeCompare(b.name));
}

export const TTL_ACTOR = { user: 'kindler-ttl', source: 'scheduler', role: 'admin' } as const;

export interface TtlEngine {
  listClusters(): Cluster[];
  getCluster(name: string): Cluster | undefined;
  listTasks(f?: { active?: boolean }): Task[];
  delete(name: string, actor: typeof TTL_ACTOR): Promise<Task>;
}

export interface TtlDeps {
  engine: TtlEngine;
  now?: () => number;
  log?: (level: 'info' | 'warn' | 'error', msg: string) => void;
}

export interface TtlResult {
  deleted: { cluster: string; taskId: string; expiresAt: string }[];
  errors: { cluster: string; error: string }[];
}

/** Queues a delete (as `kindler-ttl`) for every expired cluster, each on its own: one failure never stops the rest. */
export async function ttlPass(deps: TtlDeps): Promise<TtlResult> {
  const nowMs = deps.now?.() ?? Date.now();
  const active = new Set(
    deps.engine
      .listTasks({ active: true })
      .filter((t) => !isTerminal(t.state))
      .map((t) => t.cluster),
  );
  const out: TtlResult = { deleted: [], errors: [] };
  for (const c of expired(deps.engine.listClusters(), nowMs, active)) {
    try {
      // Re-read: the expiry may have been extended, or the cluster deleted, since the list was taken.
      const fresh = deps.engine.getCluster(c.name);
      if (!fresh || expired([fresh], nowMs, active).length === 0) continue;
      const task = await deps.engine.delete(c.name, TTL_ACTOR);
      out.deleted.push({ cluster: c.name, taskId: task.id, expiresAt: fresh.expiresAt! });
      deps.log?.('info', `ttl: cluster ${c.name} expired at ${fresh.expiresAt}; queued delete task ${task.id}`);
    } catch (e) {
      const error = cleanLine(e instanceof Error ? e.message : String(e), 600);
      out.errors.push({ cluster: c.name, error });
      deps.log?.('warn', `ttl: cluster ${c.name}: delete refused: ${error}`);
    }
  }
  return out;
}

// ---- retention -----------------------------------------------------------------------------------

const seqOf = (id: string) => {
  const m = /^t-(\d+)$/.exec(id);
  return m ? Number(m[1]) : -1;
};

/**
 * Task ids to prune: terminal tasks that finished more than `maxAgeMs` ago, except the latest task of each
 * existing cluster (by task sequence, and the cluster's `lastTaskId`), so `kindler logs NAME` always has one.
 * Tasks still queued or running, and tasks without a parseable time, are always kept. Pure.
 */
export function retentionPlan(tasks: readonly Task[], clusters: readonly Cluster[], nowMs: number, maxAgeMs: number): string[] {
  const keep = new Set<string>();
  const names = new Set(clusters.map((c) => c.name));
  const latest = new Map<string, Task>();
  for (const t of tasks) {
    if (!names.has(t.cluster)) continue;
    const cur = latest.get(t.cluster);
    if (!cur || seqOf(t.id) > seqOf(cur.id)) latest.set(t.cluster, t);
  }
  for (const t of latest.values()) keep.add(t.id);
  for (const c of clusters) if (c.lastTaskId) keep.add(c.lastTaskId);
  const out: string[] = [];
  for (const t of tasks) {
    if (keep.has(t.id) || !isTerminal(t.state)) continue;
    const ended = Date.parse(t.finishedAt ?? t.createdAt);
    if (!Number.isFinite(ended) || nowMs - ended <= maxAgeMs) continue;
    out.push(t.id);
  }
  return out;
}

// ---- quota ---------------------------------------------------------------------------------------

/**
 * Null when `user` may have one more cluster; else the refusal, e.g.
 * `quota: alice already has 3 clusters (limit 3)`. Same rule as Engine.create (config `maxClustersPerUser`):
 * a limit of 0 (or anything not a whole number > 0) means no limit; every record the user owns counts; a
 * create that re-uses an existing record (`name`) adds no cluster and is never refused.
 */
export function quotaProblem(clusters: readonly Cluster[], user: string, max: number | undefined, name?: string): string | null {
  if (max === undefined || !Number.isInteger(max) || max <= 0) return null;
  if (name !== undefined && clusters.some((c) => c.name === name)) return null;
  const n = clusters.filter((c) => c.owner === user && c.name !== name).length;
  if (n < max) return null;
  return `quota: ${user} already has ${n} cluster${n === 1 ? '' : 's'} (limit ${max})`;
}
