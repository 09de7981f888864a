/**
 * The control socket takes the caller from the kernel (SO_PEERCRED), never from the request: a
 * client claiming to be someone else is audited, owns clusters and shows up in presence as who it is.
 * Runs as root; the other callers are made with setpriv (util-linux).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync } from 'node:fs';
import { join } from 'node:path';
import { userInfo } from 'node:os';
import { makeWorld, startDaemon, type World } from './helpers.js';
import { nameInPasswd } from '../src/control/peercred.js';

/** A raw client: sends one request line, prints the verb's stdout (or a snapshot's sessions), exits with its code. */
const RAW_CLIENT = `
const net = require('node:net');
const [path, req] = process.argv.slice(1);
const s = net.connect(path);
let buf = '', out = '', err = '', code = null;
s.on('connect', () => s.write(req + '\\n'));
s.on('data', (d) => {
  buf += d;
  let i;
  while ((i = buf.indexOf('\\n')) >= 0) {
    const m = JSON.parse(buf.slice(0, i));
    buf = buf.slice(i + 1);
    if (m.type === 'out') out += m.data;
    else if (m.type === 'err') err += m.data;
    else if (m.type === 'exit') code = m.code;
    else if (m.type === 'snapshot') { out = JSON.stringify(m.snapshot.sessions); code = 0; s.destroy(); }
  }
});
s.on('close', () => { process.stdout.write(out); process.stderr.write(err); process.exit(code ?? 99); });
s.on('error', (e) => { process.stderr.write(String(e)); process.exit(98); });
`;

interface Raw {
  code: number | null;
  out: string;
  err: string;
}

/** Runs the raw client, optionally under `setpriv` (as another uid), with a deadline. */
function raw(w: World, req: object, setpriv: string[] = []): Promise<Raw> {
  const argv = [process.execPath, '-e', RAW_CLIENT, join(w.dataDir, 'kindler.sock'), JSON.stringify(req)];
  const [file, args] = setpriv.length ? ['setpriv', [...setpriv, '--', ...argv]] : [argv[0]!, argv.slice(1)];
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: 30_000, encoding: 'utf8' }, (e, out, err) => {
      if (e && typeof e.code !== 'number') return reject(new Error(`raw client failed: ${e.message}\n${err}`));
      resolve({ code: e ? (e.code as number) : 0, out, err });
    });
  });
}

const run = (argv: string[]) => ({ type: 'run', argv, user: 'op1', isTTY: false, columns: 100, files: {} });

test("the control socket records the kernel's peer, not the user name the client sends", async (t) => {
  const w = makeWorld();
  // Another local user in the socket's group (gid 0 here, the daemon runs as root) must reach it.
  chmodSync(w.dir, 0o750);
  const d = await startDaemon(w);
  // (after-hooks run in the order they were added: the daemon stops before its world is removed)
  t.after(async () => {
    await d.stop();
    w.cleanup();
  });
  const me = userInfo().username;
  assert.equal(process.getuid?.(), 0, 'this test runs as root');

  const who = await raw(w, run(['whoami', '--json']));
  assert.equal(who.code, 0, who.err);
  assert.deepEqual(JSON.parse(who.out), { user: me, role: 'admin', source: 'local-cli' });

  const created = await raw(w, run(['create', 'mine', '--json']));
  assert.equal(created.code, 0, created.err);
  assert.equal(JSON.parse(created.out).task.user, me);

  // A member of the socket's group with a passwd entry: recorded under its login name.
  const nobody = ['--reuid=65534', '--regid=0', '--clear-groups'];
  const theirs = await raw(w, run(['whoami', '--json']), nobody);
  assert.equal(theirs.code, 0, theirs.err);
  assert.deepEqual(JSON.parse(theirs.out), { user: 'nobody', role: 'admin', source: 'local-cli' });
  const made = await raw(w, run(['create', 'theirs', '--json']), nobody);
  assert.equal(made.code, 0, made.err);
  // A uid without a passwd entry: recorded as uid:N (never a name a users-file user could have).
  const anon = await raw(w, run(['whoami', '--json']), ['--reuid=54321', '--regid=0', '--clear-groups']);
  assert.equal(anon.code, 0, anon.err);
  assert.equal(JSON.parse(anon.out).user, 'uid:54321');

  // Presence (the TUI's subscribe) names the peer too.
  const sub = await raw(w, { type: 'subscribe', user: 'op1' }, nobody);
  assert.equal(sub.code, 0, sub.err);
  assert.deepEqual(
    JSON.parse(sub.out).map((s: { user: string }) => s.user),
    ['nobody'],
  );

  const show = (name: string) => raw(w, run(['show', name, '--json'])).then((r) => JSON.parse(r.out).cluster.owner as string);
  assert.equal(await show('mine'), me);
  assert.equal(await show('theirs'), 'nobody');
  const audit = await raw(w, run(['audit', '--json']));
  const events = JSON.parse(audit.out).events as { user: string; action: string; target: string }[];
  const creates = events
    .filter((e) => e.action === 'create')
    .map((e) => `${e.user}:${e.target}`)
    .sort();
  assert.deepEqual(creates, [`${me}:mine`, 'nobody:theirs'].sort());
  assert.ok(!audit.out.includes('op1'), 'the name the client sent is recorded nowhere');
});

test('uid to name: the passwd line of that uid, nothing else', () => {
  const text = 'root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\nbroken:1000\n';
  assert.equal(nameInPasswd(text, 1000), 'alice');
  assert.equal(nameInPasswd(text, 0), 'root');
  assert.equal(nameInPasswd(text, 1), undefined);
});
