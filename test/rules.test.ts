/**
 * Issue 13, items 4, 5, 6 and 11: re-creating someone else's record, bounded audit under a refusal flood,
 * bounded import-csv, and the subnet and port rules. The engine in-process, against the fake provider tools.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Engine } from '../src/engine/engine.js';
import { runRetention } from '../src/cron/jobs.js';
import type { Principal } from '../src/commands/index.js';
import { auditOnDisk, FAKE_BIN, makeWorld, scriptEnv, verb, withEngine } from './helpers.js';

const op1: Principal = { user: 'op1', source: 'test', role: 'operator' };
const op2: Principal = { user: 'op2', source: 'test', role: 'operator' };
const admin: Principal = { user: 'root', source: 'test', role: 'admin' };
const vic: Principal = { user: 'vic', source: 'ssh', role: 'viewer' };

const oneLine = (s: string) => s.trim().split('\n').length === 1;

// ---- item 4: re-creating an existing record --------------------------------------------------------

test("an operator cannot re-create another operator's record; an admin retries it as recorded; the owner may change it", async (t) => {
  const { w, engine } = await withEngine(t);
  const base = w.cfg.ports.http.from;
  w.rule('k3d.cluster-create', 'fail 1 boom');
  const first = await verb(
    engine,
    ['create', 'dev1', '--image', 'rancher/k3s:v1.30.4-k3s1', '--http-port', String(base + 3), '--subnet', '10.131.0.0/16', '--wait', '--json'],
    op1,
  );
  assert.equal(first.code, 1, first.err);
  const before = engine.getCluster('dev1')!;
  assert.equal(before.actual, 'failed');
  assert.equal(before.owner, 'op1');
  const tasksBefore = engine.listTasks().length;

  // Another operator: refused outright, whatever it asks for; the record and the tasks stay as they were.
  for (const argv of [
    ['create', 'dev1', '--image', 'evil/k3s:1', '--http-port', String(base + 7)],
    ['create', 'dev1', '--remove-on-failure', '--wait'],
    ['create', 'dev1'],
  ]) {
    const r = await verb(engine, argv, op2);
    assert.equal(r.code, 5, `${argv.join(' ')}: ${r.out}${r.err}`);
    assert.match(r.err, /^error: name: cluster "dev1" belongs to op1; operators may only re-create their own clusters$/m);
    assert.ok(oneLine(r.err), r.err);
    assert.deepEqual(engine.getCluster('dev1'), before, 'the record is untouched');
    assert.equal(engine.listTasks().length, tasksBefore, 'no task was queued');
  }
  // A viewer, as before: refused.
  assert.equal((await verb(engine, ['create', 'dev1'], vic)).code, 5);

  // Every refusal is in the audit log, through the same authorize path as any other refusal.
  const refusedByOp2 = engine.listAudit({ user: 'op2' }).filter((e) => e.action === 'create' && e.target === 'dev1' && e.result === 'refused');
  assert.equal(refusedByOp2.length, 3, JSON.stringify(engine.listAudit()));
  assert.match(refusedByOp2[0]!.detail!, /operators may only re-create their own clusters/);

  // An admin who is not the owner: may retry, but not change the owner's image, ports or subnet.
  for (const [flag, value] of [
    ['--image', 'other/k3s:2'],
    ['--http-port', String(base + 8)],
    ['--subnet', '10.132.0.0/16'],
  ] as const) {
    const r = await verb(engine, ['create', 'dev1', flag, value], admin);
    assert.equal(r.code, 5, `${flag}: ${r.err}`);
    assert.match(r.err, new RegExp(`^error: ${flag.slice(2)}: cluster "dev1" belongs to op1; only its owner may change its ${flag.slice(2)} on re-create`));
    assert.ok(oneLine(r.err));
    assert.deepEqual(engine.getCluster('dev1'), before);
  }
  // Giving the recorded value is not a change.
  const same = await verb(engine, ['create', 'dev1', '--image', 'rancher/k3s:v1.30.4-k3s1', '--wait', '--json'], admin);
  assert.equal(same.code, 1, same.err);
  assert.equal(JSON.parse(same.out).task.user, 'root');
  const retried = engine.getCluster('dev1')!;
  assert.equal(retried.owner, 'op1', 'the record keeps its owner');
  assert.equal(retried.image, 'rancher/k3s:v1.30.4-k3s1');
  assert.equal(retried.httpPort, before.httpPort);
  assert.equal(retried.subnet, '10.131.0.0/16');

  // The owner changes a port (honoured), then retries without flags: the recorded image, ports and subnet are reused.
  const moved = await verb(engine, ['create', 'dev1', '--http-port', String(base + 9), '--wait'], op1);
  assert.equal(moved.code, 1, moved.err);
  assert.equal(engine.getCluster('dev1')!.httpPort, base + 9);
  w.clearRule('k3d.cluster-create');
  const ok = await verb(engine, ['create', 'dev1', '--wait', '--json'], op1);
  assert.equal(ok.code, 0, ok.out + ok.err);
  const done = engine.getCluster('dev1')!;
  assert.equal(done.actual, 'running');
  assert.equal(done.image, 'rancher/k3s:v1.30.4-k3s1');
  assert.equal(done.httpPort, base + 9);
  assert.equal(done.subnet, '10.131.0.0/16');
  const create = JSON.parse(
    readFileSync(join(w.fakeDir, 'calls.log'), 'utf8')
      .trim()
      .split('\n')
      .filter((l) => /"cluster","create"/.test(l))
      .at(-1)!,
  );
  assert.ok(create.argv.includes('rancher/k3s:v1.30.4-k3s1'), `the retry ran with the recorded image: ${create.argv.join(' ')}`);
});

// ---- item 5: refusal flood -----------------------------------------------------------------------

test('a refusal flood from one user keeps the state file bounded; the rest are counted in one summary event', async (t) => {
  const { w, engine } = await withEngine(t);
  const file = join(w.dataDir, 'state.json');
  await engine.store.flush();
  const sizeBefore = statSync(file).size;
  const FLOOD = 3000;
  const t0 = performance.now();
  for (let i = 0; i < FLOOD; i++) {
    const r = await verb(engine, ['create', `spam${i}`], vic);
    assert.equal(r.code, 5);
  }
  const ms = performance.now() - t0;
  // Another user's refusal in the same minute is recorded: the limit is per user.
  assert.equal((await verb(engine, ['create', 'x'], { user: 'val', source: 'test', role: 'viewer' })).code, 5);
  await engine.store.flush();
  const sizeAfter = statSync(file).size;
  const limit = w.cfg.auditRefusalsPerMinute;
  const recorded = engine.listAudit({ user: 'vic' });
  assert.equal(recorded.length, limit, `at most ${limit} refusals of vic recorded this minute`);
  assert.equal(engine.listAudit({ user: 'val' }).length, 1);
  assert.ok(sizeAfter - sizeBefore < 16 * 1024, `state grew by ${sizeAfter - sizeBefore} bytes under ${FLOOD} refusals`);

  // The minute's end (here: now) records one summary with the count.
  engine.flushRefusals();
  await engine.store.flush();
  const summary = engine.listAudit({ user: 'vic' }).filter((e) => e.action === 'refusals-suppressed');
  assert.equal(summary.length, 1);
  assert.match(summary[0]!.detail!, new RegExp(`^${FLOOD - limit} more refusals suppressed \\(over ${limit} per minute, `));
  assert.equal(summary[0]!.source, 'ssh');
  t.diagnostic(`${FLOOD} refusals in ${ms.toFixed(0)} ms: state.json ${sizeBefore} -> ${statSync(file).size} bytes; ${limit} recorded + 1 summary`);
});

test("the refusal limiter: per user, per minute window; the window's end hands over one summary with the count", async () => {
  const { RefusalLimiter } = await import('../src/engine/refusals.js');
  let clock = Date.parse('2026-01-01T00:00:00Z');
  const summaries: { user: string; count: number; limit: number; from: string; to: string; source: string }[] = [];
  const lim = new RefusalLimiter(
    () => 2,
    (s) => summaries.push(s),
    () => clock,
  );
  const a = { user: 'a', source: 'ssh' };
  assert.deepEqual(
    [1, 2, 3, 4, 5].map(() => lim.admit(a)),
    [true, true, false, false, false],
  );
  assert.equal(lim.admit({ user: 'b', source: 'cli' }), true, 'another user has a limit of their own');
  assert.deepEqual([...lim.pending()], [['a', 3]]);
  clock += 59_999;
  assert.equal(lim.admit(a), false, 'still the same minute');
  clock += 1;
  assert.equal(lim.admit(a), true, 'a new minute');
  assert.equal(summaries.length, 1);
  assert.deepEqual(summaries[0], { user: 'a', source: 'ssh', count: 4, limit: 2, from: '2026-01-01T00:00:00.000Z', to: '2026-01-01T00:01:00.000Z' });
  lim.flush();
  assert.equal(summaries.length, 1, 'nothing suppressed in the new window: no summary');
  assert.equal(
    new RefusalLimiter(
      () => 0,
      () => assert.fail('no limit, no summary'),
    ).admit(a),
    true,
  );
});

test('the audit log is bounded by count as events come, and pruned by age and count by the retention job', async (t) => {
  const { w, engine } = await withEngine(t);
  const max = w.cfg.auditMaxEvents;
  const days = w.cfg.auditRetentionDays;
  // Many users, each under the per-user refusal limit: the count bound still holds.
  const users = max + 100;
  for (let i = 0; i < users; i++) assert.equal((await verb(engine, ['create', 'x'], { user: `v${i}`, source: 'test', role: 'viewer' })).code, 5);
  await engine.store.flush();
  const all = engine.listAudit();
  assert.equal(all.length, max, 'never more than auditMaxEvents');
  assert.equal(all[0]!.user, 'v100', 'the oldest went first');
  // On disk (state.json and the journal, as the next start reads them) the bound holds too.
  assert.equal(auditOnDisk(w.dataDir).length, max);

  // Age 60 of them past auditRetentionDays: the retention job prunes exactly those.
  await engine.store.update((d) => {
    for (const e of d.audit.slice(0, 60)) e.at = new Date(Date.now() - (days + 1) * 86_400_000).toISOString();
  });
  const logs: string[] = [];
  await runRetention(engine, (_l, m) => logs.push(m));
  assert.equal(engine.listAudit().length, max - 60);
  assert.equal(engine.listAudit()[0]!.user, 'v160');
  assert.ok(
    logs.some((l) => /retention: pruned 60 audit event/.test(l)),
    logs.join('\n'),
  );
});

// ---- item 6: import-csv --------------------------------------------------------------------------

function csvRows(n: number, prefix = 'imp'): string {
  const lines = ['# env,provider,node_port,pf_port,register_portainer,haproxy_route,http_port,https_port,cluster_subnet'];
  for (let i = 0; i < n; i++) lines.push(`${prefix}${i},k3d,,,false,false,,,`);
  return `${lines.join('\n')}\n`;
}

test('import-csv: a file over the row cap is refused whole; a capped import leaves list served and runs at most `concurrency` status checks at once', async (t) => {
  const w = makeWorld({ checkHostPorts: false, concurrency: 2 });
  // A docker in front of the fake one that logs when each call starts and ends: status checks run docker.
  const wrapDir = join(w.dir, 'wrap');
  mkdirSync(wrapDir);
  const callLog = join(w.dir, 'docker-calls.log');
  writeFileSync(
    join(wrapDir, 'docker'),
    `#!/usr/bin/env bash\necho "+" >>'${callLog}'\n'${join(FAKE_BIN, 'docker')}' "$@"\nrc=$?\necho "-" >>'${callLog}'\nexit $rc\n`,
  );
  chmodSync(join(wrapDir, 'docker'), 0o755);
  const env = scriptEnv(w);
  const engine = await Engine.start(w.cfg, { role: 'test', scriptEnv: { ...env, PATH: `${wrapDir}:${env.PATH}` } });
  t.after(async () => {
    await engine.shutdown();
    w.cleanup();
  });
  const max = w.cfg.importCsvMaxRows;

  // Over the cap: refused with the count, nothing changed.
  const big = join(w.dir, 'big.csv');
  writeFileSync(big, csvRows(max * 5));
  const r0 = await verb(engine, ['import-csv', big]);
  assert.equal(r0.code, 2, r0.out + r0.err);
  assert.match(r0.err, new RegExp(`^error: file: has ${max * 5} rows; import-csv takes at most ${max} at once \\(config importCsvMaxRows\\)`));
  assert.ok(oneLine(r0.err));
  assert.equal(engine.listClusters().length, 0);

  // At the cap: imported (as many as the port ranges hold, the rest refused), while `list` keeps answering.
  w.rule('docker.ps', 'delay 0.2');
  const file = join(w.dir, 'cap.csv');
  writeFileSync(file, csvRows(max));
  const lag = monitorEventLoopDelay({ resolution: 5 });
  lag.enable();
  const lists: number[] = [];
  let importing = true;
  const lister = (async () => {
    while (importing) {
      // A client asking for the list every 10 ms: the latency counts from when it asked, so a stalled
      // event loop (even between two asks) shows as a late answer.
      const asked = performance.now() + 10;
      await new Promise((r) => setTimeout(r, 10));
      await new Promise((r) => setImmediate(r));
      const l = await verb(engine, ['list', '--json']);
      assert.equal(l.code, 0);
      lists.push(performance.now() - asked);
    }
  })();
  const t0 = performance.now();
  const r = await verb(engine, ['import-csv', file, '--json']);
  const importMs = performance.now() - t0;
  const rows = JSON.parse(r.out).rows as { result: string; reason?: string }[];
  const imported = rows.filter((x) => x.result === 'imported').length;
  assert.equal(rows.length, max);
  assert.equal(imported, w.cfg.ports.api.to - w.cfg.ports.api.from + 1, 'one record per free port');
  assert.match(rows.at(-1)!.reason!, /no free port left in the configured range/);
  await engine.idle();
  const totalMs = performance.now() - t0;
  importing = false;
  await lister;
  lag.disable();

  // Every imported record was checked with the provider, never more than `concurrency` at once.
  const calls = readFileSync(callLog, 'utf8').trim().split('\n');
  let now = 0;
  let peak = 0;
  for (const c of calls) peak = Math.max(peak, (now += c === '+' ? 1 : -1));
  assert.equal(calls.filter((c) => c === '+').length, imported, 'one status check per imported record');
  assert.ok(peak <= w.cfg.concurrency, `at most ${w.cfg.concurrency} status checks at once (saw ${peak})`);
  assert.ok(
    engine.listClusters().every((c) => c.actual === 'absent'),
    'all re-checked',
  );

  const worstList = Math.max(...lists);
  const worstLag = lag.max / 1e6;
  t.diagnostic(
    `import of ${max} rows: ${importMs.toFixed(0)} ms, with status checks ${totalMs.toFixed(0)} ms; ${lists.length} lists served, worst ${worstList.toFixed(0)} ms; event loop delay max ${worstLag.toFixed(0)} ms; peak concurrent status checks ${peak}`,
  );
  assert.ok(lists.length >= 10, `list was served during the import (${lists.length} times)`);
  assert.ok(worstList < 250, `list answered within 250 ms during the import (worst ${worstList.toFixed(0)} ms)`);
});

// ---- item 11: subnet and port rules ----------------------------------------------------------------

test('special-purpose subnets are refused with the range named (every listed range, and overlaps)', async () => {
  const { checkCreateRequest, checkSubnet, SPECIAL_SUBNETS } = await import('../src/core/spec.js');
  for (const s of SPECIAL_SUBNETS) {
    const [addr, prefix] = s.cidr.split('/') as [string, string];
    // A subnet the parser takes (prefix 8-28) inside or around each special range.
    const p = Math.min(28, Math.max(8, Number(prefix)));
    const probe = Number(prefix) < 8 ? `${addr.split('.')[0]}.0.0.0/8` : `${addr}/${p}`;
    assert.throws(
      () => checkSubnet(probe),
      (e: Error) => e.message.startsWith(`subnet: must not overlap a special-purpose range (${s.cidr} is `),
      probe,
    );
  }
  for (const ok of ['10.101.0.0/16', '172.16.0.0/12', '192.168.0.0/16', '100.128.0.0/16', '198.20.0.0/16']) assert.doesNotThrow(() => checkSubnet(ok), ok);
  assert.throws(
    () => checkCreateRequest({ name: 'dev', provider: 'k3d', servers: 1, agents: 0, apiPort: 1023 }),
    /^Error: api-port: must be a port number 1024-65535 \(got 1023\)$/,
  );
});

test('create and import-csv refuse special-purpose subnets, privileged ports and the routes frontend port; nothing changes', async (t) => {
  const routesDir = makeWorld();
  t.after(() => routesDir.cleanup());
  const probe = makeWorld();
  const listen = probe.cfg.ports.http.from; // the frontend's port inside the allocation range
  probe.cleanup();
  const routes = {
    enabled: true,
    baseDomain: 'example.test',
    listen: { http: { address: '127.0.0.1', port: listen }, https: { address: '127.0.0.1', port: listen + 1 } },
    configFile: join(routesDir.dir, 'kindler.cfg'),
    validateCommand: ['true', '{file}'],
    reloadCommand: ['true'],
    backend: 'host-port',
  };
  const { w, engine } = await withEngine(t, { routes, ports: probe.cfg.ports });
  const cases: [string[], RegExp][] = [
    [
      ['create', 'x', '--subnet', '0.0.0.0/8'],
      /^error: subnet: must not overlap a special-purpose range \(0\.0\.0\.0\/8 is "this network", RFC 791\) \(got "0\.0\.0\.0\/8"\)$/,
    ],
    [['create', 'x', '--subnet', '127.0.0.0/8'], /^error: subnet: must not overlap a special-purpose range \(127\.0\.0\.0\/8 is loopback, RFC 1122\)/],
    [['create', 'x', '--subnet', '127.42.0.0/16'], /^error: subnet: must not overlap a special-purpose range \(127\.0\.0\.0\/8 is loopback/],
    [['create', 'x', '--subnet', '169.254.0.0/16'], /^error: subnet: must not overlap a special-purpose range \(169\.254\.0\.0\/16 is link-local/],
    [['create', 'x', '--subnet', '224.0.0.0/8'], /^error: subnet: must not overlap a special-purpose range \(224\.0\.0\.0\/4 is multicast/],
    [['create', 'x', '--subnet', '255.255.255.0/24'], /^error: subnet: must not overlap a special-purpose range \(240\.0\.0\.0\/4 is reserved and broadcast/],
    [['create', 'x', '--subnet', '198.18.0.0/16'], /^error: subnet: must not overlap a special-purpose range \(198\.18\.0\.0\/15 is benchmarking/],
    [['create', 'x', '--http-port', '80'], /^error: http-port: must be a port number 1024-65535 \(got "80"\)$/],
    [['create', 'x', '--https-port', '443'], /^error: https-port: must be a port number 1024-65535 \(got "443"\)$/],
    [['create', 'x', '--api-port', '1023'], /^error: api-port: must be a port number 1024-65535 \(got "1023"\)$/],
    [
      ['create', 'x', '--http-port', String(listen)],
      new RegExp(`^error: http-port: ${listen} is the routes frontend's own port \\(routes.listen.http.port\\); choose another$`),
    ],
    [
      ['create', 'x', '--api-port', String(listen + 1)],
      new RegExp(`^error: api-port: ${listen + 1} is the routes frontend's own port \\(routes.listen.https.port\\); choose another$`),
    ],
  ];
  for (const [argv, re] of cases) {
    const r = await verb(engine, argv);
    assert.equal(r.code, 2, `${argv.join(' ')}: ${r.out}${r.err}`);
    assert.match(r.err.trimEnd(), re, argv.join(' '));
    assert.ok(oneLine(r.err), r.err);
  }
  assert.equal(engine.listClusters().length, 0);
  assert.equal(engine.listTasks().length, 0);

  // Allocation never hands out the frontend's ports either.
  const ok = await verb(engine, ['create', 'web', '--wait', '--json']);
  assert.equal(ok.code, 0, ok.out + ok.err);
  const web = engine.getCluster('web')!;
  for (const p of [web.httpPort, web.httpsPort, web.apiPort]) assert.ok(p !== listen && p !== listen + 1, `allocated ${p}`);

  // import-csv applies the same rules, row by row.
  const file = join(w.dir, 'environments.csv');
  writeFileSync(
    file,
    [
      `loop,k3d,,,false,false,,,127.0.0.0/16`,
      `cgnat,k3d,,,false,false,,,100.64.0.0/16`,
      `low,k3d,,,false,false,80,,`,
      `front,k3d,,,false,false,${listen},,`,
      `fine,k3d,,,false,false,,,10.140.0.0/16`,
    ].join('\n'),
  );
  const r = await verb(engine, ['import-csv', file, '--json']);
  const rows = JSON.parse(r.out).rows as { name: string; result: string; reason?: string }[];
  assert.deepEqual(
    rows.map((x) => `${x.name}:${x.result}`),
    ['loop:refused', 'cgnat:refused', 'low:refused', 'front:refused', 'fine:imported'],
  );
  assert.match(rows[0]!.reason!, /^subnet: must not overlap a special-purpose range \(127\.0\.0\.0\/8 is loopback/);
  assert.match(rows[1]!.reason!, /^subnet: must not overlap a special-purpose range \(100\.64\.0\.0\/10 is shared address space/);
  assert.match(rows[2]!.reason!, /^http_port: must be a port number 1024-65535 \(got "80"\)$/);
  assert.match(rows[3]!.reason!, new RegExp(`^http_port: ${listen} is the routes frontend's own port \\(routes.listen.http.port\\)$`));
  assert.deepEqual(
    engine.listClusters().map((c) => c.name),
    ['fine', 'web'],
  );
});
