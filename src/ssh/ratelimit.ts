/**
 * Failed logins per source address. After `failures` failures within `windowMs`, the address is
 * blocked for `blockMs`: its new connections are dropped at once. Other addresses are unaffected.
 * Failures of a connection that then logs in are forgiven (an agent offering several keys).
 */
export interface RateLimit {
  failures: number;
  windowMs: number;
  blockMs: number;
}

interface Entry {
  fails: { t: number; conn: number }[];
  blockedUntil: number;
}

export class FailureLimiter {
  private readonly m = new Map<string, Entry>();

  constructor(private readonly o: RateLimit, private readonly now: () => number = Date.now, private readonly maxEntries = 10_000) {}

  private prune(e: Entry, t: number): void {
    while (e.fails.length && e.fails[0]!.t <= t - this.o.windowMs) e.fails.shift();
  }

  /** Milliseconds the address stays blocked (0: not blocked). */
  blockedFor(ip: string): number {
    const e = this.m.get(ip);
    if (!e) return 0;
    const left = e.blockedUntil - this.now();
    return left > 0 ? left : 0;
  }

  /** Records a failure; returns true when this failure starts a block. */
  fail(ip: string, conn: number): boolean {
    const t = this.now();
    let e = this.m.get(ip);
    if (!e) {
      this.sweep(t);
      this.m.set(ip, (e = { fails: [], blockedUntil: 0 }));
    }
    this.prune(e, t);
    e.fails.push({ t, conn });
    if (e.fails.length >= this.o.failures && e.blockedUntil <= t) {
      e.blockedUntil = t + this.o.blockMs;
      e.fails = [];
      return true;
    }
    return false;
  }

  /** Forgets the failures of a connection that logged in. */
  forgive(ip: string, conn: number): void {
    const e = this.m.get(ip);
    if (e) e.fails = e.fails.filter((f) => f.conn !== conn);
  }

  /** Addresses tracked (for tests). */
  size(): number {
    return this.m.size;
  }

  private sweep(t: number): void {
    if (this.m.size < this.maxEntries) return;
    for (const [ip, e] of this.m) {
      this.prune(e, t);
      if (!e.fails.length && e.blockedUntil <= t) this.m.delete(ip);
    }
    // Still full (a flood of addresses): drop the oldest.
    for (const ip of this.m.keys()) {
      if (this.m.size < this.maxEntries) break;
      this.m.delete(ip);
    }
  }
}
