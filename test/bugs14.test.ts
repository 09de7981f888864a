/**
 * Issue 14, section 3 ("Bugs found trying it"): retries reuse everything recorded, adopt reads the real
 * ports and writes the kubeconfig, failure reasons are the line that says what failed, kind and k3d name
 * limits that fit the node names, and a failed record is not drift. The engine in-process, against the
 * fake provider tools; the scripts' own helpers through bash.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Principal } from '../src/commands/index.js';
import { nameProblem, NAME_LIMIT } from '../src/core/names.js';
import { pickErrorLine } from '../src/core/errorline.js';
import { runReconcile } from '../src/cron/jobs.js';
import { ROOT, verb, withEngine, type World } from './helpers.js';

const op1: Principal = { user: 'op1', source: 'test', role: 'operator' };
const oneLine = (s: string) => s.trim().split('\n').length === 1;

/** The argv of the last `<tool> …` call whose argv contains `word`. */
function lastCall(w: World, tool: string, word: string): string[] {
  const lines = w
    .calls()
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { tool: string; argv: string[] });
  const hit = lines.filter((l) => l.tool === tool && l.argv.includes(word)).at(-1);
  assert.ok(hit, `no ${tool} call with ${word}`);
  return hit.argv;
}

// ---- 1: a retry reuses everything recorded --------------------------------------------------------

test('a retry of a failed kind create reuses its provider, agents and image, and says so', async (t) => {
  const { w, engine } = await withEngine(t);
  w.rule('kind.create-cluster', 'fail 1 boom');
  const first = await verb(engine, ['create', 'dev1', '--provider', 'kind', '--agents', '2', '--image', 'kindest/node:v1.31.0', '--wait'], op1);
  assert.equal(first.code, 1, first.err);
  const before = engine.getCluster('dev1')!;
  assert.equal(before.actual, 'failed');
  w.clearRule('kind.create-cluster');

  // No flags at all: before the fix the verb filled provider k3d and agents 0 from the config.
  const retry = await verb(engine, ['create', 'dev1', '--wait', '--json'], op1);
  assert.equal(retry.code, 0, retry.out + retry.err);
  const c = engine.getCluster('dev1')!;
  assert.deepEqual([c.provider, c.servers, c.agents, c.image, c.actual], ['kind', 1, 2, 'kindest/node:v1.31.0', 'running']);
  assert.deepEqual([c.httpPort, c.httpsPort, c.apiPort], [before.httpPort, before.httpsPort, before.apiPort]);
  assert.deepEqual(w.containers('dev1').sort(), ['dev1-control-plane', 'dev1-worker', 'dev1-worker2']);
  assert.ok(lastCall(w, 'kind', 'create').includes('kindest/node:v1.31.0'));

  const line = `retrying dev1 with its recorded settings: provider kind; servers 1; agents 2; image kindest/node:v1.31.0; ports http ${before.httpPort}, https ${before.httpsPort}, api ${before.apiPort}; subnet (none); expires never; route on; register none`;
  const task = JSON.parse(retry.out).task;
  assert.equal(task.params.retry, line);
  const log = await engine.readLog(task.id);
  assert.ok(log.includes(`[kindler] ${line}`), log.join('\n'));
});

test('the verb prints the retry line; an explicit other provider on a retry is refused and changes nothing', async (t) => {
  const { w, engine } = await withEngine(t);
  w.rule('kind.create-cluster', 'fail 1 boom');
  assert.equal((await verb(engine, ['create', 'dev2', '--provider', 'kind', '--wait'], op1)).code, 1);
  const before = engine.getCluster('dev2')!;
  const tasks = engine.listTasks().length;
  const r = await verb(engine, ['create', 'dev2', '--provider', 'k3d'], op1);
  assert.equal(r.code, 4, r.err);
  assert.equal(
    r.err,
    'error: provider: cluster "dev2" is recorded as kind; a retry keeps its provider (omit --provider, or delete it first to change provider)\n',
  );
  assert.deepEqual(engine.getCluster('dev2'), before);
  assert.equal(engine.listTasks().length, tasks);

  const again = await verb(engine, ['create', 'dev2'], op1);
  assert.equal(again.code, 0, again.err);
  assert.match(
    again.out,
    /^retrying dev2 with its recorded settings: provider kind; servers 1; agents 0; image \(the provider's default\); ports http \d+, https \d+, api \d+; subnet \(none\); expires never; route on; register none\ntask t-\d+: create dev2 queued/,
  );
  await engine.idle();
});

test('imported rows: a kind row retries without --provider, a k3d row keeps its subnet', async (t) => {
  const { w, engine } = await withEngine(t);
  const csv = join(w.dir, 'environments.csv');
  writeFileSync(csv, 'impk3d,k3d,,,false,false,,,10.140.0.0/16\nimpkind,kind,,,false,false,,,\n');
  const imp = await verb(engine, ['import-csv', csv]);
  assert.equal(imp.code, 0, imp.out + imp.err);
  await engine.idle();
  assert.equal(engine.getCluster('impkind')!.actual, 'absent');

  const kind = await verb(engine, ['create', 'impkind', '--wait']);
  assert.equal(kind.code, 0, kind.out + kind.err);
  assert.match(kind.out, /^retrying impkind with its recorded settings: provider kind;/);
  assert.equal(engine.getCluster('impkind')!.actual, 'running');

  const k3d = await verb(engine, ['create', 'impk3d', '--wait']);
  assert.equal(k3d.code, 0, k3d.out + k3d.err);
  const argv = lastCall(w, 'k3d', 'create');
  assert.equal(argv[argv.indexOf('--subnet') + 1], '10.140.0.0/16');
  assert.equal(engine.getCluster('impk3d')!.subnet, '10.140.0.0/16');
});

test('config defaults apply to new records only: a retry keeps its recorded counts and expiry', async (t) => {
  const { w, engine } = await withEngine(t, { defaults: { provider: 'kind', servers: 1, agents: 1, ttl: '3h' } });
  w.rule('kind.create-cluster', 'fail 1 boom');
  assert.equal((await verb(engine, ['create', 'fresh', '--wait'], op1)).code, 1);
  const made = engine.getCluster('fresh')!;
  assert.deepEqual([made.provider, made.agents], ['kind', 1], 'a new record takes the config defaults');
  const left = Date.parse(made.expiresAt!) - Date.now();
  assert.ok(left > 2.9 * 3600_000 && left <= 3 * 3600_000, `expires in ${left} ms`);

  // A record with an explicit --ttl and agents: a retry keeps both (the config's default ttl is not re-applied).
  assert.equal((await verb(engine, ['create', 'timed', '--agents', '0', '--ttl', '2h', '--wait'], op1)).code, 1);
  const timed = engine.getCluster('timed')!;
  assert.equal((await verb(engine, ['create', 'timed', '--wait'], op1)).code, 1);
  const after = engine.getCluster('timed')!;
  assert.equal(after.expiresAt, timed.expiresAt);
  assert.equal(after.agents, 0);
  // An explicit --ttl on the retry sets a new expiry.
  assert.equal((await verb(engine, ['create', 'timed', '--ttl', '5h', '--wait'], op1)).code, 1);
  assert.ok(Date.parse(engine.getCluster('timed')!.expiresAt!) - Date.now() > 4.9 * 3600_000);
});

test('a retry without --ttl keeps the recorded expiry (it was dropped when the config has no default ttl)', async (t) => {
  const { w, engine } = await withEngine(t);
  w.rule('k3d.cluster-create', 'fail 1 boom');
  assert.equal((await verb(engine, ['create', 'dev3', '--ttl', '2h', '--wait'], op1)).code, 1);
  const expiresAt = engine.getCluster('dev3')!.expiresAt;
  assert.ok(expiresAt);
  assert.equal((await verb(engine, ['create', 'dev3', '--wait'], op1)).code, 1);
  assert.equal(engine.getCluster('dev3')!.expiresAt, expiresAt);
});

// ---- 2: adopt reads the real ports and writes the kubeconfig --------------------------------------

function tool(w: World, bin: string, args: string[]): void {
  execFileSync(bin, args, { env: w.env, stdio: 'pipe' });
}

test('adopt records the ports docker publishes (k3d serverlb, kind control plane) and writes a 0600 kubeconfig', async (t) => {
  const { w, engine } = await withEngine(t);
  const p = w.cfg.ports;
  tool(w, 'k3d', [
    'cluster',
    'create',
    'stray',
    '--kubeconfig-update-default=false',
    '--api-port',
    `127.0.0.1:${p.api.to}`,
    '-p',
    `${p.http.to}:80@loadbalancer`,
    '-p',
    `${p.https.to}:443@loadbalancer`,
    '--agents',
    '1',
  ]);
  const kindCfg = join(w.dir, 'kind.yaml');
  writeFileSync(
    kindCfg,
    [
      'apiVersion: kind.x-k8s.io/v1alpha4',
      'kind: Cluster',
      'networking:',
      `  apiServerPort: ${p.api.to - 1}`,
      'nodes:',
      '- role: control-plane',
      '  extraPortMappings:',
      '  - containerPort: 80',
      `    hostPort: ${p.http.to - 1}`,
      '  - containerPort: 443',
      `    hostPort: ${p.https.to - 1}`,
      '- role: worker',
      '- role: worker',
      '',
    ].join('\n'),
  );
  tool(w, 'kind', ['create', 'cluster', '--name', 'kx', '--config', kindCfg, '--kubeconfig', join(w.dir, 'kind-own.kubeconfig')]);

  const a = await verb(engine, ['adopt', 'stray', '--provider', 'k3d']);
  assert.equal(a.code, 0, a.err);
  const c = engine.getCluster('stray')!;
  assert.deepEqual(
    [c.httpPort, c.httpsPort, c.apiPort, c.servers, c.agents, c.actual, c.desired],
    [p.http.to, p.https.to, p.api.to, 1, 1, 'running', 'present'],
  );
  assert.equal(c.kubeconfig, join(w.dataDir, 'kubeconfig', 'stray.yaml'));
  assert.equal(statSync(c.kubeconfig).mode & 0o777, 0o600);
  assert.match(readFileSync(c.kubeconfig, 'utf8'), /current-context: k3d-stray/);
  assert.equal(c.lastError, undefined);

  const k = await verb(engine, ['adopt', 'kx', '--provider', 'kind']);
  assert.equal(k.code, 0, k.err);
  const kx = engine.getCluster('kx')!;
  assert.deepEqual([kx.httpPort, kx.httpsPort, kx.apiPort, kx.servers, kx.agents], [p.http.to - 1, p.https.to - 1, p.api.to - 1, 1, 2]);
  assert.equal(statSync(kx.kubeconfig).mode & 0o777, 0o600);
  assert.match(readFileSync(kx.kubeconfig, 'utf8'), /kind-kx/);
  // ~/.kube/config is never written.
  assert.equal(existsSync(join(w.home, '.kube', 'config')), false);
  assert.deepEqual(readdirSync(join(w.dataDir, 'kubeconfig')).sort(), ['kx.yaml', 'stray.yaml']);
});

test('adopt of a stopped k3d cluster reads its port bindings; a cluster without ingress ports or with a taken port is refused, nothing kept', async (t) => {
  const { w, engine } = await withEngine(t);
  const p = w.cfg.ports;
  tool(w, 'k3d', [
    'cluster',
    'create',
    'nap',
    '--kubeconfig-update-default=false',
    '--api-port',
    `127.0.0.1:${p.api.to}`,
    '-p',
    `${p.http.to}:80@loadbalancer`,
    '-p',
    `${p.https.to}:443@loadbalancer`,
  ]);
  tool(w, 'k3d', ['cluster', 'stop', 'nap']);
  const a = await verb(engine, ['adopt', 'nap', '--provider', 'k3d']);
  assert.equal(a.code, 0, a.err);
  const nap = engine.getCluster('nap')!;
  assert.deepEqual([nap.httpPort, nap.httpsPort, nap.apiPort, nap.actual, nap.desired], [p.http.to, p.https.to, p.api.to, 'stopped', 'stopped']);

  tool(w, 'kind', ['create', 'cluster', '--name', 'bare', '--kubeconfig', join(w.dir, 'kind-own.kubeconfig')]);
  const bare = await verb(engine, ['adopt', 'bare', '--provider', 'kind']);
  assert.equal(bare.code, 1, bare.err);
  assert.ok(oneLine(bare.err), bare.err);
  assert.match(
    bare.err,
    /^error: adopt: cannot read kind cluster "bare" from docker: kind cluster bare publishes no host port for ingress HTTP \(80\/tcp on bare-control-plane\)/,
  );
  assert.equal(engine.getCluster('bare'), undefined);

  // A second cluster publishing a port another record holds (the record is stale, the cluster real).
  tool(w, 'k3d', ['cluster', 'delete', 'nap']);
  tool(w, 'k3d', [
    'cluster',
    'create',
    'twin',
    '--kubeconfig-update-default=false',
    '--api-port',
    `127.0.0.1:${p.api.to - 5}`,
    '-p',
    `${p.http.to}:80@loadbalancer`,
    '-p',
    `${p.https.to - 5}:443@loadbalancer`,
  ]);
  const twin = await verb(engine, ['adopt', 'twin', '--provider', 'k3d']);
  assert.equal(twin.code, 4, twin.err);
  assert.equal(twin.err, `error: http-port: k3d cluster "twin" publishes it on ${p.http.to}, which cluster "nap" has recorded; it cannot be adopted\n`);
  assert.equal(engine.getCluster('twin'), undefined);
  assert.deepEqual(readdirSync(join(w.dataDir, 'kubeconfig')), ['nap.yaml'], 'no kubeconfig is kept for a refused adoption');
});

// ---- 3: the reason is the line that says what failed ----------------------------------------------

test("a kind create failing in kubeadm: the reason is the ERROR line with its command output, not kubeadm's stack-trace hint", async (t) => {
  const { w, engine } = await withEngine(t);
  w.rule('kind.create-cluster', "fail 1 error execution phase wait-control-plane: couldn't initialize a Kubernetes cluster");
  const r = await verb(engine, ['create', 'kfail', '--provider', 'kind', '--wait', '--json']);
  assert.equal(r.code, 1);
  const reason: string = JSON.parse(r.out).task.error.reason;
  assert.doesNotMatch(reason, /stack trace/);
  assert.match(
    reason,
    /^kind create cluster failed \(exit 1\): failed to create cluster: failed to init node with kubeadm: command "docker exec --privileged kfail-control-p\.\.\." failed with error: exit status 1 \(command output: error execution phase wait-control-plane: couldn't initialize a Kubernetes cluster\)$/,
  );
  assert.match(engine.getCluster('kfail')!.lastError!, /couldn't initialize a Kubernetes cluster\)$/);
});

/** kd_pick_error_line (scripts/lib/common.sh) over a stderr transcript. */
function pick(w: World, stderr: string): string {
  const file = join(w.dir, `stderr-${Math.random().toString(36).slice(2)}.txt`);
  writeFileSync(file, stderr);
  const r = spawnSync('bash', ['-c', 'source "$1"; kd_pick_error_line "$2"; printf "%s" "$REPLY"', 'pick', join(ROOT, 'scripts', 'lib', 'common.sh'), file], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

test('kd_pick_error_line and pickErrorLine pick the line that says what failed, for every tool', async (t) => {
  const { w } = await withEngine(t);
  const cases: [string, string[], string, string?][] = [
    [
      'kind, kubeadm',
      [
        'Creating cluster "dev" ...',
        ' ✗ Starting control-plane 🕹️',
        'Deleted nodes: ["dev-control-plane"]',
        'ERROR: failed to create cluster: failed to init node with kubeadm: command "docker exec --privileged dev-control-plane kubeadm init --config=/kind/kubeadm.conf --skip-token-print --v=6" failed with error: exit status 1',
        'Command Output: I1203 06:00:00.000000 123 initconfiguration.go:260] loading configuration',
        '[init] Using Kubernetes version: v1.33.1',
        "error execution phase wait-control-plane: couldn't initialize a Kubernetes cluster",
        'To see the stack trace of this error execute with --v=5 or higher',
      ],
      'failed to create cluster: failed to init node with kubeadm: command "docker exec --privileged dev-control-pla..." failed with error: exit status 1 (command output: error execution phase wait-control-plane: couldn\'t initialize a Kubernetes cluster)',
      'ERROR: failed to create cluster: failed to init node with kubeadm: command "docker exec --privileged dev-control-plane kubeadm init --config=/kind/kubeadm.conf --skip-token-print --v=6" failed with error: exit status 1',
    ],
    [
      'kind, port taken',
      [
        'ERROR: failed to create cluster: command "docker run --name dev-control-plane --hostname dev-control-plane --publish=0.0.0.0:8080:80/TCP kindest/node:v1.33.1" failed with error: exit status 125',
        'Command Output: 5f2c1d',
        'docker: Error response from daemon: driver failed programming external connectivity on endpoint dev-control-plane: Bind for 0.0.0.0:8080 failed: port is already allocated',
        '',
        "Run 'docker run --help' for more information",
      ],
      'failed to create cluster: command "docker run --name dev-control-plane --ho..." failed with error: exit status 125 (command output: Error response from daemon: driver failed programming external connectivity on endpoint dev-control-plane: Bind for 0.0.0.0:8080 failed: port is already allocated)',
    ],
    [
      'k3d, rolled back',
      [
        '\x1b[31mERRO\x1b[0m[0012] Failed Cluster Start: Failed to add one or more helper nodes: Bind for 0.0.0.0:443 failed: port is already allocated ',
        '\x1b[31mERRO\x1b[0m[0012] Failed to create cluster >>> Rolling Back ',
        '\x1b[31mERRO\x1b[0m[0012] failed to get cluster: No nodes found for given cluster ',
        '\x1b[31mFATA\x1b[0m[0012] Cluster creation FAILED, also FAILED to rollback changes! ',
      ],
      'Failed Cluster Start: Failed to add one or more helper nodes: Bind for 0.0.0.0:443 failed: port is already allocated',
    ],
    ['k3d, logfmt', ['time="2026-01-01T00:00:00Z" level=fatal msg="No nodes found for given cluster"', 'trailing noise'], 'No nodes found for given cluster'],
    ['kubectl wait', ['error: timed out waiting for the condition on nodes/k3d-dev-server-0'], 'timed out waiting for the condition on nodes/k3d-dev-server-0'],
    [
      'kubectl, refused',
      [
        "E1203 06:00:00.000000 1 memcache.go:265] couldn't get current server API group list: connect: connection refused",
        'The connection to the server 127.0.0.1:6550 was refused - did you specify the right host or port?',
      ],
      'The connection to the server 127.0.0.1:6550 was refused - did you specify the right host or port?',
    ],
    [
      'docker start',
      ['Error response from daemon: No such container: x', 'Error: failed to start containers: x'],
      'Error response from daemon: No such container: x',
    ],
    ['no error line', ['something went wrong', ''], 'something went wrong'],
  ];
  for (const [what, lines, want, wantTs] of cases) {
    assert.equal(pick(w, `${lines.join('\n')}\n`), want, what);
    // The engine's own picker (for a script killed before its error marker) takes the same line, unstripped.
    const ts = pickErrorLine(lines);
    assert.ok(ts !== undefined && !/stack trace|Rolling Back|failed to start containers/.test(ts), `${what}: ${ts}`);
    if (wantTs) assert.equal(ts, wantTs, what);
  }
});

// ---- 4: names fit the providers' node names ------------------------------------------------------

test('names: kind stops at 40 (NAME-external-load-balancer fits in 63), k3d at 32; the line names the rule; scripts agree', async (t) => {
  const { w, engine } = await withEngine(t);
  assert.deepEqual(NAME_LIMIT, { k3d: 32, kind: 40 });
  assert.ok(`${'a'.repeat(NAME_LIMIT.kind)}-external-load-balancer`.length <= 63);
  assert.ok(`k3d-${'a'.repeat(NAME_LIMIT.k3d)}-serverlb`.length <= 63);
  assert.equal(nameProblem('a'.repeat(40), 'kind'), null);
  assert.equal(
    nameProblem('a'.repeat(41), 'kind'),
    'name: must be at most 40 characters for kind: its longest node container, NAME-external-load-balancer, is also a hostname and must fit in 63 (got 41)',
  );
  assert.equal(nameProblem('a'.repeat(33), 'k3d'), "name: must be at most 32 characters for k3d: k3d's own limit for cluster names (got 33)");
  assert.match(nameProblem('kindler', 'kind')!, /reserved/);

  const long = `k${'a'.repeat(40)}`;
  const r = await verb(engine, ['create', long, '--provider', 'kind']);
  assert.equal(r.code, 2);
  assert.equal(
    r.err,
    'error: name: must be at most 40 characters for kind: its longest node container, NAME-external-load-balancer, is also a hostname and must fit in 63 (got 41)\n',
  );
  assert.deepEqual(engine.listClusters(), []);

  const env = { ...w.env };
  const script = (name: string, args: string[]) => spawnSync('bash', [join(ROOT, 'scripts', name), ...args], { env, encoding: 'utf8' });
  const create = script('create_env.sh', [
    '--name',
    long,
    '--provider',
    'kind',
    '--http-port',
    '20001',
    '--https-port',
    '20002',
    '--api-port',
    '20003',
    '--kubeconfig',
    join(w.dir, 'x.yaml'),
  ]);
  assert.equal(create.status, 2);
  assert.equal(
    create.stderr,
    'error: --name: must be at most 40 characters for kind: its longest node container, NAME-external-load-balancer, is also a hostname and must fit in 63 (got 41)\n',
  );
  // An existing cluster (a single-control-plane kind may have a longer name) is still reachable.
  const status = script('cluster.sh', ['status', '--name', long, '--provider', 'kind']);
  assert.equal(status.status, 0, status.stderr);
  assert.match(status.stdout, /"state":"absent"/);
});

// ---- 5: a failed record is not drift ---------------------------------------------------------------

test('reconcile leaves a failed record failed with its reason and reports no drift, pass after pass', async (t) => {
  const { w, engine } = await withEngine(t);
  w.rule('k3d.cluster-create', 'fail 1 boom');
  assert.equal((await verb(engine, ['create', 'broken', '--wait'], op1)).code, 1);
  const before = engine.getCluster('broken')!;
  assert.equal(before.actual, 'failed');
  assert.ok(before.lastError);
  for (let pass = 1; pass <= 2; pass++) {
    const r = await runReconcile(engine, { dryRun: false });
    assert.deepEqual(r.drift, [], `pass ${pass}: ${JSON.stringify(r.drift)}`);
    assert.deepEqual(r.errors, []);
    const skip = r.skipped.find((s) => s.cluster === 'broken');
    assert.ok(skip && /^failed \(not drift\): /.test(skip.reason), JSON.stringify(r.skipped));
    const now = engine.getCluster('broken')!;
    assert.equal(now.actual, 'failed', `pass ${pass}`);
    assert.equal(now.lastError, before.lastError);
  }
  const dry = await verb(engine, ['reconcile', '--dry-run']);
  assert.equal(dry.code, 0, dry.out);
  assert.equal(dry.out, 'no drift\n');
});
