/**
 * What the engine's parts share: the config, the store, the feed, the queue and the running tasks, the
 * per-cluster lock (`active`), the task logs, and the few ways every part records and announces a change
 * (save, emit, audit, a queued task's end). One instance per engine; the parts hold it, never copy from it.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../core/config.js';
import { notFound } from '../core/errors.js';
import { endQueuedTask } from '../core/taskrules.js';
import { sanitizeLine } from '../core/text.js';
import type { AuditEvent, Cluster, StoreHealth, Task, TaskState } from '../core/types.js';
import { StateWriteError, type StateData, type Store } from '../store/state.js';
import { Feed } from './feed.js';
import { TaskLog } from './logs.js';
import type { PostStep } from './poststeps.js';
import type { Run } from '../os/runner.js';

/** Who acts, and through which face. */
export interface Actor {
  user: string;
  source: string;
  /** The SSH key that authenticated the user, when there was one. */
  fingerprint?: string;
}

export type LogFn = (level: 'info' | 'warn' | 'error', msg: string) => void;

export interface EngineOptions {
  /** Shown to a second process that finds the lock taken. */
  role: string;
  log?: LogFn;
  /** Extra environment for scripts (tests point PATH at fakes through the daemon's own env). */
  scriptEnv?: Record<string, string>;
  /** Routes, GitOps branch and hooks, run after a task's script succeeded. */
  postSteps?: PostStep[];
}

/** A task whose script is running (or whose end is being recorded). */
export interface Running {
  task: Task;
  run: Run;
  log: TaskLog;
  stderrTail: string[];
  errorText?: string;
  result?: Record<string, unknown>;
  cleanup?: 'begin' | 'done' | 'failed';
  reachedCreate: boolean;
  /** The post steps that apply to this task. */
  post: PostStep[];
  /** Why kindler stopped the task itself (its log cannot be written): it fails with this reason. */
  abort?: string;
  /** Settles once `finish` is done and the task has left `running` (whether or not its end was saved). */
  ended: Promise<void>;
}

const KEEP_FINISHED_LOGS = 64;

export const now = () => new Date().toISOString();
export const clone = <T>(v: T): T => structuredClone(v);

export class EngineContext {
  readonly feed = new Feed();
  readonly logDir: string;
  readonly kubeDir: string;
  /** Queued task ids, in order. */
  readonly queue: string[] = [];
  readonly running = new Map<string, Running>();
  /** Cluster name -> its queued or running task id. */
  readonly active = new Map<string, string>();
  readonly logs = new Map<string, TaskLog>();
  /** Re-checks in flight (idle() and shutdown wait for them). */
  readonly rechecks = new Set<Promise<void>>();
  /** Set once shutdown began: no new task is admitted or started. */
  stopping = false;
  readonly log: LogFn;
  /** Starts queued tasks while slots are free (set by the engine to the execution part's). */
  pump: () => void = () => undefined;
  /** Re-checks a cluster with the provider in the background (set by the engine to the recovery part's). */
  recheck: (name: string, interruptedCreate: Task | null) => Promise<void> = () => Promise.resolve();

  constructor(
    readonly cfg: Config,
    readonly store: Store,
    readonly opts: EngineOptions,
  ) {
    this.logDir = join(cfg.dataDir, 'logs');
    this.kubeDir = join(cfg.dataDir, 'kubeconfig');
    mkdirSync(this.logDir, { recursive: true, mode: 0o750 });
    mkdirSync(this.kubeDir, { recursive: true, mode: 0o700 });
    this.log = opts.log ?? (() => undefined);
    store.onHealth = (h, before) => this.onStoreHealth(h, before);
  }

  /** Saving stopped, changed its reason, or resumed: the daemon log says so, and every face is told. */
  private onStoreHealth(h: StoreHealth, before: StoreHealth): void {
    if (!h.saving) {
      // A lost lock's message already says to restart: no retry can help there.
      const next = h.lockLost ? '' : '; retrying with backoff';
      this.log('error', `state is not being saved: ${h.problem}${next}; reads go on, changes are kept in memory`);
    } else if (!before.saving) {
      this.log('warn', `state is saved again (${before.failures ?? 0} failed write${before.failures === 1 ? '' : 's'} since ${before.since})`);
    }
    this.feed.emit({ type: 'storage', storage: h });
  }

  /**
   * Applies a change that must be recorded whatever happens (a task's end, what a re-check found): when
   * the write fails it stays in memory and the store retries it. True once on disk; false, logged, when not yet.
   */
  async save(what: string, fn: (d: StateData) => void): Promise<boolean> {
    try {
      await this.store.update(fn);
      return true;
    } catch (e) {
      if (!(e instanceof StateWriteError)) throw e;
      this.log('error', `${what}: not saved yet: ${e.reason}; kept in memory and saved once a write succeeds`);
      return false;
    }
  }

  /** The live record of a cluster (not a copy), if there is one. */
  cluster(name: string): Cluster | undefined {
    return this.store.data.clusters.find((x) => x.name === name);
  }

  /** The live record of a cluster, or the not-found error every verb gives. */
  record(name: string): Cluster {
    const c = this.cluster(name);
    if (!c) throw notFound(`cluster: no cluster named "${sanitizeLine(name).slice(0, 80)}"`);
    return c;
  }

  emitTask(t: Task): void {
    this.feed.emit({ type: 'task', task: clone(t) });
  }

  emitCluster(name: string): void {
    const c = this.cluster(name);
    if (c) this.feed.emit({ type: 'cluster', cluster: clone(c) });
    else this.feed.emit({ type: 'cluster-removed', name });
  }

  /** Saves a running task's progress; a failed write is logged (once) by the store and retried by it. */
  persist(t: Task): void {
    this.store.flushSoon().catch(() => undefined);
    this.emitTask(t);
  }

  /** Ends a task that never started, and puts its cluster back the way it was (see endQueuedTask). */
  endQueued(d: StateData, t: Task, state: TaskState, reason: string): void {
    this.active.delete(t.cluster);
    const c = d.clusters.find((x) => x.name === t.cluster);
    if (endQueuedTask(t, c, state, reason, now()).remove) d.clusters.splice(d.clusters.indexOf(c!), 1);
  }

  audit(d: StateData, actor: Actor, action: string, target: string, result: AuditEvent['result'], taskId?: string): void {
    this.pushAudit(d, {
      at: now(),
      user: actor.user,
      ...(actor.fingerprint ? { fingerprint: actor.fingerprint } : {}),
      source: actor.source,
      action,
      target,
      result,
      ...(taskId ? { taskId } : {}),
    });
  }

  /** Appends one event, dropping the oldest beyond `auditMaxEvents`: the log never outgrows its bound. */
  pushAudit(d: StateData, ev: AuditEvent): void {
    d.audit.push(ev);
    const max = this.cfg.auditMaxEvents;
    if (max > 0 && d.audit.length > max) d.audit.splice(0, d.audit.length - max);
  }

  /** Opens a task's log: its lines feed `log` events and count into the task; a log that fails stops the task. */
  openLog(t: Task): TaskLog {
    const log = new TaskLog(
      this.logDir,
      t.id,
      this.cfg.logRingLines,
      (lines, from, skipped) => {
        t.logLines = from + lines.length;
        this.feed.emit(skipped > 0 ? { type: 'log', taskId: t.id, from, lines, skipped } : { type: 'log', taskId: t.id, from, lines });
      },
      (reason) => {
        // A task whose log cannot be written is stopped (its script's cleanup runs) and fails with the reason.
        this.log('error', `task ${t.id}: ${reason}`);
        const s = this.running.get(t.id);
        if (s && !s.abort) {
          s.abort = reason;
          s.run.stop('failed');
        }
      },
    );
    this.logs.set(t.id, log);
    if (this.logs.size > KEEP_FINISHED_LOGS + this.cfg.concurrency) {
      for (const [id, l] of this.logs) {
        if (this.logs.size <= KEEP_FINISHED_LOGS) break;
        if (!this.running.has(id) && id !== t.id) {
          void l.close();
          this.logs.delete(id);
        }
      }
    }
    return log;
  }
}
