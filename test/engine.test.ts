/**
 * The engine in-process, running the real scripts against the fake provider tools.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ALICE, until, verb, withEngine } from './helpers.js';
import type { EngineEvent } from '../src/core/feed.js';
import { createServer } from 'node:net';

for (const provider of ['k3d', 'kind'] as const) {
  test(`create and delete a ${provider} cluster`, async (t) => {
    const { w, engine } = await withEngine(t);
    const events: EngineEvent[] = [];
    const { snapshot, unsubscribe } = engine.subscribe((e) => events.push(e));
    t.after(unsubscribe);
    assert.equal(snapshot.clusters.length, 0);

    const r = await verb(engine, ['create', 'alpha', '--provider', provider, '--agents', '1', '--wait', '--json']);
    assert.equal(r.code, 0, r.out + r.err);
    const task = JSON.parse(r.out).task;
    assert.equal(task.state, 'succeeded');
    assert.equal(task.progress, 100);
    // kind gets the shipped ingress controller installed (step 5 of 6).
    assert.deepEqual(
      task.steps.map((s: { key: string }) => s.key),
      ['preflight', 'create-cluster', 'kubeconfig', 'wait-ready', ...(provider === 'kind' ? ['ingress'] : []), 'node-address'],
    );
    assert.ok(task.steps.every((s: { state: string }) => s.state === 'succeeded'));

    const c = engine.getCluster('alpha')!;
    assert.equal(c.actual, 'running');
    assert.equal(c.desired, 'present');
    assert.equal(c.owner, 'alice');
    assert.match(c.nodeAddress ?? '', /^\d+\.\d+\.\d+\.\d+$/);
    assert.equal(c.kubeContext, provider === 'k3d' ? 'k3d-alpha' : 'kind-alpha');
    assert.ok(existsSync(c.kubeconfig), 'kubeconfig written');
    assert.equal(statSync(c.kubeconfig).mode & 0o777, 0o600);
    assert.ok(!existsSync(join(w.home, '.kube', 'config')), "the user's kubeconfig is never touched");
    assert.ok(w.containers('alpha').length >= 2);

    // Progress came from real steps, in order, and the log is complete on disk.
    const progress = events.filter((e) => e.type === 'task' && e.task.id === task.id).map((e) => (e as { task: { progress: number } }).task.progress);
    assert.ok(progress.length >= 6);
    assert.deepEqual(
      [...progress].sort((a, b) => a - b),
      progress,
      'progress never goes back',
    );
    const seqs = events.map((e) => e.seq);
    assert.deepEqual(
      seqs,
      seqs.map((_, i) => seqs[0]! + i),
      'events arrive in order without gaps',
    );
    const log = readFileSync(join(w.dataDir, 'logs', `${task.id}.log`), 'utf8');
    assert.match(log, provider === 'kind' ? /==> \[2\/6\]/ : /==> \[2\/5\]/);
    assert.doesNotMatch(log, /\x1b/, 'colours are stripped');

    const d = await verb(engine, ['delete', 'alpha', '--wait', '--json']);
    assert.equal(d.code, 0, d.out + d.err);
    assert.equal(engine.getCluster('alpha'), undefined);
    assert.deepEqual(w.containers('alpha'), []);
    assert.ok(!existsSync(c.kubeconfig));
    // The task stays queryable after its cluster is gone.
    assert.equal(engine.getTask(task.id)!.state, 'succeeded');
    assert.equal((await verb(engine, ['logs', 'alpha'])).code, 0);
  });
}

test('invalid names and ports are refused with the rule named, and change nothing', async (t) => {
  const { engine } = await withEngine(t);
  const cases: [string[], RegExp, number][] = [
    [['create', 'Bad_Name'], /^error: name: must start with a lowercase letter/, 2],
    [['create', 'bad_name'], /^error: name: only lowercase letters, digits and "-"/, 2],
    [['create', 'devops'], /^error: name: "devops" is reserved/, 2],
    [['create', 'a'.repeat(33)], /^error: name: must be at most 32 characters for k3d/, 2],
    [['create', 'ok', '--http-port', '99999'], /^error: http-port: must be a port number 1024-65535/, 2],
    [['create', 'ok', '--http-port', '18000', '--https-port', '18000'], /^error: https-port: must differ from http-port/, 2],
    [['create', 'ok', '--provider', 'minikube'], /^error: provider: must be one of k3d, kind/, 2],
    [['create', 'ok', '--agents', 'two'], /^error: agents: must be a whole number 0-20/, 2],
    [['create', 'ok', '--ttl', 'soon'], /^error: ttl: must be a duration/, 2],
    [['create', 'ok', '--bogus'], /^error: --bogus: unknown flag for "create"/, 2],
    [['create'], /^error: name: required/, 2],
    [['frobnicate'], /^error: verb: unknown verb "frobnicate"/, 2],
    [['show', 'nope'], /^error: cluster: no cluster named "nope"/, 3],
    [['cancel', 'x1'], /^error: task: must be a task id like t-12/, 2],
    [['cancel', 't-999'], /^error: task: no task "t-999"/, 3],
    [['tasks', '--limit', '0'], /^error: limit: must be a whole number 1-999999/, 2],
    [['audit', '--limit', 'many'], /^error: limit: must be a whole number 1-999999/, 2],
  ];
  for (const [argv, re, code] of cases) {
    const r = await verb(engine, argv);
    assert.equal(r.code, code, `${argv.join(' ')}: ${r.err}`);
    assert.match(r.err, re, argv.join(' '));
    assert.equal(r.err.trim().split('\n').length, 1, 'one line');
  }
  const j = await verb(engine, ['create', 'Bad', '--json']);
  assert.equal(JSON.parse(j.out).error.kind, 'usage');
  assert.equal(engine.listClusters().length, 0);
  assert.equal(engine.listTasks().length, 0);
});

test('a given port used by another cluster or listening on the host is refused, never replaced', async (t) => {
  const { w, engine } = await withEngine(t);
  const a = await verb(engine, ['create', 'one', '--wait', '--json']);
  assert.equal(a.code, 0, a.err);
  const one = engine.getCluster('one')!;
  const r = await verb(engine, ['create', 'two', '--http-port', String(one.httpsPort)]);
  assert.equal(r.code, 4);
  assert.match(r.err, new RegExp(`http-port: ${one.httpsPort} is already used by cluster "one"`));

  const srv = createServer();
  const busy = w.cfg.ports.http.from + 20;
  await new Promise<void>((res) => srv.listen(busy, '127.0.0.1', res));
  t.after(() => srv.close());
  const h = await verb(engine, ['create', 'three', '--http-port', String(busy)]);
  assert.equal(h.code, 4);
  assert.match(h.err, new RegExp(`http-port: ${busy} is not available: something on this host is listening on it`));
  assert.equal(engine.getCluster('two'), undefined);
  assert.equal(engine.getCluster('three'), undefined);
  // An allocated port skips the busy one too.
  const hostBusyFirst = w.cfg.ports.http.from + 1;
  const srv2 = createServer();
  await new Promise<void>((res) => srv2.listen(hostBusyFirst, '0.0.0.0', res));
  t.after(() => srv2.close());
  await verb(engine, ['create', 'four']);
  assert.notEqual(engine.getCluster('four')!.httpPort, hostBusyFirst);
});

test('a failure in the middle of create: failed with the reason, partial cluster removed', async (t) => {
  const { w, engine } = await withEngine(t);
  w.rule('kubectl.wait', 'fail 1 nodes never became Ready');
  const r = await verb(engine, ['create', 'midfail', '--wait', '--json']);
  assert.equal(r.code, 1);
  const task = JSON.parse(r.out).task;
  assert.equal(task.state, 'failed');
  assert.ok(task.error.reason.length > 0);
  assert.equal(task.cleanup, 'done');
  assert.equal(task.steps.find((s: { key: string }) => s.key === 'wait-ready').state, 'failed');
  const c = engine.getCluster('midfail')!;
  assert.equal(c.actual, 'failed');
  assert.equal(c.lastError, task.error.reason);
  assert.deepEqual(w.containers('midfail'), [], 'the partial cluster is gone');
  assert.ok(!existsSync(c.kubeconfig));

  // A re-run after the fault is gone finishes the job with the same ports.
  w.clearRule('kubectl.wait');
  const again = await verb(engine, ['create', 'midfail', '--wait', '--json']);
  assert.equal(again.code, 0, again.err);
  assert.equal(engine.getCluster('midfail')!.actual, 'running');
  assert.equal(engine.getCluster('midfail')!.httpPort, c.httpPort);
});

test('--remove-on-failure drops the record after cleanup', async (t) => {
  const { w, engine } = await withEngine(t);
  w.rule('k3d.cluster-create', 'fail 1 boom');
  const r = await verb(engine, ['create', 'gone', '--remove-on-failure', '--wait']);
  assert.equal(r.code, 1);
  assert.equal(engine.getCluster('gone'), undefined);
  assert.deepEqual(w.containers('gone'), []);
});

test('cancel a running create: the process tree stops and cleanup runs', async (t) => {
  const { w, engine } = await withEngine(t);
  w.rule('k3d.cluster-create', 'hang');
  const task = await engine.create({ name: 'slow', provider: 'k3d', servers: 1, agents: 0 }, ALICE);
  await until(engine, () => engine.getTask(task.id)!.steps.some((s) => s.key === 'create-cluster'), 20000, 'the create step');
  const c = await verb(engine, ['cancel', task.id, '--wait', '--json']);
  const final = JSON.parse(c.out).task;
  assert.equal(final.state, 'cancelled');
  assert.match(final.error.reason, /cancelled by alice/);
  assert.equal(engine.getCluster('slow')!.actual, 'failed');
  assert.deepEqual(w.containers('slow'), []);
  // No process from the task's group is left.
  const pid = Number(engine.getTask(task.id)!.params!.pid);
  assert.throws(() => process.kill(-pid, 0));
});

test('cancel a queued task: it never runs and its new record goes', async (t) => {
  const { w, engine } = await withEngine(t, { concurrency: 1 });
  w.rule('k3d.cluster-create', 'hang');
  const first = await engine.create({ name: 'first', provider: 'k3d', servers: 1, agents: 0 }, ALICE);
  const second = await engine.create({ name: 'second', provider: 'k3d', servers: 1, agents: 0 }, ALICE);
  assert.equal(engine.getTask(second.id)!.state, 'queued');
  const r = await verb(engine, ['cancel', second.id, '--json']);
  assert.equal(r.code, 0, r.err);
  assert.equal(engine.getTask(second.id)!.state, 'cancelled');
  assert.equal(engine.getCluster('second'), undefined);
  await engine.cancel(first.id, ALICE);
  await engine.waitForTask(first.id);
});

test('a task that runs past its timeout fails, is stopped and cleaned up', async (t) => {
  // 8 s leaves a loaded machine time to reach the hanging wait (the create itself takes ~1.5 s idle),
  // so the timeout always strikes after the cluster exists and cleanup has something to remove.
  const { w, engine } = await withEngine(t, {
    timeouts: { create: 8, delete: 60, start: 60, stop: 60, 'import-image': 60, status: 20 },
    cancelGraceSeconds: 2,
  });
  w.rule('kubectl.wait', 'hang');
  const r = await verb(engine, ['create', 'late', '--wait', '--json']);
  assert.equal(r.code, 1);
  const task = JSON.parse(r.out).task;
  assert.equal(task.state, 'failed');
  assert.match(task.error.reason, /^timed out after 8s/);
  assert.equal(task.cleanup, 'done');
  assert.deepEqual(w.containers('late'), []);
});

test('two simultaneous creates of one name: exactly one task', async (t) => {
  const { engine } = await withEngine(t);
  const results = await Promise.allSettled([
    engine.create({ name: 'twin', provider: 'k3d', servers: 1, agents: 0 }, ALICE),
    engine.create({ name: 'twin', provider: 'k3d', servers: 1, agents: 0 }, { user: 'bob', source: 'test' }),
  ]);
  assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
  const rejected = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
  assert.match(rejected.reason.message, /already has create task t-1 (queued|running)/);
  assert.equal(engine.listTasks().length, 1);
  await engine.idle();
});

test('20 concurrent creates get distinct ports', async (t) => {
  const { w, engine } = await withEngine(t, { concurrency: 4 });
  const tasks = await Promise.all(
    Array.from({ length: 20 }, (_, i) => engine.create({ name: `c${i}`, provider: i % 2 ? 'kind' : 'k3d', servers: 1, agents: 0 }, ALICE)),
  );
  assert.equal(new Set(tasks.map((x) => x.id)).size, 20);
  const ports = engine.listClusters().flatMap((c) => [c.httpPort, c.httpsPort, c.apiPort]);
  assert.equal(ports.length, 60);
  assert.equal(new Set(ports).size, 60, 'no collision');
  for (const c of engine.listClusters()) {
    assert.ok(c.httpPort >= w.cfg.ports.http.from && c.httpPort <= w.cfg.ports.http.to);
    assert.ok(c.apiPort >= w.cfg.ports.api.from && c.apiPort <= w.cfg.ports.api.to);
  }
  await Promise.all(tasks.map((x) => engine.waitForTask(x.id)));
  const states = tasks.map((x) => engine.getTask(x.id)!.state);
  assert.deepEqual(states, Array(20).fill('succeeded'));
});

test('global concurrency limit queues the rest', async (t) => {
  const { w, engine } = await withEngine(t, { concurrency: 2 });
  w.rule('k3d.cluster-create', 'delay 0.5');
  let maxRunning = 0;
  const off = engine.feed.subscribe(() => {
    maxRunning = Math.max(maxRunning, engine.listTasks({ active: true }).filter((x) => x.state === 'running').length);
  });
  t.after(off);
  const tasks = await Promise.all(['q1', 'q2', 'q3', 'q4'].map((n) => engine.create({ name: n, provider: 'k3d', servers: 1, agents: 0 }, ALICE)));
  await Promise.all(tasks.map((x) => engine.waitForTask(x.id)));
  assert.equal(maxRunning, 2);
});

test('delete is idempotent: a cluster already gone from the provider is removed with a note', async (t) => {
  const { w, engine } = await withEngine(t);
  await verb(engine, ['create', 'vanish', '--wait']);
  // Someone removes it behind kindler's back.
  const { execFileSync } = await import('node:child_process');
  execFileSync('k3d', ['cluster', 'delete', 'vanish'], { env: w.env });
  const r = await verb(engine, ['delete', 'vanish', '--wait', '--json']);
  assert.equal(r.code, 0, r.err);
  const task = JSON.parse(r.out).task;
  assert.ok(
    task.notes.some((n: string) => /already absent/.test(n)),
    JSON.stringify(task.notes),
  );
  assert.equal(engine.getCluster('vanish'), undefined);
});

test('stop and start', async (t) => {
  const { engine } = await withEngine(t);
  await verb(engine, ['create', 'sleepy', '--provider', 'kind', '--wait']);
  const s = await verb(engine, ['stop', 'sleepy', '--wait']);
  assert.equal(s.code, 0, s.err);
  assert.equal(engine.getCluster('sleepy')!.actual, 'stopped');
  assert.equal(engine.getCluster('sleepy')!.desired, 'stopped');
  assert.equal((await engine.probe('sleepy', 'kind')).state, 'stopped');
  const st = await verb(engine, ['start', 'sleepy', '--wait']);
  assert.equal(st.code, 0, st.err);
  assert.equal(engine.getCluster('sleepy')!.actual, 'running');
});

test('a failed start is recorded truthfully from the provider', async (t) => {
  const { w, engine } = await withEngine(t);
  await verb(engine, ['create', 'flaky', '--wait']);
  await verb(engine, ['stop', 'flaky', '--wait']);
  w.rule('k3d.cluster-start', 'fail 1 port is already allocated');
  const r = await verb(engine, ['start', 'flaky', '--wait', '--json']);
  assert.equal(r.code, 1);
  assert.equal(JSON.parse(r.out).task.state, 'failed');
  await until(engine, () => engine.getCluster('flaky')!.actual === 'stopped', 20000, 'the re-check');
  assert.ok(engine.getCluster('flaky')!.lastError);
});

test('docker unreachable: create fails at preflight with a clear reason and creates nothing', async (t) => {
  const { w, engine } = await withEngine(t);
  w.rule('docker-down', '');
  const r = await verb(engine, ['create', 'nodocker', '--wait', '--json']);
  assert.equal(r.code, 1);
  const task = JSON.parse(r.out).task;
  assert.match(task.error.reason, /docker/i);
  assert.equal(task.cleanup, 'not-needed');
  assert.equal(task.steps[0].key, 'preflight');
  assert.equal(task.steps[0].state, 'failed');
});

test('import-image into a running cluster', async (t) => {
  const { w, engine } = await withEngine(t);
  await verb(engine, ['create', 'img', '--wait']);
  const { execFileSync } = await import('node:child_process');
  execFileSync('docker', ['pull', 'nginx:1.27'], { env: w.env });
  const ok = await verb(engine, ['import-image', 'img', 'nginx:1.27', '--wait', '--json']);
  assert.equal(ok.code, 0, ok.out + ok.err);
  const missing = await verb(engine, ['import-image', 'img', 'not-here:1', '--wait', '--json']);
  assert.equal(missing.code, 1);
  assert.equal(JSON.parse(missing.out).task.state, 'failed');
});

test('import-csv: once, on request, each row imported or refused', async (t) => {
  const { w, engine } = await withEngine(t);
  const { writeFileSync } = await import('node:fs');
  const file = join(w.dir, 'environments.csv');
  const base = w.cfg.ports.http.from;
  writeFileSync(
    file,
    [
      '# env,provider,node_port,pf_port,register_portainer,haproxy_route,http_port,https_port,cluster_subnet',
      `devops,k3d,30080,19000,true,true,${base + 10},${base + 40},10.100.0.0/16`,
      `dev,k3d,30080,19001,true,true,${base + 11},${base + 41},10.101.0.0/16`,
      `dev-a,kind,30081,19011,true,false,${base + 12},${base + 42},`,
      `dup,k3d,30082,19012,yes,no,${base + 11},${base + 43},`,
    ].join('\n'),
  );
  const r = await verb(engine, ['import-csv', file, '--json']);
  assert.equal(r.code, 1, 'some rows were refused');
  const rows = JSON.parse(r.out).rows;
  assert.deepEqual(
    rows.map((x: { result: string }) => x.result),
    ['refused', 'imported', 'imported', 'refused'],
  );
  assert.match(rows[0].reason, /reserved/);
  assert.match(rows[3].reason, /already used by cluster "dev"/);
  const dev = engine.getCluster('dev')!;
  assert.equal(dev.httpPort, base + 11);
  assert.equal(dev.subnet, '10.101.0.0/16');
  assert.equal(dev.ingressNodePort, 30080);
  assert.deepEqual(engine.getCluster('dev-a')!.options, { route: false, register: ['portainer'] });
  assert.deepEqual(engine.getCluster('dev')!.options, { route: true, register: ['portainer'] });
  // Imported records are re-checked with the provider: nothing exists yet.
  await until(engine, () => engine.getCluster('dev')!.actual === 'absent', 20000, 'the re-check');
  // Importing again refuses every row: nothing is imported twice.
  const again = await verb(engine, ['import-csv', file, '--json']);
  assert.ok(JSON.parse(again.out).rows.every((x: { result: string }) => x.result === 'refused'));
  // A deleted cluster is not resurrected by anything.
  const del = await verb(engine, ['delete', 'dev', '--wait']);
  assert.equal(del.code, 0, del.err);
  assert.equal(engine.getCluster('dev'), undefined);
});

test('the log ring is bounded and says how many lines are only on disk', async (t) => {
  const { engine } = await withEngine(t, { logRingLines: 10 });
  const r = await verb(engine, ['create', 'chatty', '--wait', '--json']);
  const id = JSON.parse(r.out).task.id;
  const tail = engine.liveLog(id)!;
  assert.equal(tail.lines.length, 10);
  const all = await engine.readLog(id);
  assert.equal(tail.dropped, all.length - 10);
  assert.deepEqual(all.slice(-10), tail.lines);
});

test('hooks run after create and delete with the cluster facts; a failing hook fails its step but keeps the cluster', async (t) => {
  const { writeFileSync, mkdirSync, chmodSync, mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const base = mkdtempSync(join(tmpdir(), 'kindler-hooks-'));
  t.after(() => rmSync(base, { recursive: true, force: true }));
  const hooksDir = join(base, 'hooks');
  for (const ph of ['post-create.d', 'post-delete.d']) mkdirSync(join(hooksDir, ph), { recursive: true });
  const out = join(base, 'hook.out');
  const hook = (file: string, body: string) => {
    writeFileSync(file, `#!/usr/bin/env bash\nset -euo pipefail\n${body}\n`);
    chmodSync(file, 0o755);
  };
  hook(
    join(hooksDir, 'post-create.d', '10-record'),
    `echo "create $KINDLER_CLUSTER_NAME $KINDLER_CLUSTER_PROVIDER $KINDLER_CLUSTER_KUBE_CONTEXT $KINDLER_TASK_ID" >> ${out}; echo hello from the hook`,
  );
  hook(join(hooksDir, 'post-delete.d', '10-record'), `echo "delete $KINDLER_CLUSTER_NAME" >> ${out}`);
  writeFileSync(join(hooksDir, 'post-create.d', '20-disabled'), '#!/bin/sh\nexit 1\n'); // not executable: off
  const { engine } = await withEngine(t, { hooksDir });
  const r = await verb(engine, ['create', 'hooked', '--wait', '--json']);
  assert.equal(r.code, 0, r.out + r.err);
  const task = JSON.parse(r.out).task;
  assert.deepEqual(task.steps.map((s: { key: string }) => s.key).slice(-1), ['hooks']);
  assert.equal(task.steps.at(-1).of, 6);
  const log = (await engine.readLog(task.id)).join('\n');
  assert.match(log, /hook 10-record: hello from the hook/);
  assert.match(readFileSync(out, 'utf8'), new RegExp(`create hooked k3d k3d-hooked ${task.id}`));
  // A failing hook: the task fails at its hooks step, the cluster stays running.
  hook(join(hooksDir, 'post-create.d', '30-fail'), 'echo "registry said no" >&2; exit 3');
  const bad = await verb(engine, ['create', 'hooked2', '--wait', '--json']);
  assert.equal(bad.code, 1);
  const bt = JSON.parse(bad.out).task;
  assert.match(bt.error.reason, /^hooks step failed: hook 30-fail exited 3/);
  assert.equal(bt.steps.at(-1).state, 'failed');
  const c = engine.getCluster('hooked2')!;
  assert.equal(c.actual, 'running');
  assert.match(c.lastError!, /hooks step failed/);
  assert.equal(c.steps!.at(-1)!.state, 'failed');
  const d = await verb(engine, ['delete', 'hooked', '--wait']);
  assert.equal(d.code, 0, d.err);
  assert.match(readFileSync(out, 'utf8'), /delete hooked/);
});

test('quota, extend and audit', async (t) => {
  const { engine } = await withEngine(t, { maxClustersPerUser: 1 });
  assert.equal((await verb(engine, ['create', 'mine', '--ttl', '1h', '--json'])).code, 0);
  const over = await verb(engine, ['create', 'second']);
  assert.equal(over.code, 4);
  assert.match(over.err, /^error: quota: alice already has 1 cluster \(limit 1\); delete one first/);
  await engine.idle();
  const before = Date.parse(engine.getCluster('mine')!.expiresAt!);
  const e = await verb(engine, ['extend', 'mine', '2h', '--json']);
  assert.equal(e.code, 0, e.err);
  assert.ok(Date.parse(JSON.parse(e.out).cluster.expiresAt) - before >= 2 * 3600_000 - 1000);
  assert.equal((await verb(engine, ['extend', 'mine', 'soon'])).code, 2);
  const viewer = { user: 'vic', source: 'test', role: 'viewer' as const };
  assert.equal((await verb(engine, ['extend', 'mine', '1h'], viewer)).code, 5);
  assert.equal((await verb(engine, ['audit'], viewer)).code, 5);
  const a = JSON.parse((await verb(engine, ['audit', '--json'])).out).events;
  const actions = a.map((x: { action: string; result: string; user: string }) => `${x.user}:${x.action}:${x.result}`);
  assert.ok(actions.includes('alice:create:ok'), actions.join(' '));
  assert.ok(actions.includes('alice:extend:ok'));
  assert.ok(actions.includes('vic:extend:refused'));
  const onlyVic = JSON.parse((await verb(engine, ['audit', '--user', 'vic', '--since', '1h', '--json'])).out).events;
  assert.ok(onlyVic.length >= 1 && onlyVic.every((x: { user: string }) => x.user === 'vic'));
});

test("TTL: an expired cluster is deleted as kindler-ttl; retention prunes old finished tasks but keeps each cluster's latest", async (t) => {
  const { runTtl, runRetention } = await import('../src/cron/jobs.js');
  const { w, engine } = await withEngine(t, { retentionDays: 1 });
  void w;
  assert.equal((await verb(engine, ['create', 'brief', '--ttl', '1h', '--wait'])).code, 0);
  assert.equal((await verb(engine, ['create', 'stays', '--wait'])).code, 0);
  await verb(engine, ['stop', 'stays', '--wait']);
  // Make brief's TTL pass (as time would), then run the job the schedule runs.
  await engine.store.update((d) => {
    d.clusters.find((c) => c.name === 'brief')!.expiresAt = new Date(Date.now() - 1000).toISOString();
  });
  const r = await runTtl(engine);
  assert.equal(r.deleted.length, 1);
  const del = engine.listTasks({ cluster: 'brief', limit: 1 })[0]!;
  assert.equal(del.kind, 'delete');
  assert.equal(del.user, 'kindler-ttl');
  await engine.waitForTask(del.id);
  assert.equal(engine.getCluster('brief'), undefined);
  // Age every finished task past the retention window.
  await engine.store.update((d) => {
    for (const t2 of d.tasks) t2.finishedAt = new Date(Date.now() - 3 * 86_400_000).toISOString();
  });
  const before = engine.listTasks().map((x) => x.id);
  const pruned = await runRetention(engine);
  const after = engine.listTasks().map((x) => x.id);
  assert.equal(pruned, before.length - after.length);
  const latestStays = engine.getCluster('stays')!.lastTaskId!;
  assert.ok(after.includes(latestStays), "the existing cluster's latest task is kept");
  assert.ok(!after.includes('t-1'), 'an old task of a deleted cluster is pruned');
  assert.ok(!existsSync(join(engine.logDir, 't-1.log')), 'with its log file');
});

test('an empty argument is refused by every verb, never read as "any" or "the latest"', async (t) => {
  const { engine } = await withEngine(t);
  assert.equal((await verb(engine, ['create', 'solo', '--wait'])).code, 0);
  for (const argv of [
    ['logs', '--', ''],
    ['task', ''],
    ['show', ''],
    ['delete', ''],
    ['stop', ''],
    ['cancel', ''],
  ]) {
    const r = await verb(engine, argv);
    assert.equal(r.code, 2, `${JSON.stringify(argv)}: ${r.out}${r.err}`);
    assert.equal(r.out, '', JSON.stringify(argv));
    assert.match(r.err, /^error: [a-z-]+: must not be empty \(usage: /, JSON.stringify(argv));
    assert.equal(r.err.trim().split('\n').length, 1);
  }
  assert.equal(engine.getCluster('solo')?.actual, 'running');
});
