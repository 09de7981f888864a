/**
 * Test harness: a temp world (data dir, fake provider state, HOME, config), the real CLI and daemon
 * as processes, and an in-process engine, all running the real scripts against the fakes.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Config } from '../src/core/config.js';
import { Engine } from '../src/engine/engine.js';
import { loadConfig } from '../src/store/config.js';
import { runCommand, type Principal } from '../src/commands/index.js';
import { Service } from '../src/commands/service.js';
import ssh2 from 'ssh2';
import type { ConnectConfig, ParsedKey } from 'ssh2';
import { UsersStore } from '../src/access/users.js';
import { loadOrCreateHostKey } from '../src/ssh/hostkey.js';
import { readJournal } from '../src/store/journal.js';
import type { Task } from '../src/core/types.js';
import { startSshServer, DEFAULT_SSH_LIMITS, type OpenTui, type SshLimits, type SshServer } from '../src/ssh/server.js';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const FAKE_BIN = join(ROOT, 'test', 'fixtures', 'bin');
/** The k3d, kind and kubectl stand-ins over the real docker engine (no docker fake here). */
export const ENGINE_BIN = join(ROOT, 'test', 'fixtures', 'engine-bin');
export const CLI = join(ROOT, 'dist', 'cli.js');

// Test port ranges stay below the kernel's ephemeral range (32768+ here), so an outgoing connection
// can never be holding a port a test means to allocate or bind.
let portBase = 20000 + (process.pid % 120) * 100;

export interface World {
  dir: string;
  dataDir: string;
  fakeDir: string;
  home: string;
  configFile: string;
  env: NodeJS.ProcessEnv;
  cfg: Config;
  /** Writes a fake-control rule, e.g. rule('k3d.cluster-create', 'delay 1'). */
  rule(name: string, content: string): void;
  clearRule(name: string): void;
  /** The fake tools' invocation log (one JSON line per call), '' before the first call. */
  calls(): string;
  /** The docker containers (fake or real engine) whose names include `name`. */
  containers(name: string): string[];
  /** The real engine's address when this world runs on it (see test/docker-engine.ts), else undefined. */
  dockerHost?: string;
  /** Daemons started in this world (startDaemon adds them); dispose() stops them first. */
  daemons: Set<{ stop(): Promise<unknown> }>;
  /**
   * Stops this world's daemons, then removes it. Use it in a test's after-hook registered before the
   * daemons' own: after-hooks run in the order they were added, so a plain cleanup() would remove the
   * directory under a running daemon.
   */
  dispose(): Promise<void>;
  cleanup(): void;
}

export interface WorldOptions {
  /**
   * Run on the real docker engine at this address: the k3d, kind and kubectl stand-ins create real
   * containers there, and kindler's own docker calls go to the real docker CLI (no docker fake on
   * PATH). Get the address from test/engine.ts.
   */
  dockerHost?: string;
}

export function makeWorld(overrides: Record<string, unknown> = {}, opts: WorldOptions = {}): World {
  // Exploration only (never set in CI): KINDLER_TEST_ALL_ON_ENGINE=unix://… runs every world on that
  // engine, to find where the JSON engine and the real one differ.
  if (!opts.dockerHost && process.env.KINDLER_TEST_ALL_ON_ENGINE) opts = { ...opts, dockerHost: process.env.KINDLER_TEST_ALL_ON_ENGINE };
  const dir = mkdtempSync(join(tmpdir(), 'kindler-test-'));
  const dataDir = join(dir, 'data');
  const fakeDir = join(dir, 'fake');
  const home = join(dir, 'home');
  for (const d of [dataDir, fakeDir, join(fakeDir, 'control'), home]) mkdirSync(d, { recursive: true });
  const base = portBase;
  portBase += 100;
  if (portBase > 32000) portBase = 20000;
  const config = {
    dataDir: './data',
    scriptsDir: join(ROOT, 'scripts'),
    concurrency: 2,
    timeouts: { create: 60, delete: 60, start: 60, stop: 60, 'import-image': 60, status: 20 },
    cancelGraceSeconds: 5,
    waitTimeoutSeconds: 30,
    ports: { http: { from: base, to: base + 29 }, https: { from: base + 30, to: base + 59 }, api: { from: base + 60, to: base + 89 } },
    checkHostPorts: true,
    defaults: { provider: 'k3d', servers: 1, agents: 0 },
    logRingLines: 500,
    taskListLimit: 50,
    ssh: { enabled: false, port: 0, hostKeyFile: './keys/host_key', usersFile: './users.conf' },
    // A daemon's own reconcile pass (every 5 minutes by default) would land inside a test that
    // crosses the boundary and change what it reads; tests run their passes themselves.
    schedules: { reconcile: '0 0 1 1 *', ttl: '* * * * *', retention: '17 * * * *' },
    // The fakes find their state through this variable; a daemon passes only allow-listed variables on.
    passEnv: ['KINDLER_FAKE_*'],
    ...overrides,
  };
  const configFile = join(dir, 'kindler.json');
  writeFileSync(configFile, JSON.stringify(config, null, 2));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PATH: `${opts.dockerHost ? ENGINE_BIN : FAKE_BIN}:${process.env.PATH}`,
    KINDLER_FAKE_DIR: fakeDir,
    KINDLER_CONFIG: configFile,
    HOME: home,
    XDG_CONFIG_HOME: join(home, '.config'),
  };
  delete env.KUBECONFIG;
  delete env.KINDLER_DATA_DIR;
  delete env.KINDLER_FAKE_ENGINE;
  if (opts.dockerHost) {
    env.DOCKER_HOST = opts.dockerHost;
    env.KINDLER_FAKE_ENGINE = 'docker';
  }
  const cfg = loadConfig(env);
  const cleanup = () => {
    // On the real engine: everything the stand-ins made for this world (they label it with the world).
    if (opts.dockerHost) removeWorldObjects(docker, fakeDir);
    rmSync(dir, { recursive: true, force: true });
  };
  const daemons = new Set<{ stop(): Promise<unknown> }>();
  const docker = (args: string[]): string => execFileSync(opts.dockerHost ? 'docker' : join(FAKE_BIN, 'docker'), args, { env, encoding: 'utf8' });
  return {
    dir,
    dataDir,
    fakeDir,
    home,
    configFile,
    env,
    cfg,
    dockerHost: opts.dockerHost,
    rule: (name, content) => writeFileSync(join(fakeDir, 'control', name), `${content}\n`),
    calls: () => (existsSync(join(fakeDir, 'calls.log')) ? readFileSync(join(fakeDir, 'calls.log'), 'utf8') : ''),
    clearRule: (name) => rmSync(join(fakeDir, 'control', name), { force: true }),
    containers: (name) => {
      const out = docker(['ps', '-a', '--format', '{{.Names}}']);
      return out.split('\n').filter((n) => n && n.includes(name));
    },
    cleanup,
    daemons,
    dispose: async () => {
      await Promise.all([...daemons].map((d) => d.stop()));
      cleanup();
    },
  };
}

/** Removes the containers, networks and volumes the stand-ins labelled with this world. */
function removeWorldObjects(docker: (args: string[]) => string, fakeDir: string): void {
  const filter = `label=kindler.test.world=${fakeDir}`;
  const ids = (args: string[]) => docker(args).split('\n').filter(Boolean);
  const containers = ids(['ps', '-aq', '--filter', filter]);
  if (containers.length) docker(['rm', '-f', '-v', ...containers]);
  const volumes = ids(['volume', 'ls', '-q', '--filter', filter]);
  if (volumes.length) docker(['volume', 'rm', ...volumes]);
  // kind's shared network `kind` stays while another world's nodes are on it, as it does for kind.
  for (const n of ids(['network', 'ls', '-q', '--filter', filter])) {
    const members = docker(['network', 'inspect', '-f', '{{len .Containers}}', n]).trim();
    if (members === '0') docker(['network', 'rm', n]);
  }
}

/** The environment the engine gives scripts (stand-ins first on PATH, a private HOME). */
export function scriptEnv(w: World): Record<string, string> {
  const env: Record<string, string> = { PATH: w.env.PATH!, KINDLER_FAKE_DIR: w.fakeDir, HOME: w.home, XDG_CONFIG_HOME: join(w.home, '.config') };
  if (w.dockerHost) Object.assign(env, { DOCKER_HOST: w.dockerHost, KINDLER_FAKE_ENGINE: 'docker' });
  return env;
}

export async function startEngine(w: World): Promise<Engine> {
  return Engine.start(w.cfg, { role: 'test', scriptEnv: scriptEnv(w) });
}

export const ALICE: Principal = { user: 'alice', source: 'test', role: 'admin' };

/** Runs a verb in-process; returns exit code and output. */
export async function verb(engine: Engine, argv: string[], actor: Principal = ALICE): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCommand(argv, {
    engine,
    actor,
    io: {
      out: (s) => (out += s),
      err: (s) => (err += s),
      isTTY: false,
      columns: 100,
      signal: new AbortController().signal,
      readFile: async (p) => readFileSync(p, 'utf8'),
    },
  });
  return { code, out, err };
}

export interface Proc {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI as a process. */
export function cli(w: World, args: string[], opts: { timeoutMs?: number } = {}): Promise<Proc> {
  return new Promise((resolvePromise, reject) => {
    const p = spawn(process.execPath, [CLI, ...args], { env: w.env, cwd: w.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`kindler ${args.join(' ')} did not finish within ${opts.timeoutMs ?? 60000} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, opts.timeoutMs ?? 60000);
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, stdout, stderr });
    });
  });
}

export interface Daemon {
  proc: ChildProcess;
  output: () => string;
  /** Resolves when the daemon's output matches. */
  waitFor(re: RegExp, ms?: number): Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `kindler daemon` and waits until it listens. */
export async function startDaemon(w: World): Promise<Daemon> {
  const proc = spawn(process.execPath, [CLI, 'daemon'], { env: w.env, cwd: w.dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const waiters: (() => void)[] = [];
  const onData = (d: Buffer) => {
    out += d.toString();
    for (const f of waiters.splice(0)) f();
  };
  proc.stdout.on('data', onData);
  proc.stderr.on('data', onData);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    proc.on('exit', (code, signal) => {
      for (const f of waiters.splice(0)) f();
      r({ code, signal });
    }),
  );
  const waitFor = (re: RegExp, ms = 30000) =>
    new Promise<void>((resolveWait, reject) => {
      const timer = setTimeout(() => reject(new Error(`daemon output did not match ${re} within ${ms} ms:\n${out}`)), ms);
      const check = () => {
        if (re.test(out)) {
          clearTimeout(timer);
          resolveWait();
        } else if (proc.exitCode !== null || proc.signalCode !== null) {
          clearTimeout(timer);
          reject(new Error(`daemon exited (${proc.exitCode ?? proc.signalCode}) before matching ${re}:\n${out}`));
        } else waiters.push(check);
      };
      check();
    });
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
    return exited;
  };
  w.daemons.add({ stop });
  await waitFor(/kindler daemon started/);
  return { proc, output: () => out, waitFor, exited, stop };
}

/** Polls a condition on engine events (not on time): resolves when `pred` holds after an event. */
export function until(engine: Engine, pred: () => boolean, ms = 30000, what = 'condition'): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    if (pred()) return resolvePromise();
    const timer = setTimeout(() => {
      off();
      reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
    }, ms);
    const off = engine.feed.subscribe(() => {
      if (pred()) {
        clearTimeout(timer);
        off();
        resolvePromise();
      }
    });
  });
}

/** Re-checks a condition on outside state (files, processes) every 20 ms until a deadline. */
export async function poll(pred: () => boolean, ms = 20000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// ---- SSH (in-process server, ssh2 client) for the abuse and fuzz suites ---------------------------

/** A throwaway user key made by ssh-keygen: its file, public line, fingerprint and parsed private key. */
/**
 * A port free right now on 127.0.0.1, below the kernel's ephemeral range (the clusters' test ports are
 * 20000-32000): an outgoing connection (the ssh client's own) can never be holding it.
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = 12000 + Math.floor(Math.random() * 6000);
    const s = createServer();
    const ok = await new Promise<boolean>((r) => {
      s.once('error', () => r(false));
      s.listen(port, '127.0.0.1', () => r(true));
    });
    if (!ok) continue;
    await new Promise<void>((r) => s.close(() => r()));
    return port;
  }
}

export interface TestKey {
  name: string;
  path: string;
  pub: string;
  fp: string;
  priv: ParsedKey;
}

/** Makes an ed25519 key pair in `dir`. */
export function makeTestKey(dir: string, name: string): TestKey {
  const path = join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', path]);
  const pub = readFileSync(`${path}.pub`, 'utf8').trim();
  const fp = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${path}.pub`], { encoding: 'utf8' }).split(' ')[1]!;
  return { name, path, pub, fp, priv: ssh2.utils.parseKey(readFileSync(path)) as ParsedKey };
}

/** An in-process SSH server on port 0 with its log lines, and the users file it reads. */
export interface TestSsh {
  srv: SshServer;
  users: UsersStore;
  logs: string[];
  /** Log lines matching `re` (from index `from` on). */
  count(re: RegExp, from?: number): number;
  /** Resolves with the first log line (from `from` on) matching `re`. */
  waitLog(re: RegExp, ms?: number, from?: number): Promise<string>;
  stop(): Promise<void>;
}

/** Starts the real SSH server in-process for `engine`; `users` are users-file lines. The TUI is the real one unless `openTui` is given. */
export async function startTestSsh(w: World, engine: Engine, o: { users: string[]; limits?: Partial<SshLimits>; openTui?: OpenTui }): Promise<TestSsh> {
  const usersFile = join(w.dir, 'users.conf');
  writeFileSync(usersFile, `${o.users.join('\n')}\n`, { mode: 0o640 });
  const logs: string[] = [];
  const wakers = new Set<() => void>();
  const log = (level: string, msg: string) => {
    logs.push(`${level} ${msg}`);
    if (process.env.KINDLER_TEST_VERBOSE) process.stderr.write(`    [log] ${level} ${msg}\n`);
    for (const f of [...wakers]) f();
  };
  const users = new UsersStore({ file: usersFile, log, debounceMs: 50 });
  users.load();
  const hostKey = loadOrCreateHostKey(join(w.dir, 'keys', 'ssh_host_ed25519_key'));
  const srv = await startSshServer({
    service: new Service(engine),
    users,
    hostKey,
    host: '127.0.0.1',
    port: 0,
    log,
    hostName: 'testhost',
    limits: { ...DEFAULT_SSH_LIMITS, ...o.limits },
    ...(o.openTui ? { openTui: o.openTui } : {}),
  });
  const count = (re: RegExp, from = 0) => logs.slice(from).filter((l) => re.test(l)).length;
  const waitLog = (re: RegExp, ms = 10_000, from = 0) =>
    new Promise<string>((resolvePromise, reject) => {
      const check = () => {
        const hit = logs.slice(from).find((l) => re.test(l));
        if (hit === undefined) return;
        wakers.delete(check);
        clearTimeout(timer);
        resolvePromise(hit);
      };
      const timer = setTimeout(() => {
        wakers.delete(check);
        reject(new Error(`timed out after ${ms} ms waiting for a server log line matching ${re}; last lines:\n${logs.slice(-20).join('\n')}`));
      }, ms);
      wakers.add(check);
      check();
    });
  return {
    srv,
    users,
    logs,
    count,
    waitLog,
    stop: async () => {
      await srv.stop();
      users.close();
    },
  };
}

/**
 * The OpenSSH client options the tests start from: no config file or known-hosts file, never a
 * prompt, only the key given with -i, and a connect timeout; callers append their own.
 */
export function sshClientOpts(connectTimeoutS = 10): string[] {
  return [
    '-F',
    '/dev/null',
    '-o',
    'StrictHostKeyChecking=no',
    '-o',
    'UserKnownHostsFile=/dev/null',
    '-o',
    'BatchMode=yes',
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    `ConnectTimeout=${connectTimeoutS}`,
  ];
}

/** Connects an ssh2 client; rejects with the client's error (or a close before ready). */
export function sshConnect(port: number, cfg: Partial<ConnectConfig>): Promise<InstanceType<typeof ssh2.Client>> {
  return new Promise((resolvePromise, reject) => {
    const c = new ssh2.Client();
    c.on('ready', () => resolvePromise(c));
    c.on('error', (err) => {
      c.destroy();
      reject(err);
    });
    c.on('close', () => reject(new Error('connection closed before it was ready')));
    c.connect({ host: '127.0.0.1', port, username: 'kindler', readyTimeout: 20_000, ...cfg });
  });
}

/** What one exec channel returned: raw bytes of stdout and stderr, and the exit code. */
export interface ExecResult {
  code: number | undefined;
  stdout: Buffer;
  stderr: Buffer;
}

/** Runs one exec request on a connected client (optionally with a pty) and collects its raw output. */
export function sshExec(c: InstanceType<typeof ssh2.Client>, command: string, o: { pty?: boolean } = {}): Promise<ExecResult> {
  return new Promise((resolvePromise, reject) => {
    c.exec(command, o.pty ? { pty: { term: 'xterm', cols: 100, rows: 30, height: 0, width: 0 } } : {}, (err, ch) => {
      if (err) return reject(err);
      const out: Buffer[] = [];
      const errb: Buffer[] = [];
      let code: number | undefined;
      ch.on('data', (d: Buffer) => out.push(d));
      ch.stderr.on('data', (d: Buffer) => errb.push(d));
      ch.on('exit', (x: number) => (code = x));
      ch.on('close', () => resolvePromise({ code, stdout: Buffer.concat(out), stderr: Buffer.concat(errb) }));
    });
  });
}

/** One verb through a running daemon's control socket (the CLI's own transport, without a node start). */
export interface CtlResult {
  code: number;
  out: string;
  err: string;
  /** The daemon went away before answering: the outcome is unknown. */
  dropped: boolean;
}

/** Runs `argv` on the daemon of world `w` over its control socket; `dropped` when no answer came. */
export async function ctl(w: World, argv: string[], user = 'tester'): Promise<CtlResult> {
  const { tryConnect, runRemote } = await import('../src/control/client.js');
  let sock;
  try {
    sock = await tryConnect(join(w.dataDir, 'kindler.sock'));
  } catch (e) {
    return { code: 1, out: '', err: (e as Error).message, dropped: true };
  }
  if (!sock) return { code: 1, out: '', err: 'no daemon is listening', dropped: true };
  let out = '';
  let err = '';
  const code = await runRemote(
    sock,
    { type: 'run', argv, user, isTTY: false, columns: 120, files: {} },
    {
      out: (s) => (out += s),
      err: (s) => (err += s),
    },
  );
  const exited = !/closed the connection before the command finished/.test(err);
  return { code, out, err, dropped: !exited };
}

/** A process seen in /proc. */
export interface ProcInfo {
  pid: number;
  ppid: number;
  pgid: number;
  state: string;
  cmd: string;
}

/** Every live (not zombie) process whose environment holds `KEY=VALUE` (only this user's are readable). */
export function processesWithEnv(key: string, value: string): ProcInfo[] {
  const want = `${key}=${value}`;
  const out: ProcInfo[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const env = readFileSync(`/proc/${entry}/environ`, 'latin1').split('\0');
      if (!env.includes(want)) continue;
      const stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (f[0] === 'Z' || f[0] === 'X') continue;
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'latin1').split('\0').filter(Boolean).join(' ');
      out.push({ pid: Number(entry), ppid: Number(f[1]), pgid: Number(f[2]), state: f[0]!, cmd });
    } catch {
      /* gone, or not ours */
    }
  }
  return out;
}

/** The processes of world `w` (by its fake dir in their environment) that descend from none of `roots`. */
export function strayProcesses(w: World, roots: number[]): ProcInfo[] {
  const procs = processesWithEnv('KINDLER_FAKE_DIR', w.fakeDir);
  const parentOf = (pid: number): number | null => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return f[0] === 'Z' || f[0] === 'X' ? null : Number(f[1]);
    } catch {
      return null;
    }
  };
  const keep = new Set(roots);
  return procs.filter((p) => {
    let pid = p.pid;
    for (let hops = 0; pid > 1 && hops < 64; hops++) {
      if (keep.has(pid)) return false;
      const up = parentOf(pid);
      // It or an ancestor ended while we looked: a short-lived child finishing, not a stray.
      if (up === null) return false;
      pid = up;
    }
    return true;
  });
}

/** An engine on a fresh world (config overrides applied), both shut down and removed after the test. */
export async function withEngine(t: import('node:test').TestContext, overrides: Record<string, unknown> = {}): Promise<{ w: World; engine: Engine }> {
  const w = makeWorld(overrides);
  const engine = await startEngine(w);
  t.after(async () => {
    await engine.shutdown();
    w.cleanup();
  });
  return { w, engine };
}

/** An SSH agent that offers one key and signs with another: a login-bypass attempt that must fail. */
export class TwoFacedAgent extends ssh2.BaseAgent {
  constructor(
    private readonly shows: ParsedKey,
    private readonly signsWith: ParsedKey,
  ) {
    super();
  }
  override getIdentities(cb: (err: Error | undefined, keys?: ParsedKey[]) => void): void {
    cb(undefined, [this.shows]);
  }
  override sign(_pub: unknown, data: Buffer, options: unknown, cb?: (err: Error | undefined, sig?: Buffer) => void): void {
    const done = (typeof options === 'function' ? options : cb) as (err: Error | undefined, sig?: Buffer) => void;
    done(undefined, this.signsWith.sign(data));
  }
}

// ---- full disks (root only: tmpfs mounts) -----------------------------------------------------

/** Mounts a tmpfs of `size` (e.g. '2m') on `dir` (which must exist); returns the unmount. */
export function mountTmpfs(dir: string, size: string): () => void {
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0750`, 'tmpfs', dir]);
  let mounted = true;
  return () => {
    if (mounted) execFileSync('umount', ['-l', dir]);
    mounted = false;
  };
}

/** Whether this process may mount (root): the full-disk tests need it. */
export const CAN_MOUNT = process.getuid?.() === 0;

/** Fills the filesystem holding `dir` to the last byte with one file; returns the function that frees it. */
export function fillDisk(dir: string): () => void {
  const file = join(dir, `.filler-${process.pid}-${Math.random().toString(36).slice(2)}`);
  const fd = openSync(file, 'wx', 0o600);
  try {
    for (const size of [1 << 20, 64 << 10, 4 << 10, 512, 1]) {
      const buf = Buffer.alloc(size);
      for (;;) {
        try {
          writeSync(fd, buf);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOSPC') break;
          throw e;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
  return () => rmSync(file, { force: true });
}

/**
 * The tasks on disk as the next start reads them: state.json's (live ones, and finished ones not yet moved)
 * merged with the journal's finished ones, a task in both taken from the journal, in creation order.
 */
export function tasksOnDisk(dataDir: string): Task[] {
  const state = JSON.parse(readFileSync(join(dataDir, 'state.json'), 'utf8')) as { tasks: Task[] };
  const byId = new Map<string, Task>();
  for (const t of state.tasks) byId.set(t.id, t);
  for (const rec of readJournal(dataDir).tasks) {
    if (typeof rec.pruned === 'string') byId.delete(rec.pruned);
    else byId.set(rec.id as string, rec as unknown as Task);
  }
  return [...byId.values()].sort((a, b) => Number(a.id.slice(2)) - Number(b.id.slice(2)));
}

/** The audit events on disk as the next start reads them: state.json's not yet moved and the journal's, by number. */
export function auditOnDisk(dataDir: string): Record<string, unknown>[] {
  const state = JSON.parse(readFileSync(join(dataDir, 'state.json'), 'utf8')) as { audit: { n: number; e: Record<string, unknown> }[]; auditFrom?: number };
  const byN = new Map<number, Record<string, unknown>>();
  for (const rec of readJournal(dataDir).audit) byN.set(rec.n as number, rec.e as Record<string, unknown>);
  for (const r of state.audit) if (!byN.has(r.n)) byN.set(r.n, r.e);
  return [...byN.entries()]
    .filter(([n]) => n >= (state.auditFrom ?? 1))
    .sort((a, b) => a[0] - b[0])
    .map(([, ev]) => ev);
}
