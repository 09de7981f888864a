/**
 * Writes that fail (issue 13, items 3, 8, 9): a full disk (a real tmpfs), a directory or a symlink where
 * a task log goes, an immutable state file, and a lock file deleted under a running engine. Each failure
 * is an error of the operation that needed the write; the engine keeps serving and resumes on its own.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Engine } from '../src/engine/engine.js';
import type { PostStep } from '../src/engine/poststeps.js';
import { runReconcile } from '../src/cron/jobs.js';
import { TuiModel, storageNotice } from '../src/tui/model.js';
import type { Task } from '../src/core/types.js';
import { KindlerError } from '../src/core/errors.js';
import { UsersStore } from '../src/access/users.js';
import {
  ALICE,
  CAN_MOUNT,
  CLI,
  FAKE_BIN,
  fillDisk,
  makeTestKey,
  makeWorld,
  mountTmpfs,
  poll,
  scriptEnv,
  startEngine,
  tasksOnDisk,
  until,
  verb,
  type World,
} from './helpers.js';

const skip = CAN_MOUNT ? false : 'needs root (tmpfs mounts, chattr)';

interface DiskWorld {
  w: World;
  engine: Engine;
}

/** A world whose data dir (and, with `logsSize`, its logs dir apart) is a small tmpfs. */
async function diskWorld(t: TestContext, o: { stateSize?: string; logsSize?: string; overrides?: Record<string, unknown> } = {}): Promise<DiskWorld> {
  const w = makeWorld(o.overrides);
  const unmount: (() => void)[] = [];
  unmount.push(mountTmpfs(w.dataDir, o.stateSize ?? '4m'));
  if (o.logsSize) {
    mkdirSync(join(w.dataDir, 'logs'));
    unmount.push(mountTmpfs(join(w.dataDir, 'logs'), o.logsSize));
  }
  const engine = await startEngine(w);
  t.after(async () => {
    await engine.shutdown().catch(() => undefined);
    for (const u of unmount.reverse()) u();
    w.cleanup();
  });
  return { w, engine };
}

/** The state file as on disk. */
function onDisk(w: World): { clusters: { name: string }[]; tasks: Task[]; nextTaskSeq: number } {
  return JSON.parse(readFileSync(join(w.dataDir, 'state.json'), 'utf8'));
}

const saving = (engine: Engine) => engine.storageHealth().saving;

test('ENOSPC at admission: the create is undone in memory, the caller is told "not done", and it never runs', { skip }, async (t) => {
  const { w, engine } = await diskWorld(t);
  await engine.store.flush();
  const free = fillDisk(w.dataDir);
  const r = await verb(engine, ['create', 'dev1']);
  assert.equal(r.code, 1);
  // Nothing of it is left in memory: no task, no record, no cluster lock, no queued work.
  assert.deepEqual(engine.listTasks(), []);
  assert.equal(engine.getCluster('dev1'), undefined);
  assert.equal(engine.busy, false);
  assert.equal(engine.store.data.nextTaskSeq, 1);
  assert.equal(r.err.trim(), 'error: create dev1: not done: the state file could not be written (ENOSPC: no space left on device)');
  // Reads go on; doctor and the TUI say that state is not being saved.
  assert.equal((await verb(engine, ['list'])).code, 0);
  const doc = await verb(engine, ['doctor', '--json']);
  const report = JSON.parse(doc.out);
  assert.equal(report.state.saving, false);
  assert.match(report.state.problem, /ENOSPC/);
  assert.equal(report.ok, false);
  assert.match((await verb(engine, ['doctor'])).out, /^state: NOT BEING SAVED since .*ENOSPC: no space left on device/m);
  const model = new TuiModel();
  const { snapshot, unsubscribe } = engine.subscribe((e) => model.apply(e));
  t.after(unsubscribe);
  model.load(snapshot);
  assert.match(storageNotice(model.storage), /^STATE NOT BEING SAVED since \d\d:\d\d:\d\dZ: the state file could not be written \(ENOSPC/);

  // Space comes back: the store's retry resumes saving by itself, and the TUI hears of it.
  free();
  await until(engine, () => saving(engine), 20000, 'saving to resume');
  assert.equal(storageNotice(model.storage), '', 'the TUI header warning goes away');
  // The refused create never ran (no ghost task), and a new one works with the same id.
  assert.doesNotMatch(w.calls(), /cluster","create/);
  assert.deepEqual(onDisk(w).tasks, []);
  const again = await verb(engine, ['create', 'dev1', '--wait', '--json']);
  assert.equal(again.code, 0, again.err);
  assert.equal(JSON.parse(again.out).task.id, 't-1');
});

test('ENOSPC while tasks end: both slots come back, the ends are recorded once space returns', { skip }, async (t) => {
  // Logs on their own tmpfs: only the state write fails here.
  const { w, engine } = await diskWorld(t, { logsSize: '16m' });
  w.rule('k3d.cluster-create', 'hang');
  const a = await engine.create({ name: 'fa', provider: 'k3d', servers: 1, agents: 0 }, ALICE);
  const b = await engine.create({ name: 'fb', provider: 'k3d', servers: 1, agents: 0 }, ALICE);
  await until(engine, () => [a, b].every((x) => engine.getTask(x.id)!.steps.some((s) => s.key === 'create-cluster')), 30000, 'both creates running');
  await engine.store.flush();
  const free = fillDisk(w.dataDir);
  // The cancels act at once; only their record waits for space (and says so).
  for (const x of [a, b]) {
    const r = await verb(engine, ['cancel', x.id]);
    if (r.code !== 0) assert.match(r.err, /the state file could not be written \(ENOSPC: no space left on device\); the change is kept in memory/);
  }
  const ended = await Promise.all([engine.waitForTask(a.id), engine.waitForTask(b.id)]);
  assert.deepEqual(
    ended.map((x) => x.state),
    ['cancelled', 'cancelled'],
  );
  assert.equal(saving(engine), false);
  await until(engine, () => !engine.busy, 30000, 'the engine to be idle');
  // Not on disk yet.
  assert.deepEqual(
    onDisk(w).tasks.map((x) => x.state),
    ['running', 'running'],
  );

  free();
  await until(engine, () => saving(engine), 20000, 'saving to resume');
  // Finished, they are in the journal (taken from there at the next start, as tasksOnDisk does).
  assert.deepEqual(
    tasksOnDisk(w.dataDir).map((x) => [x.id, x.state]),
    [
      [a.id, 'cancelled'],
      [b.id, 'cancelled'],
    ],
  );
  // Both slots are free: two more creates run at once and finish.
  w.clearRule('k3d.cluster-create');
  const c = await engine.create({ name: 'fc', provider: 'k3d', servers: 1, agents: 0 }, ALICE);
  const d = await engine.create({ name: 'fd', provider: 'k3d', servers: 1, agents: 0 }, ALICE);
  const done = await Promise.all([engine.waitForTask(c.id), engine.waitForTask(d.id)]);
  assert.deepEqual(
    done.map((x) => x.state),
    ['succeeded', 'succeeded'],
  );
  // Shutdown ends promptly and saves.
  await engine.shutdown();
  assert.deepEqual(
    tasksOnDisk(w.dataDir).map((x) => x.state),
    ['cancelled', 'cancelled', 'succeeded', 'succeeded'],
  );
});

test('a task log that cannot be written (full disk, a directory, a symlink) fails the task with the reason; the engine lives', { skip }, async (t) => {
  const { w, engine } = await diskWorld(t, { logsSize: '1m' });
  const logs = join(w.dataDir, 'logs');

  // A directory where t-1's log goes.
  mkdirSync(join(logs, 't-1.log'));
  const r1 = await verb(engine, ['create', 'la', '--wait', '--json']);
  assert.equal(r1.code, 1);
  const t1 = JSON.parse(r1.out).task as Task;
  assert.equal(t1.state, 'failed');
  assert.equal(t1.error!.reason, `the task log ${join(logs, 't-1.log')} could not be written (EISDIR: illegal operation on a directory)`);
  assert.deepEqual(w.containers('la'), [], 'what the create made is gone');

  // A symlink planted where t-2's log goes: refused, never written through.
  const victim = join(w.dir, 'victim');
  writeFileSync(victim, 'precious\n');
  symlinkSync(victim, join(logs, 't-2.log'));
  const r2 = await verb(engine, ['create', 'lb', '--wait', '--json']);
  assert.equal(r2.code, 1);
  assert.match((JSON.parse(r2.out).task as Task).error!.reason, /t-2\.log could not be written \(ELOOP: it is a symbolic link/);
  assert.equal(readFileSync(victim, 'utf8'), 'precious\n');

  // A full logs disk.
  const free = fillDisk(logs);
  const r3 = await verb(engine, ['create', 'lc', '--wait', '--json']);
  assert.equal(r3.code, 1);
  assert.match((JSON.parse(r3.out).task as Task).error!.reason, /t-3\.log could not be written \(ENOSPC: no space left on device\)/);
  free();
  rmSync(join(logs, 't-1.log'), { recursive: true });
  const ok = await verb(engine, ['create', 'ld', '--wait']);
  assert.equal(ok.code, 0, ok.err);
  assert.equal(engine.busy, false);
});

test('an immutable state file during a reconcile: errors of the pass, the engine lives and resumes after chattr -i', { skip }, async (t) => {
  // chattr does not work on tmpfs: the real disk's temp dir.
  const w = makeWorld();
  const engine = await startEngine(w);
  const file = join(w.dataDir, 'state.json');
  t.after(async () => {
    execFileSync('chattr', ['-i', file]);
    await engine.shutdown().catch(() => undefined);
    w.cleanup();
  });
  assert.equal((await verb(engine, ['create', 'imm', '--wait'])).code, 0);
  // The provider stops it behind kindler's back: the pass wants to heal (start) it and to re-check it.
  execFileSync(join(FAKE_BIN, 'docker'), ['stop', ...w.containers('imm')], { env: w.env });
  execFileSync('chattr', ['+i', file]);
  const before = readFileSync(file, 'utf8');
  const result = await runReconcile(engine, { dryRun: false });
  assert.deepEqual(result.healed, []);
  assert.match(JSON.stringify(result.errors), /start imm: not done: the state file could not be written \(EPERM: operation not permitted\)/);
  await engine.refresh('imm');
  assert.equal(readFileSync(file, 'utf8'), before);
  assert.equal(saving(engine), false);
  assert.equal(engine.busy, false);

  execFileSync('chattr', ['-i', file]);
  await until(engine, () => saving(engine), 20000, 'saving to resume');
  assert.equal(JSON.parse(readFileSync(file, 'utf8')).clusters[0].actual, 'stopped');
});

test('a deleted kindler.lock: the engine refuses to write, and the process that took the lock since keeps its writes', async (t) => {
  const w = makeWorld();
  const engine = await startEngine(w);
  t.after(async () => {
    await engine.shutdown().catch(() => undefined);
    w.cleanup();
  });
  assert.equal((await verb(engine, ['create', 'one', '--wait'])).code, 0);
  unlinkSync(join(w.dataDir, 'kindler.lock'));
  const r = await verb(engine, ['create', 'two']);
  assert.equal(r.code, 1);
  assert.match(
    r.err,
    /^error: create two: not done: the state file was not written: the single-writer lock .*kindler\.lock is no longer held by this process \(the lock file was deleted\); kindler refuses to write state, restart it$/m,
  );
  assert.equal(engine.getCluster('two'), undefined);
  assert.equal(engine.storageHealth().lockLost, true);

  // With no socket and no lock, the CLI runs the engine in-process and writes: it is the writer now.
  const cli = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const p = spawn(process.execPath, [CLI, 'create', 'three', '--wait'], { env: w.env, cwd: w.dir, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (code) => resolve({ code, stderr }));
  });
  assert.equal(cli.code, 0, cli.stderr);
  const names = () =>
    onDisk(w)
      .clusters.map((c) => c.name)
      .sort();
  assert.deepEqual(names(), ['one', 'three']);
  // The first engine's writes stay refused: its memory (without "three") never overwrites the file.
  await assert.rejects(engine.extend('one', 3_600_000, ALICE), /single-writer lock .* is no longer held/);
  await assert.rejects(engine.shutdown(), /state could not be saved at shutdown/);
  assert.deepEqual(names(), ['one', 'three']);
});

test('the embedded CLI checks its lock before every write too', async (t) => {
  const w = makeWorld();
  t.after(() => w.dispose());
  w.rule('k3d.cluster-create', 'hang');
  const p = spawn(process.execPath, [CLI, 'create', 'emb', '--wait'], { env: w.env, cwd: w.dir, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  p.stderr.on('data', (d) => (stderr += d));
  const closed = new Promise<number | null>((resolve) => p.on('close', (code) => resolve(code)));
  const file = join(w.dataDir, 'state.json');
  await poll(
    () => {
      try {
        return (JSON.parse(readFileSync(file, 'utf8')) as { tasks: Task[] }).tasks[0]?.steps.some((s) => s.key === 'create-cluster') === true;
      } catch {
        return false;
      }
    },
    30000,
    'the CLI task to reach its create step',
  );
  const before = readFileSync(file, 'utf8');
  // Another process's lock replaces the CLI's.
  writeFileSync(join(w.dataDir, 'kindler.lock'), JSON.stringify({ pid: process.pid, start: 'x', role: 'test' }));
  p.kill('SIGINT');
  const code = await closed;
  assert.notEqual(code, 0);
  assert.match(
    stderr,
    /state is not being saved: the state file was not written: the single-writer lock .* is no longer held by this process \(the lock file was (replaced by another one|overwritten)\)/,
  );
  assert.equal(readFileSync(file, 'utf8'), before, 'the CLI wrote nothing after losing the lock');
  assert.equal(JSON.parse(readFileSync(join(w.dataDir, 'kindler.lock'), 'utf8')).pid, process.pid, "the other process's lock is left alone");
});

test('a symlink planted at reconcile.jsonl is refused, not appended through', async (t) => {
  const w = makeWorld();
  const engine = await startEngine(w);
  t.after(async () => {
    await engine.shutdown();
    w.cleanup();
  });
  const victim = join(w.dir, 'victim');
  writeFileSync(victim, 'precious\n');
  symlinkSync(victim, join(w.dataDir, 'reconcile.jsonl'));
  const r = await runReconcile(engine, { dryRun: true });
  assert.match(JSON.stringify(r.errors), /"cluster":"\(summary\)".*ELOOP/);
  assert.equal(readFileSync(victim, 'utf8'), 'precious\n');
});

test("a users file that cannot be written (full disk) is the verb's error, and nothing changes", { skip }, async (t) => {
  const w = makeWorld();
  const dir = join(w.dir, 'etc');
  mkdirSync(dir);
  const unmount = mountTmpfs(dir, '1m');
  t.after(() => {
    unmount();
    w.cleanup();
  });
  const file = join(dir, 'users.conf');
  const users = new UsersStore({ file });
  users.load();
  const key = makeTestKey(w.dir, 'k1');
  const free = fillDisk(dir);
  assert.throws(
    () => users.add('bob', 'viewer', key.pub),
    (e: Error) => e instanceof KindlerError && e.message === `users file: cannot write ${file} (ENOSPC: no space left on device); nothing was changed`,
  );
  assert.equal(users.get('bob'), undefined);
  assert.deepEqual(
    readdirSync(dir).filter((n) => n.endsWith('.tmp')),
    [],
    'no temp file is left',
  );
  free();
  users.add('bob', 'viewer', key.pub);
  assert.equal(users.get('bob')?.role, 'viewer');
});

test('a log that fails after the script succeeded (in a post step) fails the task; the cluster stays recorded as made', { skip }, async (t) => {
  const w = makeWorld();
  const logs = join(w.dataDir, 'logs');
  mkdirSync(logs, { recursive: true });
  const unmount = mountTmpfs(logs, '1m');
  let free: (() => void) | null = null;
  const step: PostStep = {
    key: 'fill',
    title: () => 'Filling the logs disk',
    applies: (kind) => kind === 'create',
    run: async (ctx) => {
      free = fillDisk(logs);
      // Longer than the slack in the log file's last page.
      ctx.log(`a line that no longer fits ${'x'.repeat(10000)}`);
    },
  };
  const engine = await Engine.start(w.cfg, { role: 'test', scriptEnv: scriptEnv(w), postSteps: [step] });
  t.after(async () => {
    await engine.shutdown().catch(() => undefined);
    free?.();
    unmount();
    w.cleanup();
  });
  const r = await verb(engine, ['create', 'late', '--wait', '--json']);
  assert.equal(r.code, 1);
  const task = JSON.parse(r.out).task as Task;
  assert.equal(task.state, 'failed');
  assert.match(task.error!.reason, /t-1\.log could not be written \(ENOSPC: no space left on device\)$/);
  const c = engine.getCluster('late')!;
  assert.equal(c.actual, 'running', 'the provider work is done and stays recorded');
  assert.equal(c.lastError, task.error!.reason);
});

test('ENOSPC during import-csv: no imported record stays in memory or reaches the disk later; the verb says not done', { skip }, async (t) => {
  const { w, engine } = await diskWorld(t);
  await engine.store.flush();
  // The CSV lives outside the full tmpfs.
  const csv = join(w.dir, 'environments.csv');
  writeFileSync(csv, 'impa,k3d,,,false,false,,,\nimpb,kind,,,false,false,,,\n');
  const auditBefore = engine.store.data.audit.length;
  const free = fillDisk(w.dataDir);
  const r = await verb(engine, ['import-csv', csv]);
  assert.equal(r.code, 1, r.out + r.err);
  assert.match(r.err, /impa, impb: not done: the state file could not be written \(ENOSPC/);
  assert.equal(engine.getCluster('impa'), undefined);
  assert.equal(engine.getCluster('impb'), undefined);
  assert.equal(engine.store.data.audit.length, auditBefore);
  // Space comes back: the store's retry saves, and what it saves has neither record.
  free();
  await until(engine, () => saving(engine), 20000, 'saving to resume');
  await engine.store.flush();
  assert.deepEqual(
    onDisk(w).clusters.map((c) => c.name),
    [],
  );
  // The same import then works.
  const again = await verb(engine, ['import-csv', csv]);
  assert.equal(again.code, 0, again.out + again.err);
  assert.ok(engine.getCluster('impa') && engine.getCluster('impb'));
});
