/**
 * The real `kindler` CLI and daemon as processes: control socket, embedded mode, crash recovery.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  CLI,
  cli,
  makeTestKey,
  makeWorld,
  poll,
  processesWithEnv,
  sshConnect,
  sshExec,
  startDaemon,
  startEngine,
  startTestSsh,
  tasksOnDisk,
  type Proc,
  type World,
} from './helpers.js';

function world(t: import('node:test').TestContext, overrides: Record<string, unknown> = {}): World {
  const w = makeWorld(overrides);
  t.after(() => w.dispose());
  return w;
}

const stripVolatile = (s: string) => s;

test('the CLI through the daemon and embedded give the same --json output', async (t) => {
  const w = world(t);
  const d = await startDaemon(w);
  t.after(() => d.stop());
  const created = await cli(w, ['create', 'same', '--provider', 'kind', '--wait', '--json']);
  assert.equal(created.code, 0, created.stderr);
  assert.equal(JSON.parse(created.stdout).task.state, 'succeeded');
  const bad = await cli(w, ['create', 'Same', '--json']);
  const viaDaemon = await Promise.all(
    [
      ['list', '--json'],
      ['show', 'same', '--json'],
      ['tasks', '--json'],
      ['task', 't-1', '--json'],
      ['logs', 't-1', '--json'],
      ['version', '--json'],
      ['show', 'nope', '--json'],
    ].map((a) => cli(w, a)),
  );
  const stopped = await d.stop();
  assert.equal(stopped.code, 0);
  assert.ok(!existsSync(join(w.dataDir, 'kindler.sock')), 'socket removed on stop');
  const badEmbedded = await cli(w, ['create', 'Same', '--json']);
  const embedded = await Promise.all(
    [
      ['list', '--json'],
      ['show', 'same', '--json'],
      ['tasks', '--json'],
      ['task', 't-1', '--json'],
      ['logs', 't-1', '--json'],
      ['version', '--json'],
      ['show', 'nope', '--json'],
    ].map((a) => cli(w, a)),
  );
  // Embedded runs are serialised by the lock; run them again one by one for the comparison.
  for (const [i, args] of [
    ['list', '--json'],
    ['show', 'same', '--json'],
    ['tasks', '--json'],
    ['task', 't-1', '--json'],
    ['logs', 't-1', '--json'],
    ['version', '--json'],
    ['show', 'nope', '--json'],
  ].entries()) {
    const e = embedded[i]!.code === 1 && /locked/.test(embedded[i]!.stderr) ? await cli(w, args) : embedded[i]!;
    assert.equal(e.code, viaDaemon[i]!.code, `${args.join(' ')}: ${e.stderr}`);
    assert.equal(stripVolatile(e.stdout), stripVolatile(viaDaemon[i]!.stdout), args.join(' '));
    assert.equal(e.stderr, viaDaemon[i]!.stderr, args.join(' '));
  }
  assert.equal(bad.code, 2);
  assert.equal(badEmbedded.code, 2);
  assert.equal(bad.stdout, badEmbedded.stdout);
  assert.equal(bad.stderr, badEmbedded.stderr);
});

test('create --wait prints progress and the live log, and exits with the task result', async (t) => {
  const w = world(t);
  const d = await startDaemon(w);
  t.after(() => d.stop());
  const ok = await cli(w, ['create', 'waity', '--wait']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /\[ {2}0%\] Check docker/);
  assert.match(ok.stdout, /==> \[5\/5\]/);
  assert.match(ok.stdout, /task t-1: create waity succeeded/);
  w.rule('kubectl.wait', 'fail 1 never ready');
  const bad = await cli(w, ['create', 'sad', '--wait']);
  assert.equal(bad.code, 1);
  assert.match(bad.stdout, /task t-2: create sad failed — /);
  assert.match(d.output(), /task t-2 failed: create sad/);
});

test('logs --follow streams a running task through the daemon', async (t) => {
  const w = world(t);
  w.rule('k3d.cluster-create', 'delay 1');
  const d = await startDaemon(w);
  t.after(() => d.stop());
  const c = await cli(w, ['create', 'follow', '--json']);
  assert.equal(c.code, 0, c.stderr);
  const id = JSON.parse(c.stdout).task.id;
  const f = await cli(w, ['logs', id, '--follow']);
  assert.equal(f.code, 0);
  assert.match(f.stdout, /==> \[1\/5\]/);
  assert.match(f.stdout, /\[kindler\] task t-1 succeeded/);
  const full = readFileSync(join(w.dataDir, 'logs', `${id}.log`), 'utf8');
  assert.equal(f.stdout, full, 'follow printed every line exactly once');
});

test('a second daemon on the same data dir exits with a clear error; the socket is owner/group only', async (t) => {
  const w = world(t);
  const d = await startDaemon(w);
  t.after(() => d.stop());
  const second = await cli(w, ['daemon']);
  assert.equal(second.code, 1);
  assert.match(second.stderr, /^error: state .*kindler\.lock is locked by a running kindler daemon \(pid \d+\)/);
  assert.equal(statSync(join(w.dataDir, 'kindler.sock')).mode & 0o777, 0o660);
  // And the CLI uses the daemon instead of fighting for the lock.
  assert.equal((await cli(w, ['list'])).code, 0);
});

test('a corrupt state file: the daemon refuses to start, names the file, leaves it untouched', async (t) => {
  const w = world(t);
  const file = join(w.dataDir, 'state.json');
  writeFileSync(file, '{"schemaVersion":1,"clusters":[');
  const r = await cli(w, ['daemon']);
  assert.equal(r.code, 1);
  assert.equal(r.stderr.trim().split('\n').length, 1);
  assert.match(r.stderr, new RegExp(`^error: state file ${file.replace(/[.]/g, '\\.')}: is not valid JSON`));
  assert.equal(readFileSync(file, 'utf8'), '{"schemaVersion":1,"clusters":[');
  const l = await cli(w, ['list']);
  assert.equal(l.code, 1);
  assert.match(l.stderr, /is not valid JSON/);
});

test('kill -9 of the daemon mid-task: after restart the task is interrupted, state valid, cluster re-checked', async (t) => {
  const w = world(t);
  w.rule('k3d.cluster-create', 'hang');
  const d = await startDaemon(w);
  const c = await cli(w, ['create', 'crashy', '--json']);
  const id = JSON.parse(c.stdout).task.id;
  await d.waitFor(new RegExp(`task ${id} running`));
  // Wait until the script is inside the provider call (the hang).
  const pidOf = () => JSON.parse(readFileSync(join(w.dataDir, 'state.json'), 'utf8')).tasks[0].params?.pid as number | undefined;
  await poll(() => Boolean(pidOf()) && w.calls().includes('"create"'), 20000, 'the script to reach k3d cluster create');
  d.proc.kill('SIGKILL');
  await d.exited;
  JSON.parse(readFileSync(join(w.dataDir, 'state.json'), 'utf8'));
  const d2 = await startDaemon(w);
  t.after(() => d2.stop());
  await d2.waitFor(new RegExp(`task ${id} interrupted`));
  const task = JSON.parse((await cli(w, ['task', id, '--json'])).stdout).task;
  assert.equal(task.state, 'interrupted');
  assert.match(task.error.reason, /kindler stopped while the task was running/);
  // Re-checked with the provider: the orphaned script was stopped and cleaned up, nothing exists.
  let cluster;
  for (let i = 0; i < 100; i++) {
    cluster = JSON.parse((await cli(w, ['show', 'crashy', '--json'])).stdout).cluster;
    if (cluster.actual !== 'unknown') break;
  }
  assert.equal(cluster.actual, 'absent', JSON.stringify(cluster));
  assert.match(cluster.lastError, /interrupted/);
  // The script's process group has no live member (zombies the container's init has not reaped yet are dead).
  const pid = Number(task.params.pid);
  assert.deepEqual(
    processesWithEnv('KINDLER_FAKE_DIR', w.fakeDir).filter((p) => p.pgid === pid),
    [],
    'no orphaned script is left',
  );
  assert.deepEqual(w.containers('crashy'), []);
});

test('SIGTERM stops the daemon cleanly: running tasks are recorded interrupted', async (t) => {
  const w = world(t);
  w.rule('kubectl.wait', 'hang');
  const d = await startDaemon(w);
  const c = await cli(w, ['create', 'termy', '--json']);
  const id = JSON.parse(c.stdout).task.id;
  await d.waitFor(new RegExp(`task ${id} running`));
  await poll(() => w.calls().includes('"wait"'), 20000, 'the script to reach kubectl wait');
  const r = await d.stop();
  assert.equal(r.code, 0);
  assert.match(d.output(), /kindler daemon stopped/);
  assert.equal(tasksOnDisk(w.dataDir)[0]!.state, 'interrupted');
  assert.ok(!existsSync(join(w.dataDir, 'kindler.lock')));
  assert.deepEqual(w.containers('termy'), [], "the script's own cleanup ran");
});

test('embedded CLI without a daemon runs the task to the end before exiting', async (t) => {
  const w = world(t);
  const r = await cli(w, ['create', 'solo', '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).task.state, 'queued');
  assert.match(r.stderr, /waiting here until the task finishes/);
  const show = await cli(w, ['show', 'solo', '--json']);
  assert.equal(JSON.parse(show.stdout).cluster.actual, 'running');
  const doc = await cli(w, ['doctor', '--json']);
  const rep = JSON.parse(doc.stdout);
  assert.equal(rep.tools.find((x: { name: string }) => x.name === 'k3d').usable, true);
  assert.equal(rep.tools.find((x: { name: string }) => x.name === 'docker').usable, true);
  w.rule('docker-down', '');
  const down = await cli(w, ['doctor']);
  assert.equal(down.code, 1);
  assert.match(down.stdout, /docker daemon is not reachable/);
});

test('a bad schedule stops the daemon at start with a message naming the job', async (t) => {
  const w = world(t, { schedules: { reconcile: 'every five minutes', ttl: '* * * * *', retention: '17 * * * *' } });
  const r = await cli(w, ['daemon']);
  assert.equal(r.code, 1);
  assert.match(r.stdout + r.stderr, /cron: job "reconcile": "every five minutes" is not a valid cron expression/);
});

test('reconcile: --dry-run reports drift (exit 10), a pass heals it, --last shows it; adopt records an unmanaged cluster', async (t) => {
  const w = world(t);
  const d = await startDaemon(w);
  t.after(() => d.stop());
  assert.equal((await cli(w, ['create', 'drifty', '--wait'])).code, 0);
  assert.equal((await cli(w, ['reconcile', '--dry-run'])).code, 0);
  const { execFileSync } = await import('node:child_process');
  execFileSync('k3d', ['cluster', 'stop', 'drifty'], { env: w.env });
  // Made outside kindler, with its own host ports: adopt records the ones docker publishes.
  const p = w.cfg.ports;
  execFileSync(
    'k3d',
    [
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
    ],
    { env: w.env },
  );
  const dry = await cli(w, ['reconcile', '--dry-run', '--json']);
  assert.equal(dry.code, 10, dry.stderr);
  const kinds = JSON.parse(dry.stdout)
    .drift.map((x: { kind: string; cluster: string }) => `${x.kind}:${x.cluster}`)
    .sort();
  assert.deepEqual(kinds, ['stopped:drifty', 'unmanaged:stray']);
  const heal = await cli(w, ['reconcile', '--json']);
  assert.equal(heal.code, 0, heal.stderr);
  const healed = JSON.parse(heal.stdout).healed;
  assert.equal(healed.length, 1);
  assert.equal((await cli(w, ['logs', healed[0].taskId, '--follow'])).code, 0);
  const after = await cli(w, ['reconcile', '--dry-run', '--json']);
  assert.deepEqual(
    JSON.parse(after.stdout).drift.map((x: { kind: string }) => x.kind),
    ['unmanaged'],
    'stray is only reported, never deleted',
  );
  const last = JSON.parse((await cli(w, ['reconcile', '--last', '--json'])).stdout).last;
  assert.equal(last.dryRun, true);
  w.rule('docker-down', '');
  const blind = await cli(w, ['reconcile', '--dry-run', '--json']);
  assert.equal(blind.code, 1, 'docker unreachable is a failure, never "no drift"');
  assert.match(JSON.stringify(JSON.parse(blind.stdout).errors), /cannot list the provider's clusters/);
  w.clearRule('docker-down');
  const adopt = await cli(w, ['adopt', 'stray', '--provider', 'k3d', '--json']);
  assert.equal(adopt.code, 0, adopt.stderr);
  const adopted = JSON.parse(adopt.stdout).cluster;
  assert.equal(adopted.actual, 'running');
  assert.deepEqual([adopted.httpPort, adopted.httpsPort, adopted.apiPort], [p.http.to, p.https.to, p.api.to]);
  assert.equal((await cli(w, ['reconcile', '--dry-run'])).code, 0);
});

test('reconcile records a missing cluster as absent in the table, and never deletes or recreates it', async (t) => {
  const w = world(t);
  const d = await startDaemon(w);
  t.after(() => d.stop());
  assert.equal((await cli(w, ['create', 'gone', '--provider', 'kind', '--wait'])).code, 0);
  const { execFileSync } = await import('node:child_process');
  execFileSync('kind', ['delete', 'cluster', '--name', 'gone'], { env: w.env });
  const r = await cli(w, ['reconcile', '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(
    JSON.parse(r.stdout).drift.map((x: { kind: string; heal: string }) => `${x.kind}:${x.heal}`),
    ['missing:report'],
  );
  const c = JSON.parse((await cli(w, ['show', 'gone', '--json'])).stdout).cluster;
  assert.equal(c.actual, 'absent');
  assert.equal(c.desired, 'present');
  assert.deepEqual(w.containers('gone'), []);
});

/**
 * Runs the CLI with its stdout (or stderr) a pipe whose reader is already gone, as after
 * `kindler list | head -1`: perl makes the pipe, closes the read end, and execs node on it, so every
 * write fails with EPIPE (no race with a reader closing). The other stream is captured.
 */
function brokenPipe(w: World, args: string[], which: 'stdout' | 'stderr'): Promise<Proc> {
  const fd = which === 'stdout' ? 'STDOUT' : 'STDERR';
  const perl = `pipe(my $r, my $w) or die "pipe: $!"; close $r; open(${fd}, ">&", $w) or die "dup: $!"; exec @ARGV or die "exec: $!"`;
  return new Promise((resolve, reject) => {
    const p = spawn('perl', ['-e', perl, process.execPath, CLI, ...args], { env: w.env, cwd: w.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`kindler ${args.join(' ')} with a broken ${which} did not finish within 60 s`));
    }, 60_000);
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

test('a reader that goes away (kindler list | head -1): the CLI exits quietly with 141, through the daemon and embedded', async (t) => {
  const w = world(t);
  const embedded = await brokenPipe(w, ['version'], 'stdout');
  assert.deepEqual({ code: embedded.code, stderr: embedded.stderr }, { code: 141, stderr: '' });
  const embeddedErr = await brokenPipe(w, ['show', 'nope'], 'stderr');
  assert.deepEqual({ code: embeddedErr.code, stdout: embeddedErr.stdout }, { code: 141, stdout: '' });
  const d = await startDaemon(w);
  t.after(() => d.stop());
  assert.equal((await cli(w, ['create', 'piped', '--wait'])).code, 0);
  for (const args of [['list'], ['tasks'], ['logs', 't-1'], ['logs', 't-1', '--follow']]) {
    const r = await brokenPipe(w, args, 'stdout');
    assert.deepEqual({ code: r.code, stderr: r.stderr }, { code: 141, stderr: '' }, args.join(' '));
  }
  const e = await brokenPipe(w, ['show', 'nope'], 'stderr');
  assert.deepEqual({ code: e.code, stdout: e.stdout }, { code: 141, stdout: '' });
  // The daemon is unharmed.
  assert.equal((await cli(w, ['list'])).code, 0);
});

test('boolean flags: --json=true is JSON, --json=false text; any other value is refused (exit 2, one line), through the CLI and SSH', async (t) => {
  const w = world(t);
  const d = await startDaemon(w);
  t.after(() => d.stop());
  const yes = await cli(w, ['list', '--json=true']);
  assert.equal(yes.code, 0, yes.stderr);
  assert.deepEqual(JSON.parse(yes.stdout), { clusters: [] });
  const no = await cli(w, ['list', '--json', '--json=false']);
  assert.equal(no.code, 0, no.stderr);
  assert.throws(() => JSON.parse(no.stdout), 'the last --json=false wins: text');
  const bad = await cli(w, ['list', '--json=yes']);
  assert.deepEqual(bad, { code: 2, signal: null, stdout: '', stderr: 'error: --json: is a switch: give --json, --json=true or --json=false (got "yes")\n' });
  const wait = await cli(w, ['create', 'flaggy', '--wait=1', '--json']);
  assert.equal(wait.code, 2);
  assert.match(wait.stderr, /^error: --wait: is a switch: give --wait, --wait=true or --wait=false \(got "1"\)\n$/);
  assert.equal(JSON.parse(wait.stdout).error.field, 'wait', 'a usage error is JSON when --json was asked for');
  assert.deepEqual(JSON.parse((await cli(w, ['list', '--json'])).stdout).clusters, [], 'a refused verb changes nothing');
  await d.stop();

  // The SSH face parses the same way.
  const engine = await startEngine(w);
  const key = makeTestKey(w.dir, 'flags');
  const ssh = await startTestSsh(w, engine, { users: [`alice admin ${key.pub}`] });
  const c = await sshConnect(ssh.srv.port, { privateKey: readFileSync(key.path) });
  try {
    const sYes = await sshExec(c, 'list --json=true');
    assert.equal(sYes.code, 0, sYes.stderr.toString());
    assert.deepEqual(JSON.parse(sYes.stdout.toString()), { clusters: [] });
    const sBad = await sshExec(c, 'list --json=yes');
    assert.equal(sBad.code, 2);
    assert.equal(sBad.stderr.toString(), 'error: --json: is a switch: give --json, --json=true or --json=false (got "yes")\n');
  } finally {
    c.end();
    await ssh.stop();
    await engine.shutdown();
  }
});
