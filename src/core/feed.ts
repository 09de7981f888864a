/**
 * The shapes of the engine's snapshot-and-events feed, as every face reads them (the engine's Feed class
 * publishes them; the control socket carries them as JSON): a subscriber gets a snapshot, then every change
 * in order, each event with a sequence number higher than the last.
 */
import type { Cluster, StoreHealth, Task } from './types.js';

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
