/**
 * `kindler kubeconfig NAME` and SSH tunnels to cluster APIs (issue 14, section 1), end to end: the
 * real SSH server in-process with an in-process engine running the real scripts against the fakes,
 * driven by the real OpenSSH client (`ssh -N -L`). A node TLS server stands in for the API server on
 * the cluster's API port. Every wait is on an event or output with a deadline; nothing sleeps.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect, createServer } from 'node:net';
import { connect as tlsConnect, createServer as tlsCreateServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { UsersStore } from '../src/access/users.js';
import { loadOrCreateHostKey, type HostKey } from '../src/ssh/hostkey.js';
import { startSshServer, DEFAULT_SSH_LIMITS, type SshLimits, type SshServer } from '../src/ssh/server.js';
import type { Engine } from '../src/engine/engine.js';
import type { Principal } from '../src/commands/index.js';
import { viewerAccount, viewerManifest } from '../src/provision/access.js';
import { Service } from '../src/commands/service.js';
import { cli, freePort, makeWorld, sshClientOpts, startDaemon, startEngine, verb, type World } from './helpers.js';

// ---- keys, users, certificate ----------------------------------------------------------------------

const KEYS = mkdtempSync(join(tmpdir(), 'kindler-kc-keys-'));
process.on('exit', () => rmSync(KEYS, { recursive: true, force: true }));
interface Key {
  name: string;
  path: string;
  pub: string;
}
function makeKey(name: string): Key {
  const path = join(KEYS, name);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', path]);
  return { name, path, pub: readFileSync(`${path}.pub`, 'utf8').trim() };
}
const alice = makeKey('alice');
const bob = makeKey('bob');
const carl = makeKey('carl');
const vic = makeKey('vic');
const HOST: HostKey = loadOrCreateHostKey(join(KEYS, 'host', 'ssh_host_ed25519_key'));
const USERS = [`alice admin ${alice.pub}`, `bob operator ${bob.pub}`, `carl operator ${carl.pub}`, `vic viewer ${vic.pub}`, ''].join('\n');
const BOB: Principal = { user: 'bob', role: 'operator', source: 'test' };
const ALICE: Principal = { user: 'alice', role: 'admin', source: 'test' };

const KUBECTL = '/usr/bin/kubectl';
const HAVE_OPENSSL = (() => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/** A self-signed certificate for CN=localhost with the SANs an API certificate has (generated now). */
function selfSigned(): { key: string; cert: string } {
  const dir = join(KEYS, 'tls');
  mkdirSync(dir, { recursive: true });
  if (!existsSync(join(dir, 'cert.pem'))) {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:0.0.0.0',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
  }
  return { key: readFileSync(join(dir, 'key.pem'), 'utf8'), cert: readFileSync(join(dir, 'cert.pem'), 'utf8') };
}

// ---- harness ---------------------------------------------------------------------------------------

const SSH_BASE = sshClientOpts(10);

interface Proc {
  code: number | null;
  stdout: string;
  stderr: string;
}
interface Live {
  proc: ChildProcess;
  err(): string;
  waitErr(re: RegExp, ms?: number): Promise<void>;
  done: Promise<Proc>;
}

interface H {
  w: World;
  engine: Engine;
  srv: SshServer;
  logs: string[];
  waitLog(re: RegExp, from?: number, ms?: number): Promise<string>;
  ssh(key: Key, args: string[], opts?: string[]): Promise<Proc>;
  spawnSsh(key: Key, args: string[], opts?: string[]): Live;
}

function waitText(get: () => string, wake: Set<() => void>, re: RegExp, ms: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = () => {
      if (!re.test(get())) return false;
      clearTimeout(timer);
      wake.delete(check);
      resolve();
      return true;
    };
    const timer = setTimeout(() => {
      wake.delete(check);
      reject(new Error(`timed out after ${ms} ms waiting for ${re} in ${what}; got:\n${get()}`));
    }, ms);
    if (!check()) wake.add(check);
  });
}

async function setup(t: import('node:test').TestContext, o: { limits?: Partial<SshLimits>; config?: Record<string, unknown> } = {}): Promise<H> {
  const w = makeWorld(o.config ?? {});
  const engine = await startEngine(w);
  const usersFile = join(w.dir, 'users.conf');
  writeFileSync(usersFile, USERS, { mode: 0o640 });
  const logs: string[] = [];
  const wake = new Set<() => void>();
  const log = (level: string, msg: string) => {
    logs.push(`${level} ${msg}`);
    if (process.env.KINDLER_TEST_VERBOSE) process.stderr.write(`    [log] ${level} ${msg}\n`);
    for (const f of [...wake]) f();
  };
  const users = new UsersStore({ file: usersFile, log, debounceMs: 50 });
  users.load();
  const srv = await startSshServer({
    service: new Service(engine),
    users,
    hostKey: HOST,
    host: '127.0.0.1',
    port: 0,
    log,
    hostName: 'testhost',
    limits: {
      ...DEFAULT_SSH_LIMITS,
      maxUnauthenticated: 50,
      rateLimit: { failures: 1000, windowMs: 60_000, blockMs: 60_000, delayMs: 0 },
      maxSessionsPerUser: 20,
      maxChannelsPerConnection: 10,
      ...o.limits,
    },
    openTui: () => {
      throw new Error('no TUI in this test');
    },
  });
  const procs = new Set<ChildProcess>();
  t.after(async () => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    await srv.stop();
    users.close();
    await engine.shutdown();
    w.cleanup();
  });
  const spawnSsh = (key: Key, args: string[], opts: string[] = []): Live => {
    const env = { ...process.env };
    delete env.SSH_AUTH_SOCK;
    const proc = spawn('ssh', [...SSH_BASE, '-p', String(srv.port), '-i', key.path, ...opts, 'kindler@127.0.0.1', ...args], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    procs.add(proc);
    let stdout = '';
    let stderr = '';
    const pw = new Set<() => void>();
    proc.stdout.on('data', (d) => (stdout += d));
    proc.stderr.on('data', (d) => {
      stderr += d;
      for (const f of [...pw]) f();
    });
    const done = new Promise<Proc>((resolve, reject) => {
      const timer = setTimeout(() => {
        proc.kill('SIGKILL');
        reject(new Error(`ssh ${args.join(' ')} did not finish within 60 s\nstdout: ${stdout}\nstderr: ${stderr}`));
      }, 60_000);
      proc.on('close', (code) => {
        clearTimeout(timer);
        procs.delete(proc);
        resolve({ code, stdout, stderr });
      });
    });
    done.catch(() => undefined);
    return { proc, err: () => stderr, waitErr: (re, ms = 15_000) => waitText(() => stderr, pw, re, ms, 'ssh stderr'), done };
  };
  return {
    w,
    engine,
    srv,
    logs,
    waitLog: async (re, from = 0, ms = 15_000) => {
      await waitText(() => logs.slice(from).join('\n'), wake, re, ms, 'the server log');
      return logs.slice(from).find((l) => re.test(l))!;
    },
    ssh: (key, args, opts) => spawnSsh(key, args, opts).done,
    spawnSsh,
  };
}

async function createCluster(h: H, name: string, owner: Principal, extra: string[] = []): Promise<void> {
  const r = await verb(h.engine, ['create', name, '--wait', ...extra], owner);
  assert.equal(r.code, 0, `create ${name}: ${r.out}${r.err}`);
}

/** An API stand-in on 127.0.0.1:port that greets each connection with `hi` and keeps it open until the test ends. */
async function greetingApi(t: { after(fn: () => unknown): void }, port: number): Promise<void> {
  const held: import('node:net').Socket[] = [];
  const api = createServer((sock) => {
    held.push(sock);
    sock.on('error', () => undefined);
    sock.write('hi\n');
  });
  await new Promise<void>((r) => api.listen(port, '127.0.0.1', r));
  t.after(() => {
    for (const x of held) x.destroy();
    api.close();
  });
}

/** A TLS echo server on 127.0.0.1:port standing in for the API server; `sink` mode counts bytes and answers their number on end. */
async function fakeApi(t: import('node:test').TestContext, port: number): Promise<{ server: TlsServer; cert: string; sockets: Set<TLSSocket> }> {
  const { key, cert } = selfSigned();
  const sockets = new Set<TLSSocket>();
  const server = tlsCreateServer({ key, cert }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    let n = 0;
    let mode: 'echo' | 'sink' | undefined;
    s.on('data', (d: Buffer) => {
      if (!mode) mode = d.subarray(0, 4).toString() === 'SINK' ? 'sink' : 'echo';
      if (mode === 'echo') s.write(d);
      else n += d.length;
    });
    s.on('end', () => {
      if (mode === 'sink') s.end(`${n - 4}\n`);
      else s.end();
    });
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return { server, cert, sockets };
}

/**
 * Opens `ssh -N -L P:DEST` for each destination (P: a free port, or the one given) and resolves once the
 * client listens on all of them. A port taken meanwhile by another process on this shared host makes
 * ssh exit (ExitOnForwardFailure); then it is tried again with fresh ports.
 */
async function openTunnel(h: H, key: Key, dests: string[], fixed?: number): Promise<{ live: Live; ports: number[] }> {
  for (let attempt = 1; ; attempt++) {
    const ports: number[] = [];
    for (let i = 0; i < dests.length; i++) ports.push(fixed !== undefined && i === 0 ? fixed : await freePort());
    const live = h.spawnSsh(key, [], ['-v', '-N', '-o', 'ExitOnForwardFailure=yes', ...dests.flatMap((d, i) => ['-L', `127.0.0.1:${ports[i]}:${d}`])]);
    const listening = (async () => {
      for (const p of ports) await live.waitErr(new RegExp(`Local forwarding listening on 127\\.0\\.0\\.1 port ${p}\\b`));
      return true;
    })();
    const ok = await Promise.race([listening, live.done.then(() => false)]);
    if (ok) return { live, ports };
    if (attempt >= 3 || fixed !== undefined) throw new Error(`ssh -L did not start:\n${live.err()}`);
  }
}

/**
 * Connects to the client's -L port and waits until that connection is closed. The OpenSSH client
 * announces its listener a moment before it accepts on it, so a refused connect is tried again on the
 * next turn of the event loop (within a 5 s deadline).
 */
async function throughTunnelClosed(port: number, tun: Live): Promise<void> {
  const until = Date.now() + 5000;
  for (;;) {
    const s = netConnect({ port, host: '127.0.0.1' });
    let refused = false;
    s.on('error', (e: NodeJS.ErrnoException) => (refused = e.code === 'ECONNREFUSED'));
    await closed(s, 10_000, `the local connection to port ${port}`);
    if (!refused) return;
    if (Date.now() > until) throw new Error(`port ${port} refused connections for 5 s; ssh -v:\n${tun.err()}`);
    await new Promise((r) => setImmediate(r));
  }
}

function tlsThrough(port: number, ca: string): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => resolve(s));
    s.once('error', reject);
  });
}

function readUntil(s: TLSSocket, want: string, ms = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${JSON.stringify(want)}; got ${JSON.stringify(got)}`)), ms);
    const on = (d: Buffer) => {
      got += d.toString();
      if (got.includes(want)) {
        clearTimeout(timer);
        s.off('data', on);
        resolve(got);
      }
    };
    s.on('data', on);
  });
}

function closed(s: { once(ev: 'close', f: () => void): unknown; destroyed?: boolean }, ms: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what} to close`)), ms);
    s.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

interface KcJson {
  cluster: string;
  context: string;
  mode: string;
  server: string;
  credential: string;
  expiresAt?: string;
  kubeconfig: string;
  tunnel: { command: string; localPort: number; destination: string } | null;
}

/** The kubeconfig as the real kubectl reads it (`kubectl config view --raw -o json`). */
function kubectlView(
  dir: string,
  text: string,
): {
  clusters: { name: string; cluster: Record<string, string> }[];
  users: { name: string; user: Record<string, string> }[];
  contexts: { name: string }[];
  'current-context': string;
} {
  const file = join(dir, `kc-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, text, { mode: 0o600 });
  return JSON.parse(
    execFileSync(KUBECTL, ['config', 'view', '--kubeconfig', file, '--raw', '-o', 'json'], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin', HOME: dir } }),
  );
}

const calls = (h: H) =>
  h.w
    .calls()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { tool: string; argv: string[] });

// ---- tests -----------------------------------------------------------------------------------------

test(
  'an operator tunnels to their own cluster: bytes flow end to end to a TLS API stand-in, TLS verifies as localhost; the tunnel ends when the cluster is deleted',
  { skip: !HAVE_OPENSSL && 'openssl is not installed (needed for the stand-in API certificate)' },
  async (t) => {
    const h = await setup(t);
    await createCluster(h, 'dev', BOB);
    const c = h.engine.getCluster('dev')!;
    const api = await fakeApi(t, c.apiPort);
    // The tunnel first (on a port free right now), then the kubeconfig for that local port.
    const from = h.logs.length;
    const t0 = Date.now();
    const {
      live: tun,
      ports: [lp],
    } = await openTunnel(h, bob, ['dev:6443']);
    const listenMs = Date.now() - t0;

    const r = await h.ssh(bob, ['kubeconfig', 'dev', '--local-port', String(lp), '--json']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as KcJson;
    assert.equal(j.context, 'kindler-dev');
    assert.equal(j.mode, 'tunnel');
    assert.equal(j.credential, 'admin');
    assert.equal(j.server, `https://127.0.0.1:${lp}`);
    assert.equal(j.tunnel!.command, `ssh -N -L ${lp}:dev:6443 kindler@127.0.0.1 -p ${h.srv.port}`);
    assert.match(j.kubeconfig, /tls-server-name: "localhost"/);
    assert.match(j.kubeconfig, /client-key-data: /);
    assert.ok(j.kubeconfig.includes(`# open the tunnel first (leave it running): ${j.tunnel!.command}`));
    // The default local port is the cluster's API port (so the same file also works on the host itself).
    const dflt = await h.ssh(bob, ['kubeconfig', 'dev']);
    assert.equal(dflt.code, 0, dflt.stderr);
    assert.match(dflt.stdout, new RegExp(`server: "https://127\\.0\\.0\\.1:${c.apiPort}"`));
    assert.match(dflt.stdout, new RegExp(`ssh -N -L ${c.apiPort}:dev:6443 kindler@127\\.0\\.0\\.1 -p ${h.srv.port}`));

    const t1 = Date.now();
    const s = await tlsThrough(lp!, api.cert);
    s.write('hello through the tunnel\n');
    await readUntil(s, 'hello through the tunnel\n');
    t.diagnostic(`ssh -L start -> listening ${listenMs} ms; connect -> first byte back through the tunnel (TLS handshake included) ${Date.now() - t1} ms`);
    await h.waitLog(/bob from 127\.0\.0\.1: tunnel to dev \(127\.0\.0\.1:\d+\) open/, from);
    const audit = h.engine.listAudit({ user: 'bob' }).filter((e) => e.action === 'tunnel');
    assert.deepEqual(
      audit.map((e) => [e.target, e.result]),
      [['dev', 'ok']],
    );
    assert.ok(
      h.engine
        .listAudit({ user: 'bob' })
        .some((e) => e.action === 'kubeconfig' && e.target === 'dev' && e.result === 'ok' && /admin credential/.test(e.detail ?? '')),
    );

    // The kubeconfig parses with the real kubectl.
    if (existsSync(KUBECTL)) {
      const v = kubectlView(h.w.dir, j.kubeconfig);
      assert.equal(v['current-context'], 'kindler-dev');
      assert.deepEqual(
        v.contexts.map((x) => x.name),
        ['kindler-dev'],
      );
      assert.equal(v.clusters[0]!.cluster.server, `https://127.0.0.1:${lp}`);
      assert.equal(v.clusters[0]!.cluster['tls-server-name'], 'localhost');
      assert.ok(v.users[0]!.user['client-certificate-data']);
    } else t.diagnostic(`skipped the kubectl parse check: ${KUBECTL} is missing`);

    // Deleting the cluster ends its tunnels.
    const gone = closed(s, 20_000, 'the TLS connection through the tunnel');
    const del = await verb(h.engine, ['delete', 'dev', '--wait'], BOB);
    assert.equal(del.code, 0, del.err);
    await gone;
    await h.waitLog(/tunnel to dev closed: the cluster (is being deleted|was removed)/, from);
    tun.proc.kill('SIGTERM');
    await tun.done;
  },
);

test('tunnels to 127.0.0.1:22, to another port of a cluster and to an unknown name are refused, logged and audited; -R stays refused', async (t) => {
  const h = await setup(t);
  await createCluster(h, 'dev', BOB);
  const from = h.logs.length;
  const { live: tun, ports } = await openTunnel(h, bob, ['127.0.0.1:22', 'dev:80', 'nosuch:6443']);
  for (const p of ports) {
    const s = netConnect({ port: p, host: '127.0.0.1' });
    s.on('error', () => undefined);
    let got = 0;
    s.on('data', (d) => (got += d.length));
    await closed(s, 10_000, `the local connection to port ${p}`);
    assert.equal(got, 0, 'nothing came through a refused tunnel');
  }
  await h.waitLog(/bob from 127\.0\.0\.1: tunnel to "127\.0\.0\.1":22 refused: only tunnels to a cluster's API are served/, from);
  await h.waitLog(/bob from 127\.0\.0\.1: tunnel to "dev":80 refused: only port 6443/, from);
  await h.waitLog(/bob from 127\.0\.0\.1: tunnel to "nosuch":6443 refused: only tunnels to a cluster's API are served .* no cluster is named "nosuch"/, from);
  const refusedTargets = h.engine
    .listAudit({ user: 'bob' })
    .filter((e) => e.action === 'tunnel' && e.result === 'refused')
    .map((e) => e.target)
    .sort();
  assert.deepEqual(refusedTargets, ['"127.0.0.1":22', '"dev":80', '"nosuch":6443']);
  tun.proc.kill('SIGTERM');
  await tun.done;

  const remote = await h.ssh(bob, [], ['-N', '-R', '0:127.0.0.1:22', '-o', 'ExitOnForwardFailure=yes']);
  assert.equal(remote.code, 255);
  await h.waitLog(/global request "tcpip-forward" \(remote forwarding\) refused/, from);
});

test('tunnels count against ssh.maxChannelsPerConnection; the daemon survives an API that is not listening', async (t) => {
  const h = await setup(t, { limits: { maxChannelsPerConnection: 2 } });
  await createCluster(h, 'dev', BOB);
  const c = h.engine.getCluster('dev')!;
  const from = h.logs.length;
  const {
    live: tun,
    ports: [lp],
  } = await openTunnel(h, bob, ['dev:6443']);
  // Nothing listens on the API port: the channel is refused, the client's connection closes, nothing else breaks.
  await throughTunnelClosed(lp!, tun);
  await h.waitLog(new RegExp(`tunnel to dev closed: API socket 127\\.0\\.0\\.1:${c.apiPort}: ECONNREFUSED`), from).catch((e: Error) => {
    throw new Error(`${e.message}\nssh -v:\n${tun.err()}`);
  });
  // With an API listening, 2 channels are allowed and the third is refused.
  await greetingApi(t, c.apiPort);
  const open = async () => {
    const x = netConnect({ port: lp!, host: '127.0.0.1' });
    x.on('error', () => undefined);
    return x;
  };
  const a = await open();
  const b = await open();
  for (const x of [a, b])
    await new Promise<void>((resolve, reject) => {
      const tm = setTimeout(() => reject(new Error('no data through the tunnel')), 10_000);
      x.once('data', () => {
        clearTimeout(tm);
        resolve();
      });
    });
  const third = await open();
  await closed(third, 10_000, 'the third tunnel channel');
  await h.waitLog(/tunnel to "dev":6443 refused: too many channels open on this connection \(ssh\.maxChannelsPerConnection\)/, from);
  a.destroy();
  b.destroy();
  tun.proc.kill('SIGTERM');
  await tun.done;
  // Still serving.
  const r = await h.ssh(bob, ['whoami']);
  assert.equal(r.code, 0);
});

test("an operator asking for another operator's cluster gets a read-only token, never the admin credential; the kubectl calls are checked by argv; the token is nowhere else", async (t) => {
  const h = await setup(t);
  await createCluster(h, 'dev', BOB);
  const before = calls(h).length;
  const r = await h.ssh(carl, ['kubeconfig', 'dev', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as KcJson;
  assert.equal(j.credential, 'read-only');
  assert.doesNotMatch(j.kubeconfig, /client-key-data|client-certificate-data/);
  const token = /token: "([^"]+)"/.exec(j.kubeconfig)?.[1];
  assert.ok(token && token.split('.').length === 3, j.kubeconfig);
  const exp = Date.parse(j.expiresAt!);
  assert.ok(Math.abs(exp - (Date.now() + 8 * 3600_000)) < 120_000, `expires in about 8h: ${j.expiresAt}`);
  assert.match(j.kubeconfig, /# credential: read-only \(ServiceAccount kube-system\/kindler-view-carl, ClusterRole view\), expires /);
  const kc = calls(h)
    .slice(before)
    .filter((c) => c.tool === 'kubectl');
  const file = h.engine.getCluster('dev')!.kubeconfig;
  assert.deepEqual(
    kc.map((c) => c.argv),
    [
      ['config', 'view', '--kubeconfig', file, '--context', 'k3d-dev', '--minify', '--raw', '-o', 'json'],
      ['--kubeconfig', file, '--context', 'k3d-dev', 'apply', '-f', '-'],
      ['--kubeconfig', file, '--context', 'k3d-dev', 'create', 'token', 'kindler-view-carl', '-n', 'kube-system', '--duration=28800s'],
    ],
  );
  // The ServiceAccount and its binding to the built-in view ClusterRole exist in the (fake) cluster.
  // (The stand-in keeps applied objects on the cluster's first API node container.)
  type Obj = { kind: string; namespace: string; name: string; object: { roleRef?: { name: string }; subjects?: { name: string; namespace: string }[] } };
  const st = JSON.parse(readFileSync(join(h.w.fakeDir, 'state.json'), 'utf8')) as { containers: { name: string; fake: { objects?: Obj[] } }[] };
  const objs = st.containers.find((c) => c.name === 'k3d-dev-server-0')?.fake.objects ?? [];
  assert.ok(
    objs.some((o) => o.kind === 'ServiceAccount' && o.namespace === 'kube-system' && o.name === 'kindler-view-carl'),
    JSON.stringify(objs),
  );
  const binding = objs.find((o) => o.kind === 'ClusterRoleBinding' && o.name === 'kindler-view-carl');
  assert.equal(binding?.object.roleRef?.name, 'view');
  assert.deepEqual(binding?.object.subjects, [{ kind: 'ServiceAccount', name: 'kindler-view-carl', namespace: 'kube-system' }]);
  // Again: the apply is idempotent.
  const again = await h.ssh(carl, ['kubeconfig', 'dev']);
  assert.equal(again.code, 0, again.stderr);
  // Audited without the token; the token is not in the logs, the audit log or the state file.
  const ev = h.engine.listAudit({ user: 'carl' }).filter((e) => e.action === 'kubeconfig');
  assert.equal(ev.length, 2);
  assert.match(ev[0]!.detail!, /read-only token for kindler-view-carl until /);
  await h.engine.idle();
  // The state file and the journals beside it (finished tasks and audit events move there).
  const journal = join(h.w.dataDir, 'journal');
  const stateText = [join(h.w.dataDir, 'state.json'), ...(existsSync(journal) ? readdirSync(journal).map((f) => join(journal, f)) : [])]
    .map((f) => readFileSync(f, 'utf8'))
    .join('\n');
  for (const [where, text] of [
    ['logs', h.logs.join('\n')],
    ['audit', JSON.stringify(h.engine.listAudit({}))],
    ['state', stateText],
    ['argv', h.w.calls()],
  ] as const) {
    assert.ok(!text.includes(token), `the token is not in the ${where}`);
    assert.ok(!text.includes(token.split('.')[1]!), `no part of the token is in the ${where}`);
  }
  // The owner still gets the admin credential.
  const own = JSON.parse((await h.ssh(bob, ['kubeconfig', 'dev', '--json'])).stdout) as KcJson;
  assert.equal(own.credential, 'admin');
});

test('a viewer receives a read-only kubeconfig; --duration is passed through and capped by access.maxTokenDuration; kubectl parses it', async (t) => {
  const h = await setup(t);
  await createCluster(h, 'dev', BOB);
  const r = await h.ssh(vic, ['kubeconfig', 'dev', '--duration', '2h', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as KcJson;
  assert.equal(j.credential, 'read-only');
  assert.ok(Math.abs(Date.parse(j.expiresAt!) - (Date.now() + 2 * 3600_000)) < 120_000);
  assert.ok(calls(h).some((c) => c.tool === 'kubectl' && c.argv.join(' ').endsWith('create token kindler-view-vic -n kube-system --duration=7200s')));
  if (existsSync(KUBECTL)) {
    const v = kubectlView(h.w.dir, j.kubeconfig);
    assert.equal(v['current-context'], 'kindler-dev');
    assert.ok(v.users[0]!.user.token);
    assert.equal(v.users[0]!.user['client-key-data'], undefined);
  } else t.diagnostic(`skipped the kubectl parse check: ${KUBECTL} is missing`);
  const long = await h.ssh(vic, ['kubeconfig', 'dev', '--duration', '48h']);
  assert.equal(long.code, 2);
  assert.match(long.stderr, /duration: at most 24h \(access\.maxTokenDuration/);
  // A viewer's admin-looking request is no different: no admin credential ever.
  const adminOwn = await verb(h.engine, ['kubeconfig', 'dev', '--json'], ALICE);
  assert.equal((JSON.parse(adminOwn.out) as KcJson).credential, 'admin');
});

test('--mode direct without api.publicAddress exits 2 naming the key, on every face', async (t) => {
  const h = await setup(t);
  await createCluster(h, 'dev', BOB);
  const r = await h.ssh(bob, ['kubeconfig', 'dev', '--mode', 'direct']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^error: mode: --mode direct needs api\.publicAddress in the kindler config/m);
  const local = await verb(h.engine, ['kubeconfig', 'dev', '--mode', 'direct', '--json'], BOB);
  assert.equal(local.code, 2);
  assert.equal((JSON.parse(local.out) as { error: { field: string } }).error.field, 'mode');
  const bad = await verb(h.engine, ['kubeconfig', 'dev', '--mode', 'sideways'], BOB);
  assert.equal(bad.code, 2);
  const missing = await verb(h.engine, ['kubeconfig', 'nosuch'], BOB);
  assert.equal(missing.code, 3);
});

test('a cluster whose create failed has no kubeconfig: one line says so (exit 4), not a kubectl error', async (t) => {
  const h = await setup(t);
  h.w.rule('docker-down', '');
  const r = await verb(h.engine, ['create', 'sunk', '--wait'], BOB);
  assert.notEqual(r.code, 0, 'the create fails while docker is down');
  const k = await verb(h.engine, ['kubeconfig', 'sunk'], BOB);
  assert.equal(k.code, 4, k.out + k.err);
  assert.match(k.err, /^error: cluster: sunk is failed \(.*\); it has no kubeconfig until a create succeeds\n$/);
  assert.doesNotMatch(k.err, /kubectl|stat /);
});

/** A non-loopback IPv4 address of this host (docker can publish on it), or undefined. */
const HOST_ADDR = Object.values(networkInterfaces())
  .flat()
  .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;

test(
  'with api.publicAddress, k3d and kind are created with the API on that address and in its certificate; --mode direct names it',
  { skip: !HOST_ADDR && 'this host has no non-loopback IPv4 address to publish an API on' },
  async (t) => {
    const ADDR = HOST_ADDR!;
    const h = await setup(t, { config: { api: { publicAddress: ADDR } } });
    await createCluster(h, 'pub', BOB);
    const c = h.engine.getCluster('pub')!;
    const create = calls(h).find((x) => x.tool === 'k3d' && x.argv[0] === 'cluster' && x.argv[1] === 'create')!;
    assert.ok(create.argv.includes(`${ADDR}:${c.apiPort}`), create.argv.join(' '));
    const i = create.argv.indexOf('--k3s-arg');
    assert.equal(create.argv[i + 1], `--tls-san=${ADDR}@server:*`);
    const r = await h.ssh(bob, ['kubeconfig', 'pub', '--mode', 'direct', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout) as KcJson;
    assert.equal(j.server, `https://${ADDR}:${c.apiPort}`);
    assert.equal(j.tunnel, null);
    assert.doesNotMatch(j.kubeconfig, /tls-server-name/);

    // kind: the config file carries apiServerAddress and certSANs. The create is held mid-way to read it.
    h.w.rule('kind.create-cluster', 'hang');
    const task = await h.engine.create({ name: 'kpub', provider: 'kind' }, BOB);
    const cfgFile = await new Promise<string>((resolve, reject) => {
      const deadline = setTimeout(() => {
        off();
        reject(new Error('kind create was not called'));
      }, 20_000);
      const check = () => {
        const call = calls(h).find((x) => x.tool === 'kind' && x.argv[0] === 'create');
        if (!call) return;
        clearTimeout(deadline);
        off();
        resolve(call.argv[call.argv.indexOf('--config') + 1]!);
      };
      const off = h.engine.feed.subscribe(() => check());
      check();
    });
    const text = readFileSync(cfgFile, 'utf8');
    assert.match(text, new RegExp(`apiServerAddress: "${ADDR.replace(/\./g, '\\.')}"`));
    assert.match(
      text,
      new RegExp(
        `kubeadmConfigPatches:\\n- \\|\\n  kind: ClusterConfiguration\\n  apiServer:\\n    certSANs:\\n    - "${ADDR.replace(/\./g, '\\.')}"\\n    - "127\\.0\\.0\\.1"\\n    - "localhost"\\n`,
      ),
    );
    h.w.clearRule('kind.create-cluster');
    await h.engine.cancel(task.id, BOB);
    await h.engine.waitForTask(task.id);
  },
);

test('the read-only ServiceAccount name is valid for every user name, and distinct ones stay distinct', () => {
  assert.equal(viewerAccount('carl'), 'kindler-view-carl');
  const odd = ['a_b', 'a-b', '_x', 'x_'].map(viewerAccount);
  for (const n of odd) assert.match(n, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
  assert.equal(new Set(odd).size, odd.length);
  const m = JSON.parse(viewerManifest('kindler-view-carl')) as { items: { kind: string; roleRef?: { name: string } }[] };
  assert.deepEqual(
    m.items.map((x) => x.kind),
    ['ServiceAccount', 'ClusterRoleBinding'],
  );
  assert.equal(m.items[1]!.roleRef!.name, 'view');
});

test('an api.publicAddress this host does not have is refused before anything starts: one line naming the key and the addresses it has, exit 1', async (t) => {
  const h = await setup(t, { config: { api: { publicAddress: '198.51.100.77' } } });
  for (const provider of ['k3d', 'kind']) {
    const r = await verb(h.engine, ['create', `nope${provider}`, '--provider', provider, '--wait'], BOB);
    assert.equal(r.code, 1, r.err);
    assert.equal(r.err.trim().split('\n').length, 1, r.err);
    assert.match(
      r.err,
      /^error: api\.publicAddress: 198\.51\.100\.77 is not an address of this host \(it has 127\.0\.0\.1[^)]*\), so docker cannot publish a cluster's API on it; add the address to an interface or change api\.publicAddress$/m,
    );
    assert.equal(h.engine.getCluster(`nope${provider}`), undefined);
  }
  assert.equal(h.engine.listTasks({}).length, 0, 'no task');
  assert.equal(calls(h).filter((c) => c.tool === 'k3d' || c.tool === 'kind').length, 0, 'no provider call');
});

test('the local CLI (control socket) prints the same kubeconfig; the tunnel command names ssh.publicHost and ssh.port; --mode direct exits 2', async (t) => {
  const w = makeWorld({ ssh: { enabled: false, port: 2222, publicHost: 'kindler.example', hostKeyFile: './keys/host_key', usersFile: './users.conf' } });
  const d = await startDaemon(w);
  t.after(async () => {
    await d.stop();
    w.cleanup();
  });
  const cr = await cli(w, ['create', 'dev', '--wait']);
  assert.equal(cr.code, 0, cr.stderr);
  const apiPort = (JSON.parse((await cli(w, ['show', 'dev', '--json'])).stdout) as { cluster: { apiPort: number } }).cluster.apiPort;
  const r = await cli(w, ['kubeconfig', 'dev']);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.stdout.includes(`# open the tunnel first (leave it running): ssh -N -L ${apiPort}:dev:6443 kindler@kindler.example -p 2222\n`), r.stdout);
  assert.match(r.stdout, /^current-context: "kindler-dev"$/m);
  if (existsSync(KUBECTL)) {
    const v = kubectlView(w.dir, r.stdout);
    assert.equal(v['current-context'], 'kindler-dev');
    assert.equal(v.clusters[0]!.cluster.server, `https://127.0.0.1:${apiPort}`);
  } else t.diagnostic(`skipped the kubectl parse check: ${KUBECTL} is missing`);
  const direct = await cli(w, ['kubeconfig', 'dev', '--mode', 'direct']);
  assert.equal(direct.code, 2);
  assert.match(direct.stderr, /api\.publicAddress/);
  // Nothing on the host's own kubeconfig was touched.
  assert.equal(existsSync(join(w.home, '.kube', 'config')), false);
});

test('tunnels are capped per user across connections (ssh.maxTunnelsPerUser); closing one frees its slot', async (t) => {
  const h = await setup(t, { limits: { maxTunnelsPerUser: 1 } });
  await createCluster(h, 'dev', BOB);
  const c = h.engine.getCluster('dev')!;
  await greetingApi(t, c.apiPort);
  const from = h.logs.length;
  const one = await openTunnel(h, bob, ['dev:6443']);
  const two = await openTunnel(h, bob, ['dev:6443']);
  const data = (x: import('node:net').Socket) =>
    new Promise<void>((resolve, reject) => {
      const tm = setTimeout(() => reject(new Error('no data through the tunnel')), 10_000);
      x.once('data', () => {
        clearTimeout(tm);
        resolve();
      });
    });
  const first = netConnect({ port: one.ports[0]!, host: '127.0.0.1' });
  first.on('error', () => undefined);
  await data(first);
  await throughTunnelClosed(two.ports[0]!, two.live);
  await h.waitLog(/bob from 127\.0\.0\.1: tunnel to "dev":6443 refused: 1 tunnels already open for bob \(max 1\)/, from);
  const gone = h.waitLog(/tunnel to dev closed: the client closed it/, from);
  first.destroy();
  await gone;
  const again = netConnect({ port: two.ports[0]!, host: '127.0.0.1' });
  again.on('error', () => undefined);
  await data(again);
  again.destroy();
  for (const x of [one, two]) {
    x.live.proc.kill('SIGTERM');
    await x.live.done;
  }
});
