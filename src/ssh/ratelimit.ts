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
 * Failed logins, counted per source address, per offered key and (by the server) per connection.
 * After `failures` failures within `windowMs`, an address is "blocked" for `blockMs`. A block never
 * locks anyone out by address alone (everyone on the host shares 127.0.0.1): the server still serves
 * the address, a key listed in the users file still logs in from it, and the block only makes the
 * address's pending connections the first to be closed when the pre-auth table is full. Failures of a
 * connection that then logs in are forgiven (an agent offering several keys). Per-key counts are for
 * the log (which key is being hammered); a listed key is never blocked.
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
  private readonly keys = new Map<string, number[]>();

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

  /** Records a failure (of `key`, a fingerprint, when one was offered); returns true when this failure starts a block of the address. */
  fail(address: string, conn: number, key?: string): boolean {
    const ip = addressKey(address);
    const t = this.now();
    if (key !== undefined) this.failKey(key, t);
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

  /** Failures of one offered key (any address) within the window. */
  keyFailures(key: string): number {
    const list = this.keys.get(key);
    if (!list) return 0;
    const t = this.now();
    while (list.length && list[0]! <= t - this.o.windowMs) list.shift();
    return list.length;
  }

  private failKey(key: string, t: number): void {
    let list = this.keys.get(key);
    if (!list) {
      if (this.keys.size >= this.maxEntries) {
        for (const [k, l] of this.keys) if (!l.length || l[l.length - 1]! <= t - this.o.windowMs) this.keys.delete(k);
        for (const k of this.keys.keys()) {
          if (this.keys.size < this.maxEntries) break;
          this.keys.delete(k);
        }
      }
      this.keys.set(key, (list = []));
    }
    while (list.length && list[0]! <= t - this.o.windowMs) list.shift();
    // Bounded: only "at least `failures`" matters.
    if (list.length > this.o.failures * 4) list.shift();
    list.push(t);
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

  /** Keys tracked (for tests). */
  keyCount(): number {
    return this.keys.size;
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

/**
 * The connections that have not logged in yet, at most `max` of them. A new connection is always
 * admitted: when the table is full, one pending connection is closed to make room, so nobody (not
 * even a local user sharing 127.0.0.1 with an attacker) is ever turned away at the door. Which one:
 * - never one that has offered a key listed in the users file ("shielded"), unless every pending
 *   connection is shielded (then the oldest shielded one);
 * - else the least recently active connection of the source holding the most unshielded slots,
 *   blocked sources (see FailureLimiter) first. "Active" means bytes arrived (`touch`), so an idle or
 *   stalled connection goes before a handshake that is making progress.
 * So idle or slow handshakes, however many and from wherever, cost only their own oldest connections,
 * and memory and fds stay bounded by `max`.
 */
export class PreAuthSlots<T> {
  /** Unshielded connections per source, least recently active first. */
  private readonly bySource = new Map<string, Map<T, true>>();
  /** Shielded connections (offered a listed key), oldest first, with their source key. */
  private readonly shielded = new Map<T, string>();
  private n = 0;

  constructor(private readonly max: number, private readonly isBlocked: (source: string) => boolean = () => false) {}

  /**
   * Admits a connection from `ip`. Returns the connection the caller must close to make room (when the
   * table was full, or `full` says the caller is out of room for another reason), if any.
   */
  admit(ip: string, item: T, full = false): { evict?: T } {
    const evict = this.n >= this.max || (full && this.n > 0) ? this.victim() : undefined;
    const key = addressKey(ip);
    let m = this.bySource.get(key);
    if (!m) this.bySource.set(key, (m = new Map<T, true>()));
    m.set(item, true);
    this.n++;
    return evict === undefined ? {} : { evict };
  }

  /** Bytes arrived on a pending connection: it becomes the most recently active of its source. */
  touch(ip: string, item: T): void {
    const m = this.bySource.get(addressKey(ip));
    if (m?.delete(item)) m.set(item, true);
  }

  /** The connection offered a key listed in the users file: it is closed last. */
  shield(ip: string, item: T): void {
    const key = addressKey(ip);
    const m = this.bySource.get(key);
    if (!m?.delete(item)) return;
    if (!m.size) this.bySource.delete(key);
    this.shielded.set(item, key);
  }

  /** Frees the slot of a connection (logged in, closed or evicted); a no-op when it holds none. */
  remove(ip: string, item: T): void {
    if (this.shielded.delete(item)) {
      this.n--;
      return;
    }
    const key = addressKey(ip);
    const m = this.bySource.get(key);
    if (!m?.delete(item)) return;
    if (!m.size) this.bySource.delete(key);
    this.n--;
  }

  /** Connections holding a slot. */
  size(): number {
    return this.n;
  }

  /** Connections holding a slot from one source (its key, see addressKey), shielded ones included. */
  held(ip: string): number {
    const key = addressKey(ip);
    let k = this.bySource.get(key)?.size ?? 0;
    for (const s of this.shielded.values()) if (s === key) k++;
    return k;
  }

  /** Takes the slot to free (see the class comment); undefined when the table is empty. */
  private victim(): T | undefined {
    let best: { key: string; rank: number } | undefined;
    for (const [key, m] of this.bySource) {
      const rank = m.size + (this.isBlocked(key) ? this.max + 1 : 0);
      if (!best || rank > best.rank) best = { key, rank };
    }
    if (best) {
      const m = this.bySource.get(best.key)!;
      const item = m.keys().next().value as T;
      m.delete(item);
      if (!m.size) this.bySource.delete(best.key);
      this.n--;
      return item;
    }
    const first = this.shielded.keys().next();
    if (first.done) return undefined;
    this.shielded.delete(first.value);
    this.n--;
    return first.value;
  }
}
