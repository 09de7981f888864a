/**
 * Writing files that others may have write access to the directory of, without ever following a
 * planted symlink: every atomic replace goes through a temp file with a random name created with
 * O_EXCL (which refuses an existing name, a symlink included), fsynced, then renamed over the target.
 * Files appended to in place (task logs, the reconcile summary) are opened with O_NOFOLLOW.
 */
import { closeSync, constants, fchmodSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';

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

/** Writes `data` to `file` atomically: a reader sees the old file or the new one, never a torn one. */
export async function writeFileAtomic(file: string, data: Buffer | string, mode: number): Promise<void> {
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
  try {
    await rename(tmp, file);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
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
    } catch { /* already gone */ }
    throw e;
  }
  closeSync(fd);
  try {
    renameSync(tmp, file);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch { /* already gone */ }
    throw e;
  }
}
