/**
 * Script faults: a provider tool or the script itself fails in every ugly way — a non-zero exit, a hang
 * past the timeout that ignores SIGTERM, death by a signal, a 10 MB line, binary junk, output only on
 * stderr. Each task ends `failed` with a clear one-line reason, what it made is cleaned up, the cluster
 * record says what the provider really has, and the log holds only sanitized text.
 * (Runs the real scripts against the fakes; engine.test.ts covers the plain failure, cancel and timeout.)
 */
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ALICE, poll, ROOT, until, verb, withEngine, type World } from './helpers.js';
import type { Engine } from '../src/engine/engine.js';
import type { Task } from '../src/core/types.js';

const b64 = (b: Buffer | string) => Buffer.from(b).toString('base64');

// Anything a terminal would act on: C0 controls but newline, DEL, C1 controls (8-bit CSI and friends).

const RAW_CONTROL = /[\x00-\x09\x0b-\x1f\x7f-\x9f]/;

/** The log file: every byte sanitized (no escape, no control but the newlines between lines). */
function assertCleanLog(w: World, id: string): string {
  const bytes = readFileSync(join(w.dataDir, 'logs', `${id}.log`));
  const text = bytes.toString('utf8');
  const bad = text.split('\n').findIndex((l) => RAW_CONTROL.test(l));
  assert.equal(bad, -1, `log line ${bad + 1} holds a raw control character: ${JSON.stringify(text.split('\n')[bad]?.slice(0, 200))}`);
  return text;
}

/** The task's reason and stderr tail: one clean line each, of a sane length. */
function assertCleanError(task: Task): void {
  assert.ok(task.error, `task ${task.id} has an error`);
  const { reason, stderrTail } = task.error;
  assert.ok(reason.length > 0 && reason.length <= 2000, `reason length ${reason.length}`);
  assert.doesNotMatch(reason, RAW_CONTROL, 'the reason is sanitized');
  assert.doesNotMatch(reason, /\n/);
  for (const l of stderrTail) assert.doesNotMatch(l, RAW_CONTROL, 'the stderr tail is sanitized');
}

/** The record and the provider agree after a failed create: nothing left, the record says failed. */
function assertNothingLeft(w: World, engine: Engine, name: string, task: Task): void {
  assert.equal(task.cleanup, 'done', `cleanup of ${name}: ${task.cleanup}`);
  assert.deepEqual(w.containers(name), [], `nothing of ${name} is left at the provider`);
  const c = engine.getCluster(name)!;
  assert.equal(c.actual, 'failed');
  assert.equal(c.lastError, task.error!.reason);
  const pid = Number(task.params!.pid);
  assert.throws(() => process.kill(-pid, 0), `no process of the task's group ${pid} is left`);
}

async function createAndWait(engine: Engine, name: string): Promise<Task> {
  const r = await verb(engine, ['create', name, '--wait', '--json']);
  assert.equal(r.code, 1, `create ${name} must fail: ${r.out}${r.err}`);
  const task = JSON.parse(r.out).task as Task;
  assert.equal(task.state, 'failed');
  return task;
}

test('a tool that exits non-zero: the task fails with its exit code and message, and cleanup ran', async (t) => {
  const { w, engine } = await withEngine(t);
  w.rule('k3d.cluster-create', 'fail-after-partial 7 disk quota exceeded');
  const task = await createAndWait(engine, 'nonzero');
  assert.equal(task.exitCode, 7);
  assert.match(task.error!.reason, /^k3d cluster create failed \(exit 7\): .*disk quota exceeded/);
  assertCleanError(task);
  assertNothingLeft(w, engine, 'nonzero', task);

  // A delete whose provider call fails: failed with the reason, and the record shows what is really there.
  w.clearRule('k3d.cluster-create');
  assert.equal((await verb(engine, ['create', 'keeper', '--wait'])).code, 0);
  w.rule('k3d.cluster-delete', 'fail 1 cannot remove container: device or resource busy');
  const d = await verb(engine, ['delete', 'keeper', '--wait', '--json']);
  assert.equal(d.code, 1, d.out + d.err);
  const del = JSON.parse(d.out).task as Task;
  assert.equal(del.state, 'failed');
  assert.match(del.error!.reason, /device or resource busy/);
  await until(engine, () => engine.getCluster('keeper')?.actual !== 'unknown', 20000, 'the re-check after the failed delete');
  const c = engine.getCluster('keeper')!;
  assert.equal(c.actual, 'running', 'the provider still has it running, and the record says so');
  assert.equal(c.desired, 'absent');
  assert.ok(w.containers('keeper').length > 0);
});

test('a provider error followed by a failed roll-back: the reason is the error, not the roll-back noise', async (t) => {
  const { w, engine } = await withEngine(t);
  // Someone else's network holds the subnet: k3d fails to make its network, then its roll-back finds
  // no nodes and says so ("failed to get cluster: No nodes found …"), which is not the reason.
  execFileSync('docker', ['network', 'create', '--subnet', '10.201.0.0/16', 'someone-elses'], { env: w.env });
  const r = await verb(engine, ['create', 'pool', '--subnet', '10.201.0.0/16', '--wait', '--json']);
  assert.equal(r.code, 1, r.out + r.err);
  const task = JSON.parse(r.out).task as Task;
  assert.equal(task.state, 'failed');
  assert.match(task.error!.reason, /^k3d cluster create failed \(exit 1\): Failed Cluster Preparation: .*Pool overlaps with other one on this address space$/);
  assertCleanError(task);
  assertNothingLeft(w, engine, 'pool', task);
});

test('a tool that ignores SIGTERM past the timeout: the script is killed before its trap runs, and kindler cleans up', async (t) => {
  const { w, engine } = await withEngine(t, {
    timeouts: { create: 8, delete: 60, start: 60, stop: 60, 'import-image': 60, status: 20 },
    cancelGraceSeconds: 1,
  });
  // The script's TERM trap waits for the tool first, so it never reaches its own cleanup.
  w.rule('kubectl.wait', 'hang\nignore-term');
  const task = await createAndWait(engine, 'deaf');
  assert.match(task.error!.reason, /^timed out after 8s/);
  assert.equal(task.signal, 'SIGKILL', 'only SIGKILL ended it');
  assertCleanError(task);
  assertNothingLeft(w, engine, 'deaf', task);
  const log = assertCleanLog(w, task.id);
  assert.match(log, /\[kindler\] cleanup: removing what the unfinished create left behind/);
});

test('a hang past the timeout whose cleanup hangs too: killed, then cleaned up by kindler', async (t) => {
  const { w, engine } = await withEngine(t, {
    timeouts: { create: 8, delete: 60, start: 60, stop: 60, 'import-image': 60, status: 20 },
    cancelGraceSeconds: 1,
  });
  // The wait hangs until the timeout's SIGTERM; the script's own cleanup then hangs in k3d cluster
  // delete, which ignores SIGTERM, so only SIGKILL ends the script and kindler's own cleanup (the
  // delete script) must finish the job. (A wait that ignored SIGTERM too would keep the script's trap
  // from ever reaching the delete: the hanging delete rule would then be left for kindler's cleanup.)
  w.rule('kubectl.wait', 'hang');
  w.rule('k3d.cluster-delete', 'hang\nignore-term\nonce');
  const task = await createAndWait(engine, 'stubborn');
  assert.match(task.error!.reason, /^timed out after 8s/);
  assert.equal(task.signal, 'SIGKILL', 'only SIGKILL ended it');
  assertCleanError(task);
  assertNothingLeft(w, engine, 'stubborn', task);
  const log = assertCleanLog(w, task.id);
  assert.match(log, /\[kindler\] cleanup: removing what the unfinished create left behind/);
  assert.match(log, /\[kindler\] cleanup done/);
});

test('a provider tool killed by SIGSEGV mid-create: the reason names the signal, and cleanup ran', async (t) => {
  const { w, engine } = await withEngine(t);
  w.rule('k3d.cluster-create', 'signal SIGSEGV');
  const task = await createAndWait(engine, 'segv');
  assert.match(task.error!.reason, /^k3d cluster create failed \(exit 139\): killed by SIGSEGV/);
  assert.equal(task.exitCode, 139);
  assertCleanError(task);
  assertNothingLeft(w, engine, 'segv', task);
});

for (const sig of ['SIGKILL', 'SIGSEGV'] as const) {
  test(`the script itself killed by ${sig} mid-create: failed, and kindler removes what it made`, async (t) => {
    const { w, engine } = await withEngine(t);
    w.rule('k3d.cluster-create', 'hang');
    const queued = await engine.create({ name: 'victim', provider: 'k3d', servers: 1, agents: 0 }, ALICE);
    await until(engine, () => engine.getTask(queued.id)!.steps.some((s) => s.key === 'create-cluster'), 20000, 'the create step');
    await poll(() => w.containers('victim').length > 0, 20000, 'the nodes to exist');
    const pid = Number(engine.getTask(queued.id)!.params!.pid);
    process.kill(pid, sig); // the bash script alone, as the OOM killer or a crash would
    const task = await engine.waitForTask(queued.id);
    assert.equal(task.state, 'failed');
    assert.match(task.error!.reason, new RegExp(`^the script was killed by ${sig}`));
    assertCleanError(task);
    assertNothingLeft(w, engine, 'victim', task);
  });
}

test('a 10 MB single line on stdout and on stderr: the task ends with a bounded reason and a bounded log', async (t) => {
  const { w, engine } = await withEngine(t, { timeouts: { create: 60, delete: 60, start: 60, stop: 60, 'import-image': 60, status: 20 } });
  const kib = b64('x'.repeat(1024));
  // 10 MiB on stdout with its newline, then 10 MiB on stderr without one, then the tool dies.
  w.rule(
    'k3d.cluster-create',
    [`write stdout ${kib} 10240`, `write stdout ${b64('\n')}`, `write stderr ${b64('y'.repeat(1024))} 10240`, 'signal SIGKILL'].join('\n'),
  );
  const started = Date.now();
  const task = await createAndWait(engine, 'huge');
  // Not the timeout: the script read the huge line and still gave its reason at once.
  assert.match(task.error!.reason, /^k3d cluster create failed \(exit 137\): killed by SIGKILL \(its last error output: \.\.\.y{297}\)$/);
  assert.ok(task.error!.reason.length < 800, `reason is bounded (${task.error!.reason.length})`);
  assertCleanError(task);
  assertNothingLeft(w, engine, 'huge', task);
  const log = assertCleanLog(w, task.id);
  const longest = Math.max(...log.split('\n').map((l) => l.length));
  assert.ok(longest <= 16_384 + 64, `log lines are capped (longest ${longest})`);
  assert.ok(log.length < 2 * 1024 * 1024, `the log stays small (${log.length} characters)`);
  assert.match(log, /x{16384}… \[\d+ more characters\]/, 'a capped line says how much was cut');
  t.diagnostic(`10 MB line task took ${Date.now() - started} ms`);
});

test('binary output (NUL, invalid UTF-8, escape sequences): nothing raw reaches the log, the reason or the CLI', async (t) => {
  const { w, engine } = await withEngine(t);
  const junk = Buffer.concat([
    Buffer.from('bin: '),
    Buffer.from([0x00, 0x01, 0x07, 0x08, 0x7f]), // NUL, SOH, BEL, BS, DEL
    Buffer.from([0xff, 0xfe, 0x80, 0xc0, 0xaf, 0xed, 0xa0, 0x80]), // invalid UTF-8, overlong, surrogate
    Buffer.from('\x1b[2J\x1b[H\x1b[31mred\x1b[0m'), // clear screen, home, colour
    Buffer.from('\x1b]0;pwned title\x07'), // OSC window title
    Buffer.from('\x1b]52;c;ZXZpbA==\x1b\\'), // OSC 52 clipboard write
    Buffer.from('\x1bP+q544e\x1b\\'), // DCS
    Buffer.from([0x9b, 0x33, 0x31, 0x6d]), // a raw 8-bit CSI byte
    Buffer.from('\u009b31m \u0090dcs\u009c'), // C1 CSI, DCS, ST as characters
    Buffer.from('over\rwrite end'),
  ]);
  const line = Buffer.concat([junk, Buffer.from('\n')]);
  w.rule('k3d.cluster-create', [`write stdout ${b64(line)} 3`, `write stderr ${b64(line)} 3`, 'signal SIGKILL'].join('\n'));
  const task = await createAndWait(engine, 'binary');
  assertCleanError(task);
  // bash cannot hold a NUL: the script's copy of the line ends there; kindler's own stderr tail has it all.
  assert.match(task.error!.reason, /^k3d cluster create failed \(exit 137\): killed by SIGKILL \(its last error output: bin:\)$/);
  assert.ok(
    task.error!.stderrTail.some((l) => /bin: .*red/.test(l)),
    JSON.stringify(task.error!.stderrTail),
  );
  assertNothingLeft(w, engine, 'binary', task);
  const log = assertCleanLog(w, task.id);
  assert.match(log, /bin: /);
  // Every face prints from the same sanitized text: the logs and task verbs, plain and --json.
  for (const argv of [
    ['logs', task.id],
    ['task', task.id],
    ['show', 'binary'],
  ]) {
    const r = await verb(engine, argv);
    assert.equal(r.code, 0, r.err);
    assert.doesNotMatch(r.out.replace(/\n/g, ''), RAW_CONTROL, `${argv.join(' ')} prints no raw control character`);
    const j = await verb(engine, [...argv, '--json']);
    assert.doesNotMatch(
      JSON.stringify(JSON.parse(j.out)),
      /\\u00(0[0-8]|1[0-9a-f]|7f|[89][0-9a-f])|\\u001b/i,
      `${argv.join(' ')} --json holds no control character`,
    );
  }
});

test('a tool with output only on stderr: the reason is its telling stderr line', async (t) => {
  const { w, engine } = await withEngine(t);
  // A tool that writes only to stderr (several lines, the telling one last) and fails in preflight.
  w.rule(
    'docker.info',
    [
      `write stderr ${b64('WARNING: no swap limit support\nerror during connect: this error may indicate that the docker daemon is not running\n')}`,
      'fail 1 permission denied while trying to connect',
    ].join('\n'),
  );
  const pre = await createAndWait(engine, 'quiet');
  assert.match(pre.error!.reason, /^docker is not reachable \(docker info exit 1\): .*permission denied/);
  assert.equal(pre.cleanup, 'not-needed');
  assert.deepEqual(w.containers('quiet'), []);
  assert.equal(engine.getCluster('quiet')!.actual, 'failed');
  assertCleanError(pre);
});

test('a script that prints no marker, only stderr: failed with its last stderr line, nothing to clean', async (t) => {
  // The real delete and cluster scripts next to a create script that breaks the protocol.
  const scripts = mkdtempSync(join(tmpdir(), 'kindler-scripts-'));
  t.after(() => rmSync(scripts, { recursive: true, force: true }));
  for (const f of ['delete_env.sh', 'cluster.sh', 'lib']) symlinkSync(join(ROOT, 'scripts', f), join(scripts, f));
  writeFileSync(
    join(scripts, 'create_env.sh'),
    '#!/usr/bin/env bash\necho "starting" >&2\nprintf \'\\033[31mfatal:\\033[0m cannot read /etc/kindler/token\\n\' >&2\nexit 3\n',
    { mode: 0o755 },
  );
  const { w, engine } = await withEngine(t, { scriptsDir: scripts });
  const r = await verb(engine, ['create', 'quiet2', '--wait', '--json']);
  assert.equal(r.code, 1);
  const task = JSON.parse(r.out).task as Task;
  assert.equal(task.state, 'failed');
  assert.equal(task.error!.reason, 'the script exited with code 3: fatal: cannot read /etc/kindler/token');
  assert.deepEqual(task.error!.stderrTail, ['starting', 'fatal: cannot read /etc/kindler/token']);
  assert.equal(task.cleanup, 'not-needed', 'it never reached the create step');
  assert.equal(engine.getCluster('quiet2')!.actual, 'failed');
  assertCleanLog(w, task.id);
});
