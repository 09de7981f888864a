/**
 * Where each panel goes for a terminal size (pure). Below 80x24 the layout is replaced by a
 * "terminal too small" view.
 */

/** Smallest terminal the layout is drawn in. */
export const MIN_COLS = 80;
/** Smallest terminal the layout is drawn in. */
export const MIN_ROWS = 24;

/** A terminal size in cells. */
export interface TermSize {
  cols: number;
  rows: number;
}

/**
 * Largest terminal the TUI draws: a bigger one gets a frame of this size in its top left corner.
 * A frame's cost (cells to lay out, compare and send) grows with cols x rows; without a cap one
 * session at 1000x1000 cost ~400 ms per reflow and blocked every other session and verb.
 */
export const MAX_SIZE: TermSize = { cols: 300, rows: 120 };

/** Whole cells, at least 1 and at most `max`; anything that is not a positive number becomes `fallback`. */
export function capSize(cols: number, rows: number, max: TermSize = MAX_SIZE, fallback: TermSize = { cols: 80, rows: 24 }): TermSize {
  const one = (n: number, cap: number, dflt: number) => (Number.isFinite(n) && n >= 1 ? Math.min(Math.floor(n), Math.max(1, Math.floor(cap))) : dflt);
  return { cols: one(cols, max.cols, Math.min(fallback.cols, max.cols)), rows: one(rows, max.rows, Math.min(fallback.rows, max.rows)) };
}

/** A full-width band of rows. Height 0 means hidden. */
export interface Band {
  top: number;
  height: number;
}

/** The bands of the main view. */
export interface Layout {
  tooSmall: boolean;
  cols: number;
  rows: number;
  header: Band;
  table: Band;
  tasks: Band;
  log: Band;
  /** TTL warning lines above the status line (height 0 when none). */
  banner: Band;
  status: Band;
  footer: Band;
}

/** Most TTL warning lines shown at once. */
export const MAX_BANNER = 3;

/** Computes the bands: header, cluster table, tasks (sized to the active tasks), log, warnings, status line, keys. */
export function computeLayout(cols: number, rows: number, o: { fullLog: boolean; activeTasks: number; banner?: number }): Layout {
  const tooSmall = cols < MIN_COLS || rows < MIN_ROWS;
  const header = { top: 0, height: 1 };
  const status = { top: rows - 2, height: 1 };
  const footer = { top: rows - 1, height: 1 };
  const bannerH = tooSmall ? 0 : Math.max(0, Math.min(MAX_BANNER, Math.floor(o.banner ?? 0)));
  const banner = { top: rows - 2 - bannerH, height: bannerH };
  const body = Math.max(0, rows - 3 - bannerH);
  if (o.fullLog || tooSmall) {
    return { tooSmall, cols, rows, header, table: { top: 1, height: 0 }, tasks: { top: 1, height: 0 }, log: { top: 1, height: body }, banner, status, footer };
  }
  const maxTaskLines = Math.max(1, Math.floor(body / 5));
  const tasksH = 2 + Math.min(maxTaskLines, Math.max(1, o.activeTasks));
  const tableH = Math.max(6, Math.ceil((body - tasksH) * 0.55));
  const logH = Math.max(3, body - tasksH - tableH);
  return {
    tooSmall,
    cols,
    rows,
    header,
    table: { top: 1, height: tableH },
    tasks: { top: 1 + tableH, height: tasksH },
    log: { top: 1 + tableH + tasksH, height: logH },
    banner,
    status,
    footer,
  };
}

/** The message shown instead of the layout when the terminal is too small. */
export function tooSmallText(cols: number, rows: number): string {
  return `terminal too small (need ${MIN_COLS}x${MIN_ROWS}, have ${cols}x${rows})`;
}
