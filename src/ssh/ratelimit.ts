/**
 * Per-source limits for the SSH listener: failed logins (FailureLimiter) and the table of connections
 * that have not logged in yet (PreAuthSlots). A "source" is an IPv4 address, or an IPv6 /64 (one
 * host usually owns a whole /64, so counting single IPv6 addresses would be no limit at all).
 */

/** The key a source address is counted under: IPv4 as is, IPv6 by its /64 prefix. */
export function addressKey(ip: string): string {
  if (!ip.includes(':')) return ip;
  const bare = ip.replace(/%.*$/, '').toLowerCase();
  const [head = '', tail] = bare.split('::', 2) as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  // An embedded IPv4 tail (::ffff:1.2.3.4) counts as two groups; only the first four matter here.
  const groups = tail === undefined ? h : [...h, ...Array<string>(Math.max(0, 8 - h.length - t.length)).fill('0'), ...t];
  return `${groups.slice(0, 4).map((g) => (parseInt(g, 16) || 0).toString(16)).join(':')}::/64`;
}

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
    const e = this.m.get(addressKey(ip));
    if (!e) return 0;
    const left = e.blockedUntil - this.now();
    return left > 0 ? left : 0;
  }

  /** Records a failure; returns true when this failure starts a block. */
  fail(address: string, conn: number): boolean {
    const ip = addressKey(address);
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
    const e = this.m.get(addressKey(ip));
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

/** What PreAuthSlots decided for a new connection. */
export type Admission<T> = { ok: true; evict?: T } | { ok: false; held: number };

/**
 * The connections that have not logged in yet, at most `max` of them. When the table is full, a
 * connection from a source holding fewer slots than the source holding the most takes the oldest
 * slot of that source (which is closed); a connection from a source already holding the most is
 * dropped. So idle or slow handshakes, however many, never lock out a source that is not flooding:
 * a flood from one source only crowds out that source, and a flood spread over many sources
 * (one connection each) only ever costs its own oldest connections.
 */
export class PreAuthSlots<T> {
  private readonly bySource = new Map<string, { item: T; seq: number }[]>();
  private n = 0;
  private seq = 0;

  constructor(private readonly max: number) {}

  /** Admits a connection from `ip` (maybe evicting another one, which the caller must close) or refuses it. */
  admit(ip: string, item: T): Admission<T> {
    const key = addressKey(ip);
    const mine = this.bySource.get(key)?.length ?? 0;
    let evict: T | undefined;
    if (this.n >= this.max) {
      let victim: { key: string; count: number; seq: number } | undefined;
      for (const [k, list] of this.bySource) {
        const first = list[0];
        if (!first) continue;
        if (!victim || list.length > victim.count || (list.length === victim.count && first.seq < victim.seq)) victim = { key: k, count: list.length, seq: first.seq };
      }
      if (!victim || victim.count <= mine) return { ok: false, held: this.n };
      evict = this.take(victim.key, 0);
    }
    let list = this.bySource.get(key);
    if (!list) this.bySource.set(key, (list = []));
    list.push({ item, seq: ++this.seq });
    this.n++;
    return evict === undefined ? { ok: true } : { ok: true, evict };
  }

  /** Frees the slot of a connection (logged in, closed or evicted); a no-op when it holds none. */
  remove(ip: string, item: T): void {
    const key = addressKey(ip);
    const i = this.bySource.get(key)?.findIndex((x) => x.item === item) ?? -1;
    if (i >= 0) this.take(key, i);
  }

  /** Connections holding a slot. */
  size(): number {
    return this.n;
  }

  /** Connections holding a slot from one source (its key, see addressKey). */
  held(ip: string): number {
    return this.bySource.get(addressKey(ip))?.length ?? 0;
  }

  private take(key: string, i: number): T {
    const list = this.bySource.get(key)!;
    const [x] = list.splice(i, 1);
    if (!list.length) this.bySource.delete(key);
    this.n--;
    return x!.item;
  }
}
