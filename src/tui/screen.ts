/**
 * What a session does to blessed's screen and the terminal streams: the listeners blessed leaves on
 * the streams, NO_COLOR on the cell grid, and the grid at a new size (resize() coalesces window
 * changes, reflow() applies the last one in the next frame; regrid() is blessed's alloc() without garbage).
 */
import type { Widgets } from 'blessed';
import { fillGrids, type Grid } from './frames.js';
import { capSize } from './layout.js';
import type { AppState } from './state.js';

export type Listeners = [string | symbol, (...a: unknown[]) => void][];

export function listenersOf(e: NodeJS.EventEmitter): Listeners {
  return e.eventNames().flatMap((n) => e.listeners(n).map((l) => [n, l as (...a: unknown[]) => void] as Listeners[number]));
}

/** The listeners on `e` that are not in `before` (what blessed's screen constructor attached). */
export function addedSince(e: NodeJS.EventEmitter, before: Listeners): Listeners {
  return listenersOf(e).filter(([n, l]) => !before.some(([bn, bl]) => bn === n && bl === l));
}

/** Removes exactly these listeners, if still attached (never anyone else's). */
export function removeListeners(e: NodeJS.EventEmitter, added: Listeners): void {
  for (const [n, l] of added) e.removeListener(n, l);
}

/**
 * blessed's screen.alloc() for a new size, without its garbage: alloc() makes two new arrays per
 * cell (72,000 at 300x120) on every reflow; this blanks the cells already there in place (fillGrids:
 * the difference comes from the spare cells or goes to them), then clears the terminal as alloc() does.
 */
export function regrid(screen: Widgets.Screen, cols: number, rows: number): void {
  fillGrids(screen, cols, rows, null);
  (screen.program as unknown as { clear(): void }).clear();
}

/** blessed's default fg/bg in a cell's attribute (bits 9-17 and 0-8); attribute flags sit above bit 18. */
const DEFAULT_COLOURS = (0x1ff << 9) | 0x1ff;

/**
 * NO_COLOR: every cell is drawn with the terminal's default colours; bold, underline and reverse
 * video (the selection) stay. Done on the cell grid just before blessed compares and writes it, so
 * no colour of any widget, tag or style can reach the terminal.
 */
export function dropColours(screen: Widgets.Screen): void {
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

/**
 * The terminal's new size, capped at maxSize. A lone resize is drawn at once; one within 16 ms of
 * the last reflow waits for the frame 16 ms after it, and any number of calls before that frame
 * make one reflow, to the last size: a burst of window changes is at most two reflows (its first
 * and its last), a continuous storm at most 60 a second, all within the render budget.
 */
export function resize(app: AppState, cols: number, rows: number): void {
  if (app.closed || !(cols > 0 && rows > 0)) return;
  const size = capSize(cols, rows, app.maxSize);
  const program = app.screen.program as unknown as { cols: number; rows: number };
  // Back to the size on screen (or still over the cap): nothing to draw, and a pending size is void.
  app.pendingSize = program.cols === size.cols && program.rows === size.rows ? null : size;
  if (!app.pendingSize) return;
  if (Date.now() - app.lastReflowAt >= REFLOW_GAP_MS) app.scheduler.now();
  else app.scheduler.request(app.lastReflowAt + REFLOW_GAP_MS - Date.now());
}

/** Applies the pending size: a new cell grid (blessed clears the terminal), drawn by the frame that called it. */
export function reflow(app: AppState): void {
  const size = app.pendingSize;
  app.pendingSize = null;
  const program = app.screen.program as unknown as { cols: number; rows: number };
  if (!size || (program.cols === size.cols && program.rows === size.rows)) return;
  program.cols = size.cols;
  program.rows = size.rows;
  Object.assign(app.o.output, { columns: size.cols, rows: size.rows });
  app.reflows++;
  // Grids let go of for shared frames stay so: the blank screen's snapshot stands for them (cleared()),
  // and the frame either takes shared bytes or restores it; making blank grids here would be garbage.
  if (app.staleGrids) (app.screen.program as unknown as { clear(): void }).clear();
  else regrid(app.screen, size.cols, size.rows);
  app.cleared();
  // What blessed's own resize does after its reallocation, minus its extra render: elements re-wrap.
  const emit = (el: Widgets.Node) => {
    el.emit('resize');
    el.children.forEach(emit);
  };
  app.screen.children.forEach(emit);
}
