/**
 * kindler's scheduled jobs, wired to one engine: reconcile, TTL expiry, task and audit retention. The same
 * functions serve the schedule and on-demand runs (`kindler reconcile`), one run of each at a time.
 */
import { appendFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { APPEND_NOFOLLOW } from '../os/atomic.js';
import type { Engine } from '../engine/engine.js';
import { isTerminal } from '../core/types.js';
import { listProviderClusters, reconcilePass, type DriftKind, type ReconcileResult } from './reconcile.js';
import { retentionPlan, ttlPass } from './lifecycle.js';

type Log = (level: 'info' | 'warn' | 'error', msg: string) => void;

const running = new WeakMap<Engine, Map<string, Promise<unknown>>>();

/** Runs `fn` unless a run of the same job on this engine is pending, in which case it waits for that one. */
function once<T>(engine: Engine, job: string, fn: () => Promise<T>): Promise<T> {
  let m = running.get(engine);
  if (!m) running.set(engine, (m = new Map<string, Promise<unknown>>()));
  const cur = m.get(job) as Promise<T> | undefined;
  if (cur) return cur;
  const p = fn().finally(() => m.delete(job));
  m.set(job, p);
  return p;
}

/** One reconcile pass; appends its summary to <dataDir>/reconcile.jsonl. */
export function runReconcile(engine: Engine, o: { dryRun: boolean; heal?: Partial<Record<DriftKind, boolean>>; log?: Log }): Promise<ReconcileResult> {
  return once(engine, o.dryRun ? 'reconcile-dry' : 'reconcile', async () => {
    const cfg = engine.cfg;
    const result = await reconcilePass(
      {
        engine,
        listProvider: () => listProviderClusters(cfg, engine.scriptEnv),
        ...(cfg.routes.enabled ? { routesStatus: () => engine.routesStatus() } : {}),
        ...(cfg.gitops.enabled ? { branchStatus: (names: string[]) => engine.branchStatus(names) ?? Promise.resolve(new Map()) } : {}),
        // O_NOFOLLOW: a symlink planted in the data dir is refused, never appended through.
        appendSummary: (line) => appendFile(join(cfg.dataDir, 'reconcile.jsonl'), `${line.trimEnd()}\n`, { mode: 0o640, flag: APPEND_NOFOLLOW }),
        ...(o.log ? { log: o.log } : {}),
      },
      { dryRun: o.dryRun, heal: { ...cfg.reconcile.heal, ...o.heal } },
    );
    if (!o.dryRun) {
      // Drift that was only reported still shows in every table: record what the provider has now.
      const healed = new Set(result.healed.map((h) => h.cluster));
      // A failed record keeps `failed` and its reason: the provider's state of its leftovers is in the drift line.
      const failedRecords = new Set(engine.listClusters().filter((c) => c.actual === 'failed').map((c) => c.name));
      const stale = new Set(result.drift.filter((d) => d.kind !== 'unmanaged' && d.kind !== 'route' && d.kind !== 'branch' && !healed.has(d.cluster) && !failedRecords.has(d.cluster)).map((d) => d.cluster));
      for (const name of stale) await engine.refresh(name);
    }
    return result;
  });
}

/**
 * The last whole reconcile summary line, parsed (null when none ran yet), and the lines after it that are not
 * whole JSON objects (a write cut short, e.g. by a crash): those are skipped and reported, never fatal.
 */
export async function lastReconcile(engine: Engine): Promise<{ last: Record<string, unknown> | null; problems: string[] }> {
  let text: string;
  try {
    text = await readFile(join(engine.cfg.dataDir, 'reconcile.jsonl'), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { last: null, problems: [] };
    throw e;
  }
  const lines = text.split('\n');
  const problems: string[] = [];
  for (let i = lines.length - 1; i >= 0; i--) {
    if (!lines[i]!.trim()) continue;
    let v: unknown;
    try {
      v = JSON.parse(lines[i]!);
    } catch {
      v = undefined;
    }
    if (v && typeof v === 'object' && !Array.isArray(v)) return { last: v as Record<string, unknown>, problems };
    problems.unshift(`reconcile.jsonl line ${i + 1}: not a whole JSON line (a write cut short); ignored`);
  }
  return { last: null, problems };
}

/** Deletes clusters whose TTL passed, as user kindler-ttl. */
export function runTtl(engine: Engine, log?: Log) {
  return once(engine, 'ttl', () => ttlPass({ engine, ...(log ? { log } : {}) }));
}

/**
 * Prunes finished tasks older than the retention age (keeping each cluster's latest) and their logs, and
 * audit events older than `auditRetentionDays` or beyond `auditMaxEvents`. Resolves with the tasks pruned.
 */
export function runRetention(engine: Engine, log?: Log): Promise<number> {
  return once(engine, 'retention', async () => {
    const cfg = engine.cfg;
    const events = await engine.pruneAudit(cfg.auditRetentionDays * 86_400_000, cfg.auditMaxEvents);
    if (events) log?.('info', `retention: pruned ${events} audit event(s) (older than ${cfg.auditRetentionDays}d or beyond the newest ${cfg.auditMaxEvents})`);
    const days = cfg.retentionDays;
    if (days <= 0) return 0;
    const tasks = engine.listTasks().filter((t) => isTerminal(t.state));
    const ids = retentionPlan(tasks, engine.listClusters(), Date.now(), days * 86_400_000);
    const n = await engine.pruneTasks(ids);
    if (n) log?.('info', `retention: pruned ${n} finished task(s) older than ${days}d and their logs`);
    return n;
  });
}
