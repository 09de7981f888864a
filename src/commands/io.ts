/**
 * Helpers for the faces that implement a verb's IO over a stream (control socket, SSH channel,
 * the local CLI's stdout).
 */

/** Unsent output a client may hold back before a writing verb waits for it. */
export const OUTPUT_BACKLOG = 256 * 1024;

/** The parts of a writable stream the backlog check needs. */
export interface Backlogged {
  readonly writableLength: number;
  readonly writableNeedDrain: boolean;
  readonly destroyed: boolean;
  write(chunk: Uint8Array, cb: (err?: Error | null) => void): boolean;
  once(event: 'drain' | 'close', fn: () => void): unknown;
  off(event: 'drain' | 'close', fn: () => void): unknown;
}

/**
 * Resolves at once while `stream` holds less than `limit` unsent bytes; otherwise once what it
 * holds has gone out (or it closed).
 *
 * A stream only emits 'drain' after a write crossed its high-water mark, and some marks are far
 * above `limit` (an ssh2 channel's is its 2 MiB window). Below the mark the wait is an empty write:
 * writes complete in order, so its callback runs once everything queued before it has been sent.
 */
export function whenDrained(stream: Backlogged, limit = OUTPUT_BACKLOG): Promise<void> {
  if (stream.destroyed || stream.writableLength < limit) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.once('close', done);
    if (stream.writableNeedDrain) stream.once('drain', done);
    else {
      try {
        stream.write(new Uint8Array(0), done);
      } catch {
        done();
      }
    }
  });
}

/**
 * Watches this process's stdout and stderr for a reader that went away (`kindler list | head -1`,
 * a closed terminal): on the first EPIPE (or a write to the stream after it) `onGone` runs once and
 * `gone()` turns true; callers then stop writing and exit quietly (no stack, no message), with
 * GONE_EXIT. `codes` are the errors that mean "gone" (a terminal that hung up says EIO). Other
 * stream errors are thrown as before.
 */
export function watchBrokenPipe(
  onGone: () => void,
  codes: readonly string[] = ['EPIPE'],
  streams: NodeJS.WritableStream[] = [process.stdout, process.stderr],
): { gone(): boolean } {
  let gone = false;
  for (const s of streams) {
    s.on('error', (e: NodeJS.ErrnoException) => {
      if (!codes.includes(e.code ?? '') && e.code !== 'ERR_STREAM_DESTROYED' && !gone) throw e;
      if (gone) return;
      gone = true;
      onGone();
    });
  }
  // A failed write marks its stream errored at once, but the 'error' event comes a tick later: a write
  // to the other stream in between (the daemon's last line on stderr after `logs --follow`'s stdout
  // broke) must already see the reader as gone.
  const check = (): boolean => {
    if (gone) return true;
    const hit = streams.some((s) => {
      const e = (s as NodeJS.WritableStream & { errored?: NodeJS.ErrnoException | null }).errored;
      return Boolean(e && (codes.includes(e.code ?? '') || e.code === 'ERR_STREAM_DESTROYED'));
    });
    if (hit) {
      gone = true;
      queueMicrotask(onGone);
    }
    return hit;
  };
  return { gone: check };
}

/** The exit code after the output's reader went away: 128 + SIGPIPE, what a shell shows for a tool killed by it. */
export const GONE_EXIT = 141;
