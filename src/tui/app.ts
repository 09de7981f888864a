/**
 * The TUI application object: builds the screen synchronously, follows the feed, keeps the
 * selection and the log target, and draws every panel on a coalesced render. Keys live in
 * controls.ts, verb actions in actions.ts, reconcile/audit/extend/TTL warnings in ops.ts.
 */
import blessed from 'blessed';
import type { Widgets } from 'blessed';
import { formatDuration } from '../core/duration.js';
import { isTerminal, type Cluster, type Task } from '../core/types.js';
import { sessionApi, type SessionBackend } from '../commands/session.js';
import type { EngineEvent, Snapshot } from '../core/feed.js';
import { cancelTarget, openDetails, toggleFor } from './actions.js';
import { onKey } from './controls.js';
import { errorOf } from './forms.js';
import { commandNames, fitHints, helpLines, helpWidth, mainHints, type Focus, type HelpFlags, type KeyEvent } from './keys.js';
import { dropGrids, frameKey, restoreGrids, sharedFrames, snapshotGrids, VERIFY_FRAMES, type FrameState, type GridSnapshot } from './frames.js';
import { capSize, computeLayout, MAX_SIZE, tooSmallText, type Layout, type TermSize } from './layout.js';
import { LogBuffer } from './logbuffer.js';
import { LogPane } from './logpane.js';
import { bannerLines, canExtend, expiringSoon } from './ops.js';
import { presence, SORT_KEYS, storageNotice, TuiModel, type SortKey } from './model.js';
import { Overlay } from './overlay.js';
import { IdleWatch, RENDER_BUDGET, RenderScheduler, Wakeup } from './scheduler.js';
import { ClusterTable } from './table.js';
import { TasksPanel } from './tasks.js';
import { clean, countdownChangesAt, escapeTags, plain, sinceChangesAt, truncate, untilChangesAt } from './text.js';
import { TTL_WARN_MS } from '../core/expiry.js';
import type { TuiInput, TuiOptions, TuiViewState } from './options.js';
import type { Dialog, InputLine, TuiPort } from './port.js';
import { shareTerminfo, slimPut } from './terminfo.js';
import { applyPending, line, place, setText } from './widgets.js';

shareTerminfo();

type Listeners = [string | symbol, (...a: unknown[]) => void][];

function listenersOf(e: NodeJS.EventEmitter): Listeners {
  return e.eventNames().flatMap((n) => e.listeners(n).map((l) => [n, l as (...a: unknown[]) => void] as Listeners[number]));
}

/** The listeners on `e` that are not in `before` (what blessed's screen constructor attached). */
function addedSince(e: NodeJS.EventEmitter, before: Listeners): Listeners {
  return listenersOf(e).filter(([n, l]) => !before.some(([bn, bl]) => bn === n && bl === l));
}

/** Removes exactly these listeners, if still attached (never anyone else's). */
function removeListeners(e: NodeJS.EventEmitter, added: Listeners): void {
  for (const [n, l] of added) e.removeListener(n, l);
}

type Cell = [number, string];
type Grid = (Cell[] & { dirty?: boolean })[];

/**
 * blessed's screen.alloc() for a new size, without its garbage: alloc() makes two new arrays per
 * cell (72,000 at 300x120) on every reflow; this blanks the cells already there in place, adds or
 * drops only the difference, then clears the terminal as alloc() does.
 */
function regrid(screen: Widgets.Screen, cols: number, rows: number): void {
  const s = screen as unknown as { lines: Grid; olines: Grid; dattr: number; program: { clear(): void } };
  const blank = s.dattr;
  for (const grid of [s.lines, s.olines]) {
    if (grid.length > rows) grid.length = rows;
    for (let y = 0; y < rows; y++) {
      const line = grid[y] ?? (grid[y] = []);
      if (line.length > cols) line.length = cols;
      for (let x = 0; x < cols; x++) {
        const c = line[x];
        if (c) {
          c[0] = blank;
          c[1] = ' ';
        } else line[x] = [blank, ' '];
      }
      line.dirty = false;
    }
  }
  s.program.clear();
}

/** blessed's default fg/bg in a cell's attribute (bits 9-17 and 0-8); attribute flags sit above bit 18. */
const DEFAULT_COLOURS = (0x1ff << 9) | 0x1ff;

/**
 * NO_COLOR: every cell is drawn with the terminal's default colours; bold, underline and reverse
 * video (the selection) stay. Done on the cell grid just before blessed compares and writes it, so
 * no colour of any widget, tag or style can reach the terminal.
 */
function dropColours(screen: Widgets.Screen): void {
  const s = screen as unknown as { lines: Grid; draw(start: number, end: number): void };
  const draw = s.draw.bind(screen);
  s.draw = (start: number, end: number) => {
    for (let y = start; y <= end; y++) {
      const line = s.lines[y];
      if (!line) continue;
      for (const c of line) c[0] = (c[0] & ~0x3ffff) | DEFAULT_COLOURS;
    }
    draw(start, end);
  };
}

/** A resize this soon after the last reflow (one 60 Hz frame) waits for the next one, with any that follow it. */
const REFLOW_GAP_MS = 16;

/** The create form's width (it never changes while typing). */
const CREATE_WIDTH = 78;

/** Finished tasks' logs kept in memory for quick reselection. */
const LOG_CACHE = 4;

/** Bytes of frames the terminal may have outstanding before the next frame waits for 'drain'. */
export const OUTPUT_BACKLOG = 64 * 1024;

/** One open TUI: its screen, widgets, state and timers. Internal: callers use openTui's handle. */
export class TuiApp implements TuiPort {
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

  constructor(private readonly o: TuiOptions) {
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
      this.table = new ClusterTable(this.screen, this.guard((i: number) => this.pickCluster(i, true)), this.guard(() => openDetails(this)));
      this.tasks = new TasksPanel(this.screen, this.guard((i: number) => this.pickTask(i, true)));
      this.log = new LogPane(this.screen);
      this.log.noColor = Boolean(o.noColor);
      this.log.wholeLog = `${this.cli} logs ID > file`;
      this.log.onLater = this.guard(() => this.scheduler.request());
      this.banner = line(this.screen);
      this.status = line(this.screen);
      this.footer = line(this.screen, { fg: 'white', bg: 'black' });
      this.small = blessed.box({ parent: this.screen, hidden: true, left: 0, top: 0, width: '100%', height: '100%', tags: false, align: 'center', valign: 'middle' });
      this.overlay = new Overlay(this.screen);
      this.screen.on('keypress', this.guard((ch: string | undefined, key: KeyEvent | undefined) => onKey(this, ch, key)));
      this.screen.on('mouse', this.guard(() => this.activity()));
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
      joined = Promise.reject(e);
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

  /** The snapshot arrived: load it, then the events that came before it. */
  loaded(snapshot: Snapshot): void {
    this.model.load(snapshot);
    for (const e of this.early.splice(0)) this.apply(e);
    this.syncLog();
    if (this.restored) {
      this.log.restore(this.restored.log);
      this.say('your last view is back (cluster, filter, sort, focus, log position); :reset for the default one');
    }
    this.scheduler.now();
  }

  /** Takes over a previous session's view (sort, filters, focus, selection, log toggles); returns it if usable. */
  restoreView(v: TuiViewState | undefined): TuiViewState | undefined {
    if (!v || typeof v !== 'object') return undefined;
    const sort = SORT_KEYS.indexOf(v.sort as SortKey);
    if (sort >= 0) this.sortIdx = sort;
    this.sortDesc = v.desc === true;
    this.mine = v.mine === true;
    if (typeof v.filter === 'string') this.filter = v.filter.slice(0, 64);
    if (v.focus === 'table' || v.focus === 'tasks' || v.focus === 'log') this.focus = v.focus;
    this.fullLog = v.fullLog === true;
    if (typeof v.cluster === 'string') this.selName = v.cluster;
    if (typeof v.task === 'string') this.pinnedTask = v.task;
    this.log.wrap = v.wrap === true;
    this.log.times = v.times !== false;
    return v;
  }

  /** `:reset`: the view a first session opens on (the next session of this key opens on it too). */
  resetView(): void {
    this.restored = undefined;
    this.sortIdx = 0;
    this.sortDesc = false;
    this.mine = false;
    this.filter = '';
    this.focus = 'table';
    this.fullLog = false;
    this.pinnedTask = undefined;
    this.selIdx = 0;
    this.selName = undefined;
    this.log.wrap = false;
    this.log.times = true;
    this.log.search('');
    this.syncLog();
    this.log.end();
    this.remember();
  }

  /** Keeps this session's view for the next session of the same key (once the snapshot is in). */
  remember(): void {
    const mem = this.o.viewMemory;
    if (!mem || !this.model.loaded) return;
    const log = this.log.position();
    try {
      mem.set({
        ...(this.selName !== undefined ? { cluster: this.selName } : {}),
        ...(this.pinnedTask !== undefined ? { task: this.pinnedTask } : {}),
        focus: this.focus,
        fullLog: this.fullLog,
        filter: this.filter,
        sort: SORT_KEYS[this.sortIdx]!,
        desc: this.sortDesc,
        mine: this.mine,
        ...(log ? { log } : {}),
        wrap: this.log.wrap,
        times: this.log.times,
      });
    } catch {
      /* the keeper's problem */
    }
  }

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

  /**
   * The terminal's new size, capped at maxSize. A lone resize is drawn at once; one within 16 ms of
   * the last reflow waits for the frame 16 ms after it, and any number of calls before that frame
   * make one reflow, to the last size: a burst of window changes is at most two reflows (its first
   * and its last), a continuous storm at most 60 a second, all within the render budget.
   */
  resize(cols: number, rows: number): void {
    if (this.closed || !(cols > 0 && rows > 0)) return;
    const size = capSize(cols, rows, this.maxSize);
    const program = this.screen.program as unknown as { cols: number; rows: number };
    // Back to the size on screen (or still over the cap): nothing to draw, and a pending size is void.
    this.pendingSize = program.cols === size.cols && program.rows === size.rows ? null : size;
    if (!this.pendingSize) return;
    if (Date.now() - this.lastReflowAt >= REFLOW_GAP_MS) this.scheduler.now();
    else this.scheduler.request(this.lastReflowAt + REFLOW_GAP_MS - Date.now());
  }

  /** Applies the pending size: a new cell grid (blessed clears the terminal), drawn by the frame that called it. */
  reflow(): void {
    const size = this.pendingSize;
    this.pendingSize = null;
    const program = this.screen.program as unknown as { cols: number; rows: number };
    if (!size || (program.cols === size.cols && program.rows === size.rows)) return;
    program.cols = size.cols;
    program.rows = size.rows;
    Object.assign(this.o.output, { columns: size.cols, rows: size.rows });
    this.reflows++;
    regrid(this.screen, size.cols, size.rows);
    this.cleared();
    // What blessed's own resize does after its reallocation, minus its extra render: elements re-wrap.
    const emit = (el: Widgets.Node) => {
      el.emit('resize');
      el.children.forEach(emit);
    };
    this.screen.children.forEach(emit);
  }

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

  // ---- feed --------------------------------------------------------------------------------

  /** A feed event: held until the snapshot is in, then applied. */
  onEvent(e: EngineEvent): void {
    if (!this.model.loaded) {
      this.early.push(e);
      return;
    }
    this.apply(e);
  }

  /** Applies an event to the model (and the shown log), then asks for a frame. */
  apply(e: EngineEvent): void {
    const before = e.type === 'task' ? this.model.tasks.get(e.task.id)?.state : undefined;
    const change = this.model.apply(e);
    if (!change) return;
    if (e.type === 'task' && change === 'tasks' && isTerminal(e.task.state) && before !== e.task.state) this.taskEnded(e.task);
    if (change === 'log') {
      if (e.type !== 'log') return;
      const buf = this.log.buffer;
      if (!buf || buf.taskId !== e.taskId || !Array.isArray(e.lines) || typeof e.from !== 'number') return;
      const skipped = typeof e.skipped === 'number' && e.skipped > 0 ? e.skipped : 0;
      const r = buf.live(e.from, e.lines, skipped);
      if (!r.ok) {
        // A gap in the live feed: start over from the verb's full copy.
        const fresh = new LogBuffer(buf.taskId);
        fresh.live(e.from, e.lines, skipped);
        this.log.show(fresh, this.log.title);
        this.fetchLog();
      }
      this.log.changed();
    } else {
      this.syncLog();
    }
    this.scheduler.request();
  }

  /**
   * A task ended: its outcome replaces the status line when it is this user's task, or one on the
   * cluster selected (or task picked) here; it stays until the next message or key supersedes it.
   */
  taskEnded(t: Task): void {
    const mine = t.user === this.backend.principal.user;
    const looking = this.selected()?.name === t.cluster || this.pinnedTask === t.id || this.log.buffer?.taskId === t.id;
    if (!mine && !looking) return;
    const what = `${t.kind} ${clean(t.cluster, 60)}: task ${clean(t.id, 20)}`;
    const by = mine ? '' : ` (started by ${clean(t.user, 40)})`;
    if (t.state === 'succeeded') this.say(`✓ ${what} succeeded${by}`);
    else if (t.state === 'failed') this.say(`✗ ${what} failed${by}: ${plain(t.error?.reason ?? 'see its log', 200)}`, true);
    else this.say(`${what} ${t.state}${by}`, t.state !== 'cancelled');
  }

  // ---- selection and log target --------------------------------------------------------

  /** The visible clusters (sorted, filtered) and the selected row, keeping the selection by name. */
  rows(): { rows: Cluster[]; idx: number } {
    const rows = this.model.view(SORT_KEYS[this.sortIdx]!, this.filter, { desc: this.sortDesc, ...(this.mine ? { owner: this.backend.principal.user } : {}) });
    let idx = this.selName === undefined ? -1 : rows.findIndex((c) => c.name === this.selName);
    if (idx < 0) {
      idx = Math.max(0, Math.min(this.selIdx, rows.length - 1));
      this.selName = rows[idx]?.name;
    }
    this.selIdx = idx;
    return { rows, idx };
  }

  /** The selected cluster. */
  selected(): Cluster | undefined {
    const { rows, idx } = this.rows();
    return rows[idx];
  }

  /** Queued and running tasks, in panel order. */
  activeTasks(): Task[] {
    return this.model.activeTasks();
  }

  /** The selected task in the tasks panel (the picked one when it is still active). */
  selectedTask(): Task | undefined {
    const list = this.activeTasks();
    if (!list.length) return undefined;
    const pinned = this.pinnedTask ? list.findIndex((t) => t.id === this.pinnedTask) : -1;
    if (pinned >= 0) this.taskIdx = pinned;
    this.taskIdx = Math.max(0, Math.min(this.taskIdx, list.length - 1));
    return list[this.taskIdx];
  }

  /** Selects a table row (keys or mouse). */
  pickCluster(i: number, byMouse = false): void {
    const { rows } = this.rows();
    if (!rows.length) return;
    this.selIdx = Math.max(0, Math.min(i, rows.length - 1));
    this.selName = rows[this.selIdx]!.name;
    this.pinnedTask = undefined;
    if (byMouse) {
      this.focus = 'table';
      this.activity();
    }
    this.syncLog();
    this.scheduler.now();
  }

  /** Selects a task in the tasks panel (keys or mouse); its log is shown. */
  pickTask(i: number, byMouse = false): void {
    const list = this.activeTasks();
    if (!list.length) return;
    this.taskIdx = Math.max(0, Math.min(i, list.length - 1));
    this.pinnedTask = list[this.taskIdx]!.id;
    if (byMouse) {
      this.focus = 'tasks';
      this.activity();
    }
    this.syncLog();
    this.scheduler.now();
  }

  /** Which task's log to show: the picked task, else the selected cluster's latest task. */
  logTarget(): string | undefined {
    if (this.pinnedTask) return this.pinnedTask;
    const c = this.selected();
    return c ? this.model.latestTaskIdFor(c.name) : undefined;
  }

  /** Points the log pane at the current target, fetching its history the first time. */
  syncLog(): void {
    const id = this.logTarget();
    const cur = this.log.buffer;
    if ((cur?.taskId ?? undefined) === id) return;
    if (cur && cur.loaded && !cur.error && isTerminal(this.model.tasks.get(cur.taskId)?.state ?? 'running')) {
      this.logCache.delete(cur.taskId);
      this.logCache.set(cur.taskId, cur);
      while (this.logCache.size > LOG_CACHE) this.logCache.delete(this.logCache.keys().next().value!);
    }
    if (!id) {
      this.log.show(null, '');
      return;
    }
    const buf = this.logCache.get(id) ?? new LogBuffer(id);
    // A task seen from before its first line has no history to fetch: its lines all come live
    // (a fresh create shows its log at once, without a round trip while it floods).
    if (!buf.loaded && this.model.loaded && this.model.logStillEmpty(id)) buf.history([], undefined, 0);
    this.log.show(buf, '');
    if (!buf.loaded) this.fetchLog();
  }

  /** Fetches the end of the shown buffer's history, the session's `logs` of its last CAP lines (one request in flight). */
  fetchLog(): void {
    const buf = this.log.buffer;
    if (this.fetching || !buf || buf.loaded) return;
    const id = buf.taskId;
    this.fetching = id;
    const done = this.guard((j: { lines?: unknown; from?: unknown } | null, err?: unknown) => {
      this.fetching = null;
      if (this.log.buffer === buf && !buf.loaded) {
        let lines: string[] | null = null;
        let from = 0;
        let why: string | undefined;
        if (j) {
          if (Array.isArray(j.lines) && Number.isSafeInteger(j.from) && (j.from as number) >= 0) {
            lines = j.lines.map((l) => String(l));
            from = j.from as number;
          } else why = 'log unavailable: unexpected reply';
        } else why = `log unavailable: ${errorOf(err).message}`;
        const res = buf.history(lines, why, from);
        if (!res.ok) {
          const fresh = new LogBuffer(id);
          this.log.show(fresh, this.log.title);
        }
        this.log.changed();
        this.scheduler.request();
      }
      this.fetchLog();
    });
    sessionApi(this.backend).logs({ ref: id, tail: buf.cap }).then(
      (r) => done(r),
      (e) => done(null, e),
    );
  }


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



  // ---- drawing -------------------------------------------------------------------------------

  /**
   * Draws one frame: each panel is updated only if its text changed; renders only on change.
   * While the terminal has not taken the last frames (a slow or frozen client), no frame is drawn:
   * the next one comes when the output drains, so a client never makes the daemon buffer more than
   * OUTPUT_BACKLOG bytes of frames for it (and frames in between are skipped, not queued).
   */
  flush(): void {
    if (this.closed) return;
    const out = this.o.output as TuiOptions['output'] & { writableLength?: number };
    if ((out.writableLength ?? 0) > OUTPUT_BACKLOG) {
      if (!this.awaitingDrain) {
        this.awaitingDrain = true;
        out.once('drain', this.guard(() => {
          this.awaitingDrain = false;
          this.scheduler.request();
        }));
      }
      return;
    }
    if (this.pendingSize) this.reflow();
    const cols = this.screen.width as number;
    const rows = this.screen.height as number;
    const active = this.activeTasks();
    const now = Date.now();
    // Every session warns about clusters about to expire, whatever the filter or view.
    const soon = this.model.loaded ? expiringSoon(this.model.clusters.values(), now) : [];
    const warnings = bannerLines(soon, now, cols - 2, (c) => canExtend(this, c));
    const layout = computeLayout(cols, rows, { fullLog: this.fullLog, activeTasks: active.length, banner: warnings.length });
    const key = JSON.stringify(layout);
    let changed = false;
    if (key !== this.layoutKey) {
      this.layoutKey = key;
      this.layout = layout;
      changed = true;
      const main = !layout.tooSmall;
      place(this.header, layout.header, cols, main);
      place(this.table.frame, layout.table, cols, main);
      place(this.tasks.frame, layout.tasks, cols, main);
      place(this.log.frame, layout.log, cols, main);
      place(this.banner, layout.banner, cols, main);
      place(this.status, layout.status, cols, main);
      place(this.footer, layout.footer, cols, main);
      if (layout.tooSmall) {
        this.overlay.hide();
        this.small.show();
        this.small.setFront();
      } else this.small.hide();
    }
    if (layout.tooSmall) {
      changed = setText(this.small, tooSmallText(cols, rows)) || changed;
      this.wake.stop();
      if (changed) this.draw();
      return;
    }
    const { rows: clusters, idx } = this.rows();
    const me = this.backend.principal;
    const notSaved = this.model.loaded ? storageNotice(this.model.storage) : '';
    const hdr = [
      '{bold}kindler{/bold}',
      // Second, so that a narrow terminal still shows it.
      ...(notSaved ? [`{red-bg}{bold}${escapeTags(notSaved)}{/bold}{/red-bg}`] : []),
      escapeTags(clean(this.backend.host, 60)),
      `${escapeTags(clean(me.user, 40))} (${escapeTags(clean(me.role, 20))})`,
      this.model.loaded ? escapeTags(presence(this.model.sessions, me.user)) : 'connecting…',
    ].join(' │ ');
    changed = setText(this.header, ` ${hdr}`) || changed;

    const sortKey = SORT_KEYS[this.sortIdx]!;
    const total = this.model.clusters.size;
    const narrowed = Boolean(this.filter) || this.mine;
    const label = ` clusters ${narrowed ? `${clusters.length}/${total}` : `(${total})`}${this.mine ? ' · mine' : ''} · sort: ${sortKey}${this.sortDesc ? '↓' : '↑'}${this.filter ? ` · filter: ${truncate(plain(this.filter), 20)}` : ''} `;
    const emptyText = !this.model.loaded
      ? 'loading…'
      : total === 0
        ? `no clusters${this.backend.may('create') ? ' (press c to create one)' : ''}`
        : this.mine && !this.filter
          ? 'you own no cluster (m shows all)'
          : `no cluster matches the filter (${this.mine ? 'm shows all, ' : ''}esc clears it)`;
    if (layout.table.height > 0) {
      changed = this.table.update({ clusters, selected: idx, label, emptyText, focused: this.focus === 'table', width: cols, nowMs: now, sort: { key: sortKey, desc: this.sortDesc } }) || changed;
      this.selectedTask();
      changed = this.tasks.update({ tasks: active, selected: this.taskIdx, focused: this.focus === 'tasks', width: cols, nowMs: now }) || changed;
    }

    const shown = this.log.buffer ? this.model.tasks.get(this.log.buffer.taskId) : undefined;
    if (!this.log.buffer) {
      this.log.placeholder = !this.model.loaded ? 'connecting…' : this.selected() ? 'no tasks for this cluster yet' : 'no cluster selected';
    } else if (!this.log.buffer.loaded) this.log.placeholder = `loading the log of ${clean(this.log.buffer.taskId, 20)}…`;
    this.log.title = this.log.buffer
      ? shown
        ? `${clean(shown.id, 20)} ${shown.kind} ${clean(shown.cluster, 40)} · ${shown.state}${shown.state === 'running' ? ` ${Math.round(Number(shown.progress) || 0)}%` : ''}`
        : clean(this.log.buffer.taskId, 20)
      : '';
    changed = this.log.update({ focused: this.focus === 'log' || this.fullLog, width: cols }) || changed;

    if (layout.banner.height > 0) changed = setText(this.banner, warnings.map((l) => ` ${l}`).join('\n')) || changed;
    changed = setText(this.status, this.statusText(cols)) || changed;
    changed = setText(this.footer, ` ${this.footerText(cols - 2)}`) || changed;

    const d = this.dialog;
    if (d) {
      const view =
        d.kind === 'help'
          ? { title: 'keys', lines: helpLines(this.helpFlags(), helpWidth(cols)), size: 'dialog' as const }
          : d.kind === 'details'
            ? { title: `cluster ${clean(d.name, 60)}`, lines: d.lines, size: 'large' as const }
            : d.kind === 'reconcile'
              ? { title: 'reconcile', lines: d.lines, size: 'dialog' as const }
              : d.kind === 'audit'
                ? { title: 'audit (newest last)', head: d.head, lines: d.lines, size: 'large' as const }
                : d.kind === 'create'
                  ? { title: 'create a cluster', lines: d.form.lines(Math.min(cols - 4, CREATE_WIDTH) - 2), size: 'dialog' as const, width: CREATE_WIDTH }
                  : d.kind === 'confirm'
                    ? { title: d.title, lines: d.lines, size: 'dialog' as const }
                    : { title: 'delete a cluster', lines: d.prompt.lines(), size: 'dialog' as const };
      changed = this.overlay.update({ ...view, cols, rows }) || changed;
    } else changed = this.overlay.hide() || changed;

    if (changed) this.draw();
    this.wake.at(this.nextTimeChange(now, clusters, active, layout));
  }

  /**
   * When a time on screen next reads differently by itself: an EXPIRES cell of a row on screen, a
   * running task's elapsed time in the tasks panel, a warning's countdown, or any cluster entering
   * or leaving the warning window (seen in every view). Infinity: nothing on screen changes with the
   * clock. The frame comes then, and only then (not every second).
   */
  nextTimeChange(now: number, clusters: Cluster[], active: Task[], layout: Layout): number {
    let next = Infinity;
    if (layout.table.height > 0) {
      const [first, end] = this.table.visible;
      for (let i = first; i < end && i < clusters.length; i++) next = Math.min(next, untilChangesAt(clusters[i]!.expiresAt, now));
    }
    if (layout.tasks.height > 0) for (const t of active) if (t.state === 'running') next = Math.min(next, sinceChangesAt(t.startedAt ?? t.createdAt, now));
    for (const at of this.model.expiries()) {
      if (at <= now) continue;
      if (at - now > TTL_WARN_MS) {
        // Sorted: every later one enters the window later still.
        next = Math.min(next, at - TTL_WARN_MS);
        break;
      }
      next = Math.min(next, countdownChangesAt(at, now));
    }
    return next;
  }

  /**
   * Renders and sends the frame at once. blessed queues a frame's bytes until setImmediate: with
   * many sessions redrawn for one event (timers that fire together), no session got a byte until
   * every session had rendered. Flushing here sends each frame as soon as it is drawn.
   */
  draw(): void {
    const program = this.screen.program as unknown as { cols: number; rows: number; flush(): void; _buf?: string };
    if (!this.drawnState) this.cleared();
    const key = frameKey(this.screen, this.o.noColor ? 'mono' : 'colour');
    if (key === this.drawnKey) return;
    const to = sharedFrames.state(key);
    const from = this.drawnState!;
    const shared = to.snap && sharedFrames.enabled ? sharedFrames.frame(from.id, to.id) : undefined;
    if (shared !== undefined && !VERIFY_FRAMES) {
      // Another session drew this very step: its bytes, without rendering here.
      sharedFrames.stats.hits++;
      program.flush();
      if ((this.o.output as { writable?: boolean }).writable !== false) this.o.output.write(shared);
      if (!this.staleGrids) dropGrids(this.screen);
      this.staleGrids = to.snap;
      this.drawnState = to;
      this.drawnKey = key;
      return;
    }
    sharedFrames.stats.misses++;
    // Checking: render from what a session that took the last frame shared would hold.
    if (VERIFY_FRAMES && shared !== undefined && from.snap && !this.staleGrids) {
      dropGrids(this.screen);
      this.staleGrids = from.snap;
    }
    if (this.staleGrids) restoreGrids(this.screen, this.staleGrids);
    this.staleGrids = null;
    applyPending(this.screen);
    // Whatever blessed had queued goes first, so that the frame's bytes are the frame alone.
    program.flush();
    this.screen.render();
    const bytes = program._buf ?? '';
    program.flush();
    if (shared !== undefined) {
      sharedFrames.stats.verified++;
      if (shared !== bytes) throw new Error('a shared frame differs from the rendered one');
    }
    sharedFrames.put(from.id, to.id, bytes);
    if (!to.snap) sharedFrames.keep(key, to, snapshotGrids(this.screen, program.cols, program.rows));
    this.drawnState = to;
    this.drawnKey = key;
  }

  /** The terminal was cleared with blessed's grids (a new session, a reflow, Ctrl-L): blank cells at this size. */
  cleared(): void {
    const program = this.screen.program as unknown as { cols: number; rows: number };
    const key = `\x00blank ${program.cols}x${program.rows}`;
    const st = sharedFrames.state(key);
    this.staleGrids = null;
    if (!st.snap) sharedFrames.keep(key, st, snapshotGrids(this.screen, program.cols, program.rows));
    this.drawnState = st;
    this.drawnKey = key;
  }

  /** The status line: idle warning, input line, or the last message. */
  statusText(cols: number): string {
    let s: string;
    if (this.idleText) s = `{yellow-fg}{bold}${escapeTags(truncate(this.idleText, cols - 2))}{/bold}{/yellow-fg}`;
    else if (this.input) {
      const p = this.input.kind === 'filter' ? 'filter clusters: ' : this.input.kind === 'search' ? 'search the log: ' : ':';
      s = `{bold}${p}{/bold}${this.input.editor.show(true)}`;
      if (this.input.error) s += `  {red-fg}✗ ${escapeTags(truncate(this.input.error, Math.max(10, cols - 8 - this.input.editor.value.length)))}{/red-fg}`;
    } else if (this.message) {
      const t = escapeTags(truncate(this.message.text, cols - 2));
      s = this.message.error ? `{red-fg}${t}{/red-fg}` : t;
    } else {
      // A failed cluster's last error, while it is selected and nothing else is said.
      const c = this.layout.table.height > 0 && !this.dialog ? this.selected() : undefined;
      s = c?.actual === 'failed' ? `{red-fg}✗ ${escapeTags(truncate(`${clean(c.name, 60)} last error: ${clean(c.lastError ?? 'see its last task log')}`, cols - 4))}{/red-fg}` : '';
    }
    return ` ${s}`;
  }

  /** The key hints valid right now, for this user. */
  footerText(width: number): string {
    const d = this.dialog;
    if (d?.kind === 'create' || d?.kind === 'delete') return '{bold}enter{/bold} confirm  {bold}esc{/bold} cancel  {bold}Ctrl-C{/bold} quit';
    if (d?.kind === 'confirm') return '{bold}y{/bold} yes  {bold}n/esc{/bold} no';
    if (d) return '{bold}↑↓{/bold} scroll  {bold}q/esc{/bold} close';
    if (this.input?.kind === 'command') return `{bold}enter{/bold} run  {bold}esc{/bold} cancel  ${escapeTags(commandNames(this.helpFlags()).join(' '))}`;
    if (this.input) return '{bold}enter{/bold} apply  {bold}esc{/bold} cancel';
    const c = this.selected();
    const canCancel = !this.fullLog && this.focus !== 'log' && Boolean(cancelTarget(this));
    return fitHints(
      mainHints({
        focus: this.focus,
        fullLog: this.fullLog,
        hasCluster: Boolean(c) || (this.focus === 'tasks' && Boolean(this.selectedTask())),
        canCreate: this.backend.may('create'),
        canDelete: Boolean(c && this.backend.may('delete', c.owner)),
        ...(toggleFor(this, c) ? { toggle: toggleFor(this, c)! } : {}),
        canCancel,
        canExtend: canExtend(this, c),
        canReconcile: this.backend.may('reconcile'),
        following: this.log.follow,
        searching: Boolean(this.log.query),
      }),
      width,
    );
  }
}
