/**
 * The post steps kindler runs, built from config: routes, the GitOps branch, registration hooks.
 */
import { Serial } from '../core/serial.js';
import type { Config } from '../core/config.js';
import { wantsRoute, type Cluster } from '../core/types.js';
import { hookEnv, listHooks, type HookPhase } from '../provision/hooks.js';
import { applyRoutes, renderRoutes } from '../provision/routes.js';
import { Gitops, gitopsConfigProblem } from '../provision/gitops.js';
import { join } from 'node:path';
import { runHooks } from './hooks.js';
import type { PostStep } from './poststeps.js';

/** `NAME.BASE_DOMAIN` when routes are on and the cluster did not opt out with --no-route. */
export function domainOf(cfg: Config, c: Cluster): string | undefined {
  return cfg.routes.enabled && wantsRoute(c) ? `${c.name}.${cfg.routes.baseDomain}` : undefined;
}

/** The hooks step: runs post-create.d/ or post-delete.d/ when there is at least one hook. */
export function hooksStep(cfg: Config, scriptEnv?: Record<string, string>): PostStep {
  const phaseOf = (kind: string): HookPhase | null => (kind === 'create' ? 'post-create' : kind === 'delete' ? 'post-delete' : null);
  return {
    key: 'hooks',
    title: (_c, kind) => `Run ${phaseOf(kind)} hooks`,
    applies: (kind) => {
      const phase = phaseOf(kind);
      return phase !== null && listHooks(cfg.hooksDir, phase).length > 0;
    },
    run: async (ctx) => {
      const phase = phaseOf(ctx.kind)!;
      const hooks = listHooks(cfg.hooksDir, phase);
      const results = await runHooks(hooks, hookEnv(ctx.cluster, domainOf(cfg, ctx.cluster), ctx.taskId, phase), {
        timeoutMs: cfg.hookTimeoutSeconds * 1000,
        graceMs: cfg.cancelGraceSeconds * 1000,
        cwd: cfg.hooksDir,
        ...(scriptEnv ? { baseEnv: scriptEnv } : {}),
        onLine: ctx.log,
      });
      const bad = results.find((r) => !r.ok);
      if (bad) throw new Error(`hook ${bad.hook} ${bad.reason}`);
    },
  };
}

/**
 * The route step: renders the whole HAProxy file from state, validates it, and only then puts it in
 * place and reloads. After create/start the cluster is routed; after stop/delete its route is gone.
 */
export function routeStep(cfg: Config): PostStep {
  return {
    key: 'route',
    title: (c, kind) =>
      !wantsRoute(c)
        ? `Render routes without ${c.name} (--no-route)`
        : kind === 'create' || kind === 'start' || kind === 'sync'
          ? `Route ${c.name}.${cfg.routes.baseDomain}`
          : `Remove the route of ${c.name}`,
    // Runs for a --no-route cluster too: the file is rendered whole, so a route it had before (a retry that
    // switched routing off) is removed, and the cluster never gets one.
    applies: (kind) => cfg.routes.enabled && kind !== 'import-image',
    run: async (ctx) => {
      const rendered = renderRoutes(ctx.clusters(), cfg.routes);
      const mine = rendered.routes.find((r) => r.cluster === ctx.cluster.name);
      const wanted = (ctx.kind === 'create' || ctx.kind === 'start' || ctx.kind === 'sync') && wantsRoute(ctx.cluster);
      if (wanted && !mine) {
        const why = rendered.skipped.find((s) => s.name === ctx.cluster.name)?.reason ?? 'not routable';
        throw new Error(`no route for ${ctx.cluster.name}: ${why}`);
      }
      const { changed } = await applyRoutes(rendered.text, cfg.routes, ctx.log);
      ctx.log(
        mine ? `route ${mine.host} -> ${mine.backend}${changed ? '' : ' (already live)'}` : `no route for ${ctx.cluster.name}${changed ? ' (removed)' : ''}`,
      );
    },
  };
}

/**
 * The GitOps step: after a create, branch NAME with clusters/NAME/cluster.json and the template,
 * pushed and verified; after a delete, an archive tag at the branch head, then the branch removed.
 */
export function gitopsStep(cfg: Config): PostStep {
  let git: Gitops | null = null;
  const client = (log: (l: string) => void) => {
    git ??= new Gitops(
      {
        enabled: true,
        repository: cfg.gitops.repository,
        baseBranch: cfg.gitops.baseBranch,
        ...(cfg.gitops.templateDir ? { templateDir: cfg.gitops.templateDir } : {}),
        workDir: join(cfg.dataDir, 'gitops'),
        author: cfg.gitops.author,
      },
      (l) => currentLog(l),
    );
    currentLog = log;
    return git;
  };
  let currentLog: (l: string) => void = () => undefined;
  // One git operation at a time, so each task's git lines land in that task's log.
  const queue = new Serial();
  const serial = <T>(log: (l: string) => void, op: (g: Gitops) => Promise<T>): Promise<T> =>
    queue.run(() => {
      currentLog = log;
      return op(client(log));
    });
  return {
    key: 'git-branch',
    title: (c, kind) => (kind === 'delete' ? `Archive and remove GitOps branch ${c.name}` : `Push GitOps branch ${c.name}`),
    applies: (kind) => cfg.gitops.enabled && (kind === 'create' || kind === 'delete' || kind === 'sync'),
    branchStatus: (names) =>
      serial(
        () => undefined,
        (g) => g.status(names),
      ),
    run: async (ctx) => {
      if (ctx.kind !== 'delete') {
        const r = await serial(ctx.log, (g) => g.createBranch(ctx.cluster, domainOf(cfg, ctx.cluster) ?? `${ctx.cluster.name}.${cfg.routes.baseDomain}`));
        ctx.log(`git: branch ${r.branch} at ${r.commit}`);
      } else {
        const r = await serial(ctx.log, (g) => g.archiveAndDelete(ctx.cluster.name));
        ctx.log('absent' in r ? `git: no branch ${ctx.cluster.name} (already removed)` : `git: archived as ${r.tag} at ${r.commit}; branch removed`);
      }
    },
  };
}

/** Every post step the configuration turns on, in the order they run. */
export function defaultPostSteps(cfg: Config, scriptEnv?: Record<string, string>): PostStep[] {
  if (cfg.gitops.enabled) {
    const problem = gitopsConfigProblem({ ...cfg.gitops, workDir: join(cfg.dataDir, 'gitops') });
    if (problem) throw new Error(`config: gitops: ${problem}`);
  }
  return [routeStep(cfg), gitopsStep(cfg), hooksStep(cfg, scriptEnv)];
}
