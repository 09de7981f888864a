/**
 * The users file: parsing (bad lines are reported and skipped, never locking others out), key
 * lookup, atomic edits that keep comments, first-run admin bootstrap, reload on change.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KindlerError } from '../src/core/errors.js';
import { fingerprint, parsePublicKeyLine, UsersStore } from '../src/access/users.js';

interface Key {
  pub: string;
  base64: string;
  fp: string;
  blob: Buffer;
}

const keyDir = mkdtempSync(join(tmpdir(), 'kindler-users-keys-'));
let keySeq = 0;
function newKey(type: 'ed25519' | 'rsa' | 'ecdsa' = 'ed25519', comment = `k${keySeq}`, bits?: number): Key {
  const f = join(keyDir, `k${++keySeq}`);
  execFileSync('ssh-keygen', ['-q', '-t', type, ...(bits ? ['-b', String(bits)] : []), '-N', '', '-C', comment, '-f', f]);
  const pub = readFileSync(`${f}.pub`, 'utf8').trim();
  const base64 = pub.split(' ')[1]!;
  const fp = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${f}.pub`], { encoding: 'utf8' }).split(' ')[1]!;
  return { pub, base64, fp, blob: Buffer.from(base64, 'base64') };
}
process.on('exit', () => rmSync(keyDir, { recursive: true, force: true }));

function tempFile(t: import('node:test').TestContext, content?: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'kindler-users-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'users.conf');
  if (content !== undefined) writeFileSync(file, content, { mode: 0o640 });
  return file;
}

function kindOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof KindlerError, `expected a KindlerError, got ${String(e)}`);
    return `${e.kind}: ${e.message}`;
  }
  assert.fail('expected an error');
}

const A = newKey('ed25519', 'alice@laptop');
const B = newKey('ed25519', 'bob');
const C = newKey('ecdsa', 'carol');
const R = newKey('rsa', 'rsa-user', 3072);

test('fingerprints match ssh-keygen -l', () => {
  for (const k of [A, C, R]) assert.equal(fingerprint(k.blob), k.fp);
  assert.equal(parsePublicKeyLine(A.pub).comment, 'alice@laptop');
});

test('valid lines load; malformed lines are reported with file:line and skipped', (t) => {
  const small = newKey('rsa', 'small', 1024);
  const file = tempFile(
    t,
    [
      '# kindler users',
      '',
      `alice admin ${A.pub}`,
      `alice admin ${newKey().pub}`,
      'Bad-Name viewer ssh-ed25519 AAAA',
      `bob superuser ${B.pub}`,
      `bob operator ssh-ed25519 not-base64!`,
      `bob operator ssh-dss ${B.base64}`,
      `bob operator ssh-rsa ${B.base64}`,
      `bob operator ${B.pub}`,
      `alice viewer ${newKey().pub}`,
      `carol viewer ${A.pub}`,
      `dave viewer ${small.pub}`,
      `erin viewer restrict,from="1.2.3.4" ${C.pub}`,
      'frank viewer',
      `carol viewer ${C.pub} carol's laptop   with spaces`,
      `rick operator ${R.pub}`,
      '   # indented comment',
    ].join('\n') + '\n',
  );
  const users = new UsersStore({ file });
  const problems = users.load();
  const lines = problems.map((p) => Number(/:(\d+): /.exec(p)?.[1]));
  assert.deepEqual(lines, [5, 6, 7, 8, 9, 11, 12, 13, 14, 15], problems.join('\n'));
  for (const p of problems) assert.ok(p.startsWith(`${file}:`), p);
  assert.match(problems[0]!, /name "Bad-Name" is not valid/);
  assert.match(problems[1]!, /role "superuser" is not one of viewer, operator, admin/);
  assert.match(problems[2]!, /not base64/);
  assert.match(problems[3]!, /unsupported key type "ssh-dss"/);
  assert.match(problems[4]!, /cannot parse the ssh-rsa key|does not match/);
  assert.match(problems[5]!, /alice is admin on line 3; a user has one role/);
  assert.match(problems[6]!, /already listed on line 3 \(for alice\)/);
  assert.match(problems[7]!, /RSA key too small \(1024 bits/);
  assert.match(problems[8]!, /unsupported key type "restrict,from=/);
  assert.match(problems[9]!, /expected "NAME ROLE KEYTYPE BASE64 \[comment\]"/);

  const list = users.list();
  assert.deepEqual(
    list.map((u) => [u.name, u.role, u.keys.length]),
    [
      ['alice', 'admin', 2],
      ['bob', 'operator', 1],
      ['carol', 'viewer', 1],
      ['rick', 'operator', 1],
    ],
  );
  assert.equal(users.get('carol')!.keys[0]!.comment, "carol carol's laptop   with spaces");
  assert.equal(users.get('bob')!.keys[0]!.line, 10);

  const m = users.findByKey('ssh-ed25519', A.blob)!;
  assert.equal(m.user, 'alice');
  assert.equal(m.role, 'admin');
  assert.equal(m.fingerprint, A.fp);
  assert.equal(users.findByKey('ssh-rsa', A.blob), undefined, 'the algorithm must match the key');
  assert.equal(users.findByKey('ecdsa-sha2-nistp256', C.blob)!.user, 'carol');
  assert.equal(users.findByKey('ssh-rsa', R.blob)!.user, 'rick');
  assert.equal(users.findByKey('ssh-ed25519', newKey().blob), undefined);
  assert.equal(users.findByKey('ssh-ed25519', Buffer.alloc(0)), undefined);
});

test('a missing file means no users; a group-writable file is reported', (t) => {
  const file = tempFile(t);
  const users = new UsersStore({ file });
  assert.match(users.load().join('\n'), /no users file; nobody can log in/);
  assert.deepEqual(users.list(), []);
  writeFileSync(file, `alice admin ${A.pub}\n`, { mode: 0o666 });
  execFileSync('chmod', ['0666', file]);
  assert.match(users.load().join('\n'), /writable by group or others/);
  assert.equal(users.list().length, 1, 'still loaded: the warning does not lock anyone out');
});

test('edits re-read the file, keep comments, write atomically with mode 0640, and report clear errors', (t) => {
  const file = tempFile(t, `# header comment\nalice admin ${A.pub}\n# between\n`);
  const users = new UsersStore({ file });
  users.load();
  let changes = 0;
  users.on('change', () => changes++);

  const bob = users.add('bob', 'operator', B.pub);
  assert.deepEqual(bob, { name: 'bob', role: 'operator', keys: [{ type: 'ssh-ed25519', fingerprint: B.fp, comment: 'bob', line: 4 }] });
  assert.equal(statSync(file).mode & 0o777, 0o640);
  assert.deepEqual(readdirSync(join(file, '..')), ['users.conf'], 'no temp files left');

  // A hand edit made meanwhile is kept by the next change.
  appendFileSync(file, '# added by hand\n');
  users.addKey('bob', `${C.pub.split(' ').slice(0, 2).join(' ')} second key`);
  users.setRole('bob', 'viewer');
  const text = readFileSync(file, 'utf8');
  assert.equal(
    text,
    `# header comment\nalice admin ${A.pub}\n# between\nbob viewer ${B.pub}\nbob viewer ${C.pub.split(' ').slice(0, 2).join(' ')} second key\n# added by hand\n`,
  );
  assert.equal(users.get('bob')!.role, 'viewer');
  assert.equal(users.findByKey('ecdsa-sha2-nistp256', C.blob)!.user, 'bob');

  assert.match(
    kindOf(() => users.add('bob', 'viewer', newKey().pub)),
    /^conflict: user: bob already exists/,
  );
  assert.match(
    kindOf(() => users.add('carol', 'viewer', B.pub)),
    /^conflict: key: SHA256:\S+ already belongs to bob/,
  );
  assert.match(
    kindOf(() => users.add('Carol', 'viewer', newKey().pub)),
    /^usage: name: "Carol" is not a valid user name/,
  );
  assert.match(
    kindOf(() => users.add('carol', 'root', newKey().pub)),
    /^usage: role: must be one of viewer, operator, admin/,
  );
  assert.match(
    kindOf(() => users.add('carol', 'viewer', 'ssh-ed25519 AAAA')),
    /^usage: key: /,
  );
  assert.match(
    kindOf(() => users.add('carol', 'viewer', `${newKey().pub}\nmallory admin ${newKey().pub}`)),
    /^usage: key: must be one line/,
  );
  assert.match(
    kindOf(() => users.remove('nobody')),
    /^notFound: user: no user named "nobody"/,
  );
  assert.match(
    kindOf(() => users.addKey('nobody', newKey().pub)),
    /^notFound: user: no user named "nobody"/,
  );
  assert.match(
    kindOf(() => users.removeKey('bob', 'SHA256:' + 'A'.repeat(43))),
    /^notFound: key: bob has no key/,
  );
  assert.match(
    kindOf(() => users.removeKey('bob', 'nonsense')),
    /^usage: key: give a fingerprint/,
  );

  // The last admin can be neither removed nor demoted; a user's last key cannot be removed.
  assert.match(
    kindOf(() => users.remove('alice')),
    /^conflict: user: alice is the last admin/,
  );
  assert.match(
    kindOf(() => users.setRole('alice', 'operator')),
    /^conflict: role: alice is the last admin/,
  );
  users.removeKey('bob', C.fp);
  assert.match(
    kindOf(() => users.removeKey('bob', B.pub)),
    /^conflict: key: \S+ is bob's only key/,
  );
  users.addKey('bob', C.pub);
  users.removeKey('bob', C.fp.slice('SHA256:'.length));
  assert.equal(users.get('bob')!.keys.length, 1);

  users.setRole('bob', 'admin');
  users.setRole('alice', 'viewer');
  users.remove('alice');
  assert.deepEqual(
    users.list().map((u) => u.name),
    ['bob'],
  );
  assert.equal(readFileSync(file, 'utf8'), `# header comment\n# between\nbob admin ${B.pub}\n# added by hand\n`);
  assert.ok(changes >= 8);
});

test('edits keep malformed lines as they are (they stay reported, still skipped)', (t) => {
  const file = tempFile(t, `alice admin ${A.pub}\nbroken line\n`);
  const users = new UsersStore({ file });
  assert.equal(users.load().length, 1);
  users.add('bob', 'viewer', B.pub);
  assert.equal(readFileSync(file, 'utf8'), `alice admin ${A.pub}\nbroken line\nbob viewer ${B.pub}\n`);
  assert.equal(users.problems().length, 1);
});

test('first run: KINDLER_INITIAL_ADMIN_KEYS adds admins only when no admin exists', (t) => {
  const file = tempFile(t);
  const users = new UsersStore({ file });
  users.load();
  const named = newKey('ed25519', 'ops_lead');
  const env = [A.pub, '', named.pub, 'ssh-ed25519 garbage', `${newKey('ed25519', 'x y').pub}`].join('\n');
  const r = users.bootstrap(env);
  assert.deepEqual(
    r.added.map((a) => a.user),
    ['admin', 'ops_lead', 'admin'],
  );
  assert.equal(r.problems.length, 1);
  assert.match(r.problems[0]!, /KINDLER_INITIAL_ADMIN_KEYS line 4: key: /);
  assert.deepEqual(
    users.list().map((u) => [u.name, u.role, u.keys.length]),
    [
      ['admin', 'admin', 2],
      ['ops_lead', 'admin', 1],
    ],
  );
  assert.equal(statSync(file).mode & 0o777, 0o640);
  assert.match(readFileSync(file, 'utf8'), /^# kindler users: NAME ROLE KEYTYPE BASE64 \[comment\]\n/);

  // An admin exists now: nothing more is added.
  const again = users.bootstrap(B.pub);
  assert.deepEqual(again.added, []);
  assert.equal(again.skipped, 'an admin already exists');
  assert.equal(users.findByKey('ssh-ed25519', B.blob), undefined);

  // Nothing happens without the variable.
  assert.deepEqual(new UsersStore({ file: tempFile(t) }).bootstrap(undefined), { added: [], problems: [] });
});

test('bootstrap does not hand admin to a key or a name that already belongs to someone', (t) => {
  const file = tempFile(t, `bob viewer ${B.pub}\n`);
  const users = new UsersStore({ file });
  users.load();
  const bobNamed = newKey('ed25519', 'bob');
  const r = users.bootstrap([B.pub, bobNamed.pub].join('\n'));
  assert.match(r.problems[0]!, /already listed for bob \(viewer\); not changed/);
  assert.deepEqual(r.added, [{ user: 'admin', fingerprint: bobNamed.fp }], 'a comment naming a non-admin user falls back to "admin"');
  assert.equal(users.get('bob')!.role, 'viewer');
});

test('the watcher reloads after a change and logs; its own writes are not reloaded twice', async (t) => {
  const file = tempFile(t, `alice admin ${A.pub}\n`);
  const logs: string[] = [];
  let wake: (() => void) | undefined;
  const users = new UsersStore({
    file,
    debounceMs: 50,
    log: (_l, m) => {
      logs.push(m);
      wake?.();
    },
  });
  users.load();
  users.watch();
  t.after(() => users.close());
  const waitLog = (re: RegExp, ms = 5000) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no log matching ${re} within ${ms} ms: ${logs.join(' | ')}`)), ms);
      const check = () => {
        if (logs.some((l) => re.test(l))) {
          clearTimeout(timer);
          wake = undefined;
          resolve();
        } else wake = check;
      };
      check();
    });
  appendFileSync(file, `bob operator ${B.pub}\nbad\n`);
  await waitLog(/users file reloaded \(file changed\): 2 users, 2 keys, 1 problems/);
  assert.ok(logs.some((l) => /users file: .*:3: expected/.test(l)));
  assert.equal(users.findByKey('ssh-ed25519', B.blob)!.user, 'bob');

  // Replacing the file (as editors do) is seen too.
  writeFileSync(`${file}.new`, `alice admin ${A.pub}\n`);
  execFileSync('mv', [`${file}.new`, file]);
  await waitLog(/users file reloaded \(file changed\): 1 users, 1 keys$/);
  assert.equal(users.findByKey('ssh-ed25519', B.blob), undefined);

  const before = logs.length;
  users.add('carol', 'viewer', C.pub);
  // A later external change is still seen, and the store's own write produced no reload line.
  appendFileSync(file, '# touch\n');
  await waitLog(/users file reloaded \(file changed\): 2 users, 2 keys$/);
  assert.equal(logs.slice(before).filter((l) => /reloaded/.test(l)).length, 1);

  // SIGHUP-style reloads always log.
  users.reload('SIGHUP');
  assert.match(logs.at(-1)!, /users file reloaded \(SIGHUP\)/);
});
