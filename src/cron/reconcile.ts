/**
 * Reconcile: compares kindler's records with what the provider (docker, through `cluster.sh list`) has,
 * reports every difference, and heals the ones it is allowed to heal by queueing ordinary engine tasks.
 *
 * Rules (upstream lessons 3, 4, 5, 6, 14):
 * - Nothing comes back by itself: a recorded cluster the provider no longer has is only reported (`missing`);
 *   re-creating it is the user's call.
 * - One vocabulary: desired `present|stopped|absent` against the provider's `running|stopped|degraded|absent`.
 * - One definition of "exists": the provider view comes from the scripts' own probe (`cluster.sh list`); a
 *   docker that cannot be asked is an error, never "no clusters".
 * - Per-cluster isolation: every cluster is healed on its own; one failure is recorded and the pass goes on.
 * - A reconcile never deletes anything: unmanaged clusters are reported with the `kindler adopt NAME` hint.
 * - A failed create is not drift: a `failed` record the provider has nothing of stays `failed` with its reason,
 *   and is only listed among the pass's skipped clusters ("failed (not drift)"), never as drift.
 */
import { cleanLine } from '../core/text.js';
import { isTerminal, type Cluster, type Task } from '../core/types.js';
import type { ProviderCluster, ProviderInventory } from './inventory.js';

export { listProviderClusters, parseProviderList, providerInventory, type ProviderCluster, type ProviderInventory } from './inventory.js';

export const DRIFT_KINDS = ['missing', 'stopped', 'running', 'unmanaged', 'route', 'branch'] as const;
export type DriftKind = (typeof DRIFT_KINDS)[number];

export type HealAction = 'start' | 'stop' | 'sync' | 'report';

export interface Drift {
  kind: DriftKind;
  cluster: string;
  detail: string;
  heal: HealAction;
}

/** A cluster the pass did not judge, and why (an active task, a pending delete). */
export interface Skipped {
  cluster: string;
  reason: string;
}

export interface DriftExtra {
  /** Routes are on and this says whether the live HAProxy file equals the one rendered from state. */
  routesLiveMatches?: boolean;
  /** Clusters rendered with a route that the live file lacks (when the caller can tell). */
  routeMissing?: ReadonlySet<string>;
  /** Clusters that get a route when rendered from state (to attribute a whole-file mismatch to one). */
  routed?: readonly string[];
  /** GitOps is on: the remote head of each cluster's branch, null when it has none. */
  branches?: ReadonlyMap<string, string | null>;
  /** Clusters with a queued or running task: skipped, their task is the truth for now. */
  active?: ReadonlySet<string>;
}

export interface DriftReport {
  drift: Drift[];
  skipped: Skipped[];
}

// ---- drift (pure) ------------------------------------------------------------------------------

const key = (provider: string, name: string) => `${provider}/${name}`;

function nodesText(p: ProviderCluster): string {
  return p.state === 'degraded' ? `degraded, ${p.running} of ${p.nodes} nodes running` : p.state;
}

/** Every difference between the records and the provider, plus the clusters not judged and why. Pure. */
export function analyseDrift(clusters: readonly Cluster[], provider: readonly ProviderCluster[], extra: DriftExtra = {}): DriftReport {
  const drift: Drift[] = [];
  const skipped: Skipped[] = [];
  const seen = new Map<string, ProviderCluster>();
  for (const p of provider) seen.set(key(p.provider, p.name), p);
  const recorded = new Set(clusters.map((c) => key(c.provider, c.name)));
  const active = extra.active ?? new Set<string>();
  const sorted = [...clusters].sort((a, b) => a.name.localeCompare(b.name));

  for (const c of sorted) {
    if (active.has(c.name)) {
      skipped.push({ cluster: c.name, reason: 'has an active task; not judged until it ends' });
      continue;
    }
    if (c.actual === 'creating' || c.actual === 'deleting') {
      skipped.push({ cluster: c.name, reason: `recorded as ${c.actual} without an active task; not judged` });
      continue;
    }
    if (c.desired === 'absent') {
      skipped.push({ cluster: c.name, reason: `meant to be absent (a delete did not finish); kindler delete ${c.name} retries` });
      continue;
    }
    const p = seen.get(key(c.provider, c.name));
    if (!p && c.actual === 'failed') {
      // A failed create that left nothing behind is what the record already says: not drift.
      skipped.push({
        cluster: c.name,
        reason: `failed (not drift)${c.lastError ? `: ${cleanLine(c.lastError, 300)}` : ''}; kindler create ${c.name} retries it, kindler delete ${c.name} forgets it`,
      });
      continue;
    }
    if (!p) {
      drift.push({
        kind: 'missing',
        cluster: c.name,
        detail: `recorded (desired ${c.desired}, last known ${c.actual}) but the provider has no ${c.provider} cluster ${c.name}; not re-created automatically (kindler create ${c.name} to re-create, kindler delete ${c.name} to forget it)`,
        heal: 'report',
      });
      continue;
    }
    if (c.desired === 'present' && p.state !== 'running') {
      // What a failed create left behind is never started automatically: it is the user's to delete or retry.
      drift.push(
        c.actual === 'failed'
          ? {
              kind: 'stopped',
              cluster: c.name,
              detail: `its create failed and the provider still has it ${nodesText(p)}; not started automatically (kindler delete ${c.name} removes what is left)`,
              heal: 'report',
            }
          : { kind: 'stopped', cluster: c.name, detail: `desired present but the provider reports it ${nodesText(p)}`, heal: 'start' },
      );
      continue;
    }
    if (c.desired === 'stopped' && p.state !== 'stopped') {
      drift.push({ kind: 'running', cluster: c.name, detail: `desired stopped but the provider reports it ${nodesText(p)}`, heal: 'stop' });
      continue;
    }
    if (c.desired === 'present' && c.actual === 'running' && extra.branches) {
      const head = extra.branches.get(c.name);
      if (head === null) drift.push({ kind: 'branch', cluster: c.name, detail: `the GitOps repository has no branch ${c.name}`, heal: 'sync' });
    }
    if (extra.routeMissing?.has(c.name)) {
      drift.push({ kind: 'route', cluster: c.name, detail: `the live HAProxy file has no route for ${c.name}`, heal: 'sync' });
    }
  }

  // A whole-file mismatch no single cluster explains: one sync re-renders the whole file from state.
  if (extra.routesLiveMatches === false && !drift.some((d) => d.kind === 'route')) {
    const via = (extra.routed ?? []).find((n) => !active.has(n) && !drift.some((d) => d.cluster === n && d.heal !== 'sync'));
    drift.push(
      via
        ? { kind: 'route', cluster: via, detail: `the live HAProxy file does not match state; a sync of ${via} re-renders it whole`, heal: 'sync' }
        : {
            kind: 'route',
            cluster: '(routes)',
            detail:
              'the live HAProxy file does not match state and no running cluster can carry a sync; it is re-rendered by the next start, stop, create or delete',
            heal: 'report',
          },
    );
  }

  for (const p of [...provider].sort((a, b) => a.name.localeCompare(b.name) || a.provider.localeCompare(b.provider))) {
    if (recorded.has(key(p.provider, p.name))) continue;
    drift.push({
      kind: 'unmanaged',
      cluster: p.name,
      detail: `the provider has a ${p.provider} cluster ${p.name} (${nodesText(p)}) that kindler has no record of; it is left alone (kindler adopt ${p.name} to manage it)`,
      heal: 'report',
    });
  }
  return { drift, skipped };
}

/** Every difference between the records and the provider (see `analyseDrift`). Pure. */
export function computeDrift(clusters: readonly Cluster[], provider: readonly ProviderCluster[], extra: DriftExtra = {}): Drift[] {
  return analyseDrift(clusters, provider, extra).drift;
}

// ---- the pass ------------------------------------------------------------------------------------

export interface PassActor {
  user: string;
  source: string;
  role: 'admin';
}

export const RECONCILE_ACTOR: PassActor = { user: 'kindler-reconcile', source: 'scheduler', role: 'admin' };

/** The engine methods a reconcile uses (Engine satisfies it). */
export interface ReconcileEngine {
  listClusters(): Cluster[];
  getCluster(name: string): Cluster | undefined;
  listTasks(f?: { cluster?: string; active?: boolean; limit?: number }): Task[];
  startCluster(name: string, actor: PassActor): Promise<Task>;
  stopCluster(name: string, actor: PassActor): Promise<Task>;
  sync(name: string, actor: PassActor): Promise<Task>;
}

export interface RoutesView {
  liveMatches: boolean;
  /** The clusters that get a route when rendered from state. */
  routes?: readonly { cluster: string }[];
  /** Clusters whose route the live file lacks, when known. */
  missing?: readonly string[];
}

export interface ReconcileDeps {
  engine: ReconcileEngine;
  listProvider: ProviderInventory;
  /** Only when routes are enabled (Engine.routesStatus() fits). */
  routesStatus?: () => Promise<RoutesView>;
  /** Only when GitOps is enabled: remote head per branch name, null when absent (Gitops.status fits). */
  branchStatus?: (names: string[]) => Promise<ReadonlyMap<string, string | null>>;
  now?: () => Date;
  actor?: PassActor;
  /** Receives the one JSON summary line of the pass (the caller appends it to <dataDir>/reconcile.jsonl). */
  appendSummary: (line: string) => void | Promise<void>;
  log?: (level: 'info' | 'warn' | 'error', msg: string) => void;
}

export const DEFAULT_HEAL: Readonly<Record<DriftKind, boolean>> = {
  route: true,
  branch: true,
  stopped: true,
  running: true,
  missing: false,
  unmanaged: false,
};

export interface ReconcileOptions {
  dryRun: boolean;
  heal?: Partial<Record<DriftKind, boolean>>;
}

export interface Healed {
  cluster: string;
  kind: DriftKind;
  taskId: string;
}

export interface ReconcileResult {
  at: string;
  dryRun: boolean;
  drift: Drift[];
  healed: Healed[];
  skipped: Skipped[];
  errors: { cluster: string; error: string }[];
}

const msg = (e: unknown) => cleanLine(e instanceof Error ? e.message : String(e), 600);

/** Kinds whose heal is never allowed, whatever the options say (a reconcile never deletes or creates). */
const NEVER_HEALED: ReadonlySet<DriftKind> = new Set(['missing', 'unmanaged']);

/**
 * One reconcile pass: asks the provider, compares, heals (unless dry run) one cluster at a time, and appends
 * one summary line. Never throws for a cluster's trouble; a provider that cannot be asked ends the pass
 * with that error and no drift at all (never "everything is missing").
 */
export async function reconcilePass(deps: ReconcileDeps, opts: ReconcileOptions): Promise<ReconcileResult> {
  const at = (deps.now?.() ?? new Date()).toISOString();
  const actor = deps.actor ?? RECONCILE_ACTOR;
  const heal: Record<DriftKind, boolean> = { ...DEFAULT_HEAL, ...opts.heal };
  const result: ReconcileResult = { at, dryRun: opts.dryRun, drift: [], healed: [], skipped: [], errors: [] };
  const log = (level: 'info' | 'warn' | 'error', m: string) => {
    try {
      deps.log?.(level, m);
    } catch {
      /* a broken logger must not break the pass */
    }
  };

  // Records first, then the provider: a task that starts in between shows up as a changed lastTaskId below.
  const clusters = deps.engine.listClusters();
  const before = new Map(clusters.map((c) => [c.name, c]));
  let provider: ProviderCluster[] | null = null;
  try {
    provider = await deps.listProvider();
  } catch (e) {
    result.errors.push({ cluster: '(provider)', error: msg(e) });
  }

  if (provider) {
    const active = new Set(
      deps.engine
        .listTasks({ active: true })
        .filter((t) => !isTerminal(t.state))
        .map((t) => t.cluster),
    );
    const extra: DriftExtra = { active };
    if (deps.routesStatus) {
      try {
        const r = await deps.routesStatus();
        extra.routesLiveMatches = r.liveMatches;
        extra.routed = (r.routes ?? []).map((x) => x.cluster);
        if (r.missing) extra.routeMissing = new Set(r.missing);
      } catch (e) {
        result.errors.push({ cluster: '(routes)', error: msg(e) });
      }
    }
    if (deps.branchStatus) {
      const names = clusters.filter((c) => c.desired === 'present' && c.actual === 'running').map((c) => c.name);
      if (names.length) {
        try {
          extra.branches = await deps.branchStatus(names);
        } catch (e) {
          result.errors.push({ cluster: '(gitops)', error: msg(e) });
        }
      }
    }
    const report = analyseDrift(clusters, provider, extra);
    result.drift = report.drift;
    result.skipped = report.skipped;

    // Per cluster, independently: at most one task each (the engine admits one per cluster anyway).
    const byCluster = new Map<string, Drift[]>();
    for (const d of report.drift) {
      if (d.heal === 'report') continue;
      if (!heal[d.kind] || NEVER_HEALED.has(d.kind)) continue;
      byCluster.set(d.cluster, [...(byCluster.get(d.cluster) ?? []), d]);
    }
    if (!opts.dryRun) {
      for (const [name, drifts] of byCluster) {
        try {
          const now = deps.engine.getCluster(name);
          const then = before.get(name);
          if (!now || !then || now.lastTaskId !== then.lastTaskId || now.desired !== then.desired) {
            result.skipped.push({ cluster: name, reason: 'changed while the pass ran; left for the next pass' });
            continue;
          }
          const first = drifts[0]!;
          const task = await (first.heal === 'start'
            ? deps.engine.startCluster(name, actor)
            : first.heal === 'stop'
              ? deps.engine.stopCluster(name, actor)
              : deps.engine.sync(name, actor));
          for (const d of drifts) {
            if (d.heal === first.heal) result.healed.push({ cluster: name, kind: d.kind, taskId: task.id });
          }
          log('info', `reconcile: ${first.kind} ${name}: queued ${first.heal} task ${task.id}`);
        } catch (e) {
          result.errors.push({ cluster: name, error: msg(e) });
          log('warn', `reconcile: ${name}: heal failed: ${msg(e)}`);
        }
      }
    }
  }

  try {
    await deps.appendSummary(JSON.stringify(result));
  } catch (e) {
    result.errors.push({ cluster: '(summary)', error: msg(e) });
    log('error', `reconcile: could not write the summary: ${msg(e)}`);
  }
  return result;
}
