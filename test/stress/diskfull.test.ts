/**
 * A full disk under a real daemon (issue 13, item 3): the data dir is a small tmpfs (the logs dir a
 * second one where a test needs them apart), filled to the last byte at chosen moments while clients
 * talk to the daemon over its control socket. Whatever fails, the daemon stays up and serves reads;
 * after space returns, every task is terminal and recorded, no concurrency slot is lost, no refused
 * task ever runs, and SIGTERM stops the daemon promptly.
 *
 * Needs root (mount). Synchronizes on the daemon's log, the state file and the fakes' call log, with
 * deadlines; never on sleeps.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Task } from '../../src/core/types.js';
import { CAN_MOUNT, ctl, fillDisk, makeWorld, mountTmpfs, poll, startDaemon, tasksOnDisk, type Daemon, type World } from '../helpers.js';

const skip = CAN_MOUNT ? false : 'needs root (tmpfs mounts)';

interface State {
  clusters: { name: string; actual: string }[];
  tasks: Task[];
}

function readState(w: World): State {
  // Finished tasks are in the journal: merged as the next start reads them.
  return { ...JSON.parse(readFileSync(join(w.dataDir, 'state.json'), 'utf8')), tasks: tasksOnDisk(w.dataDir) } as State;
}

/** A daemon whose data dir (and with `logsSize`, its logs dir apart) is a tmpfs. */
async function diskDaemon(t: TestContext, o: { stateSize?: string; logsSize?: string } = {}): Promise<{ w: World; d: Daemon }> {
  const w = makeWorld({ concurrency: 2 });
  const unmount: (() => void)[] = [];
  unmount.push(mountTmpfs(w.dataDir, o.stateSize ?? '4m'));
  if (o.logsSize) {
    mkdirSync(join(w.dataDir, 'logs'));
    unmount.push(mountTmpfs(join(w.dataDir, 'logs'), o.logsSize));
  }
  const d = await startDaemon(w);
  t.after(async () => {
    if (d.proc.exitCode === null && d.proc.signalCode === null) {
      d.proc.kill('SIGKILL');
      await d.exited;
    }
    for (const u of unmount.reverse()) u();
    w.cleanup();
  });
  return { w, d };
}

/** `k3d cluster create NAME` calls in the fakes' call log. */
function creates(w: World, name: string): number {
  return w
    .calls()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { tool: string; argv: string[] })
    .filter((c) => c.tool === 'k3d' && c.argv[0] === 'cluster' && c.argv[1] === 'create' && c.argv[2] === name).length;
}

/** SIGTERM must end the daemon within `ms` with exit code 0 (no spinning on a lost slot). */
async function stopsCleanly(d: Daemon, ms = 30000): Promise<void> {
  d.proc.kill('SIGTERM');
  const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), ms).unref());
  const r = await Promise.race([d.exited, timer]);
  assert.notEqual(r, 'timeout', `the daemon did not stop within ${ms} ms after SIGTERM:\n${d.output().slice(-3000)}`);
  assert.deepEqual(r, { code: 0, signal: null }, d.output().slice(-3000));
}

const TERMINAL = ['succeeded', 'failed', 'cancelled', 'interrupted'];

test('ENOSPC at create: every client is told "not done", the daemon serves on, and no refused create ever runs', { skip }, async (t) => {
  const { w, d } = await diskDaemon(t);
  const free = fillDisk(w.dataDir);
  const names = ['n1', 'n2', 'n3', 'n4', 'n5', 'n6'];
  const answers = await Promise.all(names.map((n) => ctl(w, ['create', n])));
  for (const [i, r] of answers.entries()) {
    assert.equal(r.dropped, false, r.err);
    assert.equal(r.code, 1, r.out);
    assert.equal(r.err.trim(), `error: create ${names[i]}: not done: the state file could not be written (ENOSPC: no space left on device)`);
  }
  // Reads go on; doctor says why nothing is saved.
  const list = await ctl(w, ['list', '--json']);
  assert.equal(list.code, 0, list.err);
  assert.deepEqual(JSON.parse(list.out).clusters, []);
  const doc = await ctl(w, ['doctor', '--json']);
  assert.ok(
    doc.out.trim().startsWith('{'),
    `doctor --json on a full disk: exit ${doc.code}, stdout ${JSON.stringify(doc.out)}, stderr ${JSON.stringify(doc.err)}`,
  );
  assert.equal(JSON.parse(doc.out).state.saving, false);
  await d.waitFor(/error state is not being saved: the state file could not be written \(ENOSPC: no space left on device\); retrying with backoff/);

  free();
  await d.waitFor(/warn state is saved again/);
  assert.deepEqual(readState(w).tasks, []);
  const saved = await ctl(w, ['doctor', '--json']);
  assert.ok(
    saved.out.trim().startsWith('{'),
    `doctor --json after space returned: exit ${saved.code}, stdout ${JSON.stringify(saved.out)}, stderr ${JSON.stringify(saved.err)}\n${d.output().slice(-2000)}`,
  );
  assert.equal(JSON.parse(saved.out).state.saving, true);
  // A real create now: it runs, and it is the only create the provider ever saw.
  const ok = await ctl(w, ['create', 'n1', '--wait']);
  assert.equal(ok.code, 0, ok.err);
  for (const n of names) assert.equal(creates(w, n), n === 'n1' ? 1 : 0, `creates of ${n}`);
  await stopsCleanly(d);
});

test('ENOSPC while tasks end: slots come back, queued work runs, every end is recorded once space returns', { skip }, async (t) => {
  // Logs on a tmpfs of their own: here only the state write fails.
  const { w, d } = await diskDaemon(t, { logsSize: '32m' });
  w.rule('k3d.cluster-create', 'hang');
  const ids: string[] = [];
  for (const n of ['fa', 'fb', 'fc']) {
    const r = await ctl(w, ['create', n, '--json']);
    assert.equal(r.code, 0, r.err);
    ids.push((JSON.parse(r.out).task as Task).id);
  }
  const [a, b, c] = ids as [string, string, string];
  // fa and fb hang inside k3d (both slots taken); fc is queued behind them.
  await poll(
    () =>
      [a, b].every((id) =>
        readState(w)
          .tasks.find((x) => x.id === id)
          ?.steps.some((s) => s.key === 'create-cluster'),
      ),
    60000,
    'fa and fb in their create step',
  );
  assert.equal(readState(w).tasks.find((x) => x.id === c)!.state, 'queued');
  w.clearRule('k3d.cluster-create');

  const free = fillDisk(w.dataDir);
  for (const id of [a, b]) {
    const r = await ctl(w, ['cancel', id]);
    assert.equal(r.dropped, false, r.err);
    if (r.code !== 0) assert.match(r.err, /the state file could not be written \(ENOSPC: no space left on device\); the change is kept in memory/);
  }
  // Both ends happen (in memory), both slots free up, and fc runs to its end on a full disk.
  await d.waitFor(new RegExp(`task ${a} cancelled: create fa .*\\[not saved yet\\]`), 60000);
  await d.waitFor(new RegExp(`task ${b} cancelled: create fb .*\\[not saved yet\\]`), 60000);
  await d.waitFor(new RegExp(`task ${c} (succeeded|failed): create fc`), 90000);
  // A new create is refused while nothing can be recorded.
  const refused = await ctl(w, ['create', 'fd']);
  assert.equal(refused.code, 1);
  assert.match(refused.err, /^error: create fd: not done: the state file could not be written \(ENOSPC/);
  const onDisk = readState(w).tasks.map((x) => x.state);
  assert.ok(onDisk.includes('running'), `nothing is saved yet: ${onDisk.join(', ')}`);

  free();
  await d.waitFor(/warn state is saved again/, 30000);
  const st = readState(w);
  assert.deepEqual(
    st.tasks.map((x) => x.id),
    [a, b, c],
    'no task for the refused create',
  );
  for (const x of st.tasks) assert.ok(TERMINAL.includes(x.state), `${x.id} is ${x.state}`);
  assert.deepEqual(
    st.tasks.slice(0, 2).map((x) => x.state),
    ['cancelled', 'cancelled'],
  );
  // No slot was lost: two creates run side by side and finish.
  const [e1, e2] = await Promise.all([ctl(w, ['create', 'fe', '--wait']), ctl(w, ['create', 'ff', '--wait'])]);
  assert.equal(e1.code, 0, e1.err);
  assert.equal(e2.code, 0, e2.err);
  assert.equal(creates(w, 'fd'), 0, 'the refused create never ran');
  await stopsCleanly(d);
  for (const x of readState(w).tasks) assert.ok(TERMINAL.includes(x.state), `${x.id} is ${x.state}`);
});

test('ENOSPC in task logs: the task fails with the reason, the daemon lives, and the next task runs once space returns', { skip }, async (t) => {
  const { w, d } = await diskDaemon(t, { logsSize: '1m' });
  const logs = join(w.dataDir, 'logs');
  const free = fillDisk(logs);
  const r = await ctl(w, ['create', 'la', '--wait', '--json']);
  assert.equal(r.code, 1, r.err);
  const task = JSON.parse(r.out).task as Task;
  assert.equal(task.state, 'failed');
  assert.match(task.error!.reason, new RegExp(`^the task log ${join(logs, `${task.id}.log`)} could not be written \\(ENOSPC: no space left on device\\)$`));
  assert.deepEqual(w.containers('la'), [], 'what the create made is gone');
  // The daemon is alive and says what happened.
  await d.waitFor(new RegExp(`error task ${task.id}: the task log .* could not be written \\(ENOSPC`));
  assert.equal((await ctl(w, ['list'])).code, 0);

  free();
  const ok = await ctl(w, ['create', 'lb', '--wait']);
  assert.equal(ok.code, 0, ok.err);
  assert.ok(existsSync(join(logs, 't-2.log')));
  await stopsCleanly(d);
  const st = readState(w);
  assert.deepEqual(
    st.tasks.map((x) => x.state),
    ['failed', 'succeeded'],
  );
});

test('everything full while tasks run, then space returns: all tasks terminal and recorded, nothing lost or doubled', { skip }, async (t) => {
  const { w, d } = await diskDaemon(t, { logsSize: '2m' });
  w.rule('k3d.cluster-create', 'delay 2');
  const ids: string[] = [];
  for (const n of ['xa', 'xb', 'xc', 'xd']) {
    const r = await ctl(w, ['create', n, '--json']);
    assert.equal(r.code, 0, r.err);
    ids.push((JSON.parse(r.out).task as Task).id);
  }
  await poll(() => readState(w).tasks.filter((x) => x.state === 'running').length === 2, 60000, 'two tasks running');
  const freeState = fillDisk(w.dataDir);
  const freeLogs = fillDisk(join(w.dataDir, 'logs'));
  // Every task ends (whatever the reason: the log or the state could not be written).
  for (const id of ids) await d.waitFor(new RegExp(`task ${id} (succeeded|failed|cancelled): create`), 120000);
  assert.equal((await ctl(w, ['list'])).code, 0, 'the daemon serves reads');
  freeLogs();
  freeState();
  await d.waitFor(/warn state is saved again/, 30000);
  const st = readState(w);
  assert.deepEqual(
    st.tasks.map((x) => x.id),
    ids,
  );
  for (const x of st.tasks) assert.ok(TERMINAL.includes(x.state), `${x.id} is ${x.state}`);
  assert.equal(new Set(st.clusters.map((c) => c.name)).size, st.clusters.length, 'no record doubled');
  w.clearRule('k3d.cluster-create');
  const again = await ctl(w, ['create', 'xe', '--wait']);
  assert.equal(again.code, 0, again.err);
  await stopsCleanly(d);
});
