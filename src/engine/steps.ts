/**
 * The post steps kindler runs, built from config: routes, the GitOps branch, registration hooks.
 */
import type { Config } from '../core/config.js';
import type { Cluster } from '../core/types.js';
import { hookEnv, listHooks, type HookPhase } from '../provision/hooks.js';
import { applyRoutes, renderRoutes } from '../provision/routes.js';
import { runHooks } from './hooks.js';
import type { PostStep } from './poststeps.js';

/** `NAME.BASE_DOMAIN` when routes are on. */
export function domainOf(cfg: Config, c: Cluster): string | undefined {
  return cfg.routes.enabled ? `${c.name}.${cfg.routes.baseDomain}` : undefined;
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
    title: (c, kind) => (kind === 'create' || kind === 'start' ? `Route ${c.name}.${cfg.routes.baseDomain}` : `Remove the route of ${c.name}`),
    applies: (kind, c) => cfg.routes.enabled && kind !== 'import-image' && c.options?.route !== false,
    run: async (ctx) => {
      const rendered = renderRoutes(ctx.clusters(), cfg.routes);
      const mine = rendered.routes.find((r) => r.cluster === ctx.cluster.name);
      const wanted = ctx.kind === 'create' || ctx.kind === 'start';
      if (wanted && !mine) {
        const why = rendered.skipped.find((s) => s.name === ctx.cluster.name)?.reason ?? 'not routable';
        throw new Error(`no route for ${ctx.cluster.name}: ${why}`);
      }
      const { changed } = await applyRoutes(rendered.text, cfg.routes, ctx.log);
      ctx.log(mine ? `route ${mine.host} -> ${mine.backend}${changed ? '' : ' (already live)'}` : `no route for ${ctx.cluster.name}${changed ? ' (removed)' : ''}`);
    },
  };
}

/** Every post step the configuration turns on, in the order they run. */
export function defaultPostSteps(cfg: Config, scriptEnv?: Record<string, string>): PostStep[] {
  return [routeStep(cfg), hooksStep(cfg, scriptEnv)];
}
