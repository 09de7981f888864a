/**
 * Records that come from outside rather than from a create: `adopt` (a cluster the provider has and kindler
 * does not) and `import-csv` (the older tool's environments file). Both go through admission, honour the
 * ports they find exactly or refuse them, and queue no task.
 */
import { rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { conflict, failed, notFound, usageError } from '../core/errors.js';
import { buildImportedRecord, subnetClash } from '../core/createrules.js';
import { countCsvRows, parseEnvironmentsCsv } from '../core/csv.js';
import { kubeContextFor } from '../core/names.js';
import { PORT_MAX, type PortKind } from '../core/ports.js';
import { flagOf, MIN_CLUSTER_PORT } from '../core/spec.js';
import { sanitizeLine } from '../core/text.js';
import type { AuditEvent, Cluster } from '../core/types.js';
import { StateWriteError, type StateData } from '../store/state.js';
import { adoptCall } from '../provision/scripts.js';
import type { Admission } from './admission.js';
import { clone, now, type Actor, type EngineContext } from './context.js';
import type { Ports } from './ports.js';
import type { Recovery } from './recovery.js';
import { queryScript } from '../os/runner.js';

export interface ImportRow {
  line: number;
  name: string;
  result: 'imported' | 'refused';
  reason?: string;
}

/** A port's column in the older tool's CSV (import-csv names it in refusals); the API port has none: its flag. */
const csvField = (k: PortKind): string => (k === 'httpPort' ? 'http_port' : k === 'httpsPort' ? 'https_port' : flagOf(k));

/** Work an import does between two yields to the event loop, so other requests are served meanwhile. */
const IMPORT_SLICE_MS = 10;

/**
 * Records new clusters and their audit event in one write. When the write fails they are taken out of
 * memory again before the store retries it (the retry must not save what the caller is told failed),
 * and the caller gets "not done" with the reason.
 */
async function recordAdded(ctx: EngineContext, added: Cluster[], audit: (d: StateData) => void): Promise<void> {
  let event: AuditEvent | undefined;
  try {
    await ctx.store.update((d) => {
      d.clusters.push(...added);
      audit(d);
      event = d.audit[d.audit.length - 1];
    });
  } catch (e) {
    const d = ctx.store.data;
    for (const c of added) {
      const i = d.clusters.indexOf(c);
      if (i >= 0) d.clusters.splice(i, 1);
    }
    const ai = event ? d.audit.lastIndexOf(event) : -1;
    if (ai >= 0) d.audit.splice(ai, 1);
    const why = e instanceof StateWriteError ? e.reason : (e as Error).message;
    throw failed(`${added.map((c) => c.name).join(', ')}: not done: ${why}`);
  }
}

export class Imports {
  constructor(
    private readonly ctx: EngineContext,
    private readonly admission: Admission,
    private readonly ports: Ports,
    private readonly recovery: Recovery,
  ) {}

  /** See Engine.adopt. */
  adopt(name: string, provider: Cluster['provider'], actor: Actor): Promise<Cluster> {
    const ctx = this.ctx;
    const cfg = ctx.cfg;
    return this.admission.admit(async () => {
      if (ctx.store.data.clusters.some((c) => c.name === name)) throw conflict(`name: cluster "${name}" is already recorded`, 'name');
      const status = await this.recovery.probe(name, provider);
      if (status.state === 'absent') throw notFound(`cluster: ${provider} has no cluster named "${name}"`);
      const kubeconfig = join(ctx.kubeDir, `${name}.yaml`);
      const staged = join(ctx.kubeDir, `.adopt-${name}.yaml`);
      try {
        let found: Record<string, unknown>;
        try {
          found = await queryScript({
            ...adoptCall(cfg, name, provider, staged),
            cwd: cfg.scriptsDir,
            ...(ctx.opts.scriptEnv ? { env: ctx.opts.scriptEnv } : {}),
            timeoutMs: cfg.timeouts.status * 1000,
          });
        } catch (e) {
          throw failed(`adopt: cannot read ${provider} cluster "${name}" from docker: ${(e as Error).message}`);
        }
        const num = (k: string, min: number, max: number): number => {
          const v = found[k];
          if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
            throw failed(`adopt: cluster.sh adopt gave ${k} ${JSON.stringify(v)}, not a whole number ${min}-${max}`);
          return v;
        };
        const state = found.state;
        if (state !== 'running' && state !== 'stopped' && state !== 'degraded') throw failed(`adopt: cluster.sh adopt gave state ${JSON.stringify(state)}`);
        const ports = { httpPort: num('httpPort', 1, PORT_MAX), httpsPort: num('httpsPort', 1, PORT_MAX), apiPort: num('apiPort', 1, PORT_MAX) };
        const servers = num('servers', 1, 1000);
        const agents = num('agents', 0, 1000);
        const image = typeof found.image === 'string' && found.image ? found.image : undefined;
        // The ports the provider really published are recorded as they are, or the adoption is refused.
        const own = this.ports.own();
        for (const k of ['httpPort', 'httpsPort', 'apiPort'] as const) {
          const v = ports[k];
          if (v < MIN_CLUSTER_PORT)
            throw usageError(
              `${flagOf(k)}: ${provider} cluster "${name}" publishes it on ${v}; kindler's clusters use ports ${MIN_CLUSTER_PORT}-${PORT_MAX}, so it cannot be adopted`,
              flagOf(k),
            );
          const key = own.get(v);
          if (key)
            throw conflict(
              `${flagOf(k)}: ${provider} cluster "${name}" publishes it on ${v}, the routes frontend's own port (${key}); it cannot be adopted`,
              flagOf(k),
            );
          const other = ctx.store.data.clusters.find((c) => c.httpPort === v || c.httpsPort === v || c.apiPort === v);
          if (other)
            throw conflict(
              `${flagOf(k)}: ${provider} cluster "${name}" publishes it on ${v}, which cluster "${other.name}" has recorded; it cannot be adopted`,
              flagOf(k),
            );
        }
        try {
          await rename(staged, kubeconfig);
        } catch (e) {
          throw failed(`adopt: cannot move the kubeconfig into place at ${kubeconfig}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
        }
        const at = now();
        const c: Cluster = {
          name,
          provider,
          servers,
          agents,
          ...(image ? { image } : {}),
          ...ports,
          owner: actor.user,
          createdAt: at,
          desired: state === 'stopped' ? 'stopped' : 'present',
          actual: state === 'degraded' ? 'unknown' : state,
          kubeContext: kubeContextFor(provider, name),
          kubeconfig,
          ...(state === 'degraded' ? { lastError: `degraded: ${String(found.running)} of ${String(found.nodes)} nodes running` } : {}),
          ...(cfg.routes.enabled ? { domain: `${name}.${cfg.routes.baseDomain}` } : {}),
          options: { route: true, register: [] },
          updatedAt: at,
        };
        try {
          await recordAdded(ctx, [c], (d) => ctx.audit(d, actor, 'adopt', name, 'ok'));
        } catch (e) {
          await rm(kubeconfig, { force: true });
          throw e;
        }
        ctx.emitCluster(name);
        return clone(c);
      } finally {
        await rm(staged, { force: true });
      }
    });
  }

  /** See Engine.importCsv. */
  importCsv(text: string, actor: Actor): Promise<ImportRow[]> {
    const ctx = this.ctx;
    const count = countCsvRows(text);
    const max = ctx.cfg.importCsvMaxRows;
    if (count > max) throw usageError(`file: has ${count} rows; import-csv takes at most ${max} at once (config importCsvMaxRows); split the file`, 'file');
    return this.admission.admit(async () => {
      const rows = parseEnvironmentsCsv(text);
      const out: ImportRow[] = [];
      const added: Cluster[] = [];
      const own = this.ports.own();
      let slice = performance.now();
      for (const row of rows) {
        if (performance.now() - slice >= IMPORT_SLICE_MS) {
          await new Promise((r) => setImmediate(r));
          slice = performance.now();
        }
        if (!row.request) {
          out.push({ line: row.line, name: sanitizeLine(row.name), result: 'refused', reason: row.error });
          continue;
        }
        const req = row.request;
        try {
          if (ctx.store.data.clusters.some((c) => c.name === req.name) || added.some((c) => c.name === req.name)) {
            throw conflict(`name: cluster "${req.name}" already exists`, 'name');
          }
          const others = [...ctx.store.data.clusters, ...added];
          // Imported ports are the old tool's real mappings: honoured exactly, or refused on conflict.
          for (const k of ['httpPort', 'httpsPort'] as const) {
            const v = req[k];
            if (v === undefined) continue;
            const key = own.get(v);
            if (key) throw usageError(`${csvField(k)}: ${v} is the routes frontend's own port (${key})`);
            const owner = others.find((c) => c.httpPort === v || c.httpsPort === v || c.apiPort === v);
            if (owner) throw conflict(`${csvField(k)}: ${v} is already used by cluster "${owner.name}"`);
          }
          // Given like create's flags: checked on the host, and never handed out to the row's other ports. A port
          // in use is the row's own when the provider runs that cluster (the old tool's, still up): one status check.
          let provided: boolean | undefined;
          const givenBusy = async (port: number): Promise<string | null> => {
            const busy = await this.ports.hostBusy(port);
            if (!busy) return null;
            if (provided === undefined) {
              try {
                provided = (await this.recovery.probe(req.name, req.provider)).state !== 'absent';
              } catch (e) {
                return `${busy}, and whether ${req.provider} has a cluster named "${req.name}" could not be checked (${(e as Error).message})`;
              }
            }
            return provided ? null : `${busy}, and ${req.provider} has no cluster named "${req.name}"`;
          };
          const ports = await this.ports.pick(req, undefined, others, { field: csvField, givenBusy });
          if (req.subnet) {
            const clash = subnetClash(req.subnet, others);
            if (clash) throw conflict(`cluster_subnet: ${req.subnet} overlaps cluster "${clash.name}"`);
          }
          added.push(buildImportedRecord(req, ports, actor.user, join(ctx.kubeDir, `${req.name}.yaml`), now()));
          out.push({ line: row.line, name: req.name, result: 'imported' });
        } catch (e) {
          out.push({ line: row.line, name: req.name, result: 'refused', reason: (e as Error).message });
        }
      }
      if (added.length) {
        await recordAdded(ctx, added, (d) => ctx.audit(d, actor, 'import-csv', added.map((c) => c.name).join(','), 'ok'));
        for (const c of added) ctx.feed.emit({ type: 'cluster', cluster: clone(c) });
        this.recovery.recheckAll(added.map((c) => c.name));
      }
      return out;
    });
  }
}
