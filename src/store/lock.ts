/**
 * The single-writer lock: `<dataDir>/kindler.lock` holds the owner's pid and process start time.
 * A lock whose owner is gone (or whose pid now belongs to another process) is stale and taken over.
 */
import { closeSync, fstatSync, lstatSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { processStart } from '../os/process.js';

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
