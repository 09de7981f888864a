/**
 * The single-writer lock: `<dataDir>/kindler.lock` holds the owner's pid and process start time.
 * A lock whose owner is gone (or whose pid now belongs to another process) is stale and taken over.
 */
import { closeSync, fstatSync, lstatSync, openSync, readdirSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export class LockHeldError extends Error {
  constructor(readonly file: string, readonly pid: number, readonly role: string) {
    super(`state ${file} is locked by a running kindler ${role} (pid ${pid}); stop it or use it instead`);
  }
}

interface LockInfo { pid: number; start: string; role: string }

/** The lock this process took is gone or belongs to someone else now: writing state would make two writers. */
export class LockLostError extends Error {
  constructor(readonly file: string, readonly why: string) {
    super(`the single-writer lock ${file} is no longer held by this process (${why}); kindler refuses to write state, restart it`);
  }
}

/** The kernel's start time of a process (field 22 of /proc/PID/stat), or null when it does not exist. */
export function processStart(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const afterComm = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return afterComm[19] ?? null;
  } catch {
    return null;
  }
}

/** A process seen in /proc: its id, its process group, and its state letter (R, S, D, T, …). */
export interface ProcEntry {
  pid: number;
  pgid: number;
  state: string;
}

function procStat(pid: number | 'self'): ProcEntry | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { pid: pid === 'self' ? process.pid : pid, pgid: Number(f[2]), state: f[0] ?? '?' };
  } catch {
    return null;
  }
}

/** True while the process exists and is not a zombie (a zombie is dead, only not yet reaped). */
export function processRunning(pid: number): boolean {
  const st = procStat(pid);
  return st !== null && st.state !== 'Z' && st.state !== 'X';
}

/** This process's own process group (from /proc), or null. */
export function ownProcessGroup(): number | null {
  return procStat('self')?.pgid ?? null;
}

/**
 * Every running (not zombie) process whose environment holds exactly `KEY=VALUE`, other than this one.
 * Only this user's processes are readable; where /proc cannot be read the answer is empty.
 */
export function processesWithEnv(key: string, value: string): ProcEntry[] {
  const want = Buffer.from(`${key}=${value}\0`);
  const out: ProcEntry[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    let env: Buffer;
    try {
      env = readFileSync(`/proc/${e}/environ`);
    } catch {
      continue; // gone, or another user's
    }
    const i = env.indexOf(want);
    if (i < 0 || (i > 0 && env[i - 1] !== 0)) continue;
    const st = procStat(Number(e));
    if (st && st.state !== 'Z' && st.state !== 'X') out.push(st);
  }
  return out;
}

function alive(info: LockInfo): boolean {
  const start = processStart(info.pid);
  if (start === null) {
    try { process.kill(info.pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
  }
  return start === info.start;
}

export interface Lock {
  file: string;
  /**
   * Throws LockLostError unless the lock file is still the one this process created (same inode, same
   * content). Called before every state write, so that a deleted or replaced lock never lets a second
   * process write next to this one unnoticed.
   */
  verify(): void;
  release(): void;
}

/** Takes the lock for this process or throws LockHeldError. `role` is shown to whoever is refused. */
export function acquireLock(dataDir: string, role: string): Lock {
  const file = join(dataDir, 'kindler.lock');
  const me: LockInfo = { pid: process.pid, start: processStart(process.pid) ?? '', role };
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const fd = openSync(file, 'wx', 0o600);
      const content = JSON.stringify(me);
      let ino: number;
      let dev: number;
      try {
        writeSync(fd, content);
        ({ ino, dev } = fstatSync(fd));
      } finally {
        closeSync(fd);
      }
      let released = false;
      /** Why the lock file is not this process's any more, or null while it is. */
      const lost = (): string | null => {
        let st;
        try {
          st = lstatSync(file);
        } catch (e) {
          return (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'the lock file was deleted' : `the lock file cannot be checked: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
        }
        if (st.ino !== ino || st.dev !== dev) return 'the lock file was replaced by another one';
        let cur: string;
        try {
          cur = readFileSync(file, 'utf8');
        } catch (e) {
          return `the lock file cannot be read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
        }
        return cur === content ? null : 'the lock file was overwritten';
      };
      return {
        file,
        verify() {
          if (released) throw new LockLostError(file, 'it was released');
          const why = lost();
          if (why) throw new LockLostError(file, why);
        },
        release() {
          if (released) return;
          released = true;
          // Only our own lock file goes: one that replaced it belongs to another process.
          if (lost() === null) {
            try {
              unlinkSync(file);
            } catch { /* already gone */ }
          }
        },
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    let info: LockInfo | null = null;
    try { info = JSON.parse(readFileSync(file, 'utf8')) as LockInfo; } catch { info = null; }
    if (info && typeof info.pid === 'number' && alive(info)) throw new LockHeldError(file, info.pid, info.role ?? 'process');
    // Stale (or unreadable half-written) lock: move it aside atomically so only one taker wins.
    try { renameSync(file, `${file}.stale-${process.pid}`); unlinkSync(`${file}.stale-${process.pid}`); } catch { /* another taker won */ }
  }
  throw new Error(`state lock ${file}: could not be taken after 5 attempts`);
}
