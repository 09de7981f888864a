/**
 * Runs one provisioning script as its own process group, streams its lines, and stops the whole
 * tree on cancel or timeout (SIGTERM, then SIGKILL after a grace period).
 *
 * With `spoolDir`, the script's stdout is a file, not a pipe: a script printing a flood of lines
 * writes at the speed of the page cache and never waits for the daemon (a pipe holds 64 KiB; once
 * full, every write blocks until the daemon has read). The file is unlinked as soon as it is open
 * (nothing is left behind, whatever happens to the daemon), and read back in large chunks
 * (`SpoolReader`), so the daemon's cost is per chunk rather than per line; runs of plain lines in
 * them go on in bulk (`ByteLines`, with `onBulk`), not line by line. The spool takes disk
 * space in `spoolDir` while the task runs (as much as the script prints), and is freed at its end.
 */
import { closeSync, fstatSync, openSync, readSync, unlinkSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { execa } from 'execa';
import { childEnv } from '../core/childenv.js';
import { parseMarker } from '../core/markers.js';
import { cleanLine } from '../core/text.js';
import { ByteLines, LineSplitter, type Bulk } from './lines.js';
import { groupGone, signalGroup } from './process.js';

/** `failed`: kindler stopped it because the task cannot go on (its log cannot be written). */
export type StopReason = 'cancel' | 'timeout' | 'shutdown' | 'failed';

export interface RunOptions {
  script: string;
  args: string[];
  cwd: string;
  /** Set for the script on top of the allow-listed part of the daemon's environment (nothing else is inherited). */
  env?: Record<string, string>;
  timeoutMs: number;
  graceMs: number;
  onLine: (line: string, stream: 'stdout' | 'stderr') => void;
  /**
   * Runs of plain stdout lines in bulk (see `ByteLines`), in order with the `onLine` calls; without
   * it every line goes through `onLine`. Used only with a spool.
   */
  onBulk?: (b: Bulk) => void;
  /** How many of a bulk's last lines come as strings. */
  bulkTail?: number;
  onStart?: (pid: number) => void;
  /** Execute `script` itself (any executable) instead of `bash script`. */
  direct?: boolean;
  /** A directory on a real disk for the stdout spool file (see the module comment); without it, stdout is a pipe. */
  spoolDir?: string;
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

export { groupGone, signalGroup } from './process.js';

/** Polling intervals of a SpoolReader: right after data, and the longest wait while the file is idle. */
export const SPOOL_FAST_MS = 8;
export const SPOOL_IDLE_MS = 40;
const SPOOL_CHUNK = 256 * 1024;

/**
 * Reads a growing file from the start, in chunks of up to 256 KiB, handing the bytes to `onBytes`
 * in order (the buffer is reused: it must not be kept), one chunk per turn of the event loop while
 * the file is ahead of it, then again SPOOL_FAST_MS after a read that found data, backing off to
 * SPOOL_IDLE_MS while nothing new arrives. Reads are synchronous (the data was just written, so it is in the page cache) and
 * small enough not to hold the event loop.
 */
export class SpoolReader {
  /** Called after each chunk handed to onText (the runner releases stderr lines that waited for it). */
  onAdvance: (() => void) | null = null;
  private pos = 0;
  private readonly buf = Buffer.allocUnsafe(SPOOL_CHUNK);
  private timer: NodeJS.Timeout | null = null;
  private immediate: NodeJS.Immediate | null = null;
  private delay = SPOOL_FAST_MS;
  private closed = false;
  private fdClosed = false;
  /** The first read error, if any (the rest of the output is then lost: reported by the runner). */
  error: Error | null = null;

  constructor(
    private readonly fd: number,
    private readonly onBytes: (chunk: Buffer) => void,
  ) {
    this.schedule(0);
  }

  /** Bytes read so far. */
  get offset(): number {
    return this.pos;
  }

  private schedule(ms: number): void {
    if (this.closed) return;
    const tick = () => {
      this.timer = null;
      this.immediate = null;
      // One chunk per turn of the event loop: a flood must not starve everything else.
      const n = this.drain(1);
      if (n === SPOOL_CHUNK) return this.schedule(-1);
      this.delay = n > 0 ? SPOOL_FAST_MS : Math.min(SPOOL_IDLE_MS, this.delay * 2);
      this.schedule(this.delay);
    };
    if (ms < 0) this.immediate = setImmediate(tick);
    else this.timer = setTimeout(tick, ms);
  }

  /** Reads up to `maxChunks` chunks, stopping at the end of what is written so far; returns the bytes read. */
  drain(maxChunks = Infinity): number {
    let got = 0;
    for (let i = 0; i < maxChunks && !this.error && !this.fdClosed; i++) {
      let n: number;
      try {
        n = readSync(this.fd, this.buf, 0, this.buf.length, this.pos);
      } catch (e) {
        this.error = e as Error;
        break;
      }
      if (n === 0) break;
      got += n;
      this.pos += n;
      this.onBytes(this.buf.subarray(0, n));
      this.onAdvance?.();
      if (n < this.buf.length) break;
    }
    return got;
  }

  /** Bytes written to the spool so far (read or not). */
  written(): number {
    try {
      return fstatSync(this.fd).size;
    } catch {
      return this.pos;
    }
  }

  /** The writer is gone: reads the rest (a chunk per turn of the event loop), closes the file. */
  async finish(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.immediate) clearImmediate(this.immediate);
    this.timer = null;
    this.immediate = null;
    while (this.drain(1) === SPOOL_CHUNK) await new Promise((r) => setImmediate(r));
    this.fdClosed = true;
    try {
      closeSync(this.fd);
    } catch {
      /* already closed */
    }
  }
}

/** Opens an unlinked spool file in `dir`: a write fd for the child, a read fd for us. Null if it cannot. */
function openSpool(dir: string): { wfd: number; rfd: number } | null {
  const path = join(dir, `.spool-${process.pid}-${randomBytes(6).toString('hex')}`);
  let wfd = -1;
  try {
    wfd = openSync(path, 'wx', 0o600);
    const rfd = openSync(path, 'r');
    unlinkSync(path);
    return { wfd, rfd };
  } catch {
    if (wfd >= 0) closeSync(wfd);
    try {
      unlinkSync(path);
    } catch {
      /* never created */
    }
    return null;
  }
}

/** Starts the script. Never throws: failures to spawn come back in `done`. */
export function runScript(o: RunOptions): Run {
  let stopped: StopReason | null = null;
  let killed = false;
  let killTimer: NodeJS.Timeout | undefined;
  const [file, argv] = o.direct ? [o.script, o.args] : ['bash', [o.script, ...o.args]];
  const spool = o.spoolDir ? openSpool(o.spoolDir) : null;
  const start = () =>
    execa(file, argv, {
      cwd: o.cwd,
      // Only the allow-listed part of the daemon's environment, plus what kindler sets (core/childenv.ts).
      env: childEnv({ LOG_COLORS: 'false', ...o.env }),
      extendEnv: false,
      detached: true,
      buffer: false,
      reject: false,
      stdin: 'ignore',
      // A file descriptor is passed to the child as is (execa's types only list small fd numbers).
      stdout: (spool ? spool.wfd : 'pipe') as 'pipe',
      forceKillAfterDelay: false,
      cleanup: false,
      encoding: 'utf8',
    });
  let child: ReturnType<typeof start>;
  try {
    child = start();
  } finally {
    // The child has its own copy of the write end (spawn is synchronous); ours must not keep it open.
    if (spool) closeSync(spool.wfd);
  }
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

  // Stdout is bytes from the spool, or text from the pipe when there is none.
  const outLine = (l: string) => o.onLine(l, 'stdout');
  const outBytes = spool ? new ByteLines(outLine, o.onBulk, o.bulkTail) : null;
  const outText = spool ? null : new LineSplitter(outLine);
  const err = new LineSplitter((l) => o.onLine(l, 'stderr'));
  const reader = spool && outBytes ? new SpoolReader(spool.rfd, (b) => outBytes.push(b)) : null;
  child.stdout?.setEncoding('utf8');
  child.stderr?.setEncoding('utf8');
  child.stdout?.on('data', (c: string) => outText?.push(c));
  // A stderr chunk waits until the spool has been read up to where it stood when the chunk arrived:
  // what the script printed on stdout before it comes before it in the log.
  const errWaiting: { mark: number; text: string }[] = [];
  const releaseErr = (all = false) => {
    while (errWaiting.length && (all || errWaiting[0]!.mark <= reader!.offset)) err.push(errWaiting.shift()!.text);
  };
  if (reader) reader.onAdvance = () => releaseErr();
  child.stderr?.on('data', (c: string) => {
    if (!reader) return err.push(c);
    const mark = reader.written();
    if (!errWaiting.length && mark <= reader.offset) err.push(c);
    else errWaiting.push({ mark, text: c });
  });
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
    // Nothing can write to the spool any more: read the rest of it.
    await reader?.finish();
    releaseErr(true);
    if (reader?.error) o.onLine(`kindler: the script's output could not be read after byte ${reader.offset}: ${reader.error.message}`, 'stderr');
    outBytes?.end();
    outText?.end();
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
export async function queryScript(o: {
  script: string;
  args: string[];
  cwd: string;
  env?: Record<string, string>;
  timeoutMs: number;
}): Promise<Record<string, unknown>> {
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
