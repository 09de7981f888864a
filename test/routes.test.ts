/**
 * Host routes against the REAL haproxy (/usr/sbin/haproxy): rendered configs validate with `haproxy -c`,
 * an invalid candidate never replaces the live file, and a running haproxy routes Host headers and TLS SNI
 * to stand-in cluster ingresses, then drops a removed cluster after apply + reload. No fixed sleeps: every
 * wait polls for an outcome under a deadline.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request, createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Cluster } from '../src/core/types.js';
import { KindlerError } from '../src/core/errors.js';
import { applyRoutes, renderRoutes, routable, routesStatus, type RoutesConfig } from '../src/provision/routes.js';

const HAPROXY = ['/usr/sbin/haproxy', '/usr/bin/haproxy', '/usr/local/sbin/haproxy'].find((p) => existsSync(p)) ?? 'haproxy';
/** Tests that need the real binary say why they are skipped where it is missing (.ci/run installs it). */
const NEEDS_HAPROXY = HAPROXY === 'haproxy' ? 'haproxy is not installed here (.ci/run installs it, so CI always runs this)' : false;
const NODE = process.execPath;

function cluster(name: string, over: Partial<Cluster> = {}): Cluster {
  return {
    name,
    provider: 'kind',
    servers: 1,
    agents: 0,
    httpPort: 18090,
    httpsPort: 18443,
    apiPort: 16443,
    owner: 'tester',
    createdAt: '2024-01-01T00:00:00.000Z',
    desired: 'present',
    actual: 'running',
    kubeContext: `kind-${name}`,
    kubeconfig: `/tmp/${name}.yaml`,
    updatedAt: '2024-01-01T00:00:00.000Z',
    ...over,
  };
}

function tempDir(t: { after: (fn: () => void) => void }): string {
  const d = mkdtempSync(join(tmpdir(), 'kindler-routes-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

function baseCfg(dir: string, over: Partial<RoutesConfig> = {}): RoutesConfig {
  return {
    enabled: true,
    baseDomain: 'example.test',
    listen: { http: { address: '127.0.0.1', port: 18080 }, https: { address: '127.0.0.1', port: 18081 } },
    configFile: join(dir, 'haproxy.cfg'),
    validateCommand: [HAPROXY, '-c', '-f', '{file}'],
    reloadCommand: [NODE, '-e', "require('node:fs').appendFileSync(process.argv[1], 'reload\\n')", join(dir, 'reloads.log')],
    backend: 'host-port',
    ...over,
  };
}

const reloads = (dir: string) => (existsSync(join(dir, 'reloads.log')) ? readFileSync(join(dir, 'reloads.log'), 'utf8').split('\n').filter(Boolean).length : 0);

/** `haproxy -c` in zero-warning mode: a warning fails too. */
function haproxyCheck(dir: string, text: string): { ok: boolean; out: string } {
  const f = join(dir, `check-${Math.random().toString(16).slice(2)}.cfg`);
  writeFileSync(f, text);
  const r = spawnSync(HAPROXY, ['-dW', '-c', '-f', f], { encoding: 'utf8' });
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}` };
}

const sectionNames = (text: string) => [...text.matchAll(/^(?:frontend|backend) (\S+)$/gm)].map((m) => m[1]!);

const LONG = `l${'a1-'.repeat(20)}xy`; // 63 characters

describe('renderRoutes', { skip: NEEDS_HAPROXY }, () => {
  test('deterministic, sorted, and valid for haproxy with odd-but-valid names', (t) => {
    const dir = tempDir(t);
    assert.equal(LONG.length, 63);
    const names = ['a', 'a-b-1', LONG, 'kindler-default-404', 'be-kindler-default-404', 'default', 'git', 'cluster', 'fe-kindler-http', '0a'];
    const clusters = names.map((n, i) => cluster(n, { httpPort: 20000 + i, httpsPort: 21000 + i }));
    for (const cfg of [baseCfg(dir), baseCfg(dir, { listen: { http: { address: '', port: 18080 } } })]) {
      const r1 = renderRoutes(clusters, cfg);
      const r2 = renderRoutes([...clusters].reverse(), cfg);
      const r3 = renderRoutes([clusters[3]!, ...clusters.slice(5), ...clusters.slice(0, 3), clusters[4]!], cfg);
      assert.equal(r1.text, r2.text);
      assert.equal(r1.text, r3.text);
      assert.deepEqual(r1.routes, r2.routes);
      assert.deepEqual(
        r1.routes.map((r) => r.cluster),
        [...names].sort(),
      );
      assert.deepEqual(r1.skipped, []);
      assert.doesNotMatch(r1.text, /\d{4}-\d\d-\d\dT/); // no timestamps
      const check = haproxyCheck(dir, r1.text);
      assert.ok(check.ok, check.out);

      // Identifiers: unique, statics exactly once, clusters in their own namespace.
      const sections = sectionNames(r1.text);
      assert.equal(new Set(sections).size, sections.length, sections.join(' '));
      assert.equal(sections.filter((s) => s === 'be_kindler_default_404').length, 1);
      assert.equal(sections.filter((s) => s === 'fe_kindler_http').length, 1);
      for (const n of names) {
        assert.ok(sections.includes(`be_cluster_${n}`), n);
        assert.match(r1.text, new RegExp(`^    use_backend be_cluster_${n} if acl_cluster_${n}$`, 'm'));
        assert.match(r1.text, new RegExp(`^    acl acl_cluster_${n} hdr\\(host\\),field\\(1,:\\),lower -m str ${n}\\.example\\.test$`, 'm'));
        assert.match(r1.text, new RegExp(`^    acl acl_cluster_${n} hdr\\(host\\),field\\(1,:\\),lower -m end \\.${n}\\.example\\.test$`, 'm'));
      }
      for (const s of sections) assert.match(s, /^(?:fe_kindler_|be_kindler_|be_cluster_)/);
      assert.match(r1.text, /^ {4}default_backend be_kindler_default_404$/m);
      assert.ok(sections.includes('be_cluster_kindler-default-404'));
      const lr = r1.routes.find((r) => r.cluster === 'a')!;
      assert.deepEqual(lr, {
        host: 'a.example.test',
        wildcard: '*.a.example.test',
        backend: '127.0.0.1:20000',
        cluster: 'a',
        ...(cfg.listen.https ? { tlsBackend: '127.0.0.1:21000' } : {}),
      });
    }
  });

  test('no routable cluster at all still renders a valid config (everything answers 404)', (t) => {
    const dir = tempDir(t);
    const r = renderRoutes([cluster('s', { actual: 'stopped' })], baseCfg(dir));
    assert.deepEqual(r.routes, []);
    const check = haproxyCheck(dir, r.text);
    assert.ok(check.ok, check.out);
  });

  test('node-address mode routes to node:ingressNodePort (default 80) and node:443, IPv6 included', (t) => {
    const dir = tempDir(t);
    const cfg = baseCfg(dir, { backend: 'node-address' });
    const r = renderRoutes(
      [
        cluster('a', { nodeAddress: '172.18.0.2', ingressNodePort: 30080 }),
        cluster('b', { nodeAddress: '172.18.0.3' }),
        cluster('c', { nodeAddress: 'fd00::3' }),
      ],
      cfg,
    );
    assert.deepEqual(
      r.routes.map((x) => [x.cluster, x.backend, x.tlsBackend]),
      [
        ['a', '172.18.0.2:30080', '172.18.0.2:443'],
        ['b', '172.18.0.3:80', '172.18.0.3:443'],
        ['c', '[fd00::3]:80', '[fd00::3]:443'],
      ],
    );
    const check = haproxyCheck(dir, r.text);
    assert.ok(check.ok, check.out);
  });

  test('selection rule and skips: never a dead 127.0.0.1 route, bad names refused', () => {
    const cfg = baseCfg('/nonexistent', { backend: 'node-address' });
    const clusters = [
      cluster('ok', { nodeAddress: '172.18.0.2' }),
      cluster('noaddr'),
      cluster('loop', { nodeAddress: '127.0.0.1' }),
      cluster('host', { nodeAddress: 'node.example' }),
      cluster('stopped', { actual: 'stopped', nodeAddress: '172.18.0.4' }),
      cluster('going', { desired: 'absent', nodeAddress: '172.18.0.5' }),
      cluster('off', { options: { route: false }, nodeAddress: '172.18.0.6' }),
      cluster('new', { actual: 'creating', nodeAddress: '172.18.0.7' }),
      cluster('Upper', { nodeAddress: '172.18.0.8' }),
      cluster('a_b', { nodeAddress: '172.18.0.9' }),
      cluster('x\nbackend evil', { nodeAddress: '172.18.0.10' }),
      cluster('-a', { nodeAddress: '172.18.0.11' }),
      cluster('', { nodeAddress: '172.18.0.12' }),
    ];
    const r = renderRoutes(clusters, cfg);
    assert.deepEqual(
      r.routes.map((x) => x.cluster),
      ['ok'],
    );
    const reason = (n: string) => r.skipped.find((s) => s.name === n)?.reason ?? '(not skipped)';
    assert.match(reason('noaddr'), /no node address/);
    assert.match(reason('loop'), /loopback/);
    assert.match(reason('host'), /not an IP address/);
    assert.match(reason('stopped'), /actual state is stopped/);
    assert.match(reason('going'), /desired state is absent/);
    assert.match(reason('off'), /switched off/);
    assert.match(reason('new'), /actual state is creating/);
    for (const n of ['Upper', 'a_b', 'x backend evil', '-a', '']) assert.match(reason(n), /not a DNS label/, n);
    assert.equal(r.skipped.length, clusters.length - 1);
    assert.doesNotMatch(r.text, /server .*127\.0\.0\.1/);
    assert.deepEqual(
      [...r.text.matchAll(/^ {4}server (.*)$/gm)].map((m) => m[1]),
      ['ingress 172.18.0.2:80', 'ingress 172.18.0.2:443'],
    );
    assert.doesNotMatch(r.text, /evil|Upper|a_b/);
    assert.deepEqual(
      sectionNames(r.text).filter((s) => s.startsWith('be_cluster_')),
      ['be_cluster_ok', 'be_cluster_ok_tls'],
    );

    // The caller can vouch for a cluster that is being created.
    const r2 = renderRoutes(clusters, cfg, { creating: ['new'] });
    assert.deepEqual(
      r2.routes.map((x) => x.cluster),
      ['new', 'ok'],
    );
    assert.equal(routable(clusters[7]!), false);
    assert.equal(routable(clusters[7]!, { creating: new Set(['new']) }), true);
    assert.equal(routable(clusters[0]!), true);
    assert.equal(routable(clusters[4]!), false);

    // host-port mode needs the published port, never a guess.
    const r3 = renderRoutes([cluster('np', { httpPort: 0 })], baseCfg('/nonexistent'));
    assert.deepEqual(r3.routes, []);
    assert.match(r3.skipped[0]!.reason, /no published HTTP port/);
    assert.doesNotMatch(r3.text, /^ {4}server /m);
  });

  test('a bad config is refused with a usage error', () => {
    const good = baseCfg('/nonexistent');
    const bad: Array<[Partial<RoutesConfig>, RegExp]> = [
      [{ baseDomain: 'example.test\nbackend x' }, /baseDomain/],
      [{ baseDomain: '' }, /baseDomain/],
      [{ listen: { http: { address: '127.0.0.1', port: 0 } } }, /listen\.http\.port/],
      [{ listen: { http: { address: 'localhost x', port: 80 } } }, /listen\.http\.address/],
      [{ backend: 'nope' as RoutesConfig['backend'] }, /backend/],
    ];
    for (const [over, re] of bad) {
      assert.throws(
        () => renderRoutes([cluster('a')], { ...good, ...over }),
        (e: unknown) => e instanceof KindlerError && e.kind === 'usage' && re.test(e.message),
      );
    }
  });
});

describe('applyRoutes', { skip: NEEDS_HAPROXY }, () => {
  const leftovers = (dir: string) => readdirSync(dir).filter((f) => f.includes('.kindler-'));

  test('valid → written and reloaded once; identical → no reload; status tracks the live file', async (t) => {
    const dir = tempDir(t);
    const cfg = baseCfg(dir);
    const clusters = [cluster('a'), cluster('b', { httpPort: 18091, httpsPort: 18444 })];
    const before = await routesStatus(clusters, cfg);
    assert.equal(before.liveMatches, false);
    assert.equal(before.liveFile, cfg.configFile);

    const lines: string[] = [];
    const text = renderRoutes(clusters, cfg).text;
    assert.deepEqual(await applyRoutes(text, cfg, (l) => lines.push(l)), { changed: true });
    assert.equal(readFileSync(cfg.configFile, 'utf8'), text);
    assert.equal(reloads(dir), 1);
    assert.deepEqual(await applyRoutes(text, cfg, (l) => lines.push(l)), { changed: false });
    assert.equal(reloads(dir), 1);
    assert.ok(
      lines.some((l) => /already up to date/.test(l)),
      lines.join('\n'),
    );
    assert.deepEqual(leftovers(dir), []);

    const st = await routesStatus(clusters, cfg);
    assert.equal(st.liveMatches, true);
    assert.deepEqual(
      st.routes.map((r) => r.host),
      ['a.example.test', 'b.example.test'],
    );
    assert.equal((await routesStatus([clusters[0]!], cfg)).liveMatches, false);
  });

  test("an invalid candidate never replaces the working file; the error carries haproxy's lines", async (t) => {
    const dir = tempDir(t);
    const cfg = baseCfg(dir);
    const good = renderRoutes([cluster('a')], cfg).text;
    await applyRoutes(good, cfg, () => undefined);
    assert.equal(reloads(dir), 1);

    const lines: string[] = [];
    const bad = renderRoutes([cluster('a'), cluster('b', { httpPort: 18091 })], cfg).text + 'bogus-directive here\n';
    await assert.rejects(
      applyRoutes(bad, cfg, (l) => lines.push(l)),
      (e: Error) => {
        assert.match(e.message, /unknown keyword 'bogus-directive'/);
        assert.match(e.message, /left unchanged/);
        return true;
      },
    );
    assert.ok(
      lines.some((l) => /ALERT.*unknown keyword 'bogus-directive'/.test(l)),
      lines.join('\n'),
    );
    assert.equal(readFileSync(cfg.configFile, 'utf8'), good);
    assert.equal(reloads(dir), 1);
    assert.deepEqual(leftovers(dir), []);

    // A validator that fails on its own terms, and one that cannot even start: same guarantees.
    const failing = { ...cfg, validateCommand: [NODE, '-e', "console.error('validator says no: ' + process.argv[1]); process.exit(3)", '{file}'] };
    const next = renderRoutes([cluster('a'), cluster('c', { httpPort: 18092 })], cfg).text;
    await assert.rejects(
      applyRoutes(next, failing, () => undefined),
      /exited 3[\s\S]*validator says no: .*\.haproxy\.cfg\.\d+\.[0-9a-f]+\.tmp/,
    );
    const missing = { ...cfg, validateCommand: [join(dir, 'no-such-haproxy'), '-c', '-f', '{file}'] };
    await assert.rejects(
      applyRoutes(next, missing, () => undefined),
      /could not start/,
    );
    const noFile = { ...cfg, validateCommand: [HAPROXY, '-c'] };
    await assert.rejects(
      applyRoutes(next, noFile, () => undefined),
      /must contain "\{file\}"/,
    );
    assert.equal(readFileSync(cfg.configFile, 'utf8'), good);
    assert.equal(reloads(dir), 1);
    assert.deepEqual(leftovers(dir), []);
  });

  test('a failed reload throws with its output and restores the previous file so the next apply retries', async (t) => {
    const dir = tempDir(t);
    const cfg = baseCfg(dir);
    const v1 = renderRoutes([cluster('a')], cfg).text;
    const v2 = renderRoutes([cluster('a'), cluster('b', { httpPort: 18091 })], cfg).text;
    await applyRoutes(v1, cfg, () => undefined);
    const broken = { ...cfg, reloadCommand: [NODE, '-e', "console.error('reload exploded'); process.exit(7)"] };
    await assert.rejects(
      applyRoutes(v2, broken, () => undefined),
      /exited 7[\s\S]*reload exploded/,
    );
    assert.equal(readFileSync(cfg.configFile, 'utf8'), v1);
    assert.deepEqual(leftovers(dir), []);
    assert.deepEqual(await applyRoutes(v2, cfg, () => undefined), { changed: true });
    assert.equal(readFileSync(cfg.configFile, 'utf8'), v2);
    assert.equal(reloads(dir), 2);

    // First-ever apply with a failing reload leaves no file behind.
    const dir2 = tempDir(t);
    const cfg2 = { ...baseCfg(dir2), reloadCommand: broken.reloadCommand };
    await assert.rejects(
      applyRoutes(v1, cfg2, () => undefined),
      /reload exploded/,
    );
    assert.equal(existsSync(cfg2.configFile), false);
  });

  test('disabled: nothing is touched', async (t) => {
    const dir = tempDir(t);
    const cfg = baseCfg(dir, { enabled: false });
    assert.deepEqual(await applyRoutes('garbage', cfg, () => undefined), { changed: false });
    assert.equal(existsSync(cfg.configFile), false);
    assert.equal(reloads(dir), 0);
  });
});

// ---------------------------------------------------------------------------------------------
// Real routing through a running haproxy

async function freePort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function listenHttp(label: string): Promise<{ server: HttpServer; port: number }> {
  const server = createHttpServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`${label} host=${req.headers.host}`);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as { port: number }).port };
}

/** A TCP stand-in for a TLS ingress: records the first bytes of every connection, then hangs up. */
async function listenTlsStandIn(): Promise<{ server: NetServer; port: number; hellos: Buffer[]; next: () => Promise<Buffer> }> {
  const hellos: Buffer[] = [];
  const waiters: Array<(b: Buffer) => void> = [];
  const server = createNetServer((sock: Socket) => {
    sock.once('data', (b: Buffer) => {
      hellos.push(b);
      waiters.shift()?.(b);
      sock.destroy();
    });
    sock.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as { port: number }).port, hellos, next: () => new Promise((r) => waiters.push(r)) };
}

function get(port: number, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', headers: { host }, agent: false, timeout: 2000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end();
  });
}

/** Opens a TLS handshake with this SNI; resolves when the connection ends (it never completes here). */
function tlsHello(port: number, servername: string): Promise<void> {
  return new Promise((resolve) => {
    const s = tlsConnect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false, timeout: 3000 });
    s.on('error', () => undefined);
    s.on('timeout', () => s.destroy());
    s.on('close', () => resolve());
  });
}

/** Polls `probe` until it returns a truthy value, or fails after the deadline. */
async function until<T>(what: string, probe: () => Promise<T | undefined | false>, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; last: ${String(last)}`);
    await new Promise((r) => setTimeout(r, 25)); // poll interval, not a wait for an outcome
  }
}

/** Pids whose parent is `ppid` (haproxy's workers under its master), from /proc. */
function childrenOf(ppid: number): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === ppid) out.push(Number(e));
    } catch {
      /* exited meanwhile */
    }
  }
  return out.sort((x, y) => x - y);
}

function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([p, new Promise<T>((_, rej) => (timer = setTimeout(() => rej(new Error(`timed out: ${what}`)), ms)))]).finally(() => clearTimeout(timer));
}

describe('real routing through haproxy', { skip: NEEDS_HAPROXY }, () => {
  test('Host header and SNI reach the right cluster; a removed cluster falls back to 404 after apply', async (t) => {
    const dir = tempDir(t);
    const servers: Array<HttpServer | NetServer> = [];
    t.after(() => {
      for (const s of servers) s.close();
    });
    const httpA = await listenHttp('cluster-a');
    const httpB = await listenHttp('cluster-b');
    const tlsA = await listenTlsStandIn();
    const tlsB = await listenTlsStandIn();
    servers.push(httpA.server, httpB.server, tlsA.server, tlsB.server);
    const [pHttp, pHttps] = [await freePort(), await freePort()];
    const a = cluster('a', { httpPort: httpA.port, httpsPort: tlsA.port });
    const b = cluster('b', { httpPort: httpB.port, httpsPort: tlsB.port });

    let master: ChildProcess | undefined;
    t.after(async () => {
      if (!master || master.exitCode !== null || master.signalCode !== null) return;
      const gone = new Promise((r) => master!.once('exit', r));
      try {
        process.kill(-master.pid!, 'SIGTERM'); // its own process group: master + workers
      } catch {
        /* already gone */
      }
      const t0 = setTimeout(() => {
        try {
          process.kill(-master!.pid!, 'SIGKILL');
        } catch {
          /* gone */
        }
      }, 3000);
      await gone;
      clearTimeout(t0);
    });

    // First activation before haproxy runs: nothing to reload yet.
    const cfg = baseCfg(dir, {
      listen: { http: { address: '127.0.0.1', port: pHttp }, https: { address: '127.0.0.1', port: pHttps } },
      reloadCommand: [NODE, '-e', ''],
    });
    assert.deepEqual(await applyRoutes(renderRoutes([b, a], cfg).text, cfg, () => undefined), { changed: true });

    let stderr = '';
    master = spawn(HAPROXY, ['-W', '-db', '-f', cfg.configFile, '-p', join(dir, 'haproxy.pid')], { detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
    master.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<never>((_, rej) => master.once('exit', (code, sig) => rej(new Error(`haproxy exited early (${code ?? sig}): ${stderr}`))));
    exited.catch(() => undefined);
    await Promise.race([exited, until('haproxy to answer', async () => (await get(pHttp, 'nobody.example.test')).status === 404)]);

    // HTTP: exact name, subdomains, case and port in the Host header; unknown hosts get the 404 backend.
    assert.deepEqual(await get(pHttp, 'a.example.test'), { status: 200, body: 'cluster-a host=a.example.test' });
    assert.equal((await get(pHttp, 'x.b.example.test')).body, 'cluster-b host=x.b.example.test');
    assert.equal((await get(pHttp, 'Deep.Sub.A.Example.Test:8080')).body, 'cluster-a host=Deep.Sub.A.Example.Test:8080');
    for (const h of ['unknown.example.test', 'example.test', 'xa.example.test', 'a.example.test.evil', 'b.example.testx']) {
      const r = await get(pHttp, h);
      assert.equal(r.status, 404, h);
      assert.match(r.body, /no cluster is routed/);
    }

    // TLS passthrough by SNI: the ClientHello itself reaches the right stand-in.
    const helloA = tlsA.next();
    await tlsHello(pHttps, 'x.a.example.test');
    assert.equal((await withDeadline(helloA, 3000, 'hello at a'))[0], 0x16);
    const helloB = tlsB.next();
    await tlsHello(pHttps, 'b.example.test');
    assert.equal((await withDeadline(helloB, 3000, 'hello at b'))[0], 0x16);
    await tlsHello(pHttps, 'nobody.example.test'); // rejected by haproxy: reaches no stand-in
    assert.deepEqual([tlsA.hellos.length, tlsB.hellos.length], [1, 1]);

    // Remove b, apply with a real reload (SIGUSR2 to the master-worker), and wait until the old worker is
    // gone and exactly one new worker serves.
    const [oldWorker] = await until('one worker', async () => {
      const c = childrenOf(master.pid!);
      return c.length === 1 ? c : undefined;
    });
    const cfgLive = { ...cfg, reloadCommand: [NODE, '-e', "process.kill(Number(process.argv[1]), 'SIGUSR2')", String(master.pid)] };
    const logs: string[] = [];
    assert.deepEqual(await applyRoutes(renderRoutes([a], cfgLive).text, cfgLive, (l) => logs.push(l)), { changed: true });
    assert.ok(logs.includes('routes: HAProxy reloaded'), logs.join('\n'));
    await Promise.race([
      exited,
      until('the old worker to be replaced', async () => {
        const c = childrenOf(master.pid!);
        return c.length === 1 && c[0] !== oldWorker;
      }),
    ]);
    assert.equal((await get(pHttp, 'b.example.test')).status, 404);
    assert.equal((await get(pHttp, 'x.b.example.test')).status, 404);
    assert.equal((await get(pHttp, 'a.example.test')).body, 'cluster-a host=a.example.test');
    assert.equal((await get(pHttp, 'www.a.example.test')).body, 'cluster-a host=www.a.example.test');
    await tlsHello(pHttps, 'b.example.test');
    assert.equal(tlsB.hellos.length, 1);
    assert.equal((await routesStatus([a, { ...b, actual: 'stopped' }], cfgLive)).liveMatches, true);
  });
});
