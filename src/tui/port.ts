/**
 * What the TUI's helpers (keys, verb actions, ops, kubeconfig) may touch of an open session: the
 * narrow port TuiApp implements. Helpers import this module (type-only), never app.ts, so that no
 * module under src/tui imports app.ts but index.ts.
 */
import type { Widgets } from 'blessed';
import type { SessionBackend } from '../commands/session.js';
import type { Cluster, Task } from '../core/types.js';
import type { CreateForm, DeletePrompt, LineInput } from './forms.js';
import type { Focus, HelpFlags } from './keys.js';
import type { Layout } from './layout.js';
import type { LogPane } from './logpane.js';
import type { TuiModel } from './model.js';
import type { Overlay } from './overlay.js';
import type { RenderScheduler } from './scheduler.js';
import type { ClusterTable } from './table.js';

/** The dialog open over the main view (one at a time). */
export type Dialog =
  | { kind: 'help' }
  | { kind: 'details'; name: string; lines: string[] }
  | { kind: 'create'; form: CreateForm }
  | { kind: 'delete'; prompt: DeletePrompt }
  | { kind: 'reconcile'; lines: string[] }
  | { kind: 'audit'; head: string[]; lines: string[] }
  /** A yes/no question naming what `run` would do (y or enter runs it; n or esc closes). */
  | { kind: 'confirm'; title: string; lines: string[]; run: () => void };

/** The input line on the status line: the cluster filter, the log search or a `:` command. */
export interface InputLine {
  kind: 'filter' | 'search' | 'command';
  editor: LineInput;
  before: string;
  error?: string;
}

/** One open session as its helpers see it. */
export interface TuiPort {
  readonly backend: SessionBackend;
  readonly screen: Widgets.Screen;
  readonly model: TuiModel;
  readonly table: ClusterTable;
  readonly log: LogPane;
  readonly overlay: Overlay;
  readonly scheduler: RenderScheduler;
  /** How the user runs a verb from their shell (`ssh HOST`, or `kindler` locally). */
  readonly cli: string;
  /** The layout of the last frame. */
  readonly layout: Layout;
  readonly closed: boolean;

  // The view state the keys change (the next frame draws it).
  focus: Focus;
  fullLog: boolean;
  sortIdx: number;
  sortDesc: boolean;
  mine: boolean;
  filter: string;
  selName: string | undefined;
  taskIdx: number;
  pinnedTask: string | undefined;
  dialog: Dialog | null;
  input: InputLine | null;
  /** The reconcile dialog whose pass is still running (one pass at a time). */
  reconciling: Dialog | null;
  message: { text: string; error: boolean } | null;

  /** Wraps a callback so that a throw ends this session only (and nothing runs once it is closed). */
  guard<A extends unknown[], R>(fn: (...a: A) => R): (...a: A) => R | undefined;
  /** A one-line message on the status line. */
  say(text: string, error?: boolean): void;
  /** User input: resets the idle watch. */
  activity(): void;
  quit(): void;
  /** Ctrl-L. */
  repaint(): void;
  /** `:reset`. */
  resetView(): void;
  helpFlags(): HelpFlags;
  /** The visible clusters and the selected row. */
  rows(): { rows: Cluster[]; idx: number };
  selected(): Cluster | undefined;
  selectedTask(): Task | undefined;
  pickCluster(i: number, byMouse?: boolean): void;
  pickTask(i: number, byMouse?: boolean): void;
  /** Points the log pane at the current target. */
  syncLog(): void;
}
