/**
 * The TUI's option and view types (what openTui takes, what a session leaves for the next one), in
 * a module of their own so that app.ts and index.ts never import each other (index.ts re-exports them).
 */
import type { SessionBackend } from '../commands/session.js';
import type { TermSize } from './layout.js';
import type { RenderBudget } from './scheduler.js';
import type { Focus } from './keys.js';
import type { SortKey } from './model.js';

/** What a session's view was when it ended (restored by the next session of the same SSH key). */
export interface TuiViewState {
  /** The selected cluster. */
  cluster?: string;
  /** The task picked in the tasks panel. */
  task?: string;
  focus: Focus;
  fullLog: boolean;
  filter: string;
  sort: SortKey;
  desc: boolean;
  mine: boolean;
  /** The log pane: the task shown, following or the first line shown, wrap and timestamps. */
  log?: { taskId: string; follow: boolean; top: number };
  wrap: boolean;
  times: boolean;
}

/** Where the view is kept between sessions (the SSH server: in memory, per key fingerprint). */
export interface TuiViewMemory {
  get(): TuiViewState | undefined;
  set(v: TuiViewState): void;
}

/** The input side of the terminal (an SSH channel or process.stdin), made to look like a TTY. */
export type TuiInput = NodeJS.ReadableStream & { isTTY?: boolean; isRaw?: boolean; setRawMode?(raw: boolean): unknown };
/** The output side of the terminal; `columns`/`rows` are set from the options and from `resize`. */
export type TuiOutput = NodeJS.WritableStream & { isTTY?: boolean; columns?: number; rows?: number; writable?: boolean };

/** What openTui needs. */
export interface TuiOptions {
  input: TuiInput;
  output: TuiOutput;
  columns: number;
  rows: number;
  backend: SessionBackend;
  /** The largest size drawn; a bigger terminal is drawn at this size (default MAX_SIZE, 300x120). */
  maxSize?: TermSize;
  /** Render time this session may use (default RENDER_BUDGET: 100 ms per second); frames over it wait. */
  renderBudget?: RenderBudget;
  /** Warn after `warnMs` without keyboard input, close (onExit(0, 'idle')) after `closeMs`; both from the last key. */
  idle?: { warnMs: number; closeMs: number };
  /** No colour at all (NO_COLOR, TERM=dumb, `ssh -t HOST -- --no-color`): bold and reverse video only. */
  noColor?: boolean;
  /** How the user runs a verb from their shell: `ssh HOST` over SSH (default `kindler`); the log title and the cluster view name commands with it. */
  cliCommand?: string;
  /** Opens on the view the last session left here, and keeps this one's for the next. */
  viewMemory?: TuiViewMemory;
  /** Called exactly once: reason 'quit' (q / Ctrl-C), 'idle', 'closed' (close()) or 'error' (code 1). */
  onExit: (code: number, reason?: string) => void;
}
