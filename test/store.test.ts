import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { Store, StateFileError, SCHEMA_VERSION, migrate } from '../src/store/state.js';
import { acquireLock, LockHeldError } from '../src/store/lock.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'kindler-store-'));

test('a missing file starts empty; writes are durable and atomic', async () => {
  const dir = tmp();
  const s = await Store.open(dir);
  assert.equal(s.data.schemaVersion, SCHEMA_VERSION);
  await s.update((d) => { d.nextTaskSeq = 7; });
  const onDisk = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8'));
  assert.equal(onDisk.nextTaskSeq, 7);
  assert.equal(statSync(join(dir, 'state.json')).mode & 0o777, 0o600);
  assert.ok(!existsSync(join(dir, `state.json.${process.pid}.tmp`)));
});

test('many updates in one tick share one write', async () => {
  const s = await Store.open(tmp());
  const before = s.writeTimes.length;
  await Promise.all(Array.from({ length: 50 }, (_, i) => s.update((d) => { d.nextTaskSeq = i + 1; })));
  assert.equal(s.writeTimes.length - before, 1);
});

for (const [label, content, pattern] of [
  ['corrupt JSON', '{"schemaVersion": 1, "clusters": [', /is not valid JSON/],
  ['empty file', '', /is not valid JSON/],
  ['newer version', JSON.stringify({ schemaVersion: 99, nextTaskSeq: 1, clusters: [], tasks: [], audit: [] }), /schemaVersion 99 is newer/],
  ['bad record', JSON.stringify({ schemaVersion: 1, nextTaskSeq: 1, clusters: [{ name: 'x', provider: 'docker' }], tasks: [], audit: [] }), /clusters\[0\]\.provider: must be one of k3d, kind/],
  ['not an object', '[1,2]', /must hold a JSON object/],
] as const) {
  test(`a state file with ${label} is refused, named, and left untouched`, async () => {
    const dir = tmp();
    const file = join(dir, 'state.json');
    writeFileSync(file, content);
    await assert.rejects(Store.open(dir), (e: Error) => e instanceof StateFileError && e.message.includes(file) && pattern.test(e.message));
    assert.equal(readFileSync(file, 'utf8'), content);
  });
}

test('migration from the pre-release layout (version 0) is explicit', () => {
  const v0 = { clusters: [], tasks: [{ id: 't-4', kind: 'create', cluster: 'a', user: 'u', state: 'succeeded', progress: 100, createdAt: 'x' }] };
  const d = migrate(v0 as Record<string, unknown>, 'f');
  assert.equal(d.schemaVersion, SCHEMA_VERSION);
  assert.equal(d.nextTaskSeq, 5);
  assert.deepEqual(d.audit, []);
  assert.deepEqual(d.tasks[0]!.notes, []);
});

test('migration 1 -> 2 gives every cluster its per-cluster choices: the import switches carried over, defaults elsewhere', async () => {
  const base = { name: 'x', provider: 'kind', servers: 1, agents: 0, httpPort: 18090, httpsPort: 18443, apiPort: 16443, owner: 'u', createdAt: 't', desired: 'present', actual: 'unknown', kubeContext: 'kind-x', kubeconfig: '/k/x.yaml', updatedAt: 't' };
  const v1 = {
    schemaVersion: 1, nextTaskSeq: 1, tasks: [], audit: [],
    clusters: [
      { ...base, name: 'imported', options: { registerPortainer: true, route: false } },
      { ...base, name: 'plain' },
      { ...base, name: 'routed', options: { registerPortainer: false, route: true } },
    ],
  };
  const dir = tmp();
  writeFileSync(join(dir, 'state.json'), JSON.stringify(v1));
  const s = await Store.open(dir);
  assert.equal(s.data.schemaVersion, 2);
  assert.deepEqual(s.data.clusters.map((c) => [c.name, c.options]), [
    ['imported', { route: false, register: ['portainer'] }],
    ['plain', { route: true, register: [] }],
    ['routed', { route: true, register: [] }],
  ]);
  // A version-2 file with a bad choice is refused with the field and the rule.
  writeFileSync(join(dir, 'state.json'), JSON.stringify({ ...v1, schemaVersion: 2, clusters: [{ ...base, options: { register: ['gitlab'] } }] }));
  await assert.rejects(Store.open(dir), /clusters\[0\]\.options\.register: must be a list of distinct portainer, argocd/);
});

test('the lock refuses a second holder and takes over a stale one', async () => {
  const dir = tmp();
  const a = acquireLock(dir, 'daemon');
  assert.throws(() => acquireLock(dir, 'cli'), (e: Error) => e instanceof LockHeldError && /locked by a running kindler daemon \(pid \d+\)/.test(e.message));
  a.release();
  // A lock left by a process that is gone.
  const child = spawn(process.execPath, ['-e', '0']);
  const pid = child.pid!;
  await new Promise((r) => child.on('exit', r));
  writeFileSync(join(dir, 'kindler.lock'), JSON.stringify({ pid, start: '1', role: 'daemon' }));
  const b = acquireLock(dir, 'daemon');
  assert.equal(JSON.parse(readFileSync(join(dir, 'kindler.lock'), 'utf8')).pid, process.pid);
  b.release();
  assert.ok(!existsSync(join(dir, 'kindler.lock')));
  // A lock naming a live pid whose start time differs (pid reused) is stale too.
  writeFileSync(join(dir, 'kindler.lock'), JSON.stringify({ pid: process.pid, start: 'not-my-start', role: 'daemon' }));
  acquireLock(dir, 'daemon').release();
});

test('a crash mid-write leaves the old or the new file, never a torn one', async () => {
  // A child process writes in a loop and is killed with SIGKILL at random moments; each time the
  // file must parse and be one of the versions written.
  const dir = tmp();
  const s = await Store.open(dir);
  await s.update((d) => { d.nextTaskSeq = 1; });
  const script = `
    import { Store } from ${JSON.stringify(new URL('../src/store/state.ts', import.meta.url).pathname)};
    const s = await Store.open(${JSON.stringify(dir)});
    const pad = 'x'.repeat(200000);
    process.stdout.write('ready\\n');
    for (let i = 2; ; i++) await s.update((d) => { d.nextTaskSeq = i; d.audit = [{ at: pad, user: 'u', source: 's', action: 'a', target: 't', result: 'ok' }]; });
  `;
  for (let round = 0; round < 8; round++) {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    await new Promise((r) => setTimeout(r, 20 + Math.random() * 80));
    child.kill('SIGKILL');
    await new Promise((r) => child.on('exit', r));
    const d = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8'));
    assert.ok(d.nextTaskSeq >= 1);
  }
});
