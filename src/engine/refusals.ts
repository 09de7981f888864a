/**
 * Rate limit for audited refusals: at most `limit` refusals per user are recorded in each minute-long
 * window (it starts at the user's first refusal); the rest are only counted. When the window ends, one
 * summary ("N more refusals suppressed") is handed to `summarize`, so the audit log still says how many
 * there were without growing with a flood. Pure bookkeeping; the caller records what it is told to.
 */
export const REFUSAL_WINDOW_MS = 60_000;

export interface Suppressed {
  user: string;
  /** The face of the last suppressed refusal. */
  source: string;
  fingerprint?: string;
  count: number;
  limit: number;
  /** ISO times of the window. */
  from: string;
  to: string;
}

interface Window {
  start: number;
  recorded: number;
  suppressed: number;
  source: string;
  fingerprint?: string;
  timer?: NodeJS.Timeout;
}

export class RefusalLimiter {
  private readonly windows = new Map<string, Window>();

  constructor(
    /** Read on each refusal, so a changed limit applies at once. 0 = no limit. */
    private readonly limit: () => number,
    private readonly summarize: (s: Suppressed) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /** Whether this refusal by `user` is recorded (true) or only counted (false). */
  admit(actor: { user: string; source: string; fingerprint?: string }): boolean {
    const limit = this.limit();
    if (limit <= 0) return true;
    const t = this.now();
    let w = this.windows.get(actor.user);
    if (w && t - w.start >= REFUSAL_WINDOW_MS) {
      this.close(actor.user, w);
      w = undefined;
    }
    if (!w) {
      if (this.windows.size >= 10_000) this.sweep(t);
      w = { start: t, recorded: 0, suppressed: 0, source: actor.source };
      this.windows.set(actor.user, w);
    }
    if (w.recorded < limit) {
      w.recorded++;
      return true;
    }
    w.suppressed++;
    w.source = actor.source;
    if (actor.fingerprint) w.fingerprint = actor.fingerprint;
    else delete w.fingerprint;
    if (!w.timer) {
      const user = actor.user;
      const win = w;
      win.timer = setTimeout(() => this.close(user, win), Math.max(0, win.start + REFUSAL_WINDOW_MS - t));
      win.timer.unref();
    }
    return false;
  }

  /** Refusals counted but not yet summarized, per user (for tests and the doctor). */
  pending(): Map<string, number> {
    return new Map([...this.windows].filter(([, w]) => w.suppressed > 0).map(([u, w]) => [u, w.suppressed]));
  }

  /** Ends every window now, summarizing what each suppressed (at shutdown). */
  flush(): void {
    for (const [user, w] of [...this.windows]) this.close(user, w);
  }

  private close(user: string, w: Window): void {
    if (w.timer) clearTimeout(w.timer);
    if (this.windows.get(user) === w) this.windows.delete(user);
    if (w.suppressed === 0) return;
    const end = Math.min(this.now(), w.start + REFUSAL_WINDOW_MS);
    const s: Suppressed = {
      user,
      source: w.source,
      count: w.suppressed,
      limit: this.limit(),
      from: new Date(w.start).toISOString(),
      to: new Date(end).toISOString(),
      ...(w.fingerprint ? { fingerprint: w.fingerprint } : {}),
    };
    w.suppressed = 0;
    this.summarize(s);
  }

  /** Drops finished windows that suppressed nothing (they need no summary). */
  private sweep(t: number): void {
    for (const [user, w] of this.windows) if (t - w.start >= REFUSAL_WINDOW_MS && w.suppressed === 0) this.windows.delete(user);
  }
}
