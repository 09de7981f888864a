/**
 * Asking the provider what is there and making state agree: status checks (`probe`), background re-checks
 * of a cluster after a task left it unknown, the cleanup of a create that could not clean up after itself,
 * and crash recovery at start (orphaned processes stopped, unfinished tasks marked interrupted, their
 * clusters re-checked).
 */
import { failed } from '../core/errors.js';
import { OWNER_ENV } from '../core/childenv.js';
import { parseMarker } from '../core/markers.js';
import { applyRecheck, cutShortCreate, interruptAtStart } from '../core/taskrules.js';
import { cleanLine } from '../core/text.js';
import { isTerminal, type Cluster, type Task } from '../core/types.js';
import { ownProcessGroup, processesWithEnv, processRunning, processStart } from '../os/process.js';
import { parseStatus, scriptFor, statusCall, type StatusResult } from '../provision/scripts.js';
import { now, type EngineContext } from './context.js';
import type { TaskLog } from './logs.js';
import { queryScript, runScript, signalGroup } from '../os/runner.js';

/** Removes what an unfinished create made, with the idempotent delete script; logs into the task's log. */
export async function cleanupCreate(ctx: EngineContext, t: Task, log: TaskLog): Promise<'done' | 'failed'> {
  const c = ctx.cluster(t.cluster);
  if (!c) return 'failed';
  log.add('[kindler] cleanup: removing what the unfinished create left behind');
  const call = scriptFor(ctx.cfg, 'delete', c);
  const run = runScript({
    script: call.script,
    args: call.args,
    cwd: ctx.cfg.scriptsDir,
    env: ctx.opts.scriptEnv,
    timeoutMs: ctx.cfg.timeouts.delete * 1000,
    graceMs: ctx.cfg.cancelGraceSeconds * 1000,
    onLine: (line, stream) => {
      const l = cleanLine(line);
      const m = stream === 'stdout' ? parseMarker(l) : null;
      if (!m) log.add(`cleanup: ${l}`);
      else if (m.type === 'step') log.add(`cleanup: ==> ${m.title}`);
      else if (m.type === 'error' || m.type === 'note') log.add(`cleanup: ${m.type}: ${m.text}`);
    },
  });
  const r = await run.done;
  const ok = r.exitCode === 0 && !r.stopped;
  log.add(ok ? '[kindler] cleanup done' : `[kindler] cleanup failed (exit ${r.exitCode ?? r.signal ?? r.spawnError})`);
  return ok ? 'done' : 'failed';
}

export class Recovery {
  constructor(private readonly ctx: EngineContext) {}

  /** Asks the provider (through cluster.sh status) what it has for one cluster. */
  async probe(name: string, provider: string): Promise<StatusResult> {
    const cfg = this.ctx.cfg;
    const call = statusCall(cfg, name, provider);
    let status: StatusResult | null;
    try {
      status = parseStatus(
        await queryScript({
          ...call,
          cwd: cfg.scriptsDir,
          ...(this.ctx.opts.scriptEnv ? { env: this.ctx.opts.scriptEnv } : {}),
          timeoutMs: cfg.timeouts.status * 1000,
        }),
      );
    } catch (e) {
      throw failed(`status check of "${name}" failed: ${(e as Error).message}`);
    }
    if (!status) throw failed(`status check of "${name}" failed: the script's result has no valid state`);
    return status;
  }

  /**
   * Re-checks a cluster's actual state in the background; `interruptedCreate` marks a half-done create,
   * `interrupted` the task (of any kind) a crash or shutdown cut short on it.
   */
  recheck(name: string, interruptedCreate: Task | null, interrupted: Task | null = null): Promise<void> {
    const ctx = this.ctx;
    const c = ctx.cluster(name);
    if (!c) return Promise.resolve();
    const p = (async () => {
      let status: StatusResult | null = null;
      let problem: string | undefined;
      if (interruptedCreate && interruptedCreate.steps.some((st) => st.key === 'create-cluster') && interruptedCreate.cleanup !== 'done') {
        // The create got as far as making the cluster and then lost its script: undo it here.
        const log = ctx.openLog(interruptedCreate);
        log.total = interruptedCreate.logLines;
        const result = await cleanupCreate(ctx, interruptedCreate, log);
        await log.close();
        await ctx.save(`task ${interruptedCreate.id}: its cleanup`, (d) => {
          const t = d.tasks.find((x) => x.id === interruptedCreate.id);
          if (t) {
            t.cleanup = result;
            // Finished and already in the journal: its new line there supersedes the old one.
            ctx.store.taskChanged(t);
          }
        });
        ctx.emitTask(interruptedCreate);
      }
      try {
        status = await this.probe(c.name, c.provider);
      } catch (e) {
        problem = (e as Error).message;
      }
      await ctx.save(`re-check of cluster ${name}`, (d) => {
        const r = d.clusters.find((x) => x.name === name);
        if (!r || ctx.active.has(name)) return;
        if (applyRecheck(r, status, problem, interruptedCreate, now(), interrupted).remove) d.clusters.splice(d.clusters.indexOf(r), 1);
      });
      ctx.emitCluster(name);
    })().catch((e: Error) => ctx.log('error', `re-check of cluster ${name} failed: ${e.stack ?? e.message}`));
    ctx.rechecks.add(p);
    void p.finally(() => ctx.rechecks.delete(p));
    return p;
  }

  /** Re-checks many clusters in the background, at most `concurrency` at a time (never a burst of status checks). */
  recheckAll(names: string[]): void {
    const ctx = this.ctx;
    const todo = names.slice();
    const worker = async () => {
      for (let name = todo.shift(); name !== undefined && !ctx.stopping; name = todo.shift()) await this.recheck(name, null);
    };
    const all = Promise.all(Array.from({ length: Math.min(ctx.cfg.concurrency, todo.length) }, worker)).then(() => undefined);
    // Counted as a re-check, so idle() and shutdown wait for the whole batch.
    ctx.rechecks.add(all);
    void all.finally(() => ctx.rechecks.delete(all));
  }

  /**
   * Stops whatever a previous holder of the lock left running: every process carrying this data dir's
   * OWNER_ENV (task scripts, status checks, cleanups and hooks alike, recorded or not) and the process
   * group of every unfinished task. SIGTERM first, so a create's script removes what it made; SIGKILL
   * for what is left after the grace period. Holding the lock means no live engine owns any of them.
   */
  private async stopOrphans(unfinished: Task[]): Promise<void> {
    const ctx = this.ctx;
    const marker = ctx.opts.scriptEnv?.[OWNER_ENV];
    const own = ownProcessGroup();
    const found = () => (marker ? processesWithEnv(OWNER_ENV, marker) : []).filter((p) => p.pgid !== own);
    const groups = new Map<number, string>();
    for (const t of unfinished) {
      const pid = Number(t.params?.pid ?? 0);
      if (t.state === 'running' && pid > 0 && processStart(pid) === t.params?.pidStart)
        groups.set(pid, `task ${t.id}: stopping its orphaned script (process group ${pid})`);
    }
    for (const p of found()) {
      if (groups.has(p.pgid)) continue;
      const t = unfinished.find((x) => Number(x.params?.pid ?? 0) === p.pgid);
      groups.set(
        p.pgid,
        t
          ? `task ${t.id}: stopping its orphaned script (process group ${p.pgid})`
          : `stopping process group ${p.pgid} left running by the previous kindler (a script whose task never recorded it, a status check or a cleanup)`,
      );
    }
    if (groups.size === 0) return;
    for (const [pgid, msg] of groups) {
      ctx.log('warn', msg);
      signalGroup(pgid, 'SIGTERM');
    }
    const left = () => found().length > 0 || [...groups.keys()].some((g) => processRunning(g));
    const deadline = Date.now() + ctx.cfg.cancelGraceSeconds * 1000;
    while (left() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    for (const p of found()) groups.set(p.pgid, '');
    for (const pgid of groups.keys()) signalGroup(pgid, 'SIGKILL');
    const killDeadline = Date.now() + 3000;
    while (left() && Date.now() < killDeadline) await new Promise((r) => setTimeout(r, 10));
    if (left())
      ctx.log(
        'error',
        `processes left by the previous kindler survived SIGKILL: ${found()
          .map((p) => p.pid)
          .join(', ')}`,
      );
  }

  /** After a crash: stop orphaned scripts, mark unfinished tasks interrupted, re-check their clusters. */
  async recover(): Promise<void> {
    const ctx = this.ctx;
    const d = ctx.store.data;
    const unfinished = d.tasks.filter((t) => !isTerminal(t.state));
    await this.stopOrphans(unfinished);
    // A create a shutdown stopped after it made the cluster, and that could not clean up, is finished like one a crash stopped.
    const cutShort = (c: Cluster | undefined) => (c ? cutShortCreate(c, c.lastTaskId ? d.tasks.find((x) => x.id === c.lastTaskId) : undefined) : null);
    if (unfinished.length === 0) {
      for (const c of d.clusters) if (c.actual === 'creating' || c.actual === 'deleting' || c.actual === 'unknown') void this.recheck(c.name, cutShort(c));
      return;
    }
    const at = now();
    await ctx.save('recovery: unfinished tasks marked interrupted', (data) => {
      for (const t of unfinished) {
        const c = data.clusters.find((x) => x.name === t.cluster);
        if (interruptAtStart(t, c, at).remove) data.clusters.splice(data.clusters.indexOf(c!), 1);
      }
    });
    for (const t of unfinished) {
      ctx.log('warn', `task ${t.id} interrupted: ${t.kind} ${t.cluster}`);
      ctx.emitTask(t);
    }
    const again = new Set(unfinished.map((t) => t.cluster));
    for (const c of d.clusters) if (c.actual === 'creating' || c.actual === 'deleting' || c.actual === 'unknown') again.add(c.name);
    for (const name of again) {
      const t = unfinished.filter((x) => x.cluster === name).pop();
      if (t) void this.recheck(name, t.kind === 'create' && t.steps.length > 0 ? t : null, t);
      else void this.recheck(name, cutShort(ctx.cluster(name)));
    }
  }
}
