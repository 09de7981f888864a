/**
 * The task engine: the only code that changes state. It admits requests (validation, ports, the
 * per-cluster lock), queues tasks under a global concurrency limit, runs the scripts, records every
 * outcome truthfully, and publishes a snapshot-and-events feed for every face.
 */
import { Serial } from '../core/serial.js';
import { mkdirSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { OWNER_ENV, setChildOwner, setPassEnv } from '../core/childenv.js';
import type { Config } from '../core/config.js';
import { conflict, failed, notFound, usageError } from '../core/errors.js';
import { parseMarker, progressAt } from '../core/markers.js';
import { kubeContextFor } from '../core/names.js';
import { allocatePort, PORT_MAX, type PortKind } from '../core/ports.js';
import { assertClusterPort, checkCreateRequest, checkSubnet, flagOf, MIN_CLUSTER_PORT, parseSubnet, subnetsOverlap, type CreateInput, type CreateRequest } from '../core/spec.js';
import { parseDuration } from '../core/duration.js';
import { cleanLine, sanitizeLine } from '../core/text.js';
import { pickErrorLine } from '../core/errorline.js';
import { isTerminal, registerOf, wantsRoute, type AuditEvent, type Cluster, type ClusterOptions, type StoreHealth, type Task, type TaskKind, type TaskState } from '../core/types.js';
import { countCsvRows, parseEnvironmentsCsv } from '../core/csv.js';
import { dockerPublishers, hostIPv4Addresses, hostPortBusy } from '../provision/hostports.js';
import { doctor, type ToolReport } from '../provision/doctor.js';
import { routesStatus } from '../provision/routes.js';
import { adoptCall, parseStatus, scriptFor, statusCall, type StatusResult } from '../provision/scripts.js';
import { acquireLock, type Lock } from '../store/lock.js';
import { ownProcessGroup, processesWithEnv, processRunning, processStart } from '../os/process.js';
import { StateWriteError, Store, type StateData } from '../store/state.js';
import type { Listener, SessionInfo, Snapshot } from '../core/feed.js';
import { Feed } from './feed.js';
import { LogCursor, readLogFile, readLogTail, TaskLog, type LogTail } from './logs.js';
import { queryScript, runScript, signalGroup, type Run, type RunResult } from './runner.js';
import type { PostStep } from './poststeps.js';
import { defaultPostSteps } from './steps.js';
import { RefusalLimiter } from './refusals.js';

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

interface Running {
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

export interface ImportRow { line: number; name: string; result: 'imported' | 'refused'; reason?: string }

/**
 * Decides whether the actor may re-create an existing record (see authorize's 'recreate'): called under
 * the admission lock with the record and the recorded settings the request would change; throws to refuse.
 */
export type RecreateGuard = (existing: Cluster, changes: string[]) => void;

/** A port's column in the older tool's CSV (import-csv names it in refusals); the API port has none: its flag. */
const csvField = (k: PortKind): string => (k === 'httpPort' ? 'http_port' : k === 'httpsPort' ? 'https_port' : flagOf(k));

/** Work an import does between two yields to the event loop, so other requests are served meanwhile. */
const IMPORT_SLICE_MS = 10;

/**
 * Every process the engine starts (scripts, status checks, cleanups, hooks) carries this variable, set to
 * the absolute data directory. After a crash the next holder of the lock finds what the dead one left
 * running by it, even a process whose pid never reached the state file.
 */
export { OWNER_ENV } from '../core/childenv.js';

const STDERR_TAIL = 10;
const KEEP_FINISHED_LOGS = 64;
/** How long shutdown keeps retrying a failing state write before it gives up (and says so). */
const SAVE_AT_SHUTDOWN_MS = 5000;

const now = () => new Date().toISOString();
const clone = <T>(v: T): T => structuredClone(v);

export class Engine {
  readonly feed = new Feed();
  readonly logDir: string;
  readonly kubeDir: string;
  private readonly queue: string[] = [];
  private readonly running = new Map<string, Running>();
  /** Cluster name -> its queued or running task id. */
  private readonly active = new Map<string, string>();
  private readonly logs = new Map<string, TaskLog>();
  /** Admission is serialized: one verb's checks and record change at a time. */
  private readonly admitting = new Serial();
  private stopping = false;
  private rechecks = new Set<Promise<void>>();
  private readonly log: LogFn;

  private constructor(readonly cfg: Config, readonly store: Store, private readonly lock: Lock, private readonly opts: EngineOptions) {
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

  /** Torn or damaged journal lines ignored at start (for doctor). */
  journalProblems(): string[] {
    return [...this.store.journalProblems];
  }

  /** Whether state reaches the disk (for doctor and the TUI header). */
  storageHealth(): StoreHealth {
    return this.store.health();
  }

  /**
   * Applies a change that must be recorded whatever happens (a task's end, what a re-check found): when
   * the write fails it stays in memory and the store retries it. True once on disk; false, logged, when not yet.
   */
  private async save(what: string, fn: (d: StateData) => void): Promise<boolean> {
    try {
      await this.store.update(fn);
      return true;
    } catch (e) {
      if (!(e instanceof StateWriteError)) throw e;
      this.log('error', `${what}: not saved yet: ${e.reason}; kept in memory and saved once a write succeeds`);
      return false;
    }
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
      for (const p of store.journalProblems) engine.log('warn', `${p} (a write that was cut short; what it carried is taken from state.json)`);
      await engine.recover();
      return engine;
    } catch (e) {
      store.close();
      lock.release();
      throw e;
    }
  }

  // ---- reading -------------------------------------------------------------------------------

  snapshot(): Snapshot {
    return {
      seq: this.feed.lastSeq,
      clusters: this.listClusters(),
      tasks: this.listTasks({ limit: this.cfg.taskListLimit }),
      sessions: [...this.sessions.values()].map(clone),
      storage: this.store.health(),
    };
  }

  private readonly sessions = new Map<string, SessionInfo>();
  private sessionSeq = 0;

  /** Registers an interactive session for presence; returns the function that ends it. */
  joinSession(info: Omit<SessionInfo, 'id' | 'since'>): () => void {
    const id = `s-${++this.sessionSeq}`;
    this.sessions.set(id, { ...info, id, since: now() });
    const emit = () => this.feed.emit({ type: 'presence', sessions: [...this.sessions.values()].map(clone) });
    emit();
    return () => {
      if (this.sessions.delete(id)) emit();
    };
  }

  /** Snapshot, then every later event, in order. Returns the unsubscribe function. */
  subscribe(listener: Listener): { snapshot: Snapshot; unsubscribe: () => void } {
    const snapshot = this.snapshot();
    const unsubscribe = this.feed.subscribe(listener);
    return { snapshot, unsubscribe };
  }

  listClusters(): Cluster[] {
    return this.store.data.clusters.map(clone).sort((a, b) => a.name.localeCompare(b.name));
  }

  getCluster(name: string): Cluster | undefined {
    const c = this.store.data.clusters.find((x) => x.name === name);
    return c && clone(c);
  }

  getTask(id: string): Task | undefined {
    const t = this.store.data.tasks.find((x) => x.id === id);
    return t && clone(t);
  }

  /** Newest first. */
  listTasks(f: { cluster?: string; active?: boolean; limit?: number } = {}): Task[] {
    const out: Task[] = [];
    const all = this.store.data.tasks;
    for (let i = all.length - 1; i >= 0 && (f.limit === undefined || out.length < f.limit); i--) {
      const t = all[i]!;
      if (f.cluster && t.cluster !== f.cluster) continue;
      if (f.active && isTerminal(t.state)) continue;
      out.push(clone(t));
    }
    return out;
  }

  /** Routes as state renders them, and whether the live HAProxy file matches. */
  routesStatus(): ReturnType<typeof routesStatus> {
    return routesStatus(this.listClusters(), this.cfg.routes);
  }

  /** The host tools' report (docker, k3d, kind, kubectl, git, haproxy), with the scripts' environment. */
  doctor(): Promise<ToolReport[]> {
    return doctor(this.opts.scriptEnv);
  }

  /** The last task that acted on a cluster (kept even after the cluster is deleted). */
  latestTaskFor(name: string): Task | undefined {
    return this.listTasks({ cluster: name, limit: 1 })[0];
  }

  /** Lines in memory for a live task (and how many earlier ones are only on disk). */
  liveLog(id: string): { lines: string[]; dropped: number } | undefined {
    return this.logs.get(id)?.tail();
  }

  /** The complete log of a task, from disk. */
  async readLog(id: string): Promise<string[]> {
    if (!this.store.data.tasks.some((t) => t.id === id)) throw notFound(`task: no task "${id}"`);
    await this.logs.get(id)?.drain();
    return readLogFile(this.logDir, id);
  }

  /** A reader of a task's log file from byte `offset` on (see `flushLog` before reading a live one). */
  logCursor(id: string, offset = 0): LogCursor {
    if (!this.store.data.tasks.some((t) => t.id === id)) throw notFound(`task: no task "${id}"`);
    return new LogCursor(join(this.logDir, `${id}.log`), offset);
  }

  /** Resolves once every line the task has logged so far is in its log file. */
  async flushLog(id: string): Promise<void> {
    await this.logs.get(id)?.drain();
  }

  /** A task's last `n` log lines and the index of the first of them, read without loading the whole log. */
  async readLogTail(id: string, n: number): Promise<LogTail> {
    if (!this.store.data.tasks.some((t) => t.id === id)) throw notFound(`task: no task "${id}"`);
    await this.logs.get(id)?.drain();
    return readLogTail(this.logDir, id, n);
  }

  /** Resolves with the task once it is terminal. */
  waitForTask(id: string): Promise<Task> {
    return new Promise((resolve, reject) => {
      const t = this.getTask(id);
      if (!t) return reject(notFound(`task: no task "${id}"`));
      if (isTerminal(t.state)) return resolve(t);
      const off = this.feed.subscribe((e) => {
        if (e.type === 'task' && e.task.id === id && isTerminal(e.task.state)) {
          off();
          resolve(e.task);
        }
      });
    });
  }

  /** True when nothing is queued, running or being re-checked. */
  get busy(): boolean {
    return this.queue.length > 0 || this.running.size > 0 || this.rechecks.size > 0;
  }

  /** Resolves when the engine is no longer busy. */
  async idle(): Promise<void> {
    while (this.busy) {
      // Each task's end, not its script's: recording the end (post steps, the state write) takes time too.
      await Promise.all([...this.running.values()].map((r) => r.ended));
      await Promise.all([...this.rechecks]);
      await new Promise((r) => setImmediate(r));
    }
    try {
      await this.store.flush();
    } catch (e) {
      // Not saved: logged and retried by the store, and said again by shutdown if it stays so.
      if (!(e instanceof StateWriteError)) throw e;
    }
  }

  // ---- admitting work ------------------------------------------------------------------------

  /** Serialises admission so port allocation and the per-cluster lock hold under concurrency. */
  private admit<T>(fn: () => Promise<T>): Promise<T> {
    return this.admitting.run(fn);
  }

  private refuseWhenStopping(): void {
    if (this.stopping) throw failed('kindler is shutting down and accepts no new tasks');
  }

  private assertIdle(name: string): void {
    const id = this.active.get(name);
    if (!id) return;
    const t = this.store.data.tasks.find((x) => x.id === id);
    throw conflict(`cluster "${name}" already has ${t?.kind ?? 'a'} task ${id} ${t?.state ?? 'active'}; wait for it or cancel it (kindler cancel ${id})`, 'name');
  }

  private record(name: string): Cluster {
    const c = this.store.data.clusters.find((x) => x.name === name);
    if (!c) throw notFound(`cluster: no cluster named "${sanitizeLine(name).slice(0, 80)}"`);
    return c;
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
      this.refuseWhenStopping();
      const existing = this.store.data.clusters.find((c) => c.name === input.name);
      const d = this.cfg.defaults;
      const req: CreateRequest = {
        ...input,
        provider: input.provider ?? existing?.provider ?? d.provider,
        servers: input.servers ?? existing?.servers ?? d.servers,
        agents: input.agents ?? existing?.agents ?? d.agents,
      };
      checkCreateRequest(req);
      this.assertIdle(req.name);
      this.assertApiAddressOnHost();
      let expiresAt: string | undefined;
      if (existing) {
        if (existing.actual !== 'failed' && existing.actual !== 'absent') {
          throw conflict(`name: cluster "${req.name}" already exists (${existing.actual})`, 'name');
        }
        if (existing.provider !== req.provider) {
          throw conflict(`provider: cluster "${req.name}" is recorded as ${existing.provider}; a retry keeps its provider (omit --provider, or delete it first to change provider)`, 'provider');
        }
        const changes: string[] = [];
        if (input.servers !== undefined && input.servers !== existing.servers) changes.push('servers');
        if (input.agents !== undefined && input.agents !== existing.agents) changes.push('agents');
        if (req.image !== undefined && req.image !== existing.image) changes.push('image');
        for (const k of ['httpPort', 'httpsPort', 'apiPort'] as const) if (req[k] !== undefined && req[k] !== existing[k]) changes.push(flagOf(k));
        if (req.subnet !== undefined && req.subnet !== existing.subnet) changes.push('subnet');
        if (req.ttlMs !== undefined) changes.push('ttl');
        if (req.options?.route !== undefined && req.options.route !== wantsRoute(existing)) changes.push('route');
        if (req.options?.register !== undefined && req.options.register.join(',') !== registerOf(existing).join(',')) changes.push('register');
        guard?.(clone(existing), changes);
        if (req.ttlMs === undefined && existing.expiresAt) {
          if (Date.parse(existing.expiresAt) <= Date.now()) {
            throw conflict(`ttl: cluster "${req.name}" expired at ${existing.expiresAt}; give --ttl to retry it with a new expiry, or delete it`, 'ttl');
          }
          expiresAt = existing.expiresAt;
        }
      } else if (req.ttlMs === undefined && d.ttl) {
        req.ttlMs = parseDuration('ttl', d.ttl);
      }
      if (req.ttlMs !== undefined) expiresAt = new Date(Date.now() + req.ttlMs).toISOString();
      const image = req.image ?? existing?.image;
      const subnet = req.subnet ?? existing?.subnet;
      // A recorded subnet is held to today's rules too (it may predate them); --subnet replaces it.
      if (subnet !== undefined && subnet !== req.subnet) checkSubnet(subnet);
      const others = this.store.data.clusters.filter((c) => c.name !== req.name);
      const max = this.cfg.maxClustersPerUser;
      if (max > 0 && !existing) {
        const owned = others.filter((c) => c.owner === actor.user).length;
        if (owned >= max) throw conflict(`quota: ${actor.user} already has ${owned} cluster${owned === 1 ? '' : 's'} (limit ${max}); delete one first`);
      }
      const ports = await this.pickPorts(req, existing, others);
      if (subnet) {
        const mine = parseSubnet(subnet);
        const clash = others.find((c) => c.subnet && subnetsOverlap(mine, parseSubnet(c.subnet)));
        if (clash) throw conflict(`subnet: ${subnet} overlaps cluster "${clash.name}" (${clash.subnet})`, 'subnet');
      }
      // Per-cluster choices: given now, else recorded (a retry), else the defaults (routed, registered nowhere).
      const options: ClusterOptions = {
        route: req.options?.route ?? (existing ? wantsRoute(existing) : true),
        register: req.options?.register ?? (existing ? registerOf(existing) : []),
      };
      const at = now();
      const cluster: Cluster = {
        name: req.name,
        provider: req.provider,
        servers: req.servers,
        agents: req.agents,
        ...(image ? { image } : {}),
        ...ports,
        ...(subnet ? { subnet } : {}),
        owner: existing?.owner ?? actor.user,
        createdAt: existing?.createdAt ?? at,
        desired: 'present',
        actual: 'creating',
        ...(expiresAt ? { expiresAt } : {}),
        kubeContext: kubeContextFor(req.provider, req.name),
        kubeconfig: join(this.kubeDir, `${req.name}.yaml`),
        ...(this.cfg.routes.enabled && options.route ? { domain: `${req.name}.${this.cfg.routes.baseDomain}` } : {}),
        ...(req.ingressNodePort ? { ingressNodePort: req.ingressNodePort } : existing?.ingressNodePort ? { ingressNodePort: existing.ingressNodePort } : {}),
        options,
        updatedAt: at,
      };
      const params: Record<string, string | number | boolean> = { newRecord: !existing };
      if (req.removeOnFailure) params.removeOnFailure = true;
      if (existing) params.retry = retryLine(cluster, existing);
      return this.enqueue('create', cluster, actor, params, (d) => {
        const i = d.clusters.findIndex((c) => c.name === cluster.name);
        if (i >= 0) d.clusters[i] = cluster;
        else d.clusters.push(cluster);
      });
    });
  }

  /** Host ports kindler itself serves on (the routes frontend), with the config key that sets each. */
  private ownPorts(): Map<number, string> {
    const out = new Map<number, string>();
    const r = this.cfg.routes;
    if (!r.enabled) return out;
    out.set(r.listen.http.port, 'routes.listen.http.port');
    if (r.listen.https) out.set(r.listen.https.port, 'routes.listen.https.port');
    return out;
  }

  /**
   * Honours given ports or refuses them; allocates omitted ones from the configured ranges. `o.field` names a
   * port in messages (default: its flag); `o.givenBusy` decides whether a given port is taken on the host.
   */
  private async pickPorts(
    req: CreateRequest,
    existing: Cluster | undefined,
    others: Cluster[],
    o: { field?: (k: PortKind) => string; givenBusy?: (port: number) => Promise<string | null> } = {},
  ): Promise<Record<PortKind, number>> {
    const field = o.field ?? flagOf;
    const taken = new Map<number, string>();
    for (const c of others) for (const k of ['httpPort', 'httpsPort', 'apiPort'] as const) taken.set(c[k], c.name);
    const own = this.ownPorts();
    const out = {} as Record<PortKind, number>;
    const ranges: Record<PortKind, keyof Config['ports']> = { httpPort: 'http', httpsPort: 'https', apiPort: 'api' };
    // Given ports first, so allocation never hands out one the user asked for.
    for (const k of ['httpPort', 'httpsPort', 'apiPort'] as const) {
      const want = req[k] ?? existing?.[k];
      if (want === undefined) continue;
      // Recorded ports are held to the same rules as given ones (a record may predate a rule).
      assertClusterPort(field(k), want);
      const key = own.get(want);
      if (key) throw usageError(`${field(k)}: ${want} is the routes frontend's own port (${key}); choose another`, field(k));
      const owner = taken.get(want);
      if (owner) throw conflict(`${field(k)}: ${want} is already used by cluster "${owner}"`, field(k));
      if (req[k] !== undefined) {
        const busy = await (o.givenBusy ?? ((p: number) => this.hostBusy(p)))(want);
        if (busy) {
          const holders = await dockerPublishers(want, this.opts.scriptEnv);
          const who = holders.length ? `docker container${holders.length > 1 ? 's' : ''} ${holders.map((h) => `"${h}"`).join(', ')} publish${holders.length > 1 ? '' : 'es'} it` : busy;
          throw conflict(`${field(k)}: ${want} is not available: ${who}`, field(k));
        }
      }
      out[k] = want;
      taken.set(want, req.name);
    }
    for (const k of ['httpPort', 'httpsPort', 'apiPort'] as const) {
      if (out[k] !== undefined) continue;
      const range = this.cfg.ports[ranges[k]];
      const skip = new Set([...taken.keys(), ...own.keys()]);
      for (;;) {
        const p = allocatePort(range, skip);
        if (p === null) throw conflict(`${field(k)}: no free port left in the configured range ${range.from}-${range.to}`, field(k));
        if (!(await this.hostBusy(p))) {
          out[k] = p;
          taken.set(p, req.name);
          break;
        }
        skip.add(p);
      }
    }
    return out;
  }

  /**
   * docker publishes a cluster's API on api.publicAddress, and can only bind an address this host has:
   * one it lacks fails the create half-way (the provider rolls back). Refuse before anything starts.
   */
  private assertApiAddressOnHost(): void {
    const addr = this.cfg.api.publicAddress;
    if (addr === undefined || hostIPv4Addresses().includes(addr)) return;
    throw failed(`api.publicAddress: ${addr} is not an address of this host (it has ${hostIPv4Addresses().join(', ') || 'no IPv4 address'}), so docker cannot publish a cluster's API on it; add the address to an interface or change api.publicAddress`);
  }

  private hostBusy(port: number): Promise<string | null> {
    return this.cfg.checkHostPorts ? hostPortBusy(port) : Promise.resolve(null);
  }

  delete(name: string, actor: Actor): Promise<Task> {
    return this.admit(async () => {
      this.refuseWhenStopping();
      const c = this.record(name);
      this.assertIdle(name);
      const params = { prevDesired: c.desired, prevActual: c.actual };
      return this.enqueue('delete', c, actor, params, (d) => {
        const r = d.clusters.find((x) => x.name === name)!;
        r.desired = 'absent';
        r.updatedAt = now();
      });
    });
  }

  startCluster(name: string, actor: Actor): Promise<Task> {
    return this.lifecycle('start', name, actor);
  }

  stopCluster(name: string, actor: Actor): Promise<Task> {
    return this.lifecycle('stop', name, actor);
  }

  private lifecycle(kind: 'start' | 'stop', name: string, actor: Actor): Promise<Task> {
    return this.admit(async () => {
      this.refuseWhenStopping();
      const c = this.record(name);
      this.assertIdle(name);
      if (c.actual === 'absent' || c.actual === 'creating' || c.actual === 'deleting' || c.desired === 'absent') {
        throw conflict(`cluster "${name}" is ${c.actual === 'absent' ? 'absent' : c.actual}; it cannot be ${kind === 'start' ? 'started' : 'stopped'}`);
      }
      return this.enqueue(kind, c, actor, { prevDesired: c.desired }, (d) => {
        const r = d.clusters.find((x) => x.name === name)!;
        r.desired = kind === 'start' ? 'present' : 'stopped';
        r.updatedAt = now();
      });
    });
  }

  /** Pushes a cluster's expiry back by `ms` from now (or from its current expiry, if later). */
  async extend(name: string, ms: number, actor: Actor): Promise<Cluster> {
    const c = this.record(name);
    if (c.desired === 'absent') throw conflict(`cluster "${name}" is being deleted`);
    const from = Math.max(Date.now(), c.expiresAt ? Date.parse(c.expiresAt) : 0);
    await this.store.update((d) => {
      const r = d.clusters.find((x) => x.name === name)!;
      r.expiresAt = new Date(from + ms).toISOString();
      r.updatedAt = now();
      this.audit(d, actor, 'extend', name, 'ok');
    });
    this.emitCluster(name);
    return this.getCluster(name)!;
  }

  /** The environment scripts run with (for jobs that run scripts of their own). */
  get scriptEnv(): Record<string, string> | undefined {
    return this.opts.scriptEnv;
  }

  /** Remote GitOps branch heads, when GitOps is on (through the git step's own clone and queue). */
  branchStatus(names: string[]): Promise<Map<string, string | null>> | null {
    const step = this.opts.postSteps?.find((p) => p.branchStatus);
    return step?.branchStatus ? step.branchStatus(names) : null;
  }

  /** Names of clusters with a queued or running task. */
  activeClusters(): Set<string> {
    return new Set(this.active.keys());
  }

  /** Re-checks one cluster's actual state with the provider now; resolves when recorded. */
  async refresh(name: string): Promise<Cluster | undefined> {
    if (this.active.has(name)) return this.getCluster(name);
    this.recheck(name, null);
    await Promise.all([...this.rechecks]);
    return this.getCluster(name);
  }

  /**
   * Records a cluster the provider has but kindler does not (an "unmanaged" one): desired as it runs, owner
   * `actor`. Its ports, node counts and image are read from docker (`cluster.sh adopt`: the port bindings of
   * the k3d serverlb or server-0, of the kind control plane or external load balancer) and its kubeconfig is
   * written to kindler's own file (mode 0600; never ~/.kube/config). A cluster whose ports cannot be read, or
   * clash with another record's or break the port rules, is refused with the reason, and nothing is kept.
   */
  adopt(name: string, provider: Cluster['provider'], actor: Actor): Promise<Cluster> {
    return this.admit(async () => {
      this.refuseWhenStopping();
      if (this.store.data.clusters.some((c) => c.name === name)) throw conflict(`name: cluster "${name}" is already recorded`, 'name');
      const status = await this.probe(name, provider);
      if (status.state === 'absent') throw notFound(`cluster: ${provider} has no cluster named "${name}"`);
      const kubeconfig = join(this.kubeDir, `${name}.yaml`);
      const staged = join(this.kubeDir, `.adopt-${name}.yaml`);
      try {
        let found: Record<string, unknown>;
        try {
          found = await queryScript({ ...adoptCall(this.cfg, name, provider, staged), cwd: this.cfg.scriptsDir, ...(this.opts.scriptEnv ? { env: this.opts.scriptEnv } : {}), timeoutMs: this.cfg.timeouts.status * 1000 });
        } catch (e) {
          throw failed(`adopt: cannot read ${provider} cluster "${name}" from docker: ${(e as Error).message}`);
        }
        const num = (k: string, min: number, max: number): number => {
          const v = found[k];
          if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw failed(`adopt: cluster.sh adopt gave ${k} ${JSON.stringify(v)}, not a whole number ${min}-${max}`);
          return v;
        };
        const state = found.state;
        if (state !== 'running' && state !== 'stopped' && state !== 'degraded') throw failed(`adopt: cluster.sh adopt gave state ${JSON.stringify(state)}`);
        const ports = { httpPort: num('httpPort', 1, PORT_MAX), httpsPort: num('httpsPort', 1, PORT_MAX), apiPort: num('apiPort', 1, PORT_MAX) };
        const servers = num('servers', 1, 1000);
        const agents = num('agents', 0, 1000);
        const image = typeof found.image === 'string' && found.image ? found.image : undefined;
        // The ports the provider really published are recorded as they are, or the adoption is refused.
        const own = this.ownPorts();
        for (const k of ['httpPort', 'httpsPort', 'apiPort'] as const) {
          const v = ports[k];
          if (v < MIN_CLUSTER_PORT) throw usageError(`${flagOf(k)}: ${provider} cluster "${name}" publishes it on ${v}; kindler's clusters use ports ${MIN_CLUSTER_PORT}-${PORT_MAX}, so it cannot be adopted`, flagOf(k));
          const key = own.get(v);
          if (key) throw conflict(`${flagOf(k)}: ${provider} cluster "${name}" publishes it on ${v}, the routes frontend's own port (${key}); it cannot be adopted`, flagOf(k));
          const other = this.store.data.clusters.find((c) => c.httpPort === v || c.httpsPort === v || c.apiPort === v);
          if (other) throw conflict(`${flagOf(k)}: ${provider} cluster "${name}" publishes it on ${v}, which cluster "${other.name}" has recorded; it cannot be adopted`, flagOf(k));
        }
        try {
          await rename(staged, kubeconfig);
        } catch (e) {
          throw failed(`adopt: cannot move the kubeconfig into place at ${kubeconfig}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
        }
        const at = now();
        const c: Cluster = {
          name, provider, servers, agents, ...(image ? { image } : {}), ...ports, owner: actor.user, createdAt: at,
          desired: state === 'stopped' ? 'stopped' : 'present', actual: state === 'degraded' ? 'unknown' : state,
          kubeContext: kubeContextFor(provider, name), kubeconfig,
          ...(state === 'degraded' ? { lastError: `degraded: ${String(found.running)} of ${String(found.nodes)} nodes running` } : {}),
          ...(this.cfg.routes.enabled ? { domain: `${name}.${this.cfg.routes.baseDomain}` } : {}),
          options: { route: true, register: [] },
          updatedAt: at,
        };
        await this.store.update((d) => {
          d.clusters.push(c);
          this.audit(d, actor, 'adopt', name, 'ok');
        });
        this.emitCluster(name);
        return clone(c);
      } finally {
        await rm(staged, { force: true });
      }
    });
  }

  /** Removes finished tasks (never an active one) and their log files. */
  async pruneTasks(ids: string[]): Promise<number> {
    const drop = new Set(ids.filter((id) => {
      const t = this.store.data.tasks.find((x) => x.id === id);
      return t && isTerminal(t.state);
    }));
    if (drop.size === 0) return 0;
    // The tasks leave memory and the journal by whole segments (what else a segment holds is appended again).
    await this.store.removeTasks(drop);
    for (const id of drop) {
      const l = this.logs.get(id);
      if (l) {
        await l.close();
        this.logs.delete(id);
      }
      await rm(join(this.logDir, `${id}.log`), { force: true });
    }
    return drop.size;
  }

  /** Audit events, oldest first, filtered. */
  listAudit(f: { user?: string; sinceMs?: number; limit?: number } = {}): AuditEvent[] {
    const out = this.store.data.audit.filter((a) => (!f.user || a.user === f.user) && (f.sinceMs === undefined || Date.parse(a.at) >= f.sinceMs));
    return (f.limit ? out.slice(-f.limit) : out).map(clone);
  }

  /** Re-runs the route and GitOps steps for a running cluster (finishes what a failed step left). */
  sync(name: string, actor: Actor): Promise<Task> {
    return this.admit(async () => {
      this.refuseWhenStopping();
      const c = this.record(name);
      this.assertIdle(name);
      if (c.desired !== 'present') throw conflict(`cluster "${name}" is meant to be ${c.desired}; only a cluster meant to run can be synced`);
      return this.enqueue('sync', c, actor, {}, () => undefined);
    });
  }

  importImage(name: string, image: string, actor: Actor): Promise<Task> {
    return this.admit(async () => {
      this.refuseWhenStopping();
      const c = this.record(name);
      this.assertIdle(name);
      if (c.actual !== 'running') throw conflict(`cluster "${name}" is ${c.actual}; images can only be imported into a running cluster`);
      return this.enqueue('import-image', c, actor, { image }, () => undefined);
    });
  }

  /**
   * Imports the older tool's CSV once, on request: each row becomes a record, or is refused with the reason.
   * A file of more than `importCsvMaxRows` rows is refused whole. The import yields to the event loop as it
   * goes, and the imported records are re-checked with the provider at most `concurrency` at a time.
   */
  importCsv(text: string, actor: Actor): Promise<ImportRow[]> {
    const count = countCsvRows(text);
    const max = this.cfg.importCsvMaxRows;
    if (count > max) throw usageError(`file: has ${count} rows; import-csv takes at most ${max} at once (config importCsvMaxRows); split the file`, 'file');
    return this.admit(async () => {
      this.refuseWhenStopping();
      const rows = parseEnvironmentsCsv(text);
      const out: ImportRow[] = [];
      const added: Cluster[] = [];
      const own = this.ownPorts();
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
          if (this.store.data.clusters.some((c) => c.name === req.name) || added.some((c) => c.name === req.name)) {
            throw conflict(`name: cluster "${req.name}" already exists`, 'name');
          }
          const others = [...this.store.data.clusters, ...added];
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
            const busy = await this.hostBusy(port);
            if (!busy) return null;
            if (provided === undefined) {
              try {
                provided = (await this.probe(req.name, req.provider)).state !== 'absent';
              } catch (e) {
                return `${busy}, and whether ${req.provider} has a cluster named "${req.name}" could not be checked (${(e as Error).message})`;
              }
            }
            return provided ? null : `${busy}, and ${req.provider} has no cluster named "${req.name}"`;
          };
          const ports = await this.pickPorts(req, undefined, others, { field: csvField, givenBusy });
          if (req.subnet) {
            const mine = parseSubnet(req.subnet);
            const clash = others.find((c) => c.subnet && subnetsOverlap(mine, parseSubnet(c.subnet)));
            if (clash) throw conflict(`cluster_subnet: ${req.subnet} overlaps cluster "${clash.name}"`);
          }
          const at = now();
          added.push({
            name: req.name, provider: req.provider, servers: 1, agents: 0, ...ports,
            ...(req.subnet ? { subnet: req.subnet } : {}),
            owner: actor.user, createdAt: at, desired: 'present', actual: 'unknown',
            kubeContext: kubeContextFor(req.provider, req.name), kubeconfig: join(this.kubeDir, `${req.name}.yaml`),
            ...(req.ingressNodePort ? { ingressNodePort: req.ingressNodePort } : {}),
            options: { route: req.options?.route ?? true, register: req.options?.register ?? [] },
            updatedAt: at,
          });
          out.push({ line: row.line, name: req.name, result: 'imported' });
        } catch (e) {
          out.push({ line: row.line, name: req.name, result: 'refused', reason: (e as Error).message });
        }
      }
      if (added.length) {
        await this.store.update((d) => {
          d.clusters.push(...added);
          this.audit(d, actor, 'import-csv', added.map((c) => c.name).join(','), 'ok');
        });
        for (const c of added) this.feed.emit({ type: 'cluster', cluster: clone(c) });
        this.recheckAll(added.map((c) => c.name));
      }
      return out;
    });
  }

  /** Re-checks many clusters in the background, at most `concurrency` at a time (never a burst of status checks). */
  private recheckAll(names: string[]): void {
    const todo = names.slice();
    const worker = async () => {
      for (let name = todo.shift(); name !== undefined && !this.stopping; name = todo.shift()) await this.recheck(name, null).catch(() => undefined);
    };
    const all = Promise.all(Array.from({ length: Math.min(this.cfg.concurrency, todo.length) }, worker)).then(() => undefined);
    // Counted as a re-check, so idle() and shutdown wait for the whole batch.
    this.rechecks.add(all);
    void all.finally(() => this.rechecks.delete(all));
  }

  /** Cancels a queued task at once, or stops a running one (its cleanup runs). */
  async cancel(id: string, actor: Actor): Promise<Task> {
    const t = this.store.data.tasks.find((x) => x.id === id);
    if (!t) throw notFound(`task: no task "${sanitizeLine(id).slice(0, 40)}"`);
    if (isTerminal(t.state)) throw conflict(`task ${id} already ended (${t.state})`);
    const running = this.running.get(id);
    if (running) {
      running.task.notes.push(`cancel requested by ${actor.user}`);
      running.run.stop('cancel');
      await this.store.update((d) => this.audit(d, actor, 'cancel', id, 'ok', id));
      return clone(running.task);
    }
    const qi = this.queue.indexOf(id);
    if (qi >= 0) this.queue.splice(qi, 1);
    await this.store.update((d) => {
      this.endQueued(d, t, 'cancelled', `cancelled by ${actor.user} before it started`);
      this.audit(d, actor, 'cancel', id, 'ok', id);
    });
    this.emitTask(t);
    this.emitCluster(t.cluster);
    return clone(t);
  }

  /** Ends a task that never started, and puts its cluster back the way it was. */
  private endQueued(d: Store['data'], t: Task, state: TaskState, reason: string): void {
    t.state = state;
    t.finishedAt = now();
    t.error = { reason, stderrTail: [] };
    this.active.delete(t.cluster);
    const c = d.clusters.find((x) => x.name === t.cluster);
    if (!c) return;
    if (t.kind === 'create') {
      if (t.params?.newRecord) d.clusters.splice(d.clusters.indexOf(c), 1);
      else {
        c.actual = 'failed';
        c.lastError = reason;
      }
    } else if (t.params?.prevDesired) {
      c.desired = t.params.prevDesired as Cluster['desired'];
    }
    if (c) c.updatedAt = now();
  }

  private enqueue(kind: TaskKind, c: Cluster, actor: Actor, params: Record<string, string | number | boolean>, mutate: (d: Store['data']) => void): Promise<Task> {
    const d = this.store.data;
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
    this.active.set(c.name, task.id);
    const done = this.store.update((data) => {
      data.nextTaskSeq++;
      mutate(data);
      const r = data.clusters.find((x) => x.name === c.name);
      if (r) r.lastTaskId = task.id;
      data.tasks.push(task);
      this.audit(data, actor, kind, c.name, 'ok', task.id);
      auditEvent = data.audit[data.audit.length - 1];
    });
    return done.then(
      () => {
        // Queued only once it is on disk: a task the caller is told was not done never runs.
        if (this.stopping && task.state === 'queued') {
          // Shutdown began while it was being written: it ends like the queued tasks shutdown found.
          this.endQueued(this.store.data, task, 'interrupted', 'kindler stopped before the task started');
          this.store.flushSoon().catch(() => undefined);
        } else this.queue.push(task.id);
        this.log('info', `task ${task.id} queued: ${kind} ${c.name} by ${actor.user} (${actor.source})`);
        this.emitCluster(c.name);
        this.emitTask(task);
        setImmediate(() => this.pump());
        return clone(task);
      },
      (e: Error) => {
        // Undone synchronously, before the store retries the write: the retry must not carry it.
        const data = this.store.data;
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
        if (this.active.get(c.name) === task.id) this.active.delete(c.name);
        const why = e instanceof StateWriteError ? e.reason : e.message;
        this.log('error', `${kind} ${c.name} by ${actor.user} (${actor.source}): not done: ${why}`);
        throw failed(`${kind} ${c.name}: not done: ${why}`);
      },
    );
  }

  /** Refusals beyond `auditRefusalsPerMinute` per user are counted, then recorded as one summary event. */
  private readonly refusals = new RefusalLimiter(
    () => this.cfg.auditRefusalsPerMinute,
    (s) => {
      const detail = `${s.count} more refusal${s.count === 1 ? '' : 's'} suppressed (over ${s.limit} per minute, ${s.from} to ${s.to})`;
      this.log('warn', `audit: ${s.user}: ${detail}`);
      this.writeAudit({ at: now(), user: s.user, ...(s.fingerprint ? { fingerprint: s.fingerprint } : {}), source: s.source, action: 'refusals-suppressed', target: s.user, result: 'refused', detail });
    },
  );

  /**
   * Appends an audit event for an action that is not a task (users, imports, refusals). Refusals are rate
   * limited per user (see `refusals`), so a flood of refused requests cannot grow the state file.
   */
  recordAudit(actor: Actor, action: string, target: string, result: AuditEvent['result'], detail?: string): void {
    if (result === 'refused' && !this.refusals.admit(actor)) return;
    this.writeAudit({ at: now(), user: actor.user, ...(actor.fingerprint ? { fingerprint: actor.fingerprint } : {}), source: actor.source, action, target, result, ...(detail ? { detail } : {}) });
  }

  private writeAudit(ev: AuditEvent): void {
    void this.store
      .update((d) => this.pushAudit(d, ev))
      .catch((e: Error) => this.log('error', `state write failed: ${e.message}`));
  }

  private audit(d: Store['data'], actor: Actor, action: string, target: string, result: AuditEvent['result'], taskId?: string): void {
    this.pushAudit(d, { at: now(), user: actor.user, ...(actor.fingerprint ? { fingerprint: actor.fingerprint } : {}), source: actor.source, action, target, result, ...(taskId ? { taskId } : {}) });
  }

  /** Appends one event, dropping the oldest beyond `auditMaxEvents`: the log never outgrows its bound. */
  private pushAudit(d: Store['data'], ev: AuditEvent): void {
    d.audit.push(ev);
    const max = this.cfg.auditMaxEvents;
    if (max > 0 && d.audit.length > max) d.audit.splice(0, d.audit.length - max);
  }

  /** Summarizes the refusals counted so far at once instead of at the end of their minute (shutdown, tests). */
  flushRefusals(): void {
    this.refusals.flush();
  }

  /** Prunes audit events older than `maxAgeMs` (0: none by age) and the oldest beyond `maxEvents` (0: no count limit). */
  async pruneAudit(maxAgeMs: number, maxEvents: number): Promise<number> {
    const all = this.store.data.audit;
    let drop = 0;
    if (maxAgeMs > 0) {
      const cut = Date.now() - maxAgeMs;
      // Oldest first: events are appended in time order; one with an unreadable time is kept.
      while (drop < all.length && Date.parse(all[drop]!.at) < cut) drop++;
    }
    if (maxEvents > 0) drop = Math.max(drop, all.length - maxEvents);
    if (drop <= 0) return 0;
    await this.store.update((d) => void d.audit.splice(0, drop));
    // Once the state file says which events are kept, the journal segments holding none of them go.
    this.store.dropAuditSegments();
    return drop;
  }

  // ---- running work --------------------------------------------------------------------------

  private pump(): void {
    while (!this.stopping && this.running.size < this.cfg.concurrency && this.queue.length > 0) {
      const id = this.queue.shift()!;
      const t = this.store.data.tasks.find((x) => x.id === id);
      if (!t || t.state !== 'queued') continue;
      this.execute(t);
    }
  }

  private emitTask(t: Task): void {
    this.feed.emit({ type: 'task', task: clone(t) });
  }

  private emitCluster(name: string): void {
    const c = this.store.data.clusters.find((x) => x.name === name);
    if (c) this.feed.emit({ type: 'cluster', cluster: clone(c) });
    else this.feed.emit({ type: 'cluster-removed', name });
  }

  /** Saves a running task's progress; a failed write is logged (once) by the store and retried by it. */
  private persist(t: Task): void {
    this.store.flushSoon().catch(() => undefined);
    this.emitTask(t);
  }

  private openLog(t: Task): TaskLog {
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

  private execute(t: Task): void {
    const c = this.store.data.clusters.find((x) => x.name === t.cluster);
    if (!c) {
      void this.finishWithoutRun(t, `cluster "${t.cluster}" no longer exists`);
      return;
    }
    const log = this.openLog(t);
    t.state = 'running';
    t.startedAt = now();
    c.actual = t.kind === 'create' ? 'creating' : t.kind === 'delete' ? 'deleting' : c.actual;
    c.updatedAt = now();
    const call = scriptFor(this.cfg, t.kind, c, t.params);
    log.add(`[kindler] ${t.kind} ${c.name} (${c.provider}) started by ${t.user} as task ${t.id}`);
    if (typeof t.params?.retry === 'string') log.add(`[kindler] ${t.params.retry}`);
    const post = (this.opts.postSteps ?? []).filter((p) => p.applies(t.kind, c));
    const state: Running = { task: t, log, stderrTail: [], reachedCreate: false, post, run: undefined as unknown as Run, ended: Promise.resolve() };
    state.run = runScript({
      script: call.script,
      args: call.args,
      cwd: this.cfg.scriptsDir,
      env: this.opts.scriptEnv,
      timeoutMs: this.cfg.timeouts[t.kind] * 1000,
      graceMs: this.cfg.cancelGraceSeconds * 1000,
      spoolDir: this.logDir,
      onLine: (line, stream) => this.onLine(state, line, stream),
      // Plain stdout lines in bulk skip onLine: none of them is a marker or needs sanitizing.
      onBulk: (b) => log.addBulk(b),
      bulkTail: this.cfg.logRingLines,
      onStart: (pid) => {
        t.params = { ...t.params, pid, pidStart: processStart(pid) ?? '' };
      },
    });
    this.running.set(t.id, state);
    this.log('info', `task ${t.id} running: ${t.kind} ${c.name}`);
    this.emitCluster(c.name);
    this.persist(t);
    // A runner error still ends the task (failed, with the reason); an error while recording the end
    // is logged loudly rather than handled twice.
    state.ended = state.run.done
      .then(
        (r) => this.finish(state, r),
        (e: Error) => this.finish(state, { exitCode: null, signal: null, stopped: null, killed: false, spawnError: `internal error: ${e.message}` }),
      )
      .catch((e: Error) => this.log('error', `task ${t.id}: could not record its end: ${e.stack ?? e.message}`));
  }

  private async finishWithoutRun(t: Task, reason: string): Promise<void> {
    await this.save(`task ${t.id} failed (${reason})`, (d) => this.endQueued(d, t, 'failed', reason));
    this.emitTask(t);
    this.pump();
  }

  private onLine(s: Running, raw: string, stream: 'stdout' | 'stderr'): void {
    const t = s.task;
    const line = cleanLine(raw);
    const m = stream === 'stdout' ? parseMarker(line) : null;
    if (!m) {
      s.log.add(line);
      if (stream === 'stderr' && line.trim()) {
        s.stderrTail.push(line);
        if (s.stderrTail.length > STDERR_TAIL) s.stderrTail.shift();
      }
      return;
    }
    switch (m.type) {
      case 'step': {
        const at = now();
        const prev = t.steps[t.steps.length - 1];
        if (prev && prev.state === 'running') {
          prev.state = 'succeeded';
          prev.finishedAt = at;
        }
        const of = m.of + s.post.length;
        t.steps.push({ n: m.n, of, key: m.key, title: m.title, state: 'running', startedAt: at });
        t.step = m.title;
        t.progress = progressAt(m.n, of);
        if (m.key === 'create-cluster') s.reachedCreate = true;
        // The same count as the step record (the script's steps plus the post steps that follow them).
        s.log.add(`==> [${m.n}/${of}] ${m.title}`);
        this.persist(t);
        break;
      }
      case 'note':
        t.notes.push(m.text);
        s.log.add(`note: ${m.text}`);
        this.persist(t);
        break;
      case 'error':
        s.errorText = m.text;
        s.log.add(`error: ${m.text}`);
        break;
      case 'cleanup':
        s.cleanup = m.phase;
        s.log.add(`cleanup ${m.phase}${m.text ? `: ${m.text}` : ''}`);
        break;
      case 'result':
        s.result = m.value;
        break;
      case 'invalid':
        s.log.add(line);
        break;
    }
  }

  /**
   * Ends a task: records its outcome (see `recordEnd`), and whatever happens there (a write that fails,
   * a bug), frees its slot and its cluster and starts what is queued. A task never stays running.
   */
  private async finish(s: Running, r: RunResult): Promise<void> {
    const t = s.task;
    try {
      await this.recordEnd(s, r);
    } catch (e) {
      const err = e as Error;
      this.log('error', `task ${t.id}: could not record its end: ${err.stack ?? err.message}`);
      if (!isTerminal(t.state)) {
        t.state = 'failed';
        t.finishedAt = now();
        t.error = { reason: `internal error while recording its end: ${sanitizeLine(err.message).slice(0, 300)}`, stderrTail: [...s.stderrTail] };
        this.store.flushSoon().catch(() => undefined);
      }
    } finally {
      this.running.delete(t.id);
      if (this.active.get(t.cluster) === t.id) this.active.delete(t.cluster);
      this.emitTask(t);
      this.pump();
    }
  }

  private async recordEnd(s: Running, r: RunResult): Promise<void> {
    const t = s.task;
    // Lines logged so far reach the file (or turn out not to): a log that failed fails the task.
    await s.log.drain();
    if (s.log.error && !s.abort) s.abort = s.log.error;
    const at = now();
    let state: TaskState;
    let reason: string | undefined;
    if (r.spawnError) {
      state = 'failed';
      reason = `the script could not run: ${r.spawnError}`;
    } else if (r.stopped === 'cancel') {
      state = 'cancelled';
      reason = t.notes.find((n) => n.startsWith('cancel requested by'))?.replace('cancel requested by', 'cancelled by') ?? 'cancelled';
    } else if (r.stopped === 'timeout') {
      state = 'failed';
      reason = `timed out after ${this.cfg.timeouts[t.kind]}s${s.errorText ? ` (${s.errorText})` : ''}`;
    } else if (r.stopped === 'shutdown') {
      state = 'interrupted';
      reason = 'kindler stopped while the task was running';
    } else if (s.abort) {
      state = 'failed';
      reason = s.abort;
    } else if (r.exitCode === 0 && t.kind === 'sync' && s.result?.state !== 'running') {
      state = 'failed';
      reason = `the provider reports the cluster ${String(s.result?.state ?? 'unknown')}; start it first`;
    } else if (r.exitCode === 0 && (t.kind !== 'create' || s.result)) {
      state = 'succeeded';
    } else if (r.exitCode === 0) {
      state = 'failed';
      reason = 'the script exited 0 but printed no result line';
    } else {
      state = 'failed';
      // Without an error marker, the stderr line that says what failed is the best reason there is.
      const lastErr = pickErrorLine(s.stderrTail);
      reason = s.errorText ?? `${r.signal ? `the script was killed by ${r.signal}` : `the script exited with code ${r.exitCode}`}${lastErr ? `: ${cleanLine(lastErr, 300)}` : ''}`;
    }

    // A create that did not finish must not leave a half-made cluster: if the script could not clean
    // up after itself (killed, or its cleanup failed), do it here with the idempotent delete script.
    if (t.kind === 'create' && state !== 'succeeded') {
      if (s.cleanup === 'done') t.cleanup = 'done';
      else if (!s.reachedCreate) t.cleanup = 'not-needed';
      else if (state === 'interrupted') t.cleanup = s.cleanup === 'failed' ? 'failed' : undefined;
      else t.cleanup = await this.fallbackCleanup(s);
    }

    const last = t.steps[t.steps.length - 1];
    if (last && last.state === 'running') {
      last.state = state === 'succeeded' ? 'succeeded' : 'failed';
      last.finishedAt = at;
    }
    let postFailed = false;
    if (state === 'succeeded' && s.post.length) {
      await this.save(`task ${t.id}: the script's outcome`, (d) => {
        const c = d.clusters.find((x) => x.name === t.cluster);
        if (c) this.applyScriptOutcome(c, t.kind, s.result);
      });
      this.emitCluster(t.cluster);
      const failures = await this.runPostSteps(s);
      if (failures.length) {
        postFailed = true;
        state = 'failed';
        reason = failures.join('; ');
      }
    }
    t.state = state;
    t.finishedAt = now();
    t.exitCode = r.exitCode;
    if (r.signal) t.signal = r.signal;
    if (state === 'succeeded') t.progress = 100;
    else t.error = { reason: reason!, stderrTail: [...s.stderrTail] };
    s.log.add(state === 'succeeded' ? `[kindler] task ${t.id} succeeded` : `[kindler] task ${t.id} ${state}: ${reason}`);
    await s.log.close();
    if (s.log.error && state === 'succeeded') {
      // The work is done but its log is not complete (it failed after the script, in a post step or on
      // the last line): not a success. Like a failed post step, what the provider did stays recorded.
      state = 'failed';
      reason = s.log.error;
      postFailed = true;
      t.state = state;
      t.error = { reason, stderrTail: [...s.stderrTail] };
    } else if (s.log.error && s.log.error !== reason) t.notes.push(s.log.error);

    let recheck = false;
    const saved = await this.save(`task ${t.id} ${state}`, (d) => {
      const c = d.clusters.find((x) => x.name === t.cluster);
      this.active.delete(t.cluster);
      if (!c) return;
      c.updatedAt = at;
      if (state === 'succeeded') delete c.lastError;
      else c.lastError = reason;
      c.steps = t.steps.map((st) => ({ key: st.key, title: st.title, state: st.state, at: st.finishedAt ?? st.startedAt, taskId: t.id, ...(st.state === 'failed' ? { error: st.error ?? reason } : {}) }));
      if (postFailed) {
        // The provider work is done and stays; only a later step failed (a retry can finish it).
        this.applyScriptOutcome(c, t.kind, s.result);
        return;
      }
      switch (t.kind) {
        case 'create':
          if (state === 'succeeded') {
            this.applyScriptOutcome(c, t.kind, s.result);
          } else if (state === 'interrupted') {
            c.actual = 'unknown';
            recheck = true;
          } else if (t.params?.removeOnFailure && t.cleanup !== 'failed') {
            d.clusters.splice(d.clusters.indexOf(c), 1);
          } else {
            c.actual = 'failed';
            if (t.cleanup === 'failed') c.lastError = `${reason}; cleanup failed, leftovers may remain (kindler delete ${c.name})`;
          }
          break;
        case 'delete':
          if (state === 'succeeded') d.clusters.splice(d.clusters.indexOf(c), 1);
          else {
            c.actual = 'unknown';
            recheck = true;
          }
          break;
        case 'start':
        case 'stop':
          if (state === 'succeeded') c.actual = t.kind === 'start' ? 'running' : 'stopped';
          else {
            c.actual = 'unknown';
            recheck = true;
          }
          break;
        case 'sync':
          if (state === 'succeeded') c.actual = 'running';
          break;
        case 'import-image':
          break;
      }
    });
    this.running.delete(t.id);
    this.log(state === 'succeeded' ? 'info' : 'warn', `task ${t.id} ${state}: ${t.kind} ${t.cluster}${reason ? ` (${reason})` : ''}${saved ? '' : ' [not saved yet]'}`);
    this.emitCluster(t.cluster);
    if (recheck && !this.stopping) this.recheck(t.cluster, t.kind === 'create' ? t : null);
  }

  /** Records what a succeeded script did to the cluster (before post steps, which read it). */
  private applyScriptOutcome(c: Cluster, kind: TaskKind, result: Record<string, unknown> | undefined): void {
    c.updatedAt = now();
    if (kind === 'create' || kind === 'start' || kind === 'sync') {
      c.actual = 'running';
      if (typeof result?.nodeAddress === 'string' && result.nodeAddress) c.nodeAddress = result.nodeAddress;
      if (kind === 'create' && typeof result?.kubeContext === 'string') c.kubeContext = result.kubeContext;
    } else if (kind === 'stop') c.actual = 'stopped';
    else if (kind === 'delete') c.actual = 'absent';
  }

  /** Runs the post steps in order; each failure becomes "<title> failed: <reason>". */
  private async runPostSteps(s: Running): Promise<string[]> {
    const t = s.task;
    const failures: string[] = [];
    const base = t.steps.length ? t.steps[t.steps.length - 1]!.n : 0;
    const of = base + s.post.length;
    for (const [i, step] of s.post.entries()) {
      const c = this.store.data.clusters.find((x) => x.name === t.cluster);
      if (!c) break;
      const n = base + i + 1;
      const title = step.title(c, t.kind);
      const rec = { n, of, key: step.key, title, state: 'running' as 'running' | 'succeeded' | 'failed', startedAt: now() } as Task['steps'][number];
      t.steps.push(rec);
      t.step = title;
      t.progress = progressAt(n, of);
      s.log.add(`==> [${n}/${of}] ${title}`);
      this.persist(t);
      try {
        await step.run({ kind: t.kind, taskId: t.id, cluster: clone(c), clusters: () => this.store.data.clusters.map(clone), log: (l) => s.log.add(cleanLine(l)) });
        rec.state = 'succeeded';
      } catch (e) {
        const msg = sanitizeLine((e as Error).message).slice(0, 2000);
        rec.state = 'failed';
        rec.error = msg;
        s.log.add(`error: ${title} failed: ${msg}`);
        failures.push(`${step.key} step failed: ${msg}`);
      }
      rec.finishedAt = now();
      this.persist(t);
    }
    return failures;
  }

  /** Runs the idempotent delete script after a create that could not clean up by itself. */
  private async fallbackCleanup(s: Running): Promise<'done' | 'failed'> {
    return this.cleanupCreate(s.task, s.log);
  }

  /** Removes what an unfinished create made, with the idempotent delete script; logs into the task's log. */
  private async cleanupCreate(t: Task, log: TaskLog): Promise<'done' | 'failed'> {
    const c = this.store.data.clusters.find((x) => x.name === t.cluster);
    if (!c) return 'failed';
    log.add('[kindler] cleanup: removing what the unfinished create left behind');
    const call = scriptFor(this.cfg, 'delete', c);
    const run = runScript({
      script: call.script,
      args: call.args,
      cwd: this.cfg.scriptsDir,
      env: this.opts.scriptEnv,
      timeoutMs: this.cfg.timeouts.delete * 1000,
      graceMs: this.cfg.cancelGraceSeconds * 1000,
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

  // ---- checking with the provider --------------------------------------------------------------

  /** Asks the provider (through cluster.sh status) what it has for one cluster. */
  async probe(name: string, provider: string): Promise<StatusResult> {
    const call = statusCall(this.cfg, name, provider);
    let status: StatusResult | null;
    try {
      status = parseStatus(await queryScript({ ...call, cwd: this.cfg.scriptsDir, ...(this.opts.scriptEnv ? { env: this.opts.scriptEnv } : {}), timeoutMs: this.cfg.timeouts.status * 1000 }));
    } catch (e) {
      throw failed(`status check of "${name}" failed: ${(e as Error).message}`);
    }
    if (!status) throw failed(`status check of "${name}" failed: the script's result has no valid state`);
    return status;
  }

  /** Re-checks a cluster's actual state in the background; `interruptedCreate` marks a half-done create. */
  private recheck(name: string, interruptedCreate: Task | null): Promise<void> {
    const c = this.store.data.clusters.find((x) => x.name === name);
    if (!c) return Promise.resolve();
    const p = (async () => {
      let status: StatusResult | null = null;
      let problem: string | undefined;
      if (interruptedCreate && interruptedCreate.steps.some((st) => st.key === 'create-cluster') && interruptedCreate.cleanup !== 'done') {
        // The create got as far as making the cluster and then lost its script: undo it here.
        const log = this.openLog(interruptedCreate);
        log.total = interruptedCreate.logLines;
        const result = await this.cleanupCreate(interruptedCreate, log);
        await log.close();
        await this.save(`task ${interruptedCreate.id}: its cleanup`, (d) => {
          const t = d.tasks.find((x) => x.id === interruptedCreate.id);
          if (t) {
            t.cleanup = result;
            // Finished and already in the journal: its new line there supersedes the old one.
            this.store.taskChanged(t);
          }
        });
        this.emitTask(interruptedCreate);
      }
      try {
        status = await this.probe(c.name, c.provider);
      } catch (e) {
        problem = (e as Error).message;
      }
      await this.save(`re-check of cluster ${name}`, (d) => {
        const r = d.clusters.find((x) => x.name === name);
        if (!r || this.active.has(name)) return;
        r.updatedAt = now();
        if (!status) {
          r.actual = 'unknown';
          r.lastError = problem;
          return;
        }
        if (status.state === 'absent' && r.desired === 'absent') {
          d.clusters.splice(d.clusters.indexOf(r), 1);
          return;
        }
        if (interruptedCreate) {
          r.actual = status.state === 'absent' ? 'absent' : 'failed';
          if (status.state === 'absent') {
            r.lastError = `create task ${interruptedCreate.id} was interrupted${interruptedCreate.cleanup === 'done' ? '; what it had made was removed' : ''}; run create again to retry`;
            return;
          }
          r.lastError = `create task ${interruptedCreate.id} was interrupted; the provider reports the cluster ${status.state} (kindler delete ${name} removes it)`;
          return;
        }
        r.actual = status.state === 'degraded' ? 'unknown' : status.state;
        if (status.state === 'degraded') r.lastError = `degraded: ${status.running} of ${status.nodes} nodes running`;
      });
      this.emitCluster(name);
    })().catch((e: Error) => this.log('error', `re-check of cluster ${name} failed: ${e.stack ?? e.message}`));
    this.rechecks.add(p);
    void p.finally(() => this.rechecks.delete(p));
    return p;
  }

  /**
   * Stops whatever a previous holder of the lock left running: every process carrying this data dir's
   * OWNER_ENV (task scripts, status checks, cleanups and hooks alike, recorded or not) and the process
   * group of every unfinished task. SIGTERM first, so a create's script removes what it made; SIGKILL
   * for what is left after the grace period. Holding the lock means no live engine owns any of them.
   */
  private async stopOrphans(unfinished: Task[]): Promise<void> {
    const marker = this.opts.scriptEnv?.[OWNER_ENV];
    const own = ownProcessGroup();
    const found = () => (marker ? processesWithEnv(OWNER_ENV, marker) : []).filter((p) => p.pgid !== own);
    const groups = new Map<number, string>();
    for (const t of unfinished) {
      const pid = Number(t.params?.pid ?? 0);
      if (t.state === 'running' && pid > 0 && processStart(pid) === t.params?.pidStart) groups.set(pid, `task ${t.id}: stopping its orphaned script (process group ${pid})`);
    }
    for (const p of found()) {
      if (groups.has(p.pgid)) continue;
      const t = unfinished.find((x) => Number(x.params?.pid ?? 0) === p.pgid);
      groups.set(p.pgid, t ? `task ${t.id}: stopping its orphaned script (process group ${p.pgid})` : `stopping process group ${p.pgid} left running by the previous kindler (a script whose task never recorded it, a status check or a cleanup)`);
    }
    if (groups.size === 0) return;
    for (const [pgid, msg] of groups) {
      this.log('warn', msg);
      signalGroup(pgid, 'SIGTERM');
    }
    const left = () => found().length > 0 || [...groups.keys()].some((g) => processRunning(g));
    const deadline = Date.now() + this.cfg.cancelGraceSeconds * 1000;
    while (left() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    for (const p of found()) groups.set(p.pgid, '');
    for (const pgid of groups.keys()) signalGroup(pgid, 'SIGKILL');
    const killDeadline = Date.now() + 3000;
    while (left() && Date.now() < killDeadline) await new Promise((r) => setTimeout(r, 10));
    if (left()) this.log('error', `processes left by the previous kindler survived SIGKILL: ${found().map((p) => p.pid).join(', ')}`);
  }

  /** After a crash: stop orphaned scripts, mark unfinished tasks interrupted, re-check their clusters. */
  private async recover(): Promise<void> {
    const d = this.store.data;
    const unfinished = d.tasks.filter((t) => !isTerminal(t.state));
    await this.stopOrphans(unfinished);
    if (unfinished.length === 0) {
      for (const c of d.clusters) if (c.actual === 'creating' || c.actual === 'deleting' || c.actual === 'unknown') this.recheck(c.name, null);
      return;
    }
    const at = now();
    await this.save('recovery: unfinished tasks marked interrupted', (data) => {
      for (const t of unfinished) {
        const wasRunning = t.state === 'running';
        t.state = 'interrupted';
        t.finishedAt = at;
        t.error = { reason: wasRunning ? 'kindler stopped while the task was running' : 'kindler stopped before the task started', stderrTail: [] };
        const last = t.steps[t.steps.length - 1];
        if (last && last.state === 'running') {
          last.state = 'failed';
          last.finishedAt = at;
        }
        const c = data.clusters.find((x) => x.name === t.cluster);
        if (!c) continue;
        if (!wasRunning && t.kind === 'create' && t.params?.newRecord) {
          data.clusters.splice(data.clusters.indexOf(c), 1);
          continue;
        }
        if (!wasRunning && t.params?.prevDesired) c.desired = t.params.prevDesired as Cluster['desired'];
        c.actual = 'unknown';
        c.lastError = `task ${t.id} (${t.kind}) was interrupted: ${t.error.reason}`;
        c.updatedAt = at;
      }
    });
    for (const t of unfinished) {
      this.log('warn', `task ${t.id} interrupted: ${t.kind} ${t.cluster}`);
      this.emitTask(t);
    }
    const again = new Set(unfinished.map((t) => t.cluster));
    for (const c of d.clusters) if (c.actual === 'creating' || c.actual === 'deleting' || c.actual === 'unknown') again.add(c.name);
    for (const name of again) {
      const t = unfinished.filter((x) => x.cluster === name).pop();
      this.recheck(name, t && t.kind === 'create' && t.steps.length > 0 ? t : null);
    }
  }

  // ---- stopping --------------------------------------------------------------------------------

  /** Refuses new work, ends queued tasks, stops running scripts (their cleanup runs), saves, unlocks. */
  async shutdown(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    const queued = this.queue.splice(0);
    if (queued.length) {
      await this.save('shutdown: queued tasks ended', (d) => {
        for (const id of queued) {
          const t = d.tasks.find((x) => x.id === id);
          if (t && t.state === 'queued') this.endQueued(d, t, 'interrupted', 'kindler stopped before the task started');
        }
      });
    }
    this.refusals.flush();
    for (const s of this.running.values()) s.run.stop('shutdown');
    // `finish` always takes a task out of `running`, whether or not its end could be written.
    await Promise.all([...this.running.values()].map((s) => s.ended));
    await Promise.all([...this.rechecks]);
    for (const l of this.logs.values()) await l.close();
    let lost: StateWriteError | null = null;
    try {
      await this.store.flushWithin(SAVE_AT_SHUTDOWN_MS);
    } catch (e) {
      if (!(e instanceof StateWriteError)) throw e;
      lost = e;
      this.log('error', `state could not be saved at shutdown: ${e.reason}; the changes since the last successful write are lost (the next start recovers from the state file as it is)`);
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

/**
 * The line a retry starts with: every setting it runs with, and which of them were given now instead of
 * taken from the record.
 */
function retryLine(c: Cluster, was: Cluster): string {
  const settings = [
    `provider ${c.provider}`,
    `servers ${c.servers}`,
    `agents ${c.agents}`,
    `image ${c.image ?? "(the provider's default)"}`,
    `ports http ${c.httpPort}, https ${c.httpsPort}, api ${c.apiPort}`,
    `subnet ${c.subnet ?? '(none)'}`,
    `expires ${c.expiresAt ?? 'never'}`,
    `route ${wantsRoute(c) ? 'on' : 'off (--no-route)'}`,
    `register ${registerOf(c).join(',') || 'none'}`,
  ];
  const given: string[] = [];
  if (c.servers !== was.servers) given.push('servers');
  if (c.agents !== was.agents) given.push('agents');
  if (c.image !== was.image) given.push('image');
  for (const k of ['httpPort', 'httpsPort', 'apiPort'] as const) if (c[k] !== was[k]) given.push(flagOf(k));
  if (c.subnet !== was.subnet) given.push('subnet');
  if (c.expiresAt !== was.expiresAt) given.push('ttl');
  if (wantsRoute(c) !== wantsRoute(was)) given.push('route');
  if (registerOf(c).join(',') !== registerOf(was).join(',')) given.push('register');
  return `retrying ${c.name} with its recorded settings: ${settings.join('; ')}${given.length ? ` (given now: ${given.join(', ')})` : ''}`;
}
