import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  constants as fsConstants,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
  existsSync,
  statSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import { Store, StateFileError, StateWriteError, SCHEMA_VERSION, migrate } from '../src/store/state.js';
import { acquireLock, LockHeldError } from '../src/store/lock.js';
import { APPEND_NOFOLLOW, EXCLUSIVE_CREATE, tempNameFor, writeFileAtomic, writeFileAtomicSync } from '../src/os/atomic.js';
import { LogCursor, readLogFile, readLogTail, TaskLog } from '../src/engine/logs.js';
import { loadOrCreateHostKey } from '../src/ssh/hostkey.js';
import { poll } from './helpers.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'kindler-store-'));

test('a missing file starts empty; writes are durable and atomic', async () => {
  const dir = tmp();
  const s = await Store.open(dir);
  assert.equal(s.data.schemaVersion, SCHEMA_VERSION);
  await s.update((d) => {
    d.nextTaskSeq = 7;
  });
  const onDisk = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8'));
  assert.equal(onDisk.nextTaskSeq, 7);
  assert.equal(statSync(join(dir, 'state.json')).mode & 0o777, 0o600);
  assert.ok(!existsSync(join(dir, `state.json.${process.pid}.tmp`)));
});

test('many updates in one tick share one write', async () => {
  const s = await Store.open(tmp());
  const before = s.writeTimes.length;
  await Promise.all(
    Array.from({ length: 50 }, (_, i) =>
      s.update((d) => {
        d.nextTaskSeq = i + 1;
      }),
    ),
  );
  assert.equal(s.writeTimes.length - before, 1);
});

for (const [label, content, pattern] of [
  ['corrupt JSON', '{"schemaVersion": 1, "clusters": [', /is not valid JSON/],
  ['empty file', '', /is not valid JSON/],
  ['newer version', JSON.stringify({ schemaVersion: 99, nextTaskSeq: 1, clusters: [], tasks: [], audit: [] }), /schemaVersion 99 is newer/],
  [
    'bad record',
    JSON.stringify({ schemaVersion: 1, nextTaskSeq: 1, clusters: [{ name: 'x', provider: 'docker' }], tasks: [], audit: [] }),
    /clusters\[0\]\.provider: must be one of k3d, kind/,
  ],
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
  const d = migrate(v0, 'f');
  assert.equal(d.schemaVersion, SCHEMA_VERSION);
  assert.equal(d.nextTaskSeq, 5);
  assert.deepEqual(d.audit, []);
  assert.deepEqual(d.tasks[0]!.notes, []);
});

test('migration 1 -> 2 gives every cluster its per-cluster choices: the import switches carried over, defaults elsewhere', async () => {
  const base = {
    name: 'x',
    provider: 'kind',
    servers: 1,
    agents: 0,
    httpPort: 18090,
    httpsPort: 18443,
    apiPort: 16443,
    owner: 'u',
    createdAt: 't',
    desired: 'present',
    actual: 'unknown',
    kubeContext: 'kind-x',
    kubeconfig: '/k/x.yaml',
    updatedAt: 't',
  };
  const v1 = {
    schemaVersion: 1,
    nextTaskSeq: 1,
    tasks: [],
    audit: [],
    clusters: [
      { ...base, name: 'imported', options: { registerPortainer: true, route: false } },
      { ...base, name: 'plain' },
      { ...base, name: 'routed', options: { registerPortainer: false, route: true } },
    ],
  };
  const dir = tmp();
  writeFileSync(join(dir, 'state.json'), JSON.stringify(v1));
  const s = await Store.open(dir);
  assert.equal(s.data.schemaVersion, SCHEMA_VERSION);
  assert.deepEqual(
    s.data.clusters.map((c) => [c.name, c.options]),
    [
      ['imported', { route: false, register: ['portainer'] }],
      ['plain', { route: true, register: [] }],
      ['routed', { route: true, register: [] }],
    ],
  );
  // A version-2 file with a bad choice is refused with the field and the rule.
  writeFileSync(join(dir, 'state.json'), JSON.stringify({ ...v1, schemaVersion: 2, clusters: [{ ...base, options: { register: ['gitlab'] } }] }));
  await assert.rejects(Store.open(dir), /clusters\[0\]\.options\.register: must be a list of distinct portainer, argocd/);
});

test('the lock refuses a second holder and takes over a stale one', async () => {
  const dir = tmp();
  const a = acquireLock(dir, 'daemon');
  assert.throws(
    () => acquireLock(dir, 'cli'),
    (e: Error) => e instanceof LockHeldError && /locked by a running kindler daemon \(pid \d+\)/.test(e.message),
  );
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
  await s.update((d) => {
    d.nextTaskSeq = 1;
  });
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

test('the temp file is new and unguessable: a symlink planted at a temp name is never written through', async () => {
  const dir = tmp();
  const victim = join(dir, 'victim');
  writeFileSync(victim, 'precious\n');
  // Where the state temp file used to be: <file>.<pid>.tmp, opened with 'w' (which follows a symlink).
  symlinkSync(victim, join(dir, `state.json.${process.pid}.tmp`));
  const s = await Store.open(dir);
  await s.update((d) => {
    d.nextTaskSeq = 3;
  });
  assert.equal(readFileSync(victim, 'utf8'), 'precious\n');
  assert.equal(JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')).nextTaskSeq, 3);
  assert.ok(lstatSync(join(dir, 'state.json')).isFile());
  // Nothing but the state file, the victim and the planted link: no temp file is left behind.
  assert.deepEqual(readdirSync(dir).sort(), ['state.json', `state.json.${process.pid}.tmp`, 'victim'].sort());
});

test('every atomic write makes its temp file with O_EXCL and a random name', async () => {
  const dir = tmp();
  const file = join(dir, 'f');
  const names = new Set(Array.from({ length: 50 }, () => tempNameFor(file)));
  assert.equal(names.size, 50);
  for (const n of names) assert.match(n, new RegExp(`/\\.f\\.${process.pid}\\.[0-9a-f]{16}\\.tmp$`));
  assert.equal(EXCLUSIVE_CREATE & fsConstants.O_EXCL, fsConstants.O_EXCL);
  assert.equal(APPEND_NOFOLLOW & fsConstants.O_NOFOLLOW, fsConstants.O_NOFOLLOW);
  await writeFileAtomic(file, 'a', 0o640);
  writeFileAtomicSync(file, 'b', 0o640);
  assert.equal(readFileSync(file, 'utf8'), 'b');
  assert.equal(statSync(file).mode & 0o777, 0o640);
  assert.deepEqual(readdirSync(dir), ['f']);
});

test(
  'a failed write rejects its callers, keeps the change, says state is not saved, and is retried until it succeeds',
  { skip: process.getuid?.() === 0 ? false : 'needs root (chattr)' },
  async (t) => {
    const dir = tmp();
    const file = join(dir, 'state.json');
    const s = await Store.open(dir, { retryMs: { first: 50, max: 200 } });
    await s.update((d) => {
      d.nextTaskSeq = 2;
    });
    const seen: boolean[] = [];
    s.onHealth = (h) => seen.push(h.saving);
    execFileSync('chattr', ['+i', file]);
    t.after(() => execFileSync('chattr', ['-i', file]));
    await assert.rejects(
      s.update((d) => {
        d.nextTaskSeq = 9;
      }),
      (e: Error) =>
        e instanceof StateWriteError &&
        e.message.startsWith('the state file could not be written (EPERM: operation not permitted); the change is kept in memory'),
    );
    assert.equal(s.data.nextTaskSeq, 9);
    const h = s.health();
    assert.equal(h.saving, false);
    assert.match(h.problem!, /EPERM/);
    assert.ok(h.since);
    // Retries fail on their own (no new update needed) while the cause stays.
    await poll(() => (s.health().failures ?? 0) >= 3, 10000, 'retries');
    assert.equal(JSON.parse(readFileSync(file, 'utf8')).nextTaskSeq, 2);
    execFileSync('chattr', ['-i', file]);
    await poll(() => s.health().saving, 10000, 'saving to resume');
    assert.equal(JSON.parse(readFileSync(file, 'utf8')).nextTaskSeq, 9);
    assert.deepEqual(seen, [false, true]);
    assert.deepEqual(readdirSync(dir), ['state.json'], 'failed attempts leave no temp file');
    s.close();
  },
);

test('a lock deleted, replaced or overwritten under its holder stops every write; release leaves a lock that is not its own', async () => {
  for (const how of ['deleted', 'replaced by another one', 'overwritten'] as const) {
    const dir = tmp();
    const lock = acquireLock(dir, 'daemon');
    const s = await Store.open(dir, { guard: () => lock.verify() });
    await s.update((d) => {
      d.nextTaskSeq = 2;
    });
    const lockFile = join(dir, 'kindler.lock');
    const other = JSON.stringify({ pid: 1, start: 'x', role: 'cli' });
    if (how === 'deleted') unlinkSync(lockFile);
    else if (how === 'replaced by another one') {
      writeFileSync(join(dir, 'other'), other);
      renameSync(join(dir, 'other'), lockFile);
    } else writeFileSync(lockFile, other);
    await assert.rejects(
      s.update((d) => {
        d.nextTaskSeq = 3;
      }),
      (e: Error) => e instanceof StateWriteError && e.lockLost && e.message.includes(`the lock file was ${how}`),
    );
    assert.equal(JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')).nextTaskSeq, 2);
    assert.equal(s.health().lockLost, true);
    lock.release();
    if (how === 'deleted') assert.ok(!existsSync(lockFile));
    else assert.equal(readFileSync(lockFile, 'utf8'), other, 'the other lock stays');
    s.close();
  }
});

test('a task log is opened with O_NOFOLLOW and never throws: a symlink or a directory in the way becomes its error', async () => {
  const dir = tmp();
  const victim = join(dir, 'victim');
  writeFileSync(victim, 'precious\n');
  symlinkSync(victim, join(dir, 't-1.log'));
  mkdirSync(join(dir, 't-2.log'));
  for (const [id, code] of [
    ['t-1', 'ELOOP'],
    ['t-2', 'EISDIR'],
  ] as const) {
    const errors: string[] = [];
    const log = new TaskLog(
      dir,
      id,
      10,
      () => undefined,
      (r) => errors.push(r),
    );
    log.add('one');
    log.add('two');
    await log.drain();
    log.add('three');
    await log.close();
    assert.equal(errors.length, 1, 'reported once');
    assert.ok(errors[0]!.startsWith(`the task log ${join(dir, `${id}.log`)} could not be written (${code}: `), errors[0]);
    assert.equal(log.error, errors[0]);
    assert.deepEqual(log.tail().lines, ['one', 'two', 'three'], 'live views still get the lines');
  }
  assert.equal(readFileSync(victim, 'utf8'), 'precious\n');
  // Nor is a symlink read through (a reader would be shown another file).
  await assert.rejects(readLogFile(dir, 't-1'), /ELOOP/);
  await assert.rejects(readLogTail(dir, 't-1', 5), /ELOOP/);
  await assert.rejects(new LogCursor(join(dir, 't-1.log')).next(4096), /ELOOP/);
  // A plain log is written in order, across reopen after close.
  const ok = new TaskLog(dir, 't-3', 10, () => undefined);
  ok.add('a');
  await ok.close();
  ok.add('b');
  await ok.close();
  assert.equal(readFileSync(join(dir, 't-3.log'), 'utf8'), 'a\nb\n');
  assert.equal(ok.error, null);
});

test("the host key's .pub copy replaces a symlink planted at its name instead of writing through it", () => {
  const dir = tmp();
  const victim = join(dir, 'victim');
  writeFileSync(victim, 'precious\n');
  const key = join(dir, 'keys', 'host_key');
  mkdirSync(join(dir, 'keys'));
  symlinkSync(victim, `${key}.pub`);
  const k = loadOrCreateHostKey(key);
  assert.equal(k.created, true);
  assert.equal(readFileSync(victim, 'utf8'), 'precious\n');
  assert.ok(lstatSync(`${key}.pub`).isFile());
  assert.match(readFileSync(`${key}.pub`, 'utf8'), /^ssh-ed25519 /);
});
