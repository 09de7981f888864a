/**
 * Operating-system primitives, files. Writing files that others may have write access to the
 * directory of, without ever following a planted symlink: every atomic replace goes through a temp
 * file with a random name created with O_EXCL (which refuses an existing name, a symlink included),
 * fsynced, then renamed over the target (stageFile, then commit).
 * Files appended to in place (task logs, the reconcile summary) are opened with O_NOFOLLOW.
 */
import { closeSync, constants, fchmodSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { getSystemErrorMap } from 'node:util';

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_APPEND, O_NOFOLLOW } = constants;

/** Flags for a new temp file: create it, and fail if the name exists in any form (a symlink too). */
export const EXCLUSIVE_CREATE = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW;
/** Flags for a log appended to in place: create it if missing, refuse it when it is a symlink. */
export const APPEND_NOFOLLOW = O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW;
/** Flags for reading a file kindler wrote itself (a task log): a symlink in its place is refused. */
export const READ_NOFOLLOW = O_RDONLY | O_NOFOLLOW;

/** A fresh, unguessable temp name beside `file` (hidden, so listings of the directory skip it). */
export function tempNameFor(file: string): string {
  return join(dirname(file), `.${basename(file)}.${process.pid}.${randomBytes(8).toString('hex')}.tmp`);
}

/**
 * "ENOSPC: no space left on device" for a system error (without the syscall and path Node appends),
 * the plain message for anything else. ELOOP from an O_NOFOLLOW open says what it means here.
 */
export function errnoText(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  if (err?.code === 'ELOOP') return 'ELOOP: it is a symbolic link, which kindler refuses to write through';
  if (typeof err?.errno === 'number') {
    const known = getSystemErrorMap().get(err.errno);
    if (known) return `${known[0]}: ${known[1]}`;
  }
  if (err?.code)
    return `${err.code}: ${String(err.message ?? '')
      .replace(/^[A-Z0-9_]+: /, '')
      .replace(/, \w+ '.*'$/, '')}`;
  return err instanceof Error ? err.message : String(e);
}

/** A file written and fsynced under a temp name beside its target, not yet in place. */
export interface Staged {
  /** The temp file (to validate it before it goes live, say). */
  readonly path: string;
  /** Renames it over the target (and fsyncs the directory with `durable`); on failure the temp file is removed. */
  commit(opts?: { durable?: boolean }): Promise<void>;
  /** Removes the temp file (nothing happens when it was committed). */
  discard(): Promise<void>;
}

/**
 * Writes `data` under a fresh temp name beside `file` (created O_EXCL|O_NOFOLLOW, so never through a
 * planted symlink), with `mode`, fsynced: the first half of every atomic replace in kindler.
 */
export async function stageFile(file: string, data: Buffer | string, mode: number): Promise<Staged> {
  const buf = typeof data === 'string' ? Buffer.from(data) : data;
  const tmp = tempNameFor(file);
  const fh = await open(tmp, EXCLUSIVE_CREATE, mode);
  try {
    // One buffer, written in as few calls as the kernel allows (writeFile would split it into 512 KiB round trips).
    let off = 0;
    while (off < buf.length) off += (await fh.write(buf, off, buf.length - off, off)).bytesWritten;
    await fh.chmod(mode);
    await fh.sync();
  } catch (e) {
    await fh.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  await fh.close();
  let done = false;
  return {
    path: tmp,
    async commit(opts = {}) {
      try {
        await rename(tmp, file);
      } catch (e) {
        await unlink(tmp).catch(() => undefined);
        throw e;
      }
      done = true;
      if (opts.durable) await syncDir(dirname(file));
    },
    async discard() {
      if (done) return;
      done = true;
      await unlink(tmp).catch(() => undefined);
    },
  };
}

/** fsyncs a directory (a rename in it is then durable); a directory that cannot be opened is left be. */
export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r').catch(() => null);
  if (!fh) return;
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Writes `data` to `file` atomically: a reader sees the old file or the new one, never a torn one. */
export async function writeFileAtomic(file: string, data: Buffer | string, mode: number): Promise<void> {
  await (await stageFile(file, data, mode)).commit();
}

/** The synchronous twin of `writeFileAtomic`. */
export function writeFileAtomicSync(file: string, data: Buffer | string, mode: number): void {
  const buf = typeof data === 'string' ? Buffer.from(data) : data;
  const tmp = tempNameFor(file);
  const fd = openSync(tmp, EXCLUSIVE_CREATE, mode);
  try {
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off, off);
    fchmodSync(fd, mode);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      /* already gone */
    }
    throw e;
  }
  closeSync(fd);
  try {
    renameSync(tmp, file);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      /* already gone */
    }
    throw e;
  }
}
