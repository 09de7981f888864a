/**
 * One open session's whole state, as app.ts's own parts see it (paint.ts, selection.ts, feed.ts,
 * view.ts, reflow.ts): TuiPort plus the widgets, timers and bookkeeping only the session itself
 * touches. TuiApp implements it; the helpers (keys, actions, ops) get the narrower TuiPort.
 */
import type { Widgets } from 'blessed';
import type { EngineEvent } from '../core/feed.js';
import type { Cluster, Task } from '../core/types.js';
import type { FrameState, GridSnapshot } from './frames.js';
import type { Layout, TermSize } from './layout.js';
import type { LogBuffer } from './logbuffer.js';
import type { TuiOptions, TuiViewState } from './options.js';
import type { TuiPort } from './port.js';
import type { Wakeup } from './scheduler.js';
import type { TasksPanel } from './tasks.js';

export interface AppState extends TuiPort {
  /** What openTui was given. */
  readonly o: TuiOptions;
  readonly header: Widgets.BoxElement;
  readonly status: Widgets.BoxElement;
  readonly footer: Widgets.BoxElement;
  /** TTL warnings: one line per cluster about to expire. */
  readonly banner: Widgets.BoxElement;
  /** The "terminal too small" box. */
  readonly small: Widgets.BoxElement;
  readonly tasks: TasksPanel;
  /** When a time on screen next changes by itself (shared clock). */
  readonly wake: Wakeup;
  readonly maxSize: TermSize;
  readonly logCache: Map<string, LogBuffer>;

  layout: Layout;
  layoutKey: string;
  pendingSize: TermSize | null;
  reflows: number;
  lastReflowAt: number;
  early: EngineEvent[];
  selIdx: number;
  idleText: string | null;
  fetching: string | null;
  awaitingDrain: boolean;
  drawnState: FrameState | null;
  drawnKey: string;
  staleGrids: GridSnapshot | null;
  restored: TuiViewState | undefined;

  activeTasks(): Task[];
  logTarget(): string | undefined;
  fetchLog(): void;
  apply(e: EngineEvent): void;
  taskEnded(t: Task): void;
  remember(): void;
  reflow(): void;
  draw(): void;
  cleared(): void;
  statusText(cols: number): string;
  footerText(width: number): string;
  nextTimeChange(now: number, clusters: Cluster[], active: Task[], layout: Layout): number;
}
