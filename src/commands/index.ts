/**
 * The verb table: parse, call the engine, print text or --json. Every face (local CLI, control
 * socket, SSH exec) runs verbs through `runCommand`, so parsing, output and exit codes cannot drift.
 */
import { authorize, type Action, type Role } from '../access/authorize.js';
import { EXIT, KindlerError, refused, usageError } from '../core/errors.js';
import { parseDuration } from '../core/duration.js';
import { parsePort } from '../core/ports.js';
import { checkImage, MIN_CLUSTER_PORT, parseCount, parseProvider, parseRegister, type CreateInput } from '../core/spec.js';
import { sanitizeLine, shown } from '../core/text.js';
import { isTerminal, type Task } from '../core/types.js';
import { Engine, type Actor } from '../engine/engine.js';
import type { LogCursor } from '../engine/logs.js';
import type { UsersStore } from '../access/users.js';
import { lastReconcile, runReconcile } from '../cron/jobs.js';
import { assertName } from '../core/names.js';
import { bar, clusterDetails, clusterTable, table, taskTable } from './format.js';
import { complete, completionScript, SHELLS, type Shell } from './completion.js';
import { helpText, parseArgs, twoColumns, wrapWords, type Parsed, type VerbSpec } from './parse.js';
import { KUBECONFIG_FLAGS, kubeconfigFor } from './kubeconfig.js';

export const VERSION = '0.1.0';

/** Where a verb writes, and what it knows about the client. */
export interface IO {
  out(s: string): void;
  err(s: string): void;
  isTTY: boolean;
  columns: number;
  /** Aborted when the client goes away (Ctrl-C, dropped connection). */
  signal: AbortSignal;
  /** Reads a file named on the command line, as the client sees it. */
  readFile(path: string): Promise<string>;
  /**
   * Resolves when the client has taken most of what was written (or has gone): a verb that writes a
   * lot awaits it between steps so its output waits in the file it comes from, not in memory.
   */
  writable?(): Promise<void>;
  /**
   * Reads what the client sends on standard input, to its end (`--key -`). Absent where the face
   * has no input to give (the TUI): the verb says so.
   */
  readStdin?(): Promise<string>;
  /** Told the id of the task a --wait verb follows (the local CLI's Ctrl-C names it, or cancels it). */
  onTask?(id: string): void;
}

/** Who runs the verb: the engine's actor plus the role the face authenticated. */
export interface Principal extends Actor {
  role: Role;
  /** The SSH key that authenticated this session, when there was one. */
  fingerprint?: string;
}

export interface Context {
  engine: Engine;
  actor: Principal;
  io: IO;
  /** The users file, where this face can manage it (the daemon's SSH service and the local CLI). */
  users?: UsersStore;
  /** The SSH service this verb came through (its listen host and real port), for tunnel commands. */
  ssh?: { host: string; port: number };
}

/** Refuses (exit 5) unless the actor may do `action`; for cluster actions, the cluster must exist first. */
function allow(ctx: Context, action: Action, clusterName?: string, taskUser?: string): void {
  let owner: string | undefined;
  if (clusterName !== undefined) {
    const c = ctx.engine.getCluster(clusterName);
    if (!c) throw new KindlerError('notFound', `cluster: no cluster named ${shown(clusterName, 40)}`);
    owner = c.owner;
  }
  const d = authorize(ctx.actor, action, { owner, taskUser });
  if (!d.ok) throw refused(d.reason);
}

/** Whether the actor may do `action` on a cluster owned by `owner` (faces hide what is refused). */
export function may(actor: Principal, action: Action, owner?: string, taskUser?: string): boolean {
  return authorize(actor, action, { owner, taskUser }).ok;
}

interface Verb extends VerbSpec {
  run(p: Parsed, ctx: Context, json: boolean): Promise<number>;
  /** Rewrites the verb's argv before it is parsed (users: a key line split into words by ssh). */
  prepare?(argv: readonly string[]): string[];
}

/** Public key types a key line can start with. */
const KEY_TYPE = /^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com)$/;

/**
 * `users add bob --role operator --key ssh-ed25519 AAAA… bob@laptop` over SSH: ssh joins its
 * arguments with spaces, so the key line arrives as several words. When `--key` is followed by a key
 * type and a base64 blob, those two are one key line; the words after them (up to the next flag)
 * are its comment when the action and the name were given before `--key` (users add|add-key NAME),
 * since then no argument is still expected. Anything else is left for the parser to judge.
 */
function joinKeyWords(argv: readonly string[]): string[] {
  const i = argv.indexOf('--key');
  if (i < 0 || argv.indexOf('--') >= 0) return [...argv];
  const type = argv[i + 1];
  const blob = argv[i + 2];
  if (type === undefined || blob === undefined || !KEY_TYPE.test(type) || !/^AAAA[A-Za-z0-9+/]+=*$/.test(blob)) return [...argv];
  const before = argv.slice(0, i).filter((a, j, all) => !a.startsWith('-') && !(j > 0 && all[j - 1] === '--role'));
  let end = i + 3;
  if (before.length >= 2 && ['add', 'add-key'].includes(before[0]!)) while (end < argv.length && !argv[end]!.startsWith('-')) end++;
  return [...argv.slice(0, i), '--key', argv.slice(i + 1, end).join(' '), ...argv.slice(end)];
}

const WAIT = {
  wait: { type: 'bool' as const, help: 'follow progress and log until the task ends; exit with its result' },
  'cancel-on-interrupt': { type: 'bool' as const, help: 'with --wait: Ctrl-C cancels the task (and waits for it to end) instead of leaving it running' },
};

/**
 * JSON for a client's terminal: JSON.stringify escapes C0 controls but passes DEL, the C1 controls
 * (U+0080-U+009F, e.g. U+009B is CSI to many terminals) and U+2028/U+2029 through raw. Those are
 * escaped too, so no stored string (an audited argv, a script's output) reaches a terminal raw.
 */
export function jsonText(value: unknown, indent?: number): string {
  return JSON.stringify(value, null, indent).replace(/[\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** The width a table must fit: the terminal's, or none (a pipe or file gets whole rows). */
function fitWidth(ctx: Context): number | undefined {
  return ctx.io.isTTY ? ctx.io.columns : undefined;
}

function print(ctx: Context, json: boolean, value: unknown, text: () => string): void {
  ctx.io.out(json ? `${jsonText(value)}\n` : text());
}

function taskLine(t: Task): string {
  return `task ${t.id}: ${t.kind} ${t.cluster} ${t.state}${t.error ? ` — ${sanitizeLine(t.error.reason)}` : ''}\n`;
}

/** Exit code for a finished task. */
function taskExit(t: Task): number {
  return t.state === 'succeeded' ? EXIT.ok : EXIT.failed;
}

/** After a mutating verb: print the task at once, or follow it with --wait. */
async function report(ctx: Context, p: Parsed, json: boolean, task: Task): Promise<number> {
  if (!p.flags.wait) {
    print(ctx, json, { task }, () => `${taskLine(task).trimEnd()}\nfollow it with: kindler logs ${task.id} --follow\n`);
    return EXIT.ok;
  }
  if (!json) ctx.io.out(taskLine(task));
  ctx.io.onTask?.(task.id);
  const final = await follow(ctx, task.id, { showLog: !json, showProgress: !json });
  if (!final) return EXIT.failed;
  print(ctx, json, { task: final }, () => taskLine(final));
  if (!json && final.error?.stderrTail.length) ctx.io.err(`last stderr lines:\n${final.error.stderrTail.map((l) => `  ${sanitizeLine(l)}`).join('\n')}\n`);
  return taskExit(final);
}

/** Bytes of log read and written per step when streaming a log to a client. */
const LOG_STEP = 256 * 1024;

/**
 * Prints a task's log (from the start, or its last `tail` lines), then, unless `once`, new lines
 * and progress until the task ends. The log is streamed from its file at the client's pace: live
 * events only say that more is there, so a slow or stalled client holds at most one step of output
 * in the daemon, and no line is lost or doubled however far behind it falls.
 */
async function follow(ctx: Context, id: string, o: { showLog: boolean; showProgress: boolean; tail?: number; once?: boolean }): Promise<Task | null> {
  const { engine, io } = ctx;
  let lastStep = '';
  let barShown = false;
  // On a terminal the progress line stays pinned under the log: cleared before lines are written,
  // drawn again after them, and redrawn by a timer (spinner, elapsed time) while nothing happens.
  const pinned = o.showProgress && io.isTTY;
  let barTask: Task | null = null;
  let spin = 0;
  const clearBar = () => {
    if (barShown) io.out('\r\x1b[2K');
    barShown = false;
  };
  const drawBar = () => {
    const t = barTask;
    if (!t || io.signal.aborted) return;
    clearBar();
    const since = Date.parse(t.startedAt ?? t.createdAt);
    const elapsed = formatElapsed(Number.isNaN(since) ? 0 : Date.now() - since);
    const head = `${SPINNER[spin % SPINNER.length]} ${bar(t.progress)} ${elapsed} `;
    const label = sanitizeLine(t.step ?? t.state);
    const room = Math.max(0, io.columns - 1 - head.length);
    io.out(`${head}${label.length > room ? `${label.slice(0, Math.max(0, room - 1))}…` : label}`);
    barShown = true;
  };
  const ticker = pinned
    ? setInterval(() => {
        spin++;
        drawBar();
      }, 200)
    : null;
  ticker?.unref();
  const showProgress = (t: Task) => {
    if (!o.showProgress) return;
    if (io.isTTY) {
      barTask = t;
      drawBar();
    } else if (t.step && t.step !== lastStep) {
      lastStep = t.step;
      io.out(`[${String(t.progress).padStart(3)}%] ${sanitizeLine(t.step)}\n`);
    }
  };
  // Wake-ups: new lines, progress, the end of the task, the client leaving.
  let final: Task | null = null;
  let latest: Task | null = null;
  let dirty = false;
  let wake: (() => void) | null = null;
  const poke = () => {
    dirty = true;
    const w = wake;
    wake = null;
    w?.();
  };
  const off = engine.feed.subscribe((e) => {
    if (e.type === 'log' && e.taskId === id) {
      if (o.showLog) poke();
    } else if (e.type === 'task' && e.task.id === id) {
      latest = e.task;
      // The task's log is closed before its final event: after it, one more read gets every line.
      if (isTerminal(e.task.state)) final = e.task;
      poke();
    }
  });
  io.signal.addEventListener('abort', poke);
  let cursor: LogCursor | null = null;
  try {
    const now = engine.getTask(id);
    if (now && isTerminal(now.state)) final = now;
    if (o.showLog) {
      let start = 0;
      if (o.tail) {
        const t = await engine.readLogTail(id, o.tail);
        if (t.lines.length) io.out(`${t.lines.map((l) => sanitizeLine(l)).join('\n')}\n`);
        start = t.bytes;
      }
      cursor = engine.logCursor(id, start);
    }
    if (now && !final) latest = now;
    for (;;) {
      if (io.signal.aborted) return null;
      const last = Boolean(final) || Boolean(o.once);
      dirty = false;
      if (cursor) {
        await engine.flushLog(id);
        for (;;) {
          // Only a finished log's last line may lack its newline; a running one's is still being written.
          const lines = await cursor.next(LOG_STEP, Boolean(final));
          if (!lines.length) break;
          clearBar();
          io.out(`${lines.map((l) => sanitizeLine(l)).join('\n')}\n`);
          if (pinned && !final) drawBar();
          if (io.writable) await io.writable();
          if (io.signal.aborted) return null;
        }
      }
      if (last) {
        barTask = null;
        clearBar();
        return final ?? engine.getTask(id) ?? null;
      }
      if (latest) {
        const t: Task = latest;
        latest = null;
        showProgress(t);
      }
      if (!dirty) await new Promise<void>((r) => (wake = r));
    }
  } finally {
    if (ticker) clearInterval(ticker);
    off();
    io.signal.removeEventListener('abort', poke);
    await cursor?.close();
  }
}

const SPINNER = ['|', '/', '-', '\\'];

/** Elapsed time as m:ss (h:mm:ss past an hour). */
function formatElapsed(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** A count flag (--limit, --tail): a whole number 1-999999, or undefined when not given. */
function countFlag(raw: string | undefined, field = 'limit'): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^[1-9][0-9]{0,5}$/.test(raw)) throw usageError(`${field}: must be a whole number 1-999999 (got ${shown(raw, 20)})`, field);
  return Number(raw);
}

function resolveTask(ctx: Context, ref: string): Task {
  if (/^t-/.test(ref)) {
    Engine.checkTaskId(ref);
    const t = ctx.engine.getTask(ref);
    if (!t) throw new KindlerError('notFound', `task: no task "${ref}"`);
    return t;
  }
  const t = ctx.engine.latestTaskFor(ref);
  if (!t) throw new KindlerError('notFound', `task: no task id or cluster with tasks named ${shown(ref, 40)}`);
  return t;
}

const VERBS: Verb[] = [
  {
    name: 'list',
    summary: 'List clusters with their desired and actual state.',
    args: [],
    flags: {},
    async run(_p, ctx, json) {
      const clusters = ctx.engine.listClusters();
      print(ctx, json, { clusters }, () => clusterTable(clusters, fitWidth(ctx)));
      return EXIT.ok;
    },
  },
  {
    name: 'show',
    summary: "Show one cluster: its record, its steps' results and its recent tasks.",
    args: [{ name: 'name', required: true, help: 'cluster name' }],
    flags: {
      live: { type: 'bool', help: "also ask the provider now: every container of the cluster with its role and docker state" },
    },
    async run(p, ctx, json) {
      const name = p.args.name!;
      const c = ctx.engine.getCluster(name);
      if (!c) throw new KindlerError('notFound', `cluster: no cluster named ${shown(name, 40)}`);
      const tasks = ctx.engine.listTasks({ cluster: name, limit: 5 });
      if (!p.flags.live) {
        print(ctx, json, { cluster: c, tasks }, () => clusterDetails(c, tasks));
        return EXIT.ok;
      }
      // A failed probe is part of the answer (docker down, say), not a failure of `show`.
      let live: { state: string; containers: { name: string; role: string; state: string }[] } | { error: string };
      try {
        const st = await ctx.engine.probe(c.name, c.provider);
        live = { state: st.state, containers: st.containers ?? [] };
      } catch (e) {
        live = { error: (e as Error).message };
      }
      print(ctx, json, { cluster: c, tasks, live }, () => {
        const head = 'error' in live
          ? `containers (live): the provider could not be asked: ${shown(live.error, 300)}`
          : [`containers (live, provider says ${live.state}):`, ...(live.containers.length ? live.containers.map((x) => `  ${shown(x.name, 80)}  ${shown(x.role, 30)}  ${shown(x.state, 30)}`) : ['  (none)'])].join('\n');
        return `${clusterDetails(c, tasks).trimEnd()}\n\n${head}\n`;
      });
      return EXIT.ok;
    },
  },
  {
    name: 'create',
    summary: 'Create a cluster. Prints the task at once; --wait follows it to the end.',
    args: [{ name: 'name', required: true, help: 'cluster name: lowercase DNS label, starts with a letter' }],
    flags: {
      provider: { type: 'string', value: 'k3d|kind', help: 'provider (default from config; a retry keeps the recorded one)' },
      servers: { type: 'string', value: 'N', help: 'server / control-plane nodes, 1-7 (default from config; a retry keeps the recorded count)' },
      agents: { type: 'string', value: 'N', help: 'agent / worker nodes, 0-20 (default from config; a retry keeps the recorded count)' },
      image: { type: 'string', value: 'IMAGE', help: 'node image (default: the provider default)' },
      'http-port': { type: 'string', value: 'P', help: 'host port for ingress HTTP (default: allocated)' },
      'https-port': { type: 'string', value: 'P', help: 'host port for ingress HTTPS (default: allocated)' },
      'api-port': { type: 'string', value: 'P', help: 'host port for the API server (default: allocated)' },
      subnet: { type: 'string', value: 'CIDR', help: 'k3d only: a dedicated docker network subnet' },
      ttl: { type: 'string', value: 'DURATION', help: 'expire after this long, e.g. 2h or 1d (default from config; a retry keeps the recorded expiry)' },
      'remove-on-failure': { type: 'bool', help: 'drop the record if the create fails (default: keep it as failed)' },
      'no-route': { type: 'bool', help: 'no HAProxy route NAME.BASE_DOMAIN for this cluster (--no-route=false routes it again on a retry; a retry keeps the recorded choice)' },
      register: { type: 'string', value: 'LIST', help: 'registration hooks that act for this cluster: portainer,argocd, or none (default none; a retry keeps the recorded list)' },
      ...WAIT,
    },
    async run(p, ctx, json) {
      const f = p.flags as Record<string, string | undefined>;
      // Only what was given: the engine fills the rest from the record (a retry) or the config defaults (a
      // new cluster). An explicit --ttl must be a duration (an empty one is an error, not "no TTL").
      const ttl = f.ttl;
      const req: CreateInput = {
        name: p.args.name!,
        ...(f.provider !== undefined ? { provider: parseProvider(f.provider) } : {}),
        ...(f.servers !== undefined ? { servers: parseCount('servers', f.servers) } : {}),
        ...(f.agents !== undefined ? { agents: parseCount('agents', f.agents) } : {}),
        ...(f.image !== undefined ? (checkImage(f.image), { image: f.image }) : {}),
        ...(f['http-port'] !== undefined ? { httpPort: parsePort('http-port', f['http-port'], MIN_CLUSTER_PORT) } : {}),
        ...(f['https-port'] !== undefined ? { httpsPort: parsePort('https-port', f['https-port'], MIN_CLUSTER_PORT) } : {}),
        ...(f['api-port'] !== undefined ? { apiPort: parsePort('api-port', f['api-port'], MIN_CLUSTER_PORT) } : {}),
        ...(f.subnet !== undefined ? { subnet: f.subnet } : {}),
        ...(ttl !== undefined ? { ttlMs: parseDuration('ttl', ttl) } : {}),
        ...(p.flags['remove-on-failure'] ? { removeOnFailure: true } : {}),
        ...(p.flags['no-route'] !== undefined || f.register !== undefined
          ? { options: { ...(p.flags['no-route'] !== undefined ? { route: !p.flags['no-route'] } : {}), ...(f.register !== undefined ? { register: parseRegister(f.register) } : {}) } }
          : {}),
      };
      allow(ctx, 'create');
      // Re-creating a recorded cluster acts on that record: decided (under the engine's admission lock,
      // against the record as it is then) by the same authorize, and a refusal is audited like any other.
      const task = await ctx.engine.create(req, ctx.actor, (existing, changes) => {
        const d = authorize(ctx.actor, 'recreate', { owner: existing.owner, cluster: existing.name, changes });
        if (!d.ok) throw refused(d.reason);
      });
      // A retry says what it reuses (the task's log starts with the same line).
      if (!json && typeof task.params?.retry === 'string') ctx.io.out(`${sanitizeLine(task.params.retry)}\n`);
      return report(ctx, p, json, task);
    },
  },
  {
    name: 'delete',
    summary: 'Delete a cluster (idempotent: an already-gone cluster is removed with a note).',
    args: [{ name: 'name', required: true, help: 'cluster name' }],
    flags: { ...WAIT },
    async run(p, ctx, json) {
      allow(ctx, 'delete', p.args.name!);
      return report(ctx, p, json, await ctx.engine.delete(p.args.name!, ctx.actor));
    },
  },
  {
    name: 'start',
    summary: 'Start a stopped cluster.',
    args: [{ name: 'name', required: true, help: 'cluster name' }],
    flags: { ...WAIT },
    async run(p, ctx, json) {
      allow(ctx, 'start', p.args.name!);
      return report(ctx, p, json, await ctx.engine.startCluster(p.args.name!, ctx.actor));
    },
  },
  {
    name: 'stop',
    summary: 'Stop a running cluster (its containers stay).',
    args: [{ name: 'name', required: true, help: 'cluster name' }],
    flags: { ...WAIT },
    async run(p, ctx, json) {
      allow(ctx, 'stop', p.args.name!);
      return report(ctx, p, json, await ctx.engine.stopCluster(p.args.name!, ctx.actor));
    },
  },
  {
    name: 'sync',
    summary: "Re-run a running cluster's route and GitOps branch steps (finishes what a failed step left).",
    args: [{ name: 'name', required: true, help: 'cluster name' }],
    flags: { ...WAIT },
    async run(p, ctx, json) {
      allow(ctx, 'sync', p.args.name!);
      return report(ctx, p, json, await ctx.engine.sync(p.args.name!, ctx.actor));
    },
  },
  {
    name: 'import-image',
    summary: 'Import a local docker image into a running cluster.',
    args: [
      { name: 'name', required: true, help: 'cluster name' },
      { name: 'image', required: true, help: 'image reference present in the local docker store' },
    ],
    flags: { ...WAIT },
    async run(p, ctx, json) {
      checkImage(p.args.image!);
      allow(ctx, 'import-image', p.args.name!);
      return report(ctx, p, json, await ctx.engine.importImage(p.args.name!, p.args.image!, ctx.actor));
    },
  },
  {
    name: 'tasks',
    summary: 'List tasks, newest first.',
    args: [],
    flags: {
      cluster: { type: 'string', value: 'NAME', help: 'only this cluster' },
      active: { type: 'bool', help: 'only queued and running tasks' },
      limit: { type: 'string', value: 'N', help: 'at most N tasks (default 50)' },
    },
    async run(p, ctx, json) {
      const limit = countFlag(p.flags.limit as string | undefined);
      const tasks = ctx.engine.listTasks({
        ...(p.flags.cluster ? { cluster: p.flags.cluster as string } : {}),
        active: Boolean(p.flags.active),
        limit: limit ?? 50,
      });
      print(ctx, json, { tasks }, () => taskTable(tasks, fitWidth(ctx)));
      return EXIT.ok;
    },
  },
  {
    name: 'task',
    summary: 'Show one task: state, progress, steps, error and the last stderr lines.',
    args: [{ name: 'id', required: true, help: 'task id (t-N)' }],
    flags: {},
    async run(p, ctx, json) {
      Engine.checkTaskId(p.args.id!);
      const t = resolveTask(ctx, p.args.id!);
      print(ctx, json, { task: t }, () => {
        let s = taskTable([t]);
        for (const st of t.steps) s += `  [${st.n}/${st.of}] ${st.state.padEnd(9)} ${sanitizeLine(st.title)}\n`;
        if (t.notes.length) s += t.notes.map((n) => `  note: ${sanitizeLine(n)}\n`).join('');
        if (t.error?.stderrTail.length) s += `last stderr lines:\n${t.error.stderrTail.map((l) => `  ${sanitizeLine(l)}`).join('\n')}\n`;
        return s;
      });
      return EXIT.ok;
    },
  },
  {
    name: 'logs',
    summary: "Print a task's log (by task id, or a cluster's latest task); --tail N only its last N lines; --follow streams it live.",
    args: [{ name: 'ref', required: true, help: 'task id (t-N) or cluster name' }],
    flags: {
      follow: { type: 'bool', help: 'keep printing new lines until the task ends' },
      tail: { type: 'string', value: 'N', help: 'only the last N lines (the whole log is never loaded)' },
    },
    async run(p, ctx, json) {
      const tail = countFlag(p.flags.tail as string | undefined, 'tail');
      const t = resolveTask(ctx, p.args.ref!);
      if (p.flags.follow && !json) {
        const final = await follow(ctx, t.id, { showLog: true, showProgress: false, ...(tail ? { tail } : {}) });
        if (final) ctx.io.err(taskLine(final));
        return EXIT.ok;
      }
      if (!json) {
        // Streamed from the file at the client's pace, like --follow, but only what is there now.
        await follow(ctx, t.id, { showLog: true, showProgress: false, once: true, ...(tail ? { tail } : {}) });
        return EXIT.ok;
      }
      if (p.flags.follow) await follow(ctx, t.id, { showLog: false, showProgress: false });
      const { lines, from } = tail ? await ctx.engine.readLogTail(t.id, tail) : { lines: await ctx.engine.readLog(t.id), from: 0 };
      print(ctx, json, { task: ctx.engine.getTask(t.id)!, from, lines }, () => '');
      return EXIT.ok;
    },
  },
  {
    name: 'cancel',
    summary: 'Cancel a queued or running task; a running script is stopped and its cleanup runs.',
    args: [{ name: 'id', required: true, help: 'task id (t-N)' }],
    flags: { ...WAIT },
    async run(p, ctx, json) {
      Engine.checkTaskId(p.args.id!);
      const target = resolveTask(ctx, p.args.id!);
      const owner = ctx.engine.getCluster(target.cluster)?.owner;
      const d = authorize(ctx.actor, 'cancel', { owner, taskUser: target.user });
      if (!d.ok) throw refused(d.reason);
      const t = await ctx.engine.cancel(p.args.id!, ctx.actor);
      return report(ctx, p, json, t);
    },
  },
  {
    name: 'kubeconfig',
    summary: "Print a kubeconfig for a cluster (context kindler-NAME): its admin credential for admins and its owner, a read-only token for everyone else. --mode tunnel (default) goes through `ssh -L`; --mode direct needs api.publicAddress.",
    args: [{ name: 'name', required: true, help: 'cluster name' }],
    flags: KUBECONFIG_FLAGS,
    async run(p, ctx, json) {
      const r = await kubeconfigFor(p, ctx);
      print(ctx, json, r, () => r.kubeconfig);
      if (!json && ctx.io.isTTY && r.tunnel) ctx.io.err(`open the tunnel with: ${r.tunnel.command}\n`);
      return EXIT.ok;
    },
  },
  {
    name: 'doctor',
    summary: 'Check the host tools kindler needs (docker daemon, k3d, kind, kubectl, git, haproxy).',
    args: [],
    flags: {},
    async run(_p, ctx, json) {
      const tools = await ctx.engine.doctor();
      const state = ctx.engine.storageHealth();
      const by = (n: string) => tools.find((t) => t.name === n)!;
      const toolsOk = by('docker').usable && by('kubectl').usable && (by('k3d').usable || by('kind').usable);
      const ok = toolsOk && state.saving;
      const stateLine = state.saving
        ? 'state: saved\n'
        : `state: NOT BEING SAVED since ${state.since}: ${sanitizeLine(state.problem ?? '')} (${state.failures} failed write${state.failures === 1 ? '' : 's'}; ${state.lockLost ? 'restart kindler' : 'retried with backoff; free the space or fix the file and it resumes by itself'})\n`;
      // Lines of the journal found torn or damaged at start: ignored (a write cut short), said here and in the daemon log.
      const journal = ctx.engine.journalProblems();
      print(ctx, json, { ok, tools, state, ...(journal.length ? { journal } : {}) }, () =>
        table(['TOOL', 'FOUND', 'VERSION', 'USABLE', 'NEEDED FOR', 'DETAIL'], tools.map((t) => [t.name, t.found ? 'yes' : 'no', t.version, t.usable ? 'yes' : 'no', t.required, t.detail])) +
        stateLine +
        journal.map((j) => `${sanitizeLine(j)}\n`).join('') +
        (toolsOk ? 'kindler can create clusters on this host\n' : 'kindler cannot create clusters here: docker, kubectl and k3d or kind must be usable\n') +
        (state.saving ? '' : 'kindler cannot record changes until state is saved again: new tasks are refused\n'),
      );
      return ok ? EXIT.ok : EXIT.failed;
    },
  },
  {
    name: 'import-csv',
    summary: "Import the older tool's config/environments.csv once: each row is imported or refused with the reason.",
    args: [{ name: 'file', required: true, help: 'path to environments.csv' }],
    fileArg: 'file',
    flags: {},
    async run(p, ctx, json) {
      allow(ctx, 'import-csv');
      let text: string;
      try {
        text = await ctx.io.readFile(p.args.file!);
      } catch (e) {
        throw usageError(`file: cannot read ${shown(p.args.file!, 80)} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, 'file');
      }
      const rows = await ctx.engine.importCsv(text, ctx.actor);
      print(ctx, json, { rows }, () => (rows.length ? table(['LINE', 'NAME', 'RESULT', 'REASON'], rows.map((r) => [r.line, r.name, r.result, r.reason])) : 'no rows\n'));
      return rows.some((r) => r.result === 'refused') ? EXIT.failed : EXIT.ok;
    },
  },
  {
    name: 'extend',
    summary: "Push a cluster's expiry back, e.g. kindler extend dev 2h (owner or admin).",
    args: [
      { name: 'name', required: true, help: 'cluster name' },
      { name: 'duration', required: true, help: 'how much longer, e.g. 2h, 1d' },
    ],
    flags: {},
    async run(p, ctx, json) {
      const ms = parseDuration('duration', p.args.duration!);
      allow(ctx, 'extend', p.args.name!);
      const c = await ctx.engine.extend(p.args.name!, ms, ctx.actor);
      print(ctx, json, { cluster: c }, () => `${c.name} now expires at ${c.expiresAt}\n`);
      return EXIT.ok;
    },
  },
  {
    name: 'audit',
    summary: 'Who did what, from which face, with what result (admin).',
    args: [],
    flags: {
      user: { type: 'string', value: 'USER', help: 'only this user' },
      since: { type: 'string', value: 'DURATION|TIME', help: 'only events newer than this (e.g. 2h, or an ISO time)' },
      limit: { type: 'string', value: 'N', help: 'at most the last N events (default 200)' },
    },
    async run(p, ctx, json) {
      allow(ctx, 'audit');
      const since = p.flags.since as string | undefined;
      let sinceMs: number | undefined;
      if (since !== undefined) {
        if (/^\d{4}-\d{2}-\d{2}/.test(since) && !Number.isNaN(Date.parse(since))) sinceMs = Date.parse(since);
        else sinceMs = Date.now() - parseDuration('since', since);
      }
      const limit = countFlag(p.flags.limit as string | undefined);
      const events = ctx.engine.listAudit({ ...(p.flags.user ? { user: p.flags.user as string } : {}), ...(sinceMs !== undefined ? { sinceMs } : {}), limit: limit ?? 200 });
      print(ctx, json, { events }, () =>
        events.length ? table(['TIME', 'USER', 'SOURCE', 'ACTION', 'TARGET', 'RESULT', 'TASK', 'DETAIL'], events.map((e) => [e.at, e.user, `${e.source}${e.fingerprint ? ` ${e.fingerprint.slice(0, 19)}` : ''}`, e.action, e.target, e.result, e.taskId, e.detail])) : 'no audit events\n',
      );
      return EXIT.ok;
    },
  },
  {
    name: 'reconcile',
    summary: 'Compare state with what the providers have; heal per configured drift kind (admin). --dry-run only reports (exit 10 on drift); --last shows the last pass.',
    args: [],
    flags: {
      'dry-run': { type: 'bool', help: 'report drift, change nothing (exit 0 none, 10 drift)' },
      last: { type: 'bool', help: 'show the last pass from reconcile.jsonl' },
    },
    async run(p, ctx, json) {
      const dryRun = Boolean(p.flags['dry-run']);
      // --last shows what a pass did (drift, heals, errors across everyone's clusters): as a pass needs.
      allow(ctx, dryRun && !p.flags.last ? 'read' : 'reconcile');
      if (p.flags.last) {
        const { last, problems } = await lastReconcile(ctx.engine);
        if (!json) for (const m of problems) ctx.io.err(`warning: ${sanitizeLine(m)}\n`);
        print(ctx, json, { last, problems }, () => (last ? `${jsonText(last, 2)}\n` : 'no reconcile pass has run yet\n'));
        return EXIT.ok;
      }
      const r = await runReconcile(ctx.engine, { dryRun });
      print(ctx, json, r, () => {
        const lines = r.drift.map((d) => `${d.kind.padEnd(9)} ${d.cluster}: ${d.detail}${d.heal !== 'report' && !dryRun ? ` (healing: ${d.heal})` : ''}`);
        for (const h of r.healed) lines.push(`healed    ${h.cluster}: ${h.kind} → task ${h.taskId}`);
        for (const e of r.errors) lines.push(`error     ${e.cluster}: ${e.error}`);
        return `${lines.length ? lines.map((l) => sanitizeLine(l)).join('\n') : 'no drift'}\n`;
      });
      // A pass that could not ask the provider (or a cluster) is a failure, never "no drift".
      if (r.errors.length) return EXIT.failed;
      if (dryRun) return r.drift.length ? 10 : EXIT.ok;
      return EXIT.ok;
    },
  },
  {
    name: 'adopt',
    summary: 'Record a cluster the provider has but kindler does not (admin). Nothing is created or changed.',
    args: [{ name: 'name', required: true, help: 'the unmanaged cluster' }],
    flags: { provider: { type: 'string', value: 'k3d|kind', help: 'its provider (default from config)' } },
    async run(p, ctx, json) {
      allow(ctx, 'reconcile');
      const provider = parseProvider((p.flags.provider as string | undefined) ?? ctx.engine.cfg.defaults.provider);
      // The rule for a cluster that exists already, as the scripts hold it: a reserved name may be adopted (it can
      // never be created, but a cluster made by hand may carry one), and a kind name may be any DNS label.
      assertName(p.args.name!, provider, 'existing');
      const c = await ctx.engine.adopt(p.args.name!, provider, ctx.actor);
      print(ctx, json, { cluster: c }, () => `adopted ${c.name} (${c.provider}, ${c.actual})\n`);
      return EXIT.ok;
    },
  },
  {
    name: 'routes',
    summary: 'List host -> backend routes, and whether the live HAProxy file matches what state says.',
    args: [],
    flags: {},
    async run(_p, ctx, json) {
      const cfg = ctx.engine.cfg.routes;
      if (!cfg.enabled) {
        print(ctx, json, { enabled: false, routes: [], skipped: [], liveMatches: true }, () => 'routes are off (routes.enabled is false)\n');
        return EXIT.ok;
      }
      const st = await ctx.engine.routesStatus();
      print(ctx, json, { enabled: true, ...st }, () =>
        (st.routes.length ? table(['HOST', 'ALSO', 'BACKEND', 'CLUSTER'], st.routes.map((r) => [r.host, r.wildcard, r.backend, r.cluster])) : 'no routes\n') +
        st.skipped.map((x) => `not routed: ${x.name}: ${x.reason}\n`).join('') +
        (st.liveMatches ? `live file ${st.liveFile} matches state\n` : `live file ${st.liveFile} does NOT match state (a route step failed, or the file was edited)\n`),
      );
      return st.liveMatches ? EXIT.ok : EXIT.failed;
    },
  },
  {
    name: 'whoami',
    summary: 'Show who you are to kindler: user, role, how you connected.',
    args: [],
    flags: {},
    async run(_p, ctx, json) {
      const a = ctx.actor;
      const me = { user: a.user, role: a.role, source: a.source, ...(a.fingerprint ? { fingerprint: a.fingerprint } : {}) };
      print(ctx, json, me, () => `${me.user} (${me.role}) via ${me.source}${me.fingerprint ? `, key ${me.fingerprint}` : ''}\n`);
      return EXIT.ok;
    },
  },
  {
    name: 'users',
    summary: 'Manage users (admin): list | add NAME --role R --key KEY | remove NAME | set-role NAME ROLE | add-key NAME --key KEY | remove-key NAME FINGERPRINT',
    args: [
      { name: 'action', required: true, help: 'list, add, remove, set-role, add-key or remove-key' },
      { name: 'name', required: false, help: 'user name' },
      { name: 'value', required: false, help: 'the role (set-role) or key fingerprint (remove-key)' },
    ],
    flags: {
      role: { type: 'string', value: 'viewer|operator|admin', help: 'role of a new user (add)' },
      key: { type: 'string', value: '"ssh-ed25519 AAAA… comment"', help: 'a public key line (add, add-key); - reads it from standard input' },
    },
    prepare: joinKeyWords,
    async run(p, ctx, json) {
      const action = p.args.action!;
      const known = ['list', 'add', 'remove', 'set-role', 'add-key', 'remove-key'];
      if (!known.includes(action)) throw usageError(`action: must be one of ${known.join(', ')} (got ${shown(action, 20)})`, 'action');
      allow(ctx, 'users');
      const users = ctx.users;
      if (!users) throw new KindlerError('failed', 'users: this kindler has no users file configured');
      const need = (field: 'name' | 'value', what: string): string => {
        const v = p.args[field];
        if (v === undefined) throw usageError(`${field === 'name' ? 'name' : what}: required for users ${action}`, field);
        return v;
      };
      const flag = (f: 'role' | 'key'): string => {
        const v = p.flags[f];
        if (typeof v !== 'string') throw usageError(`--${f}: required for users ${action}`, f);
        return v;
      };
      // `--key -`: the key line comes on standard input (ssh HOST users add bob ... --key - < bob.pub).
      const keyLine = async (): Promise<string> => {
        const v = flag('key');
        if (v !== '-') return v;
        if (!ctx.io.readStdin) throw usageError('--key: - (standard input) is not available here; give the key line itself', 'key');
        const text = await ctx.io.readStdin();
        const lines = text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
        if (lines.length !== 1) throw usageError(`--key: standard input must hold exactly one public key line (got ${lines.length})`, 'key');
        return lines[0]!;
      };
      const extra = (field: 'value') => {
        if (p.args[field] !== undefined) throw usageError(`users ${action}: unexpected argument ${shown(p.args[field]!, 30)}`);
      };
      let result: unknown;
      switch (action) {
        case 'list': {
          if (p.args.name !== undefined) throw usageError('users list: takes no arguments');
          const list = users.list();
          print(ctx, json, { users: list }, () =>
            list.length ? table(['USER', 'ROLE', 'KEYS'], list.map((u) => [u.name, u.role, u.keys.map((k) => `${k.fingerprint}${k.comment ? ` (${k.comment})` : ''}`).join(', ')])) : 'no users\n',
          );
          return EXIT.ok;
        }
        case 'add':
          extra('value');
          need('name', 'name');
          flag('role');
          result = users.add(p.args.name!, flag('role'), await keyLine());
          break;
        case 'remove':
          extra('value');
          if (need('name', 'name') === ctx.actor.user) throw new KindlerError('conflict', 'name: you cannot remove yourself');
          result = users.remove(p.args.name!);
          break;
        case 'set-role':
          result = users.setRole(need('name', 'name'), need('value', 'role'));
          break;
        case 'add-key':
          extra('value');
          need('name', 'name');
          result = { user: p.args.name!, key: users.addKey(p.args.name!, await keyLine()) };
          break;
        case 'remove-key':
          result = { user: need('name', 'name'), key: users.removeKey(p.args.name!, need('value', 'fingerprint')) };
          break;
      }
      ctx.engine.recordAudit(ctx.actor, `users-${action}`, p.args.name ?? '', 'ok');
      print(ctx, json, { result }, () => `users ${action} ${p.args.name ?? ''}: done\n`);
      return EXIT.ok;
    },
  },
  {
    name: 'completion',
    summary: 'Print a shell completion script (verbs, flags, cluster names, task ids), e.g. source <(kindler completion bash).',
    args: [{ name: 'shell', required: true, help: 'bash, zsh or fish' }],
    flags: {},
    async run(p, ctx) {
      const shell = p.args.shell!;
      if (!(SHELLS as readonly string[]).includes(shell)) throw usageError(`shell: must be one of ${SHELLS.join(', ')} (got ${shown(shell, 20)})`, 'shell');
      ctx.io.out(completionScript(shell as Shell));
      return EXIT.ok;
    },
  },
  {
    name: '__complete',
    hidden: true,
    summary: 'Completion candidates for the words after kindler (used by the completion scripts).',
    args: [],
    flags: {},
    // Never parsed: the words are whatever is on the command line being completed (runCommand).
    async run() {
      return EXIT.ok;
    },
  },
  {
    name: 'version',
    summary: "Print kindler's version.",
    args: [],
    flags: {},
    async run(_p, ctx, json) {
      print(ctx, json, { version: VERSION }, () => `kindler ${VERSION}\n`);
      return EXIT.ok;
    },
  },
];

export const VERB_SPECS: readonly VerbSpec[] = VERBS;

/** `kindler daemon --help`: the daemon is run by the local CLI only, not a verb of the table. */
export function daemonHelp(columns = 80): string {
  const width = Math.max(40, columns);
  return [
    ...wrapWords('Run the kindler daemon in the foreground: the engine, the control socket, the schedules and (when enabled) the SSH service. Local CLI only.', width),
    '',
    'usage: kindler daemon',
    '',
    ...wrapWords('It takes no arguments: configure it with the file named by KINDLER_CONFIG. It stops cleanly on SIGTERM or Ctrl-C (running tasks are recorded as interrupted).', width),
    '',
  ].join('\n');
}

export function generalHelp(columns = 80): string {
  const width = Math.max(40, columns);
  return [
    'kindler: local Kubernetes dev clusters (k3d and kind) on a shared host.',
    '',
    'usage: kindler VERB [ARGS] [--json]',
    '',
    'verbs:',
    ...twoColumns([...VERBS.filter((v) => !v.hidden).map((v): [string, string] => [v.name, v.summary]), ['daemon', 'Run the daemon in the foreground (local CLI only).']], width, 2, 14),
    '',
    ...wrapWords('exit codes: 0 ok, 1 the operation failed, 2 usage or validation error, 3 not found, 4 conflict, 5 not allowed, 130 interrupted (Ctrl-C)', width),
    "kindler help VERB (or kindler VERB --help) shows the verb's arguments and flags; kindler --version its version.",
    '',
  ].join('\n');
}

/** The verbs' names, for hints (the SSH face's answer to a shell without a terminal). */
export function verbNames(): string[] {
  return VERBS.filter((v) => !v.hidden).map((v) => v.name);
}

/**
 * Help and version asked for without a verb to run: `help`, `help VERB`, `--help`, `-h`,
 * `--version`. Returns the text and exit code, or null when argv asks for something else. Needs no
 * engine, so the local CLI answers these without a daemon or the state lock.
 */
export function helpRequest(argv: readonly string[], columns = 80): { out: string; err: string; code: number } | null {
  const [first, ...rest] = argv;
  if (first === undefined || first === '--help' || first === '-h') return { out: generalHelp(columns), err: '', code: EXIT.ok };
  if (first === '--version' || first === '-V') return { out: wantsJson(rest) ? `${jsonText({ version: VERSION })}\n` : `kindler ${VERSION}\n`, err: '', code: EXIT.ok };
  if (first === 'daemon' && rest.length === 1 && (rest[0] === '--help' || rest[0] === '-h')) return { out: daemonHelp(columns), err: '', code: EXIT.ok };
  if (first !== 'help') return null;
  const topic = rest.find((a) => !a.startsWith('-'));
  if (topic === undefined) return { out: generalHelp(columns), err: '', code: EXIT.ok };
  if (topic === 'daemon') return { out: daemonHelp(columns), err: '', code: EXIT.ok };
  const spec = VERBS.find((v) => v.name === topic && !v.hidden);
  if (!spec) return { out: '', err: `error: help: unknown verb ${shown(topic, 40)} (kindler help lists them)\n`, code: EXIT.usage };
  return { out: helpText(spec, columns), err: '', code: EXIT.ok };
}

/**
 * Whether argv asks for JSON, read before parsing so that a usage error is JSON too: `--json` and
 * `--json=true` ask, `--json=false` does not, the last one wins, nothing after `--` counts. Once
 * argv has parsed, the parsed flag decides (the same answer).
 */
export function wantsJson(argv: readonly string[]): boolean {
  return wantsFlag(argv, 'json');
}

/** Whether a switch is set in argv, read as wantsJson reads --json (for faces that act before parsing). */
export function wantsFlag(argv: readonly string[], name: string): boolean {
  let on = false;
  for (const a of argv) {
    if (a === '--') break;
    if (a === `--${name}` || a === `--${name}=true`) on = true;
    else if (a === `--${name}=false`) on = false;
  }
  return on;
}

/** Runs one verb for one client. Never throws: errors become one line and an exit code. */
export async function runCommand(argv: readonly string[], ctx: Context): Promise<number> {
  let json = wantsJson(argv);
  try {
    const [verbName, ...rest] = argv;
    const asked = helpRequest(argv, ctx.io.columns);
    if (asked) {
      if (asked.code !== EXIT.ok) throw usageError(asked.err.replace(/^error: /, '').trimEnd(), 'verb');
      ctx.io.out(asked.out);
      return EXIT.ok;
    }
    if (verbName === '__complete') {
      const { engine } = ctx;
      ctx.io.out(
        complete(VERBS, rest, {
          clusters: () => (may(ctx.actor, 'read') ? engine.listClusters().map((c) => c.name) : []),
          tasks: () => (may(ctx.actor, 'read') ? engine.listTasks({ limit: 50 }).map((t) => t.id) : []),
        }).map((w) => `${w}\n`).join(''),
      );
      return EXIT.ok;
    }
    const verb = VERBS.find((v) => v.name === verbName);
    if (!verb) throw usageError(`verb: unknown verb ${shown(verbName!, 40)} (kindler help lists them)`, 'verb');
    const parsed = parseArgs(verb, verb.prepare ? verb.prepare(rest) : rest);
    json = parsed.flags.json === true;
    if (parsed.flags.help) {
      ctx.io.out(helpText(verb, ctx.io.columns));
      return EXIT.ok;
    }
    return await verb.run(parsed, ctx, json);
  } catch (e) {
    const err = e instanceof KindlerError ? e : new KindlerError('failed', `internal error: ${(e as Error).message}`);
    const message = sanitizeLine(err.message);
    // The argv is untrusted: audit it sanitized and cut, never raw (it is shown and stored).
    if (err.kind === 'refused') ctx.engine.recordAudit(ctx.actor, sanitizeLine(argv[0] ?? '').slice(0, 40), sanitizeLine(argv[1] ?? '').slice(0, 120), 'refused', message);
    if (json) ctx.io.out(`${jsonText({ error: { kind: err.kind, message, exitCode: err.exitCode, ...(err.field ? { field: err.field } : {}) } })}\n`);
    ctx.io.err(`error: ${message}\n`);
    return err.exitCode;
  }
}
