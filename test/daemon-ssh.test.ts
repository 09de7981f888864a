/**
 * The real daemon process with SSH on, driven by the real OpenSSH client and the local CLI:
 * first-run admin bootstrap, users managed over SSH, and the role x verb matrix on every face.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { auditOnDisk, cli, makeWorld, startDaemon, type Daemon, type World } from './helpers.js';

const KEYS = mkdtempSync(join(tmpdir(), 'kindler-e2e-keys-'));
function key(name: string): { path: string; pub: string } {
  const path = join(KEYS, name);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `${name}@test`, '-f', path]);
  return { path, pub: readFileSync(`${path}.pub`, 'utf8').trim() };
}
const admin = key('root-admin');
const oper = key('oper');
const other = key('other');
const view = key('view');

let w: World;
let d: Daemon;
let port = 0;

export interface SshResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** One exec over the real OpenSSH client. */
export function ssh(p: number, keyPath: string, args: string[], timeoutMs = 60000): Promise<SshResult> {
  return new Promise((resolve) => {
    execFile(
      'ssh',
      [
        '-p',
        String(p),
        '-i',
        keyPath,
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
        ...args,
      ],
      { timeout: timeoutMs },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr }),
    );
  });
}

before(async () => {
  w = makeWorld({ ssh: { enabled: true, host: '127.0.0.1', port: 0, hostKeyFile: './keys/host', usersFile: './users.conf' } });
  w.env.KINDLER_INITIAL_ADMIN_KEYS = admin.pub;
  d = await startDaemon(w);
  const m = /ssh listening on 127\.0\.0\.1:(\d+)/.exec(d.output());
  assert.ok(m, d.output());
  port = Number(m[1]);
});

after(async () => {
  await d?.stop();
  w?.cleanup();
});

test('first start: host key created owner-only and its fingerprint logged; the bootstrap key is admin', async () => {
  assert.match(d.output(), /ssh host key .*keys\/host \(created\): SHA256:[A-Za-z0-9+/]{43}/);
  assert.equal(statSync(join(w.dir, 'keys', 'host')).mode & 0o777, 0o600);
  assert.match(d.output(), /KINDLER_INITIAL_ADMIN_KEYS made \S+ an admin/);
  const who = await ssh(port, admin.path, ['whoami', '--json']);
  assert.equal(who.code, 0, who.stderr);
  const me = JSON.parse(who.stdout);
  assert.equal(me.role, 'admin');
  assert.match(me.source, /^ssh 127\.0\.0\.1/);
  assert.match(me.fingerprint, /^SHA256:/);
});

test('an admin adds users over SSH; the same verbs, JSON and exit codes as the local CLI', async () => {
  for (const [name, role, k] of [
    ['olga', 'operator', oper],
    ['otto', 'operator', other],
    ['vera', 'viewer', view],
  ] as const) {
    const r = await ssh(port, admin.path, ['users', 'add', name, '--role', role, '--key', `"${k.pub}"`]);
    assert.equal(r.code, 0, r.stderr);
  }
  const listed = JSON.parse((await ssh(port, admin.path, ['users', 'list', '--json'])).stdout).users.map(
    (u: { name: string; role: string }) => `${u.name}:${u.role}`,
  );
  assert.ok(listed.includes('olga:operator') && listed.includes('vera:viewer'), listed.join(','));
  // Same verb over SSH and locally: identical stdout and exit code.
  for (const args of [
    ['list', '--json'],
    ['version', '--json'],
    ['show', 'nope', '--json'],
    ['create', 'Bad_Name', '--json'],
  ]) {
    const remote = await ssh(port, admin.path, args);
    const local = await cli(w, args);
    assert.equal(remote.code, local.code, args.join(' '));
    assert.equal(remote.stdout, local.stdout, args.join(' '));
    assert.equal(remote.stderr, local.stderr, args.join(' '));
  }
});

test('create --wait over SSH streams progress and the log and exits with the result', async () => {
  const r = await ssh(port, oper.path, ['create', 'olgas', '--wait']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /==> \[1\/5\]/);
  assert.match(r.stdout, /task t-\d+: create olgas succeeded/);
  const show = JSON.parse((await cli(w, ['show', 'olgas', '--json'])).stdout).cluster;
  assert.equal(show.owner, 'olga');
});

test('the role x verb matrix: viewer reads, operator acts on its own, admin on all; refusals exit 5', async () => {
  // olgas belongs to olga (operator). A second cluster belongs to otto.
  assert.equal((await ssh(port, other.path, ['create', 'ottos', '--wait'])).code, 0);
  const cases: [string, { path: string }, string[], number][] = [
    ['viewer list', view, ['list'], 0],
    ['viewer show', view, ['show', 'olgas'], 0],
    ['viewer tasks', view, ['tasks'], 0],
    ['viewer logs', view, ['logs', 'olgas'], 0],
    ['viewer create', view, ['create', 'vcl'], 5],
    ['viewer stop', view, ['stop', 'olgas'], 5],
    ['viewer delete', view, ['delete', 'olgas'], 5],
    ['viewer users', view, ['users', 'list'], 5],
    ['operator stops own', oper, ['stop', 'olgas', '--wait'], 0],
    ['operator starts own', oper, ['start', 'olgas', '--wait'], 0],
    ['operator stops other', oper, ['stop', 'ottos'], 5],
    ['operator deletes other', oper, ['delete', 'ottos'], 5],
    ['operator users', oper, ['users', 'list'], 5],
    ['operator import-csv', oper, ['import-csv', '/etc/hostname'], 5],
    ['admin stops other', admin, ['stop', 'ottos', '--wait'], 0],
    ['operator deletes own', oper, ['delete', 'olgas', '--wait'], 0],
  ];
  for (const [label, k, args, code] of cases) {
    const r = await ssh(port, k.path, args);
    assert.equal(r.code, code, `${label}: ${r.stderr}`);
    if (code === 5) {
      assert.equal(r.stderr.trim().split('\n').length, 1, label);
      assert.match(r.stderr, /^error: /, label);
    }
  }
  // The local CLI acts as admin (socket access is the daemon's user and group).
  assert.equal((await cli(w, ['delete', 'ottos', '--wait'])).code, 0);
  // Refusals are audited in the state file.
  assert.ok(auditOnDisk(w.dataDir).some((a) => a.result === 'refused' && a.user === 'vera'));
});

test('a removed user is locked out at once; an unknown key never gets in', async () => {
  assert.equal((await ssh(port, admin.path, ['users', 'remove', 'otto'])).code, 0);
  const r = await ssh(port, other.path, ['list']);
  assert.equal(r.code, 255);
  assert.match(r.stderr, /Permission denied \(publickey\)/);
  const u = await ssh(port, key('nobody').path, ['list']);
  assert.equal(u.code, 255);
});
