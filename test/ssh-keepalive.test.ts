/**
 * ssh.keepaliveSeconds / ssh.keepaliveCountMax reach the daemon's SSH server: a real OpenSSH client
 * with a TUI open is frozen (SIGSTOP), and the daemon closes it after the configured probes go
 * unanswered, ending its session. Also the rule for the two settings.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { test } from 'node:test';
import { configProblems, DEFAULT_CONFIG } from '../src/core/config.js';
import { makeKeys } from './tui-harness.js';
import { makeWorld, sshClientOpts, startDaemon } from './helpers.js';

test('ssh.keepaliveSeconds and ssh.keepaliveCountMax: whole numbers >= 1', () => {
  const base = { ...DEFAULT_CONFIG, dataDir: '/d', scriptsDir: '/s', hooksDir: '/h' };
  assert.deepEqual(configProblems(base), []);
  assert.deepEqual(
    configProblems({ ...base, ssh: { ...base.ssh, keepaliveSeconds: 0 } }).filter((p) => p.startsWith('ssh.keepalive')),
    ['ssh.keepaliveSeconds: must be a whole number >= 1'],
  );
  assert.deepEqual(
    configProblems({ ...base, ssh: { ...base.ssh, keepaliveCountMax: 1.5 } }).filter((p) => p.startsWith('ssh.keepalive')),
    ['ssh.keepaliveCountMax: must be a whole number >= 1'],
  );
});

test('a frozen OpenSSH client is closed after the configured keepalive probes, and its TUI session ends', async (t) => {
  const keys = makeKeys();
  const admin = keys.key('admin');
  const w = makeWorld({
    ssh: { enabled: true, host: '127.0.0.1', port: 0, hostKeyFile: './keys/host', usersFile: './users.conf', keepaliveSeconds: 1, keepaliveCountMax: 1 },
  });
  w.env.KINDLER_INITIAL_ADMIN_KEYS = admin.pub;
  const d = await startDaemon(w);
  t.after(async () => {
    await d.stop();
    w.cleanup();
    rmSync(keys.dir, { recursive: true, force: true });
  });
  await d.waitFor(/ssh listening on 127\.0\.0\.1:\d+/);
  const port = /ssh listening on 127\.0\.0\.1:(\d+)/.exec(d.output())![1]!;
  const ssh = spawn('ssh', ['-tt', '-i', admin.path, '-p', port, ...sshClientOpts(10), '-o', 'ServerAliveInterval=0', 'kindler@127.0.0.1'], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  t.after(() => ssh.kill('SIGKILL'));
  await d.waitFor(/TUI session started/, 15_000);
  const frozenAt = Date.now();
  ssh.kill('SIGSTOP');
  await d.waitFor(/keepalive timeout; closing/, 15_000);
  await d.waitFor(/TUI session ended/, 15_000);
  // One probe a second, closed at the second one unanswered: about 2 s after the client went quiet.
  const took = Date.now() - frozenAt;
  assert.ok(took < 8000, `closed ${took} ms after the client froze`);
});
