/**
 * The TUI application object: builds the screen synchronously, joins the feed, owns the session's
 * state, timers and lifecycle, and implements AppState (state.ts) for its parts: drawing in
 * paint.ts, selection and the log target in selection.ts, the feed in feed.ts, the remembered view
 * in view.ts, sizes in screen.ts. Helpers see only TuiPort (port.ts): keys live in controls.ts,
 * verb actions in actions.ts, reconcile/audit/extend/TTL warnings in ops.ts.
 */
import blessed from 'blessed';
import type { Widgets } from 'blessed';
import { formatDuration } from '../core/duration.js';
import type { Cluster, Task } from '../core/types.js';
import type { SessionBackend } from '../commands/session.js';
import type { EngineEvent, Snapshot } from '../core/feed.js';
import { openDetails } from './actions.js';
import { onKey } from './controls.js';
import * as feed from './feed.js';
import type { Focus, HelpFlags, KeyEvent } from './keys.js';
import type { FrameState, GridSnapshot } from './frames.js';
import { capSize, computeLayout, MAX_SIZE, type Layout, type TermSize } from './layout.js';
import type { LogBuffer } from './logbuffer.js';
import { LogPane } from './logpane.js';
import { TuiModel } from './model.js';
import type { TuiInput, TuiOptions, TuiViewState } from './options.js';
import { Overlay } from './overlay.js';
import * as paint from './paint.js';
import type { Dialog, InputLine } from './port.js';
import { IdleWatch, RENDER_BUDGET, RenderScheduler, Wakeup } from './scheduler.js';
import * as sizing from './screen.js';
import { addedSince, dropColours, listenersOf, regrid, removeListeners, type Listeners } from './screen.js';
import * as selection from './selection.js';
import type { AppState } from './state.js';
import { ClusterTable } from './table.js';
import { TasksPanel } from './tasks.js';
import { plain } from './text.js';
import { shareTerminfo, slimPut } from './terminfo.js';
import * as views from './view.js';
import { line } from './widgets.js';

shareTerminfo();

export { OUTPUT_BACKLOG } from './paint.js';

/** One open TUI: its screen, widgets, state and timers. Internal: callers use openTui's handle. */
export class TuiApp implements AppState {
  readonly backend: SessionBackend;
  readonly screen: Widgets.Screen;
  readonly model = new TuiModel();
  readonly header: Widgets.BoxElement;
  readonly status: Widgets.BoxElement;
  readonly footer: Widgets.BoxElement;
  /** TTL warnings: one line per cluster about to expire. */
  readonly banner: Widgets.BoxElement;
  readonly small: Widgets.BoxElement;
  readonly table: ClusterTable;
  readonly tasks: TasksPanel;
  readonly log: LogPane;
  readonly overlay: Overlay;
  readonly scheduler: RenderScheduler;
  /** When a time on screen next changes by itself (shared clock). */
  readonly wake: Wakeup;
  readonly idle: IdleWatch | null;
  /** Listeners blessed attached to the streams (its keypress decoder's stays on the input after destroy). */
  readonly blessedOnInput: Listeners;
  readonly blessedOnOutput: Listeners;
  readonly hadDecoder: boolean;

  closed = false;
  /** The largest size drawn (a bigger terminal is drawn at this size). */
  readonly maxSize: TermSize;
  /** The size asked for by resize() and not drawn yet: the next frame reflows to it (the last one wins). */
  pendingSize: TermSize | null = null;
  /** Reflows done (new cell grid at a new size), for tests and diagnostics. */
  reflows = 0;
  /** When the last reflow's frame was drawn (Date.now()). */
  lastReflowAt = -Infinity;
  unsubscribe: (() => void) | null = null;
  early: EngineEvent[] = [];
  layoutKey = '';
  layout: Layout;

  focus: Focus = 'table';
  fullLog = false;
  sortIdx = 0;
  /** The sort direction (the same shift-letter again flips it). */
  sortDesc = false;
  /** `m`: only clusters this user owns. */
  mine = false;
  filter = '';
  selName: string | undefined;
  selIdx = 0;
  taskIdx = 0;
  /** The task whose log is shown when the user picked one in the tasks panel. */
  pinnedTask: string | undefined;
  dialog: Dialog | null = null;
  input: InputLine | null = null;
  /** The reconcile dialog whose pass is still running (one pass at a time). */
  reconciling: Dialog | null = null;
  message: { text: string; error: boolean } | null = null;
  idleText: string | null = null;
  fetching: string | null = null;
  /** A frame waits for the output to drain (see flush). */
  awaitingDrain = false;
  /** The screen the terminal shows (see frames.ts), and its key. */
  drawnState: FrameState | null = null;
  drawnKey = '';
  /** After a shared frame: the grids of the screen shown, to copy back before blessed renders here again. */
  staleGrids: GridSnapshot | null = null;
  readonly logCache = new Map<string, LogBuffer>();
  /** How the user runs a verb from their shell (`ssh HOST`, or `kindler` locally). */
  get cli(): string {
    return plain(this.o.cliCommand ?? 'kindler', 200);
  }
  /** The view a previous session left (its log position is applied once that log is shown). */
  restored: TuiViewState | undefined;

  constructor(readonly o: TuiOptions) {
    this.backend = o.backend;
    const input = o.input as TuiInput & { _keypressDecoder?: unknown };
    const inputBefore = listenersOf(input);
    const outputBefore = listenersOf(o.output);
    this.hadDecoder = input._keypressDecoder !== undefined;
    this.maxSize = capSize(o.maxSize?.cols ?? MAX_SIZE.cols, o.maxSize?.rows ?? MAX_SIZE.rows, { cols: 10_000, rows: 10_000 }, MAX_SIZE);
    const { cols, rows } = capSize(o.columns, o.rows, this.maxSize);
    // blessed sizes its screen from these (a terminal bigger than the cap is drawn at the cap).
    Object.assign(o.output, { columns: cols, rows });
    this.layout = computeLayout(cols, rows, { fullLog: false, activeTasks: 0 });

    // Timers exist from here on only while something asks for them. Every frame (tick, key, event,
    // resize) goes through the scheduler, so the session's render budget bounds them all.
    this.scheduler = new RenderScheduler(
      this.guard(() => {
        const reflows = this.reflows;
        this.flush();
        if (this.reflows !== reflows) this.lastReflowAt = Date.now();
      }),
      50,
      o.renderBudget ?? RENDER_BUDGET,
    );
    this.wake = new Wakeup(this.guard(() => this.scheduler.now()));

    // Everything from here to the last widget attached is synchronous: no other session's screen can
    // become blessed's "current" one while these widgets attach.
    this.screen = blessed.screen({
      input: o.input,
      output: o.output,
      terminal: 'xterm-256color',
      forceUnicode: true,
      fullUnicode: true,
      smartCSR: true,
      warnings: false,
      autoPadding: true,
      sendFocus: false,
    } as unknown as Widgets.IScreenOptions);
    slimPut(this.screen.program);
    if (o.noColor) dropColours(this.screen);
    this.blessedOnInput = addedSince(input, inputBefore);
    this.blessedOnOutput = addedSince(o.output, outputBefore);
    // blessed reflows (new cell grid, full render) synchronously on every 'resize' of the output, at
    // the output's size: a burst of window changes meant a burst of reflows, at any size. Sizes come
    // in through resize() only (capped, coalesced into the next frame), so its handler goes.
    const onResize = (o.output as { _resizeHandler?: (...a: unknown[]) => void })._resizeHandler;
    if (onResize) o.output.removeListener('resize', onResize);
    try {
      this.header = line(this.screen, { bg: 'blue', fg: 'white' });
      this.table = new ClusterTable(
        this.screen,
        this.guard((i: number) => this.pickCluster(i, true)),
        this.guard(() => openDetails(this)),
      );
      this.tasks = new TasksPanel(
        this.screen,
        this.guard((i: number) => this.pickTask(i, true)),
      );
      this.log = new LogPane(this.screen);
      this.log.noColor = Boolean(o.noColor);
      this.log.wholeLog = `${this.cli} logs ID > file`;
      // The pane paces its own redraws (LOG_FRAME_MS, on a clock grid shared by sessions): its held-back
      // redraw runs when due, not another frame gap after whatever frame came last (that made it ~100 ms).
      this.log.onLater = this.guard(() => this.scheduler.request(0));
      this.banner = line(this.screen);
      this.status = line(this.screen);
      this.footer = line(this.screen, { fg: 'white', bg: 'black' });
      this.small = blessed.box({
        parent: this.screen,
        hidden: true,
        left: 0,
        top: 0,
        width: '100%',
        height: '100%',
        tags: false,
        align: 'center',
        valign: 'middle',
      });
      this.overlay = new Overlay(this.screen);
      this.screen.on(
        'keypress',
        this.guard((ch: string | undefined, key: KeyEvent | undefined) => onKey(this, ch, key)),
      );
      this.screen.on(
        'mouse',
        this.guard(() => this.activity()),
      );
    } catch (e) {
      // Never leave a half-built screen behind (it would hold the terminal and blessed's process hooks).
      this.closed = true;
      this.teardownScreen();
      throw e;
    }
    this.restored = this.restoreView(o.viewMemory?.get());
    // The first frame waits for the snapshot when it comes at once (a local engine: one microtask),
    // so a session's first frame is already complete; loaded() draws it without the frame gap.
    this.scheduler.request();
    const idle = o.idle;
    this.idle =
      idle && idle.warnMs > 0 && idle.closeMs > 0 && !this.closed
        ? new IdleWatch(
            idle.warnMs,
            idle.closeMs,
            this.guard((left: number) => {
              this.idleText = `no input for a while: this session closes in ${formatDuration(left)} unless you press a key`;
              this.scheduler.request();
            }),
            this.guard(() => this.finish(0, 'idle', `kindler: session closed after ${formatDuration(idle.closeMs)} without input`)),
          )
        : null;
    if (this.closed) return;

    let joined: ReturnType<SessionBackend['subscribe']>;
    try {
      joined = this.backend.subscribe(this.guard((e: EngineEvent) => this.onEvent(e)));
    } catch (e) {
      joined = Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
    joined.then(
      ({ snapshot, unsubscribe }) => {
        if (this.closed) return unsubscribe();
        this.unsubscribe = unsubscribe;
        this.guard(() => this.loaded(snapshot))();
      },
      this.guard((e: unknown) => this.say(`cannot watch the daemon: ${(e as Error)?.message ?? e}`, true)),
    );
  }

  /** The snapshot arrived (feed.ts); the view a previous session left, and this one's kept (view.ts). */
  loaded = (snapshot: Snapshot): void => feed.loaded(this, snapshot);
  restoreView = (v: TuiViewState | undefined): TuiViewState | undefined => views.restoreView(this, v);
  resetView = (): void => views.resetView(this);
  remember = (): void => views.remember(this);

  /** Wraps a callback so one bad event or key can never become an uncaught exception (blessed would kill every session). */
  guard<A extends unknown[], R>(fn: (...a: A) => R): (...a: A) => R | undefined {
    return (...a: A) => {
      if (this.closed) return undefined;
      try {
        return fn(...a);
      } catch (e) {
        this.fail(e);
        return undefined;
      }
    };
  }

  /** Ends this session after an internal error (code 1), leaving the others alone. */
  fail(e: unknown): void {
    const msg = `internal error: ${plain((e as Error)?.message ?? e, 200)}`;
    this.finish(1, 'error', `kindler: ${msg}`);
  }

  // ---- lifecycle ------------------------------------------------------------------------

  /** The terminal's new size (capped, coalesced into a frame) and its reflow: screen.ts. */
  resize = (cols: number, rows: number): void => sizing.resize(this, cols, rows);
  reflow = (): void => sizing.reflow(this);

  /** Tears down with onExit(0, 'closed'), then prints `message` on the normal screen. */
  close(message?: string): void {
    this.finish(0, 'closed', message);
  }

  /** The one way out: stops timers, leaves the feed, destroys the screen, calls onExit once. */
  finish(code: number, reason: string, message?: string): void {
    if (this.closed) return;
    this.remember();
    this.closed = true;
    this.scheduler.stop();
    this.wake.stop();
    this.idle?.stop();
    this.log?.stop();
    try {
      this.unsubscribe?.();
    } catch {
      /* the backend's problem; we are leaving */
    }
    this.unsubscribe = null;
    this.early = [];
    this.logCache.clear();
    this.teardownScreen();
    if (message && this.o.output.writable !== false) {
      try {
        this.o.output.write(`${plain(message, 500)}\r\n`);
      } catch {
        /* the client is gone */
      }
    }
    try {
      this.o.onExit(code, reason);
    } catch {
      /* the caller's problem */
    }
  }

  /** Destroys the screen and removes what blessed leaves on the streams (its keypress decoder's listener). */
  teardownScreen(): void {
    try {
      this.screen.destroy();
    } catch {
      /* already gone */
    }
    const input = this.o.input as TuiInput & { _blessedInput?: number; _keypressDecoder?: unknown };
    if (!input._blessedInput) {
      removeListeners(input, this.blessedOnInput);
      if (!this.hadDecoder) delete input._keypressDecoder;
    }
    if (!(this.o.output as { _blessedOutput?: number })._blessedOutput) removeListeners(this.o.output, this.blessedOnOutput);
  }

  // ---- feed (feed.ts) ----------------------------------------------------------------------

  onEvent = (e: EngineEvent): void => feed.onEvent(this, e);
  apply = (e: EngineEvent): void => feed.apply(this, e);
  taskEnded = (t: Task): void => feed.taskEnded(this, t);

  // ---- selection and log target (selection.ts) --------------------------------------------

  rows(): { rows: Cluster[]; idx: number } {
    return selection.rows(this);
  }
  selected = (): Cluster | undefined => selection.selected(this);
  activeTasks = (): Task[] => selection.activeTasks(this);
  selectedTask = (): Task | undefined => selection.selectedTask(this);
  pickCluster = (i: number, byMouse = false): void => selection.pickCluster(this, i, byMouse);
  pickTask = (i: number, byMouse = false): void => selection.pickTask(this, i, byMouse);
  logTarget = (): string | undefined => selection.logTarget(this);
  syncLog = (): void => selection.syncLog(this);
  fetchLog = (): void => selection.fetchLog(this);

  /** Shows a one-line message on the status line (until the next key). */
  say(text: string, error = false): void {
    this.message = { text: plain(text, 400), error };
    this.scheduler.request();
  }

  // ---- input -----------------------------------------------------------------------------------

  /** User input: resets the idle watch and clears its warning. */
  activity(): void {
    if (this.idle?.activity() || this.idleText) {
      this.idleText = null;
      this.scheduler.request();
    }
  }

  /** q / Ctrl-C. */
  quit(): void {
    this.finish(0, 'quit');
  }

  /** Ctrl-L: forgets what the terminal shows, clears it and draws every cell again. */
  repaint(): void {
    const program = this.screen.program as unknown as { cols: number; rows: number };
    regrid(this.screen, program.cols, program.rows);
    this.cleared();
    this.layoutKey = '';
    this.draw();
  }

  /** What the help screen (and the `:` prompt) may mention for this user. */
  helpFlags(): HelpFlags {
    const me = this.backend.principal.user;
    return {
      canCreate: this.backend.may('create'),
      canAct: this.backend.may('delete', me),
      canCancel: this.backend.may('cancel', me, me),
      canExtend: this.backend.may('extend', me),
      canReconcile: this.backend.may('reconcile'),
      canAudit: this.backend.may('audit'),
    };
  }

  // ---- drawing (paint.ts) ------------------------------------------------------------------

  flush = (): void => paint.flush(this);
  nextTimeChange = (now: number, clusters: Cluster[], active: Task[], layout: Layout): number => paint.nextTimeChange(this, now, clusters, active, layout);
  draw = (): void => paint.draw(this);
  cleared = (): void => paint.cleared(this);
  statusText = (cols: number): string => paint.statusText(this, cols);
  footerText = (width: number): string => paint.footerText(this, width);
}
