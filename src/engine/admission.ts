/**
 * Admitting work. Every verb that queues a task takes one path, one verb at a time (`admit`): refuse when
 * kindler is stopping → the verb's checks (the record, the per-cluster lock, the verb's own rules) → the
 * record change and the task, written together (`enqueue`; undone if the write fails) → the queue. Also the
 * changes that queue no task but act on a task or record: cancel and extend.
 */
import { Serial } from '../core/serial.js';
import { join } from 'node:path';
import { conflict, failed, notFound } from '../core/errors.js';
import { buildCreateRecord, checkQuota, createExpiry, createParams, resolveCreateRequest, retryChanges, subnetClash } from '../core/createrules.js';
import { parseDuration } from '../core/duration.js';
import { checkCreateRequest, checkSubnet, type CreateInput } from '../core/spec.js';
import { sanitizeLine } from '../core/text.js';
import { isTerminal, type AuditEvent, type Cluster, type Task, type TaskKind } from '../core/types.js';
import { StateWriteError, type StateData } from '../store/state.js';
import { clone, now, type Actor, type EngineContext } from './context.js';
import type { Ports } from './ports.js';

/**
 * Decides whether the actor may re-create an existing record (see authorize's 'recreate'): called under
 * the admission lock with the record and the recorded settings the request would change; throws to refuse.
 */
export type RecreateGuard = (existing: Cluster, changes: string[]) => void;

type Params = Record<string, string | number | boolean>;

export class Admission {
  /** Admission is serialized: one verb's checks and record change at a time. */
  private readonly admitting = new Serial();

  constructor(
    private readonly ctx: EngineContext,
    private readonly ports: Ports,
  ) {}

  /** Runs `fn` alone among admissions (port allocation and the per-cluster lock hold under concurrency), once kindler is not stopping. */
  admit<T>(fn: () => Promise<T>): Promise<T> {
    return this.admitting.run(async () => {
      if (this.ctx.stopping) throw failed('kindler is shutting down and accepts no new tasks');
      return fn();
    });
  }

  private assertIdle(name: string): void {
    const id = this.ctx.active.get(name);
    if (!id) return;
    const t = this.ctx.store.data.tasks.find((x) => x.id === id);
    throw conflict(
      `cluster "${name}" already has ${t?.kind ?? 'a'} task ${id} ${t?.state ?? 'active'}; wait for it or cancel it (kindler cancel ${id})`,
      'name',
    );
  }

  /**
   * The path of every verb on an existing cluster: its record, the per-cluster lock, the verb's `check`, then
   * the task with its `params` and the record's `change` (desired state), written together.
   */
  private admitTask(
    kind: TaskKind,
    name: string,
    actor: Actor,
    check: (c: Cluster) => void,
    params: (c: Cluster) => Params,
    change?: (r: Cluster) => void,
  ): Promise<Task> {
    return this.admit(async () => {
      const c = this.ctx.record(name);
      this.assertIdle(name);
      check(c);
      return this.enqueue(kind, c, actor, params(c), (d) => {
        if (!change) return;
        const r = d.clusters.find((x) => x.name === name)!;
        change(r);
        r.updatedAt = now();
      });
    });
  }

  /**
   * Creates the cluster record (`creating`) and queues its create task; resolves once both are on disk.
   * Re-creating a failed or absent record retries it with everything recorded (provider, servers, agents,
   * image, ports, subnet, expiry, import options): a setting not given is the recorded one, config defaults
   * apply only to new records, and the task's log says what the retry reuses. A different provider is
   * refused; other given settings are honoured, as `guard` (every face passes authorize through it) allows.
   */
  create(input: CreateInput, actor: Actor, guard?: RecreateGuard): Promise<Task> {
    return this.admit(async () => {
      const cfg = this.ctx.cfg;
      const existing = this.ctx.cluster(input.name);
      const req = resolveCreateRequest(input, existing, cfg.defaults);
      checkCreateRequest(req);
      this.assertIdle(req.name);
      this.ports.assertApiAddressOnHost();
      if (existing) guard?.(clone(existing), retryChanges(input, req, existing));
      const expiresAt = createExpiry(req, existing, () => (cfg.defaults.ttl ? parseDuration('ttl', cfg.defaults.ttl) : undefined), Date.now());
      const subnet = req.subnet ?? existing?.subnet;
      // A recorded subnet is held to today's rules too (it may predate them); --subnet replaces it.
      if (subnet !== undefined && subnet !== req.subnet) checkSubnet(subnet);
      const others = this.ctx.store.data.clusters.filter((c) => c.name !== req.name);
      checkQuota(others, actor.user, cfg.maxClustersPerUser, !existing);
      const ports = await this.ports.pick(req, existing, others);
      if (subnet) {
        const clash = subnetClash(subnet, others);
        if (clash) throw conflict(`subnet: ${subnet} overlaps cluster "${clash.name}" (${clash.subnet})`, 'subnet');
      }
      const cluster = buildCreateRecord({
        req,
        ...(existing ? { existing } : {}),
        ports,
        ...(expiresAt ? { expiresAt } : {}),
        owner: actor.user,
        kubeconfig: join(this.ctx.kubeDir, `${req.name}.yaml`),
        routes: cfg.routes,
        at: now(),
      });
      return this.enqueue('create', cluster, actor, createParams(cluster, existing, req.removeOnFailure), (d) => {
        const i = d.clusters.findIndex((c) => c.name === cluster.name);
        if (i >= 0) d.clusters[i] = cluster;
        else d.clusters.push(cluster);
      });
    });
  }

  delete(name: string, actor: Actor): Promise<Task> {
    return this.admitTask(
      'delete',
      name,
      actor,
      () => undefined,
      (c) => ({ prevDesired: c.desired, prevActual: c.actual }),
      (r) => {
        r.desired = 'absent';
      },
    );
  }

  /** Starts or stops a cluster that is there and meant to stay. */
  lifecycle(kind: 'start' | 'stop', name: string, actor: Actor): Promise<Task> {
    const check = (c: Cluster) => {
      if (c.actual === 'absent' || c.actual === 'creating' || c.actual === 'deleting' || c.desired === 'absent') {
        throw conflict(`cluster "${name}" is ${c.actual === 'absent' ? 'absent' : c.actual}; it cannot be ${kind === 'start' ? 'started' : 'stopped'}`);
      }
    };
    return this.admitTask(
      kind,
      name,
      actor,
      check,
      (c) => ({ prevDesired: c.desired }),
      (r) => {
        r.desired = kind === 'start' ? 'present' : 'stopped';
      },
    );
  }

  /** Re-runs the route and GitOps steps for a running cluster (finishes what a failed step left). */
  sync(name: string, actor: Actor): Promise<Task> {
    const check = (c: Cluster) => {
      if (c.desired !== 'present') throw conflict(`cluster "${name}" is meant to be ${c.desired}; only a cluster meant to run can be synced`);
    };
    return this.admitTask('sync', name, actor, check, () => ({}));
  }

  importImage(name: string, image: string, actor: Actor): Promise<Task> {
    const check = (c: Cluster) => {
      if (c.actual !== 'running') throw conflict(`cluster "${name}" is ${c.actual}; images can only be imported into a running cluster`);
    };
    return this.admitTask('import-image', name, actor, check, () => ({ image }));
  }

  /** Pushes a cluster's expiry back by `ms` from now (or from its current expiry, if later). */
  async extend(name: string, ms: number, actor: Actor): Promise<void> {
    const c = this.ctx.record(name);
    if (c.desired === 'absent') throw conflict(`cluster "${name}" is being deleted`);
    const from = Math.max(Date.now(), c.expiresAt ? Date.parse(c.expiresAt) : 0);
    await this.ctx.store.update((d) => {
      const r = d.clusters.find((x) => x.name === name)!;
      r.expiresAt = new Date(from + ms).toISOString();
      r.updatedAt = now();
      this.ctx.audit(d, actor, 'extend', name, 'ok');
    });
    this.ctx.emitCluster(name);
  }

  /** Cancels a queued task at once, or stops a running one (its cleanup runs). */
  async cancel(id: string, actor: Actor): Promise<Task> {
    const ctx = this.ctx;
    const t = ctx.store.data.tasks.find((x) => x.id === id);
    if (!t) throw notFound(`task: no task "${sanitizeLine(id).slice(0, 40)}"`);
    if (isTerminal(t.state)) throw conflict(`task ${id} already ended (${t.state})`);
    const running = ctx.running.get(id);
    if (running) {
      running.task.notes.push(`cancel requested by ${actor.user}`);
      running.run.stop('cancel');
      await ctx.store.update((d) => ctx.audit(d, actor, 'cancel', id, 'ok', id));
      return clone(running.task);
    }
    const qi = ctx.queue.indexOf(id);
    if (qi >= 0) ctx.queue.splice(qi, 1);
    await ctx.store.update((d) => {
      ctx.endQueued(d, t, 'cancelled', `cancelled by ${actor.user} before it started`);
      ctx.audit(d, actor, 'cancel', id, 'ok', id);
    });
    ctx.emitTask(t);
    ctx.emitCluster(t.cluster);
    return clone(t);
  }

  /**
   * Writes the task, its audit event and the record change `mutate` together, and queues the task once they
   * are on disk. A failed write undoes all three in memory and refuses the verb ("not done").
   */
  private enqueue(kind: TaskKind, c: Cluster, actor: Actor, params: Params, mutate: (d: StateData) => void): Promise<Task> {
    const ctx = this.ctx;
    const d = ctx.store.data;
    const task: Task = {
      id: `t-${d.nextTaskSeq}`,
      kind,
      cluster: c.name,
      user: actor.user,
      state: 'queued',
      progress: 0,
      steps: [],
      createdAt: now(),
      notes: [],
      params,
      logLines: 0,
    };
    // What the change replaces, to put back if it cannot be recorded. Admission is serialized, and
    // the cluster is now active, so nothing else changes these records until the write has settled.
    const seq = d.nextTaskSeq;
    const prior = d.clusters.find((x) => x.name === c.name);
    const priorRecord = prior ? clone(prior) : undefined;
    let auditEvent: AuditEvent | undefined;
    ctx.active.set(c.name, task.id);
    const done = ctx.store.update((data) => {
      data.nextTaskSeq++;
      mutate(data);
      const r = data.clusters.find((x) => x.name === c.name);
      if (r) r.lastTaskId = task.id;
      data.tasks.push(task);
      ctx.audit(data, actor, kind, c.name, 'ok', task.id);
      auditEvent = data.audit[data.audit.length - 1];
    });
    return done.then(
      () => {
        // Queued only once it is on disk: a task the caller is told was not done never runs.
        if (ctx.stopping && task.state === 'queued') {
          // Shutdown began while it was being written: it ends like the queued tasks shutdown found.
          ctx.endQueued(ctx.store.data, task, 'interrupted', 'kindler stopped before the task started');
          ctx.store.flushSoon().catch(() => undefined);
        } else ctx.queue.push(task.id);
        ctx.log('info', `task ${task.id} queued: ${kind} ${c.name} by ${actor.user} (${actor.source})`);
        ctx.emitCluster(c.name);
        ctx.emitTask(task);
        setImmediate(() => ctx.pump());
        return clone(task);
      },
      (e: Error) => {
        // Undone synchronously, before the store retries the write: the retry must not carry it.
        const data = ctx.store.data;
        const ti = data.tasks.indexOf(task);
        if (ti >= 0) data.tasks.splice(ti, 1);
        if (data.nextTaskSeq === seq + 1) data.nextTaskSeq = seq;
        const ci = data.clusters.findIndex((x) => x.name === c.name);
        if (priorRecord) {
          if (ci >= 0) data.clusters[ci] = priorRecord;
          else data.clusters.push(priorRecord);
        } else if (ci >= 0) data.clusters.splice(ci, 1);
        const ai = auditEvent ? data.audit.lastIndexOf(auditEvent) : -1;
        if (ai >= 0) data.audit.splice(ai, 1);
        if (ctx.active.get(c.name) === task.id) ctx.active.delete(c.name);
        const why = e instanceof StateWriteError ? e.reason : e.message;
        ctx.log('error', `${kind} ${c.name} by ${actor.user} (${actor.source}): not done: ${why}`);
        throw failed(`${kind} ${c.name}: not done: ${why}`);
      },
    );
  }
}
