/**
 * One way to run a short command and capture what it says: haproxy validate/reload, doctor probes,
 * kubectl for access, docker questions. (Provisioning scripts and hooks stream through the engine's
 * runner, src/engine/runner.ts, which uses the same process-group helpers; git goes through
 * simple-git with the same environment.) Every child:
 * - gets only the allow-listed environment plus what the caller sets, and the owner mark
 *   (core/childenv.ts), so a restarted daemon can find it;
 * - runs in its own process group, and a timeout stops the whole group: SIGTERM, then SIGKILL after
 *   `graceMs`; whatever it left in its group is killed when it exits;
 * - has its output bounded (`maxOutput` bytes per stream, the rest dropped and counted);
 * - ends as a result, never a throw: `ok`, how it ended (`how`), and `reason`, one sanitized line
 *   for an error message (its last stderr line, else how it ended).
 */
import { execa } from 'execa';
import { childEnv } from '../core/childenv.js';
import { cleanLine } from '../core/text.js';
import { groupGone, signalGroup } from './process.js';

export interface CaptureOptions {
  /** Set for the child on top of the allow-listed environment. */
  env?: Record<string, string>;
  cwd?: string;
  timeoutMs: number;
  /** Between SIGTERM and SIGKILL of the group on timeout (default 2 s). */
  graceMs?: number;
  /** Bytes kept per stream (default 1 MiB). */
  maxOutput?: number;
  /** Given on stdin; without it stdin is /dev/null. */
  input?: string;
}

export interface Captured {
  ok: boolean;
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  /** The executable could not be started (ENOENT, EACCES): the reason. */
  spawnError?: string;
  /** `exited 1`, `killed by SIGKILL`, `timed out after 5s`, `could not start: …` */
  how: string;
  stdout: string;
  stderr: string;
  /** stdout and stderr interleaved as they came. */
  all: string;
  /** Bytes dropped beyond maxOutput (both streams). */
  dropped: number;
  /** One sanitized line saying why it failed ('' when ok). */
  reason: string;
}

const DEFAULT_MAX = 1024 * 1024;

/** Runs `file args` (no shell) and captures its output. Never throws. */
export async function runCaptured(file: string, args: readonly string[], o: CaptureOptions): Promise<Captured> {
  const max = o.maxOutput ?? DEFAULT_MAX;
  let timedOut = false;
  let killTimer: NodeJS.Timeout | undefined;
  const child = execa(file, [...args], {
    ...(o.cwd ? { cwd: o.cwd } : {}),
    env: childEnv(o.env),
    extendEnv: false,
    detached: true,
    buffer: false,
    reject: false,
    cleanup: false,
    forceKillAfterDelay: false,
    encoding: 'utf8',
    ...(o.input !== undefined ? { input: o.input } : { stdin: 'ignore' as const }),
  });
  const pid = child.pid;
  let stdout = '';
  let stderr = '';
  let all = '';
  let dropped = 0;
  const take = (which: 'out' | 'err') => (chunk: string) => {
    const have = which === 'out' ? stdout.length : stderr.length;
    const room = Math.max(0, max - have);
    const kept = chunk.length > room ? chunk.slice(0, room) : chunk;
    dropped += chunk.length - kept.length;
    if (which === 'out') stdout += kept;
    else stderr += kept;
    if (all.length < 2 * max) all += kept;
  };
  child.stdout?.setEncoding('utf8');
  child.stderr?.setEncoding('utf8');
  child.stdout?.on('data', take('out'));
  child.stderr?.on('data', take('err'));
  child.on('exit', () => {
    if (pid !== undefined) signalGroup(pid, 'SIGKILL');
  });
  const timer = setTimeout(() => {
    if (pid === undefined) return;
    timedOut = true;
    signalGroup(pid, 'SIGTERM');
    killTimer = setTimeout(() => signalGroup(pid, 'SIGKILL'), o.graceMs ?? 2000);
  }, o.timeoutMs);
  const r = await child;
  clearTimeout(timer);
  if (killTimer) clearTimeout(killTimer);
  if (pid !== undefined) await groupGone(pid, 3000);
  const spawnError = r.exitCode === undefined && r.signal === undefined ? cleanLine(r.shortMessage ?? r.message ?? 'unknown error', 300) : undefined;
  const exitCode = r.exitCode ?? null;
  const signal = r.signal ?? null;
  const ok = !timedOut && spawnError === undefined && exitCode === 0;
  const how = timedOut
    ? `timed out after ${o.timeoutMs / 1000}s`
    : spawnError !== undefined
      ? `could not start: ${spawnError}`
      : signal
        ? `killed by ${signal}`
        : `exited ${exitCode}`;
  const last = (text: string) =>
    text
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean)
      .pop() ?? '';
  const told = last(stderr);
  const reason = ok ? '' : cleanLine(told ? `${how}: ${told}` : how, 400);
  return { ok, exitCode, signal, timedOut, ...(spawnError !== undefined ? { spawnError } : {}), how, stdout, stderr, all, dropped, reason };
}
