/**
 * The SSH face, end to end: the real server in-process (port 0) with an in-process engine, driven
 * by the real OpenSSH client (and ssh2's Client where OpenSSH cannot misbehave on purpose).
 * Every wait is on an event or output line with a deadline; nothing sleeps.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect as netConnect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import type { ClientChannel, ConnectConfig, HostBasedAuthMethod, KeyboardInteractiveAuthMethod, ParsedKey, PasswordAuthMethod } from 'ssh2';
import { UsersStore } from '../src/access/users.js';
import { loadOrCreateHostKey, HostKeyError, type HostKey } from '../src/ssh/hostkey.js';
import { startSshServer, DEFAULT_SSH_LIMITS, type OpenTui, type SshLimits, type SshServer } from '../src/ssh/server.js';
import { splitCommand } from '../src/ssh/argv.js';
import { FailureLimiter } from '../src/ssh/ratelimit.js';
import { KindlerError } from '../src/core/errors.js';
import type { Engine } from '../src/engine/engine.js';
import { Service } from '../src/commands/service.js';
import { makeWorld, sshClientOpts, startEngine, TwoFacedAgent, until, type World } from './helpers.js';

const { Client, utils } = ssh2;

// ---- keys ----------------------------------------------------------------------------------------

const KEYS = mkdtempSync(join(tmpdir(), 'kindler-ssh-keys-'));
interface Key {
  name: string;
  path: string;
  pub: string;
  fp: string;
  priv: ParsedKey;
}
function makeKey(name: string, type: 'ed25519' | 'ecdsa' | 'rsa' = 'ed25519', bits?: number): Key {
  const path = join(KEYS, name);
  const b = bits ?? (type === 'rsa' ? 3072 : undefined);
  execFileSync('ssh-keygen', ['-q', '-t', type, ...(b ? ['-b', String(b)] : []), '-N', '', '-C', name, '-f', path]);
  const pub = readFileSync(`${path}.pub`, 'utf8').trim();
  const fp = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${path}.pub`], { encoding: 'utf8' }).split(' ')[1]!;
  const priv = utils.parseKey(readFileSync(path)) as ParsedKey;
  return { name, path, pub, fp, priv };
}
const alice = makeKey('alice');
const bob = makeKey('bob');
const vic = makeKey('vic');
const carl = makeKey('carl');
const stranger = makeKey('stranger');
const strangers = [makeKey('s1'), makeKey('s2'), makeKey('s3')];
const HOST: HostKey = loadOrCreateHostKey(join(KEYS, 'host', 'ssh_host_ed25519_key'));
process.on('exit', () => rmSync(KEYS, { recursive: true, force: true }));

const USERS = [`# test users`, `alice admin ${alice.pub}`, `bob operator ${bob.pub}`, `vic viewer ${vic.pub}`, ''].join('\n');

// ---- a stub TUI (the real one lives in src/tui) -------------------------------------------------

/** Writes one line, then: q quits, x throws, t throws from a timer, p rejects a promise, f arms a throwing feed listener, r runs `list`. */
const stubTui: OpenTui = (o) => {
  let done = false;
  const exit = (code: number, reason: string) => {
    if (done) return;
    done = true;
    o.onExit(code, reason);
  };
  const p = o.backend.principal;
  o.output.write(`stub tui: ${p.user} ${p.role} ${p.source} ${o.columns}x${o.rows} on ${o.backend.host} idle ${o.idle?.warnMs}/${o.idle?.closeMs}\r\n`);
  o.input.on('data', (d: Buffer) => {
    const s = d.toString();
    if (s.includes('q')) {
      o.output.write('bye\r\n');
      exit(0, 'quit');
    } else if (s.includes('x')) throw new Error('stub: synchronous crash');
    else if (s.includes('t'))
      setTimeout(() => {
        throw new Error('stub: crash in a timer');
      }, 1);
    else if (s.includes('p')) void Promise.reject(new Error('stub: rejected promise'));
    else if (s.includes('r')) void o.backend.run(['list', '--json']).then((r) => o.output.write(`run: ${r.code} ${r.out.trim()}\r\n`));
    else if (s.includes('f')) armed = true;
  });
  // f: the next engine event makes the feed listener throw.
  let armed = false;
  void o.backend.subscribe((e) => {
    if (armed) throw new Error(`stub: feed listener crash on ${e.type}`);
  });
  return {
    resize: (c, r) => o.output.write(`resized ${c}x${r}\r\n`),
    close: (message) => {
      if (message) o.output.write(`${message}\r\n`);
      exit(0, 'closed');
    },
  };
};

// ---- harness -------------------------------------------------------------------------------------

const TEST_LIMITS: SshLimits = {
  ...DEFAULT_SSH_LIMITS,
  maxUnauthenticated: 50,
  loginGraceMs: 20_000,
  rateLimit: { failures: 1000, windowMs: 60_000, blockMs: 60_000, delayMs: 0 },
  maxSessionsPerUser: 20,
  maxChannelsPerConnection: 10,
};

interface Proc {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

interface H {
  w: World;
  engine: Engine;
  users: UsersStore;
  usersFile: string;
  srv: SshServer;
  logs: string[];
  /** Resolves with the first log line (from `from` on) matching. */
  waitLog(re: RegExp, ms?: number, from?: number): Promise<string>;
  ssh(key: Key | Key[], args: string[], o?: SshOpts): Promise<Proc>;
  spawnSsh(key: Key, args: string[], o?: SshOpts): Live;
  client(key: Key | null, extra?: Partial<ConnectConfig>): Promise<InstanceType<typeof Client>>;
  shell(key: Key, size?: { cols: number; rows: number }): Promise<Shell>;
  track(p: ChildProcess): ChildProcess;
}

interface SshOpts {
  opts?: string[];
  env?: NodeJS.ProcessEnv;
  input?: string;
  timeoutMs?: number;
}

interface Live {
  proc: ChildProcess;
  out(): string;
  err(): string;
  waitOut(re: RegExp, ms?: number): Promise<void>;
  waitErr(re: RegExp, ms?: number): Promise<void>;
  done: Promise<Proc>;
}

interface Shell {
  stream: ClientChannel;
  out(): string;
  waitFor(re: RegExp, ms?: number): Promise<void>;
  send(s: string): void;
  /** The exit status (undefined when the server closed without one). */
  exit: Promise<number | undefined>;
}

/** Waits on a growing text: re-checks whenever `onChange` fires, rejects after `ms` with the text. */
function waiter(text: () => string, subscribe: (wake: () => void) => () => void) {
  return (re: RegExp, ms = 10_000) =>
    new Promise<void>((resolve, reject) => {
      let off = () => undefined as void;
      const timer = setTimeout(() => {
        off();
        reject(new Error(`timed out after ${ms} ms waiting for ${re}; got:\n${text()}`));
      }, ms);
      const check = () => {
        if (re.test(text())) {
          clearTimeout(timer);
          off();
          resolve();
          return true;
        }
        return false;
      };
      if (!check()) off = subscribe(() => void check());
    });
}

function emitterOf() {
  const ws = new Set<() => void>();
  return {
    wake: () => {
      for (const f of [...ws]) f();
    },
    subscribe: (f: () => void) => {
      ws.add(f);
      return () => void ws.delete(f);
    },
  };
}

const SSH_BASE = [...sshClientOpts(10), '-o', 'LogLevel=ERROR'];

async function setup(
  t: import('node:test').TestContext,
  o: { limits?: Partial<SshLimits>; users?: string; keepalive?: { intervalMs: number; countMax: number }; realTui?: boolean } = {},
): Promise<H> {
  const w = makeWorld();
  const engine = await startEngine(w);
  const usersFile = join(w.dir, 'config', 'users.conf');
  mkdirSync(join(w.dir, 'config'), { recursive: true });
  writeFileSync(usersFile, o.users ?? USERS, { mode: 0o640 });
  const logs: string[] = [];
  const ev = emitterOf();
  const log = (level: string, msg: string) => {
    logs.push(`${level} ${msg}`);
    if (process.env.KINDLER_TEST_VERBOSE) process.stderr.write(`    [log] ${level} ${msg}\n`);
    ev.wake();
  };
  const users = new UsersStore({ file: usersFile, log, debounceMs: 50 });
  for (const p of users.load()) log('warn', `users file: ${p}`);
  users.watch();
  const srv = await startSshServer({
    service: new Service(engine),
    users,
    hostKey: HOST,
    host: '127.0.0.1',
    port: 0,
    log,
    limits: { ...TEST_LIMITS, ...o.limits },
    hostName: 'testhost',
    ...(o.realTui ? {} : { openTui: stubTui }),
    ...(o.keepalive ? { keepalive: o.keepalive } : {}),
  });
  const procs = new Set<ChildProcess>();
  const clients = new Set<InstanceType<typeof Client>>();
  t.after(async () => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    for (const c of clients) c.destroy();
    await srv.stop();
    users.close();
    await engine.shutdown();
    w.cleanup();
  });
  const track = (p: ChildProcess) => {
    procs.add(p);
    p.on('exit', () => procs.delete(p));
    return p;
  };

  const spawnSsh = (key: Key | Key[], args: string[], so: SshOpts = {}): Live => {
    const keys = Array.isArray(key) ? key : [key];
    const argv = [...SSH_BASE, '-p', String(srv.port), ...keys.flatMap((k) => ['-i', k.path]), ...(so.opts ?? []), 'kindler@127.0.0.1', ...args];
    const env = { ...process.env, ...so.env };
    if (!so.env?.SSH_AUTH_SOCK) delete env.SSH_AUTH_SOCK;
    const started = Date.now();
    const proc = track(spawn('ssh', argv, { env, stdio: ['pipe', 'pipe', 'pipe'] }));
    let stdout = '';
    let stderr = '';
    const e = emitterOf();
    proc.stdout!.on('data', (d) => {
      stdout += d;
      e.wake();
    });
    proc.stderr!.on('data', (d) => {
      stderr += d;
      e.wake();
    });
    if (so.input !== undefined) proc.stdin!.end(so.input);
    const done = new Promise<Proc>((resolve, reject) => {
      const timer = setTimeout(() => {
        proc.kill('SIGKILL');
        reject(new Error(`ssh ${args.join(' ')} did not finish within ${so.timeoutMs ?? 20000} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
      }, so.timeoutMs ?? 20_000);
      proc.on('close', (code) => {
        clearTimeout(timer);
        e.wake();
        resolve({ code, stdout, stderr, ms: Date.now() - started });
      });
    });
    done.catch(() => undefined);
    return { proc, out: () => stdout, err: () => stderr, waitOut: waiter(() => stdout, e.subscribe), waitErr: waiter(() => stderr, e.subscribe), done };
  };

  const client = (key: Key | null, extra: Partial<ConnectConfig> = {}) =>
    new Promise<InstanceType<typeof Client>>((resolve, reject) => {
      const c = new Client();
      clients.add(c);
      c.on('ready', () => resolve(c));
      c.on('error', (err) => reject(err));
      c.on('close', () => reject(new Error('connection closed before it was ready')));
      c.connect({
        host: '127.0.0.1',
        port: srv.port,
        username: 'kindler',
        readyTimeout: 10_000,
        ...(key ? { privateKey: readFileSync(key.path) } : {}),
        ...extra,
      });
    });

  const shell = async (key: Key, size = { cols: 100, rows: 30 }): Promise<Shell> => {
    const c = await client(key);
    const stream = await new Promise<ClientChannel>((resolve, reject) =>
      c.shell({ term: 'xterm-256color', cols: size.cols, rows: size.rows, height: 0, width: 0 }, (err, s) => (err ? reject(err) : resolve(s))),
    );
    let out = '';
    const e = emitterOf();
    stream.on('data', (d: Buffer) => {
      out += d.toString();
      e.wake();
    });
    stream.stderr.on('data', (d: Buffer) => {
      out += d.toString();
      e.wake();
    });
    const exit = new Promise<number | undefined>((resolve) => {
      let code: number | undefined;
      stream.on('exit', (c2: number) => (code = c2));
      stream.on('close', () => resolve(code));
    });
    return { stream, out: () => out, waitFor: waiter(() => out, e.subscribe), send: (s) => stream.write(s), exit };
  };

  const waitLogFrom = (re: RegExp, ms = 10_000, from = 0) =>
    new Promise<string>((resolve, reject) => {
      let off = () => undefined as void;
      const timer = setTimeout(() => {
        off();
        reject(new Error(`timed out after ${ms} ms waiting for a server log line matching ${re}; log:\n${logs.slice(from).join('\n')}`));
      }, ms);
      const check = () => {
        const hit = logs.slice(from).find((l) => re.test(l));
        if (hit !== undefined) {
          clearTimeout(timer);
          off();
          resolve(hit);
          return true;
        }
        return false;
      };
      if (!check()) off = ev.subscribe(() => void check());
    });

  return {
    w,
    engine,
    users,
    usersFile,
    srv,
    logs,
    waitLog: waitLogFrom,
    ssh: (key, args, so) => spawnSsh(key, args, so).done,
    spawnSsh,
    client,
    shell,
    track,
  };
}

/** A free TCP port on 127.0.0.1 (for the client's -L/-D listeners). */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** A raw TCP connection: what it received, and when it was closed. */
function raw(port: number, host = '127.0.0.1') {
  const started = Date.now();
  const sock: Socket = netConnect({ port, host });
  let data = '';
  const e = emitterOf();
  sock.on('data', (d) => {
    data += d.toString('latin1');
    e.wake();
  });
  sock.on('error', () => undefined);
  const closed = new Promise<number>((resolve) => sock.on('close', () => resolve(Date.now() - started)));
  return { sock, data: () => data, waitData: waiter(() => data, e.subscribe), closed };
}

/** `p`, or a rejection naming `what` after `ms`. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_r, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

function expectKindlerError(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof KindlerError && re.test(e.message));
}

/**
 * An ssh2 client that authenticates with an RSA key under signature algorithm `algo`, signing with
 * `hash` ("ssh-rsa" + "sha1" is what clients older than OpenSSH 7.2 do). ssh2's client always picks
 * rsa-sha2-256 when the server lists it, so its USERAUTH_REQUEST is rewritten once the key exchange is done.
 */
function rsaClient(
  port: number,
  key: Key,
  algo: 'ssh-rsa' | 'rsa-sha2-256' | 'rsa-sha2-512',
  hash: 'sha1' | 'sha256' | 'sha512',
): Promise<InstanceType<typeof Client>> {
  return new Promise((resolve, reject) => {
    const c = new Client();
    c.once('handshake', () => {
      type AuthPK = (user: string, pub: unknown, algo?: unknown, sign?: (buf: Buffer, done: (sig: Buffer) => void) => void) => void;
      const proto = (c as unknown as { _protocol: { authPK: AuthPK } })._protocol;
      const orig = proto.authPK.bind(proto);
      proto.authPK = (user, pub, _algo, sign) => orig(user, pub, algo, sign ? (buf, done) => done(key.priv.sign(buf, hash)) : undefined);
    });
    c.on('ready', () => {
      c.end();
      resolve(c);
    });
    c.on('error', reject);
    c.on('close', () => reject(new Error('connection closed before it was ready')));
    c.connect({ host: '127.0.0.1', port, username: 'kindler', privateKey: readFileSync(key.path), readyTimeout: 10_000 });
  });
}

// ---- units ---------------------------------------------------------------------------------------

test('exec command lines split into argv without a shell', () => {
  assert.deepEqual(splitCommand('list --json'), ['list', '--json']);
  assert.deepEqual(splitCommand('  users   add bob --key "ssh-ed25519 AAAA bob@x"  '), ['users', 'add', 'bob', '--key', 'ssh-ed25519 AAAA bob@x']);
  assert.deepEqual(splitCommand(`show 'a "b"' "c \\"d\\" \\\\" e\\ f`), ['show', 'a "b"', 'c "d" \\', 'e f']);
  assert.deepEqual(splitCommand('list --json; rm -rf / $(id) `id` | cat'), ['list', '--json;', 'rm', '-rf', '/', '$(id)', '`id`', '|', 'cat']);
  assert.deepEqual(splitCommand(''), []);
  assert.deepEqual(splitCommand('show ""'), ['show', '']);
  expectKindlerError(() => splitCommand('show "abc'), /unterminated double quote/);
  expectKindlerError(() => splitCommand("show 'abc"), /unterminated single quote/);
  expectKindlerError(() => splitCommand('a\nb'), /one line/);
  expectKindlerError(() => splitCommand('x'.repeat(20_000)), /longer than/);
});

test('the failure limiter blocks one address after N failures in the window, forgives logins, forgets old failures', () => {
  let now = 1_000_000;
  const l = new FailureLimiter({ failures: 3, windowMs: 1000, blockMs: 5000 }, () => now);
  assert.equal(l.fail('a', 1), false);
  assert.equal(l.fail('a', 1), false);
  l.forgive('a', 1);
  assert.equal(l.fail('a', 2), false);
  now += 1001;
  assert.equal(l.fail('a', 3), false, 'the failure before the window no longer counts');
  assert.equal(l.fail('a', 3), false);
  assert.equal(l.fail('a', 4), true);
  assert.equal(l.blockedFor('a'), 5000);
  assert.equal(l.blockedFor('b'), 0);
  now += 5000;
  assert.equal(l.blockedFor('a'), 0);
  const small = new FailureLimiter({ failures: 3, windowMs: 1000, blockMs: 5000 }, () => now, 10);
  for (let i = 0; i < 50; i++) small.fail(`ip${i}`, i);
  assert.ok(small.size() <= 10, 'the table stays bounded under a flood of addresses');
});

test('the host key is created once with mode 0600, reused, and never silently replaced', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kindler-hostkey-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'keys', 'ssh_host_ed25519_key');
  const first = loadOrCreateHostKey(path);
  assert.equal(first.created, true);
  assert.equal(statSync(path).mode & 0o777, 0o600);
  assert.equal(first.key.type, 'ssh-ed25519');
  const fp = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', path], { encoding: 'utf8' }).split(' ')[1];
  assert.equal(first.fingerprint, fp);
  const again = loadOrCreateHostKey(path);
  assert.equal(again.created, false);
  assert.equal(again.fingerprint, first.fingerprint);

  chmodSync(path, 0o644);
  assert.throws(
    () => loadOrCreateHostKey(path),
    (e: Error) => e instanceof HostKeyError && e.message.includes(path) && /chmod 600/.test(e.message),
  );
  chmodSync(path, 0o600);
  const good = readFileSync(path);
  writeFileSync(path, 'not a key\n');
  assert.throws(
    () => loadOrCreateHostKey(path),
    (e: Error) => e instanceof HostKeyError && e.message.startsWith(`host key ${path}: not a usable private key`),
  );
  assert.equal(readFileSync(path, 'utf8'), 'not a key\n', 'the broken key is left for a human');
  writeFileSync(path, `${first.publicLine}\n`);
  assert.throws(() => loadOrCreateHostKey(path), /holds a public key/);
  writeFileSync(path, good);
  assert.equal(loadOrCreateHostKey(path).fingerprint, first.fingerprint);
});

// ---- verbs ---------------------------------------------------------------------------------------

test('verbs over ssh: identity from the key, JSON output, exit codes, one-line errors, argv never a shell', async (t) => {
  const h = await setup(t);

  // Pin the host key: the client must see exactly the key we loaded.
  const known = join(h.w.dir, 'known_hosts');
  writeFileSync(known, `[127.0.0.1]:${h.srv.port} ${HOST.publicLine}\n`);
  const list = await h.ssh(alice, ['list', '--json'], { opts: ['-o', 'StrictHostKeyChecking=yes', '-o', `UserKnownHostsFile=${known}`] });
  assert.equal(list.code, 0, list.stderr);
  assert.deepEqual(JSON.parse(list.stdout), { clusters: [] });
  await h.waitLog(
    new RegExp(`^info ssh: alice \\(admin\\) logged in from 127\\.0\\.0\\.1 with key ${alice.fp.replace(/[+/]/g, '\\$&')} \\(login name "kindler"\\)$`),
  );

  const version = await h.ssh(alice, ['version']);
  assert.deepEqual([version.code, version.stdout, version.stderr], [0, 'kindler 0.1.0\n', '']);

  const bad = await h.ssh(alice, ['create', 'Bad_Name']);
  assert.equal(bad.code, 2);
  assert.equal(bad.stdout, '');
  assert.match(bad.stderr, /^error: name: must start with a lowercase letter[^\n]*\n$/);
  const badJson = await h.ssh(alice, ['create', 'Bad_Name', '--json']);
  assert.equal(badJson.code, 2);
  assert.equal(JSON.parse(badJson.stdout).error.field, 'name');

  // The command line is split into argv by us; nothing reaches a shell.
  const injected = await h.ssh(alice, ['list --json; touch /tmp/kindler-pwned-$$']);
  assert.equal(injected.code, 2);
  assert.match(injected.stderr, /^error: --json;: unknown flag for "list"/);
  const quoted = await h.ssh(alice, [`show "two words"`]);
  assert.deepEqual([quoted.code, quoted.stderr], [3, 'error: cluster: no cluster named "two words"\n']);
  const unterminated = await h.ssh(alice, [`show "abc`]);
  assert.deepEqual([unterminated.code, unterminated.stderr], [2, 'error: command: unterminated double quote\n']);

  // Files are never read over SSH.
  const csv = await h.ssh(alice, ['import-csv', '/etc/hostname']);
  assert.equal(csv.code, 2);
  assert.match(csv.stderr, /^error: file: cannot read "\/etc\/hostname"/);

  // Roles come from the users file: a viewer cannot create.
  const refused = await h.ssh(vic, ['create', 'ok']);
  assert.equal(refused.code, 5);
  assert.match(refused.stderr, /^error: vic is a viewer/);

  // The operator's cluster is owned by the key's user, whatever the login name.
  const created = await h.ssh(bob, ['create', 'alpha', '--json']);
  assert.equal(created.code, 0, created.stderr);
  const task = JSON.parse(created.stdout).task;
  assert.equal(h.engine.getCluster('alpha')!.owner, 'bob');
  assert.equal(task.user, 'bob');
  const audit = h.engine.store.db.data.audit.find((a) => a.action === 'create' && a.target === 'alpha')!;
  assert.deepEqual([audit.user, audit.source], ['bob', 'ssh 127.0.0.1']);
  await until(h.engine, () => ['succeeded', 'failed'].includes(h.engine.getTask(task.id)!.state), 60_000, 'the create task');

  // With a pty (ssh -t), lines end in CR LF.
  const tty = await h.ssh(alice, ['version'], { opts: ['-tt'] });
  assert.equal(tty.code, 0);
  assert.equal(tty.stdout, 'kindler 0.1.0\r\n');
  assert.equal(h.srv.sessions(), 0);
});

// ---- authentication ------------------------------------------------------------------------------

test('ecdsa (P-256, P-521) and rsa keys log in too', async (t) => {
  const ec = makeKey('ec-user', 'ecdsa');
  const ec521 = makeKey('ec521-user', 'ecdsa', 521);
  const rsa = makeKey('rsa-user', 'rsa');
  const h = await setup(t, { users: `${USERS}ecuser viewer ${ec.pub}\necuser viewer ${ec521.pub}\nrsauser operator ${rsa.pub}\n` });
  for (const k of [ec, ec521]) {
    const from = h.logs.length;
    const e = await h.ssh(k, ['version']);
    assert.equal(e.code, 0, e.stderr);
    await h.waitLog(new RegExp(`ecuser \\(viewer\\) logged in .* with key ${k.fp.replace(/[+/]/g, '\\$&')}`), 10_000, from);
  }
  // ssh2 1.17's server-sig-algs lacks a comma ("...nistp521rsa-sha2-512"), so OpenSSH signs
  // with rsa-sha2-256 (still SHA-2; ssh-rsa/SHA-1 is not offered by OpenSSH 9 by default).
  const r = await h.ssh(rsa, ['version']);
  assert.equal(r.code, 0, r.stderr);
  await h.waitLog(new RegExp(`rsauser \\(operator\\) logged in .* with key ${rsa.fp.replace(/[+/]/g, '\\$&')}`));
});

test('unknown keys, passwords, keyboard-interactive, hostbased and none are refused', async (t) => {
  const h = await setup(t);
  const unknown = await h.ssh(stranger, ['version']);
  assert.equal(unknown.code, 255);
  assert.match(unknown.stderr, /Permission denied \(publickey\)/);
  await h.waitLog(new RegExp(`login refused: unknown key ${stranger.fp.replace(/[+/]/g, '\\$&')}`));

  // OpenSSH is told "publickey" only and gives up without sending a password.
  const pw = await h.ssh([], ['version'], { opts: ['-o', 'PubkeyAuthentication=no', '-o', 'PreferredAuthentications=password,keyboard-interactive'] });
  assert.equal(pw.code, 255);
  assert.match(pw.stderr, /Permission denied \(publickey\)/);

  // A client that sends them anyway is refused too, even with a known key for hostbased.
  const from = h.logs.length;
  await assert.rejects(
    h.client(null, {
      authHandler: [
        { type: 'none', username: 'kindler' },
        { type: 'password', username: 'kindler', password: 'secret' } as PasswordAuthMethod,
        { type: 'keyboard-interactive', username: 'kindler', prompt: (_n, _i, _l, _p, finish) => finish(['secret']) } as KeyboardInteractiveAuthMethod,
        { type: 'hostbased', username: 'kindler', localHostname: 'h', localUsername: 'alice', key: readFileSync(alice.path) } as HostBasedAuthMethod,
      ],
    }),
    /All configured authentication methods failed/,
  );
  await h.waitLog(/login refused: password authentication is not offered/, 10_000, from);
  await h.waitLog(/login refused: keyboard-interactive authentication is not offered/, 10_000, from);
  await h.waitLog(/login refused: hostbased authentication is not offered/, 10_000, from);
  assert.ok(!h.logs.slice(from).some((l) => /secret/.test(l)), 'no secrets in logs');
});

test('a key offered without a signature proves nothing: offering key A and signing with key B fails', async (t) => {
  const h = await setup(t);
  const alicePub = utils.parseKey(alice.pub) as ParsedKey;
  // Sanity: the same agent signing with the offered key logs in.
  const okClient = await h.client(null, { agent: new TwoFacedAgent(alicePub, alice.priv) });
  okClient.end();
  // Offer alice's key (the server answers PK_OK), then sign with bob's key (also a known key) or a stranger's.
  for (const signer of [bob, stranger]) {
    const from = h.logs.length;
    await assert.rejects(h.client(null, { agent: new TwoFacedAgent(alicePub, signer.priv) }), /All configured authentication methods failed/);
    await h.waitLog(new RegExp(`login refused: bad signature for key ${alice.fp.replace(/[+/]/g, '\\$&')}`), 10_000, from);
    assert.ok(!h.logs.slice(from).some((l) => /logged in/.test(l)));
  }
});

// ---- channels and requests -----------------------------------------------------------------------

test('port forwarding anywhere but a cluster API is refused: -L, -D, -R and -W', async (t) => {
  const h = await setup(t);
  const lport = await freePort();
  const dport = await freePort();
  const fwd = h.spawnSsh(alice, [], { opts: ['-v', '-N', '-L', `${lport}:127.0.0.1:${h.srv.port}`, '-D', `127.0.0.1:${dport}`], timeoutMs: 30_000 });
  await fwd.waitErr(new RegExp(`Local forwarding listening on 127\\.0\\.0\\.1 port ${dport}`));

  let from = h.logs.length;
  const l = raw(lport);
  await h.waitLog(
    new RegExp(`alice from 127\\.0\\.0\\.1: tunnel to "127\\.0\\.0\\.1":${h.srv.port} refused: only tunnels to a cluster's API are served`),
    10_000,
    from,
  );
  assert.equal(l.data().includes('SSH-2.0-kindler'), false, 'nothing was connected through the tunnel');
  await l.closed;

  from = h.logs.length;
  const socks = raw(dport);
  socks.sock.write(Buffer.from([5, 1, 0]));
  await socks.waitData(/^\x05\x00/);
  socks.sock.write(Buffer.from([5, 1, 0, 1, 127, 0, 0, 1, h.srv.port >> 8, h.srv.port & 255]));
  await h.waitLog(new RegExp(`tunnel to "127\\.0\\.0\\.1":${h.srv.port} refused`), 10_000, from);
  await socks.closed;
  fwd.proc.kill('SIGTERM');
  await fwd.done;

  const remote = await h.ssh(alice, [], { opts: ['-N', '-R', `0:127.0.0.1:${h.srv.port}`, '-o', 'ExitOnForwardFailure=yes'] });
  assert.equal(remote.code, 255);
  assert.match(remote.stderr, /remote port forwarding failed/);
  await h.waitLog(/global request "tcpip-forward" \(remote forwarding\) refused/);

  const stdio = await h.ssh(alice, [], { opts: ['-W', `127.0.0.1:${h.srv.port}`] });
  assert.equal(stdio.code, 255);
  assert.match(stdio.stderr, /stdio forwarding failed/);
});

test('agent forwarding, X11 and environment variables are refused and logged; the verb still runs', async (t) => {
  const h = await setup(t);
  const sock = join(h.w.dir, 'agent.sock');
  const agent = h.track(spawn('ssh-agent', ['-D', '-a', sock], { stdio: 'ignore' }));
  const deadline = Date.now() + 10_000;
  while (!existsSync(sock)) {
    if (Date.now() > deadline || agent.exitCode !== null) throw new Error('ssh-agent did not start');
    await new Promise((r) => setImmediate(r));
  }
  const r = await h.ssh(alice, ['version'], {
    opts: ['-A', '-X', '-o', 'SetEnv=KINDLER_TEST=secret-value', '-o', 'SendEnv=LANG'],
    env: { SSH_AUTH_SOCK: sock, DISPLAY: ':99', LANG: 'C.UTF-8' },
  });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'kindler 0.1.0\n');
  assert.match(r.stderr, /X11 forwarding request failed/);
  await h.waitLog(/alice from 127\.0\.0\.1: agent forwarding refused/);
  await h.waitLog(/alice from 127\.0\.0\.1: X11 forwarding refused/);
  await h.waitLog(/environment variable "KINDLER_TEST" refused/);
  await h.waitLog(/environment variable "LANG" refused/);
  assert.ok(!h.logs.some((l) => l.includes('secret-value')), 'env values are not logged');
});

test('the sftp subsystem and a shell without a pty are refused', async (t) => {
  const h = await setup(t);
  const sftp = await h.ssh(alice, ['sftp'], { opts: ['-s'], input: '' });
  assert.equal(sftp.code, 255);
  assert.match(sftp.stderr, /subsystem request failed on channel 0/);
  await h.waitLog(/subsystem "sftp" refused/);

  const other = await h.ssh(alice, ['foo'], { opts: ['-s'], input: '' });
  assert.equal(other.code, 255);
  await h.waitLog(/subsystem "foo" refused/);

  assert.equal(h.srv.sessions(), 0);
});

test('a shell without a terminal gets the hint on stderr (ssh -t, or a verb, and the verb list) and exit 2', async (t) => {
  const h = await setup(t);
  for (const opts of [['-T'], []]) {
    // -T asks for no pty; without -t and with stdin not a terminal, OpenSSH asks for none either.
    const noPty = await h.ssh(alice, [], { opts, input: '' });
    assert.equal(noPty.code, 2, noPty.stderr);
    assert.equal(noPty.stdout, '');
    assert.doesNotMatch(noPty.stderr, /shell request failed/);
    assert.match(noPty.stderr, /^kindler: the terminal UI needs a terminal, and this session has none\.\n/);
    assert.match(noPty.stderr, /ssh -t HOST/);
    assert.match(noPty.stderr, /ssh HOST list/);
    assert.match(noPty.stderr, /verbs: list, show, create, delete, .*\n/);
    assert.match(noPty.stderr.replace(/\n +/g, ' '), /verbs: .*users, .*completion, version\n$/);
  }
  await h.waitLog(/alice from 127\.0\.0\.1: shell without a terminal: answered with the hint \(exit 2\)/);
  assert.equal(h.srv.sessions(), 0);
});

test('users add/add-key over ssh: --key - reads the key from stdin; an unquoted key line (split by ssh) and the documented quoting work', async (t) => {
  const h = await setup(t);
  const dan = makeKey('dan');
  const eve = makeKey('eve');
  const fay = makeKey('fay');
  const fay2 = makeKey('fay2');
  // --key - : the key line from standard input.
  const add = await h.ssh(alice, ['users', 'add', 'dan', '--role', 'operator', '--key', '-'], { input: `${dan.pub}\n` });
  assert.deepEqual([add.code, add.stderr], [0, ''], add.stdout);
  assert.equal(h.users.byFingerprint(dan.fp)?.user, 'dan');
  const addKey = await h.ssh(alice, ['users', 'add-key', 'dan', '--key', '-'], { input: fay2.pub });
  assert.deepEqual([addKey.code, addKey.stderr], [0, '']);
  assert.equal(h.users.byFingerprint(fay2.fp)?.user, 'dan');
  // ssh joins its arguments: "ssh-ed25519 AAAA… eve" arrives as three words.
  const split = await h.ssh(alice, ['users', 'add', 'eve', '--role', 'viewer', '--key', eve.pub]);
  assert.deepEqual([split.code, split.stderr], [0, ''], split.stdout);
  const eveKeys = JSON.parse((await h.ssh(alice, ['users', 'list', '--json'])).stdout).users.find((u: { name: string }) => u.name === 'eve').keys;
  assert.deepEqual(
    eveKeys.map((k: { fingerprint: string; comment?: string }) => [k.fingerprint, k.comment]),
    [[eve.fp, 'eve']],
  );
  // The documented quoting, --key "'ssh-ed25519 AAAA… fay'": the local shell takes the double quotes
  // (this spawn has no shell, so it gets what that shell passes), the server's split the single ones.
  const quoted = await h.ssh(alice, ['users', 'add', 'fay', '--role', 'viewer', '--key', `'${fay.pub}'`]);
  assert.deepEqual([quoted.code, quoted.stderr], [0, ''], quoted.stdout);
  assert.equal(h.users.byFingerprint(fay.fp)?.user, 'fay');
  // Nothing or two lines on stdin: a usage error naming --key.
  const empty = await h.ssh(alice, ['users', 'add', 'gus', '--role', 'viewer', '--key', '-'], { input: '' });
  assert.deepEqual([empty.code, empty.stderr], [2, 'error: --key: standard input must hold exactly one public key line (got 0)\n']);
  const two = await h.ssh(alice, ['users', 'add', 'gus', '--role', 'viewer', '--key', '-'], { input: `${dan.pub}\n${eve.pub}\n` });
  assert.equal(two.code, 2);
  // The new users log in with their keys.
  assert.equal((await h.ssh(dan, ['whoami'])).stdout, `dan (operator) via ssh 127.0.0.1, key ${dan.fp}\n`);
});

test('Ctrl-C of create --wait over ssh -t: detached (the task goes on, exit 130), or cancelled with --cancel-on-interrupt', async (t) => {
  const h = await setup(t);
  h.w.rule('k3d.cluster-create', 'hang');
  const a = h.spawnSsh(alice, ['create', 'detach', '--wait'], { opts: ['-tt'] });
  await a.waitOut(/\] +\d+% \d+:\d\d /);
  a.proc.stdin!.write('\x03');
  const ra = await a.done;
  assert.equal(ra.code, 130, ra.stdout + ra.stderr);
  assert.match(ra.stdout + ra.stderr, /detached — t-1 continues; ssh HOST logs t-1 --follow/);
  assert.ok(['queued', 'running'].includes(h.engine.getTask('t-1')!.state));
  const b = h.spawnSsh(alice, ['create', 'cancelme', '--wait', '--cancel-on-interrupt'], { opts: ['-tt'] });
  await b.waitOut(/\] +\d+% \d+:\d\d /);
  b.proc.stdin!.write('\x03');
  const rb = await b.done;
  assert.equal(rb.code, 130, rb.stdout + rb.stderr);
  assert.match(rb.stdout + rb.stderr, /interrupted — cancelling t-2/);
  assert.match(rb.stdout, /task t-2: create cancelme cancelled/);
  assert.equal(h.engine.getTask('t-2')!.state, 'cancelled');
  await h.engine.cancel('t-1', { user: 'alice', source: 'test' });
  await until(h.engine, () => h.engine.getTask('t-1')!.state === 'cancelled', 30_000, 't-1 cancelled');
});

test('create --http-port 80 over ssh exits 2 naming the rule', async (t) => {
  const h = await setup(t);
  const r = await h.ssh(alice, ['create', 'x', '--http-port', '80']);
  assert.deepEqual([r.code, r.stdout, r.stderr], [2, '', 'error: http-port: must be a port number 1024-65535 (got "80")\n']);
  assert.equal(h.engine.getCluster('x'), undefined);
});

// ---- the TUI ---------------------------------------------------------------------------------------

test("ssh -t opens the TUI for the key's user; q quits with exit 0; resize reaches the TUI", async (t) => {
  const h = await setup(t);
  const live = h.spawnSsh(bob, [], { opts: ['-tt'] });
  await live.waitOut(/stub tui: bob operator ssh 127\.0\.0\.1 80x24 on testhost idle/);
  assert.equal(h.srv.sessions(), 1);
  assert.equal(h.engine.snapshot().sessions.length, 1, 'presence: the session joined the engine');
  live.proc.stdin!.write('q');
  const done = await live.done;
  assert.equal(done.code, 0);
  assert.match(done.stdout, /bye/);
  await h.waitLog(/bob from 127\.0\.0\.1: TUI session ended \(quit\)/);
  assert.equal(h.srv.sessions(), 0);
  assert.equal(h.engine.snapshot().sessions.length, 0);

  const s = await h.shell(alice, { cols: 120, rows: 40 });
  await s.waitFor(/stub tui: alice admin ssh 127\.0\.0\.1 120x40/);
  s.stream.setWindow(30, 90, 0, 0);
  await s.waitFor(/resized 90x30/);
  s.send('r');
  await s.waitFor(/run: 0 \{"clusters":\[\]\}/);
  s.send('q');
  assert.equal(await s.exit, 0);
});

test(
  'the real TUI (src/tui, loaded on the first shell) renders over SSH, survives a resize and quits with q',
  { skip: !existsSync(join(import.meta.dirname, '..', 'src', 'tui', 'index.ts')) && 'src/tui is not there yet' },
  async (t) => {
    const h = await setup(t, { realTui: true });
    const s = await h.shell(alice, { cols: 120, rows: 40 });
    await s.waitFor(/Clusters|clusters/, 20_000);
    s.stream.setWindow(24, 80, 0, 0);
    await h.waitLog(/alice from 127\.0\.0\.1 \(admin\): TUI session started \(120x40\)/);
    s.send('q');
    assert.equal(await s.exit, 0);
    await h.waitLog(/alice from 127\.0\.0\.1: TUI session ended \(quit\)/);
    assert.equal(h.srv.sessions(), 0);
    assert.equal(h.engine.snapshot().sessions.length, 0);
  },
);

test('a crash inside one session closes only that session, with a message and a log line', async (t) => {
  const h = await setup(t);
  const other = await h.shell(bob);
  await other.waitFor(/stub tui: bob/);
  for (const [key, what] of [
    ['x', 'synchronous crash'],
    ['t', 'crash in a timer'],
    ['p', 'rejected promise'],
    ['f', 'feed listener crash on presence'],
  ] as const) {
    const s = await h.shell(alice);
    await s.waitFor(/stub tui: alice/);
    s.send(key);
    // A presence event (someone joining) reaches every subscriber.
    if (key === 'f') void h.ssh(vic, [], { opts: ['-tt'], input: 'q' });
    await s.waitFor(/this session hit an internal error and was closed/);
    assert.equal(await s.exit, 1);
    await h.waitLog(new RegExp(`^error ssh: alice from 127\\.0\\.0\\.1: shell session failed and was closed: stub: ${what}`));
  }
  // The daemon and the other session live on.
  other.send('r');
  await other.waitFor(/run: 0 /);
  const v = await h.ssh(alice, ['version']);
  assert.equal(v.code, 0);
  other.send('q');
  assert.equal(await other.exit, 0);
  assert.equal(h.srv.sessions(), 0);
});

// ---- the users file --------------------------------------------------------------------------------

test('a malformed users-file line is reported and skipped; the valid user next to it still logs in', async (t) => {
  const h = await setup(t, { users: [`alice admin ssh-ed25519 AAAAbroken`, `bob operator ${bob.pub}`, `vic king ${vic.pub}`, ''].join('\n') });
  await h.waitLog(/users file: .*users\.conf:1: key: cannot parse the ssh-ed25519 key/);
  await h.waitLog(/users file: .*users\.conf:3: role "king" is not one of viewer, operator, admin/);
  const ok = await h.ssh(bob, ['version']);
  assert.equal(ok.code, 0, ok.stderr);
  const no = await h.ssh(vic, ['version']);
  assert.equal(no.code, 255);
});

test('users-file changes apply without a restart: a new key works, a removed key is cut off, a role change closes the TUI', async (t) => {
  const h = await setup(t);
  const before = await h.ssh(carl, ['version']);
  assert.equal(before.code, 255);

  let from = h.logs.length;
  appendFileSync(h.usersFile, `carl viewer ${carl.pub}\n`);
  await h.waitLog(/users file reloaded \(file changed\): 4 users/, 10_000, from);
  const after = await h.ssh(carl, ['version']);
  assert.equal(after.code, 0, after.stderr);

  // A role change closes carl's TUI (it was built for the old role); verbs use the new role.
  const tui = await h.shell(carl);
  await tui.waitFor(/stub tui: carl viewer/);
  from = h.logs.length;
  writeFileSync(h.usersFile, readFileSync(h.usersFile, 'utf8').replace(`carl viewer`, 'carl operator'));
  await tui.waitFor(/your role changed to operator; reconnect/);
  await tui.exit;
  await h.waitLog(/carl from 127\.0\.0\.1: role changed from viewer to operator/, 10_000, from);

  // Removing the key closes carl's live session and refuses new logins.
  const tui2 = await h.shell(carl);
  await tui2.waitFor(/stub tui: carl operator/);
  from = h.logs.length;
  writeFileSync(h.usersFile, USERS);
  await tui2.waitFor(/your key was removed/);
  await tui2.exit;
  await h.waitLog(/key SHA256:\S+ was removed from the users file; closing the connection/, 10_000, from);
  const gone = await h.ssh(carl, ['version']);
  assert.equal(gone.code, 255);
});

// ---- limits ----------------------------------------------------------------------------------------

test('failed logins from 127.0.0.1 (shared by every local user) never lock out a listed key: the address is marked, alice still logs in from it', async (t) => {
  const h = await setup(t, { limits: { rateLimit: { failures: 3, windowMs: 60_000, blockMs: 60_000, delayMs: 300 } } });
  const ms: number[] = [];
  for (let i = 0; i < 4; i++) {
    const r = await h.ssh(stranger, ['version']);
    assert.equal(r.code, 255);
    assert.match(r.stderr, /Permission denied \(publickey\)/, 'an unknown key is refused at the handshake, not dropped before it');
    ms.push(r.ms);
  }
  await h.waitLog(
    /ssh: 127\.0\.0\.1: 3 failed logins within 60000 ms; for 60000 ms its pending connections are closed first when the pre-auth table is full and its failed attempts are answered after 300 ms \(keys in the users file still log in from it at once\)/,
  );
  assert.ok(ms[3]! >= 300, `a failed attempt from the marked address is answered after the delay (took ${ms[3]} ms)`);
  await h.waitLog(new RegExp(`ssh: key ${stranger.fp.replace(/[+/]/g, '\\$&')}: 3 failed logins within 60000 ms \\(last from 127\\.0\\.0\\.1\\)`));
  // The same address, a listed key: served at once (before the fix it was dropped for 60 s).
  const same = await h.ssh(alice, ['version']);
  assert.equal(same.code, 0, same.stderr);
  assert.equal(same.stdout, 'kindler 0.1.0\n');
  assert.ok(same.ms < 5000, `took ${same.ms} ms`);
  assert.equal(h.logs.filter((l) => /connection dropped/.test(l)).length, 0, 'nothing was dropped by address');
  // An agent offering unknown keys before the listed one still gets in from the marked address.
  const agentLike = await h.ssh([strangers[0]!, strangers[1]!, bob], ['version']);
  assert.equal(agentLike.code, 0, agentLike.stderr);
  // Other sources are unaffected.
  const other = await h.ssh(alice, ['version'], { opts: ['-b', '127.0.0.2'] });
  assert.equal(other.code, 0, other.stderr);
  await h.waitLog(/alice \(admin\) logged in from 127\.0\.0\.2/);
});

test('too many failed attempts on one connection close it', async (t) => {
  const h = await setup(t, { limits: { maxAuthTries: 2 } });
  const r = await h.ssh(strangers, ['version']);
  assert.equal(r.code, 255);
  await h.waitLog(/127\.0\.0\.1: 2 failed authentication attempts; closing the connection/);
  assert.equal(h.logs.filter((l) => /login refused: unknown key/.test(l)).length, 2, 'the third key was never tried');
});

test('a connection that does not log in within the grace time is closed', async (t) => {
  const h = await setup(t, { limits: { loginGraceMs: 300 } });
  const silent = raw(h.srv.port);
  await silent.waitData(/^SSH-2\.0-kindler/);
  const ms = await silent.closed;
  assert.ok(ms >= 250 && ms < 5000, `closed after ${ms} ms`);
  await h.waitLog(/127\.0\.0\.1: not logged in within 300 ms; closing/);
  // A normal login is far below the grace time.
  const ok = await h.ssh(alice, ['version']);
  assert.equal(ok.code, 0, ok.stderr);
});

test('40 idle pre-auth connections from 127.0.0.1 (table of 32) do not lock out a valid key from 127.0.0.1; the table stays bounded', async (t) => {
  const CAP = 32;
  const h = await setup(t, { limits: { maxUnauthenticated: CAP } });
  const idle = Array.from({ length: 40 }, () => raw(h.srv.port));
  let closed = 0;
  const ev = emitterOf();
  for (const c of idle) void c.closed.then(() => (closed++, ev.wake()));
  const closedAtLeast = waiter(() => String(closed).padStart(3, '0'), ev.subscribe);
  // Every newcomer is admitted; the oldest idle ones are closed to keep 32 pending.
  await closedAtLeast(/^0(0[89]|[1-9]\d)$/, 10_000);
  assert.equal(closed, 8, `${closed} idle connections closed (40 opened, table of ${CAP})`);
  // The same address, a valid key, with the table full of that address's idle connections.
  const r = await h.ssh(alice, ['version']);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.ms < 5000, `took ${r.ms} ms`);
  await h.waitLog(
    /127\.0\.0\.1: a connection not logged in yet was closed to make room for one from 127\.0\.0\.1 \(32 not logged in, max 32; \d+ still pending from 127\.0\.0\.1\)/,
  );
  assert.equal(closed, 9, 'the login took one more idle slot, not the login');
  assert.equal(h.logs.filter((l) => /connection dropped/.test(l)).length, 0);
  // Logged-in connections do not hold pre-auth slots.
  const s1 = await h.shell(alice);
  const s2 = await h.shell(bob);
  await s1.waitFor(/stub tui/);
  await s2.waitFor(/stub tui/);
  for (const c of idle) c.sock.destroy();
  s1.send('q');
  s2.send('q');
  await s1.exit;
  await s2.exit;
});

test('all connections together are capped (below the fd limit): a pending one makes room; with all logged in, the newcomer is dropped and logged', async (t) => {
  const h = await setup(t, { limits: { maxConnections: 4 } });
  const a1 = await h.client(alice);
  const a2 = await h.client(alice);
  const b1 = await h.client(bob);
  const pending = raw(h.srv.port);
  await pending.waitData(/^SSH-2\.0-kindler/);
  // Full (3 logged in + 1 pending): vic's connection takes the pending one's place.
  const v1 = await h.client(vic);
  await within(pending.closed, 10_000, 'the pending connection to make room');
  await h.waitLog(/a connection not logged in yet was closed to make room for one from 127\.0\.0\.1 \(4 connections open, max 4;/);
  // Full and all logged in: a fifth is dropped before the banner.
  const fifth = raw(h.srv.port);
  await within(fifth.closed, 10_000, 'the fifth connection to be dropped');
  assert.equal(fifth.data(), '');
  await h.waitLog(/127\.0\.0\.1: connection dropped: 4 connections open, all logged in \(max 4\)/);
  const gone = new Promise<void>((r) => a1.once('close', () => r()));
  a1.end();
  await within(gone, 10_000, 'a connection to close');
  await h.waitLog(/alice from 127\.0\.0\.1 disconnected/);
  const again = await h.ssh(alice, ['version']);
  assert.equal(again.code, 0, again.stderr);
  for (const c of [a2, b1, v1]) c.end();
});

test('an expiring login grace is not a failed login: idle connections time out without marking the address', async (t) => {
  const h = await setup(t, { limits: { loginGraceMs: 300, rateLimit: { failures: 2, windowMs: 60_000, blockMs: 60_000, delayMs: 0 } } });
  const idle = [raw(h.srv.port), raw(h.srv.port), raw(h.srv.port)];
  await Promise.all(idle.map((c) => c.closed));
  await h.waitLog(/127\.0\.0\.1: not logged in within 300 ms; closing/);
  assert.equal(h.logs.filter((l) => /not logged in within 300 ms/.test(l)).length, 3);
  assert.equal(h.logs.filter((l) => /failed logins/.test(l)).length, 0, 'grace expiries are not failures');
  const ok = await h.ssh(alice, ['version']);
  assert.equal(ok.code, 0, ok.stderr);
  // One real failure does not reach the threshold of 2 either (the expiries did not count).
  const bad = await h.ssh(stranger, ['version']);
  assert.equal(bad.code, 255);
  await h.waitLog(/login refused: unknown key/);
  assert.equal(h.logs.filter((l) => /failed logins within/.test(l)).length, 0);
});

test('logged-in connections are capped per user; over the cap a login is refused and logged, not counted as a failure', async (t) => {
  const h = await setup(t, { limits: { maxConnectionsPerUser: 2, rateLimit: { failures: 1, windowMs: 60_000, blockMs: 60_000, delayMs: 0 } } });
  const a1 = await h.client(alice);
  const a2 = await h.client(alice);
  await assert.rejects(h.client(alice), /All configured authentication methods failed|closed before it was ready/);
  await h.waitLog(/ssh: 127\.0\.0\.1: login of alice with key SHA256:\S+ refused: 2 connections already logged in for alice \(max 2\); close some and retry/);
  const cli = await h.ssh(alice, ['version']);
  assert.equal(cli.code, 255, 'the OpenSSH client is refused too');
  assert.equal(h.logs.filter((l) => /failed logins within/.test(l)).length, 0, 'not a failed login');
  const b = await h.ssh(bob, ['version']);
  assert.equal(b.code, 0, 'other users are not affected');
  const gone = new Promise<void>((r) => a1.once('close', () => r()));
  a1.end();
  await within(gone, 10_000, "alice's first connection to close");
  const from = h.logs.length;
  await h.waitLog(/alice from 127\.0\.0\.1 disconnected/, 10_000, 0);
  const again = await h.ssh(alice, ['version']);
  assert.equal(again.code, 0, again.stderr);
  await h.waitLog(/alice \(admin\) logged in/, 10_000, from);
  a2.end();
});

test('a logged-in connection that never opens a channel is closed after noChannelTimeoutMs; one with a channel open is not', async (t) => {
  const h = await setup(t, { limits: { noChannelTimeoutMs: 400 } });
  const busy = await h.shell(bob);
  await busy.waitFor(/stub tui: bob/);
  const started = Date.now();
  const idle = await h.client(alice);
  const idleClosed = new Promise<number>((r) => idle.once('close', () => r(Date.now() - started)));
  const ms = await within(idleClosed, 10_000, 'the connection without a channel to be closed');
  assert.ok(ms >= 350 && ms < 10_000, `closed after ${ms} ms`);
  await h.waitLog(/alice from 127\.0\.0\.1: no session channel open for 400 ms; closing the connection/);
  // Bob's connection, with a channel open all along, is still served.
  busy.send('r');
  await busy.waitFor(/run: 0 /);
  assert.equal(h.logs.filter((l) => /bob from .*no session channel open/.test(l)).length, 0);
  // Once bob's last channel closes, his connection gets the same timeout.
  const from = h.logs.length;
  busy.send('q');
  assert.equal(await busy.exit, 0);
  await h.waitLog(/bob from 127\.0\.0\.1: no session channel open for 400 ms; closing the connection/, 10_000, from);
});

test('RSA: ssh-rsa (SHA-1) signatures are refused with a clear log line; the real OpenSSH client with an RSA key still logs in (rsa-sha2-256/512)', async (t) => {
  const rsa = makeKey('rsa-sha1', 'rsa', 2048);
  const h = await setup(t, { users: `${USERS}rsauser operator ${rsa.pub}\n` });
  // OpenSSH 9.2 can still be told to use ssh-rsa (SHA-1) explicitly: it must not get in.
  const sha1 = await h.ssh(rsa, ['version'], { opts: ['-o', 'PubkeyAcceptedAlgorithms=ssh-rsa', '-o', 'HostKeyAlgorithms=ssh-ed25519'] });
  assert.equal(sha1.code, 255, sha1.stdout);
  assert.match(sha1.stderr, /Permission denied \(publickey\)/);
  await h.waitLog(
    new RegExp(`login refused: key ${rsa.fp.replace(/[+/]/g, '\\$&')}: ssh-rsa \\(SHA-1\\) signatures are not accepted; use rsa-sha2-256 or rsa-sha2-512`),
  );
  assert.equal(h.logs.filter((l) => /rsauser .*logged in/.test(l)).length, 0);
  // The defaults work (OpenSSH picks rsa-sha2-256: ssh2's server-sig-algs list is missing a comma
  // before rsa-sha2-512, so OpenSSH never sees that one), and so does rsa-sha2-256 forced.
  for (const algo of [undefined, 'rsa-sha2-256']) {
    const from = h.logs.length;
    const ok = await h.ssh(rsa, ['version'], { opts: algo ? ['-o', `PubkeyAcceptedAlgorithms=${algo}`] : [] });
    assert.equal(ok.code, 0, `${algo ?? 'default'}: ${ok.stderr}`);
    await h.waitLog(/rsauser \(operator\) logged in/, 10_000, from);
  }
  // An ssh2 client signing with SHA-1 (no server-sig-algs seen, as an old client would): refused too.
  const from = h.logs.length;
  await assert.rejects(rsaClient(h.srv.port, rsa, 'ssh-rsa', 'sha1'), /All configured authentication methods failed/);
  await h.waitLog(/ssh-rsa \(SHA-1\) signatures are not accepted/, 10_000, from);
  // "rsa-sha2-*" with a SHA-1 signature inside is a bad signature; SHA-256/512 signatures pass.
  await assert.rejects(rsaClient(h.srv.port, rsa, 'rsa-sha2-256', 'sha1'), /All configured authentication methods failed/);
  await h.waitLog(new RegExp(`login refused: bad signature for key ${rsa.fp.replace(/[+/]/g, '\\$&')}`), 10_000, from);
  for (const [algo, hash] of [
    ['rsa-sha2-256', 'sha256'],
    ['rsa-sha2-512', 'sha512'],
  ] as const) {
    const c = await rsaClient(h.srv.port, rsa, algo, hash);
    assert.ok(c, `${algo} logs in`);
  }
});

test('sessions per user and channels per connection are capped; a refused session gets one line', async (t) => {
  const h = await setup(t, { limits: { maxSessionsPerUser: 2, maxChannelsPerConnection: 2 } });
  const c = await h.client(alice);
  const open = () =>
    new Promise<ClientChannel>((resolve, reject) =>
      c.shell({ term: 'xterm', cols: 80, rows: 24, height: 0, width: 0 }, (err, s) => (err ? reject(err) : resolve(s))),
    );
  const s1 = (await open()).resume();
  const s2 = (await open()).resume();
  await assert.rejects(open(), /open failure|Channel open failure/i);
  await h.waitLog(/alice from 127\.0\.0\.1: session channel refused: 2 already open on this connection \(max 2\)/);
  assert.equal(h.srv.sessions(), 2);

  const over = await h.ssh(alice, ['version']);
  assert.equal(over.code, 1);
  assert.equal(over.stdout, '');
  assert.equal(over.stderr, 'kindler: too many sessions for alice (2 open, max 2); close one and retry\n');
  await h.waitLog(/alice from 127\.0\.0\.1: exec session refused: 2 sessions already open for alice \(max 2\)/);
  const otherUser = await h.ssh(bob, ['version']);
  assert.equal(otherUser.code, 0, 'other users are not affected');

  const closed = new Promise<void>((r) => s1.on('close', () => r()));
  s1.write('q');
  await closed;
  const again = await h.ssh(alice, ['version']);
  assert.equal(again.code, 0, again.stderr);
  s2.write('q');
});

test('a frozen client is dropped by keepalive and its session cleaned up', async (t) => {
  const h = await setup(t, { keepalive: { intervalMs: 200, countMax: 2 } });
  const live = h.spawnSsh(alice, [], { opts: ['-tt'], timeoutMs: 30_000 });
  await live.waitOut(/stub tui: alice/);
  assert.equal(h.srv.sessions(), 1);
  live.proc.kill('SIGSTOP');
  t.after(() => live.proc.kill('SIGKILL'));
  await h.waitLog(/alice from 127\.0\.0\.1: keepalive timeout; closing/, 10_000);
  await h.waitLog(/alice from 127\.0\.0\.1: TUI session ended \(the client went away\)/, 10_000);
  await h.waitLog(/alice from 127\.0\.0\.1 disconnected/, 10_000);
  assert.equal(h.srv.sessions(), 0);
  assert.equal(h.engine.snapshot().sessions.length, 0);
  live.proc.kill('SIGKILL');
});

test('stop() ends every connection, authenticated or not, and closes the listener', async (t) => {
  const h = await setup(t);
  const s = await h.shell(alice);
  await s.waitFor(/stub tui: alice/);
  const pending = raw(h.srv.port);
  await pending.waitData(/^SSH-2\.0-kindler/);
  const started = Date.now();
  await h.srv.stop();
  assert.ok(Date.now() - started < 3000, `stop took ${Date.now() - started} ms`);
  await s.waitFor(/kindler is shutting down/);
  await s.exit;
  await pending.closed;
  assert.equal(h.srv.sessions(), 0);
  const after = raw(h.srv.port);
  await after.closed;
  assert.equal(after.data(), '');
});
