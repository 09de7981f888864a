/**
 * src/os (run.ts, process.ts): the one way kindler runs a short command (runCaptured) and the process helpers. Every
 * child gets the allow-listed environment plus the owner mark, runs in its own process group (a
 * timeout stops the whole group; stragglers die when it exits), has bounded output, and ends as one
 * sanitized reason line.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { OWNER_ENV, setChildOwner, setPassEnv } from '../src/core/childenv.js';
import { processRunning } from '../src/os/process.js';
import { runCaptured } from '../src/os/run.js';
import { readAdminEntry } from '../src/provision/access.js';

const dir = mkdtempSync(join(tmpdir(), 'kindler-exec-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

function envOf(text: string): Map<string, string> {
  return new Map(
    text
      .split('\n')
      .filter((l) => l.includes('='))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
}

test('a child gets the allow-listed environment, what the caller sets and the owner mark; never a daemon secret', async (t) => {
  process.env.KINDLER_TEST_SECRET = 'hunter2-do-not-pass';
  setPassEnv([]);
  setChildOwner('/var/lib/kindler-test');
  t.after(() => {
    delete process.env.KINDLER_TEST_SECRET;
    setChildOwner(undefined);
  });
  const r = await runCaptured('env', [], { timeoutMs: 10_000, env: { KINDLER_FACT: 'yes' } });
  assert.equal(r.ok, true, r.reason);
  const env = envOf(r.stdout);
  assert.equal(env.has('KINDLER_TEST_SECRET'), false);
  assert.equal(env.get('KINDLER_FACT'), 'yes');
  assert.equal(env.get(OWNER_ENV), '/var/lib/kindler-test');
  assert.equal(env.get('PATH'), process.env.PATH);
});

test("kubectl for access runs through it: the daemon's secrets never reach kubectl (they did: it inherited the whole environment)", async (t) => {
  process.env.KINDLER_TEST_SECRET = 'hunter2-do-not-pass';
  t.after(() => delete process.env.KINDLER_TEST_SECRET);
  const bin = join(dir, 'bin');
  const out = join(dir, 'kubectl.env');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(bin, { recursive: true });
  writeFileSync(join(bin, 'kubectl'), `#!/bin/sh\nenv > '${out}'\necho 'error: stand-in' >&2\nexit 1\n`);
  chmodSync(join(bin, 'kubectl'), 0o755);
  await assert.rejects(
    readAdminEntry({ env: { PATH: `${bin}:${process.env.PATH}` }, timeoutMs: 10_000 }, '/nonexistent', 'ctx'),
    /kubectl config view failed \(exit 1\): error: stand-in/,
  );
  const env = envOf(readFileSync(out, 'utf8'));
  assert.equal(env.has('KINDLER_TEST_SECRET'), false, [...env.keys()].join(' '));
});

test('a timeout stops the whole process group, grandchildren included, and says so', async () => {
  const pidFile = join(dir, 'grandchild.pid');
  const t0 = Date.now();
  const r = await runCaptured('bash', ['-c', `sleep 300 & echo $! > '${pidFile}'; sleep 300`], { timeoutMs: 300, graceMs: 500 });
  assert.equal(r.ok, false);
  assert.equal(r.timedOut, true);
  assert.equal(r.how, 'timed out after 0.3s');
  assert.ok(Date.now() - t0 < 5000, 'it did not wait for the sleeps');
  const grandchild = Number(readFileSync(pidFile, 'utf8'));
  assert.equal(processRunning(grandchild), false, 'the background sleep was killed with its group');
});

test('what a command leaves running in its group is killed when it exits', async () => {
  const pidFile = join(dir, 'straggler.pid');
  const r = await runCaptured('bash', ['-c', `sleep 300 >/dev/null 2>&1 & echo $! > '${pidFile}'; exit 0`], { timeoutMs: 10_000 });
  assert.equal(r.ok, true, r.reason);
  assert.equal(processRunning(Number(readFileSync(pidFile, 'utf8'))), false);
});

test('the reason is one sanitized line: how it ended and its last stderr line, escapes stripped', async () => {
  const r = await runCaptured('bash', ['-c', 'echo first >&2; printf "\\033[31mfatal:\\033[0m bad \\x07thing\\n" >&2; exit 3'], { timeoutMs: 10_000 });
  assert.equal(r.ok, false);
  assert.equal(r.exitCode, 3);
  assert.equal(r.reason, 'exited 3: fatal: bad thing');
  const gone = await runCaptured(join(dir, 'no-such-tool'), [], { timeoutMs: 10_000 });
  assert.equal(gone.ok, false);
  assert.match(gone.spawnError ?? '', /ENOENT/);
  assert.match(gone.reason, /^could not start: .*ENOENT/);
  assert.equal(existsSync(join(dir, 'no-such-tool')), false);
});

test('output is bounded per stream; what is dropped is counted', async () => {
  const r = await runCaptured('bash', ['-c', 'head -c 100000 /dev/zero | tr "\\0" x; head -c 5000 /dev/zero | tr "\\0" y >&2'], {
    timeoutMs: 10_000,
    maxOutput: 1000,
  });
  assert.equal(r.ok, true, r.reason);
  assert.equal(r.stdout.length, 1000);
  assert.equal(r.stderr.length, 1000);
  assert.equal(r.dropped, 99_000 + 4_000);
});

test('input goes to stdin; without it stdin is empty', async () => {
  const a = await runCaptured('cat', [], { timeoutMs: 10_000, input: 'given\n' });
  assert.equal(a.stdout, 'given\n');
  const b = await runCaptured('cat', [], { timeoutMs: 10_000 });
  assert.equal(b.stdout, '');
});

test('every child process starts in src/os: no other source file imports child_process or execa; git goes through simple-git in gitops.ts only', async () => {
  const { readdirSync, statSync } = await import('node:fs');
  const root = join(import.meta.dirname, '..', 'src');
  const files: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d)) {
      const p = join(d, e);
      if (statSync(p).isDirectory()) walk(p);
      else if (p.endsWith('.ts')) files.push(p);
    }
  };
  walk(root);
  const spawners: string[] = [];
  const git: string[] = [];
  for (const f of files) {
    const rel = f.slice(root.length + 1);
    const text = readFileSync(f, 'utf8');
    if (/from ['"](node:)?child_process['"]|from ['"]execa['"]|require\(['"](node:)?child_process['"]\)/.test(text) && !rel.startsWith('os/'))
      spawners.push(rel);
    if (/from ['"]simple-git['"]/.test(text) && rel !== 'provision/gitops.ts') git.push(rel);
  }
  assert.deepEqual(spawners, [], 'these files start processes outside src/os');
  assert.deepEqual(git, [], 'these files use simple-git outside provision/gitops.ts');
});
