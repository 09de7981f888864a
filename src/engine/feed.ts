/**
 * The engine's snapshot-and-events feed: a subscriber gets the current snapshot, then every change
 * in order (each event carries a sequence number one higher than the last).
 */
import type { Cluster, Task } from '../core/types.js';
import type { StoreHealth } from '../store/state.js';

export type EngineEvent =
  | { seq: number; type: 'cluster'; cluster: Cluster }
  | { seq: number; type: 'cluster-removed'; name: string }
  | { seq: number; type: 'task'; task: Task }
  /**
   * New lines of a task's log, from absolute line index `from`. `skipped` (when > 0): that many
   * lines just before `from` are in the log file but not in any event (the middle of a flood of
   * plain lines); a view starts over at `from` rather than asking for them.
   */
  | { seq: number; type: 'log'; taskId: string; from: number; lines: string[]; skipped?: number }
  | { seq: number; type: 'presence'; sessions: SessionInfo[] }
  /** Whether state reaches the disk changed (saving stopped, its reason changed, or it resumed). */
  | { seq: number; type: 'storage'; storage: StoreHealth };

/** One connected interactive session (for "who else is online"). */
export interface SessionInfo {
  id: string;
  user: string;
  role: string;
  source: string;
  since: string;
}

type Payload<E> = E extends unknown ? Omit<E, 'seq'> : never;
export type EngineEventInput = Payload<EngineEvent>;

export interface Snapshot {
  seq: number;
  clusters: Cluster[];
  tasks: Task[];
  sessions: SessionInfo[];
  /** Whether state is being saved (absent from an older daemon: read as saving). */
  storage?: StoreHealth;
}

export type Listener = (e: EngineEvent) => void;

export class Feed {
  private seq = 0;
  private readonly listeners = new Set<Listener>();

  get lastSeq(): number {
    return this.seq;
  }

  emit(e: EngineEventInput): void {
    const ev = { ...e, seq: ++this.seq } as EngineEvent;
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
