/**
 * A log flood through the engine (the small form of bench/logflood.ts): every line lands in the
 * task's log file in order, a watcher that stops reading neither holds the task up nor makes the
 * daemon buffer the log for it, and the script never waits for the daemon to read its output.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { startControlServer } from '../src/control/server.js';
import { Service } from '../src/commands/service.js';
import { Engine } from '../src/engine/engine.js';
import type { EngineEvent } from '../src/core/feed.js';
import { LineSplitter } from '../src/os/lines.js';
import { LogBuffer } from '../src/tui/logbuffer.js';
import { ALICE, makeTestKey, makeWorld, scriptEnv, startTestSsh } from './helpers.js';
import { spawn } from 'node:child_process';
import { STANDIN_CREATE_RESULT, writeStandinScripts } from './fixtures/standin.js';

const LINES = 20_000;
const PAD = 'p'.repeat(380); // ~400 bytes a line: 8 MB of lines, well above the control socket's 1 MiB backlog
const BIG = 10 * 1024 * 1024;

/** Stand-in provider: create floods LINES lines, one 10 MB line, a last line, then touches $FLOOD_DONE. */
const scriptsDir = () =>
  writeStandinScripts(
    'kindler-flood-test-',
    `printf '::kindler:step 1/1 create-cluster Creating cluster %s\\n' "$name"
for ((i = 0; i < ${LINES}; i++)); do printf 'flood line %07d ${PAD}\\n' "$i"; done
head -c ${BIG} /dev/zero | tr '\\0' 'y'
printf '\\nafter the big line\\n'
if [ -n "\${FLOOD_DONE:-}" ]; then : > "$FLOOD_DONE"; fi
${STANDIN_CREATE_RESULT}`,
  );

/** Checks the task's log file: the flood lines 0..LINES-1 once each, in order, then the big line (capped) and the last line. */
function checkLog(file: string): void {
  const lines = readFileSync(file, 'utf8').split('\n');
  let next = 0;
  let bigAt = -1;
  let afterAt = -1;
  for (let k = 0; k < lines.length; k++) {
    const l = lines[k]!;
    const m = /^flood line (\d{7}) (p+)$/.exec(l);
    if (m) {
      assert.equal(Number(m[1]), next, `log line ${k + 1}: expected flood line ${next}`);
      assert.equal(m[2], PAD, `log line ${k + 1} is damaged`);
      next++;
    } else if (bigAt < 0 && l.startsWith('yyyy')) bigAt = k;
    else if (l === 'after the big line') afterAt = k;
  }
  assert.equal(next, LINES, 'every flood line is in the log file');
  assert.ok(bigAt > 0, 'the 10 MB line is in the log (capped for storage)');
  assert.match(lines[bigAt]!, /^y+… \[\d+ more characters\]$/);
  assert.ok(afterAt > bigAt, 'the line after the 10 MB line comes after it');
  // RegExp's legacy statics (RegExp.input) would keep the file's text alive for the memory check.
  /x/.exec('x');
}

/**
 * Heap plus off-heap memory after full collections. A Buffer's backing store is freed only after the
 * collection that found it dead (and its in-flight I/O, e.g. the last state write, finished), so one
 * gc() can still count megabytes that are already garbage: collect, let a turn pass, collect again.
 */
const heapNow = async () => {
  const gc = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; i < 3; i++) {
    gc?.();
    await new Promise((r) => setImmediate(r));
  }
  const m = process.memoryUsage();
  return m.heapUsed + m.external + m.arrayBuffers;
};

test('log flood: every line on disk in order, a stalled watcher holds nothing up and is not buffered for', async (t) => {
  const dir = scriptsDir();
  const w = makeWorld({ scriptsDir: dir, checkHostPorts: false });
  const engine = await Engine.start(w.cfg, { role: 'test', scriptEnv: scriptEnv(w) });
  const control = await startControlServer(new Service(engine), () => undefined);
  t.after(async () => {
    await control.close();
    await engine.shutdown();
    w.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  // A fast in-process watcher: the feed accounts for every line, in order: each event's lines
  // follow the last event's, or follow the lines it says it skipped (the middle of the flood).
  let expectedFrom = -1;
  let fedLines = 0;
  let skippedLines = 0;
  let feedProblem = '';
  const off = engine.feed.subscribe((e: EngineEvent) => {
    if (e.type !== 'log') return;
    const skipped = e.skipped ?? 0;
    if (expectedFrom >= 0 && e.from - skipped !== expectedFrom && !feedProblem)
      feedProblem = `log event from ${e.from} (skipped ${skipped}), expected ${expectedFrom}`;
    if (skipped > 0 && e.lines.length < Math.min(w.cfg.logRingLines, e.from) && !feedProblem)
      feedProblem = `an event after a skip carries ${e.lines.length} lines`;
    expectedFrom = e.from + e.lines.length;
    fedLines += e.lines.length;
    skippedLines += skipped;
  });
  t.after(off);

  // A watcher on the control socket that subscribes and then never reads.
  const stalled = connect(control.path);
  await new Promise<void>((r, j) => stalled.once('connect', r).once('error', j));
  stalled.pause();
  stalled.write(`${JSON.stringify({ type: 'subscribe', user: 'stuck' })}\n`);
  t.after(() => stalled.destroy());

  const before = await heapNow();
  let peakRss = 0;
  const rss0 = process.memoryUsage().rss;
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 20);
  const task = await engine.create({ name: 'flood', provider: 'k3d', servers: 1, agents: 0 }, ALICE);
  const done = await engine.waitForTask(task.id);
  clearInterval(sampler);
  assert.equal(done.state, 'succeeded', JSON.stringify(done.error));

  checkLog(join(w.dataDir, 'logs', `${task.id}.log`));
  assert.equal(feedProblem, '');
  assert.equal(fedLines + skippedLines, done.logLines, 'the feed carried or counted every line of the log');
  // 400-byte lines: a 256 KiB read holds ~650 of them, of which the ring's 500 go in the event.
  assert.ok(skippedLines > 0, `the flood's plain lines went in bulk (fed ${fedLines}, skipped ${skippedLines})`);

  // The stalled watcher is still connected and still not reading: what the daemon holds for it is
  // bounded by the control socket's backlog (1 MiB), not by the 8 MB of log it did not read.
  assert.ok(!stalled.destroyed && stalled.isPaused());
  const grown = (await heapNow()) - before;
  assert.ok(grown < 6 * 1024 * 1024, `memory held after the flood grew by ${(grown / 1048576).toFixed(1)} MB`);
  const peak = peakRss - rss0;
  assert.ok(peak < 96 * 1024 * 1024, `RSS grew by ${(peak / 1048576).toFixed(1)} MB during the flood`);
});

test('the script never waits for the daemon to read its output', async (t) => {
  const dir = scriptsDir();
  const w = makeWorld({ scriptsDir: dir, checkHostPorts: false });
  const doneFile = join(w.dir, 'printed-everything');
  const engine = await Engine.start(w.cfg, { role: 'test', scriptEnv: { ...scriptEnv(w), FLOOD_DONE: doneFile } });
  t.after(async () => {
    await engine.shutdown();
    w.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });
  // On the first log line, the daemon stops reading altogether (its event loop is held) until the
  // script says it has printed everything. Through a pipe (64 KiB) the script would block long
  // before that and this would run into the deadline.
  let blockedFor = -1;
  const off = engine.feed.subscribe((e) => {
    if (e.type !== 'log' || blockedFor >= 0) return;
    const t0 = Date.now();
    while (!existsSync(doneFile) && Date.now() - t0 < 30_000) {
      /* hold the event loop */
    }
    blockedFor = Date.now() - t0;
  });
  t.after(off);
  const task = await engine.create({ name: 'flood', provider: 'k3d', servers: 1, agents: 0 }, ALICE);
  const done = await engine.waitForTask(task.id);
  assert.ok(existsSync(doneFile), 'the script printed everything while the daemon read nothing');
  assert.ok(blockedFor >= 0 && blockedFor < 30_000, `the script finished printing only after the daemon resumed (held ${blockedFor} ms)`);
  assert.equal(done.state, 'succeeded');
  await engine.readLog(task.id);
  checkLog(join(w.dataDir, 'logs', `${task.id}.log`));
});

test('line splitting: \\n, \\r\\n and bare \\r across chunks; a line with no end is capped', () => {
  const got: string[] = [];
  const s = new LineSplitter((l) => got.push(l), 10);
  s.push('a\nb\r');
  s.push('\nc\rd\n');
  s.push('e');
  s.push('f\n0123456789ABC');
  s.end();
  assert.deepEqual(got, ['a', 'b', 'c', 'd', 'ef', '0123456789ABC']);
});

test('log buffer: a flood batch keeps only the newest lines, unsanitized until read; a wide gap starts over', () => {
  const b = new LogBuffer('t-1', 100);
  b.history([]);
  const batch = Array.from({ length: 1000 }, (_, i) => `l${i}\x1b[31m`);
  assert.deepEqual(b.live(0, batch), { ok: true, trimmed: 900 });
  assert.equal(b.size, 100);
  assert.equal(b.dropped, 900);
  assert.equal(b.line(99), 'l999');
  assert.equal(b.line(100), '');
  // A small gap asks for a refetch; one wider than the buffer starts over at the new lines.
  assert.deepEqual(b.live(1005, ['x']), { ok: false, gap: 5 });
  assert.deepEqual(b.live(5000, ['y']), { ok: true, trimmed: 100 });
  assert.equal(b.dropped, 5000);
  assert.deepEqual([...b.lines], ['y']);
});

test('logs --follow to a client that stops reading: the daemon holds one step of output, and the client gets every line once', async (t) => {
  const dir = scriptsDir();
  const w = makeWorld({ scriptsDir: dir, checkHostPorts: false });
  const engine = await Engine.start(w.cfg, { role: 'test', scriptEnv: scriptEnv(w) });
  const control = await startControlServer(new Service(engine), () => undefined);
  t.after(async () => {
    await control.close();
    await engine.shutdown();
    w.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });
  const task = await engine.create({ name: 'flood', provider: 'k3d', servers: 1, agents: 0 }, ALICE);

  // A local CLI following the log that reads nothing until the task has ended.
  const sock = connect(control.path);
  await new Promise<void>((r, j) => sock.once('connect', r).once('error', j));
  sock.pause();
  sock.write(`${JSON.stringify({ type: 'run', argv: ['logs', task.id, '--follow'], user: 'slow', isTTY: false, columns: 80, files: {} })}\n`);
  t.after(() => sock.destroy());

  const before = await heapNow();
  const done = await engine.waitForTask(task.id);
  assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
  // Without backpressure the daemon would hold the whole log (8 MB of lines, JSON-encoded) for it.
  const grown = (await heapNow()) - before;
  t.diagnostic(`memory held for the stalled follower: ${(grown / 1048576).toFixed(2)} MB`);
  assert.ok(grown < 3 * 1024 * 1024, `memory held for the stalled follower grew by ${(grown / 1048576).toFixed(1)} MB`);

  // Now it reads: every line of the log file, once, in order, then exit 0.
  let out = '';
  let code: number | null = null;
  let rest = '';
  sock.setEncoding('utf8');
  sock.on('data', (c: string) => {
    rest += c;
    let nl: number;
    while ((nl = rest.indexOf('\n')) >= 0) {
      const m = JSON.parse(rest.slice(0, nl)) as { type: string; data?: string; code?: number };
      rest = rest.slice(nl + 1);
      if (m.type === 'out') out += m.data;
      else if (m.type === 'exit') code = m.code!;
    }
  });
  sock.resume();
  await new Promise<void>((r) => sock.once('close', r));
  assert.equal(code, 0);
  const file = readFileSync(join(w.dataDir, 'logs', `${task.id}.log`), 'utf8');
  assert.ok(out === file, `the follower got the log exactly (${out.length} of ${file.length} characters)`);
});

test('logs --follow over SSH to a client that stops reading (real OpenSSH): bounded in the daemon, every line once', async (t) => {
  const dir = scriptsDir();
  const w = makeWorld({ scriptsDir: dir, checkHostPorts: false });
  const engine = await Engine.start(w.cfg, { role: 'test', scriptEnv: scriptEnv(w) });
  const key = makeTestKey(w.dir, 'slow');
  const ssh = await startTestSsh(w, engine, { users: [`slow viewer ${key.pub}`] });
  t.after(async () => {
    await ssh.stop();
    await engine.shutdown();
    w.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });
  const task = await engine.create({ name: 'flood', provider: 'k3d', servers: 1, agents: 0 }, ALICE);
  const port = ssh.srv.port;
  const child = spawn(
    'ssh',
    [
      '-F',
      '/dev/null',
      '-p',
      String(port),
      '-i',
      key.path,
      '-o',
      'StrictHostKeyChecking=no',
      '-o',
      'UserKnownHostsFile=/dev/null',
      '-o',
      'BatchMode=yes',
      '-o',
      'IdentitiesOnly=yes',
      '-o',
      'LogLevel=ERROR',
      'kindler@127.0.0.1',
      'logs',
      task.id,
      '--follow',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  t.after(() => child.kill('SIGKILL'));
  // Nobody reads ssh's stdout: the pipe fills, ssh stops taking data, the channel's window closes.
  child.stdout.pause();
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));

  const before = await heapNow();
  const done = await engine.waitForTask(task.id);
  assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
  const grown = (await heapNow()) - before;
  t.diagnostic(`memory held for the stalled SSH follower: ${(grown / 1048576).toFixed(2)} MB`);
  assert.ok(grown < 3 * 1024 * 1024, `memory held for the stalled SSH follower grew by ${(grown / 1048576).toFixed(1)} MB`);

  const chunks: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => chunks.push(d));
  child.stdout.resume(); // it was paused explicitly, so a 'data' listener alone does not restart it
  const code = await new Promise<number | null>((r) => child.once('close', (c) => r(c)));
  assert.equal(code, 0, stderr);
  const out = Buffer.concat(chunks).toString('utf8');
  const file = readFileSync(join(w.dataDir, 'logs', `${task.id}.log`), 'utf8');
  assert.ok(out === file, `the SSH follower got the log exactly (${out.length} of ${file.length} characters)`);
});
