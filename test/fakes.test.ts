/**
 * Tests for the fake k3d / kind / docker / kubectl executables in test/fixtures/bin.
 * Every test gets its own KINDLER_FAKE_DIR and HOME, so the tests run concurrently.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'bin');

interface Result { code: number; stdout: string; stderr: string }

function sandbox() {
  const root = mkdtempSync(path.join(tmpdir(), 'kindler-fakes-'));
  const fake = path.join(root, 'fake');
  const home = path.join(root, 'home');
  mkdirSync(fake);
  mkdirSync(home);
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${BIN}${path.delimiter}${process.env.PATH ?? ''}`, KINDLER_FAKE_DIR: fake, HOME: home };
  for (const k of ['KUBECONFIG', 'XDG_CONFIG_HOME', 'LOG_COLORS', 'LOG_TIMESTAMPS', 'KIND_CLUSTER_NAME', 'DOCKER_HOST', 'KIND_EXPERIMENTAL_DOCKER_NETWORK']) delete env[k];
  const run = (cmd: string, args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<Result> =>
    new Promise((resolve) => {
      execFile(cmd, args, { env: { ...env, ...extraEnv }, cwd: root }, (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      });
    });
  const control = (name: string, content = '') => {
    mkdirSync(path.join(fake, 'control'), { recursive: true });
    writeFileSync(path.join(fake, 'control', name), content);
  };
  const uncontrol = (name: string) => rmSync(path.join(fake, 'control', name), { force: true });
  return { root, fake, home, env, run, control, uncontrol, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}
type Sandbox = ReturnType<typeof sandbox>;

async function withSandbox(fn: (s: Sandbox) => Promise<void>) {
  const s = sandbox();
  try { await fn(s); } finally { s.cleanup(); }
}
function lines(s: string) { return s.split('\n').filter(Boolean); }

interface FakeContainer { name: string; state: string; labels: Record<string, string>; networks: Record<string, { ip: string }> }
interface FakeState { containers: FakeContainer[]; networks: { name: string; subnet: string | null }[] }
/** Read the fake engine's store directly (cheaper than a docker call for plain assertions). */
function store(s: Sandbox): FakeState {
  const f = path.join(s.fake, 'state.json');
  return existsSync(f) ? JSON.parse(readFileSync(f, 'utf8')) : { containers: [], networks: [] };
}
function names(s: Sandbox, label?: string): string[] {
  return store(s).containers.filter((c) => !label || label.split('=')[0]! in c.labels && (!label.includes('=') || c.labels[label.split('=')[0]!] === label.split('=')[1])).map((c) => c.name).sort();
}

describe('fake provider CLIs', { concurrency: true }, () => {
  test('every fake requires KINDLER_FAKE_DIR', async () => {
    await withSandbox(async (s) => {
      for (const tool of ['k3d', 'kubectl']) {
        const r = await s.run(tool, ['version'], { KINDLER_FAKE_DIR: '' });
        assert.equal(r.code, 2, tool);
        assert.match(r.stderr, /KINDLER_FAKE_DIR is not set/);
      }
    });
  });

  test('k3d: create / list / stop / start / delete round trip', async () => {
    await withSandbox(async (s) => {
      let r = await s.run('k3d', ['cluster', 'create', 'dev', '-a', '1', '-p', '18080:80@loadbalancer', '--api-port', '6550', '--kubeconfig-update-default=false']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr, '');
      assert.ok(r.stdout.includes('\x1b[36mINFO\x1b[0m[0000] portmapping \'18080:80\' targets the loadbalancer'), r.stdout);
      assert.match(r.stdout, /Cluster 'dev' created successfully!/);
      assert.match(r.stdout, /export KUBECONFIG=\$\(k3d kubeconfig write dev\)\nkubectl cluster-info\n$/);
      assert.equal(existsSync(path.join(s.home, '.kube', 'config')), false, 'must not touch the default kubeconfig');

      r = await s.run('k3d', ['cluster', 'list', '-o', 'json']);
      const [cl] = JSON.parse(r.stdout);
      assert.equal(cl.name, 'dev');
      assert.deepEqual([cl.serversRunning, cl.serversCount, cl.agentsRunning, cl.agentsCount, cl.hasLoadbalancer], [1, 1, 1, 1, true]);
      assert.deepEqual(cl.nodes.map((n: { name: string }) => n.name).sort(), ['k3d-dev-agent-0', 'k3d-dev-server-0', 'k3d-dev-serverlb']);
      assert.ok(cl.nodes.every((n: { State: { Running: boolean } }) => n.State.Running));

      r = await s.run('docker', ['ps', '--filter', 'label=app=k3d', '--filter', 'label=k3d.cluster=dev', '--format', '{{.Names}}\\t{{.Label "k3d.role"}}']);
      assert.deepEqual(lines(r.stdout).sort(), ['k3d-dev-agent-0\tagent', 'k3d-dev-server-0\tserver', 'k3d-dev-serverlb\tloadbalancer']);
      r = await s.run('docker', ['inspect', '-f', '{{json .NetworkSettings.Ports}}', 'k3d-dev-serverlb']);
      assert.match(r.stdout, /"6443\/tcp":\[\{"HostIp":"0.0.0.0","HostPort":"6550"\}\]/);
      assert.match(r.stdout, /"80\/tcp":\[\{"HostIp":"0.0.0.0","HostPort":"18080"\}/);
      assert.match(store(s).containers.find((c) => c.name === 'k3d-dev-server-0')!.networks['k3d-dev']!.ip, /^172\.18\.0\.\d+$/);

      r = await s.run('k3d', ['kubeconfig', 'write', 'dev']);
      const kc = r.stdout.trim();
      assert.equal(kc, path.join(s.home, '.config', 'k3d', 'kubeconfig-dev.yaml'));
      assert.match(readFileSync(kc, 'utf8'), /server: https:\/\/0\.0\.0\.0:6550/);

      r = await s.run('k3d', ['cluster', 'stop', 'dev']);
      assert.equal(r.code, 0);
      r = await s.run('docker', ['inspect', '-f', '{{.State.Running}} {{.State.Status}}', 'k3d-dev-server-0']);
      assert.equal(r.stdout, 'false exited\n');
      r = await s.run('kubectl', ['--kubeconfig', kc, 'get', 'nodes']);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /The connection to the server 0\.0\.0\.0:6550 was refused - did you specify the right host or port\?/);

      r = await s.run('k3d', ['cluster', 'start', 'dev']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /Started cluster 'dev'/);
      r = await s.run('kubectl', ['--kubeconfig', kc, 'wait', '--for=condition=Ready', 'nodes', '--all', '--timeout=5s']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'node/k3d-dev-agent-0 condition met\nnode/k3d-dev-server-0 condition met\n');

      r = await s.run('k3d', ['cluster', 'delete', 'dev']);
      assert.equal(r.code, 0);
      assert.match(r.stdout, /Deleting cluster network 'k3d-dev'[\s\S]*Successfully deleted cluster dev!/);
      assert.deepEqual(names(s), []);
      assert.equal(store(s).networks.some((n) => n.name === 'k3d-dev'), false);
      assert.equal(existsSync(kc), false, 'standalone kubeconfig removed');
      r = await s.run('k3d', ['cluster', 'delete', 'dev']);
      assert.equal(r.code, 0);
      assert.match(r.stdout, /No nodes found for cluster 'dev', nothing to delete\.[\s\S]*No clusters found/);
    });
  });

  test('k3d: default kubeconfig is merged and switched unless disabled', async () => {
    await withSandbox(async (s) => {
      const r = await s.run('k3d', ['cluster', 'create', 'dev', '--subnet', '10.101.0.0/16']);
      assert.equal(r.code, 0, r.stderr);
      const cfg = readFileSync(path.join(s.home, '.kube', 'config'), 'utf8');
      assert.match(cfg, /current-context: k3d-dev/);
      assert.equal((await s.run('kubectl', ['config', 'current-context'])).stdout, 'k3d-dev\n');
      assert.equal(store(s).networks.find((n) => n.name === 'k3d-dev')!.subnet, '10.101.0.0/16');
      await s.run('k3d', ['cluster', 'delete', 'dev']);
      assert.doesNotMatch(readFileSync(path.join(s.home, '.kube', 'config'), 'utf8'), /k3d-dev/);
    });
  });

  test('kind: create from a config with extraPortMappings, then delete', async () => {
    await withSandbox(async (s) => {
      const cfgFile = path.join(s.root, 'kind.yaml');
      writeFileSync(cfgFile, [
        'kind: Cluster',
        'apiVersion: kind.x-k8s.io/v1alpha4',
        'nodes:',
        '- role: control-plane',
        '  kubeadmConfigPatches:',
        '  - |',
        '    kind: InitConfiguration',
        '    nodeRegistration:',
        '      kubeletExtraArgs:',
        '        node-labels: "ingress-ready=true"',
        '  extraPortMappings:',
        '  - containerPort: 80',
        '    hostPort: 18093',
        '    protocol: TCP',
        '  - containerPort: 443',
        '    hostPort: 18446',
        '    listenAddress: "127.0.0.1"',
        '- role: worker',
        '',
      ].join('\n'));
      const kc = path.join(s.root, 'kubeconfig');
      let r = await s.run('kind', ['create', 'cluster', '--name', 'dev-a', '--config', cfgFile, '--kubeconfig', kc, '--wait', '60s']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, /^Creating cluster "dev-a" \.\.\.\n/);
      assert.ok(r.stderr.includes(' ✓ Preparing nodes 📦 📦 \n'), r.stderr);
      assert.ok(r.stderr.includes('Set kubectl context to "kind-dev-a"'));
      assert.ok(r.stderr.includes(`kubectl cluster-info --context kind-dev-a --kubeconfig ${kc}`));
      assert.equal(existsSync(path.join(s.home, '.kube', 'config')), false);

      assert.equal((await s.run('kind', ['get', 'clusters'])).stdout, 'dev-a\n');
      assert.deepEqual(lines((await s.run('kind', ['get', 'nodes', '--name', 'dev-a'])).stdout).sort(), ['dev-a-control-plane', 'dev-a-worker']);
      r = await s.run('docker', ['port', 'dev-a-control-plane']);
      assert.match(r.stdout, /^80\/tcp -> 0\.0\.0\.0:18093$/m);
      assert.match(r.stdout, /^443\/tcp -> 127\.0\.0\.1:18446$/m);
      assert.match(r.stdout, /^6443\/tcp -> 127\.0\.0\.1:\d+$/m);
      assert.match(store(s).containers.find((c) => c.name === 'dev-a-worker')!.networks.kind!.ip, /^172\.18\.0\.\d+$/);
      assert.match(readFileSync(kc, 'utf8'), /current-context: kind-dev-a/);
      r = await s.run('kubectl', ['--kubeconfig', kc, 'wait', '--for=condition=Ready', 'nodes', '--all', '--timeout=60s']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(lines(r.stdout).length, 2);

      // a docker stop of the control plane makes the API unreachable, the cluster stays listed
      assert.equal((await s.run('docker', ['stop', 'dev-a-control-plane'])).stdout, 'dev-a-control-plane\n');
      r = await s.run('kubectl', ['--kubeconfig', kc, 'get', 'nodes']);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /The connection to the server 127\.0\.0\.1:\d+ was refused/);

      r = await s.run('kind', ['delete', 'cluster', '--name', 'dev-a', '--kubeconfig', kc]);
      assert.equal(r.code, 0);
      assert.match(r.stderr, /Deleting cluster "dev-a" \.\.\.\nDeleted nodes: \["dev-a-(control-plane|worker)" "dev-a-(control-plane|worker)"\]\n/);
      assert.deepEqual(names(s), []);
      assert.match(readFileSync(kc, 'utf8'), /current-context: ""/);
      r = await s.run('kind', ['get', 'clusters']);
      assert.equal(r.stdout, '');
      assert.equal(r.stderr, 'No kind clusters found.\n');
    });
  });

  test('kind: config decoding is strict', async () => {
    await withSandbox(async (s) => {
      const f = path.join(s.root, 'bad.yaml');
      writeFileSync(f, 'kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n  extraPortMapping:\n  - containerPort: 80\n');
      let r = await s.run('kind', ['create', 'cluster', '--config', f]);
      assert.equal(r.code, 1);
      assert.equal(r.stderr, 'ERROR: failed to create cluster: unable to decode config: yaml: unmarshal errors:\n  line 5: field extraPortMapping not found in type v1alpha4.Node\n');
      writeFileSync(f, 'kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha3\n');
      r = await s.run('kind', ['create', 'cluster', '--config', f]);
      assert.match(r.stderr, /unknown apiVersion: kind\.x-k8s\.io\/v1alpha3/);
      r = await s.run('kind', ['create', 'cluster', '--name', 'Bad_Name']);
      assert.match(r.stderr, /'Bad_Name' is not a valid cluster name/);
      assert.deepEqual(names(s), []);
    });
  });

  test('a host port taken by another cluster fails the create and leaves nothing behind', async () => {
    await withSandbox(async (s) => {
      let r = await s.run('k3d', ['cluster', 'create', 'a', '-p', '18080:80@loadbalancer', '--kubeconfig-update-default=false']);
      assert.equal(r.code, 0, r.stderr);
      const before = store(s).networks.map((n) => n.name);

      r = await s.run('k3d', ['cluster', 'create', 'b', '-p', '18080:80@loadbalancer', '--kubeconfig-update-default=false']);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /ERRO.*Failed Cluster Start: Failed to add one or more helper nodes: .*Bind for 0\.0\.0\.0:18080 failed: port is already allocated/);
      assert.match(r.stderr, /Failed to create cluster >>> Rolling Back[\s\S]*FATA.*Cluster creation FAILED, all changes have been rolled back!/);
      assert.match(r.stdout, /Deleting cluster 'b'/);
      assert.deepEqual(names(s, 'k3d.cluster=b'), []);
      assert.deepEqual(store(s).networks.map((n) => n.name), before);

      const cfg = path.join(s.root, 'kind.yaml');
      writeFileSync(cfg, 'kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n  extraPortMappings:\n  - containerPort: 80\n    hostPort: 18080\n- role: worker\n');
      r = await s.run('kind', ['create', 'cluster', '--name', 'c', '--config', cfg]);
      assert.equal(r.code, 1);
      assert.ok(r.stderr.includes(' ✗ Preparing nodes 📦 📦 \n'), r.stderr);
      assert.match(r.stderr, /Deleted nodes: \[/);
      assert.match(r.stderr, /ERROR: failed to create cluster: command "docker run --name c-control-plane .*--publish=0\.0\.0\.0:18080:80\/TCP.*" failed with error: exit status 125\nCommand Output: [0-9a-f]{64}\ndocker: Error response from daemon: .*Bind for 0\.0\.0\.0:18080 failed: port is already allocated/);
      assert.deepEqual(names(s, 'io.x-k8s.kind.cluster=c'), []);
      assert.equal(existsSync(path.join(s.home, '.kube', 'config')), false);
    });
  });

  test('unknown flags and commands fail like the real tools', async () => {
    await withSandbox(async (s) => {
      let r = await s.run('k3d', ['cluster', 'create', 'x', '--bogus']);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /^Error: unknown flag: --bogus\n/);
      assert.match(r.stderr, /FATA.*unknown flag: --bogus/);
      r = await s.run('k3d', ['cluster', 'create', 'x', '-a', 'two']);
      assert.match(r.stderr, /invalid argument "two" for "-a, --agents" flag: strconv\.ParseInt: parsing "two": invalid syntax/);
      r = await s.run('k3d', ['cluster', 'create', 'Bad_Name']);
      assert.match(r.stderr, /Failed Cluster Configuration Validation: {2}provided cluster name 'Bad_Name' does not match requirements: Invalid cluster name\. name Bad_Name is not a valid hostname as per RFC 1123/);
      r = await s.run('kind', ['create', 'cluster', '--nme', 'x']);
      assert.deepEqual([r.code, r.stderr], [1, 'ERROR: unknown flag: --nme\n']);
      r = await s.run('docker', ['ps', '--bogus']);
      assert.equal(r.code, 125);
      assert.match(r.stderr, /^unknown flag: --bogus\n\nUsage:  docker ps \[OPTIONS\]/);
      r = await s.run('docker', ['frobnicate']);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /docker: unknown command: docker frobnicate/);
      r = await s.run('kubectl', ['get', 'nodes', '--bogus']);
      assert.deepEqual([r.code, r.stderr], [1, "error: unknown flag: --bogus\nSee 'kubectl get --help' for usage.\n"]);
      r = await s.run('k3d', ['cluster', 'create', 'x', '--registry-create', 'reg']);
      assert.equal(r.code, 3);
      assert.match(r.stderr, /^fake-k3d: unsupported: cluster create x --registry-create reg/);
      assert.deepEqual(names(s), []);
    });
  });

  test('docker-down makes docker, k3d and kind fail as with an unreachable daemon', async () => {
    await withSandbox(async (s) => {
      s.control('docker-down');
      const msg = 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?';
      let r = await s.run('docker', ['ps']);
      assert.deepEqual([r.code, r.stderr], [1, msg + '\n']);
      r = await s.run('docker', ['info']);
      assert.equal(r.code, 1);
      assert.match(r.stdout, /Server:\n$/);
      r = await s.run('k3d', ['cluster', 'list']);
      assert.equal(r.code, 1);
      assert.ok(r.stderr.includes('runtime failed to list nodes') && r.stderr.includes(msg));
      r = await s.run('k3d', ['cluster', 'create', 'x']);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /Cluster creation FAILED, also FAILED to rollback changes!/);
      r = await s.run('kind', ['create', 'cluster']);
      assert.equal(r.code, 1);
      assert.ok(r.stderr.startsWith('ERROR: failed to create cluster: failed to get docker info'));
      s.uncontrol('docker-down');
      assert.equal((await s.run('docker', ['ps'])).code, 0);
    });
  });

  test('fail rules: fail + once, fail-after-partial, per-command rules', async () => {
    await withSandbox(async (s) => {
      s.control('k3d.cluster-create', 'fail 4 boom\nonce\n');
      let r = await s.run('k3d', ['cluster', 'create', 'x', '--kubeconfig-update-default=false']);
      assert.equal(r.code, 4);
      assert.match(r.stderr, /Failed Cluster Start: .*boom[\s\S]*all changes have been rolled back!/);
      assert.equal(existsSync(path.join(s.fake, 'control', 'k3d.cluster-create')), false, 'once removes the rule');
      assert.deepEqual(names(s), []);
      r = await s.run('k3d', ['cluster', 'create', 'x', '--kubeconfig-update-default=false']);
      assert.equal(r.code, 0, r.stderr);

      s.control('kind.create-cluster', 'fail-after-partial');
      r = await s.run('kind', ['create', 'cluster', '--name', 'p']);
      assert.equal(r.code, 1);
      assert.ok(r.stderr.includes(' ✗ Starting control-plane 🕹️\n'));
      assert.doesNotMatch(r.stderr, /Deleted nodes/);
      assert.deepEqual(names(s, 'io.x-k8s.kind.cluster=p'), ['p-control-plane']);

      s.control('k3d.cluster-create', 'fail-after-partial');
      r = await s.run('k3d', ['cluster', 'create', 'y', '--kubeconfig-update-default=false']);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /Cluster creation FAILED, rollback deactivated\./);
      assert.deepEqual(names(s, 'k3d.cluster=y'), ['k3d-y-server-0', 'k3d-y-serverlb']);

      s.control('docker.start', 'fail 1 injected start failure');
      r = await s.run('docker', ['start', 'k3d-x-server-0']);
      assert.deepEqual([r.code, r.stderr], [1, 'Error response from daemon: injected start failure\n']);
      s.control('kubectl.wait', 'fail');
      r = await s.run('kubectl', ['wait', '--for=condition=Ready', 'nodes', '--all']);
      assert.deepEqual([r.code, r.stderr], [1, 'error: timed out waiting for the condition\n']);
    });
  });

  test('kubectl: readiness from the fake docker store, context errors', async () => {
    await withSandbox(async (s) => {
      let r = await s.run('kubectl', ['get', 'nodes']);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /The connection to the server localhost:8080 was refused/);
      assert.equal((await s.run('k3d', ['cluster', 'create', 'dev', '--servers', '1'])).code, 0);
      r = await s.run('kubectl', ['get', 'nodes', '-o', 'json']);
      const list = JSON.parse(r.stdout);
      assert.equal(list.kind, 'List');
      assert.deepEqual(list.items.map((n: { metadata: { name: string } }) => n.metadata.name), ['k3d-dev-server-0']);
      r = await s.run('kubectl', ['get', 'nodes', '-o', 'jsonpath={.items[*].status.conditions[?(@.type=="Ready")].status}']);
      assert.equal(r.stdout, 'True');

      s.control('nodes-not-ready', 'dev\n');
      r = await s.run('kubectl', ['wait', '--for=condition=Ready', 'nodes', '--all', '--timeout=200ms']);
      assert.deepEqual([r.code, r.stderr], [1, 'error: timed out waiting for the condition on nodes/k3d-dev-server-0\n']);
      s.uncontrol('nodes-not-ready');
      r = await s.run('kubectl', ['--context', 'k3d-dev', 'wait', '--for=condition=Ready', 'nodes', '--all', '--timeout=60s']);
      assert.deepEqual([r.code, r.stdout], [0, 'node/k3d-dev-server-0 condition met\n']);

      r = await s.run('kubectl', ['--context', 'nope', 'get', 'nodes']);
      assert.deepEqual([r.code, r.stderr], [1, 'Error in configuration: context was not found for specified context: nope\n']);
      assert.equal((await s.run('kubectl', ['config', 'get-contexts', '-o', 'name'])).stdout, 'k3d-dev\n');
    });
  });

  test('hang mid-create: progress is visible, SIGTERM kills it, leftovers stay', async () => {
    await withSandbox(async (s) => {
      s.control('k3d.cluster-create', 'hang\n');
      const child = spawn('k3d', ['cluster', 'create', 'h', '--kubeconfig-update-default=false'], { env: s.env, cwd: s.root });
      let stdout = '';
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); if (stdout.includes("Starting node 'k3d-h-server-0'")) resolve(); });
        child.on('exit', () => reject(new Error(`exited early: ${stdout}`)));
      });
      const r = await s.run('docker', ['ps', '-a', '--filter', 'label=k3d.cluster=h', '--format', '{{.Names}} {{.State}}']);
      assert.deepEqual(lines(r.stdout).sort(), ['k3d-h-server-0 running', 'k3d-h-serverlb created']);
      const exited = new Promise<string | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
      child.kill('SIGTERM');
      assert.equal(await exited, 'SIGTERM');
      assert.deepEqual(names(s, 'k3d.cluster=h'), ['k3d-h-server-0', 'k3d-h-serverlb']);
      assert.equal(existsSync(path.join(s.fake, 'state.lock')), false, 'the lock is not held while hanging');
    });
  });

  test('kubectl apply -f and wait --for=condition=available on a Deployment: real output, strict input', async () => {
    await withSandbox(async (s) => {
      const kc = path.join(s.root, 'kubeconfig');
      const cfgFile = path.join(s.root, 'kind.yaml');
      const labelled = (label: boolean) => ['apiVersion: kind.x-k8s.io/v1alpha4', 'kind: Cluster', 'nodes:', '- role: control-plane', ...(label ? ['  labels:', '    ingress-ready: "true"'] : []), ''].join('\n');
      writeFileSync(cfgFile, labelled(false));
      assert.equal((await s.run('kind', ['create', 'cluster', '--name', 'ing', '--config', cfgFile, '--kubeconfig', kc])).code, 0);
      const file = path.join(s.root, 'app.yaml');
      const deployment = ['apiVersion: apps/v1', 'kind: Deployment', 'metadata:', '  name: web', '  namespace: demo', 'spec:', '  template:', '    spec:', '      nodeSelector:', '        ingress-ready: "true"', '      tolerations:', '      - key: node-role.kubernetes.io/control-plane', '        operator: Equal', '        effect: NoSchedule'];
      writeFileSync(file, ['---', 'apiVersion: v1', 'kind: Namespace', 'metadata:', '  name: demo', '---', ...deployment, ''].join('\n'));
      let r = await s.run('kubectl', ['--kubeconfig', kc, 'apply', '-f', file]);
      assert.deepEqual([r.code, r.stdout, r.stderr], [0, 'namespace/demo created\ndeployment.apps/web created\n', '']);
      r = await s.run('kubectl', ['--kubeconfig', kc, 'apply', '-f', file]);
      assert.equal(r.stdout, 'namespace/demo unchanged\ndeployment.apps/web unchanged\n');
      // No node carries the label: never available.
      r = await s.run('kubectl', ['--kubeconfig', kc, '-n', 'demo', 'wait', '--for=condition=available', 'deployment/web', '--timeout=200ms']);
      assert.deepEqual([r.code, r.stderr], [1, 'error: timed out waiting for the condition on deployments/web\n']);
      r = await s.run('kubectl', ['--kubeconfig', kc, 'wait', '--for=condition=available', 'deployment/web', '--timeout=1s']);
      assert.deepEqual([r.code, r.stderr], [1, 'Error from server (NotFound): deployments.apps "web" not found\n']);
      // Strictness: a namespace that does not exist, an unknown kind, no -f, a path that is not there.
      writeFileSync(file, [...deployment.map((l) => l.replace('namespace: demo', 'namespace: nope')), ''].join('\n'));
      r = await s.run('kubectl', ['--kubeconfig', kc, 'apply', '-f', file]);
      assert.deepEqual([r.code, r.stderr], [1, `Error from server (NotFound): error when creating "${file}": namespaces "nope" not found\n`]);
      writeFileSync(file, 'apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n');
      r = await s.run('kubectl', ['--kubeconfig', kc, 'apply', '-f', file]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /^error: resource mapping not found for name: "w" namespace: "" from ".*": no matches for kind "Widget" in version "example.com\/v1"\nensure CRDs are installed first\n$/);
      assert.deepEqual(await s.run('kubectl', ['--kubeconfig', kc, 'apply']), { code: 1, stdout: '', stderr: 'error: must specify one of -f and -k\n' });
      assert.equal((await s.run('kubectl', ['--kubeconfig', kc, 'apply', '-f', path.join(s.root, 'missing.yaml')])).stderr, `error: the path "${path.join(s.root, 'missing.yaml')}" does not exist\n`);
      assert.equal((await s.run('kubectl', ['--kubeconfig', kc, 'apply', '-f', 'https://example.com/x.yaml'])).code, 3);
      assert.equal((await s.run('kubectl', ['--kubeconfig', kc, 'apply', '-f', file, '--bogus'])).stderr, "error: unknown flag: --bogus\nSee 'kubectl apply --help' for usage.\n");

      // A labelled control plane: the deployment fits (taint tolerated) and becomes available.
      assert.equal((await s.run('kind', ['delete', 'cluster', '--name', 'ing', '--kubeconfig', kc])).code, 0);
      writeFileSync(cfgFile, labelled(true));
      assert.equal((await s.run('kind', ['create', 'cluster', '--name', 'ing', '--config', cfgFile, '--kubeconfig', kc])).code, 0);
      writeFileSync(file, ['apiVersion: v1', 'kind: Namespace', 'metadata:', '  name: demo', '---', ...deployment, ''].join('\n'));
      assert.equal((await s.run('kubectl', ['--kubeconfig', kc, 'apply', '-f', file])).code, 0);
      r = await s.run('kubectl', ['--kubeconfig', kc, '-n', 'demo', 'wait', '--for=condition=available', 'deployment/web', '--timeout=5s']);
      assert.deepEqual([r.code, r.stdout], [0, 'deployment.apps/web condition met\n']);
      // Without the toleration the control-plane taint keeps it off the only node.
      writeFileSync(file, [...deployment.slice(0, 10), ''].join('\n'));
      assert.equal((await s.run('kubectl', ['--kubeconfig', kc, 'apply', '-f', file])).stdout, 'deployment.apps/web configured\n');
      r = await s.run('kubectl', ['--kubeconfig', kc, '-n', 'demo', 'wait', '--for=condition=available', 'deployment/web', '--timeout=200ms']);
      assert.equal(r.code, 1);
    });
  });

  test('calls.log records every invocation', async () => {
    await withSandbox(async (s) => {
      await s.run('docker', ['ps', '-a']);
      await s.run('kind', ['get', 'clusters']);
      const calls = readFileSync(path.join(s.fake, 'calls.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      assert.deepEqual(calls.map((c) => [c.tool, c.argv]), [['docker', ['ps', '-a']], ['kind', ['get', 'clusters']]]);
      assert.equal(calls[0].cwd, s.root);
      assert.ok(!Number.isNaN(Date.parse(calls[0].time)));
    });
  });
});
