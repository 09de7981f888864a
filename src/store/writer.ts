/**
 * The state file's writer: changes scheduled within one tick share one write (`persist`, given by the
 * Store); a failed write rejects the changes it carried, is retried with a growing delay, and `health()`
 * says saving has stopped until a write succeeds again.
 */
import { errnoText } from '../os/atomic.js';
import { KindlerError } from '../core/errors.js';
import type { StoreHealth } from '../core/types.js';
import { LockLostError } from './lock.js';

/**
 * A state write failed. `reason` says why in one line ("the state file could not be written (ENOSPC:
 * no space left on device)"); the message adds what became of the change it carried.
 */
export class StateWriteError extends KindlerError {
  constructor(readonly reason: string, readonly code: string | undefined, readonly lockLost: boolean) {
    super('failed', `${reason}; the change is kept in memory and saved once a write succeeds (kindler doctor shows the state of saving)`);
  }
}

export interface StoreOptions {
  /** Called before every write; throws (LockLostError) when this process may not write any more. */
  guard?: () => void;
  /** Backoff of the retries of a failed write: first delay and cap, in ms (250 and 5000 by default). */
  retryMs?: { first: number; max: number };
}

export function writeError(e: unknown): StateWriteError {
  if (e instanceof StateWriteError) return e;
  if (e instanceof LockLostError) return new StateWriteError(`the state file was not written: ${e.message}`, 'ELOCKLOST', true);
  const code = (e as NodeJS.ErrnoException)?.code;
  return new StateWriteError(`the state file could not be written (${errnoText(e)})`, code, false);
}

export class Writer {
  private writing: Promise<void> | null = null;
  private pending: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private scheduled = false;
  /** Bumped for every change scheduled; `saved` is the last one known to be on disk. */
  private gen = 0;
  private saved = 0;
  private failure: { error: StateWriteError; since: string; count: number } | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  /** Told when saving stops, changes its reason, or resumes. */
  onHealth: ((h: StoreHealth, previous: StoreHealth) => void) | null = null;
  /** Durations of the last writes, in ms (for benchmarks and the doctor). */
  readonly writeTimes: number[] = [];

  constructor(private readonly persist: () => Promise<void>, private readonly retryMs: { first: number; max: number }) {}

  /** Whether state is being saved, and if not, why and since when. */
  health(): StoreHealth {
    const f = this.failure;
    if (!f) return { saving: true };
    return { saving: false, problem: f.error.reason, since: f.since, failures: f.count, ...(f.error.lockLost ? { lockLost: true } : {}) };
  }

  /** True while some change in memory is not on disk yet. */
  get unsaved(): boolean {
    return this.gen > this.saved;
  }

  /** Schedules a write of the current data (coalesced per tick). */
  flushSoon(): Promise<void> {
    this.gen++;
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => void this.drain());
  }

  private async drain(): Promise<void> {
    if (this.writing) await this.writing.catch(() => undefined);
    this.scheduled = false;
    const waiters = this.pending.splice(0);
    if (waiters.length === 0 && !this.unsaved) return;
    if (this.retryTimer) {
      clearTimeout(this.retryTimer);
      this.retryTimer = null;
    }
    const gen = this.gen;
    const t0 = performance.now();
    try {
      this.writing = this.persist();
      await this.writing;
      this.saved = Math.max(this.saved, gen);
      this.writeTimes.push(performance.now() - t0);
      if (this.writeTimes.length > 1000) this.writeTimes.splice(0, this.writeTimes.length - 1000);
      if (this.failure) {
        const before = this.health();
        this.failure = null;
        this.tell(before);
      }
      for (const w of waiters) w.resolve();
    } catch (e) {
      const err = writeError(e);
      const before = this.health();
      if (this.failure && this.failure.error.reason === err.reason) {
        this.failure.count++;
      } else {
        this.failure = { error: err, since: this.failure?.since ?? new Date().toISOString(), count: (this.failure?.count ?? 0) + 1 };
        this.tell(before);
      }
      for (const w of waiters) w.reject(err);
      this.retryLater();
    } finally {
      this.writing = null;
    }
  }

  /** Retries the write of what is still unsaved, with a growing delay (macrotask: undo handlers run first). */
  private retryLater(): void {
    // A lost lock does not come back: only a restart (which takes the lock again) resumes writing.
    if (this.retryTimer || !this.failure || this.failure.error.lockLost) return;
    const n = Math.min(this.failure.count, 16);
    const delay = Math.min(this.retryMs.max, this.retryMs.first * 2 ** (n - 1));
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (this.unsaved || this.failure) this.schedule();
    }, delay);
    this.retryTimer.unref();
  }

  private tell(before: StoreHealth): void {
    try {
      this.onHealth?.(this.health(), before);
    } catch { /* a broken listener must not break writing */ }
  }

  /** Waits until every scheduled change is on disk (rejects with the write's error when it fails). */
  async flush(): Promise<void> {
    await this.flushSoon();
  }

  /**
   * For shutdown: flushes, retrying failed writes until `ms` have passed. Rejects with the last
   * error if state could still not be saved (a lost lock is not retried).
   */
  async flushWithin(ms: number): Promise<void> {
    const end = Date.now() + ms;
    for (let delay = 100; ; delay = Math.min(delay * 2, 2000)) {
      try {
        await this.flush();
        return;
      } catch (e) {
        if ((e as StateWriteError).lockLost || Date.now() + delay > end) throw e;
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  /** Stops retrying (the process is going away). */
  close(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }
}
