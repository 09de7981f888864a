/**
 * The TUI views that SSH sessions left, kept in daemon memory by key fingerprint (and user), so a
 * reconnect with the same key opens on the same cluster, pane, filter, sort and log position.
 * Bounded: at most `max` entries (least recently used dropped first), each forgotten after `ttlMs`.
 * Nothing is written to disk.
 */
export class ViewKeeper<V> {
  private readonly entries = new Map<string, { at: number; view: V }>();

  constructor(
    readonly max = 200,
    readonly ttlMs = 60 * 60 * 1000,
    private readonly now: () => number = Date.now,
  ) {}

  /** The view kept for `key`, if it is younger than the TTL (it becomes the most recently used). */
  get(key: string): V | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    this.entries.delete(key);
    if (this.now() - e.at > this.ttlMs) return undefined;
    this.entries.set(key, e);
    return e.view;
  }

  /** Keeps `view` for `key`, dropping expired entries and then the least recently used beyond `max`. */
  set(key: string, view: V): void {
    this.entries.delete(key);
    this.entries.set(key, { at: this.now(), view });
    const t = this.now();
    for (const [k, e] of this.entries) {
      if (this.entries.size <= this.max && t - e.at <= this.ttlMs) break;
      if (this.entries.size > this.max || t - e.at > this.ttlMs) this.entries.delete(k);
    }
  }

  get size(): number {
    return this.entries.size;
  }
}
