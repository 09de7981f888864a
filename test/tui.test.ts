/**
 * The TUI driven directly (no SSH): a TTY-looking stream pair whose output feeds a headless xterm,
 * and a fake SessionBackend. Assertions read the visible text grid; tests wait for on-screen text
 * with a deadline (re-checked in term.write callbacks) and never sleep.
 */
import assert from 'node:assert/strict';
import { createHook } from 'node:async_hooks';
import { test } from 'node:test';
import { PassThrough } from 'node:stream';
import blessed from 'blessed';
import xterm from '@xterm/headless';
import { authorize, type Action, type Role } from '../src/access/authorize.js';
import type { Principal } from '../src/commands/index.js';
import { LocalSession, type SessionBackend, type VerbResult } from '../src/commands/session.js';
import type { Cluster, Task } from '../src/core/types.js';
import type { EngineEvent, EngineEventInput, SessionInfo, Snapshot } from '../src/core/feed.js';
import { openTui, type TuiHandle, type TuiOptions } from '../src/tui/index.js';
import { makeWorld, startEngine } from './helpers.js';

const { Terminal } = xterm;

/** A cluster record with sensible defaults. */
function cluster(name: string, over: Partial<Cluster> = {}): Cluster {
  return {
    name,
    provider: 'k3d',
    servers: 1,
    agents: 2,
    httpPort: 8080,
    httpsPort: 8443,
    apiPort: 6443,
    owner: 'alice',
    createdAt: '2026-01-01T00:00:00.000Z',
    desired: 'present',
    actual: 'running',
    kubeContext: `k3d-${name}`,
    kubeconfig: `/tmp/${name}.yaml`,
    updatedAt: '2026-01-01T00:00:00.000Z',
    ...over,
  };
}

/** A task record with sensible defaults. */
function task(id: string, clusterName: string, over: Partial<Task> = {}): Task {
  return {
    id,
    kind: 'create',
    cluster: clusterName,
    user: 'alice',
    state: 'running',
    progress: 0,
    steps: [],
    createdAt: new Date().toISOString(),
    startedAt: new Date().toISOString(),
    notes: [],
    logLines: 0,
    ...over,
  };
}

type RunHandler = (argv: string[]) => VerbResult | Promise<VerbResult>;

/** A SessionBackend serving a fixed snapshot; the test pushes events and scripts run() results. */
class FakeBackend implements SessionBackend {
  readonly principal: Principal;
  readonly host = 'devbox';
  readonly runs: string[][] = [];
  readonly listeners = new Set<(e: EngineEvent) => void>();
  seq = 10;
  snapshot: Snapshot;
  handler: RunHandler = (argv) => {
    if (argv[0] === 'logs') return { code: 0, out: `${JSON.stringify({ task: null, from: 0, lines: [] })}\n`, err: '' };
    return { code: 0, out: `${JSON.stringify({ task: task('t-99', argv[1] ?? '?', { kind: 'create', state: 'queued' }) })}\n`, err: '' };
  };

  constructor(role: Role = 'admin', user = 'alice', data: { clusters?: Cluster[]; tasks?: Task[]; sessions?: SessionInfo[] } = {}) {
    this.principal = { user, role, source: 'test' };
    this.snapshot = {
      seq: this.seq,
      clusters: data.clusters ?? [],
      tasks: data.tasks ?? [],
      sessions: data.sessions ?? [{ id: 's-1', user, role, source: 'test', since: new Date().toISOString() }],
    };
  }

  async subscribe(l: (e: EngineEvent) => void): Promise<{ snapshot: Snapshot; unsubscribe: () => void }> {
    this.listeners.add(l);
    return { snapshot: structuredClone({ ...this.snapshot, seq: this.seq }), unsubscribe: () => void this.listeners.delete(l) };
  }

  async run(argv: string[]): Promise<VerbResult> {
    this.runs.push(argv);
    return this.handler(argv);
  }

  may(action: Action, owner?: string, taskUser?: string): boolean {
    return authorize(this.principal, action, { owner, taskUser }).ok;
  }

  close(): void {}

  /** Delivers an event to every subscriber. */
  push(e: EngineEventInput): void {
    const ev = { ...e, seq: ++this.seq };
    for (const l of [...this.listeners]) l(ev);
  }
}

/** A TTY-looking stream pair. */
function ttyPair(cols: number, rows: number) {
  const input = Object.assign(new PassThrough(), { isTTY: true, isRaw: true, setRawMode: (_: boolean) => input });
  const output = Object.assign(new PassThrough(), { isTTY: true, columns: cols, rows });
  return { input, output };
}

/** An open TUI wired to a headless terminal. */
interface Session {
  handle: TuiHandle;
  input: ReturnType<typeof ttyPair>['input'];
  output: ReturnType<typeof ttyPair>['output'];
  exits: [number, string | undefined][];
  /** Resolves on the first onExit. */
  exited: Promise<[number, string | undefined]>;
  /** Every byte written so far (latin1), for the sanitization check. */
  raw(): string;
  /** How many writes the TUI made (one per frame). */
  chunks(): number;
  screen(): string;
  waitFor(what: string | RegExp | ((s: string) => boolean), ms?: number): Promise<string>;
  send(s: string): void;
  resize(cols: number, rows: number): void;
  close(message?: string): void;
  /** Frees the headless terminal. */
  dispose(): void;
}

/** Opens the TUI on a headless terminal. */
function openSession(backend: SessionBackend, o: { cols?: number; rows?: number; idle?: TuiOptions['idle'] } = {}): Session {
  const cols = o.cols ?? 100;
  const rows = o.rows ?? 30;
  const { input, output } = ttyPair(cols, rows);
  const term = new Terminal({ cols, rows, allowProposedApi: true });
  const chunks: Buffer[] = [];
  const waiters = new Set<() => void>();
  output.on('data', (d: Buffer) => {
    chunks.push(d);
    term.write(d, () => {
      for (const w of [...waiters]) w();
    });
  });
  const exits: [number, string | undefined][] = [];
  let onFirst!: (v: [number, string | undefined]) => void;
  const exited = new Promise<[number, string | undefined]>((r) => (onFirst = r));
  const handle = openTui({
    input,
    output,
    columns: cols,
    rows,
    backend,
    ...(o.idle ? { idle: o.idle } : {}),
    onExit: (c, r) => {
      exits.push([c, r]);
      if (exits.length === 1) onFirst([c, r]);
    },
  });
  const screen = () => {
    const b = term.buffer.active;
    return Array.from({ length: term.rows }, (_, y) => b.getLine(b.viewportY + y)?.translateToString(true) ?? '').join('\n');
  };
  const waitFor = (what: string | RegExp | ((s: string) => boolean), ms = 5000) =>
    new Promise<string>((resolve, reject) => {
      const ok = (s: string) => (typeof what === 'string' ? s.includes(what) : what instanceof RegExp ? what.test(s) : what(s));
      const check = () => {
        const s = screen();
        if (!ok(s)) return false;
        waiters.delete(check);
        clearTimeout(timer);
        resolve(s);
        return true;
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`timed out waiting for ${String(what)}; screen:\n${screen()}`));
      }, ms);
      waiters.add(check);
      check();
    });
  return {
    handle,
    input,
    output,
    exits,
    exited,
    raw: () => Buffer.concat(chunks).toString('latin1'),
    chunks: () => chunks.length,
    screen,
    waitFor,
    send: (s) => void input.write(s),
    resize: (c, r) => {
      term.resize(c, r);
      handle.resize(c, r);
    },
    close: (m) => {
      handle.close(m);
    },
    dispose: () => term.dispose(),
  };
}

// ------------------------------------------------------------------------------------------------

function deferred<T>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

const ok = (value: unknown): VerbResult => ({ code: 0, out: `${JSON.stringify(value)}\n`, err: '' });

/** The daemon's reply to `logs ID [--tail N] --json` for a task whose whole log is `lines`. */
function logsReply(lines: string[], id = 't-1', argv: string[] = []): VerbResult {
  const at = argv.indexOf('--tail');
  const keep = at >= 0 ? lines.slice(-Number(argv[at + 1])) : lines;
  return ok({ task: task(id, 'alpha'), from: lines.length - keep.length, lines: keep });
}

/** Opens a session and always closes it after the test. */
function start(t: { after(fn: () => void): void }, backend: SessionBackend, o: Parameters<typeof openSession>[1] = {}): Session {
  const s = openSession(backend, o);
  t.after(() => {
    s.close();
    s.dispose();
  });
  return s;
}

const footer = (screen: string) => screen.split('\n').at(-1) ?? '';
const count = (hay: string, needle: string) => hay.split(needle).length - 1;

test('the table shows the snapshot clusters with their columns', async (t) => {
  const b = new FakeBackend('admin', 'alice', {
    clusters: [
      cluster('alpha'),
      cluster('beta', { provider: 'kind', owner: 'bob', agents: 0, httpPort: 9080, httpsPort: 9443, apiPort: 7443, desired: 'stopped', actual: 'stopped' }),
    ],
  });
  const s = start(t, b);
  const screen = await s.waitFor('beta');
  assert.match(screen, /alpha\s+k3d\s+present running\s+1\+2\s+8080\s+8443\s+6443\s+-\s+alice/);
  assert.match(screen, /beta\s+kind\s+stopped stopped\s+1\+0\s+9080\s+9443\s+7443\s+-\s+bob/);
  assert.match(screen, /NAME↑?\s+PROV\s+DESIRED\s+ACTUAL\s+NODES\s+HTTP\s+HTTPS\s+API\s+DOMAIN\s+OWNER\s+EXPIRES/);
  assert.match(screen, /kindler │ devbox │ alice \(admin\)/);
});

test('a pushed cluster event appears and a removed cluster goes', async (t) => {
  const b = new FakeBackend('admin', 'alice', { clusters: [cluster('alpha')] });
  const s = start(t, b);
  await s.waitFor('alpha');
  b.push({ type: 'cluster', cluster: cluster('gamma', { actual: 'creating', owner: 'carol' }) });
  await s.waitFor(/gamma\s+k3d\s+present creating/);
  b.push({ type: 'cluster-removed', name: 'alpha' });
  await s.waitFor((x) => !x.includes('alpha ') && x.includes('gamma'));
});

test('who else is online comes from the snapshot and presence events', async (t) => {
  const me = { id: 's-1', user: 'alice', role: 'admin', source: 'ssh', since: '2026-01-01T00:00:00Z' };
  const b = new FakeBackend('admin', 'alice', { sessions: [me, { ...me, id: 's-2', user: 'bob' }] });
  const s = start(t, b);
  await s.waitFor('online: bob');
  b.push({ type: 'presence', sessions: [me, { ...me, id: 's-3', user: 'carol' }] });
  await s.waitFor((x) => x.includes('online: carol') && !x.includes('bob'));
});

test('the header says when state is not being saved, from the snapshot and from storage events', async (t) => {
  const b = new FakeBackend();
  b.snapshot.storage = {
    saving: false,
    problem: 'the state file could not be written (ENOSPC: no space left on device)',
    since: '2026-01-01T10:11:12.000Z',
    failures: 3,
  };
  const s = start(t, b);
  await s.waitFor('STATE NOT BEING SAVED since 10:11:12Z: the state file could not be written (ENOSPC');
  b.push({ type: 'storage', storage: { saving: true } });
  await s.waitFor((x) => x.includes('kindler') && !x.includes('NOT BEING SAVED'));
  b.push({
    type: 'storage',
    storage: { saving: false, problem: 'the state file could not be written (EPERM: operation not permitted)', since: '2026-01-01T10:20:00.000Z', failures: 1 },
  });
  await s.waitFor('STATE NOT BEING SAVED since 10:20:00Z: the state file could not be written (EPERM');
});

test('progress advances as task events arrive (attached mid-task)', async (t) => {
  const running = task('t-1', 'alpha', { progress: 10, step: 'Creating cluster', user: 'bob' });
  const b = new FakeBackend('admin', 'alice', { clusters: [cluster('alpha', { actual: 'creating', lastTaskId: 't-1' })], tasks: [running] });
  const s = start(t, b);
  await s.waitFor(/t-1\s+create alpha\s+\S+\s+10%\s+\S+ bob\s+Creating cluster/);
  b.push({ type: 'task', task: { ...running, progress: 55, step: 'Writing kubeconfig' } });
  await s.waitFor(/55%\s+\S+ bob\s+Writing kubeconfig/);
  b.push({ type: 'task', task: { ...running, progress: 100, state: 'succeeded', finishedAt: new Date().toISOString() } });
  await s.waitFor('no queued or running tasks');
});

test('log: history from `logs ID --tail CAP --json`, then live lines joined by `from` (no doubles, no gaps)', async (t) => {
  const reply = deferred<VerbResult>();
  const b = new FakeBackend('admin', 'alice', { clusters: [cluster('alpha', { lastTaskId: 't-1' })], tasks: [task('t-1', 'alpha', { logLines: 2 })] });
  b.handler = (argv) => (argv[0] === 'logs' ? reply.promise : ok({}));
  const s = start(t, b);
  await s.waitFor('loading the log of t-1');
  assert.deepEqual(b.runs[0], ['logs', 't-1', '--tail', '5000', '--json']);
  // A live batch arrives while the history is being read: shown at once under the notice, and
  // joined without a double once the history (which already holds it) arrives.
  b.push({ type: 'log', taskId: 't-1', from: 2, lines: ['line three'] });
  const loading = await s.waitFor('line three');
  assert.match(loading, /loading the log of t-1/);
  reply.resolve(logsReply(['line one', 'line two', 'line three']));
  await s.waitFor('line one');
  await s.waitFor('line three');
  b.push({ type: 'log', taskId: 't-1', from: 1, lines: ['line two', 'line three', 'line four'] });
  b.push({ type: 'log', taskId: 't-2', from: 0, lines: ['someone else'] });
  const screen = await s.waitFor('line four');
  assert.equal(count(screen, 'line two'), 1);
  assert.equal(count(screen, 'line three'), 1);
  assert.ok(!screen.includes('someone else'));
  assert.ok(screen.indexOf('line one') < screen.indexOf('line four'));
});

test('a task seen from before its first line shows its live lines at once, with no history fetch', async (t) => {
  const b = new FakeBackend('admin', 'alice', {
    clusters: [cluster('alpha', { lastTaskId: 't-1' })],
    tasks: [task('t-1', 'alpha', { state: 'queued', startedAt: undefined })],
  });
  b.handler = (argv) => (argv[0] === 'logs' ? logsReply(['from the history']) : ok({}));
  const s = start(t, b);
  await s.waitFor(/log t-1 create alpha/);
  b.push({ type: 'task', task: task('t-1', 'alpha') });
  b.push({ type: 'log', taskId: 't-1', from: 0, lines: ['first line', 'second line'] });
  b.push({ type: 'log', taskId: 't-1', from: 2, lines: ['third line'] });
  const screen = await s.waitFor('third line');
  assert.ok(screen.indexOf('first line') < screen.indexOf('third line'));
  assert.ok(!screen.includes('from the history'));
  assert.deepEqual(
    b.runs.filter((r) => r[0] === 'logs'),
    [],
    'no `logs` request',
  );
  // A flood's skipped middle starts the window over at the event's lines.
  b.push({ type: 'log', taskId: 't-1', from: 9000, skipped: 8997, lines: ['after the skip'] });
  const later = await s.waitFor('after the skip');
  assert.match(later, /9000 earlier lines not in memory/);
  assert.deepEqual(
    b.runs.filter((r) => r[0] === 'logs'),
    [],
    'still no `logs` request',
  );
});

test('a long history is bounded and says how many earlier lines are not in memory', async (t) => {
  const lines = Array.from({ length: 6000 }, (_, i) => `row ${i}`);
  const b = new FakeBackend('admin', 'alice', { clusters: [cluster('alpha', { lastTaskId: 't-1' })], tasks: [task('t-1', 'alpha', { state: 'succeeded' })] });
  b.handler = (argv) => (argv[0] === 'logs' ? logsReply(lines, 't-1', argv) : ok({}));
  const s = start(t, b);
  const screen = await s.waitFor('row 5999');
  assert.match(screen, /1000 earlier lines not in memory/);
  assert.deepEqual(b.runs[0], ['logs', 't-1', '--tail', '5000', '--json'], 'only the lines the pane keeps are fetched');
});

test('the create form runs `create … --json` and shows the CLI error inline', async (t) => {
  const b = new FakeBackend('operator', 'alice', { clusters: [cluster('alpha')] });
  b.handler = (argv) =>
    argv[0] === 'create'
      ? {
          code: 5,
          out: `${JSON.stringify({ error: { kind: 'conflict', message: 'http-port: port 30080 is in use', exitCode: 5, field: 'http-port' } })}\n`,
          err: 'error: http-port: port 30080 is in use\n',
        }
      : ok({ task: null, from: 0, lines: [] });
  const s = start(t, b);
  await s.waitFor('alpha');
  s.send('c');
  await s.waitFor('create a cluster');
  s.send('demo');
  s.send('\t\x1b[C'); // provider: → k3d
  s.send('\t\t1'); // agents
  s.send('\t\t80'); // http port
  s.send('\t\t\t\t2h'); // ttl
  await s.waitFor(/TTL:\s+2h/);
  s.send('\r');
  // Checked in the form first: nothing runs.
  await s.waitFor('http-port: must be a port number 1024-65535 (got "80")');
  assert.ok(!b.runs.some((r) => r[0] === 'create'));
  s.send('\x15300'); // the http port field has the focus: now 30080 (Ctrl-U first)
  s.send('80\r');
  const screen = await s.waitFor('error: http-port: port 30080 is in use');
  assert.match(screen, /create a cluster/, 'the form stays open');
  const argv = b.runs.find((r) => r[0] === 'create')!;
  assert.deepEqual(argv, ['create', '--provider=k3d', '--agents=1', '--http-port=30080', '--ttl=2h', '--json', '--', 'demo']);
  // Only stderr (no JSON): the first line is shown.
  b.handler = () => ({ code: 4, out: '', err: 'error: name: a cluster named "demo" already exists\n' });
  s.send('\r');
  await s.waitFor('error: name: a cluster named "demo" already exists');
  s.send('\x1b');
  await s.waitFor((x) => !x.includes('create a cluster'));
});

test('a successful create closes the form and reports the task', async (t) => {
  const b = new FakeBackend('operator', 'alice', { clusters: [cluster('alpha')] });
  const s = start(t, b);
  await s.waitFor('alpha');
  s.send('c');
  await s.waitFor('create a cluster');
  s.send('newone\r');
  await s.waitFor('create newone: task t-99 queued');
  assert.ok(!s.screen().includes('create a cluster'));
});

test('a viewer sees no c/d/s keys and pressing them does nothing', async (t) => {
  const b = new FakeBackend('viewer', 'vic', { clusters: [cluster('alpha', { lastTaskId: 't-1' })], tasks: [task('t-1', 'alpha')] });
  const s = start(t, b);
  const screen = await s.waitFor('alpha');
  const keys = footer(screen);
  assert.match(keys, /\? help/);
  for (const k of ['c create', 'd delete', 's stop', 's start', 'x cancel']) assert.ok(!keys.includes(k), `footer shows ${k}: ${keys}`);
  s.send('c');
  s.send('d');
  s.send('s');
  s.send('x');
  s.send('?');
  const help = await s.waitFor('this help');
  assert.ok(!help.includes('create a cluster'));
  assert.ok(!help.includes('delete the selected'));
  assert.deepEqual(
    b.runs.filter((r) => r[0] !== 'logs'),
    [],
  );
});

test('an operator gets d/s/x only on clusters it owns', async (t) => {
  const b = new FakeBackend('operator', 'alice', {
    clusters: [cluster('alpha'), cluster('beta', { owner: 'bob', lastTaskId: 't-2' })],
    tasks: [task('t-2', 'beta', { user: 'bob' })],
  });
  const s = start(t, b);
  let screen = await s.waitFor('beta');
  assert.match(footer(screen), /d delete\s+s stop/);
  s.send('j');
  await s.waitFor((x) => !footer(x).includes('d delete'));
  screen = s.screen();
  assert.ok(!footer(screen).includes('s stop') && !footer(screen).includes('x cancel'), footer(screen));
  s.send('d');
  s.send('x');
  s.send('?');
  await s.waitFor('this help');
  assert.deepEqual(
    b.runs.filter((r) => r[0] !== 'logs'),
    [],
  );
});

test('delete asks for the exact name before running `delete NAME --json`', async (t) => {
  const b = new FakeBackend('admin', 'alice', { clusters: [cluster('alpha'), cluster('beta')] });
  const s = start(t, b);
  await s.waitFor('beta');
  s.send('d');
  await s.waitFor('Delete cluster alpha?');
  s.send('alph\r');
  await s.waitFor('does not match');
  assert.equal(b.runs.filter((r) => r[0] === 'delete').length, 0);
  s.send('x\r'); // typed "alphx"
  await s.waitFor((x) => x.includes('alphx') && x.includes('does not match'));
  s.send('\x7fa\r'); // fix it to "alpha"
  await s.waitFor('delete alpha: task t-99 queued');
  assert.deepEqual(
    b.runs.filter((r) => r[0] === 'delete'),
    [['delete', 'alpha', '--json']],
  );
});

test('s toggles start/stop by state and x cancels the active task', async (t) => {
  const b = new FakeBackend('admin', 'alice', {
    clusters: [cluster('alpha'), cluster('beta', { desired: 'stopped', actual: 'stopped', lastTaskId: 't-5' })],
    tasks: [task('t-5', 'beta', { kind: 'start', state: 'queued' })],
  });
  const s = start(t, b);
  await s.waitFor('beta');
  // Each asks first, naming the target (issue 18); y runs it, n does nothing.
  s.send('s');
  await s.waitFor('Stop cluster alpha (k3d, owner alice)?');
  s.send('n');
  await s.waitFor((x) => !x.includes('Stop cluster alpha'));
  assert.deepEqual(
    b.runs.filter((r) => r[0] !== 'logs'),
    [],
  );
  s.send('s');
  await s.waitFor('Stop cluster alpha');
  s.send('y');
  await s.waitFor('stop alpha: task t-99 queued');
  s.send('j');
  await s.waitFor((x) => footer(x).includes('s start') && footer(x).includes('x cancel'));
  s.send('s');
  await s.waitFor('Start cluster beta');
  s.send('y');
  await s.waitFor('start beta: task t-99 queued');
  b.handler = (argv) =>
    argv[0] === 'cancel' ? { code: 4, out: '', err: 'error: cancel: task t-5 already finished\n' } : ok({ task: null, from: 0, lines: [] });
  s.send('x');
  await s.waitFor('Cancel task t-5: start of cluster beta (queued');
  s.send('y');
  await s.waitFor('failed: cancel: task t-5 already finished');
  const acts = b.runs.filter((r) => r[0] !== 'logs');
  assert.deepEqual(acts, [
    ['stop', 'alpha', '--json'],
    ['start', 'beta', '--json'],
    ['cancel', 't-5', '--json'],
  ]);
});

test('enter shows `show NAME --json --live` rendered, including steps', async (t) => {
  const c = cluster('alpha', {
    lastError: 'kubeconfig step failed',
    steps: [{ key: 'cluster', title: 'Create the k3d cluster', state: 'succeeded', at: '2026-01-01T00:00:00Z', taskId: 't-1' }],
  });
  const b = new FakeBackend('admin', 'alice', { clusters: [c] });
  b.handler = (argv) => (argv[0] === 'show' ? ok({ cluster: c, tasks: [task('t-1', 'alpha', { state: 'failed' })] }) : ok({ task: null, from: 0, lines: [] }));
  const s = start(t, b);
  await s.waitFor('alpha');
  s.send('\r');
  const screen = await s.waitFor('Create the k3d cluster');
  assert.match(screen, /last error\s+kubeconfig step failed/);
  assert.match(screen, /domain\s+-/);
  assert.deepEqual(
    b.runs.find((r) => r[0] === 'show'),
    ['show', 'alpha', '--json', '--live'],
  );
  s.send('\x1b');
  await s.waitFor((x) => !x.includes('Create the k3d cluster'));
});

test('filter, sort and log search', async (t) => {
  const b = new FakeBackend('admin', 'alice', {
    clusters: [cluster('alpha', { owner: 'zed', lastTaskId: 't-1' }), cluster('beta', { owner: 'amy' })],
    tasks: [task('t-1', 'alpha', { state: 'succeeded' })],
  });
  b.handler = (argv) => (argv[0] === 'logs' ? logsReply(['first line', 'needle here', 'last line']) : ok({}));
  const s = start(t, b);
  await s.waitFor('needle here');
  s.send('S');
  await s.waitFor('sort: state');
  s.send('S');
  await s.waitFor((x) => x.includes('sort: owner') && x.indexOf('beta ') < x.indexOf('alpha '));
  s.send('/bet');
  await s.waitFor((x) => x.includes('filter: bet') && !x.includes('alpha '));
  s.send('\r');
  s.send('\x1b'); // esc clears the filter
  await s.waitFor((x) => x.includes('alpha ') && x.includes('beta '));
  s.send('gG'); // back to the top, then the last row (alpha, sorted by owner)
  s.send('\t\t'); // focus the log
  await s.waitFor('/ search');
  s.send('/needle\r');
  await s.waitFor('/needle 1/1');
  assert.match(footer(s.screen()), /n\/N next\/prev/);
});

test('l shows the log full-screen and f toggles follow', async (t) => {
  const b = new FakeBackend('admin', 'alice', { clusters: [cluster('alpha', { lastTaskId: 't-1' })], tasks: [task('t-1', 'alpha', { state: 'succeeded' })] });
  b.handler = (argv) => (argv[0] === 'logs' ? logsReply(['only line']) : ok({}));
  const s = start(t, b);
  await s.waitFor('following');
  s.send('l');
  await s.waitFor((x) => !x.includes('NAME') && x.includes('only line'));
  s.send('f');
  await s.waitFor('paused at 1');
  s.send('\x1b');
  await s.waitFor('NAME');
});

test('a mouse click selects a table row', async (t) => {
  const b = new FakeBackend('admin', 'alice', {
    clusters: [cluster('alpha', { lastTaskId: 't-1' }), cluster('beta', { lastTaskId: 't-2' })],
    tasks: [task('t-1', 'alpha', { state: 'succeeded' }), task('t-2', 'beta', { state: 'succeeded' })],
  });
  b.handler = (argv) => (argv[0] === 'logs' ? logsReply([`log of ${argv[1]}`], argv[1]) : ok({}));
  const s = start(t, b);
  const screen = await s.waitFor('log of t-1');
  const y = screen.split('\n').findIndex((l) => /^│\S beta/.test(l));
  s.send(`\x1b[<0;5;${y + 1}M`); // SGR mouse: press, then release (one report per read)
  s.send(`\x1b[<0;5;${y + 1}m`);
  await s.waitFor('log of t-2');
});

test('below 80x24 a too-small view replaces the layout; resizing back restores it', async (t) => {
  const b = new FakeBackend('admin', 'alice', { clusters: [cluster('alpha')] });
  const s = start(t, b);
  await s.waitFor('alpha');
  s.resize(70, 20);
  const small = await s.waitFor('terminal too small (need 80x24, have 70x20)');
  assert.ok(!small.includes('alpha'));
  s.resize(80, 24);
  const back = await s.waitFor('alpha');
  assert.ok(!back.includes('too small'));
  assert.match(back, /NAME/);
});

test('q calls onExit(0) exactly once', async (t) => {
  const b = new FakeBackend('admin', 'alice', { clusters: [cluster('alpha')] });
  const s = start(t, b);
  await s.waitFor('alpha');
  s.send('q');
  assert.deepEqual(await s.exited, [0, 'quit']);
  s.send('q');
  s.send('\x03');
  s.close('again');
  assert.deepEqual(s.exits, [[0, 'quit']]);
  assert.equal(b.listeners.size, 0);
});

test('Ctrl-C quits even from a form (asking first once the form has input)', async (t) => {
  const b = new FakeBackend('admin', 'alice', { clusters: [cluster('alpha')] });
  const s = start(t, b);
  await s.waitFor('alpha');
  s.send('c');
  await s.waitFor('create a cluster');
  s.send('q'); // typed into the name field, not a quit
  await s.waitFor(/name:\s+q/);
  s.send('\x03');
  await s.waitFor('The form has input that will be lost.');
  s.send('y');
  assert.deepEqual(await s.exited, [0, 'quit']);
});

test('close(message) tears down and leaves the message on the normal screen', async (t) => {
  const b = new FakeBackend('admin', 'alice', { clusters: [cluster('alpha')] });
  const s = start(t, b);
  await s.waitFor('alpha');
  s.close('kindler is restarting for maintenance');
  const screen = await s.waitFor('kindler is restarting for maintenance');
  assert.ok(!screen.includes('alpha'));
  assert.deepEqual(s.exits, [[0, 'closed']]);
});

test('idle: a warning after warnMs, a key resets it, then closeMs closes with onExit(0, "idle")', async (t) => {
  const b = new FakeBackend('admin', 'alice', { clusters: [cluster('alpha')] });
  const s = start(t, b, { idle: { warnMs: 150, closeMs: 1200 } });
  await s.waitFor('alpha');
  await s.waitFor('closes in');
  s.send('j');
  await s.waitFor((x) => !x.includes('closes in'));
  assert.equal(s.exits.length, 0);
  await s.waitFor('closes in');
  assert.deepEqual(await s.exited, [0, 'idle']);
});

test('escape sequences in log lines and cluster fields never reach the terminal', async (t) => {
  const evil = 'x\x1b]0;pwned\x07y \x1b[2J z \x9b2J';
  const c = cluster('alpha', { lastTaskId: 't-1', owner: `ow\x1b[2Jner`, lastError: `boom ${evil}` });
  const b = new FakeBackend('admin', 'alice', { clusters: [cluster('beta')], tasks: [task('t-1', 'alpha', { step: `step ${evil}`, logLines: 1 })] });
  b.handler = (argv) => (argv[0] === 'logs' ? logsReply([`history ${evil}`]) : argv[0] === 'show' ? ok({ cluster: c, tasks: [] }) : ok({}));
  const s = start(t, b);
  await s.waitFor('beta');
  const before = s.raw().length;
  b.push({ type: 'cluster', cluster: c });
  await s.waitFor('owner');
  s.send('k'); // select alpha (sorted first)
  b.push({ type: 'log', taskId: 't-1', from: 1, lines: [`live ${evil}`] });
  await s.waitFor((x) => x.includes('live xy') && x.includes('history xy'));
  s.send('\r');
  await s.waitFor('boom xy');
  const out = s.raw().slice(before);
  assert.ok(!out.includes('\x1b]0;'), 'no OSC 0 (title) from content');
  assert.ok(!out.includes('\x1b[2J'), 'no clear-screen from content');
  assert.ok(!out.includes('pwned'));
  assert.ok(!out.includes('\x9b'));
});

test('200 open/close cycles leave no screens, no blessed listeners on the streams and no subscriptions', async () => {
  const baseScreens = (blessed as unknown as { Screen: { instances: unknown[] } }).Screen.instances.length;
  const baseSigint = process.listenerCount('SIGINT');
  const b = new FakeBackend('admin', 'alice', { clusters: [cluster('alpha'), cluster('beta')], tasks: [task('t-1', 'alpha')] });
  for (let i = 0; i < 200; i++) {
    const { input, output } = ttyPair(100, 30);
    output.resume();
    const inputBase = input.eventNames().map(String).sort();
    let exits = 0;
    const h = openTui({ input, output, columns: 100, rows: 30, backend: b, idle: { warnMs: 60_000, closeMs: 120_000 }, onExit: () => exits++ });
    if (i % 2) await new Promise<void>((r) => setImmediate(r)); // half the cycles close after the snapshot arrived
    if (i % 3 === 0) h.resize(120, 40);
    const theirs = () => {}; // the caller's own listeners, added after openTui, must survive close()
    input.on('data', theirs);
    output.on('close', theirs);
    h.close();
    h.close();
    assert.equal(exits, 1);
    assert.ok(input.listeners('data').includes(theirs) && output.listeners('close').includes(theirs));
    input.off('data', theirs);
    output.off('close', theirs);
    assert.deepEqual(input.eventNames().map(String).sort(), inputBase, `cycle ${i}: listeners left on the input`);
  }
  await new Promise<void>((r) => setImmediate(r));
  assert.equal((blessed as unknown as { Screen: { instances: unknown[] } }).Screen.instances.length, baseScreens);
  assert.equal(b.listeners.size, 0);
  assert.equal(process.listenerCount('SIGINT'), baseSigint);
});

test('a burst of events is coalesced into a frame or two', async (t) => {
  const b = new FakeBackend('admin', 'alice', { clusters: [cluster('alpha')], tasks: [task('t-7', 'zeta', { progress: 0 })] });
  const s = start(t, b);
  await s.waitFor(/t-7\s+create zeta.*\s0%/);
  const before = s.chunks();
  for (let i = 1; i <= 200; i++) b.push({ type: 'task', task: task('t-7', 'zeta', { progress: i / 2, step: `step ${i}` }) });
  await s.waitFor('step 200');
  assert.ok(s.chunks() - before <= 2, `${s.chunks() - before} frames for 200 events`);
});

test('no timer runs while nothing time-based is shown; the 1 s tick runs only while it is', async (t) => {
  // Count the live timers the TUI itself created (the headless terminal has timers of its own).
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 30;
  const live = new Set<number>();
  const hook = createHook({
    init(id, type) {
      if (type === 'Timeout' && /[\\/]src[\\/]tui[\\/]/.test(new Error().stack ?? '')) live.add(id);
    },
    destroy(id) {
      live.delete(id);
    },
  }).enable();
  t.after(() => {
    hook.disable();
    Error.stackTraceLimit = limit;
  });
  const settled = () => new Promise<void>((r) => setImmediate(r)); // destroy hooks run asynchronously
  const b = new FakeBackend('admin', 'alice', { clusters: [cluster('alpha')] });
  const s = start(t, b);
  await s.waitFor((x) => x.includes('alpha') && x.includes('no queued or running tasks'));
  await settled();
  assert.equal(live.size, 0, 'idle: no timers');
  b.push({ type: 'task', task: task('t-8', 'zeta') });
  await s.waitFor(/t-8\s+create zeta/);
  await settled();
  assert.equal(live.size, 1, 'the 1 s tick while an elapsed time is shown');
  b.push({ type: 'task', task: task('t-8', 'zeta', { state: 'succeeded' }) });
  await s.waitFor('no queued or running tasks');
  await settled();
  assert.equal(live.size, 0, 'no tick once nothing time-based is shown');
  b.push({ type: 'cluster', cluster: cluster('beta', { expiresAt: new Date(Date.now() + 86_400_000).toISOString() }) });
  await s.waitFor(/beta.*(23h59m|1d)/);
  await settled();
  assert.equal(live.size, 1, 'the tick while an expiry is shown');
});

test('admin: r runs `reconcile --json` and shows drift, healed task ids and errors in a dialog', async (t) => {
  const b = new FakeBackend('admin', 'alice', { clusters: [cluster('alpha')] });
  const pass = {
    at: '2026-01-01T10:00:00.000Z',
    dryRun: false,
    drift: [
      { kind: 'stopped', cluster: 'alpha', detail: 'state says running, the provider says stopped', heal: 'start' },
      { kind: 'unmanaged', cluster: 'stray\x1b[2J', detail: 'the provider has it\x1b]0;pwned\x07', heal: 'report' },
    ],
    healed: [{ cluster: 'alpha', kind: 'stopped', taskId: 't-42' }],
    skipped: [],
    errors: [{ cluster: 'beta', error: 'k3d: boom' }],
  };
  b.handler = (argv) => (argv[0] === 'reconcile' ? { code: 1, out: `${JSON.stringify(pass)}\n`, err: '' } : ok({ task: null, from: 0, lines: [] }));
  const s = start(t, b);
  let screen = await s.waitFor('alpha');
  assert.match(footer(screen), /r reconcile/);
  const before = s.raw().length;
  s.send('r');
  screen = await s.waitFor('healed  alpha: stopped → task t-42');
  assert.match(screen, /2 drift · 1 healed · 1 errors/);
  assert.match(screen, /drift\s+stopped\s+alpha: state says running, the provider says stopped \(heal: start\)/);
  assert.match(screen, /drift\s+unmanaged stray: the provider has it/);
  assert.match(screen, /error\s+beta: k3d: boom/);
  assert.ok(!s.raw().slice(before).includes('\x1b[2J') && !s.raw().includes('pwned'), 'drift text is sanitized');
  assert.deepEqual(
    b.runs.filter((r) => r[0] !== 'logs'),
    [['reconcile', '--json']],
  );
  s.send('\x1b');
  await s.waitFor((x) => !x.includes('t-42'));
  b.handler = () => ok({ at: '2026-01-01T11:00:00.000Z', dryRun: false, drift: [], healed: [], skipped: [], errors: [] });
  s.send('r');
  await s.waitFor('no drift');
  assert.equal(b.runs.filter((r) => r[0] === 'reconcile').length, 2);
});

test("a viewer's footer has no r, r does nothing, and help does not mention reconcile or :audit", async (t) => {
  const b = new FakeBackend('viewer', 'vic', { clusters: [cluster('alpha', { expiresAt: new Date(Date.now() + 3_600_000).toISOString() })] });
  const s = start(t, b);
  const screen = await s.waitFor('alpha');
  assert.ok(!footer(screen).includes('reconcile') && !footer(screen).includes('extend'), footer(screen));
  assert.match(footer(screen), /: cmd/);
  s.send('r');
  s.send('e');
  s.send('?');
  const help = await s.waitFor('this help');
  assert.ok(!help.includes('reconcile') && !help.includes(':audit') && !help.includes('extend the selected'), help);
  assert.deepEqual(
    b.runs.filter((r) => r[0] !== 'logs'),
    [],
  );
});

test(':audit shows the audit log for an admin, newest last and scrollable; unknown commands error inline; :q quits', async (t) => {
  const at = (i: number) => new Date(Date.UTC(2026, 0, 1, 0, i)).toISOString();
  const events = Array.from({ length: 60 }, (_, i) => ({
    at: at(i),
    user: `u${i}`,
    source: 'ssh',
    action: 'create',
    target: `c${i}`,
    result: 'ok',
    taskId: `t-${i}` as string | undefined,
  }));
  events.push({ at: at(61), user: 'mallory', source: 'ssh', action: 'delete', target: 'prod\x1b[2J', result: 'refused', taskId: undefined });
  const shuffled = [events[60]!, ...events.slice(0, 60).reverse()]; // out of order on purpose
  const b = new FakeBackend('admin', 'alice', { clusters: [cluster('alpha')] });
  b.handler = (argv) => (argv[0] === 'audit' ? ok({ events: shuffled }) : ok({ task: null, from: 0, lines: [] }));
  const s = start(t, b);
  await s.waitFor('alpha');
  s.send(':');
  await s.waitFor((x) => footer(x).includes(':audit'));
  s.send('nope\r');
  await s.waitFor('✗ unknown command "nope" (try :audit, :reconcile, :reset, :help, :q)');
  s.send('\x1b');
  await s.waitFor((x) => !x.includes('unknown command'));
  s.send(':audit\r');
  let screen = await s.waitFor(/mallory\s+ssh\s+delete\s+prod\s+refused/);
  assert.deepEqual(
    b.runs.find((r) => r[0] === 'audit'),
    ['audit', '--json', '--limit', '500'],
  );
  assert.match(screen, /audit \(newest last\)/);
  assert.ok(screen.indexOf('u59 ') < screen.indexOf('mallory'), 'newest last');
  assert.ok(!screen.includes('u0 '), 'opened at the newest page');
  assert.match(screen, /TIME\s+USER\s+SOURCE\s+ACTION\s+TARGET\s+RESULT\s+TASK\s+DETAIL/, 'the column header stays on top');
  s.send('g');
  screen = await s.waitFor(/2026-01-01 00:00:00 u0\s+ssh\s+create\s+c0\s+ok\s+t-0/);
  assert.match(screen, /TIME\s+USER\s+SOURCE/);
  assert.ok(!screen.includes('mallory'));
  s.send('\x1b');
  await s.waitFor((x) => !x.includes('newest last'));
  s.send(':q\r');
  assert.deepEqual(await s.exited, [0, 'quit']);
});

test(':audit and :reconcile are refused (and not offered) for an operator', async (t) => {
  const b = new FakeBackend('operator', 'alice', { clusters: [cluster('alpha')] });
  const s = start(t, b);
  const screen = await s.waitFor('alpha');
  assert.ok(!footer(screen).includes('reconcile'));
  s.send(':');
  const prompt = await s.waitFor((x) => footer(x).includes(':q'));
  assert.ok(!footer(prompt).includes(':audit'), footer(prompt));
  s.send('audit\r');
  await s.waitFor(':audit is not allowed for operator (admin only)');
  s.send('\x15reconcile\r'); // Ctrl-U clears the line
  await s.waitFor(':reconcile is not allowed for operator (admin only)');
  s.send('\x1b');
  s.send('r');
  await s.waitFor((x) => !x.includes('not allowed'));
  assert.ok(!s.screen().includes('audit (newest last)'));
  assert.deepEqual(
    b.runs.filter((r) => r[0] !== 'logs'),
    [],
  );
});

test('a cluster expiring in 5 minutes shows a warning in every open session; e extends it by 1h', async (t) => {
  const dev = cluster('dev', { owner: 'alice', expiresAt: new Date(Date.now() + 5 * 60_000).toISOString() });
  const later = cluster('later', { owner: 'bob', expiresAt: new Date(Date.now() + 3 * 3_600_000).toISOString() });
  const ba = new FakeBackend('operator', 'alice', { clusters: [dev, later] });
  const bv = new FakeBackend('viewer', 'vic', { clusters: [dev, later] });
  ba.handler = (argv) => (argv[0] === 'extend' ? ok({ cluster: { ...dev, expiresAt: '2026-01-01T11:05:00.000Z' } }) : ok({ task: null, from: 0, lines: [] }));
  const a = start(t, ba);
  const v = start(t, bv, { cols: 90, rows: 26 });
  const warn = /⚠ dev expires in 4m5\ds — kindler extend dev 2h/;
  let sa = await a.waitFor(warn);
  const sv = await v.waitFor(warn);
  assert.match(sa, /select it and press e for \+1h/, 'the owner is told about e');
  assert.ok(!sv.includes('press e'), 'the viewer is not');
  assert.ok(!sa.includes('⚠ later') && !sv.includes('⚠ later'), 'only clusters within 10 minutes');
  assert.match(footer(sa), /e extend 1h/);
  assert.ok(!footer(sv).includes('extend'));
  v.send('e');
  a.send('e');
  await a.waitFor('extend dev by 1h: dev now expires at 2026-01-01T11:05:00.000Z');
  assert.deepEqual(
    ba.runs.filter((r) => r[0] !== 'logs'),
    [['extend', 'dev', '1h', '--json']],
  );
  assert.deepEqual(
    bv.runs.filter((r) => r[0] !== 'logs'),
    [],
  );
  // Not offered on a cluster this operator may not extend.
  a.send('j');
  sa = await a.waitFor((x) => !footer(x).includes('e extend'));
  a.send('e');
  // The daemon reports the new expiry: the warning goes in both sessions.
  const extended = { ...dev, expiresAt: new Date(Date.now() + 65 * 60_000).toISOString() };
  ba.push({ type: 'cluster', cluster: extended });
  bv.push({ type: 'cluster', cluster: extended });
  await a.waitFor((x) => !x.includes('⚠'));
  await v.waitFor((x) => !x.includes('⚠'));
  assert.equal(ba.runs.filter((r) => r[0] === 'extend').length, 1);
});

test('the warning counts down on the 1 s tick, and the tick stops once no cluster is expiring', async (t) => {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 30;
  const live = new Set<number>();
  const hook = createHook({
    init(id, type) {
      if (type === 'Timeout' && /[\\/]src[\\/]tui[\\/]/.test(new Error().stack ?? '')) live.add(id);
    },
    destroy(id) {
      live.delete(id);
    },
  }).enable();
  t.after(() => {
    hook.disable();
    Error.stackTraceLimit = limit;
  });
  const settled = () => new Promise<void>((r) => setImmediate(r));
  const b = new FakeBackend('admin', 'alice', { clusters: [cluster('dev', { expiresAt: new Date(Date.now() + 2500).toISOString() })] });
  const s = start(t, b);
  await s.waitFor(/⚠ dev expires in [12]s/);
  await settled();
  assert.equal(live.size, 1, 'the 1 s tick while a cluster is expiring');
  await s.waitFor(/⚠ dev expires in 0s|dev.*expired/); // driven by the tick alone: no event arrives
  await s.waitFor((x) => !x.includes('⚠') && /dev.*expired/.test(x));
  await settled();
  assert.equal(live.size, 0, 'no tick once no cluster is expiring');
  // A new expiring cluster starts it again; its removal stops it.
  b.push({ type: 'cluster', cluster: cluster('tmp', { expiresAt: new Date(Date.now() + 4 * 60_000).toISOString() }) });
  await s.waitFor(/⚠ tmp expires in 3m5\ds/);
  await settled();
  assert.equal(live.size, 1);
  b.push({ type: 'cluster-removed', name: 'tmp' });
  await s.waitFor((x) => !x.includes('⚠'));
  await settled();
  assert.equal(live.size, 0);
});

test('an internal error ends only that session, with onExit(1)', async (t) => {
  const good = new FakeBackend('admin', 'alice', { clusters: [cluster('alpha')] });
  const other = start(t, good);
  await other.waitFor('alpha');
  const bad = new FakeBackend('admin', 'alice', { clusters: [cluster('alpha')] });
  let explode = false;
  const may = bad.may.bind(bad);
  bad.may = (...a) => {
    if (explode) throw new Error('boom');
    return may(...a);
  };
  const s = start(t, bad);
  await s.waitFor('alpha');
  explode = true;
  s.send('j');
  assert.deepEqual(await s.exited, [1, 'error']);
  await s.waitFor('kindler: internal error: boom');
  other.send('?');
  await other.waitFor('move the selection');
});

test('two sessions side by side: widgets built after another screen exists stay on their own screen', async (t) => {
  const ba = new FakeBackend('admin', 'alice');
  const a = start(t, ba);
  const bb = new FakeBackend('viewer', 'bob', { clusters: [cluster('bobs')] });
  const b = start(t, bb, { cols: 90, rows: 26 });
  await a.waitFor('no clusters (press c to create one)');
  await b.waitFor('bobs');
  // New list rows (blessed elements) are created for A while B's screen is the newest one.
  ba.push({ type: 'cluster', cluster: cluster('alpha') });
  ba.push({ type: 'cluster', cluster: cluster('beta') });
  await a.waitFor((x) => x.includes('alpha') && x.includes('beta'));
  assert.ok(!b.screen().includes('alpha'));
  a.send('q');
  assert.deepEqual(await a.exited, [0, 'quit']);
  bb.push({ type: 'cluster', cluster: cluster('bobs2') });
  await b.waitFor('bobs2');
});

test("a local tty's own 'resize' events reach the screen only through resize(): at most two reflows for a burst, at the capped size", async (t) => {
  const b = new FakeBackend('admin', 'alice', { clusters: [cluster('alpha')] });
  const s = start(t, b, { cols: 100, rows: 30 });
  await s.waitFor('alpha');
  // As kindler-tui does: the tty updates its size and emits 'resize'; the caller forwards it.
  let forwarded = 0;
  s.output.on('resize', () => {
    forwarded++;
    s.handle.resize(s.output.columns, s.output.rows);
  });
  const clears = () => s.raw().split('\x1b[2J').length - 1;
  const before = clears();
  for (const [c, r] of [
    [90, 28],
    [2000, 1000],
    [84, 26],
  ] as const) {
    Object.assign(s.output, { columns: c, rows: r });
    s.output.emit('resize');
  }
  s.resize(84, 26); // the headless terminal's size (and one more call, as a second listener would)
  await s.waitFor((x) => x.split('\n')[1]!.trimEnd().length === 84 && /alpha/.test(x));
  assert.equal(forwarded, 3);
  // blessed did not reflow on its own (not at 2000x1000, not once per event): the first event is
  // drawn at once, the rest in one frame.
  assert.ok(clears() - before <= 2, `${clears() - before} reflows`);
});

test('with the real engine: create from the form, watch progress and log, then delete', async (t) => {
  const w = makeWorld();
  const engine = await startEngine(w);
  const backend = new LocalSession(engine, { user: 'alice', source: 'test', role: 'operator' }, 'testhost');
  t.after(async () => {
    backend.close();
    await engine.shutdown();
    w.cleanup();
  });
  const s = start(t, backend, { cols: 120, rows: 36 });
  await s.waitFor('no clusters (press c to create one)');
  s.send('c');
  await s.waitFor('create a cluster');
  s.send('alpha\t\x1b[C\t\t1\r'); // provider k3d, servers blank, agents 1
  await s.waitFor(/create alpha: task t-\d+ (queued|running)/, 15_000);
  await s.waitFor(/alpha\s+k3d\s+present running\s+1\+1/, 60_000);
  const done = await s.waitFor((x) => /log t-\d+ create alpha · succeeded/.test(x) && x.includes('no queued or running tasks'), 30_000);
  assert.match(done, /==>/, 'the task log is shown');
  s.send('d');
  await s.waitFor('Delete cluster alpha?');
  s.send('alpha\r');
  await s.waitFor('no clusters (press c to create one)', 60_000);
  s.send('q');
  assert.deepEqual(await s.exited, [0, 'quit']);
});

test('K shows a kubeconfig for the selected cluster with the tunnel and save commands (the kubeconfig verb, as every face runs it)', async (t) => {
  const dev = cluster('dev', { owner: 'bob' });
  const b = new FakeBackend('viewer', 'vic', { clusters: [dev] });
  const reply = {
    cluster: 'dev',
    context: 'kindler-dev',
    mode: 'tunnel',
    server: 'https://127.0.0.1:16443',
    credential: 'read-only',
    expiresAt: '2026-01-01T18:00:00.000Z',
    kubeconfig: '# a comment line\napiVersion: v1\nkind: Config\ncurrent-context: "kindler-dev"\n',
    tunnel: { command: 'ssh -N -L 16443:dev:6443 kindler@devbox -p 2222', localPort: 16443, destination: 'dev:6443' },
    save: 'ssh kindler@devbox -p 2222 kubeconfig dev > kindler-dev.yaml',
  };
  b.handler = (argv) => (argv[0] === 'kubeconfig' ? ok(reply) : ok({ task: null, from: 0, lines: [] }));
  const s = start(t, b, { cols: 120, rows: 32 });
  const before = await s.waitFor(/K kubeconfig/);
  assert.match(footer(before), /K kubeconfig/);
  s.send('K');
  const screen = await s.waitFor('ssh -N -L 16443:dev:6443 kindler@devbox -p 2222');
  assert.match(screen, /kindler-dev: a read-only credential \(expires 2026-01-01T18:00:00\.000Z\), tunnel mode/);
  assert.match(screen, /ssh kindler@devbox -p 2222 kubeconfig dev > kindler-dev\.yaml/);
  assert.match(screen, /current-context: "kindler-dev"/);
  assert.ok(!screen.includes('a comment line'));
  assert.deepEqual(
    b.runs.filter((r) => r[0] === 'kubeconfig'),
    [['kubeconfig', 'dev', '--json']],
  );
});
