/**
 * The typed backend: every verb as a function `(actor, args) → Promise<result>` that throws a
 * KindlerError (usage, notFound, conflict, failed, refused) and never prints. Authorization is
 * decided here, in `allow`, and nowhere else in commands. The argv verbs (CLI, SSH exec, control
 * socket) parse argv into these calls and format what they return as text or --json; interactive
 * faces (the TUI) call them directly through their session.
 *
 * Arguments are what a user gives, as the CLI takes them (a duration as "2h", a port as "30080"):
 * each is checked here with the same rule and the same message on every face, in the same order
 * (what is parsed before authorization stays before it).
 */
import { authorize, type Action } from '../access/authorize.js';
import type { UserInfo, UsersStore } from '../access/users.js';
import { parseDuration } from '../core/duration.js';
import { KindlerError, refused, usageError } from '../core/errors.js';
import { assertName } from '../core/names.js';
import { parsePort } from '../core/ports.js';
import { checkImage, MIN_CLUSTER_PORT, parseCount, parseProvider, parseRegister, type CreateInput } from '../core/spec.js';
import { shown } from '../core/text.js';
import type { AuditEvent, Cluster, Task } from '../core/types.js';
import { lastReconcile, runReconcile } from '../cron/jobs.js';
import type { ReconcileResult } from '../cron/reconcile.js';
import { Engine } from '../engine/engine.js';
import type { Principal } from './context.js';
import { kubeconfigFor, type KubeconfigArgs, type KubeconfigResult } from './kubeconfig.js';

export type { KubeconfigArgs, KubeconfigResult } from './kubeconfig.js';
export type { ReconcileResult } from '../cron/reconcile.js';

/** What `show --live` adds: the provider's answer now, or why it could not be had. */
export type LiveContainers = { state: string; containers: { name: string; role: string; state: string }[] } | { error: string };

export interface ShowResult {
  cluster: Cluster;
  /** The cluster's 5 latest tasks. */
  tasks: Task[];
  live?: LiveContainers;
}

/** `create`'s arguments: the flags' values as given (blank ones omitted: a retry keeps the record's, a new cluster gets the defaults). */
export interface CreateArgs {
  name: string;
  provider?: string;
  servers?: string;
  agents?: string;
  image?: string;
  httpPort?: string;
  httpsPort?: string;
  apiPort?: string;
  subnet?: string;
  ttl?: string;
  removeOnFailure?: boolean;
  /** false: no HAProxy route (--no-route). */
  route?: boolean;
  /** Registration hooks, "portainer,argocd" or "none". */
  register?: string;
}

export interface LogsResult {
  task: Task;
  /** Index of the first line in the whole log (0 unless `tail` cut it). */
  from: number;
  lines: string[];
}

export interface DoctorResult {
  ok: boolean;
  tools: Awaited<ReturnType<Engine['doctor']>>;
  state: ReturnType<Engine['storageHealth']>;
  /** Lines of the journal found torn or damaged at start. */
  journal?: string[];
}

export type RoutesResult =
  { enabled: false; routes: never[]; skipped: never[]; liveMatches: true } | ({ enabled: true } & Awaited<ReturnType<Engine['routesStatus']>>);

export interface WhoamiResult {
  user: string;
  role: string;
  source: string;
  fingerprint?: string;
}

/** `users`: the action and its words as given; `key` is a key line, or a function that reads it (`--key -`). */
export interface UsersArgs {
  action: string;
  name?: string;
  value?: string;
  role?: string;
  key?: string | (() => Promise<string>);
}

export type UsersResult = { users: UserInfo[] } | { result: unknown };

export type ImportRow = Awaited<ReturnType<Engine['importCsv']>>[number];

/** A count (--limit, --tail): a whole number 1-999999, or undefined when not given. */
export function countArg(raw: string | number | undefined, field = 'limit'): number | undefined {
  if (raw === undefined) return undefined;
  const s = String(raw);
  if (!/^[1-9][0-9]{0,5}$/.test(s)) throw usageError(`${field}: must be a whole number 1-999999 (got ${shown(s, 20)})`, field);
  return Number(s);
}

/** `--since`: a duration back from now (2h) or an ISO time; the epoch ms it names. */
export function sinceArg(since: string | undefined): number | undefined {
  if (since === undefined) return undefined;
  if (/^\d{4}-\d{2}-\d{2}/.test(since) && !Number.isNaN(Date.parse(since))) return Date.parse(since);
  return Date.now() - parseDuration('since', since);
}

export class Api {
  constructor(
    readonly engine: Engine,
    readonly opts: { users?: UsersStore; ssh?: { host: string; port: number } } = {},
  ) {}

  /** Refuses (exit 5) unless the actor may do `action`; for cluster actions, the cluster must exist first. */
  allow(actor: Principal, action: Action, clusterName?: string, taskUser?: string): void {
    let owner: string | undefined;
    if (clusterName !== undefined) {
      const c = this.engine.getCluster(clusterName);
      if (!c) throw new KindlerError('notFound', `cluster: no cluster named ${shown(clusterName, 40)}`);
      owner = c.owner;
    }
    const d = authorize(actor, action, { owner, taskUser });
    if (!d.ok) throw refused(d.reason);
  }

  /** A task by id (t-N), or a cluster's latest task by the cluster's name. */
  resolveTask(ref: string): Task {
    if (/^t-/.test(ref)) {
      Engine.checkTaskId(ref);
      const t = this.engine.getTask(ref);
      if (!t) throw new KindlerError('notFound', `task: no task "${ref}"`);
      return t;
    }
    const t = this.engine.latestTaskFor(ref);
    if (!t) throw new KindlerError('notFound', `task: no task id or cluster with tasks named ${shown(ref, 40)}`);
    return t;
  }

  async list(_actor: Principal): Promise<{ clusters: Cluster[] }> {
    return { clusters: this.engine.listClusters() };
  }

  async show(_actor: Principal, a: { name: string; live?: boolean }): Promise<ShowResult> {
    const c = this.engine.getCluster(a.name);
    if (!c) throw new KindlerError('notFound', `cluster: no cluster named ${shown(a.name, 40)}`);
    const tasks = this.engine.listTasks({ cluster: a.name, limit: 5 });
    if (!a.live) return { cluster: c, tasks };
    // A failed probe is part of the answer (docker down, say), not a failure of `show`.
    let live: LiveContainers;
    try {
      const st = await this.engine.probe(c.name, c.provider);
      live = { state: st.state, containers: st.containers ?? [] };
    } catch (e) {
      live = { error: (e as Error).message };
    }
    return { cluster: c, tasks, live };
  }

  /** Records the cluster and queues its create task (a retry when it is recorded). */
  async create(actor: Principal, a: CreateArgs): Promise<Task> {
    // Only what was given: the engine fills the rest from the record (a retry) or the config defaults (a
    // new cluster). An explicit ttl must be a duration (an empty one is an error, not "no TTL").
    const req: CreateInput = {
      name: a.name,
      ...(a.provider !== undefined ? { provider: parseProvider(a.provider) } : {}),
      ...(a.servers !== undefined ? { servers: parseCount('servers', a.servers) } : {}),
      ...(a.agents !== undefined ? { agents: parseCount('agents', a.agents) } : {}),
      ...(a.image !== undefined ? (checkImage(a.image), { image: a.image }) : {}),
      ...(a.httpPort !== undefined ? { httpPort: parsePort('http-port', a.httpPort, MIN_CLUSTER_PORT) } : {}),
      ...(a.httpsPort !== undefined ? { httpsPort: parsePort('https-port', a.httpsPort, MIN_CLUSTER_PORT) } : {}),
      ...(a.apiPort !== undefined ? { apiPort: parsePort('api-port', a.apiPort, MIN_CLUSTER_PORT) } : {}),
      ...(a.subnet !== undefined ? { subnet: a.subnet } : {}),
      ...(a.ttl !== undefined ? { ttlMs: parseDuration('ttl', a.ttl) } : {}),
      ...(a.removeOnFailure ? { removeOnFailure: true } : {}),
      ...(a.route !== undefined || a.register !== undefined
        ? { options: { ...(a.route !== undefined ? { route: a.route } : {}), ...(a.register !== undefined ? { register: parseRegister(a.register) } : {}) } }
        : {}),
    };
    this.allow(actor, 'create');
    // Re-creating a recorded cluster acts on that record: decided (under the engine's admission lock,
    // against the record as it is then) by the same authorize, and a refusal is audited like any other.
    return this.engine.create(req, actor, (existing, changes) => {
      const d = authorize(actor, 'recreate', { owner: existing.owner, cluster: existing.name, changes });
      if (!d.ok) throw refused(d.reason);
    });
  }

  async delete(actor: Principal, a: { name: string }): Promise<Task> {
    this.allow(actor, 'delete', a.name);
    return this.engine.delete(a.name, actor);
  }

  async start(actor: Principal, a: { name: string }): Promise<Task> {
    this.allow(actor, 'start', a.name);
    return this.engine.startCluster(a.name, actor);
  }

  async stop(actor: Principal, a: { name: string }): Promise<Task> {
    this.allow(actor, 'stop', a.name);
    return this.engine.stopCluster(a.name, actor);
  }

  async sync(actor: Principal, a: { name: string }): Promise<Task> {
    this.allow(actor, 'sync', a.name);
    return this.engine.sync(a.name, actor);
  }

  async importImage(actor: Principal, a: { name: string; image: string }): Promise<Task> {
    checkImage(a.image);
    this.allow(actor, 'import-image', a.name);
    return this.engine.importImage(a.name, a.image, actor);
  }

  async tasks(_actor: Principal, a: { cluster?: string; active?: boolean; limit?: string | number } = {}): Promise<{ tasks: Task[] }> {
    const limit = countArg(a.limit);
    return { tasks: this.engine.listTasks({ ...(a.cluster ? { cluster: a.cluster } : {}), active: Boolean(a.active), limit: limit ?? 50 }) };
  }

  async task(_actor: Principal, a: { id: string }): Promise<Task> {
    Engine.checkTaskId(a.id);
    return this.resolveTask(a.id);
  }

  /** A task's log (by id, or a cluster's latest task): all of it, or its last `tail` lines read from the end. */
  async logs(_actor: Principal, a: { ref: string; tail?: string | number }): Promise<LogsResult> {
    const tail = countArg(a.tail, 'tail');
    const t = this.resolveTask(a.ref);
    return this.readLog(t.id, tail);
  }

  /** The log of a task already resolved (after `logs --follow --json` waited for its end). */
  async readLog(id: string, tail?: number): Promise<LogsResult> {
    const { lines, from } = tail ? await this.engine.readLogTail(id, tail) : { lines: await this.engine.readLog(id), from: 0 };
    return { task: this.engine.getTask(id)!, from, lines };
  }

  async cancel(actor: Principal, a: { id: string }): Promise<Task> {
    Engine.checkTaskId(a.id);
    const target = this.resolveTask(a.id);
    const owner = this.engine.getCluster(target.cluster)?.owner;
    const d = authorize(actor, 'cancel', { owner, taskUser: target.user });
    if (!d.ok) throw refused(d.reason);
    return this.engine.cancel(a.id, actor);
  }

  async kubeconfig(actor: Principal, a: KubeconfigArgs): Promise<KubeconfigResult> {
    return kubeconfigFor(this.engine, actor, a, this.opts.ssh);
  }

  async doctor(_actor: Principal): Promise<DoctorResult> {
    const tools = await this.engine.doctor();
    const state = this.engine.storageHealth();
    const by = (n: string) => tools.find((t) => t.name === n)!;
    const toolsOk = by('docker').usable && by('kubectl').usable && (by('k3d').usable || by('kind').usable);
    const journal = this.engine.journalProblems();
    return { ok: toolsOk && state.saving, tools, state, ...(journal.length ? { journal } : {}) };
  }

  /** Imports the older tool's CSV; `read` gives its text once the actor may (a file the client names). */
  async importCsv(actor: Principal, a: { read: () => Promise<string> }): Promise<{ rows: ImportRow[] }> {
    this.allow(actor, 'import-csv');
    const text = await a.read();
    return { rows: await this.engine.importCsv(text, actor) };
  }

  async extend(actor: Principal, a: { name: string; duration: string }): Promise<Cluster> {
    const ms = parseDuration('duration', a.duration);
    this.allow(actor, 'extend', a.name);
    return this.engine.extend(a.name, ms, actor);
  }

  async audit(actor: Principal, a: { user?: string; since?: string; limit?: string | number } = {}): Promise<{ events: AuditEvent[] }> {
    this.allow(actor, 'audit');
    const sinceMs = sinceArg(a.since);
    const limit = countArg(a.limit);
    return { events: this.engine.listAudit({ ...(a.user ? { user: a.user } : {}), ...(sinceMs !== undefined ? { sinceMs } : {}), limit: limit ?? 200 }) };
  }

  /** One reconcile pass (admin); `dryRun` only reports (any role that may read). */
  async reconcile(actor: Principal, a: { dryRun?: boolean } = {}): Promise<ReconcileResult> {
    const dryRun = Boolean(a.dryRun);
    this.allow(actor, dryRun ? 'read' : 'reconcile');
    return runReconcile(this.engine, { dryRun });
  }

  /** The last pass from reconcile.jsonl: it shows drift, heals and errors across everyone's clusters, as a pass needs. */
  async lastReconcile(actor: Principal): Promise<Awaited<ReturnType<typeof lastReconcile>>> {
    this.allow(actor, 'reconcile');
    return lastReconcile(this.engine);
  }

  async adopt(actor: Principal, a: { name: string; provider?: string }): Promise<Cluster> {
    this.allow(actor, 'reconcile');
    const provider = parseProvider(a.provider ?? this.engine.cfg.defaults.provider);
    // The rule for a cluster that exists already, as the scripts hold it: a reserved name may be adopted (it can
    // never be created, but a cluster made by hand may carry one), and a kind name may be any DNS label.
    assertName(a.name, provider, 'existing');
    return this.engine.adopt(a.name, provider, actor);
  }

  async routes(_actor: Principal): Promise<RoutesResult> {
    if (!this.engine.cfg.routes.enabled) return { enabled: false, routes: [], skipped: [], liveMatches: true };
    const st = await this.engine.routesStatus();
    return { enabled: true, ...st };
  }

  async whoami(a: Principal): Promise<WhoamiResult> {
    return { user: a.user, role: a.role, source: a.source, ...(a.fingerprint ? { fingerprint: a.fingerprint } : {}) };
  }

  async users(actor: Principal, a: UsersArgs): Promise<UsersResult> {
    const action = a.action;
    const known = ['list', 'add', 'remove', 'set-role', 'add-key', 'remove-key'];
    if (!known.includes(action)) throw usageError(`action: must be one of ${known.join(', ')} (got ${shown(action, 20)})`, 'action');
    this.allow(actor, 'users');
    const users = this.opts.users;
    if (!users) throw new KindlerError('failed', 'users: this kindler has no users file configured');
    const need = (field: 'name' | 'value', what: string): string => {
      const v = a[field];
      if (v === undefined) throw usageError(`${field === 'name' ? 'name' : what}: required for users ${action}`, field);
      return v;
    };
    const role = (): string => {
      if (typeof a.role !== 'string') throw usageError(`--role: required for users ${action}`, 'role');
      return a.role;
    };
    const keyLine = async (): Promise<string> => {
      if (a.key === undefined) throw usageError(`--key: required for users ${action}`, 'key');
      return typeof a.key === 'string' ? a.key : a.key();
    };
    const extra = () => {
      if (a.value !== undefined) throw usageError(`users ${action}: unexpected argument ${shown(a.value, 30)}`);
    };
    let result: unknown;
    switch (action) {
      case 'list':
        if (a.name !== undefined) throw usageError('users list: takes no arguments');
        return { users: users.list() };
      case 'add':
        extra();
        need('name', 'name');
        role();
        result = users.add(a.name!, role(), await keyLine());
        break;
      case 'remove':
        extra();
        if (need('name', 'name') === actor.user) throw new KindlerError('conflict', 'name: you cannot remove yourself');
        result = users.remove(a.name!);
        break;
      case 'set-role':
        result = users.setRole(need('name', 'name'), need('value', 'role'));
        break;
      case 'add-key':
        extra();
        need('name', 'name');
        result = { user: a.name!, key: users.addKey(a.name!, await keyLine()) };
        break;
      case 'remove-key':
        result = { user: need('name', 'name'), key: users.removeKey(a.name!, need('value', 'fingerprint')) };
        break;
    }
    this.engine.recordAudit(actor, `users-${action}`, a.name ?? '', 'ok');
    return { result };
  }
}
