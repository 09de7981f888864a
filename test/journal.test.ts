/**
 * The journal (issue 17, the store): finished tasks and audit events leave state.json for append-only
 * segments under journal/. The move order with a crash at each step, torn lines, the 2 -> 3 migration,
 * retention by whole segments, the lock, and `--json` output byte-identical to the code before it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Store, MIGRATIONS, SCHEMA_VERSION, StateWriteError } from '../src/store/state.js';
import { readJournal } from '../src/store/journal.js';
import { LockLostError } from '../src/store/lock.js';
import type { AuditEvent, Task } from '../src/core/types.js';
import { runRetention } from '../src/cron/jobs.js';
import { makeWorld, scriptEnv, startEngine, verb } from './helpers.js';
import { Engine } from '../src/engine/engine.js';
import { FIXTURE_SIZE, FIXTURE_VERBS, v2State } from './fixtures/journal/make.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'kindler-journal-'));
const FIXTURES = fileURLToPath(new URL('./fixtures/journal/', import.meta.url));

const ev = (i: number, at = new Date().toISOString()): AuditEvent => ({
  at,
  user: 'alice',
  source: 'test',
  action: 'create',
  target: `c${i}`,
  result: 'ok',
  taskId: `t-${i}`,
});
const task = (id: string, state: Task['state']): Task => ({
  id,
  kind: 'create',
  cluster: 'a',
  user: 'alice',
  state,
  progress: 0,
  steps: [],
  createdAt: new Date().toISOString(),
  notes: [],
  params: {},
  logLines: 0,
});

/** A store with one running task t-1 (in state.json) and one audit event, both on disk. */
async function withRunning(): Promise<{ dir: string; s: Store }> {
  const dir = tmp();
  const s = await Store.open(dir);
  await s.update((d) => {
    d.tasks.push(task('t-1', 'running'));
    d.nextTaskSeq = 2;
    d.audit.push(ev(1));
  });
  return { dir, s };
}

const stateDoc = (dir: string) => JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as { tasks: Task[]; audit: { n: number }[] };

test('a finished task moves: its end goes to state.json first (with what it did to its cluster), then at the next write journal append + fsync, then state.json without it', async () => {
  const { dir, s } = await withRunning();
  await s.update((d) => {
    d.tasks[0]!.state = 'succeeded';
  });
  // Ended in this write: durable in state.json, atomically with its effects, before it may move.
  assert.deepEqual(
    stateDoc(dir).tasks.map((t) => [t.id, t.state]),
    [['t-1', 'succeeded']],
  );
  assert.equal(readJournal(dir).tasks.length, 0, 'not in the journal before its end is durable in state.json');
  await s.flush();
  assert.deepEqual(stateDoc(dir).tasks, [], 'state.json holds only live tasks');
  const j = readJournal(dir);
  assert.deepEqual(
    j.tasks.map((t) => [t.id, t.state]),
    [['t-1', 'succeeded']],
  );
  assert.deepEqual(
    j.audit.map((a) => a.n),
    [1],
    'the event written with its action moved at the next write',
  );
  assert.ok(readdirSync(join(dir, 'journal')).every((f) => /^(tasks|audit)-\d{8}-1\.jsonl$/.test(f)));
  const again = await Store.open(dir);
  assert.deepEqual(
    again.data.tasks.map((t) => [t.id, t.state]),
    [['t-1', 'succeeded']],
  );
  assert.equal(again.data.audit.length, 1);
  s.close();
});

test('crash before the journal append: the task is still running in state.json only (then recovered as usual)', async () => {
  const { dir, s } = await withRunning();
  s.journal.append = () => Promise.reject(Object.assign(new Error('killed'), { code: 'EKILLED' }));
  await assert.rejects(
    s.update((d) => void (d.tasks[0]!.state = 'succeeded')),
    StateWriteError,
  );
  s.close();
  const r = await Store.open(dir);
  assert.deepEqual(
    r.data.tasks.map((t) => [t.id, t.state]),
    [['t-1', 'running']],
    'once, as last saved',
  );
  assert.equal(readJournal(dir).tasks.length, 0);
});

test('crash between the journal append and the state write: in both on disk, once after restart, from the journal', async () => {
  const { dir, s } = await withRunning();
  await s.update((d) => void (d.tasks[0]!.state = 'failed')); // its end, durable in state.json
  // At the next write the journal append succeeds; the process "dies" before state.json is written.
  s.db.adapter.write = () => Promise.reject(Object.assign(new Error('killed'), { code: 'EKILLED' }));
  await assert.rejects(
    s.update((d) => void (d.nextTaskSeq += 1)),
    StateWriteError,
  );
  s.close();
  assert.deepEqual(
    stateDoc(dir).tasks.map((t) => [t.id, t.state]),
    [['t-1', 'failed']],
  );
  assert.deepEqual(
    readJournal(dir).tasks.map((t) => [t.id, t.state]),
    [['t-1', 'failed']],
  );
  assert.equal(stateDoc(dir).audit.length, 0, "the event moved at the write that made the task's end durable");
  assert.equal(readJournal(dir).audit.length, 1);
  const r = await Store.open(dir);
  assert.deepEqual(
    r.data.tasks.map((t) => [t.id, t.state]),
    [['t-1', 'failed']],
    'the journal copy wins',
  );
  assert.equal(r.data.audit.length, 1, 'the event is not doubled');
  // The next write leaves state.json with only live records.
  await r.flush();
  assert.deepEqual(stateDoc(dir).tasks, []);
  assert.deepEqual(stateDoc(dir).audit, []);
  const r2 = await Store.open(dir);
  assert.deepEqual(
    r2.data.tasks.map((t) => [t.id, t.state]),
    [['t-1', 'failed']],
  );
  assert.equal(r2.data.audit.length, 1);
});

test('crash mid-append (a torn last line): ignored and reported, the task taken from state.json; later appends start a new segment', async () => {
  const { dir, s } = await withRunning();
  await s.update((d) => d.audit.push(ev(2)));
  await s.update((d) => void (d.tasks[0]!.state = 'succeeded')); // its end, durable in state.json
  const realAppend = s.journal.append.bind(s.journal);
  s.journal.append = async (kind, recs, guard) => {
    // Half of the line reaches the file, then the process dies.
    await realAppend(kind, recs, guard);
    const seg = s.journal.segments.filter((x) => x.kind === kind).pop()!;
    const text = readFileSync(seg.file, 'utf8');
    const lastStart = text.lastIndexOf('\n', text.length - 2) + 1;
    writeFileSync(seg.file, text.slice(0, lastStart + Math.floor((text.length - lastStart) / 2)));
    throw Object.assign(new Error('killed'), { code: 'EKILLED' });
  };
  await assert.rejects(
    s.update((d) => void (d.nextTaskSeq += 1)),
    StateWriteError,
  );
  s.close();
  const r = await Store.open(dir);
  assert.deepEqual(
    r.data.tasks.map((t) => [t.id, t.state]),
    [['t-1', 'succeeded']],
    'the state copy, the journal line being torn',
  );
  assert.equal(r.journalProblems.length, 1);
  assert.match(r.journalProblems[0]!, /journal .*tasks-\d{8}-1\.jsonl: torn last line \(\d+ bytes\) ignored/);
  await r.update((d) => void (d.tasks[0]!.state = 'cancelled'));
  assert.ok(
    readdirSync(join(dir, 'journal')).some((f) => /^tasks-\d{8}-2\.jsonl$/.test(f)),
    'a new segment, not glued to the torn line',
  );
  const r2 = await Store.open(dir);
  assert.deepEqual(
    r2.data.tasks.map((t) => [t.id, t.state]),
    [['t-1', 'cancelled']],
  );
  assert.deepEqual(
    r2.data.audit.map((a) => a.target),
    ['c1', 'c2'],
  );
});

test('an audit event whose write failed (its operation undone) never reaches the journal', async () => {
  const { dir, s } = await withRunning();
  const realWrite = s.db.adapter.write.bind(s.db.adapter);
  s.db.adapter.write = () => Promise.reject(Object.assign(new Error('no space'), { code: 'ENOSPC' }));
  const e2 = ev(2);
  await assert.rejects(
    s.update((d) => d.audit.push(e2)),
    StateWriteError,
  );
  s.data.audit.splice(s.data.audit.indexOf(e2), 1);
  s.db.adapter.write = realWrite;
  await s.flush();
  await s.update((d) => d.audit.push(ev(3)));
  await s.flush();
  s.close();
  assert.deepEqual(
    readJournal(dir).audit.map((a) => (a.e as AuditEvent).target),
    ['c1', 'c3'],
  );
  const r = await Store.open(dir);
  assert.deepEqual(
    r.data.audit.map((a) => a.target),
    ['c1', 'c3'],
  );
});

test('a process that lost the lock appends nothing to the journal', async () => {
  const dir = tmp();
  let lost = false;
  const s = await Store.open(dir, {
    guard: () => {
      if (lost) throw new LockLostError('kindler.lock', 'deleted');
    },
  });
  await s.update((d) => void d.tasks.push(task('t-1', 'running')));
  lost = true;
  await assert.rejects(
    s.update((d) => void (d.tasks[0]!.state = 'succeeded')),
    (e: Error) => e instanceof StateWriteError && e.lockLost,
  );
  assert.ok(!existsSync(join(dir, 'journal')), 'no journal file written');
  s.close();
});

test('a damaged line in the middle of a segment is skipped and reported, never fatal', async () => {
  const { dir, s } = await withRunning();
  await s.update((d) => void (d.tasks[0]!.state = 'succeeded'));
  await s.update((d) => void d.tasks.push(task('t-2', 'failed')));
  s.close();
  const seg = join(
    dir,
    'journal',
    readdirSync(join(dir, 'journal')).find((f) => f.startsWith('tasks-'))!,
  );
  const lines = readFileSync(seg, 'utf8').split('\n');
  writeFileSync(seg, [lines[0], '{"id":"t-9", garbage', ...lines.slice(1)].join('\n'));
  const r = await Store.open(dir);
  assert.deepEqual(
    r.data.tasks.map((t) => t.id),
    ['t-1', 't-2'],
  );
  assert.match(r.journalProblems.join('\n'), /damaged line 2/);
});

test('migration 2 -> 3 is an explicit step: events numbered in order, records kept for the first write to move', () => {
  const out = MIGRATIONS[2]!({
    schemaVersion: 2,
    nextTaskSeq: 3,
    clusters: [],
    tasks: [task('t-1', 'succeeded'), task('t-2', 'running')],
    audit: [ev(1), ev(2)],
  });
  assert.equal(out.schemaVersion, 3);
  assert.equal(SCHEMA_VERSION, 3);
  assert.equal(out.nextAuditSeq, 3);
  assert.deepEqual(
    (out.audit as { n: number }[]).map((a) => a.n),
    [1, 2],
  );
  assert.equal((out.tasks as Task[]).length, 2);
});

test('migration of a version-2 file with 20,000 finished tasks and audit: backup kept, everything equal through listTasks/getTask/listAudit', async (t) => {
  const w = makeWorld({ auditMaxEvents: 0 });
  t.after(() => w.dispose());
  const doc = v2State(w.dataDir, { clusters: 200, tasks: 20000, events: 30000 });
  const text = JSON.stringify(doc);
  writeFileSync(join(w.dataDir, 'state.json'), text);
  const tasks = doc.tasks as Task[];
  const audit = doc.audit as AuditEvent[];
  let engine = await startEngine(w);
  const check = (label: string) => {
    assert.deepEqual(engine.listTasks(), [...tasks].reverse(), `${label}: listTasks`);
    for (const id of ['t-1', 't-777', 't-20000']) assert.deepEqual(engine.getTask(id), tasks[Number(id.slice(2)) - 1], `${label}: getTask ${id}`);
    assert.deepEqual(engine.listAudit(), audit, `${label}: listAudit`);
    assert.deepEqual(engine.listAudit({ user: 'user3', limit: 10 }), audit.filter((a) => a.user === 'user3').slice(-10));
  };
  check('after migrating');
  assert.equal(readFileSync(join(w.dataDir, 'state.json.v2.bak'), 'utf8'), text, 'the version-2 file kept as it was');
  const st = JSON.parse(readFileSync(join(w.dataDir, 'state.json'), 'utf8'));
  assert.equal(st.schemaVersion, 3);
  assert.deepEqual([st.tasks.length, st.audit.length], [0, 0], 'state.json holds only live records');
  assert.ok(readFileSync(join(w.dataDir, 'state.json')).length < 200_000, 'state.json is small');
  const j = readJournal(w.dataDir);
  assert.deepEqual([j.tasks.length, j.audit.length, j.problems], [20000, 30000, []]);
  await engine.shutdown();
  engine = await startEngine(w);
  check('after a restart');
  await engine.shutdown();
  assert.equal(readFileSync(join(w.dataDir, 'state.json.v2.bak'), 'utf8'), text, 'migrated once');
});

test('a migration interrupted before its state write is done again from the start, without doubles', async (t) => {
  const dir = tmp();
  const doc = v2State(dir, { clusters: 3, tasks: 50, events: 40 });
  writeFileSync(join(dir, 'state.json'), JSON.stringify(doc));
  // A journal left by a migration that died after appending part of it.
  mkdirSync(join(dir, 'journal'));
  appendFileSync(join(dir, 'journal', 'tasks-20260101-1.jsonl'), `${JSON.stringify((doc.tasks as Task[])[0])}\n{"id":"t-2","ki`);
  const s = await Store.open(dir);
  t.after(() => s.close());
  assert.equal(s.data.tasks.length, 50);
  assert.deepEqual(s.journalProblems, []);
  const j = readJournal(dir);
  assert.deepEqual([j.tasks.length, j.audit.length], [50, 40]);
});

test('tasks, task ID and audit --json are byte-identical to the code before the journal (fixture), after migrating and after a restart', async (t) => {
  const expected = JSON.parse(readFileSync(join(FIXTURES, 'expected-v2.json'), 'utf8')) as Record<string, { code: number; out: string }>;
  const w = makeWorld();
  t.after(() => w.dispose());
  writeFileSync(join(w.dataDir, 'state.json'), JSON.stringify(v2State('/var/lib/kindler', FIXTURE_SIZE)));
  for (const round of ['migrated', 'restarted']) {
    const engine = await startEngine(w);
    for (const v of FIXTURE_VERBS) {
      const r = await verb(engine, v);
      assert.deepEqual({ code: r.code, out: r.out }, expected[v.join(' ')], `${round}: ${v.join(' ')}`);
    }
    await engine.shutdown();
  }
  assert.equal(JSON.parse(readFileSync(join(w.dataDir, 'state.json'), 'utf8')).tasks.length, 0);
});

test('retention drops whole segments of tasks and audit, and the in-memory index with them', async (t) => {
  const w = makeWorld({ retentionDays: 30, auditRetentionDays: 30, auditMaxEvents: 0 });
  t.after(() => w.dispose());
  // 40 days of finished tasks and audit events, one segment of each per day, ending now.
  const day = 86_400_000;
  const nowMs = Date.now();
  const doc = v2State(w.dataDir, { clusters: 3, tasks: 400, events: 400 });
  const tasks = doc.tasks as Task[];
  tasks.forEach((x, i) => {
    const at = new Date(nowMs - (39 - Math.floor(i / 10)) * day - 3_600_000).toISOString();
    Object.assign(x, { createdAt: at, startedAt: at, finishedAt: at });
  });
  (doc.audit as AuditEvent[]).forEach((a, i) => (a.at = new Date(nowMs - (39 - Math.floor(i / 10)) * day - 3_600_000).toISOString()));
  writeFileSync(join(w.dataDir, 'state.json'), JSON.stringify(doc));
  let engine = await startEngine(w);
  const segs = (kind: string) =>
    readdirSync(join(w.dataDir, 'journal'))
      .filter((f) => f.startsWith(`${kind}-`))
      .sort();
  assert.equal(segs('tasks').length, 40);
  assert.equal(segs('audit').length, 40);
  const n = await runRetention(engine);
  // Days 0..8 are more than 30 days old (day 9 is 30 days and an hour: kept by the age rule only when <= 30d).
  const left = engine.listTasks();
  assert.ok(
    left.every(
      (x) =>
        nowMs - Date.parse(x.finishedAt!) <= 30 * day ||
        ['t-398', 't-399', 't-400'].includes(x.id) ||
        (doc.clusters as { lastTaskId?: string }[]).some((c) => c.lastTaskId === x.id),
    ),
  );
  assert.equal(n, 400 - left.length);
  assert.ok(segs('tasks').length <= 32, `old task segments dropped: ${segs('tasks').join(' ')}`);
  assert.ok(segs('audit').length <= 31, `old audit segments dropped: ${segs('audit').join(' ')}`);
  const cutDay = new Date(nowMs - 31 * day).toISOString().slice(0, 10).replace(/-/g, '');
  t.diagnostic(`pruned ${n} tasks; segments left: tasks ${segs('tasks').length}, audit ${segs('audit').length}`);
  assert.deepEqual(
    segs('tasks').filter((f) => f.slice(6, 14) < cutDay),
    [],
    'no task segment of a day past retention',
  );
  assert.deepEqual(
    segs('audit').filter((f) => f.slice(6, 14) < cutDay),
    [],
    'no audit segment of a day past retention',
  );
  const audit = engine.listAudit();
  assert.ok(audit.every((a) => nowMs - Date.parse(a.at) <= 30 * day));
  await engine.shutdown();
  engine = await startEngine(w);
  assert.deepEqual(
    engine.listTasks().map((x) => x.id),
    left.map((x) => x.id),
    'what retention removed stays removed after a restart',
  );
  assert.deepEqual(engine.listAudit(), audit);
  await engine.shutdown();
});

test('a torn journal line is reported by the daemon log and doctor, and the engine serves on', async (t) => {
  const w = makeWorld();
  t.after(() => w.dispose());
  writeFileSync(join(w.dataDir, 'state.json'), JSON.stringify(v2State(w.dataDir, { clusters: 2, tasks: 5, events: 3 })));
  await (await startEngine(w)).shutdown();
  const seg = join(
    w.dataDir,
    'journal',
    readdirSync(join(w.dataDir, 'journal')).find((f) => f.startsWith('tasks-'))!,
  );
  appendFileSync(seg, '{"id":"t-6","kind":"cre');
  const logs: string[] = [];
  const engine = await Engine.start(w.cfg, { role: 'test', scriptEnv: scriptEnv(w), log: (level, msg) => logs.push(`${level} ${msg}`) });
  assert.match(logs.join('\n'), /^warn journal .*tasks-\d{8}-1\.jsonl: torn last line \(\d+ bytes\) ignored/m);
  const doc = JSON.parse((await verb(engine, ['doctor', '--json'])).out) as { journal?: string[] };
  assert.equal(doc.journal?.length, 1);
  assert.match(doc.journal[0]!, /torn last line/);
  assert.deepEqual(
    engine.listTasks().map((x) => x.id),
    ['t-5', 't-4', 't-3', 't-2', 't-1'],
  );
  await engine.shutdown();
});

test("a task's end and its effect on its cluster become durable together: a crash after the journal append can never leave a succeeded delete with its record still there", async () => {
  const dir = tmp();
  const s = await Store.open(dir);
  const del: Task = { ...task('t-1', 'running'), kind: 'delete', cluster: 'gone' };
  await s.update((d) => {
    d.clusters.push({
      name: 'gone',
      provider: 'k3d',
      servers: 1,
      agents: 0,
      httpPort: 18080,
      httpsPort: 18443,
      apiPort: 16443,
      owner: 'alice',
      createdAt: del.createdAt,
      desired: 'absent',
      actual: 'deleting',
      kubeContext: 'k3d-gone',
      kubeconfig: '/tmp/gone.yaml',
      updatedAt: del.createdAt,
    } as never);
    d.tasks.push(del);
    d.nextTaskSeq = 2;
  });
  // The delete ends and its record goes in one change; the process dies before state.json is written.
  s.db.adapter.write = () => Promise.reject(Object.assign(new Error('killed'), { code: 'EKILLED' }));
  await assert.rejects(
    s.update((d) => {
      d.tasks[0]!.state = 'succeeded';
      d.clusters.splice(0, 1);
    }),
    StateWriteError,
  );
  s.close();
  assert.equal(readJournal(dir).tasks.length, 0, 'the end is not in the journal before state.json holds it with its effect');
  const r = await Store.open(dir);
  assert.deepEqual(
    r.data.tasks.map((t) => [t.id, t.state]),
    [['t-1', 'running']],
    'as last saved: recovery marks it interrupted and re-checks the cluster',
  );
  assert.deepEqual(
    r.data.clusters.map((c) => c.name),
    ['gone'],
  );
  r.close();
});
