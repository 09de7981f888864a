/**
 * The engine harness itself (test/docker-engine.ts): an engine the suite was told to use that does
 * not answer FAILS every engine test with the reason; an engine that cannot start at all SKIPS them
 * with the daemon's own error line. Each case runs a one-test file in a child `node --test`.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT } from './helpers.js';

const PROBE = join(ROOT, 'test', 'fixtures', 'engine-probe', 'probe.ts');

function runProbe(env: NodeJS.ProcessEnv): string {
  // (a nested test run would report to this one's runner in its binary protocol, not in TAP)
  delete env.NODE_TEST_CONTEXT;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=tap', PROBE], { cwd: ROOT, env, encoding: 'utf8', timeout: 120_000 });
  return `${r.stdout}${r.stderr}`;
}

test('an engine the suite was told to use that does not answer fails every engine test with the reason', () => {
  const env = { ...process.env, KINDLER_TEST_DOCKER_HOST: 'unix:///nonexistent/kindler-test/docker.sock' };
  const out = runProbe(env);
  assert.match(out, /not ok 1 - probe/, out);
  assert.match(out, /KINDLER_TEST_DOCKER_HOST=unix:\/\/\/nonexistent\/kindler-test\/docker\.sock does not answer: .*(Cannot connect|no such file)/i, out);
});

test("an engine that cannot start at all skips every engine test with the daemon's own error line", () => {
  // A PATH with docker, bash and the basics but no dockerd.
  const bin = mkdtempSync(join(tmpdir(), 'kindler-nodockerd-'));
  try {
    for (const tool of ['bash', 'docker', 'mkdir', 'setsid', 'sleep', 'cat', 'grep', 'tail', 'rm', 'kill', 'seq', 'pkill', 'tac']) {
      const found = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
      if (found) symlinkSync(found, join(bin, tool));
    }
    const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${bin}:${join(process.execPath, '..')}` };
    delete env.KINDLER_TEST_DOCKER_HOST;
    const out = runProbe(env);
    assert.match(out, /ok 1 - probe # SKIP no docker engine can start here \(dockerd: command not found/, out);
  } finally {
    rmSync(bin, { recursive: true, force: true });
  }
});
