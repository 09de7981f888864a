/**
 * Routes as task steps: the engine renders, validates (real haproxy -c) and reloads a real HAProxy on
 * loopback. A route is live when the create task succeeds and gone when the delete task does.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { createServer as createHttp, request } from 'node:http';
import { createServer as createNet } from 'node:net';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { makeWorld, startEngine, verb } from './helpers.js';

function haproxyPath(): string | null {
  for (const p of ['/usr/sbin/haproxy', '/usr/bin/haproxy', '/usr/local/sbin/haproxy']) if (existsSync(p)) return p;
  try {
    return execFileSync('sh', ['-c', 'command -v haproxy'], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}
const HAPROXY = haproxyPath();
const SKIP = HAPROXY ? false : 'haproxy is not installed here (.ci/run installs it, so CI always runs this)';

const freePort = () =>
  new Promise<number>((res) => {
    const s = createNet();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => res(p));
    });
  });

function get(port: number, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/', headers: { Host: host }, timeout: 2000 }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', () => resolve({ status: 0, body: '' }));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

test('routes follow create and delete through a real HAProxy; an invalid file never goes live', { skip: SKIP }, async (t) => {
  const listen = await freePort();
  const probe = makeWorld();
  const dir = probe.dir;
  const configFile = join(dir, 'haproxy', 'kindler.cfg');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(join(dir, 'haproxy'));
  // HAProxy needs a valid file to start: an empty rendering (404 for every host).
  writeFileSync(
    configFile,
    `global\n    maxconn 100\ndefaults\n    mode http\n    timeout connect 5s\n    timeout client 10s\n    timeout server 10s\nfrontend f\n    bind 127.0.0.1:${listen}\n    http-request return status 404\n`,
  );
  const master: ChildProcess = spawn(HAPROXY as string, ['-W', '-db', '-f', configFile], { detached: true, stdio: 'ignore' });
  t.after(() => {
    try {
      process.kill(-master.pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
    probe.cleanup();
  });
  const routes = {
    enabled: true,
    baseDomain: 'example.test',
    listen: { http: { address: '127.0.0.1', port: listen } },
    configFile,
    validateCommand: [HAPROXY as string, '-c', '-f', '{file}'],
    reloadCommand: ['kill', '-USR2', String(master.pid)],
    backend: 'host-port',
  };
  const w = makeWorld({ routes });
  const engine = await startEngine(w);
  t.after(async () => {
    await engine.shutdown();
    w.cleanup();
  });

  const r = await verb(engine, ['create', 'web', '--wait', '--json']);
  assert.equal(r.code, 0, r.out + r.err);
  const task = JSON.parse(r.out).task;
  const step = task.steps.find((s: { key: string }) => s.key === 'route');
  assert.equal(step.state, 'succeeded');
  assert.equal(step.title, 'Route web.example.test');
  const c = engine.getCluster('web')!;
  assert.equal(c.domain, 'web.example.test');
  assert.match(readFileSync(configFile, 'utf8'), new RegExp(`server ingress 127\\.0\\.0\\.1:${c.httpPort}`));

  // A stand-in for the cluster's ingress on its published HTTP port.
  const ingress = createHttp((req, res) => res.end(`web ingress saw ${req.headers.host}`));
  await new Promise<void>((res) => ingress.listen(c.httpPort, '127.0.0.1', res));
  t.after(() => ingress.close());
  let got = { status: 0, body: '' };
  const end = Date.now() + 15000;
  while (Date.now() < end && got.status !== 200) got = await get(listen, 'app.web.example.test');
  assert.equal(got.status, 200, JSON.stringify(got));
  assert.equal(got.body, 'web ingress saw app.web.example.test');
  assert.equal((await get(listen, 'nope.example.test')).status, 404);

  const st = await verb(engine, ['routes', '--json']);
  assert.equal(st.code, 0, st.err);
  const routesNow = JSON.parse(st.out);
  assert.equal(routesNow.liveMatches, true);
  assert.deepEqual(
    routesNow.routes.map((x: { host: string }) => x.host),
    ['web.example.test'],
  );

  // Delete: when the task reports success the host answers 404.
  const d = await verb(engine, ['delete', 'web', '--wait', '--json']);
  assert.equal(d.code, 0, d.err);
  assert.doesNotMatch(readFileSync(configFile, 'utf8'), /be_cluster_web/);
  let after = { status: 200, body: '' };
  const end2 = Date.now() + 15000;
  while (Date.now() < end2 && after.status !== 404) after = await get(listen, 'web.example.test');
  assert.equal(after.status, 404);

  // A validator that refuses: the route step fails with its message, the live file stays, the cluster stays.
  const before = readFileSync(configFile, 'utf8');
  engine.cfg.routes.validateCommand = ['sh', '-c', 'echo "[ALERT] (1) : config : parsing [x] : unknown keyword" >&2; exit 1', 'sh', '{file}'];
  const bad = await verb(engine, ['create', 'web2', '--wait', '--json']);
  assert.equal(bad.code, 1);
  const bt = JSON.parse(bad.out).task;
  assert.match(bt.error.reason, /^route step failed: .*unknown keyword/);
  assert.equal(readFileSync(configFile, 'utf8'), before);
  assert.equal(engine.getCluster('web2')!.actual, 'running');
  assert.equal(engine.getCluster('web2')!.steps!.find((s) => s.key === 'route')!.state, 'failed');
  const mismatch = await verb(engine, ['routes', '--json']);
  assert.equal(mismatch.code, 1);
  assert.equal(JSON.parse(mismatch.out).liveMatches, false);
});

test('a kind cluster is routed to its http host port like k3d, through a real HAProxy; a --no-route cluster never is', { skip: SKIP }, async (t) => {
  const listen = await freePort();
  const probe = makeWorld();
  const configFile = join(probe.dir, 'haproxy', 'kindler.cfg');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(join(probe.dir, 'haproxy'));
  writeFileSync(
    configFile,
    `global\n    maxconn 100\ndefaults\n    mode http\n    timeout connect 5s\n    timeout client 10s\n    timeout server 10s\nfrontend f\n    bind 127.0.0.1:${listen}\n    http-request return status 404\n`,
  );
  const master: ChildProcess = spawn(HAPROXY as string, ['-W', '-db', '-f', configFile], { detached: true, stdio: 'ignore' });
  t.after(() => {
    try {
      process.kill(-master.pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
    probe.cleanup();
  });
  const w = makeWorld({
    routes: {
      enabled: true,
      baseDomain: 'example.test',
      listen: { http: { address: '127.0.0.1', port: listen } },
      configFile,
      validateCommand: [HAPROXY as string, '-c', '-f', '{file}'],
      reloadCommand: ['kill', '-USR2', String(master.pid)],
      backend: 'host-port',
    },
  });
  const engine = await startEngine(w);
  t.after(async () => {
    await engine.shutdown();
    w.cleanup();
  });

  const r = await verb(engine, ['create', 'kweb', '--provider', 'kind', '--wait', '--json']);
  assert.equal(r.code, 0, r.out + r.err);
  const task = JSON.parse(r.out).task;
  assert.deepEqual(
    task.steps.map((s: { key: string }) => s.key),
    ['preflight', 'create-cluster', 'kubeconfig', 'wait-ready', 'ingress', 'node-address', 'route'],
  );
  const c = engine.getCluster('kweb')!;
  assert.equal(c.domain, 'kweb.example.test');
  assert.match(readFileSync(configFile, 'utf8'), new RegExp(`server ingress 127\\.0\\.0\\.1:${c.httpPort}\n`));
  // The kind node publishes its 80 on that host port (where ingress-nginx listens); a stand-in answers there.
  const ingress = createHttp((req, res) => res.end(`kind ingress saw ${req.headers.host}`));
  await new Promise<void>((res) => ingress.listen(c.httpPort, '127.0.0.1', res));
  t.after(() => ingress.close());
  let got = { status: 0, body: '' };
  const end = Date.now() + 15000;
  while (Date.now() < end && got.status !== 200) got = await get(listen, 'app.kweb.example.test');
  assert.equal(got.status, 200, JSON.stringify(got));
  assert.equal(got.body, 'kind ingress saw app.kweb.example.test');

  // --no-route: created and running, stored and shown, but never in the HAProxy file.
  const q = await verb(engine, ['create', 'quiet', '--provider', 'kind', '--no-route', '--wait', '--json']);
  assert.equal(q.code, 0, q.out + q.err);
  const qt = JSON.parse(q.out).task;
  assert.equal(qt.steps.find((s: { key: string }) => s.key === 'route').title, 'Render routes without quiet (--no-route)');
  const quiet = engine.getCluster('quiet')!;
  assert.equal(quiet.actual, 'running');
  assert.deepEqual(quiet.options, { route: false, register: [] });
  assert.equal(quiet.domain, undefined);
  assert.doesNotMatch(readFileSync(configFile, 'utf8'), /be_cluster_quiet/);
  const st = JSON.parse((await verb(engine, ['routes', '--json'])).out);
  assert.equal(st.liveMatches, true);
  assert.deepEqual(
    st.routes.map((x: { host: string }) => x.host),
    ['kweb.example.test'],
  );
  assert.match(st.skipped.find((s: { name: string }) => s.name === 'quiet').reason, /switched off .*--no-route/);
  const quietIngress = createHttp((_req, res) => res.end('quiet'));
  await new Promise<void>((res) => quietIngress.listen(quiet.httpPort, '127.0.0.1', res));
  t.after(() => quietIngress.close());
  assert.equal((await get(listen, 'quiet.example.test')).status, 404);
  // A sync of the routed cluster re-renders the whole file: still without quiet.
  assert.equal((await verb(engine, ['sync', 'kweb', '--wait'])).code, 0);
  assert.doesNotMatch(readFileSync(configFile, 'utf8'), /be_cluster_quiet/);
  // Reconcile judges routes by the same rule: a --no-route cluster without a route is no drift.
  const rec = await verb(engine, ['reconcile', '--dry-run', '--json']);
  assert.equal(rec.code, 0, rec.out + rec.err);
  assert.deepEqual(JSON.parse(rec.out).drift, []);
});
