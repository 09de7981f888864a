/**
 * kindler against a real docker engine (issue 15): the k3d and kind stand-ins make real containers,
 * networks and volumes there (test/fixtures/engine-bin), every docker call of kindler's own goes to
 * the real docker CLI, and HTTP travels the real HAProxy -> host port (docker-proxy) -> container.
 * The engine comes from test/docker-engine.ts (KINDLER_TEST_DOCKER_HOST, or a private one).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import type { Engine } from '../src/engine/engine.js';
import type { Principal } from '../src/commands/index.js';
import { docker, engineTest } from './docker-engine.js';
import { freePort, makeTestKey, makeWorld, startEngine, startTestSsh, verb, type World } from './helpers.js';

const HAPROXY = ['/usr/sbin/haproxy', '/usr/bin/haproxy', '/usr/local/sbin/haproxy'].find((p) => existsSync(p));
const KUBECTL = '/usr/bin/kubectl';

/** Every kubectl argv the scripts issued in this file's worlds (checked against the real kubectl last). */
const kubectlCalls: string[][] = [];
/** Every kubeconfig kindler wrote or printed in this file (checked with `kubectl config view`). */
const kubeconfigs: { what: string; text: string }[] = [];

function collectKubectl(w: World): void {
  const log = join(w.fakeDir, 'calls.log');
  if (!existsSync(log)) return;
  for (const l of readFileSync(log, 'utf8').split('\n')) {
    if (!l) continue;
    const c = JSON.parse(l) as { tool: string; argv: string[] };
    if (c.tool === 'kubectl') kubectlCalls.push(c.argv);
  }
}

interface Setup {
  w: World;
  engine: Engine;
  host: string;
  haproxyPort?: number;
}

/** A world on the real engine with an in-process kindler engine; with `routes`, a real HAProxy on loopback. */
async function setup(t: TestContext, host: string, o: { routes?: boolean; config?: Record<string, unknown> } = {}): Promise<Setup> {
  let routes: Record<string, unknown> | undefined;
  let haproxyPort: number | undefined;
  const scratch = mkdtempSync(join(tmpdir(), 'kindler-e2e-'));
  if (o.routes) {
    assert.ok(HAPROXY, 'haproxy is not installed (.ci/run installs it)');
    haproxyPort = await freePort();
    const configFile = join(scratch, 'haproxy.cfg');
    writeFileSync(
      configFile,
      `global\n    maxconn 100\ndefaults\n    mode http\n    timeout connect 5s\n    timeout client 10s\n    timeout server 10s\nfrontend f\n    bind 127.0.0.1:${haproxyPort}\n    http-request return status 404\n`,
    );
    const master: ChildProcess = spawn(HAPROXY, ['-W', '-db', '-f', configFile], { detached: true, stdio: 'ignore' });
    t.after(() => {
      try {
        process.kill(-master.pid!, 'SIGKILL');
      } catch {
        /* gone */
      }
    });
    routes = {
      enabled: true,
      baseDomain: 'example.test',
      listen: { http: { address: '127.0.0.1', port: haproxyPort } },
      configFile,
      validateCommand: [HAPROXY, '-c', '-f', '{file}'],
      reloadCommand: ['kill', '-USR2', String(master.pid)],
      backend: 'host-port',
    };
  }
  const w = makeWorld({ ...(routes ? { routes } : {}), ...o.config }, { dockerHost: host });
  const engine = await startEngine(w);
  t.after(async () => {
    await engine.shutdown();
    collectKubectl(w);
    w.cleanup();
    rmSync(scratch, { recursive: true, force: true });
  });
  return { w, engine, host, ...(haproxyPort ? { haproxyPort } : {}) };
}

function get(port: number, hostHeader: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/', headers: { Host: hostHeader }, timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', (e) => resolve({ status: 0, body: String(e) }));
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

/** Names of the engine's containers / networks / volumes that mention `name`. */
function leftovers(host: string, name: string): string[] {
  const names = (args: string[]) =>
    docker(host, args)
      .split('\n')
      .filter((n) => n && n.includes(name));
  return [
    ...names(['ps', '-a', '--format', 'container {{.Names}}']),
    ...names(['network', 'ls', '--format', 'network {{.Name}}']),
    ...names(['volume', 'ls', '--format', 'volume {{.Name}}']),
  ];
}

async function create(s: Setup, name: string, extra: string[] = [], actor?: Principal): Promise<Record<string, unknown>> {
  const r = await verb(s.engine, ['create', name, '--wait', '--json', ...extra], actor);
  assert.equal(r.code, 0, `create ${name}: ${r.out}${r.err}`);
  return JSON.parse(r.out).task as Record<string, unknown>;
}

engineTest(
  'k3d and kind end to end: real containers, a route through the real HAProxy answers with the cluster name, delete leaves nothing and the route 404s',
  async (t, host) => {
    const s = await setup(t, host, { routes: true });
    await create(s, 'e2ek');
    await create(s, 'e2ekind', ['--provider', 'kind']);

    // The stand-ins made real containers with the real tools' names and labels.
    const k3d = docker(host, ['ps', '--filter', 'label=k3d.cluster=e2ek', '--format', '{{.Names}} {{.Label "k3d.role"}}']).trim().split('\n').sort();
    assert.deepEqual(k3d, ['k3d-e2ek-server-0 server', 'k3d-e2ek-serverlb loadbalancer']);
    const kind = docker(host, ['ps', '--filter', 'label=io.x-k8s.kind.cluster=e2ekind', '--format', '{{.Names}} {{.Label "io.x-k8s.kind.role"}}']).trim();
    assert.equal(kind, 'e2ekind-control-plane control-plane');
    assert.ok(leftovers(host, 'k3d-e2ek').includes('network k3d-e2ek'));
    assert.ok(leftovers(host, 'k3d-e2ek').includes('volume k3d-e2ek-images'));

    // haproxy -> the cluster's host port (docker-proxy) -> the container's HTTP server.
    for (const n of ['e2ek', 'e2ekind']) {
      const r = await get(s.haproxyPort!, `${n}.example.test`);
      assert.deepEqual(r, { status: 200, body: `${n}\n` }, `route of ${n}`);
    }
    // kindler's own view of the provider agrees with docker.
    const show = await verb(s.engine, ['show', 'e2ek', '--live', '--json']);
    assert.equal(show.code, 0, show.err);
    assert.match(show.out, /k3d-e2ek-server-0/);

    for (const n of ['e2ek', 'e2ekind']) {
      const kc = await verb(s.engine, ['kubeconfig', n]);
      assert.equal(kc.code, 0, kc.err);
      kubeconfigs.push({ what: `kubeconfig ${n}`, text: kc.out });
      kubeconfigs.push({ what: `the cluster's own kubeconfig of ${n}`, text: readFileSync(s.engine.getCluster(n)!.kubeconfig, 'utf8') });
    }

    for (const n of ['e2ek', 'e2ekind']) {
      const d = await verb(s.engine, ['delete', n, '--wait', '--json']);
      assert.equal(d.code, 0, d.out + d.err);
    }
    assert.deepEqual(leftovers(host, 'e2ek'), [], 'no container, network or volume of either cluster is left');
    // `kill -USR2` returns before the new HAProxy worker takes over: until then the old one answers 503
    // (its backend, the deleted container's port, is gone). Never 200; 404 within a deadline.
    for (const n of ['e2ek', 'e2ekind']) {
      let r = await get(s.haproxyPort!, `${n}.example.test`);
      const end = Date.now() + 15_000;
      while (r.status !== 404 && Date.now() < end) {
        assert.equal(r.status, 503, `${n} after delete: ${r.status} ${r.body}`);
        r = await get(s.haproxyPort!, `${n}.example.test`);
      }
      assert.equal(r.status, 404, `${n} after delete`);
    }
  },
);

engineTest(
  'drift from the real engine: docker stop is healed as stopped, docker rm -f of every node is missing and never re-created, a hand-made k3d container is unmanaged and left alone',
  async (t, host) => {
    const s = await setup(t, host);
    await create(s, 'drifta');
    await create(s, 'driftb');
    // Behind kindler's back, with the real docker CLI.
    docker(host, ['stop', 'k3d-drifta-server-0', 'k3d-drifta-serverlb']);
    docker(host, ['rm', '-f', 'k3d-driftb-server-0', 'k3d-driftb-serverlb']);
    const net = `handnet-${process.pid}`;
    docker(host, ['network', 'create', '--label', `kindler.test.world=${s.w.fakeDir}`, net]);
    t.after(() => {
      spawnSync('docker', ['rm', '-f', 'k3d-handmade-server-0'], { env: { ...process.env, DOCKER_HOST: host } });
      spawnSync('docker', ['network', 'rm', net], { env: { ...process.env, DOCKER_HOST: host } });
    });
    docker(host, [
      'run',
      '-d',
      '--name',
      'k3d-handmade-server-0',
      '--network',
      net,
      '--label',
      'app=k3d',
      '--label',
      'k3d.cluster=handmade',
      '--label',
      'k3d.role=server',
      'kindler-node:test',
    ]);

    const dry = await verb(s.engine, ['reconcile', '--dry-run', '--json']);
    assert.equal(dry.code, 10, dry.out + dry.err);
    const kinds = (out: string) =>
      (JSON.parse(out).drift as { kind: string; cluster: string; heal: string }[]).map((d) => `${d.kind}:${d.cluster}:${d.heal}`).sort();
    assert.deepEqual(kinds(dry.out), ['missing:driftb:report', 'stopped:drifta:start', 'unmanaged:handmade:report']);

    const heal = await verb(s.engine, ['reconcile', '--json']);
    assert.equal(heal.code, 0, heal.out + heal.err);
    const healed = JSON.parse(heal.out).healed as { cluster: string; taskId: string }[];
    assert.deepEqual(
      healed.map((h) => h.cluster),
      ['drifta'],
    );
    const task = await s.engine.waitForTask(healed[0]!.taskId);
    assert.equal(task.state, 'succeeded', JSON.stringify(task.error));
    const states = docker(host, ['ps', '-a', '--filter', 'label=k3d.cluster=drifta', '--format', '{{.State}}']).trim().split('\n');
    assert.deepEqual(states, ['running', 'running'], 'the stopped nodes run again, in docker');
    assert.equal(s.engine.getCluster('drifta')!.actual, 'running');
    // missing: reported, the record kept, nothing re-created; unmanaged: untouched.
    assert.ok(s.engine.getCluster('driftb'), 'the missing record is kept');
    assert.equal(docker(host, ['ps', '-a', '-q', '--filter', 'label=k3d.cluster=driftb']).trim(), '', 'driftb is not re-created without asking');
    assert.equal(docker(host, ['inspect', '-f', '{{.State.Status}}', 'k3d-handmade-server-0']).trim(), 'running', 'the hand-made container is left alone');
    const again = await verb(s.engine, ['reconcile', '--dry-run', '--json']);
    assert.deepEqual(kinds(again.out), ['missing:driftb:report', 'unmanaged:handmade:report']);
  },
);

engineTest('import-image: an image built in the test reaches the node store of a k3d and a kind cluster (docker save -> the node)', async (t, host) => {
  const s = await setup(t, host);
  await create(s, 'imgk');
  await create(s, 'imgkind', ['--provider', 'kind']);
  // A tiny image made here: one file, docker import.
  const dir = mkdtempSync(join(tmpdir(), 'kindler-img-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'marker'), `made by ${process.pid}\n`);
  const tar = spawnSync('tar', ['-C', dir, '-c', '.'], { maxBuffer: 1 << 20 });
  const tag = `e2eapp:${process.pid}`;
  const id = execFileSync('docker', ['import', '-', tag], { env: { ...process.env, DOCKER_HOST: host }, input: tar.stdout, encoding: 'utf8' }).trim();
  t.after(() => spawnSync('docker', ['rmi', tag], { env: { ...process.env, DOCKER_HOST: host } }));

  for (const [cluster, node] of [
    ['imgk', 'k3d-imgk-server-0'],
    ['imgkind', 'imgkind-control-plane'],
  ] as const) {
    const r = await verb(s.engine, ['import-image', cluster, tag, '--wait', '--json']);
    assert.equal(r.code, 0, r.out + r.err);
    assert.equal(JSON.parse(r.out).task.state, 'succeeded');
    // The node holds a docker save of that image: its manifest names the tag, its config the image id.
    const file = `/var/lib/kindler-standin/images/${tag.replace(/[^A-Za-z0-9._-]/g, '_')}.tar`;
    const manifest = docker(host, ['exec', node, 'tar', '-xOf', file, 'manifest.json']);
    const m = JSON.parse(manifest) as { Config: string; RepoTags: string[] }[];
    assert.deepEqual(m[0]!.RepoTags, [tag], `${node} holds ${tag}`);
    assert.ok(id.endsWith(m[0]!.Config.replace(/\.json$/, '').replace(/^blobs\/sha256\//, '')), `${node}: the saved config ${m[0]!.Config} is image ${id}`);
  }
  // An image the engine does not have is refused by the tool, and the task says so.
  const missing = await verb(s.engine, ['import-image', 'imgk', 'nosuch/image:1', '--wait', '--json']);
  assert.notEqual(missing.code, 0);
  assert.match(missing.out + missing.err, /nosuch\/image:1/);
});

engineTest('a host port another container publishes is refused up front, naming the port and the container; nothing is created', async (t, host) => {
  const s = await setup(t, host);
  const port = s.w.cfg.ports.http.from + 7;
  const net = `holdnet-${process.pid}`;
  docker(host, ['network', 'create', '--label', `kindler.test.world=${s.w.fakeDir}`, net]);
  t.after(() => {
    spawnSync('docker', ['rm', '-f', `holder-${process.pid}`], { env: { ...process.env, DOCKER_HOST: host } });
    spawnSync('docker', ['network', 'rm', net], { env: { ...process.env, DOCKER_HOST: host } });
  });
  docker(host, ['run', '-d', '--name', `holder-${process.pid}`, '--network', net, '-p', `${port}:80`, 'kindler-node:test']);
  const r = await verb(s.engine, ['create', 'portclash', '--http-port', String(port), '--wait']);
  assert.notEqual(r.code, 0);
  const line = r.err.trim();
  assert.equal(line.split('\n').length, 1, `one line: ${line}`);
  assert.match(line, new RegExp(`^error: http-port: ${port} is not available: docker container "holder-${process.pid}" publishes it$`));
  assert.equal(s.engine.getCluster('portclash'), undefined, 'no record');
  assert.deepEqual(leftovers(host, 'portclash'), [], 'nothing in docker');
  assert.equal(s.engine.listTasks({}).length, 0, 'no task');
});

engineTest(
  'the SSH tunnel carries bytes to the API listener inside the cluster: k3d through its serverlb, kind straight to the control plane',
  async (t, host) => {
    const s = await setup(t, host);
    const keys = mkdtempSync(join(tmpdir(), 'kindler-e2e-keys-'));
    t.after(() => rmSync(keys, { recursive: true, force: true }));
    const bob = makeTestKey(keys, 'bob');
    const ssh = await startTestSsh(s.w, s.engine, {
      users: [`bob operator ${bob.pub}`],
      openTui: () => {
        throw new Error('no TUI here');
      },
    });
    t.after(() => ssh.stop());
    const BOB: Principal = { user: 'bob', role: 'operator', source: 'test' };
    await create(s, 'tunk', [], BOB);
    await create(s, 'tunkind', ['--provider', 'kind'], BOB);
    for (const name of ['tunk', 'tunkind']) {
      const lp = await freePort();
      const env = { ...process.env };
      delete env.SSH_AUTH_SOCK;
      const proc = spawn(
        'ssh',
        [
          '-F',
          '/dev/null',
          '-o',
          'StrictHostKeyChecking=no',
          '-o',
          'UserKnownHostsFile=/dev/null',
          '-o',
          'BatchMode=yes',
          '-o',
          'IdentitiesOnly=yes',
          '-o',
          'ExitOnForwardFailure=yes',
          '-v',
          '-N',
          '-L',
          `${lp}:${name}:6443`,
          '-p',
          String(ssh.srv.port),
          '-i',
          bob.path,
          'kindler@127.0.0.1',
        ],
        { env, stdio: ['ignore', 'ignore', 'pipe'] },
      );
      t.after(() => proc.kill('SIGKILL'));
      // The client says (with -v) when its local listener is up: wait for that, not for time.
      let said = '';
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`ssh -L ${lp}:${name}:6443 never listened:\n${said}`)), 30_000);
        proc.stderr.on('data', (d: Buffer) => {
          said += d.toString();
          if (said.includes(`Local forwarding listening on`) && said.includes(`port ${lp}`)) {
            clearTimeout(timer);
            resolve();
          }
        });
        proc.on('exit', (code) => {
          clearTimeout(timer);
          reject(new Error(`ssh -L exited ${code} before listening:\n${said}`));
        });
      });
      // It announces the listener just before it accepts: a refused connect in that gap is retried, to a deadline.
      const payload = `bytes for ${name} through the tunnel ${process.pid}\n`;
      const deadline = Date.now() + 20_000;
      let echoed = '';
      while (Date.now() < deadline) {
        echoed = await new Promise<string>((resolve) => {
          const sock = netConnect(lp, '127.0.0.1');
          let got = '';
          const timer = setTimeout(() => {
            sock.destroy();
            resolve(got);
          }, 5000);
          sock.on('connect', () => sock.write(payload));
          sock.on('data', (d) => {
            got += d.toString();
            if (got.length >= payload.length) {
              clearTimeout(timer);
              sock.destroy();
              resolve(got);
            }
          });
          sock.on('error', () => {
            clearTimeout(timer);
            resolve('');
          });
        });
        if (echoed) break;
        await new Promise((r) => setImmediate(r));
      }
      assert.equal(echoed, payload, `${name}: the echo listener on 6443 inside the node sent the bytes back`);
      await ssh.waitLog(new RegExp(`bob from 127\\.0\\.0\\.1: tunnel to ${name} \\(127\\.0\\.0\\.1:\\d+\\) open`));
      proc.kill('SIGTERM');
    }
  },
);

engineTest(
  'adopt reads the ports the real engine publishes (a fixed one from the bindings, a random one from docker port), writes a kubeconfig kubectl accepts, and a delete removes everything',
  async (t, host) => {
    const s = await setup(t, host);
    const p = s.w.cfg.ports;
    execFileSync(
      'k3d',
      [
        'cluster',
        'create',
        'adoptk',
        '--kubeconfig-update-default=false',
        '--api-port',
        `127.0.0.1:${p.api.to}`,
        '-p',
        `${p.http.to}:80@loadbalancer`,
        '-p',
        '443@loadbalancer',
      ],
      { env: s.w.env, stdio: 'pipe' },
    );
    // docker picked the HTTPS port when the load balancer started (docker port lists it for 0.0.0.0 and [::]).
    const published = docker(host, ['port', 'k3d-adoptk-serverlb', '443/tcp']).trim().split('\n');
    const https = Number(published[0]!.split(':').pop());
    assert.ok(https > 0, published.join(' | '));
    const a = await verb(s.engine, ['adopt', 'adoptk', '--provider', 'k3d']);
    assert.equal(a.code, 0, a.out + a.err);
    const c = s.engine.getCluster('adoptk')!;
    assert.deepEqual([c.httpPort, c.httpsPort, c.apiPort, c.actual], [p.http.to, https, p.api.to, 'running']);
    kubeconfigs.push({ what: 'the kubeconfig adopt wrote', text: readFileSync(c.kubeconfig, 'utf8') });
    const nodes = spawnSync('kubectl', ['--kubeconfig', c.kubeconfig, 'get', 'nodes', '-o', 'name'], { env: s.w.env, encoding: 'utf8' });
    assert.equal(nodes.status, 0, nodes.stderr);
    assert.equal(nodes.stdout.trim(), 'node/k3d-adoptk-server-0');
    const d = await verb(s.engine, ['delete', 'adoptk', '--wait', '--json']);
    assert.equal(d.code, 0, d.out + d.err);
    assert.deepEqual(leftovers(host, 'adoptk'), []);
  },
);

engineTest(
  'every kubectl argv the scripts issued is accepted by the real kubectl parser; every kubeconfig kindler wrote passes kubectl config view',
  async (t) => {
    assert.ok(existsSync(KUBECTL), `${KUBECTL} is missing (the real kubectl is on these machines)`);
    assert.ok(kubectlCalls.length > 0, 'the tests above issued kubectl calls');
    assert.ok(kubeconfigs.length >= 4, 'the tests above wrote kubeconfigs');
    const dir = mkdtempSync(join(tmpdir(), 'kindler-kubectl-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    for (const [i, k] of kubeconfigs.entries()) {
      const f = join(dir, `kc-${i}`);
      writeFileSync(f, k.text);
      const r = spawnSync(KUBECTL, ['config', 'view', '--kubeconfig', f, '-o', 'json'], { encoding: 'utf8' });
      assert.equal(r.status, 0, `${k.what}: ${r.stderr}`);
      assert.ok((JSON.parse(r.stdout) as { clusters: unknown[] }).clusters.length >= 1, `${k.what} has a cluster`);
    }
    // An unreachable API (nothing listens on port 1) with a token: the parser runs first, then a
    // connection is tried and refused. Every context the calls name exists in it.
    const contexts = new Set<string>(['unreachable']);
    for (const a of kubectlCalls)
      a.forEach((x, j) => {
        if (x === '--context') contexts.add(a[j + 1]!);
        else if (x.startsWith('--context=')) contexts.add(x.slice(10));
      });
    const kc = join(dir, 'unreachable');
    mkdirSync(join(dir, 'files'));
    writeFileSync(
      kc,
      [
        'apiVersion: v1',
        'kind: Config',
        'current-context: unreachable',
        'clusters:',
        '- name: unreachable',
        '  cluster:',
        '    server: https://127.0.0.1:1',
        'users:',
        '- name: u',
        '  user:',
        '    token: not-a-secret',
        'contexts:',
        ...[...contexts].flatMap((c) => [`- name: ${JSON.stringify(c)}`, '  context:', '    cluster: unreachable', '    user: u']),
      ].join('\n') + '\n',
    );
    const seen = new Set<string>();
    // The check must be able to fail: a misspelt flag and a misspelt verb are caught by the real parser.
    for (const bad of [
      ['get', 'nodes', '--no-such-flag'],
      ['wiat', '--for=condition=Ready', 'nodes', '--all'],
    ]) {
      const r = spawnSync(KUBECTL, [...bad, '--kubeconfig', kc, '--request-timeout=1s'], {
        encoding: 'utf8',
        timeout: 20_000,
        env: { PATH: process.env.PATH, HOME: dir },
      });
      assert.notEqual(r.status, 0);
      assert.match(`${r.stdout}${r.stderr}`, /unknown (flag|command)/, `the real kubectl is expected to reject ${bad.join(' ')}`);
    }
    const PARSE_ERROR =
      /unknown (flag|shorthand flag|command)|flag needs an argument|invalid argument|required flag|accepts \d+ arg|Run 'kubectl .* --help' for usage|flags cannot be placed before plugin name/;
    let checked = 0;
    for (const argv of kubectlCalls) {
      const key = JSON.stringify(argv);
      if (seen.has(key)) continue;
      seen.add(key);
      // Point the call at the unreachable API; files the scripts gave (temp files, now gone) are replaced by an empty one.
      const args: string[] = [];
      for (let j = 0; j < argv.length; j++) {
        const x = argv[j]!;
        if (x === '--kubeconfig') {
          args.push(x, kc);
          j++;
          continue;
        }
        if (x.startsWith('--kubeconfig=')) {
          args.push(`--kubeconfig=${kc}`);
          continue;
        }
        if ((x === '-f' || x === '--filename') && argv[j + 1] && !existsSync(argv[j + 1]!)) {
          const f = join(dir, 'files', `m${checked}.yaml`);
          writeFileSync(f, 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n');
          args.push(x, f);
          j++;
          continue;
        }
        args.push(x);
      }
      if (!args.some((x) => x === '--kubeconfig' || x.startsWith('--kubeconfig='))) args.push('--kubeconfig', kc);
      args.push('--request-timeout=1s');
      const r = spawnSync(KUBECTL, args, { encoding: 'utf8', timeout: 20_000, env: { PATH: process.env.PATH, HOME: dir } });
      const text = `${r.stdout}${r.stderr}`;
      assert.doesNotMatch(text, PARSE_ERROR, `real kubectl rejected ${argv.join(' ')}:\n${text}`);
      // Offline commands (kubectl config …) may succeed; the others must get as far as the connection.
      if (r.status !== 0)
        assert.match(
          text,
          /connection refused|connection to the server \S+ was refused|Unable to connect|dial tcp|context deadline|timed out|couldn't get current server API group list/i,
          `kubectl ${argv.join(' ')} failed before connecting:\n${text}`,
        );
      checked++;
    }
    t.diagnostic(`${checked} distinct kubectl argv checked against ${KUBECTL}; ${kubeconfigs.length} kubeconfigs parsed`);
  },
);
