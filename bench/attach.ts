/**
 * Attach benchmark: SSH connect → first complete TUI frame, against the floor of the same server.
 *
 * A real daemon process (dist/cli.js daemon) with SSH on and a state of BENCH_CLUSTERS (30)
 * clusters. One client (ssh2, in this process) does, interleaved, BENCH_REPS (40) times:
 * - TUI: connect, pty + shell, feed every byte into a headless xterm, stop the clock when the
 *   visible grid shows the complete frame (header with the user, the "clusters (N)" label, every
 *   cluster row, the key hints). The terminal is big enough for every row to fit.
 * - floor: connect, `exec version` (no pty), channel closed: the cheapest thing the same server
 *   does for the same client after the same handshake.
 * - OpenSSH anchor: connect to OpenSSH's sshd on loopback (started by the bench as the current
 *   user, public keys only, `ForceCommand /bin/true` so no login shell start-up, with its
 *   privilege-separation directory /run/sshd created when running as root), exec, channel closed.
 *   If sshd is missing or cannot start, the bench says exactly what is missing and exits 1.
 * Target: TUI first frame p50 within 40 ms of the floor p50.
 *
 * Repeated BENCH_RUNS (5) times in fresh processes by util.ts runBench: median [min–max].
 * Prints one JSON object to stdout and a short table to stderr.
 * Run: npm run build && node --import tsx bench/attach.ts   (env BENCH_REPS, BENCH_CLUSTERS)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createServer, connect as tcpConnect } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { makeWorld, startDaemon, type Daemon } from '../test/helpers.js';
import {
  QUIET_SCHEDULES,
  connectOpts,
  findSshd,
  fmt,
  machine,
  runBench,
  makeKey,
  openTuiClient,
  pct,
  seedClusters,
  sshEndpoint,
  table,
  timedExec,
  type BenchKey,
  type ScreenPred,
} from './util.js';

const REPS = Number(process.env.BENCH_REPS ?? 40);
const CLUSTERS = Number(process.env.BENCH_CLUSTERS ?? 30);
const WARMUP = 3;
const TARGET_MS = 40;
const COLS = 160;
// Table rows visible = ceil((ROWS - 6) * 0.55) - 3 (see src/tui/layout.ts): 34 at 72 rows.
const ROWS = Math.max(40, Math.ceil((CLUSTERS + 3) / 0.55) + 7);

/** The complete first frame: header with the user, the table label, every row, the key hints. */
function completeFrame(names: string[]): ScreenPred {
  return (lines) => {
    if (!/^ kindler │ .+ │ \S+ \(admin\) │ /.test(lines[0] ?? '') || lines[0]!.includes('connecting…')) return false;
    if (!lines.some((l) => l.includes(` clusters (${names.length}) `))) return false;
    if (!(lines.at(-1) ?? '').includes('quit')) return false;
    const seen = new Set<string>();
    for (const l of lines) for (const m of l.matchAll(/\bseed\d{3}\b/g)) seen.add(m[0]);
    return names.every((n) => seen.has(n));
  };
}

interface TuiSample {
  readyMs: number;
  shellMs: number;
  firstByteMs: number;
  frameMs: number;
  bytes: number;
}

async function attachOnce(port: number, key: BenchKey, hostFp: string, names: string[]): Promise<TuiSample> {
  const c = await openTuiClient(connectOpts(port, key, hostFp), COLS, ROWS);
  try {
    const at = await c.waitFor(completeFrame(names), 30_000, 'the complete first frame');
    return { readyMs: c.readyMs, shellMs: c.shellMs, firstByteMs: c.firstByteMs, frameMs: at - c.t0, bytes: c.bytes };
  } finally {
    await c.close();
  }
}

// ---- OpenSSH sshd on loopback (optional baseline) -------------------------------------------------

interface Sshd {
  port: number;
  proc: ChildProcess;
  stop(): void;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tcpConnect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Starts OpenSSH's sshd in the foreground on a loopback port, public keys only, for this user. */
async function startSshd(bin: string, dir: string, key: BenchKey): Promise<Sshd> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // Debian's sshd refuses to start without its privilege-separation directory, which its service
  // unit normally creates.
  if (!existsSync('/run/sshd')) {
    if (process.getuid?.() === 0) mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
    else
      throw new Error(
        'the privilege-separation directory /run/sshd is missing and this is not root: create it as root (mkdir -p /run/sshd) or run the bench as root',
      );
  }
  const host = makeKey(dir, 'sshd_host');
  writeFileSync(join(dir, 'authorized_keys'), `${key.pub}\n`, { mode: 0o600 });
  const port = await freePort();
  const cfg = join(dir, 'sshd_config');
  writeFileSync(
    cfg,
    [
      `ListenAddress 127.0.0.1:${port}`,
      `HostKey ${host.path}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin prohibit-password',
      'UsePAM no',
      'StrictModes no',
      'LogLevel ERROR',
      // The anchor: no login shell start-up, no motd, no lastlog: every session runs /bin/true.
      'ForceCommand /bin/true',
      'PrintMotd no',
      'PrintLastLog no',
      'PermitUserEnvironment no',
      'X11Forwarding no',
      '',
    ].join('\n'),
  );
  const proc = spawn(bin, ['-D', '-e', '-f', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr.on('data', (d) => (err += d));
  const end = Date.now() + 10_000;
  while (!(await canConnect(port))) {
    if (proc.exitCode !== null || proc.signalCode !== null)
      throw new Error(`sshd exited (${proc.exitCode ?? proc.signalCode}): ${err.trim().split('\n').at(-1) ?? ''}`);
    if (Date.now() > end) {
      proc.kill('SIGKILL');
      throw new Error(`sshd did not listen within 10 s: ${err.trim()}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return { port, proc, stop: () => void proc.kill('SIGTERM') };
}

// ---- main ---------------------------------------------------------------------------------------

const stats = (v: number[]) => ({ p50: fmt(pct(v, 50)), p95: fmt(pct(v, 95)) });

async function main(): Promise<void> {
  const w = makeWorld({
    ssh: {
      enabled: true,
      host: '127.0.0.1',
      port: 0,
      hostKeyFile: './keys/host',
      usersFile: './users.conf',
      maxSessionsPerUser: 64,
      maxUnauthenticated: 64,
      maxConnectionsPerUser: 64,
    },
    checkHostPorts: false,
    schedules: QUIET_SCHEDULES,
  });
  const startLoad = machine();
  let d: Daemon | undefined;
  let sshd: Sshd | undefined;
  try {
    const names = seedClusters(w.dataDir, CLUSTERS);
    const key = makeKey(w.dir, 'admin');
    w.env.KINDLER_INITIAL_ADMIN_KEYS = key.pub;
    d = await startDaemon(w);
    await d.waitFor(/ssh listening on 127\.0\.0\.1:\d+/);
    const { port, hostFp } = sshEndpoint(d.output());

    const sshdBin = findSshd();
    let sshdWhyNull: string | null = sshdBin
      ? null
      : 'OpenSSH sshd is not installed (looked in PATH, /usr/sbin, /usr/local/sbin, /sbin): install the Debian package openssh-server (as root: apt-get install -y openssh-server)';
    if (sshdBin) {
      try {
        sshd = await startSshd(sshdBin, join(w.dir, 'sshd'), key);
        const probe = await timedExec({ ...connectOpts(sshd.port, key, null), username: userInfo().username }, 'true');
        if (probe.code !== 0) throw new Error(`exec true exited ${probe.code}`);
      } catch (e) {
        sshdWhyNull = `sshd could not be used: ${(e as Error).message}`;
        sshd?.stop();
        sshd = undefined;
      }
    }

    const floor: { readyMs: number[]; totalMs: number[] } = { readyMs: [], totalMs: [] };
    const tui: { readyMs: number[]; shellMs: number[]; firstByteMs: number[]; frameMs: number[]; bytes: number[] } = {
      readyMs: [],
      shellMs: [],
      firstByteMs: [],
      frameMs: [],
      bytes: [],
    };
    const openssh: number[] = [];
    for (let i = 0; i < WARMUP + REPS; i++) {
      const t = await attachOnce(port, key, hostFp, names);
      const f = await timedExec(connectOpts(port, key, hostFp), 'version');
      if (f.code !== 0) throw new Error(`exec version exited ${f.code}`);
      const o = sshd ? await timedExec({ ...connectOpts(sshd.port, key, null), username: userInfo().username }, 'true') : null;
      if (i < WARMUP) continue;
      floor.readyMs.push(f.readyMs);
      floor.totalMs.push(f.totalMs);
      for (const k of ['readyMs', 'shellMs', 'firstByteMs', 'frameMs', 'bytes'] as const) tui[k].push(t[k]);
      if (o) openssh.push(o.totalMs);
    }

    const load = machine();
    const tuiAfterAuth = tui.frameMs.map((v, i) => v - tui.readyMs[i]!);
    const floorAfterAuth = floor.totalMs.map((v, i) => v - floor.readyMs[i]!);
    const overP50 = pct(tui.frameMs, 50) - pct(floor.totalMs, 50);
    const overP95 = pct(tui.frameMs, 95) - pct(floor.totalMs, 95);
    const result = {
      bench: 'attach',
      machine: { ...load, loadavg1Start: startLoad.loadavg1 },
      reps: REPS,
      clusters: CLUSTERS,
      terminal: `${COLS}x${ROWS}`,
      client: 'ssh2 (in the bench process), headless xterm',
      tui: {
        frameMs: stats(tui.frameMs),
        readyMs: stats(tui.readyMs),
        shellMs: stats(tui.shellMs),
        firstByteMs: stats(tui.firstByteMs),
        frameBytes: stats(tui.bytes),
      },
      floorExecVersion: { totalMs: stats(floor.totalMs), readyMs: stats(floor.readyMs) },
      afterAuthMs: { tuiFrame: stats(tuiAfterAuth), floorExec: stats(floorAfterAuth) },
      opensshAnchor: sshd
        ? { what: 'OpenSSH sshd on loopback, ForceCommand /bin/true: connect, handshake, auth, exec, channel closed', totalMs: stats(openssh) }
        : null,
      opensshWhyNull: sshdWhyNull,
      overFloorMs: { p50: fmt(overP50), p95: fmt(overP95) },
      ratioVsFloorP50: fmt(pct(tui.frameMs, 50) / pct(floor.totalMs, 50), 2),
      ratioVsOpensshP50: sshd ? fmt(pct(tui.frameMs, 50) / pct(openssh, 50), 2) : null,
      targetOverFloorMs: TARGET_MS,
      pass: overP50 <= TARGET_MS,
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
    const p = (v: number[]) => `${fmt(pct(v, 50))} / ${fmt(pct(v, 95))}`;
    process.stderr.write(
      table(`attach (${CLUSTERS} clusters, ${COLS}x${ROWS}, ${REPS} reps; ${load.cpus} CPUs, load ${startLoad.loadavg1} → ${load.loadavg1})`, [
        ['metric (p50 / p95 ms)', 'kindler', 'baseline', 'ratio', 'target', 'pass'],
        [
          'connect → TUI complete frame',
          p(tui.frameMs),
          `${p(floor.totalMs)} floor`,
          String(result.ratioVsFloorP50),
          `≤ floor + ${TARGET_MS}`,
          String(result.pass),
        ],
        ['  over the floor', `${fmt(overP50)} / ${fmt(overP95)}`, '', '', `≤ ${TARGET_MS}`, ''],
        ['  vs OpenSSH sshd (ForceCommand /bin/true)', p(tui.frameMs), sshd ? p(openssh) : 'MISSING', String(result.ratioVsOpensshP50 ?? '-'), '', ''],
        ['  after auth: frame vs exec done', p(tuiAfterAuth), `${p(floorAfterAuth)} floor`, '', '', ''],
        ['  TUI: handshake+auth', p(tui.readyMs), `${p(floor.readyMs)} floor`, '', '', ''],
        ['  TUI: shell channel open', p(tui.shellMs), '', '', '', ''],
        ['  TUI: first byte', p(tui.firstByteMs), '', '', '', ''],
      ]),
    );
    if (!sshd) {
      // Never a silent null: say what is missing and fail the run.
      process.stderr.write(`OpenSSH ANCHOR MISSING: ${sshdWhyNull}\n`);
      process.exitCode = 1;
    }
  } finally {
    sshd?.stop();
    await d?.stop();
    w.cleanup();
  }
}

await runBench(fileURLToPath(import.meta.url), main);
