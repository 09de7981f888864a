/**
 * Issue 16 (architecture), part A: eight bugs found by reading the code, each pinned by a test that
 * failed before its fix. The engine in-process against the fakes; the daemon as a process where the
 * bug is about the process (it must exit and release its lock).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import type { Principal } from '../src/commands/index.js';
import { Service } from '../src/commands/service.js';
import { startControlServer } from '../src/control/server.js';
import { Engine } from '../src/engine/engine.js';
import type { PostStep } from '../src/engine/poststeps.js';
import { TuiModel } from '../src/tui/model.js';
import { CLI, FAKE_BIN, freePort, makeWorld, scriptEnv, verb, withEngine } from './helpers.js';

const viewer: Principal = { user: 'vic', source: 'test', role: 'viewer' };
const oneLine = (s: string) => s.trim().split('\n').length === 1;

/** Rejects when `p` has not settled within `ms` (the bug this guards against is a promise that never does). */
function within<T>(p: Promise<T>, ms: number, what: string | (() => string)): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_r, reject) => {
      timer = setTimeout(() => reject(new Error(`${typeof what === 'string' ? what : what()} did not settle within ${ms} ms`)), ms);
    }),
  ]);
}

/** Counts every read of `map.size` (the engine's `running` map) from now on. */
function countSizeReads(map: Map<unknown, unknown>): { reads: () => number } {
  // eslint-disable-next-line @typescript-eslint/unbound-method -- called with the map as this below
  const get = Object.getOwnPropertyDescriptor(Map.prototype, 'size')!.get!;
  let n = 0;
  Object.defineProperty(map, 'size', {
    configurable: true,
    get() {
      n++;
      return get.call(this) as number;
    },
  });
  return { reads: () => n };
}

// ---- 1: a task's end that cannot be recorded still frees its slot; idle/shutdown wait on an event ----

test('1: the last store.update of a task rejecting (not a StateWriteError) frees its slot: the queued task runs, idle() and shutdown() return', async (t) => {
  const w = makeWorld({ concurrency: 1 });
  t.after(() => w.cleanup());
  const logs: string[] = [];
  const engine = await Engine.start(w.cfg, { role: 'test', scriptEnv: scriptEnv(w), log: (l, m) => logs.push(`${l} ${m}`) });
  const first = JSON.parse((await verb(engine, ['create', 'one', '--json'])).out).task.id as string;
  const second = JSON.parse((await verb(engine, ['create', 'two', '--json'])).out).task.id as string;
  const store = engine.store;
  const update = store.update.bind(store);
  let planted = false;
  // The write that records the first task's end (its state is already set in memory) throws a bug, not a write error.
  store.update = ((fn: Parameters<typeof update>[0]) => {
    if (!planted && store.data.tasks.find((x) => x.id === first)?.state === 'succeeded') {
      planted = true;
      return Promise.reject(new TypeError('planted: recording the end broke'));
    }
    return update(fn);
  }) as typeof store.update;
  await within(engine.idle(), 30_000, 'idle()');
  assert.ok(planted, 'the end write was reached');
  assert.equal(engine.busy, false);
  assert.equal(engine.getTask(second)!.state, 'succeeded', 'the queued task got the freed slot');
  assert.ok(
    logs.some((l) => l.startsWith(`error task ${first}: could not record its end`)),
    logs.join('\n'),
  );
  await within(engine.shutdown(), 10_000, 'shutdown()');
  assert.equal(existsSync(join(w.dataDir, 'kindler.lock')), false, 'the lock is released');
});

test("1: idle() and shutdown() wait on the task's end (an event), never polling or spinning while it is being recorded", async (t) => {
  const { w, engine } = await withEngine(t);
  const store = engine.store;
  const update = store.update.bind(store);
  let slow = false;
  // Recording a task's end takes 300 ms (a slow disk): what idle() and shutdown() do meanwhile is counted.
  store.update = (async (fn: Parameters<typeof update>[0]) => {
    if (slow) await new Promise((r) => setTimeout(r, 300));
    return update(fn);
  }) as typeof store.update;
  const running = (engine as unknown as { running: Map<string, unknown> }).running;
  const size = countSizeReads(running);

  assert.equal((await verb(engine, ['create', 'idle1'])).code, 0);
  slow = true;
  const before = size.reads();
  await within(engine.idle(), 30_000, 'idle()');
  const idleReads = size.reads() - before;
  assert.equal(engine.getCluster('idle1')!.actual, 'running');
  // Before the fix idle() re-checked on every turn of the event loop: thousands of reads in 300 ms.
  assert.ok(idleReads < 20, `idle() read running.size ${idleReads} times`);

  slow = false;
  w.rule('k3d.cluster-create', 'hang');
  assert.equal((await verb(engine, ['create', 'idle2'])).code, 0);
  await new Promise<void>((resolve) => {
    const off = engine.feed.subscribe((e) => {
      if (e.type === 'task' && e.task.cluster === 'idle2' && e.task.state === 'running') {
        off();
        resolve();
      }
    });
  });
  slow = true;
  const atStop = size.reads();
  await within(engine.shutdown(), 30_000, 'shutdown()');
  const stopReads = size.reads() - atStop;
  // Before the fix shutdown() looked at running.size every 10 ms until the end was recorded.
  assert.ok(stopReads < 5, `shutdown() read running.size ${stopReads} times`);
  assert.equal(engine.getTask(engine.latestTaskFor('idle2')!.id)!.state, 'interrupted');
});

// ---- 2: a daemon whose control socket cannot be bound exits, stopping cron and the engine --------

test('2: a daemon whose control socket path cannot be bound (a directory in its place) exits 1 promptly with one clear line and releases the lock', async (t) => {
  const w = makeWorld();
  const sock = join(w.dataDir, 'kindler.sock');
  mkdirSync(sock);
  const p = spawn(process.execPath, [CLI, 'daemon'], { env: w.env, cwd: w.dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  p.stdout.on('data', (d) => (out += d));
  p.stderr.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((resolve) => p.on('close', (code) => resolve(code)));
  t.after(() => {
    if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    w.cleanup();
  });
  // Before the fix the error escaped runDaemon while node-cron's timers kept the process alive (with the lock).
  const code = await within(exited, 20_000, () => `the daemon's exit (stdout: ${out}; stderr: ${err})`);
  assert.equal(code, 1, `stdout: ${out}\nstderr: ${err}`);
  assert.ok(oneLine(err), err);
  assert.match(err, new RegExp(`error control socket: cannot listen on ${sock.replace(/[.]/g, '\\.')}: it is a directory, not a socket; remove it\\n$`));
  assert.doesNotMatch(out + err, /internal|at .*\.js:\d+/);
  assert.equal(existsSync(join(w.dataDir, 'kindler.lock')), false, 'the lock is released');
});

// ---- 3: catch-up events after a lagging watcher each get their own seq -------------------------

test("3: a watcher that fell behind on two tasks gets both tasks' tails, each applied by the TUI model", async (t) => {
  const { w, engine } = await withEngine(t);
  const a = JSON.parse((await verb(engine, ['create', 'laga', '--json'])).out).task.id as string;
  const b = JSON.parse((await verb(engine, ['create', 'lagb', '--json'])).out).task.id as string;
  await engine.idle();
  const control = await startControlServer(new Service(engine), () => undefined);
  t.after(() => control.close());

  const msgs: { type: string; snapshot?: unknown; event?: { seq: number; type: string; taskId?: string; from?: number; lines?: string[] } }[] = [];
  const wakers = new Set<() => void>();
  const sock = connect(join(w.dataDir, 'kindler.sock'));
  t.after(() => sock.destroy());
  let buf = '';
  sock.setEncoding('utf8');
  sock.on('data', (d: string) => {
    buf += d;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      msgs.push(JSON.parse(buf.slice(0, i)));
      buf = buf.slice(i + 1);
    }
    for (const f of [...wakers]) f();
  });
  const until = (pred: () => boolean, what: string) =>
    within(
      new Promise<void>((resolve) => {
        const check = () => {
          if (!pred()) return;
          wakers.delete(check);
          resolve();
        };
        wakers.add(check);
        check();
      }),
      20_000,
      what,
    );
  sock.write(`${JSON.stringify({ type: 'subscribe', user: 'x' })}\n`);
  await until(() => msgs.some((m) => m.type === 'snapshot'), 'the snapshot');

  // The watcher stops reading while both tasks log far more than CONTROL_BACKLOG (1 MiB).
  sock.pause();
  const big = 'x'.repeat(64 << 10);
  for (let i = 0; i < 40; i++) for (const id of [a, b]) engine.feed.emit({ type: 'log', taskId: id, from: 1000 + i, lines: [big] });
  sock.resume();
  const tailA = engine.liveLog(a)!;
  const tailB = engine.liveLog(b)!;
  const isTail = (e: (typeof msgs)[number]['event'], id: string, tail: { lines: string[]; dropped: number }) =>
    e?.type === 'log' && e.taskId === id && e.from === tail.dropped && e.lines?.length === tail.lines.length && e.lines[0] === tail.lines[0];
  await until(() => msgs.some((m) => isTail(m.event, a, tailA)) && msgs.some((m) => isTail(m.event, b, tailB)), 'both catch-up events');

  const model = new TuiModel();
  const applied = new Map<string, boolean>();
  for (const m of msgs) {
    if (m.type === 'snapshot') model.load(m.snapshot as Parameters<TuiModel['load']>[0]);
    else if (m.type === 'event') {
      const changed = model.apply(m.event as Parameters<TuiModel['apply']>[0]);
      for (const [id, tail] of [
        [a, tailA],
        [b, tailB],
      ] as const)
        if (isTail(m.event, id, tail)) applied.set(id, changed !== null);
    }
  }
  // Before the fix both carried lastSeq + 0.5: the model dropped the second as stale.
  assert.deepEqual(Object.fromEntries(applied), { [a]: true, [b]: true });
  const seqs = msgs.filter((m) => m.type === 'event').map((m) => m.event!.seq);
  assert.deepEqual(
    seqs,
    [...seqs].sort((x, y) => x - y),
  );
  assert.equal(new Set(seqs).size, seqs.length, 'every event has its own seq');
});

// ---- 4: import-csv: allocation skips the row's own ports; imported ports are checked on the host ---

function listenOn(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(port, '0.0.0.0', () => resolve(s));
  });
}

test('4: import-csv never allocates a port the row imports, and an imported port something on the host holds is refused (unless the provider has that cluster)', async (t) => {
  const { w, engine } = await withEngine(t);
  const api = w.cfg.ports.api.from;
  const busy = await freePort();
  const held = await freePort();
  const servers = [await listenOn(busy), await listenOn(held)];
  t.after(() => servers.forEach((s) => s.close()));
  // The old tool's cluster `legacy` runs (its port is in use because it is the one publishing it).
  execFileSync(join(FAKE_BIN, 'k3d'), ['cluster', 'create', 'legacy', '--kubeconfig-update-default=false'], { env: w.env, stdio: 'pipe' });
  const file = join(w.dir, 'environments.csv');
  writeFileSync(file, [`own,k3d,,,false,false,,${api},`, `ghost,k3d,,,false,false,${busy},,`, `legacy,k3d,,,false,false,${held},,`].join('\n'));
  const r = await verb(engine, ['import-csv', file, '--json']);
  const rows = JSON.parse(r.out).rows as { name: string; result: string; reason?: string }[];
  assert.deepEqual(
    rows.map((x) => `${x.name}:${x.result}`),
    ['own:imported', 'ghost:refused', 'legacy:imported'],
    r.out,
  );
  const own = engine.getCluster('own')!;
  assert.equal(own.httpsPort, api);
  // Before the fix the API port was allocated without the row's own https port: both were `api`.
  assert.notEqual(own.apiPort, api);
  assert.equal(new Set([own.httpPort, own.httpsPort, own.apiPort]).size, 3);
  // Before the fix an imported port was never checked on the host: `ghost` was imported.
  assert.equal(rows[1]!.reason, `http_port: ${busy} is not available: something on this host is listening on it, and k3d has no cluster named "ghost"`);
  assert.equal(engine.getCluster('ghost'), undefined);
  assert.equal(engine.getCluster('legacy')!.httpPort, held);
  await engine.idle();
});

// ---- 5: one numbering for a task's steps, script and post steps alike -----------------------------

test('5: the log numbers steps [n/m] with the same m as the step records, post steps included', async (t) => {
  const w = makeWorld();
  const post = (key: string): PostStep => ({ key, title: () => `post step ${key}`, applies: (kind) => kind === 'create', run: async () => undefined });
  const engine = await Engine.start(w.cfg, { role: 'test', scriptEnv: scriptEnv(w), postSteps: [post('p1'), post('p2')] });
  t.after(async () => {
    await engine.shutdown();
    w.cleanup();
  });
  const r = await verb(engine, ['create', 'steps', '--wait', '--json']);
  assert.equal(r.code, 0, r.err);
  const task = JSON.parse(r.out).task as { id: string; steps: { n: number; of: number; key: string }[] };
  const of = task.steps.at(-1)!.of;
  assert.ok(
    task.steps.every((s) => s.of === of),
    JSON.stringify(task.steps),
  );
  assert.deepEqual(
    task.steps.map((s) => s.n),
    Array.from({ length: of }, (_x, i) => i + 1),
  );
  const numbered = (await engine.readLog(task.id)).map((l) => /^==> \[(\d+)\/(\d+)\] /.exec(l)).filter((m) => m !== null);
  // Before the fix the script's steps said [n/5] and the post steps went on [6/7].
  assert.deepEqual(
    numbered.map((m) => `${m[1]}/${m[2]}`),
    task.steps.map((s) => `${s.n}/${of}`),
  );
});

// ---- 7 and 8: reconcile --last is authorized, and a torn last line is ignored and reported -------

test('7: reconcile --last is authorized like reconcile: a viewer is refused (exit 5), an admin is not', async (t) => {
  const { engine } = await withEngine(t);
  const r = await verb(engine, ['reconcile', '--last'], viewer);
  assert.equal(r.code, 5, r.out + r.err);
  assert.equal(r.err, 'error: vic is a viewer: viewers can only read (reconcile needs operator or admin)\n');
  assert.equal((await verb(engine, ['reconcile', '--last'])).code, 0);
});

test('8: a torn last line in reconcile.jsonl is ignored and reported; --last shows the last whole pass', async (t) => {
  const { w, engine } = await withEngine(t);
  const file = join(w.dataDir, 'reconcile.jsonl');
  const pass = { at: '2026-01-01T00:00:00.000Z', dryRun: false, drift: [], healed: [], errors: [] };
  writeFileSync(file, `${JSON.stringify(pass)}\n{"at":"2026-01-01T00:05:00.0`);
  const j = await verb(engine, ['reconcile', '--last', '--json']);
  assert.equal(j.code, 0, j.err);
  const got = JSON.parse(j.out);
  assert.deepEqual(got.last, pass);
  assert.deepEqual(got.problems, ['reconcile.jsonl line 2: not a whole JSON line (a write cut short); ignored']);
  const text = await verb(engine, ['reconcile', '--last']);
  assert.equal(text.code, 0, text.err);
  assert.equal(text.err, 'warning: reconcile.jsonl line 2: not a whole JSON line (a write cut short); ignored\n');
  assert.deepEqual(JSON.parse(text.out), pass);

  // Only a torn line: no pass to show, still not fatal.
  writeFileSync(file, '{"at":"2026-');
  const only = await verb(engine, ['reconcile', '--last']);
  assert.equal(only.code, 0, only.err);
  assert.equal(only.out, 'no reconcile pass has run yet\n');
  assert.ok(oneLine(only.err), only.err);
});

// Bug 6 (the control socket recording a user name the client chose) was fixed before this issue by
// SO_PEERCRED (src/control/peercred.ts): see test/control.test.ts, "the control socket records the
// kernel's peer, not the user name the client sends".
