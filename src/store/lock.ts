/**
 * The single-writer lock: `<dataDir>/kindler.lock` holds the owner's pid and process start time.
 * A lock whose owner is gone (or whose pid now belongs to another process) is stale and taken over.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fstatSync, linkSync, lstatSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { processStart } from '../os/process.js';

export class LockHeldError extends Error {
  constructor(
    readonly file: string,
    readonly pid: number,
    readonly role: string,
  ) {
    super(`state ${file} is locked by a running kindler ${role} (pid ${pid}); stop it or use it instead`);
  }
}

interface LockInfo {
  pid: number;
  start: string;
  role: string;
}

/** The lock this process took is gone or belongs to someone else now: writing state would make two writers. */
export class LockLostError extends Error {
  constructor(
    readonly file: string,
    readonly why: string,
  ) {
    super(`the single-writer lock ${file} is no longer held by this process (${why}); kindler refuses to write state, restart it`);
  }
}

function alive(info: LockInfo): boolean {
  const start = processStart(info.pid);
  if (start === null) {
    try {
      process.kill(info.pid, 0);
      return true;
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === 'EPERM';
    }
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

/**
 * Takes the lock for this process or throws LockHeldError. `role` is shown to whoever is refused.
 *
 * The lock file appears with its whole content at once (written under a temp name, then hard-linked
 * into place, which fails when the name exists), so nobody ever reads a half-written lock and takes it
 * for stale. A stale lock (its owner is gone) is removed only under a second, short-lived lock
 * (`kindler.lock.takeover`), after checking again that it is still the same stale file: two processes
 * taking over at once can never remove a lock a live process has just created.
 */
export function acquireLock(dataDir: string, role: string): Lock {
  const file = join(dataDir, 'kindler.lock');
  const me: LockInfo = { pid: process.pid, start: processStart(process.pid) ?? '', role };
  const content = JSON.stringify(me);
  for (let attempt = 0; attempt < 20; attempt++) {
    const made = createComplete(file, content);
    if (made) return lockHandle(file, content, made);
    const seen = readLock(file);
    if (!seen) continue; // released meanwhile: try again
    if (seen.info && alive(seen.info)) throw new LockHeldError(file, seen.info.pid, seen.info.role ?? 'process');
    removeStale(file, seen);
  }
  throw new Error(`state lock ${file}: could not be taken after 20 attempts`);
}

/** Creates `file` holding `content`, all at once; its inode, or null when the name is taken. */
function createComplete(file: string, content: string): { ino: number; dev: number } | null {
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const fd = openSync(tmp, 'wx', 0o600);
  let id: { ino: number; dev: number };
  try {
    writeSync(fd, content);
    const st = fstatSync(fd);
    id = { ino: st.ino, dev: st.dev };
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(tmp, file);
    return id;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return null;
    throw e;
  } finally {
    unlinkSync(tmp);
  }
}

interface Seen {
  ino: number;
  raw: string;
  info: LockInfo | null;
}

/** The lock file as it is now (inode, content, parsed owner or null when corrupt), or null when there is none. */
function readLock(file: string): Seen | null {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  try {
    const ino = fstatSync(fd).ino;
    const raw = readFileSync(fd, 'utf8');
    let info: LockInfo | null = null;
    try {
      const v = JSON.parse(raw) as LockInfo;
      if (typeof v.pid === 'number') info = v;
    } catch {
      /* corrupt */
    }
    return { ino, raw, info };
  } finally {
    closeSync(fd);
  }
}

/**
 * Removes the lock file if it is still exactly the stale one seen (same inode and content: a fresh lock
 * that reused the inode has another owner in it), under the takeover lock.
 */
function removeStale(file: string, stale: Seen): void {
  const takeover = `${file}.takeover`;
  const mine = JSON.stringify({ pid: process.pid, start: processStart(process.pid) ?? '', role: 'takeover' });
  const got = createComplete(takeover, mine);
  if (!got) {
    // Another process is taking over; its takeover lock is stale only when its owner is gone.
    const t = readLock(takeover);
    if (t && t.info && !alive(t.info)) unlinkIfSame(takeover, t.ino);
    return;
  }
  try {
    const now = readLock(file);
    if (now && now.ino === stale.ino && now.raw === stale.raw && !(now.info && alive(now.info))) unlinkIfSame(file, stale.ino);
  } finally {
    unlinkIfSame(takeover, got.ino);
  }
}

function unlinkIfSame(file: string, ino: number): void {
  try {
    if (lstatSync(file).ino === ino) unlinkSync(file);
  } catch {
    /* already gone */
  }
}

function lockHandle(file: string, content: string, id: { ino: number; dev: number }): Lock {
  let released = false;
  /** Why the lock file is not this process's any more, or null while it is. */
  const lost = (): string | null => {
    let st;
    try {
      st = lstatSync(file);
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === 'ENOENT'
        ? 'the lock file was deleted'
        : `the lock file cannot be checked: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
    }
    if (st.ino !== id.ino || st.dev !== id.dev) return 'the lock file was replaced by another one';
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
        } catch {
          /* already gone */
        }
      }
    },
  };
}
