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
