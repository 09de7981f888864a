/**
 * The provisioning scripts (scripts/*.sh) run for real, as the daemon runs them (bash, own process
 * group), against the fake docker/k3d/kind/kubectl in test/fixtures/bin. Every test gets its own
 * fake docker state and its own HOME, so it can check that ~/.kube/config is never written.
 * No sleeps: tests wait for output lines and process exits.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseMarker, type Marker } from '../src/core/markers.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SCRIPTS = join(ROOT, 'scripts');
const FAKE_BIN = join(ROOT, 'test', 'fixtures', 'bin');
const CREATE = join(SCRIPTS, 'create_env.sh');
const DELETE = join(SCRIPTS, 'delete_env.sh');
const CLUSTER = join(SCRIPTS, 'cluster.sh');
type Provider = 'k3d' | 'kind';
const PROVIDERS: Provider[] = ['k3d', 'kind'];

// ---------------------------------------------------------------------------------------------
// Sandbox: fake docker state + HOME + a kubeconfig directory

interface Sandbox {
  dir: string;
  fake: string;
  home: string;
  kcDir: string;
  env: NodeJS.ProcessEnv;
  rule(name: string, content: string): void;
  clearRule(name: string): void;
  /** Runs a fake tool directly (for setting up and inspecting the fake docker). */
  tool(name: string, args: string[]): string;
  containers(): string[];
  networks(): string[];
  volumes(): string[];
  /** Entries of the kubeconfig dir (temp files must not be left there). */
  kcEntries(): string[];
}

const sandboxes: string[] = [];

function sandbox(): Sandbox {
  const dir = mkdtempSync(join(tmpdir(), 'kindler-scripts-'));
  sandboxes.push(dir);
  const fake = join(dir, 'fake');
  const home = join(dir, 'home');
  const kcDir = join(dir, 'kubeconfigs');
  for (const d of [fake, join(fake, 'control'), home, kcDir]) mkdirSync(d, { recursive: true });
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PATH: `${FAKE_BIN}:${process.env.PATH}`,
    KINDLER_FAKE_DIR: fake,
    HOME: home,
    LOG_COLORS: 'false',
  };
  delete env.KUBECONFIG;
  delete env.XDG_CONFIG_HOME;
  const tool = (name: string, args: string[]) => execFileSync(join(FAKE_BIN, name), args, { env, encoding: 'utf8' });
  const lines = (s: string) => s.split('\n').filter(Boolean);
  return {
    dir, fake, home, kcDir, env,
    rule: (name, content) => writeFileSync(join(fake, 'control', name), `${content}\n`),
    clearRule: (name) => rmSync(join(fake, 'control', name), { force: true }),
    tool,
    containers: () => lines(tool('docker', ['ps', '-a', '--format', '{{.Names}}'])),
    networks: () => lines(tool('docker', ['network', 'ls', '--format', '{{.Name}}'])),
    volumes: () => lines(tool('docker', ['volume', 'ls', '--format', '{{.Name}}'])),
    kcEntries: () => readdirSync(kcDir),
  };
}

after(() => {
  for (const d of sandboxes) rmSync(d, { recursive: true, force: true });
});

/** Three distinct TCP ports that nothing listens on right now (the OS picks them). */
async function freePorts(): Promise<[number, number, number]> {
  const servers: Server[] = [];
  const ports: number[] = [];
  for (let i = 0; i < 3; i++) {
    const s = createServer();
    await new Promise<void>((res) => s.listen(0, '127.0.0.1', () => res()));
    servers.push(s);
    ports.push((s.address() as { port: number }).port);
  }
  await Promise.all(servers.map((s) => new Promise<void>((res) => s.close(() => res()))));
  return ports as [number, number, number];
}

// ---------------------------------------------------------------------------------------------
// Running a script the way the daemon does: bash SCRIPT ARGS, own process group, line streams.

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string[];
  stderr: string[];
  markers: Marker[];
  /** The payload of the result marker, if any. */
  result?: Record<string, unknown>;
}

interface Running {
  pid: number;
  done: Promise<RunResult>;
  /** Resolves with the first stdout/stderr line that matches. */
  waitFor(re: RegExp): Promise<string>;
}

function start(script: string, args: string[], sb: Sandbox): Running {
  const child = spawn('bash', [script, ...args], { env: sb.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const stdout: string[] = [];
  const stderr: string[] = [];
  const waiters: { re: RegExp; resolve: (l: string) => void }[] = [];
  const onLine = (line: string) => {
    for (const w of waiters.slice()) {
      if (w.re.test(line)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  };
  const split = (sink: string[]) => {
    let buf = '';
    return {
      push(chunk: string) {
        buf += chunk;
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          sink.push(line);
          onLine(line);
        }
      },
      end() {
        if (buf) { sink.push(buf); onLine(buf); }
        buf = '';
      },
    };
  };
  const o = split(stdout);
  const e = split(stderr);
  child.stdout.setEncoding('utf8').on('data', (c: string) => o.push(c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => e.push(c));
  const done = new Promise<RunResult>((res, rej) => {
    child.on('error', rej);
    child.on('close', (code, signal) => {
      o.end();
      e.end();
      const markers = stdout.map(parseMarker).filter((m): m is Marker => m !== null);
      const r = markers.find((m) => m.type === 'result');
      res({ code, signal, stdout, stderr, markers, result: r && r.type === 'result' ? r.value : undefined });
    });
  });
  return {
    pid: child.pid!,
    done,
    waitFor: (re) =>
      new Promise<string>((res, rej) => {
        const seen = [...stdout, ...stderr].find((l) => re.test(l));
        if (seen !== undefined) return res(seen);
        waiters.push({ re, resolve: res });
        done.then(() => rej(new Error(`script ended before a line matched ${re}\nstdout:\n${stdout.join('\n')}\nstderr:\n${stderr.join('\n')}`)), rej);
      }),
  };
}

const run = (script: string, args: string[], sb: Sandbox) => start(script, args, sb).done;

function show(r: RunResult): string {
  return `exit ${r.code} signal ${r.signal}\n--- stdout\n${r.stdout.join('\n')}\n--- stderr\n${r.stderr.join('\n')}`;
}

/** Marker-contract checks that hold for every run. */
function checkContract(r: RunResult): void {
  assert.deepEqual(r.markers.filter((m) => m.type === 'invalid'), [], `invalid marker lines\n${show(r)}`);
  const steps = r.markers.filter((m) => m.type === 'step');
  steps.forEach((s, i) => {
    assert.equal(s.type === 'step' && s.n, i + 1, `steps must count 1, 2, …\n${show(r)}`);
    assert.ok(s.type === 'step' && s.of === (steps[0] as { of: number }).of, `TOTAL must not change\n${show(r)}`);
  });
  const errors = r.markers.filter((m) => m.type === 'error');
  const results = r.markers.filter((m) => m.type === 'result');
  if (r.code === 0) {
    assert.equal(errors.length, 0, `success without error markers\n${show(r)}`);
    assert.equal(results.length, 1, `exactly one result\n${show(r)}`);
    assert.match(r.stdout[r.stdout.length - 1]!, /^::kindler:result \{/, `the result is the last stdout line\n${show(r)}`);
    if (steps.length) assert.equal((steps[steps.length - 1] as { n: number; of: number }).n, (steps[0] as { of: number }).of, 'all steps ran');
  } else if (r.code !== 2) {
    assert.equal(errors.length, 1, `a failure prints exactly one error marker\n${show(r)}`);
    assert.equal(results.length, 0, `no result on failure\n${show(r)}`);
  }
}

const stepKeys = (r: RunResult) => r.markers.flatMap((m) => (m.type === 'step' ? [m.key] : []));
const notes = (r: RunResult) => r.markers.flatMap((m) => (m.type === 'note' ? [m.text] : []));
const errorText = (r: RunResult) => r.markers.flatMap((m) => (m.type === 'error' ? [m.text] : [])).join('\n');
const cleanupPhases = (r: RunResult) => r.markers.flatMap((m) => (m.type === 'cleanup' ? [m.phase] : []));

function assertHomeUntouched(sb: Sandbox): void {
  assert.ok(!existsSync(join(sb.home, '.kube', 'config')), '~/.kube/config must never be created');
}

interface Env {
  sb: Sandbox;
  name: string;
  provider: Provider;
  kubeconfig: string;
  ports: [number, number, number];
}

async function env(provider: Provider, name = `t-${provider}`): Promise<Env> {
  const sb = sandbox();
  return { sb, name, provider, kubeconfig: join(sb.kcDir, `${name}.yaml`), ports: await freePorts() };
}

function createArgs(e: Env, extra: string[] = []): string[] {
  return [
    '--name', e.name, '--provider', e.provider,
    '--http-port', String(e.ports[0]), '--https-port', String(e.ports[1]), '--api-port', String(e.ports[2]),
    '--kubeconfig', e.kubeconfig, '--wait-timeout', '30', ...extra,
  ];
}
const nameArgs = (e: Env) => ['--name', e.name, '--provider', e.provider];

/** The status result, less its `containers` list, which is checked here against the fake docker's own view. */
async function status(e: Env): Promise<Record<string, unknown>> {
  const r = await run(CLUSTER, ['status', ...nameArgs(e)], e.sb);
  checkContract(r);
  assert.equal(r.code, 0, show(r));
  const { containers, ...rest } = r.result! as Record<string, unknown> & { containers: { name: string; role: string; state: string }[] };
  assert.ok(Array.isArray(containers), `status lists the containers: ${JSON.stringify(r.result)}`);
  const mine = e.sb.containers().filter((n) => containers.some((x) => x.name === n));
  assert.equal(mine.length, containers.length, `every listed container exists: ${JSON.stringify(containers)}`);
  for (const x of containers) {
    assert.match(x.role, /^(server|agent|loadbalancer|control-plane|worker|external-load-balancer|noRole)$/, JSON.stringify(x));
    assert.match(x.state, /^[a-z]+$/, JSON.stringify(x));
  }
  if (rest.state === 'absent') assert.deepEqual(containers, []);
  if (rest.state === 'running') assert.ok(containers.every((x) => x.state === 'running'), JSON.stringify(containers));
  if (rest.state === 'stopped') assert.ok(containers.every((x) => x.state !== 'running'), JSON.stringify(containers));
  return rest;
}

/** Nothing of the cluster is left in the fake docker, and no kubeconfig or temp file. */
function assertNothingLeft(e: Env): void {
  const own = (n: string) => n === e.name || n.startsWith(`${e.name}-`) || n === `k3d-${e.name}` || n.startsWith(`k3d-${e.name}-`);
  assert.deepEqual(e.sb.containers().filter(own), [], 'no container left');
  assert.deepEqual(e.sb.networks().filter(own), [], 'no network left');
  assert.deepEqual(e.sb.volumes().filter(own), [], 'no volume left');
  assert.deepEqual(e.sb.kcEntries(), [], 'no kubeconfig or temp file left');
}

// ---------------------------------------------------------------------------------------------

before(() => {
  assert.ok(existsSync(join(FAKE_BIN, 'k3d')), `the fake tools are missing in ${FAKE_BIN}`);
});

for (const provider of PROVIDERS) {
  describe(`${provider}: lifecycle`, () => {
    test('create, status, stop, start, list, delete, delete again', async () => {
      const e = await env(provider);
      const ctx = `${provider}-${e.name}`;

      const c = await run(CREATE, createArgs(e, ['--agents', '1']), e.sb);
      checkContract(c);
      assert.equal(c.code, 0, show(c));
      // kind has no ingress controller of its own: create installs the shipped one and waits for it.
      assert.deepEqual(stepKeys(c), ['preflight', 'create-cluster', 'kubeconfig', 'wait-ready', ...(provider === 'kind' ? ['ingress'] : []), 'node-address']);
      assert.deepEqual(cleanupPhases(c), []);
      const res = c.result!;
      assert.equal(res.name, e.name);
      assert.equal(res.provider, provider);
      assert.equal(res.kubeContext, ctx);
      assert.equal(res.kubeconfig, e.kubeconfig);
      assert.match(String(res.nodeAddress), /^\d+\.\d+\.\d+\.\d+$/);
      assert.deepEqual([res.httpPort, res.httpsPort, res.apiPort, res.servers, res.agents], [...e.ports, 1, 1]);
      // The kubeconfig: only ours, 0600, with the context, and no temp files beside it.
      assert.deepEqual(e.sb.kcEntries(), [`${e.name}.yaml`]);
      assert.equal(statSync(e.kubeconfig).mode & 0o777, 0o600);
      const contexts = e.sb.tool('kubectl', ['--kubeconfig', e.kubeconfig, 'config', 'get-contexts', '-o', 'name']);
      assert.ok(contexts.split('\n').includes(ctx), contexts);
      assert.match(readFileSync(e.kubeconfig, 'utf8'), new RegExp(`127\\.0\\.0\\.1:${e.ports[2]}`));
      assertHomeUntouched(e.sb);

      assert.deepEqual(await status(e), { name: e.name, provider, state: 'running', nodes: 2, running: 2 });

      const stop = await run(CLUSTER, ['stop', ...nameArgs(e)], e.sb);
      checkContract(stop);
      assert.equal(stop.code, 0, show(stop));
      assert.deepEqual(stepKeys(stop), ['preflight', 'stop-cluster']);
      assert.deepEqual(stop.result, { name: e.name, provider, state: 'stopped' });
      assert.deepEqual(await status(e), { name: e.name, provider, state: 'stopped', nodes: 2, running: 0 });

      const startR = await run(CLUSTER, ['start', ...nameArgs(e), '--kubeconfig', e.kubeconfig, '--wait-timeout', '30'], e.sb);
      checkContract(startR);
      assert.equal(startR.code, 0, show(startR));
      assert.deepEqual(stepKeys(startR), ['preflight', 'start-cluster', 'wait-ready', 'node-address']);
      assert.equal(startR.result!.state, 'running');
      assert.match(String(startR.result!.nodeAddress), /^\d+\.\d+\.\d+\.\d+$/);
      assert.deepEqual(await status(e), { name: e.name, provider, state: 'running', nodes: 2, running: 2 });

      const list = await run(CLUSTER, ['list'], e.sb);
      checkContract(list);
      assert.equal(list.code, 0, show(list));
      assert.deepEqual(list.result, { clusters: [{ name: e.name, provider, state: 'running', nodes: 2, running: 2 }] });
      const other = provider === 'k3d' ? 'kind' : 'k3d';
      const listOther = await run(CLUSTER, ['list', '--provider', other], e.sb);
      assert.deepEqual(listOther.result, { clusters: [] }, show(listOther));

      const d1 = await run(DELETE, [...nameArgs(e), '--kubeconfig', e.kubeconfig], e.sb);
      checkContract(d1);
      assert.equal(d1.code, 0, show(d1));
      assert.deepEqual(stepKeys(d1), ['preflight', 'delete-cluster', 'remove-kubeconfig']);
      assert.deepEqual(d1.result, { name: e.name, provider, deleted: true });
      assert.deepEqual(await status(e), { name: e.name, provider, state: 'absent', nodes: 0, running: 0 });
      assertNothingLeft(e);

      const d2 = await run(DELETE, [...nameArgs(e), '--kubeconfig', e.kubeconfig], e.sb);
      checkContract(d2);
      assert.equal(d2.code, 0, show(d2));
      assert.deepEqual(d2.result, { name: e.name, provider, deleted: false });
      assert.ok(notes(d2).some((n) => n.includes('already absent')), show(d2));
      assertHomeUntouched(e.sb);
    });

    test('a failure mid-create (kubectl wait) cleans up and exits non-zero', async () => {
      const e = await env(provider);
      e.sb.rule('kubectl.wait', 'fail 1 timed out waiting for the condition on nodes/x');
      const r = await run(CREATE, createArgs(e), e.sb);
      checkContract(r);
      assert.notEqual(r.code, 0, show(r));
      assert.deepEqual(stepKeys(r), ['preflight', 'create-cluster', 'kubeconfig', 'wait-ready']);
      assert.match(errorText(r), /kubectl wait exit 1/);
      assert.deepEqual(cleanupPhases(r), ['begin', 'done'], show(r));
      // error first, then the cleanup, and nothing after it on stdout
      const idx = (re: RegExp) => r.stdout.findIndex((l) => re.test(l));
      assert.ok(idx(/^::kindler:error /) < idx(/^::kindler:cleanup begin/), show(r));
      assert.match(r.stdout[r.stdout.length - 1]!, /^::kindler:cleanup done$/);
      assert.equal((await status(e)).state, 'absent');
      assertNothingLeft(e);
      assertHomeUntouched(e.sb);
    });

    test('SIGTERM to the process group during a delayed create: cleanup, exit 143', async () => {
      const e = await env(provider);
      const ruleName = provider === 'k3d' ? 'k3d.cluster-create' : 'kind.create-cluster';
      e.sb.rule(ruleName, 'delay 60');
      const p = start(CREATE, createArgs(e), e.sb);
      const total = provider === 'kind' ? 6 : 5;
      await p.waitFor(new RegExp(`^::kindler:step 2/${total} create-cluster`));
      // wait until the provider has made part of the cluster, then cancel like the daemon does
      await p.waitFor(provider === 'k3d' ? /Starting node 'k3d-t-k3d-server-0'/ : /Starting control-plane/);
      assert.ok(e.sb.containers().length > 0, 'the create was under way');
      process.kill(-p.pid, 'SIGTERM');
      const r = await p.done;
      checkContract(r);
      assert.equal(r.code, 143, show(r));
      assert.match(errorText(r), new RegExp(`interrupted by SIGTERM during step 2/${total} \\(create-cluster\\)`));
      assert.deepEqual(cleanupPhases(r), ['begin', 'done'], show(r));
      assert.equal((await status(e)).state, 'absent');
      assertNothingLeft(e);
      assertHomeUntouched(e.sb);
    });

    test('an existing cluster of that name fails preflight and is left alone', async () => {
      const e = await env(provider);
      const first = await run(CREATE, createArgs(e), e.sb);
      assert.equal(first.code, 0, show(first));
      const e2: Env = { ...e, kubeconfig: join(e.sb.kcDir, 'second.yaml'), ports: await freePorts() };
      const r = await run(CREATE, createArgs(e2), e.sb);
      checkContract(r);
      assert.equal(r.code, 1, show(r));
      assert.deepEqual(stepKeys(r), ['preflight']);
      assert.match(errorText(r), /already exists/);
      assert.deepEqual(cleanupPhases(r), [], 'no cleanup: it did not create anything');
      assert.equal((await status(e)).state, 'running');
      assert.ok(existsSync(e.kubeconfig), 'the first cluster keeps its kubeconfig');
      assert.ok(!existsSync(e2.kubeconfig));
    });

    test('a host port already taken by another cluster: the provider error is the reason, then cleanup', async () => {
      const e = await env(provider);
      const first = await run(CREATE, createArgs(e), e.sb);
      assert.equal(first.code, 0, show(first));
      // The fake docker does not really listen, so preflight passes and the provider hits the bind.
      const e2: Env = { ...e, name: `${e.name}-b`, kubeconfig: join(e.sb.kcDir, 'b.yaml'), ports: [(await freePorts())[0], e.ports[1], (await freePorts())[2]] };
      const r = await run(CREATE, createArgs(e2), e.sb);
      checkContract(r);
      assert.equal(r.code, 1, show(r));
      const tool = provider === 'k3d' ? 'k3d cluster create' : 'kind create cluster';
      assert.match(errorText(r), new RegExp(`^${tool} failed \\(exit 1\\): .*Bind for 0\\.0\\.0\\.0:${e.ports[1]} failed: port is already allocated$`));
      assert.deepEqual(cleanupPhases(r), ['begin', 'done'], show(r));
      assert.equal((await status(e2)).state, 'absent');
      assert.equal((await status(e)).state, 'running', 'the other cluster is untouched');
      assert.deepEqual(e.sb.kcEntries(), [`${e.name}.yaml`]);
    });

    test('import-image into a running cluster', async () => {
      const e = await env(provider);
      const c = await run(CREATE, createArgs(e), e.sb);
      assert.equal(c.code, 0, show(c));
      e.sb.tool('docker', ['pull', 'nginx:1.27']);
      const r = await run(CLUSTER, ['import-image', ...nameArgs(e), '--image', 'nginx:1.27'], e.sb);
      checkContract(r);
      assert.equal(r.code, 0, show(r));
      assert.deepEqual(stepKeys(r), ['preflight', 'import-image']);
      assert.deepEqual(r.result, { name: e.name, provider, image: 'nginx:1.27' });
      const missing = await run(CLUSTER, ['import-image', ...nameArgs(e), '--image', 'not-pulled:1'], e.sb);
      checkContract(missing);
      assert.notEqual(missing.code, 0, show(missing));
      assert.match(errorText(missing), /import|load/);
    });

    test('start/stop/import of a missing cluster: "does not exist"', async () => {
      const e = await env(provider);
      for (const args of [['start', ...nameArgs(e)], ['stop', ...nameArgs(e)], ['import-image', ...nameArgs(e), '--image', 'nginx:1']]) {
        const r = await run(CLUSTER, args, e.sb);
        checkContract(r);
        assert.equal(r.code, 1, show(r));
        assert.match(errorText(r), new RegExp(`cluster ${e.name} does not exist`));
      }
    });
  });
}

describe('k3d specifics', () => {
  test('the provider failing the create: its error line in the marker, then cleanup', async () => {
    const e = await env('k3d');
    // No roll-back by k3d: the containers stay, and the script must remove them.
    e.sb.rule('k3d.cluster-create', 'fail-after-partial 1 agent exploded');
    const r = await run(CREATE, createArgs(e, ['--agents', '1']), e.sb);
    checkContract(r);
    assert.equal(r.code, 1, show(r));
    assert.match(errorText(r), /^k3d cluster create failed \(exit 1\): .*agent exploded/);
    assert.deepEqual(cleanupPhases(r), ['begin', 'done'], show(r));
    assertNothingLeft(e);
  });

  test('--subnet is passed to k3d and a network that existed before is kept on failure', async () => {
    const e = await env('k3d');
    const ok = await run(CREATE, createArgs(e, ['--subnet', '10.123.0.0/16']), e.sb);
    assert.equal(ok.code, 0, show(ok));
    const inspect = e.sb.tool('docker', ['network', 'inspect', `k3d-${e.name}`, '-f', '{{range .IPAM.Config}}{{.Subnet}}{{end}}']);
    assert.equal(inspect.trim(), '10.123.0.0/16');
    const d = await run(DELETE, [...nameArgs(e), '--kubeconfig', e.kubeconfig], e.sb);
    assert.equal(d.code, 0, show(d));

    // A network k3d-NAME made by someone else: k3d re-uses it; our cleanup must not remove it.
    e.sb.tool('docker', ['network', 'create', `k3d-${e.name}`]);
    e.sb.rule('kubectl.wait', 'fail');
    const r = await run(CREATE, createArgs(e), e.sb);
    assert.notEqual(r.code, 0, show(r));
    assert.deepEqual(cleanupPhases(r), ['begin', 'done'], show(r));
    assert.ok(notes(r).some((n) => n.includes(`network k3d-${e.name} already exists`)), show(r));
    assert.ok(e.sb.networks().includes(`k3d-${e.name}`), 'the foreign network is kept');
    assert.deepEqual(e.sb.containers(), []);
  });

  test('a stopped agent makes the cluster degraded', async () => {
    const e = await env('k3d');
    const c = await run(CREATE, createArgs(e, ['--agents', '1']), e.sb);
    assert.equal(c.code, 0, show(c));
    e.sb.tool('docker', ['stop', `k3d-${e.name}-agent-0`]);
    assert.deepEqual(await status(e), { name: e.name, provider: 'k3d', state: 'degraded', nodes: 2, running: 1 });
  });
});

describe('kind specifics', () => {
  test('the kind config asks for the ports, the API address and the node roles', async () => {
    const e = await env('kind');
    const r = await run(CREATE, createArgs(e, ['--servers', '3', '--agents', '2']), e.sb);
    checkContract(r);
    assert.equal(r.code, 0, show(r));
    assert.deepEqual(await status(e), { name: e.name, provider: 'kind', state: 'running', nodes: 5, running: 5 });
    const ports = e.sb.tool('docker', ['ps', '--filter', `name=${e.name}-control-plane`, '--format', '{{.Names}} {{.Ports}}']);
    assert.match(ports, new RegExp(`0\\.0\\.0\\.0:${e.ports[0]}->80/tcp`));
    assert.match(ports, new RegExp(`0\\.0\\.0\\.0:${e.ports[1]}->443/tcp`));
  });
});

describe('kind ingress', () => {
  const MANIFEST = join(SCRIPTS, 'manifests', 'ingress-nginx-kind-v1.12.1.yaml');
  interface FakeObject { kind: string; namespace: string; name: string; source: string; object: Record<string, unknown> }
  const calls = (e: Env) => readFileSync(join(e.sb.fake, 'calls.log'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { tool: string; argv: string[] });
  /** The objects the kubectl stand-in recorded as applied to the cluster (kept on its first control-plane container). */
  const applied = (e: Env): FakeObject[] => {
    const st = JSON.parse(readFileSync(join(e.sb.fake, 'state.json'), 'utf8')) as { containers: { name: string; fake: { objects?: FakeObject[] } }[] };
    return st.containers.find((c) => c.name === `${e.name}-control-plane`)?.fake.objects ?? [];
  };

  test('create labels the control plane ingress-ready, applies the shipped manifest and waits until the controller is available', async () => {
    const e = await env('kind');
    const r = await run(CREATE, createArgs(e), e.sb);
    checkContract(r);
    assert.equal(r.code, 0, show(r));
    // The node the controller must run on carries the label, and its 80/443 go to the cluster's host ports.
    const nodes = JSON.parse(e.sb.tool('kubectl', ['--kubeconfig', e.kubeconfig, 'get', 'nodes', '-o', 'json'])) as { items: { metadata: { name: string; labels: Record<string, string> } }[] };
    assert.equal(nodes.items.find((n) => n.metadata.name === `${e.name}-control-plane`)?.metadata.labels['ingress-ready'], 'true');
    const ports = e.sb.tool('docker', ['ps', '--filter', `name=${e.name}-control-plane`, '--format', '{{.Ports}}']);
    assert.match(ports, new RegExp(`0\\.0\\.0\\.0:${e.ports[0]}->80/tcp`));
    assert.match(ports, new RegExp(`0\\.0\\.0\\.0:${e.ports[1]}->443/tcp`));
    // kubectl apply -f of the file shipped in the repo (no URL), then a wait on the controller, in that order.
    const kubectl = calls(e).filter((c) => c.tool === 'kubectl').map((c) => c.argv);
    const ai = kubectl.findIndex((a) => a.includes('apply'));
    const wi = kubectl.findIndex((a) => a.includes('deployment/ingress-nginx-controller'));
    assert.deepEqual(kubectl[ai], ['--kubeconfig', e.kubeconfig, '--context', `kind-${e.name}`, 'apply', '-f', MANIFEST]);
    assert.deepEqual(kubectl[wi], ['--kubeconfig', e.kubeconfig, '--context', `kind-${e.name}`, '-n', 'ingress-nginx', 'wait', '--for=condition=available', 'deployment/ingress-nginx-controller', '--timeout=30s']);
    assert.ok(ai >= 0 && wi > ai, JSON.stringify(kubectl));
    const objs = applied(e);
    assert.ok(objs.every((o) => o.source === MANIFEST), 'every object came from the shipped manifest');
    const dep = objs.find((o) => o.kind === 'Deployment');
    assert.equal(`${dep?.namespace}/${dep?.name}`, 'ingress-nginx/ingress-nginx-controller');
    assert.ok(objs.some((o) => o.kind === 'IngressClass' && o.name === 'nginx'));
    assert.match(r.stdout.join('\n'), /deployment\.apps\/ingress-nginx-controller condition met/);
    // k3d brings its own ingress (traefik): no manifest is applied there.
    const k = await env('k3d');
    const kr = await run(CREATE, createArgs(k), k.sb);
    assert.equal(kr.code, 0, show(kr));
    assert.ok(!calls(k).some((c) => c.tool === 'kubectl' && c.argv.includes('apply')));
  });

  test('a controller that never becomes available fails the create with the reason, and the cluster is removed', async () => {
    const e = await env('kind');
    writeFileSync(join(e.sb.fake, 'control', 'deployments-not-available'), 'ingress-nginx/ingress-nginx-controller\n');
    const r = await run(CREATE, createArgs(e).map((a, i, all) => (all[i - 1] === '--wait-timeout' ? '1' : a)), e.sb);
    checkContract(r);
    assert.equal(r.code, 1, show(r));
    assert.deepEqual(stepKeys(r), ['preflight', 'create-cluster', 'kubeconfig', 'wait-ready', 'ingress']);
    assert.match(errorText(r), /^ingress-nginx did not become available within 1s \(kubectl wait exit 1\): timed out waiting for the condition on deployments\/ingress-nginx-controller$/);
    assert.deepEqual(cleanupPhases(r), ['begin', 'done']);
    assertNothingLeft(e);
  });

  test('a failing apply fails the create with kubectl\'s error line', async () => {
    const e = await env('kind');
    e.sb.rule('kubectl.apply', 'fail 1 the server could not find the requested resource');
    const r = await run(CREATE, createArgs(e), e.sb);
    checkContract(r);
    assert.equal(r.code, 1, show(r));
    assert.match(errorText(r), /^installing ingress-nginx failed \(kubectl apply exit 1\): the server could not find the requested resource$/);
    assert.deepEqual(cleanupPhases(r), ['begin', 'done']);
    assertNothingLeft(e);
  });
});

describe('node address', () => {
  for (const provider of PROVIDERS) {
    test(`${provider}: the address on the cluster's own network, even when the node is also on another one`, async () => {
      const e = await env(provider);
      const c = await run(CREATE, createArgs(e), e.sb);
      assert.equal(c.code, 0, show(c));
      const node = provider === 'k3d' ? `k3d-${e.name}-server-0` : `${e.name}-control-plane`;
      const net = provider === 'k3d' ? `k3d-${e.name}` : 'kind';
      const own = e.sb.tool('docker', ['inspect', '-f', `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`, node]).trim();
      assert.equal(c.result!.nodeAddress, own);
      // Someone connects the node to a second network (say, Portainer's): start still reports the cluster network's address.
      e.sb.tool('docker', ['network', 'create', 'tools']);
      e.sb.tool('docker', ['network', 'connect', 'tools', node]);
      assert.equal((await run(CLUSTER, ['stop', ...nameArgs(e)], e.sb)).code, 0);
      const r = await run(CLUSTER, ['start', ...nameArgs(e), '--kubeconfig', e.kubeconfig, '--wait-timeout', '30'], e.sb);
      checkContract(r);
      assert.equal(r.code, 0, show(r));
      const now = e.sb.tool('docker', ['inspect', '-f', `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`, node]).trim();
      assert.match(now, /^\d+\.\d+\.\d+\.\d+$/);
      assert.equal(r.result!.nodeAddress, now);
    });
  }
});

describe('docker down', () => {
  for (const provider of PROVIDERS) {
    test(`${provider}: create fails in preflight with a clear error, nothing is cleaned`, async () => {
      const e = await env(provider);
      writeFileSync(join(e.sb.fake, 'control', 'docker-down'), '');
      const r = await run(CREATE, createArgs(e), e.sb);
      checkContract(r);
      assert.equal(r.code, 1, show(r));
      assert.deepEqual(stepKeys(r), ['preflight']);
      assert.match(errorText(r), /^docker is not reachable \(docker info exit 1\): Cannot connect to the Docker daemon/);
      assert.deepEqual(cleanupPhases(r), []);
      assert.deepEqual(e.sb.kcEntries(), []);
    });

    test(`${provider}: status and list fail, never "absent"`, async () => {
      const e = await env(provider);
      writeFileSync(join(e.sb.fake, 'control', 'docker-down'), '');
      for (const args of [['status', ...nameArgs(e)], ['list']]) {
        const r = await run(CLUSTER, args, e.sb);
        checkContract(r);
        assert.equal(r.code, 1, show(r));
        assert.equal(r.result, undefined);
        assert.match(errorText(r), /Cannot connect to the Docker daemon/);
      }
    });

    test(`${provider}: delete fails instead of claiming the cluster is gone`, async () => {
      const e = await env(provider);
      writeFileSync(join(e.sb.fake, 'control', 'docker-down'), '');
      const r = await run(DELETE, [...nameArgs(e), '--kubeconfig', e.kubeconfig], e.sb);
      checkContract(r);
      assert.equal(r.code, 1, show(r));
      assert.match(errorText(r), /docker is not reachable/);
    });
  }
});

describe('preflight: host ports', () => {
  test('a port something listens on fails the create before anything is made', async () => {
    const e = await env('k3d');
    const srv = createServer();
    await new Promise<void>((res) => srv.listen(e.ports[1], '0.0.0.0', () => res()));
    try {
      const r = await run(CREATE, createArgs(e), e.sb);
      checkContract(r);
      assert.equal(r.code, 1, show(r));
      assert.match(errorText(r), new RegExp(`host port ${e.ports[1]} \\(--https-port\\) is already in use`));
      assert.deepEqual(cleanupPhases(r), []);
      assert.deepEqual(e.sb.containers(), []);
    } finally {
      await new Promise<void>((res) => srv.close(() => res()));
    }
  });
});

describe('usage errors: exit 2, one line naming the flag, nothing run', () => {
  // A fresh directory per run: a file left by an earlier (failing) run must not fail this one.
  const kc = join(mkdtempSync(join(tmpdir(), 'kindler-usage-')), 'never-written.yaml');
  const ok = ['--name', 'dev', '--provider', 'k3d', '--http-port', '18090', '--https-port', '18443', '--api-port', '16550', '--kubeconfig', kc];
  const without = (flag: string) => {
    const i = ok.indexOf(flag);
    return [...ok.slice(0, i), ...ok.slice(i + 2)];
  };
  const cases: [string, string, string[], RegExp][] = [
    ['unknown flag', CREATE, [...ok, '--nme', 'x'], /^error: --nme: unknown flag$/],
    ['missing --name', CREATE, without('--name'), /^error: --name: is required$/],
    ['missing --kubeconfig', CREATE, without('--kubeconfig'), /^error: --kubeconfig: is required$/],
    ['flag without value', CREATE, [...ok, '--image'], /^error: --image: requires a value$/],
    ['flag swallowing the next flag', CREATE, ['--name', '--provider', 'k3d'], /^error: --name: requires a value/],
    ['repeated flag', CREATE, [...ok, '--name', 'other'], /^error: --name: given more than once$/],
    ['positional argument', CREATE, [...ok, 'extra'], /^error: extra: unexpected argument/],
    ['bad name', CREATE, [...without('--name'), '--name', 'Bad_Name'], /^error: --name: must start with a lowercase letter$/],
    ['bad name characters', CREATE, [...without('--name'), '--name', 'bad_name'], /^error: --name: only lowercase letters, digits and "-" are allowed \(a DNS label\)$/],
    ['reserved name', CREATE, [...without('--name'), '--name', 'admin'], /^error: --name: "admin" is reserved \(kindler itself, its static routes or git use it\)$/],
    ['k3d name too long', CREATE, [...without('--name'), '--name', 'a'.repeat(33)], /^error: --name: must be at most 32 characters for k3d: k3d's own limit for cluster names \(got 33\)$/],
    ['bad provider', CREATE, [...without('--provider'), '--provider', 'minikube'], /^error: --provider: must be k3d or kind$/],
    ['bad port', CREATE, [...without('--http-port'), '--http-port', '70000'], /^error: --http-port: must be a port number 1024-65535$/],
    ['privileged port', CREATE, [...without('--api-port'), '--api-port', '443'], /^error: --api-port: must be a port number 1024-65535$/],
    ['same ports', CREATE, [...without('--https-port'), '--https-port', '18090'], /^error: --https-port: must differ from --http-port/],
    ['servers 0', CREATE, [...ok, '--servers', '0'], /^error: --servers: must be a whole number 1-7$/],
    ['relative kubeconfig', CREATE, [...without('--kubeconfig'), '--kubeconfig', 'rel.yaml'], /^error: --kubeconfig: must be an absolute path$/],
    ['bad subnet', CREATE, [...ok, '--subnet', '10.0.0.1/16'], /^error: --subnet: address must be the network address of the prefix$/],
    ['special-purpose subnet: loopback', CREATE, [...ok, '--subnet', '127.0.0.0/8'], /^error: --subnet: must not overlap a special-purpose range \(127\.0\.0\.0\/8 is loopback, RFC 1122\)$/],
    ['special-purpose subnet: inside "this network"', CREATE, [...ok, '--subnet', '0.0.0.0/8'], /^error: --subnet: must not overlap a special-purpose range \(0\.0\.0\.0\/8 is "this network", RFC 791\)$/],
    ['special-purpose subnet: around carrier NAT', CREATE, [...ok, '--subnet', '100.0.0.0/8'], /^error: --subnet: must not overlap a special-purpose range \(100\.64\.0\.0\/10 is shared address space/],
    ['special-purpose subnet: documentation', CREATE, [...ok, '--subnet', '203.0.113.0/24'], /^error: --subnet: must not overlap a special-purpose range \(203\.0\.113\.0\/24 is documentation TEST-NET-3, RFC 5737\)$/],
    ['subnet with kind', CREATE, [...without('--provider'), '--provider', 'kind', '--subnet', '10.0.0.0/16'], /^error: --subnet: only k3d clusters/],
    ['bad image', CREATE, [...ok, '--image', 'Nginx;rm'], /^error: --image: must be a docker image reference/],
    ['delete: missing --kubeconfig', DELETE, ['--name', 'dev', '--provider', 'kind'], /^error: --kubeconfig: is required$/],
    ['delete: unknown flag', DELETE, ['--name', 'dev', '--provider', 'kind', '--kubeconfig', kc, '--force', 'yes'], /^error: --force: unknown flag$/],
    ['cluster: no subcommand', CLUSTER, [], /^error: subcommand: is required/],
    ['cluster: unknown subcommand', CLUSTER, ['restart', '--name', 'dev'], /^error: restart: unknown subcommand/],
    ['cluster status: missing --provider', CLUSTER, ['status', '--name', 'dev'], /^error: --provider: is required$/],
    ['cluster stop: flag of another subcommand', CLUSTER, ['stop', '--name', 'dev', '--provider', 'k3d', '--image', 'x'], /^error: --image: unknown flag$/],
    ['cluster list: bad provider', CLUSTER, ['list', '--provider', 'docker'], /^error: --provider: must be k3d, kind or all$/],
    ['cluster import-image: missing --image', CLUSTER, ['import-image', '--name', 'dev', '--provider', 'k3d'], /^error: --image: is required$/],
    ['cluster start: bad --wait-timeout', CLUSTER, ['start', '--name', 'dev', '--provider', 'k3d', '--wait-timeout', '0'], /^error: --wait-timeout: must be a whole number 1-86400$/],
  ];
  for (const [title, script, args, re] of cases) {
    test(title, async () => {
      const sb = sandbox();
      const r = await run(script, args, sb);
      assert.equal(r.code, 2, show(r));
      assert.equal(r.stderr.length, 1, show(r));
      assert.match(r.stderr[0]!, re);
      assert.deepEqual(r.stdout, []);
      assert.ok(!existsSync(join(sb.fake, 'calls.log')), 'no provider tool was called');
      assert.ok(!existsSync(kc));
    });
  }
});
