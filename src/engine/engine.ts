/**
 * The task engine: the only code that changes state. It admits requests (validation, ports, the
 * per-cluster lock), queues tasks under a global concurrency limit, runs the scripts, records every
 * outcome truthfully, and publishes a snapshot-and-events feed for every face.
 *
 * `Engine` is the facade every caller uses; its parts (admission, ports, imports, execution, recovery,
 * reads, audit) share one EngineContext (context.ts). docs/ARCHITECTURE.md lists what each part owns.
 *
 * The rules that need no I/O are in core: what a run's end does to its task and cluster record
 * (core/taskrules.ts) and how a create's record is built and checked (core/createrules.ts).
 */
import { resolve } from 'node:path';
import { OWNER_ENV, setChildOwner, setPassEnv } from '../core/childenv.js';
import type { Config } from '../core/config.js';
import { failed, usageError } from '../core/errors.js';
import type { Listener, SessionInfo, Snapshot } from '../core/feed.js';
import type { CreateInput } from '../core/spec.js';
import { sanitizeLine } from '../core/text.js';
import { type AuditEvent, type Cluster, type StoreHealth, type Task } from '../core/types.js';
import { doctor, type ToolReport } from '../provision/doctor.js';
import { routesStatus } from '../provision/routes.js';
import type { StatusResult } from '../provision/scripts.js';
import { acquireLock, type Lock } from '../store/lock.js';
import { StateWriteError, Store } from '../store/state.js';
import { mkdirSync } from 'node:fs';
import { Admission, type RecreateGuard } from './admission.js';
import { Audit } from './audit.js';
import { EngineContext, type Actor, type EngineOptions, type Running } from './context.js';
import { Execution } from './execution.js';
import type { Feed } from './feed.js';
import { Imports, type ImportRow } from './imports.js';
import type { LogCursor, LogTail } from './logs.js';
import { Ports } from './ports.js';
import { Reads } from './reads.js';
import { Recovery } from './recovery.js';
import { defaultPostSteps } from './steps.js';

export type { Actor, EngineOptions, LogFn } from './context.js';
export type { RecreateGuard } from './admission.js';
export type { ImportRow } from './imports.js';

/** The variable every process the engine starts carries (see core/childenv.ts and Recovery.stopOrphans). */
export { OWNER_ENV } from '../core/childenv.js';

/** How long shutdown keeps retrying a failing state write before it gives up (and says so). */
const SAVE_AT_SHUTDOWN_MS = 5000;

export class Engine {
  readonly feed: Feed;
  readonly logDir: string;
  readonly kubeDir: string;
  private readonly ctx: EngineContext;
  private readonly reads: Reads;
  private readonly admission: Admission;
  private readonly imports: Imports;
  private readonly recovery: Recovery;
  private readonly auditLog: Audit;

  private constructor(
    readonly cfg: Config,
    readonly store: Store,
    private readonly lock: Lock,
    opts: EngineOptions,
  ) {
    const ctx = (this.ctx = new EngineContext(cfg, store, opts));
    this.feed = ctx.feed;
    this.logDir = ctx.logDir;
    this.kubeDir = ctx.kubeDir;
    const ports = new Ports(ctx);
    const execution = new Execution(ctx);
    this.recovery = new Recovery(ctx);
    ctx.pump = () => execution.pump();
    ctx.recheck = (name, interruptedCreate) => this.recovery.recheck(name, interruptedCreate);
    this.reads = new Reads(ctx);
    this.admission = new Admission(ctx, ports);
    this.imports = new Imports(ctx, this.admission, ports, this.recovery);
    this.auditLog = new Audit(ctx);
  }

  /** The running tasks: the parts' own map (a test counts its reads). */
  private get running(): Map<string, Running> {
    return this.ctx.running;
  }

  /** Torn or damaged journal lines ignored at start (for doctor). */
  journalProblems(): string[] {
    return [...this.store.journalProblems];
  }

  /** Whether state reaches the disk (for doctor and the TUI header). */
  storageHealth(): StoreHealth {
    return this.store.health();
  }

  /** Takes the single-writer lock, loads and validates state, and recovers from a previous crash. */
  static async start(cfg: Config, opts: EngineOptions): Promise<Engine> {
    mkdirSync(cfg.dataDir, { recursive: true, mode: 0o750 });
    const lock = acquireLock(cfg.dataDir, opts.role);
    let store: Store;
    try {
      // Every write first checks that this process still holds the lock (a deleted or replaced lock
      // file would otherwise let a second process write next to this one).
      store = await Store.open(cfg.dataDir, { guard: () => lock.verify() });
    } catch (e) {
      lock.release();
      throw e;
    }
    setPassEnv(cfg.passEnv);
    // Every child (scripts, hooks, haproxy, doctor probes, kubectl, git) carries the owner mark, so
    // recover() finds what a crashed daemon left running. One engine per daemon process: the mark is
    // process-wide.
    setChildOwner(resolve(cfg.dataDir));
    const scriptEnv = { ...opts.scriptEnv, [OWNER_ENV]: resolve(cfg.dataDir) };
    try {
      const engine = new Engine(cfg, store, lock, { ...opts, scriptEnv, postSteps: opts.postSteps ?? defaultPostSteps(cfg, scriptEnv) });
      for (const p of store.journalProblems) engine.ctx.log('warn', `${p} (a write that was cut short; what it carried is taken from state.json)`);
      await engine.recovery.recover();
      return engine;
    } catch (e) {
      store.close();
      lock.release();
      throw e;
    }
  }

  // ---- reading (see reads.ts) ------------------------------------------------------------------

  snapshot(): Snapshot {
    return this.reads.snapshot();
  }

  /** Registers an interactive session for presence; returns the function that ends it. */
  joinSession(info: Omit<SessionInfo, 'id' | 'since'>): () => void {
    return this.reads.joinSession(info);
  }

  /** Snapshot, then every later event, in order. Returns the unsubscribe function. */
  subscribe(listener: Listener): { snapshot: Snapshot; unsubscribe: () => void } {
    return this.reads.subscribe(listener);
  }

  listClusters(): Cluster[] {
    return this.reads.listClusters();
  }

  getCluster(name: string): Cluster | undefined {
    return this.reads.getCluster(name);
  }

  getTask(id: string): Task | undefined {
    return this.reads.getTask(id);
  }

  /** Newest first. */
  listTasks(f: { cluster?: string; active?: boolean; limit?: number } = {}): Task[] {
    return this.reads.listTasks(f);
  }

  /** Routes as state renders them, and whether the live HAProxy file matches. */
  routesStatus(): ReturnType<typeof routesStatus> {
    return routesStatus(this.listClusters(), this.cfg.routes);
  }

  /** The host tools' report (docker, k3d, kind, kubectl, git, haproxy), with the scripts' environment. */
  doctor(): Promise<ToolReport[]> {
    return doctor(this.ctx.opts.scriptEnv);
  }

  /** The last task that acted on a cluster (kept even after the cluster is deleted). */
  latestTaskFor(name: string): Task | undefined {
    return this.listTasks({ cluster: name, limit: 1 })[0];
  }

  /** Lines in memory for a live task (and how many earlier ones are only on disk). */
  liveLog(id: string): { lines: string[]; dropped: number } | undefined {
    return this.reads.liveLog(id);
  }

  /** The complete log of a task, from disk. */
  readLog(id: string): Promise<string[]> {
    return this.reads.readLog(id);
  }

  /** A reader of a task's log file from byte `offset` on (see `flushLog` before reading a live one). */
  logCursor(id: string, offset = 0): LogCursor {
    return this.reads.logCursor(id, offset);
  }

  /** Resolves once every line the task has logged so far is in its log file. */
  flushLog(id: string): Promise<void> {
    return this.reads.flushLog(id);
  }

  /** A task's last `n` log lines and the index of the first of them, read without loading the whole log. */
  readLogTail(id: string, n: number): Promise<LogTail> {
    return this.reads.readLogTail(id, n);
  }

  /** Resolves with the task once it is terminal. */
  waitForTask(id: string): Promise<Task> {
    return this.reads.waitForTask(id);
  }

  /** True when nothing is queued, running or being re-checked. */
  get busy(): boolean {
    return this.ctx.queue.length > 0 || this.running.size > 0 || this.ctx.rechecks.size > 0;
  }

  /** Resolves when the engine is no longer busy. */
  async idle(): Promise<void> {
    while (this.busy) {
      // Each task's end, not its script's: recording the end (post steps, the state write) takes time too.
      await Promise.all([...this.running.values()].map((r) => r.ended));
      await Promise.all([...this.ctx.rechecks]);
      await new Promise((r) => setImmediate(r));
    }
    try {
      await this.store.flush();
    } catch (e) {
      // Not saved: logged and retried by the store, and said again by shutdown if it stays so.
      if (!(e instanceof StateWriteError)) throw e;
    }
  }

  /** The environment scripts run with (for jobs that run scripts of their own). */
  get scriptEnv(): Record<string, string> | undefined {
    return this.ctx.opts.scriptEnv;
  }

  /** Remote GitOps branch heads, when GitOps is on (through the git step's own clone and queue). */
  branchStatus(names: string[]): Promise<Map<string, string | null>> | null {
    const step = this.ctx.opts.postSteps?.find((p) => p.branchStatus);
    return step?.branchStatus ? step.branchStatus(names) : null;
  }

  /** Names of clusters with a queued or running task. */
  activeClusters(): Set<string> {
    return new Set(this.ctx.active.keys());
  }

  /** Audit events, oldest first, filtered. */
  listAudit(f: { user?: string; sinceMs?: number; limit?: number } = {}): AuditEvent[] {
    return this.auditLog.list(f);
  }

  // ---- admitting work (see admission.ts, imports.ts) -------------------------------------------

  /**
   * Creates the cluster record (`creating`) and queues its create task; resolves once both are on disk.
   * Re-creating a failed or absent record retries it with everything recorded (provider, servers, agents,
   * image, ports, subnet, expiry, import options): a setting not given is the recorded one, config defaults
   * apply only to new records, and the task's log says what the retry reuses. A different provider is
   * refused; other given settings are honoured, as `guard` (every face passes authorize through it) allows.
   */
  create(input: CreateInput, actor: Actor, guard?: RecreateGuard): Promise<Task> {
    return this.admission.create(input, actor, guard);
  }

  delete(name: string, actor: Actor): Promise<Task> {
    return this.admission.delete(name, actor);
  }

  startCluster(name: string, actor: Actor): Promise<Task> {
    return this.admission.lifecycle('start', name, actor);
  }

  stopCluster(name: string, actor: Actor): Promise<Task> {
    return this.admission.lifecycle('stop', name, actor);
  }

  /** Re-runs the route and GitOps steps for a running cluster (finishes what a failed step left). */
  sync(name: string, actor: Actor): Promise<Task> {
    return this.admission.sync(name, actor);
  }

  importImage(name: string, image: string, actor: Actor): Promise<Task> {
    return this.admission.importImage(name, image, actor);
  }

  /** Pushes a cluster's expiry back by `ms` from now (or from its current expiry, if later). */
  async extend(name: string, ms: number, actor: Actor): Promise<Cluster> {
    await this.admission.extend(name, ms, actor);
    return this.getCluster(name)!;
  }

  /** Cancels a queued task at once, or stops a running one (its cleanup runs). */
  cancel(id: string, actor: Actor): Promise<Task> {
    return this.admission.cancel(id, actor);
  }

  /**
   * Records a cluster the provider has but kindler does not (an "unmanaged" one): desired as it runs, owner
   * `actor`. Its ports, node counts and image are read from docker (`cluster.sh adopt`: the port bindings of
   * the k3d serverlb or server-0, of the kind control plane or external load balancer) and its kubeconfig is
   * written to kindler's own file (mode 0600; never ~/.kube/config). A cluster whose ports cannot be read, or
   * clash with another record's or break the port rules, is refused with the reason, and nothing is kept.
   */
  adopt(name: string, provider: Cluster['provider'], actor: Actor): Promise<Cluster> {
    return this.imports.adopt(name, provider, actor);
  }

  /**
   * Imports the older tool's CSV once, on request: each row becomes a record, or is refused with the reason.
   * A file of more than `importCsvMaxRows` rows is refused whole. The import yields to the event loop as it
   * goes, and the imported records are re-checked with the provider at most `concurrency` at a time.
   */
  importCsv(text: string, actor: Actor): Promise<ImportRow[]> {
    return this.imports.importCsv(text, actor);
  }

  // ---- audit (see audit.ts) ----------------------------------------------------------------------

  /**
   * Appends an audit event for an action that is not a task (users, imports, refusals). Refusals are rate
   * limited per user (see audit.ts), so a flood of refused requests cannot grow the state file.
   */
  recordAudit(actor: Actor, action: string, target: string, result: AuditEvent['result'], detail?: string): void {
    this.auditLog.record(actor, action, target, result, detail);
  }

  /** Summarizes the refusals counted so far at once instead of at the end of their minute (shutdown, tests). */
  flushRefusals(): void {
    this.auditLog.flushRefusals();
  }

  /** Prunes audit events older than `maxAgeMs` (0: none by age) and the oldest beyond `maxEvents` (0: no count limit). */
  pruneAudit(maxAgeMs: number, maxEvents: number): Promise<number> {
    return this.auditLog.prune(maxAgeMs, maxEvents);
  }

  /** Removes finished tasks (never an active one) and their log files. */
  pruneTasks(ids: string[]): Promise<number> {
    return this.auditLog.pruneTasks(ids);
  }

  // ---- checking with the provider (see recovery.ts) --------------------------------------------

  /** Asks the provider (through cluster.sh status) what it has for one cluster. */
  probe(name: string, provider: string): Promise<StatusResult> {
    return this.recovery.probe(name, provider);
  }

  /** Re-checks one cluster's actual state with the provider now; resolves when recorded. */
  async refresh(name: string): Promise<Cluster | undefined> {
    if (this.ctx.active.has(name)) return this.getCluster(name);
    void this.recovery.recheck(name, null);
    await Promise.all([...this.ctx.rechecks]);
    return this.getCluster(name);
  }

  // ---- stopping --------------------------------------------------------------------------------

  /** Refuses new work, ends queued tasks, stops running scripts (their cleanup runs), saves, unlocks. */
  async shutdown(): Promise<void> {
    const ctx = this.ctx;
    if (ctx.stopping) return;
    ctx.stopping = true;
    const queued = ctx.queue.splice(0);
    if (queued.length) {
      await ctx.save('shutdown: queued tasks ended', (d) => {
        for (const id of queued) {
          const t = d.tasks.find((x) => x.id === id);
          if (t && t.state === 'queued') ctx.endQueued(d, t, 'interrupted', 'kindler stopped before the task started');
        }
      });
    }
    this.auditLog.flushRefusals();
    for (const s of this.running.values()) s.run.stop('shutdown');
    // `finish` always takes a task out of `running`, whether or not its end could be written.
    await Promise.all([...this.running.values()].map((s) => s.ended));
    await Promise.all([...ctx.rechecks]);
    for (const l of ctx.logs.values()) await l.close();
    let lost: StateWriteError | null = null;
    try {
      await this.store.flushWithin(SAVE_AT_SHUTDOWN_MS);
    } catch (e) {
      if (!(e instanceof StateWriteError)) throw e;
      lost = e;
      ctx.log(
        'error',
        `state could not be saved at shutdown: ${e.reason}; the changes since the last successful write are lost (the next start recovers from the state file as it is)`,
      );
    } finally {
      this.store.close();
      this.lock.release();
    }
    if (lost) throw failed(`state could not be saved at shutdown: ${lost.reason}`);
  }

  /** A usage error for a task id that does not look like one. */
  static checkTaskId(id: string): void {
    if (!/^t-[0-9]{1,9}$/.test(id)) throw usageError(`task: must be a task id like t-12 (got "${sanitizeLine(id).slice(0, 40)}")`, 'task');
  }
}
