/**
 * The scheduler (with a fake cron whose ticks the test fires by hand) and the lifecycle rules: TTL,
 * task retention, quota.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Cluster, Task, TaskState } from '../src/core/types.js';
import { expiring, expiryWarning } from '../src/core/expiry.js';
import { expired, quotaProblem, retentionPlan, ttlPass, type TtlEngine } from '../src/cron/lifecycle.js';
import { startJobs, type SchedulerDeps } from '../src/cron/scheduler.js';

const AT = '2026-01-01T00:00:00.000Z';
const NOW = Date.parse('2026-01-02T12:00:00.000Z');
const MIN = 60_000;
const iso = (ms: number) => new Date(ms).toISOString();

function cluster(name: string, over: Partial<Cluster> = {}): Cluster {
  return {
    name,
    provider: 'k3d',
    servers: 1,
    agents: 0,
    httpPort: 18080,
    httpsPort: 18443,
    apiPort: 16443,
    owner: 'alice',
    createdAt: AT,
    desired: 'present',
    actual: 'running',
    kubeContext: `k3d-${name}`,
    kubeconfig: `/tmp/${name}.yaml`,
    updatedAt: AT,
    ...over,
  };
}

function task(id: string, clusterName: string, state: TaskState, finishedMsAgo?: number): Task {
  return {
    id,
    kind: 'start',
    cluster: clusterName,
    user: 'alice',
    state,
    progress: 0,
    steps: [],
    createdAt: iso(NOW - 100 * 86_400_000),
    notes: [],
    logLines: 0,
    ...(finishedMsAgo !== undefined ? { finishedAt: iso(NOW - finishedMsAgo) } : {}),
  };
}

// ---- TTL ----------------------------------------------------------------------------------------------

test('expiring: only clusters inside the warning window, soonest first', () => {
  const cs = [
    cluster('later', { expiresAt: iso(NOW + 30 * MIN) }),
    cluster('soon', { expiresAt: iso(NOW + 9 * MIN) }),
    cluster('sooner', { expiresAt: iso(NOW + 2 * MIN) }),
    cluster('past', { expiresAt: iso(NOW - MIN) }),
    cluster('going', { expiresAt: iso(NOW + MIN), desired: 'absent' }),
    cluster('forever'),
  ];
  assert.deepEqual(
    expiring(cs, NOW).map((c) => c.name),
    ['sooner', 'soon'],
  );
  assert.deepEqual(
    expiring(cs, NOW, 60 * MIN).map((c) => c.name),
    ['sooner', 'soon', 'later'],
  );
  assert.equal(expiryWarning(cs[1]!, NOW), `cluster soon expires in 9m (at ${iso(NOW + 9 * MIN)}) and will be deleted`);
});

test('expired: past expiry, not meant absent, no active task, never on a bad date', () => {
  const cs = [
    cluster('old', { expiresAt: iso(NOW - MIN) }),
    cluster('exact', { expiresAt: iso(NOW) }),
    cluster('busy', { expiresAt: iso(NOW - MIN) }),
    cluster('deleting', { expiresAt: iso(NOW - MIN), desired: 'absent' }),
    cluster('making', { expiresAt: iso(NOW - MIN), actual: 'creating' }),
    cluster('garbage', { expiresAt: 'not a date' }),
    cluster('future', { expiresAt: iso(NOW + MIN) }),
    cluster('forever'),
  ];
  assert.deepEqual(
    expired(cs, NOW, new Set(['busy'])).map((c) => c.name),
    ['old', 'exact'],
  );
});

test('ttlPass queues a delete per expired cluster as kindler-ttl; one refusal does not stop the others', async () => {
  const cs = [
    cluster('a', { expiresAt: iso(NOW - 3 * MIN) }),
    cluster('b', { expiresAt: iso(NOW - 2 * MIN) }),
    cluster('c', { expiresAt: iso(NOW - MIN) }),
    cluster('d', { expiresAt: iso(NOW + MIN) }),
  ];
  const calls: { name: string; user: string; source: string; role: string }[] = [];
  let seq = 0;
  const engine: TtlEngine = {
    listClusters: () => cs.map((c) => structuredClone(c)),
    getCluster: (n) => structuredClone(cs.find((c) => c.name === n)),
    listTasks: () => [],
    delete: async (name, actor) => {
      calls.push({ name, ...actor });
      if (name === 'b') throw new Error('cluster "b" already has stop task t-3 running');
      return { ...task(`t-${++seq}`, name, 'queued'), kind: 'delete' };
    },
  };
  const r = await ttlPass({ engine, now: () => NOW });
  assert.deepEqual(
    calls.map((c) => c.name),
    ['a', 'b', 'c'],
  );
  assert.ok(calls.every((c) => c.user === 'kindler-ttl' && c.source === 'scheduler' && c.role === 'admin'));
  assert.deepEqual(
    r.deleted.map((x) => x.cluster),
    ['a', 'c'],
  );
  assert.deepEqual(r.errors, [{ cluster: 'b', error: 'cluster "b" already has stop task t-3 running' }]);
});

test('ttlPass re-reads each cluster: an expiry extended meanwhile is honoured', async () => {
  const cs = [cluster('a', { expiresAt: iso(NOW - MIN) })];
  const deleted: string[] = [];
  const engine: TtlEngine = {
    listClusters: () => cs.map((c) => structuredClone(c)),
    getCluster: (n) => ({ ...structuredClone(cs.find((c) => c.name === n)!), expiresAt: iso(NOW + 60 * MIN) }),
    listTasks: () => [],
    delete: async (name) => {
      deleted.push(name);
      return task('t-1', name, 'queued');
    },
  };
  assert.deepEqual((await ttlPass({ engine, now: () => NOW })).deleted, []);
  assert.deepEqual(deleted, []);
});

// ---- retention -----------------------------------------------------------------------------------------

test("retentionPlan prunes old finished tasks but keeps each existing cluster's latest task", () => {
  const DAY = 86_400_000;
  const tasks = [
    task('t-1', 'a', 'succeeded', 40 * DAY),
    task('t-2', 'a', 'failed', 35 * DAY), // a's latest: kept although old
    task('t-3', 'gone', 'succeeded', 40 * DAY), // its cluster is deleted: pruned
    task('t-4', 'gone', 'succeeded', 39 * DAY), // latest of a deleted cluster: pruned
    task('t-5', 'b', 'cancelled', 31 * DAY),
    task('t-6', 'b', 'succeeded', 1 * DAY), // recent
    task('t-7', 'c', 'interrupted', 60 * DAY),
    task('t-8', 'c', 'queued'), // never finished: kept
    task('t-9', 'd', 'succeeded', 50 * DAY), // d's lastTaskId: kept
    task('t-10', 'e', 'succeeded', 50 * DAY),
  ];
  const clusters = [cluster('a'), cluster('b'), cluster('c'), cluster('d', { lastTaskId: 't-9' })];
  assert.deepEqual(retentionPlan(tasks, clusters, NOW, 30 * DAY), ['t-1', 't-3', 't-4', 't-5', 't-7', 't-10']);
  assert.deepEqual(retentionPlan(tasks, clusters, NOW, 45 * DAY), ['t-7', 't-10']);
  assert.deepEqual(retentionPlan([], clusters, NOW, DAY), []);
  // A queued task is never pruned, however old.
  assert.deepEqual(retentionPlan([task('t-1', 'x', 'queued'), task('t-2', 'x', 'running')], [], NOW, DAY), []);
});

// ---- quota ---------------------------------------------------------------------------------------------

test('quotaProblem: every record the user owns counts; 0 means no limit; re-using a record is never refused', () => {
  const cs = [cluster('a1'), cluster('a2', { desired: 'stopped' }), cluster('a3', { actual: 'failed' }), cluster('b1', { owner: 'bob' })];
  assert.equal(quotaProblem(cs, 'alice', 3), 'quota: alice already has 3 clusters (limit 3)');
  assert.equal(quotaProblem(cs, 'alice', 2), 'quota: alice already has 3 clusters (limit 2)');
  assert.equal(quotaProblem(cs, 'alice', 4), null);
  assert.equal(quotaProblem(cs, 'bob', 1), 'quota: bob already has 1 cluster (limit 1)');
  assert.equal(quotaProblem(cs, 'carol', 1), null);
  assert.equal(quotaProblem(cs, 'alice', 0), null, '0 = no limit, as in config');
  assert.equal(quotaProblem(cs, 'alice', undefined), null);
  assert.equal(quotaProblem(cs, 'alice', Infinity), null);
  assert.equal(quotaProblem(cs, 'alice', 3, 'a3'), null, 're-creating a failed record adds nothing');
  assert.equal(quotaProblem(cs, 'alice', 3, 'new'), 'quota: alice already has 3 clusters (limit 3)');
});

// ---- scheduler -------------------------------------------------------------------------------------------

interface FakeCron extends SchedulerDeps {
  tasks: { expr: string; name: string; fn: () => Promise<void>; stopped: boolean; destroyed: boolean }[];
  lines: string[];
  tick(name: string): Promise<void>;
}

function fakeCron(valid = (e: string) => /^(\S+\s+){4}\S+$/.test(e)): FakeCron {
  const tasks: FakeCron['tasks'] = [];
  const lines: string[] = [];
  return {
    tasks,
    lines,
    validate: valid,
    log: (level, msg) => void lines.push(`${level}: ${msg}`),
    schedule(expr, fn, opts) {
      const t = { expr, name: opts.name, fn, stopped: false, destroyed: false };
      tasks.push(t);
      return { stop: () => void (t.stopped = true), destroy: () => void (t.destroyed = true) };
    },
    tick(name) {
      const t = tasks.find((x) => x.name === name)!;
      return t.stopped ? Promise.resolve() : t.fn();
    },
  };
}

function gate() {
  let open!: () => void;
  const p = new Promise<void>((r) => (open = r));
  return { p, open };
}

test('a bad expression refuses the whole set, naming the job and the expression', () => {
  const cron = fakeCron();
  assert.throws(
    () =>
      startJobs(
        [
          { name: 'ttl', expr: '* * * * *', run: () => undefined },
          { name: 'reconcile', expr: '*/5 * * *', run: () => undefined },
        ],
        cron,
      ),
    /cron: job "reconcile": "\*\/5 \* \* \*" is not a valid cron expression/,
  );
  assert.equal(cron.tasks.length, 0, 'nothing was scheduled');
  assert.throws(
    () =>
      startJobs(
        [
          { name: 'x', expr: '* * * * *', run: () => undefined },
          { name: 'x', expr: '* * * * *', run: () => undefined },
        ],
        fakeCron(),
      ),
    /defined twice/,
  );
  const throwing = fakeCron(() => {
    throw new Error('parser crashed');
  });
  assert.throws(() => startJobs([{ name: 'y', expr: '* * * * *', run: () => undefined }], throwing), /job "y"/);
});

test('a job never overlaps itself; skipped ticks are logged', async () => {
  const cron = fakeCron();
  let runs = 0;
  let g = gate();
  const jobs = startJobs(
    [
      {
        name: 'reconcile',
        expr: '*/5 * * * *',
        run: async () => {
          runs++;
          await g.p;
        },
      },
    ],
    cron,
  );
  const first = cron.tick('reconcile');
  await cron.tick('reconcile');
  await cron.tick('reconcile');
  assert.equal(runs, 1);
  assert.deepEqual(jobs.running(), ['reconcile']);
  assert.equal(cron.lines.filter((l) => /^warn: job reconcile: tick skipped: previous run still going/.test(l)).length, 2);
  // On demand shares the guard.
  const now = await jobs.runJobNow('reconcile');
  assert.equal(now.ran, false);
  assert.equal(runs, 1);
  g.open();
  await first;
  assert.deepEqual(jobs.running(), []);
  g = gate();
  g.open();
  await cron.tick('reconcile');
  assert.equal(runs, 2, 'runs again once the previous run ended');
  const again = await jobs.runJobNow('reconcile');
  assert.equal(again.ran, true);
  assert.equal(runs, 3);
  jobs.stop();
});

test('jobs are independent: one running does not block another', async () => {
  const cron = fakeCron();
  const g = gate();
  const seen: string[] = [];
  const jobs = startJobs(
    [
      {
        name: 'slow',
        expr: '* * * * *',
        run: async () => {
          seen.push('slow');
          await g.p;
        },
      },
      { name: 'fast', expr: '* * * * *', run: () => void seen.push('fast') },
    ],
    cron,
  );
  const slow = cron.tick('slow');
  await cron.tick('fast');
  assert.deepEqual(seen, ['slow', 'fast']);
  g.open();
  await slow;
  await jobs.idle();
  jobs.stop();
});

test('errors in a job are logged, never thrown, and the job runs again next tick', async () => {
  const cron = fakeCron();
  let n = 0;
  const jobs = startJobs(
    [
      {
        name: 'bad',
        expr: '* * * * *',
        run: async () => {
          n++;
          throw new Error('state write failed');
        },
      },
      {
        name: 'sync-throw',
        expr: '* * * * *',
        run: () => {
          throw new Error('synchronous boom');
        },
      },
    ],
    cron,
  );
  await cron.tick('bad');
  await cron.tick('bad');
  await cron.tick('sync-throw');
  assert.equal(n, 2);
  assert.equal(cron.lines.filter((l) => l === 'error: job bad failed: state write failed').length, 2);
  assert.ok(cron.lines.includes('error: job sync-throw failed: synchronous boom'));
  const r = await jobs.runJobNow('bad');
  assert.deepEqual({ ran: r.ran, ok: r.ran && r.ok, error: r.ran && !r.ok ? r.error : '' }, { ran: true, ok: false, error: 'state write failed' });
  jobs.stop();
});

test('runJobNow refuses an unknown job; stop() stops and destroys every task and ignores later ticks', async () => {
  const cron = fakeCron();
  let runs = 0;
  const jobs = startJobs(
    [
      { name: 'ttl', expr: '* * * * *', run: () => void runs++ },
      { name: 'retention', expr: '0 3 * * *', run: () => undefined },
    ],
    cron,
  );
  assert.deepEqual(
    cron.tasks.map((t) => `${t.name} ${t.expr}`),
    ['ttl * * * * *', 'retention 0 3 * * *'],
  );
  assert.throws(() => jobs.runJobNow('nope'), /no job named "nope" \(jobs: ttl, retention\)/);
  jobs.stop();
  assert.ok(cron.tasks.every((t) => t.stopped && t.destroyed));
  await cron.tasks[0]!.fn();
  assert.equal(runs, 0);
  assert.equal((await jobs.runJobNow('ttl')).ran, false);
});
