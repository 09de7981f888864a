/**
 * The engine's snapshot-and-events feed: a subscriber gets the current snapshot, then every change
 * in order (each event carries a sequence number one higher than the last).
 */
import type { EngineEventInput, Listener } from '../core/feed.js';

export class Feed {
  private seq = 0;
  private readonly listeners = new Set<Listener>();

  get lastSeq(): number {
    return this.seq;
  }

  emit(e: EngineEventInput): void {
    const ev = { ...e, seq: ++this.seq };
    for (const l of this.listeners) {
      try {
        l(ev);
      } catch {
        // A broken subscriber must not stop the engine or the other subscribers.
      }
    }
  }

  subscribe(l: Listener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  get size(): number {
    return this.listeners.size;
  }
}
