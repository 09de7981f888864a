/** Small helpers shared by the benchmarks. */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import type { ClientChannel, ConnectConfig } from 'ssh2';
import xterm from '@xterm/headless';
import type { AuditEvent, Cluster, Task } from '../src/core/types.js';
import { SCHEMA_VERSION, stateProblem, type StateData } from '../src/store/state.js';

/** The p-th percentile (nearest rank) of the values. */
export function pct(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * s.length);
  return s[Math.min(s.length - 1, Math.max(0, rank - 1))]!;
}

/** Rounds to `digits` decimals (1 by default). */
export function fmt(v: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

/** A plain aligned text table with a title, for stderr. */
export function table(title: string, rows: (string | number)[][]): string {
  const cells = rows.map((r) => r.map(String));
  const widths = cells[0]!.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  const out = [`== ${title} ==`, line(cells[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)];
  return `${out.join('\n')}\n`;
}

// ---- SSH/TUI bench helpers (attach.ts, sessions.ts) ----------------------------------------------

const { Client } = ssh2;
const { Terminal } = xterm;

/** Cron schedules that never fire during a bench run (1 January, 00:00). */
export const QUIET_SCHEDULES = { reconcile: '0 0 1 1 *', ttl: '0 0 1 1 *', retention: '0 0 1 1 *' };

/**
 * Writes a state.json with `n` running clusters (no tasks, no expiry) into `dataDir`, before the
 * daemon starts. Returns the cluster names.
 */
export function seedClusters(dataDir: string, n: number, owner = 'admin', ttlEvery = 0): string[] {
  // With ttlEvery = k, every k-th cluster has a TTL: it expires 2 h from now plus 6 s per TTL'd
  // cluster, so their EXPIRES countdowns change at different moments.
  const now = Date.now();
  const t0 = Date.parse('2025-01-01T00:00:00Z');
  const iso = (ms: number) => new Date(t0 + ms).toISOString();
  const clusters: Cluster[] = Array.from({ length: n }, (_, i) => {
    const name = `seed${String(i).padStart(3, '0')}`;
    return {
      name,
      provider: i % 5 === 0 ? 'kind' : 'k3d',
      servers: 1,
      agents: i % 3,
      httpPort: 40000 + i,
      httpsPort: 41000 + i,
      apiPort: 42000 + i,
      owner,
      createdAt: iso(i * 60_000),
      desired: 'present',
      actual: 'running',
      kubeContext: `${i % 5 === 0 ? 'kind' : 'k3d'}-${name}`,
      kubeconfig: join(dataDir, 'kubeconfig', `${name}.yaml`),
      nodeAddress: `172.18.0.${(i % 250) + 2}`,
      ...(ttlEvery > 0 && i % ttlEvery === 0 ? { expiresAt: new Date(now + 2 * 3600_000 + (i / ttlEvery) * 6000).toISOString() } : {}),
      updatedAt: iso(i * 60_000 + 31_000),
    };
  });
  const state: StateData = { schemaVersion: SCHEMA_VERSION, nextTaskSeq: 1, clusters, tasks: [], audit: [] };
  const problem = stateProblem(state);
  if (problem) throw new Error(`seeded state is invalid: ${problem}`);
  writeFileSync(join(dataDir, 'state.json'), JSON.stringify(state), { mode: 0o600 });
  return clusters.map((c) => c.name);
}

/** An ed25519 key pair made with ssh-keygen (no passphrase). */
export interface BenchKey {
  path: string;
  pub: string;
  priv: Buffer;
}

/** Makes an ed25519 key pair in `dir` with ssh-keygen. */
export function makeKey(dir: string, name: string): BenchKey {
  const path = join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `${name}@bench`, '-f', path]);
  return { path, pub: readFileSync(`${path}.pub`, 'utf8').trim(), priv: readFileSync(path) };
}

/** The SSH port and host key fingerprint a daemon logged at start. */
export function sshEndpoint(daemonOutput: string): { port: number; hostFp: string } {
  const port = /ssh listening on 127\.0\.0\.1:(\d+)/.exec(daemonOutput)?.[1];
  const hostFp = /ssh host key .*: (SHA256:[A-Za-z0-9+/]{43})/.exec(daemonOutput)?.[1];
  if (!port || !hostFp) throw new Error(`the daemon did not log its SSH port and host key:\n${daemonOutput}`);
  return { port: Number(port), hostFp };
}

/** ssh2 client options for 127.0.0.1:port with the host key pinned by fingerprint. */
export function connectOpts(port: number, key: BenchKey, hostFp: string | null): ConnectConfig {
  return {
    host: '127.0.0.1',
    port,
    username: 'kindler',
    privateKey: key.priv,
    readyTimeout: 30_000,
    ...(hostFp ? { hostVerifier: (raw: Buffer) => `SHA256:${createHash('sha256').update(raw).digest('base64').replace(/=+$/, '')}` === hostFp } : {}),
  };
}

/** Timing marks of one exec (ms since `connect` was called). */
export interface ExecTiming {
  readyMs: number;
  totalMs: number;
  code: number | null;
  out: string;
}

/** Connects, runs one command (no pty), waits for the channel to close; times each phase. */
export function timedExec(opts: ConnectConfig, command: string, timeoutMs = 30_000): Promise<ExecTiming> {
  return new Promise((resolve, reject) => {
    const conn = new Client();
    const t0 = performance.now();
    let readyMs = NaN;
    let out = '';
    let code: number | null = null;
    const timer = setTimeout(() => {
      conn.destroy();
      reject(new Error(`exec ${command} did not finish in ${timeoutMs} ms`));
    }, timeoutMs);
    conn.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    conn.on('ready', () => {
      readyMs = performance.now() - t0;
      conn.exec(command, (e, ch) => {
        if (e) {
          clearTimeout(timer);
          conn.end();
          return reject(e);
        }
        ch.on('data', (b: Buffer) => (out += b.toString()));
        ch.stderr.resume();
        ch.on('exit', (c: number | null) => (code = c));
        ch.on('close', () => {
          const totalMs = performance.now() - t0;
          clearTimeout(timer);
          conn.once('close', () => resolve({ readyMs, totalMs, code, out }));
          conn.end();
        });
      });
    });
    conn.connect(opts);
  });
}

/** A screen predicate on the visible text grid (one string per row). */
export type ScreenPred = (lines: string[]) => boolean;

/** One TUI session over SSH rendered into a headless xterm. */
export interface TuiClient {
  /** ms from connect() to 'ready' (handshake + auth), to the shell channel, to the first byte. */
  readyMs: number;
  shellMs: number;
  firstByteMs: number;
  /** performance.now() when connect() was called. */
  t0: number;
  /** Bytes received on the channel so far. */
  bytes: number;
  /** performance.now() of each chunk received (the caller may empty it). */
  arrivals: number[];
  /** The visible grid, one string per row (trailing blanks trimmed). */
  lines(): string[];
  /** Resolves with performance.now() at the first parsed write after which `pred` holds. */
  waitFor(pred: ScreenPred, ms?: number, what?: string): Promise<number>;
  /** Ends the connection; resolves when it is closed. */
  close(): Promise<void>;
}

/**
 * Connects with ssh2, opens a shell with a pty (xterm-256color, cols×rows) and feeds everything the
 * server sends into an @xterm/headless terminal. Resolves once the shell channel is open.
 * With `conn`, opens the shell on that already-ready connection instead (readyMs is then 0).
 */
export function openTuiClient(opts: ConnectConfig, cols: number, rows: number, existing?: InstanceType<typeof Client>): Promise<TuiClient> {
  return new Promise((resolve, reject) => {
    const conn = existing ?? new Client();
    const term = new Terminal({ cols, rows, allowProposedApi: true, scrollback: 0 });
    const waiters = new Set<() => void>();
    const t0 = performance.now();
    let closed = false;
    const gone = new Promise<void>((r) =>
      conn.once('close', () => {
        closed = true;
        for (const f of [...waiters]) f();
        r();
      }),
    );
    const lines = () => {
      const b = term.buffer.active;
      return Array.from({ length: term.rows }, (_, y) => b.getLine(b.viewportY + y)?.translateToString(true) ?? '');
    };
    const client: TuiClient = {
      readyMs: 0,
      shellMs: NaN,
      firstByteMs: NaN,
      t0,
      bytes: 0,
      arrivals: [],
      lines,
      waitFor: (pred, ms = 30_000, what = 'the screen') =>
        new Promise<number>((res, rej) => {
          const check = () => {
            if (pred(lines())) {
              waiters.delete(check);
              clearTimeout(timer);
              res(performance.now());
            } else if (closed) {
              waiters.delete(check);
              clearTimeout(timer);
              rej(new Error(`the session closed before ${what} appeared; screen:\n${lines().join('\n')}`));
            }
          };
          const timer = setTimeout(() => {
            waiters.delete(check);
            rej(new Error(`timed out after ${ms} ms waiting for ${what}; screen:\n${lines().join('\n')}`));
          }, ms);
          waiters.add(check);
          check();
        }),
      close: async () => {
        if (!closed) conn.end();
        await gone;
        term.dispose();
      },
    };
    const start = () =>
      conn.shell({ term: 'xterm-256color', cols, rows, height: 0, width: 0 }, (e, s: ClientChannel) => {
        if (e) {
          conn.end();
          return reject(e);
        }
        client.shellMs = performance.now() - t0;
        const onData = (b: Buffer) => {
          if (client.bytes === 0) client.firstByteMs = performance.now() - t0;
          client.bytes += b.length;
          client.arrivals.push(performance.now());
          term.write(b, () => {
            for (const f of [...waiters]) f();
          });
        };
        s.on('data', onData);
        s.stderr.on('data', onData);
        resolve(client);
      });
    if (existing) start();
    else {
      conn.on('error', reject);
      conn.on('ready', () => {
        client.readyMs = performance.now() - t0;
        start();
      });
      conn.connect(opts);
    }
  });
}

/** Resident set size and its peak (kB) of a process, from /proc/PID/status. */
export function procMem(pid: number): { rssKb: number; hwmKb: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN);
  return { rssKb: kb('VmRSS'), hwmKb: kb('VmHWM') };
}

/** CPU time (user + system, ms) a process has used, from /proc/PID/stat. */
export function procCpuMs(pid: number): number {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return NaN; // the process is gone
  }
  // Fields after the ")" that closes the command name; utime and stime are fields 14 and 15.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / clockTicks();
}

let ticks: number | undefined;
/** The kernel's clock ticks per second (getconf CLK_TCK; 100 on Linux). */
export function clockTicks(): number {
  ticks ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  return ticks;
}

/** The OpenSSH server binary, if installed (PATH, then /usr/sbin). */
export function findSshd(): string | null {
  for (const d of [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/local/sbin', '/sbin']) {
    if (d && existsSync(join(d, 'sshd'))) return join(d, 'sshd');
  }
  return null;
}

/** Connects and authenticates with ssh2 (no channel); resolves with the ready client. */
export function sshConnect(opts: ConnectConfig): Promise<InstanceType<typeof Client>> {
  return new Promise((resolve, reject) => {
    const conn = new Client();
    conn.once('error', reject);
    conn.once('ready', () => {
      conn.off('error', reject);
      conn.on('error', () => undefined);
      resolve(conn);
    });
    conn.connect(opts);
  });
}

/** Runs `fn` over `items` with at most `limit` at a time; results in input order. */
export async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!, i);
      }
    }),
  );
  return out;
}

/** RSS once it stops moving (two readings 250 ms apart within 0.5 MB), or after `maxMs`. */
export async function settledMem(pid: number, maxMs = 5000): Promise<{ rssKb: number; hwmKb: number }> {
  const end = Date.now() + maxMs;
  let last = procMem(pid);
  for (;;) {
    await new Promise((r) => setTimeout(r, 250));
    const now = procMem(pid);
    if (Math.abs(now.rssKb - last.rssKb) <= 512 || Date.now() > end) return now;
    last = now;
  }
}

/** The machine the figures came from, and how busy it was (1-minute load average). */
export function machine(): { cpus: number; loadavg1: number; node: string } {
  return { cpus: cpus().length, loadavg1: fmt(loadavg()[0]!, 2), node: process.version };
}

/** A `kB` field of /proc/PID/status (VmRSS, VmHWM, …); NaN when the process or field is gone. */
export function procStatusKb(pid: number, field: string): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

// ---- the scale state (state.ts, orchestration.ts) ------------------------------------------------

/**
 * A valid state document: `clusters` running/stopped clusters, `tasks` finished tasks and `audit`
 * audit events, all dated in 2025 (nothing expires, nothing is pending).
 */
export function buildState(dataDir: string, clusterCount: number, taskCount: number, auditCount = 0): StateData {
  const t0 = Date.parse('2025-01-01T00:00:00Z');
  const iso = (ms: number) => new Date(t0 + ms).toISOString();
  const cname = (i: number) => `c${String(i).padStart(4, '0')}`;
  const clusters: Cluster[] = Array.from({ length: clusterCount }, (_, i) => ({
    name: cname(i),
    provider: i % 5 === 0 ? 'kind' : 'k3d',
    servers: 1,
    agents: i % 3,
    httpPort: 30000 + i,
    httpsPort: 40000 + i,
    apiPort: 50000 + i,
    owner: `user${i % 25}`,
    createdAt: iso(i * 60_000),
    desired: i % 7 === 0 ? 'stopped' : 'present',
    actual: i % 7 === 0 ? 'stopped' : 'running',
    kubeContext: `${i % 5 === 0 ? 'kind' : 'k3d'}-${cname(i)}`,
    kubeconfig: join(dataDir, 'kubeconfig', `${cname(i)}.yaml`),
    nodeAddress: `172.18.${Math.floor(i / 250)}.${(i % 250) + 2}`,
    lastTaskId: `t-${i + 1}`,
    steps: [
      { key: 'preflight', title: 'Checking tools', state: 'succeeded', at: iso(i * 60_000 + 1000), taskId: `t-${i + 1}` },
      { key: 'create', title: 'Creating cluster', state: 'succeeded', at: iso(i * 60_000 + 30_000), taskId: `t-${i + 1}` },
      { key: 'kubeconfig', title: 'Writing kubeconfig', state: 'succeeded', at: iso(i * 60_000 + 31_000), taskId: `t-${i + 1}` },
    ],
    updatedAt: iso(i * 60_000 + 31_000),
  }));
  const kinds = ['create', 'start', 'stop', 'delete', 'import-image'] as const;
  const tasks: Task[] = Array.from({ length: taskCount }, (_, i) => {
    const at = i * 30_000;
    const failed = i % 17 === 0;
    return {
      id: `t-${i + 1}`,
      kind: kinds[i % kinds.length]!,
      cluster: cname(i % Math.max(1, clusterCount)),
      user: `user${i % 25}`,
      state: failed ? 'failed' : 'succeeded',
      progress: failed ? 66 : 100,
      steps: [
        { n: 1, of: 3, key: 'preflight', title: 'Checking tools', state: 'succeeded', startedAt: iso(at + 100), finishedAt: iso(at + 1000) },
        { n: 2, of: 3, key: 'create', title: 'Creating cluster', state: 'succeeded', startedAt: iso(at + 1000), finishedAt: iso(at + 20_000) },
        {
          n: 3,
          of: 3,
          key: 'kubeconfig',
          title: 'Writing kubeconfig',
          state: failed ? 'failed' : 'succeeded',
          startedAt: iso(at + 20_000),
          finishedAt: iso(at + 21_000),
        },
      ],
      createdAt: iso(at),
      startedAt: iso(at + 50),
      finishedAt: iso(at + 21_000),
      exitCode: failed ? 1 : 0,
      notes: i % 11 === 0 ? ['k3d cluster was already absent'] : [],
      ...(failed
        ? {
            error: {
              reason: 'kubectl wait failed (exit 1): timed out waiting for the condition',
              stderrTail: ['error: timed out waiting for the condition on nodes/k3d-x-server-0'],
            },
          }
        : {}),
      params: { newRecord: true, pid: 10000 + i, pidStart: '123456' },
      logLines: 40,
    };
  });
  const actions = ['create', 'delete', 'start', 'stop', 'login', 'import-image', 'user add'] as const;
  const audit: AuditEvent[] = Array.from({ length: auditCount }, (_, i) => ({
    at: iso(i * 6_000),
    user: `user${i % 25}`,
    fingerprint: `SHA256:${createHash('sha256')
      .update(`user${i % 25}`)
      .digest('base64')
      .replace(/=+$/, '')}`,
    source: i % 3 === 0 ? 'ssh' : 'cli',
    action: actions[i % actions.length]!,
    target: cname(i % Math.max(1, clusterCount)),
    result: i % 23 === 0 ? 'refused' : i % 29 === 0 ? 'failed' : 'ok',
    ...(i % 2 === 0 && taskCount > 0 ? { taskId: `t-${(i % taskCount) + 1}` } : {}),
    ...(i % 23 === 0 ? { detail: 'not the owner of the cluster' } : {}),
  }));
  const state: StateData = { schemaVersion: SCHEMA_VERSION, nextTaskSeq: taskCount + 1, clusters, tasks, audit };
  const problem = stateProblem(state);
  if (problem) throw new Error(`generated state is invalid: ${problem}`);
  return state;
}

/** Event-loop delay of this process over the `fn` calls made through it (max and p99, ms). */
export function loopDelayRecorder() {
  const h = monitorEventLoopDelay({ resolution: 1 });
  let calls = 0;
  return {
    async during<T>(fn: () => Promise<T>): Promise<T> {
      h.enable();
      calls++;
      try {
        return await fn();
      } finally {
        h.disable();
      }
    },
    result: () => ({ maxMs: fmt(h.max / 1e6), p99Ms: fmt(h.percentile(99) / 1e6), p50Ms: fmt(h.percentile(50) / 1e6), samples: h.count, windows: calls }),
  };
}

// ---- the bench-level runner (BENCH_RUNS) -----------------------------------------------------------

/** Flattens the numeric leaves of a JSON value into `path → number` (arrays by index). */
function numericLeaves(v: unknown, path = '', out = new Map<string, number>()): Map<string, number> {
  if (typeof v === 'number' && Number.isFinite(v)) out.set(path, v);
  else if (Array.isArray(v)) v.forEach((x, i) => numericLeaves(x, path ? `${path}.${i}` : String(i), out));
  else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) numericLeaves(x, path ? `${path}.${k}` : k, out);
  return out;
}

/** Flattens the boolean leaves (the `pass` fields) of a JSON value. */
function boolLeaves(v: unknown, path = '', out = new Map<string, boolean>()): Map<string, boolean> {
  if (typeof v === 'boolean') out.set(path, v);
  else if (Array.isArray(v)) v.forEach((x, i) => boolLeaves(x, path ? `${path}.${i}` : String(i), out));
  else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) boolLeaves(x, path ? `${path}.${k}` : k, out);
  return out;
}

const median = (v: number[]) => {
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/**
 * Runs a bench's `main` BENCH_RUNS times (default 5), each in a fresh process of the same file
 * (BENCH_RUN_CHILD=1), one after the other. Each run measures kindler and its baseline
 * back to back, so the runs alternate kindler / baseline / kindler / baseline …. Prints one JSON
 * object: every numeric figure as { median, min, max } over the runs, how many runs passed each
 * `pass`, the 1-minute load average before and after each run, and every run's own JSON.
 * BENCH_RUNS=1 (or a child run) just calls `main`.
 */
export async function runBench(file: string, main: () => Promise<void>): Promise<void> {
  const runs = Number(process.env.BENCH_RUNS ?? 5);
  if (process.env.BENCH_RUN_CHILD === '1' || runs <= 1) return main();
  const raw: unknown[] = [];
  const loads: { before: number; after: number }[] = [];
  let failed = 0;
  for (let r = 0; r < runs; r++) {
    const before = fmt(loadavg()[0]!, 2);
    process.stderr.write(`-- ${file}: run ${r + 1}/${runs} (load ${before})\n`);
    const res = spawnSync(process.execPath, [...process.execArgv, file], {
      env: { ...process.env, BENCH_RUN_CHILD: '1' },
      stdio: ['ignore', 'pipe', 'inherit'],
      encoding: 'utf8',
      maxBuffer: 256 * 1024 * 1024,
    });
    loads.push({ before, after: fmt(loadavg()[0]!, 2) });
    const line = (res.stdout ?? '')
      .trim()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .at(-1);
    if (res.status !== 0 || !line) {
      failed++;
      process.stderr.write(`-- run ${r + 1} failed (exit ${res.status ?? res.signal})\n`);
      if (!line) continue;
    }
    raw.push(JSON.parse(line));
  }
  const nums = raw.map((x) => numericLeaves(x));
  const bools = raw.map((x) => boolLeaves(x));
  const figures: Record<string, { median: number; min: number; max: number; n: number }> = {};
  for (const k of new Set(nums.flatMap((m) => [...m.keys()]))) {
    const v = nums.map((m) => m.get(k)).filter((x): x is number => x !== undefined);
    figures[k] = { median: fmt(median(v), 2), min: fmt(Math.min(...v), 2), max: fmt(Math.max(...v), 2), n: v.length };
  }
  const passes: Record<string, string> = {};
  for (const k of new Set(bools.flatMap((m) => [...m.keys()]))) {
    const v = bools.map((m) => m.get(k)).filter((x): x is boolean => x !== undefined);
    passes[k] = `${v.filter(Boolean).length}/${v.length}`;
  }
  const bench = (raw[0] as { bench?: string } | undefined)?.bench ?? file;
  process.stdout.write(
    `${JSON.stringify({ bench, runs, failedRuns: failed, machine: { cpus: cpus().length, node: process.version, loadavg1: loads }, figures, passes, raw })}\n`,
  );
  const shown = Object.entries(figures).filter(([k]) => !/\.\d+(\.|$)/.test(k) || k.startsWith('writeSweep') || k.startsWith('scale'));
  process.stderr.write(
    table(`${bench}: median [min–max] over ${raw.length} runs; load ${loads.map((l) => l.before).join(', ')}`, [
      ['figure', 'median', 'range'],
      ...shown.map(([k, f]) => [k, f.median, `[${f.min}–${f.max}]`]),
      ...Object.entries(passes).map(([k, p]) => [k, `pass ${p}`, '']),
    ]),
  );
  if (failed) process.exitCode = 1;
}
