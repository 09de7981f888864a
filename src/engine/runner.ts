/**
 * Runs one provisioning script as its own process group, streams its lines, and stops the whole
 * tree on cancel or timeout (SIGTERM, then SIGKILL after a grace period).
 */
import { execa } from 'execa';
import { parseMarker } from '../core/markers.js';
import { cleanLine } from '../core/text.js';

export type StopReason = 'cancel' | 'timeout' | 'shutdown';

export interface RunOptions {
  script: string;
  args: string[];
  cwd: string;
  env?: Record<string, string>;
  timeoutMs: number;
  graceMs: number;
  onLine: (line: string, stream: 'stdout' | 'stderr') => void;
  onStart?: (pid: number) => void;
  /** Execute `script` itself (any executable) instead of `bash script`. */
  direct?: boolean;
}

export interface RunResult {
  exitCode: number | null;
  signal: string | null;
  /** Why the run was stopped from outside, if it was. */
  stopped: StopReason | null;
  /** SIGKILL was needed: the script had no chance to clean up. */
  killed: boolean;
  /** The executable could not be started at all. */
  spawnError?: string;
}

export interface Run {
  pid: number | undefined;
  stop(reason: StopReason): void;
  done: Promise<RunResult>;
}

/** Sends a signal to a whole process group; false when it no longer exists. */
export function signalGroup(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** Resolves once no process is left in the group (or after `ms`), re-killing stragglers. */
export async function groupGone(pid: number, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (signalGroup(pid, 0 as unknown as NodeJS.Signals)) {
    if (Date.now() > end) return false;
    signalGroup(pid, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 5));
  }
  return true;
}

/** Splits a byte stream into lines, handling \n, \r\n and bare \r; caps a pending line at 1 MiB. */
export class LineSplitter {
  private buf = '';
  constructor(private readonly emit: (line: string) => void, private readonly maxPending = 1 << 20) {}
  push(chunk: string): void {
    this.buf += chunk;
    let start = 0;
    for (let i = 0; i < this.buf.length; i++) {
      const c = this.buf.charCodeAt(i);
      if (c === 10 || c === 13) {
        if (c === 13 && this.buf.charCodeAt(i + 1) === 10) {
          this.emit(this.buf.slice(start, i));
          i++;
        } else if (c === 13 && i + 1 === this.buf.length) {
          // A trailing \r may be half of \r\n: keep it for the next chunk.
          break;
        } else {
          this.emit(this.buf.slice(start, i));
        }
        start = i + 1;
      }
    }
    this.buf = this.buf.slice(start);
    if (this.buf.length > this.maxPending) {
      this.emit(this.buf);
      this.buf = '';
    }
  }
  end(): void {
    if (this.buf.length) this.emit(this.buf.replace(/\r$/, ''));
    this.buf = '';
  }
}

/** Starts the script. Never throws: failures to spawn come back in `done`. */
export function runScript(o: RunOptions): Run {
  let stopped: StopReason | null = null;
  let killed = false;
  let killTimer: NodeJS.Timeout | undefined;
  const [file, argv] = o.direct ? [o.script, o.args] : ['bash', [o.script, ...o.args]];
  const child = execa(file, argv, {
    cwd: o.cwd,
    env: { LOG_COLORS: 'false', ...o.env },
    detached: true,
    buffer: false,
    reject: false,
    stdin: 'ignore',
    forceKillAfterDelay: false,
    cleanup: false,
    encoding: 'utf8',
  });
  const pid = child.pid;
  if (pid !== undefined) o.onStart?.(pid);

  const stop = (reason: StopReason) => {
    if (stopped || pid === undefined) return;
    stopped = reason;
    signalGroup(pid, 'SIGTERM');
    killTimer = setTimeout(() => {
      if (signalGroup(pid, 'SIGKILL')) killed = true;
    }, o.graceMs);
  };
  const timer = setTimeout(() => stop('timeout'), o.timeoutMs);

  const out = new LineSplitter((l) => o.onLine(l, 'stdout'));
  const err = new LineSplitter((l) => o.onLine(l, 'stderr'));
  child.stdout?.setEncoding('utf8');
  child.stderr?.setEncoding('utf8');
  child.stdout?.on('data', (c: string) => out.push(c));
  child.stderr?.on('data', (c: string) => err.push(c));
  // When bash exits, kill anything it left in its group so the pipes close.
  child.on('exit', () => {
    if (pid !== undefined) signalGroup(pid, 'SIGKILL');
  });

  const done = (async (): Promise<RunResult> => {
    const r = await child;
    // Whatever the script left in its group was killed on exit; wait until the kernel has reaped it,
    // so a finished task never has a process left behind.
    if (pid !== undefined) await groupGone(pid, 3000);
    clearTimeout(timer);
    if (killTimer) clearTimeout(killTimer);
    out.end();
    err.end();
    if (r.exitCode === undefined && r.signal === undefined) {
      return { exitCode: null, signal: null, stopped, killed, spawnError: r.shortMessage ?? 'could not start the script' };
    }
    return { exitCode: r.exitCode ?? null, signal: r.signal ?? null, stopped, killed: killed || r.signal === 'SIGKILL', spawnError: undefined };
  })();

  return { pid, stop, done };
}

/**
 * Runs a script that answers with one `::kindler:result` line (status, list). Resolves with the
 * result, or rejects with the script's error marker, its last stderr line, or how it ended.
 */
export async function queryScript(o: { script: string; args: string[]; cwd: string; env?: Record<string, string>; timeoutMs: number }): Promise<Record<string, unknown>> {
  let result: Record<string, unknown> | undefined;
  let error: string | undefined;
  let lastStderr: string | undefined;
  const run = runScript({
    ...o,
    graceMs: 2000,
    onLine: (line, stream) => {
      const m = stream === 'stdout' ? parseMarker(line) : null;
      if (m?.type === 'result') result = m.value;
      else if (m?.type === 'error') error = m.text;
      else if (stream === 'stderr' && line.trim()) lastStderr = cleanLine(line);
    },
  });
  const r = await run.done;
  if (r.exitCode === 0 && result) return result;
  throw new Error(error ?? lastStderr ?? r.spawnError ?? (r.stopped ? `stopped (${r.stopped})` : `exit ${r.exitCode ?? r.signal}`));
}
