/**
 * A viewer's resize storm must not freeze the daemon (issue 13, item 1). A real daemon process with
 * SSH on; a separate process (storm-client.ts) opens 8 viewer TUI sessions at 1000x1000 and sends
 * window changes as fast as it can for 7 s (the huge size and sizes just under the 300x120 cap by
 * turns, so each change is a real one). Meanwhile the admin runs `list` back to back, over SSH
 * (exec on an open connection) and over the control socket: both must stay under 250 ms at p95,
 * and the daemon must go quiet soon after the storm. Daemon CPU and RSS are printed. The machine is
 * shared, so a round that misses the p95 is run again (best of 3); a list that hangs fails at once.
 * Every wait is on a process line, a reply or a /proc reading, with a deadline; loopback only.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { ctl, makeTestKey, makeWorld, poll, sshExec, startDaemon, type Daemon, type World } from '../helpers.js';

const SESSIONS = 8;
const STORM_MS = 7000;
const P95_MS = 250;
/** One `list` taking longer than this fails the test at once (before the fix: minutes). */
const LIST_DEADLINE_MS = Number(process.env.STORM_LIST_DEADLINE_MS) || 10_000;

const note = (s: string) => process.stdout.write(`# ${s}\n`);
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? NaN;
};

/** Daemon CPU time so far (user + system), ms. */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // utime, stime in clock ticks (100 Hz)
}

function memMb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
}

/** Rejects after `ms` with `what` (and clears its timer when `p` settles first). */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([p, new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error(`${what}: no answer within ${ms} ms`)), ms)))]).finally(() =>
    clearTimeout(timer),
  );
}

test("8 viewers in a resize storm at 1000x1000: the admin's `list` stays under 250 ms p95; the daemon goes quiet after it", { timeout: 240_000 }, async (t) => {
  const keys = mkdtempSync(join(tmpdir(), 'kindler-storm-keys-'));
  const admin = makeTestKey(keys, 'admin');
  const viewer = makeTestKey(keys, 'viewer');
  const w: World = makeWorld({ ssh: { enabled: true, host: '127.0.0.1', port: 0, hostKeyFile: './keys/host', usersFile: './users.conf' } });
  w.env.KINDLER_INITIAL_ADMIN_KEYS = admin.pub;
  let d: Daemon | undefined;
  let storm: ReturnType<typeof spawn> | undefined;
  t.after(async () => {
    storm?.stdin?.end();
    if (storm && storm.exitCode === null) storm.kill('SIGKILL');
    if (d && d.proc.exitCode === null && d.proc.signalCode === null) {
      // Before the fix the daemon is busy for minutes and may not get to its SIGTERM handler.
      const killer = setTimeout(() => d!.proc.kill('SIGKILL'), 5000);
      await d.stop();
      clearTimeout(killer);
    }
    w.cleanup();
    rmSync(keys, { recursive: true, force: true });
  });
  d = await startDaemon(w);
  await d.waitFor(/ssh listening on 127\.0\.0\.1:\d+/);
  const port = Number(/ssh listening on 127\.0\.0\.1:(\d+)/.exec(d.output())![1]);
  const hostFp = /ssh host key .*: (SHA256:[A-Za-z0-9+/]{43})/.exec(d.output())![1]!;
  const pid = d.proc.pid!;

  // The admin's connection stays open: each `list` is one exec channel on it (the login is not measured).
  const conn = await new Promise<InstanceType<typeof ssh2.Client>>((resolve, reject) => {
    const c = new ssh2.Client();
    c.on('ready', () => resolve(c));
    c.on('error', reject);
    c.connect({
      host: '127.0.0.1',
      port,
      username: 'kindler',
      privateKey: readFileSync(admin.path),
      readyTimeout: 20_000,
      hostVerifier: (raw: Buffer) => `SHA256:${createHash('sha256').update(raw).digest('base64').replace(/=+$/, '')}` === hostFp,
    });
  });
  t.after(() => conn.end());
  const added = await sshExec(conn, `users add vera --role viewer --key "${viewer.pub}"`);
  assert.equal(added.code, 0, added.stderr.toString());
  for (const name of ['alpha', 'beta', 'gamma']) {
    const r = await ctl(w, ['create', name, '--wait']);
    assert.equal(r.code, 0, r.err);
  }

  const sshList = async () => {
    const t0 = performance.now();
    const r = await within(sshExec(conn, 'list'), LIST_DEADLINE_MS, '`list` over SSH');
    assert.equal(r.code, 0, r.stderr.toString());
    assert.match(r.stdout.toString(), /alpha/);
    return performance.now() - t0;
  };
  const ctlList = async () => {
    const t0 = performance.now();
    const r = await within(ctl(w, ['list']), LIST_DEADLINE_MS, '`list` over the control socket');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /alpha/);
    return performance.now() - t0;
  };
  const quiet: number[] = [];
  for (let i = 0; i < 10; i++) quiet.push(await sshList());

  // The viewers: their own process, 8 sessions at 1000x1000.
  storm = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'storm-client.ts')], {
    env: {
      ...process.env,
      STORM: JSON.stringify({ port, hostFp, keyPath: viewer.path, sessions: SESSIONS, cols: 1000, rows: 1000, stormMs: STORM_MS, everyMs: 5, burst: 2 }),
    },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stormOut = '';
  const stormWaiters = new Set<() => void>();
  const onStorm = (b: Buffer) => {
    stormOut += b.toString();
    for (const f of [...stormWaiters]) f();
  };
  storm.stdout!.on('data', onStorm);
  storm.stderr!.on('data', onStorm);
  storm.on('exit', () => onStorm(Buffer.alloc(0)));
  /** Resolves once `re` (global, multiline) has matched `n` lines of the client's output; returns the last match. */
  const stormLine = (re: RegExp, ms: number, n = 1) =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const check = () => {
        const all = [...stormOut.matchAll(re)];
        if (all.length >= n) {
          stormWaiters.delete(check);
          clearTimeout(timer);
          resolve(all[n - 1]!);
        } else if (/^error /m.test(stormOut) || storm.exitCode !== null) {
          stormWaiters.delete(check);
          clearTimeout(timer);
          reject(new Error(`the storm client failed:\n${stormOut}`));
        }
      };
      const timer = setTimeout(() => {
        stormWaiters.delete(check);
        reject(new Error(`the storm client did not print ${re} ${n} times within ${ms} ms:\n${stormOut}`));
      }, ms);
      stormWaiters.add(check);
      check();
    });
  await stormLine(/^ready$/gm, 90_000);
  const started = () =>
    d
      .output()
      .split('\n')
      .filter((l) => /vera from .*: TUI session started/.test(l));
  await poll(() => started().length >= SESSIONS, 10_000, `${SESSIONS} TUI sessions to start on the daemon`);

  interface Round {
    sent: number;
    overSsh: number[];
    overCtl: number[];
    cpu: number;
    settledCpu: number;
    settleMs: number;
    rssBefore: number;
    rssPeak: number;
  }
  /** One storm: `list` back to back (SSH and control socket by turns) until the client says it ended. */
  const round = async (n: number): Promise<Round> => {
    if (n > 1) storm.stdin!.write('again\n');
    const rssBefore = memMb(pid, 'VmRSS');
    await stormLine(/^storm-started$/gm, 10_000, n);
    const cpu0 = cpuMs(pid);
    const w0 = performance.now();
    let ended = false;
    const endedP = stormLine(/^storm-ended (\d+)$/gm, STORM_MS + 60_000, n).then((m) => {
      ended = true;
      return Number(m[1]);
    });
    const overSsh: number[] = [];
    const overCtl: number[] = [];
    let rssPeak = rssBefore;
    try {
      while (!ended) {
        overSsh.push(await sshList());
        overCtl.push(await ctlList());
        rssPeak = Math.max(rssPeak, memMb(pid, 'VmRSS'));
        assert.ok(overSsh.length < 10_000, 'bounded loop');
      }
    } catch (e) {
      note(
        `failed after ${((performance.now() - w0) / 1000).toFixed(1)} s of storm: lists over SSH so far ${overSsh.map((x) => x.toFixed(0)).join(', ') || 'none'}; ` +
          `daemon CPU ${(((cpuMs(pid) - cpu0) / (performance.now() - w0)) * 100).toFixed(0)}% of a core, RSS ${memMb(pid, 'VmRSS').toFixed(0)} MB (before ${rssBefore.toFixed(0)} MB, VmHWM ${memMb(pid, 'VmHWM').toFixed(0)} MB)`,
      );
      throw e;
    }
    const sent = await endedP;
    const cpu = (cpuMs(pid) - cpu0) / (performance.now() - w0);

    // After the storm (the sessions stay open): the daemon is quiet again within a few seconds.
    const settleStart = performance.now();
    let last = { cpu: cpuMs(pid), at: performance.now() };
    let settledCpu = Infinity;
    for (;;) {
      await sshList();
      const now = { cpu: cpuMs(pid), at: performance.now() };
      if (now.at - last.at >= 500) {
        settledCpu = (now.cpu - last.cpu) / (now.at - last.at);
        if (settledCpu < 0.2) break;
        last = now;
      }
      assert.ok(performance.now() - settleStart < 15_000, `the daemon still used ${(settledCpu * 100).toFixed(0)}% of a core 15 s after the storm`);
    }
    const r = { sent, overSsh, overCtl, cpu, settledCpu, settleMs: performance.now() - settleStart, rssBefore, rssPeak };
    note(
      `round ${n}: ${SESSIONS} viewer sessions at 1000x1000 (drawn at 300x120), ${sent} window changes in ${STORM_MS / 1000} s; ` +
        `list over SSH (exec on an open connection; quiet p50 ${pct(quiet, 50).toFixed(0)} ms) n=${overSsh.length} p50 ${pct(overSsh, 50).toFixed(0)} p95 ${pct(overSsh, 95).toFixed(0)} max ${Math.max(...overSsh).toFixed(0)} ms; ` +
        `over the control socket p50 ${pct(overCtl, 50).toFixed(0)} p95 ${pct(overCtl, 95).toFixed(0)} max ${Math.max(...overCtl).toFixed(0)} ms; ` +
        `daemon CPU ${(cpu * 100).toFixed(0)}% of a core, quiet (${(settledCpu * 100).toFixed(0)}%) ${(r.settleMs / 1000).toFixed(1)} s after; ` +
        `RSS ${rssBefore.toFixed(0)} MB before, peak ${rssPeak.toFixed(0)} MB (VmHWM ${memMb(pid, 'VmHWM').toFixed(0)} MB); load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`,
    );
    return r;
  };
  const meets = (r: Round) => pct(r.overSsh, 95) < P95_MS && pct(r.overCtl, 95) < P95_MS;
  // The machine is shared: a round slowed down by other processes (the daemon gets less CPU, not
  // more work) is measured again, up to 3 rounds. A list that hangs fails at once, in any round.
  const rounds: Round[] = [];
  for (let n = 1; n <= 3; n++) {
    rounds.push(await round(n));
    if (meets(rounds.at(-1)!)) break;
  }
  const best = rounds.find(meets) ?? rounds.reduce((a, b) => (pct(b.overSsh, 95) < pct(a.overSsh, 95) ? b : a));

  for (const r of rounds) {
    assert.ok(r.sent >= SESSIONS * 100, `only ${r.sent} window changes were sent: no storm`);
    // Peak growth during the storm: +45-85 MB (2026-12-03). Sessions on shared frames let go of their
    // cell grids; a reflow used to make them again, blank, for every window change (~600 MB of garbage
    // a second here, +210-270 MB at peak) until reflows kept them let go of and cut cells became spares.
    assert.ok(r.rssPeak - r.rssBefore < 200, `RSS grew by ${(r.rssPeak - r.rssBefore).toFixed(0)} MB during a storm`);
  }
  assert.ok(pct(best.overSsh, 95) < P95_MS, `list over SSH p95 ${pct(best.overSsh, 95).toFixed(0)} ms during the storm (best of ${rounds.length} rounds)`);
  assert.ok(
    pct(best.overCtl, 95) < P95_MS,
    `list over the control socket p95 ${pct(best.overCtl, 95).toFixed(0)} ms during the storm (best of ${rounds.length} rounds)`,
  );
  // Drawn at the cap: the daemon says so for each session.
  assert.equal(
    started().filter((l) => l.includes('TUI session started (300x120; the terminal is 1000x1000, drawn at the cap)')).length,
    SESSIONS,
    started().join('\n'),
  );
  assert.doesNotMatch(d.output(), /session failed and was closed|internal error/);
});
