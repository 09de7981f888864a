/**
 * Frames shared between sessions. What blessed writes for a frame depends only on the cells the
 * terminal shows (its previous frame) and the cells of the new one, and those depend only on what
 * the widgets hold: every visible element's kind, place, style and content, the size and the colour
 * mode (`frameKey`). So when one session has drawn the step from screen A to screen B, another
 * session going from A to B gets the same bytes without rendering: 100 sessions watching the same
 * view cost one blessed render and 99 writes for an update, not 100 renders.
 *
 * A session that took a shared frame leaves its own blessed cell grids behind; it keeps the grids of
 * the screen it now shows (a snapshot, shared too) and copies them back before it next renders by
 * itself. Snapshots and frame bytes are bounded (least recently used go first).
 * KINDLER_TUI_VERIFY_FRAMES=1 renders every shared frame anyway and fails the session if the bytes
 * differ (npm test runs with it; test/tui-frames.test.ts checks the shared path itself against
 * sessions that render alone).
 */
import type { Widgets } from 'blessed';
import { contentOf } from './widgets.js';

/** Both cell grids of a screen (attributes and characters), as blessed holds them after a frame. */
export interface GridSnapshot {
  cols: number;
  rows: number;
  attrs: Int32Array;
  chars: string[];
  oattrs: Int32Array;
  ochars: string[];
}

/** One screen as drawn: its id (for frame lookups) and the grids after it (once someone drew it). */
export interface FrameState {
  readonly id: number;
  snap: GridSnapshot | null;
}

/** One cell of blessed's grids: attribute and character. */
export type Cell = [number, string];
/** One of blessed's cell grids (`lines`, `olines`), lines flagged dirty. */
export type Grid = (Cell[] & { dirty?: boolean })[];
interface ScreenGrids {
  lines: Grid;
  olines: Grid;
  dattr: number;
}

/** Whether shared frames are checked against a real render (tests). */
export const VERIFY_FRAMES = process.env.KINDLER_TUI_VERIFY_FRAMES === '1';

/** Cells (both grids counted) of snapshots kept: ~12 bytes each, so ~24 MB at most. */
const MAX_SNAPSHOT_CELLS = 2_000_000;
/** Characters of screen keys kept. */
const MAX_KEY_CHARS = 8_000_000;
/** Characters of frame bytes kept. */
const MAX_FRAME_CHARS = 4_000_000;

/**
 * Cells let go of (a dropped grid, the part of a line or grid cut off at a smaller size), for the
 * next grid that needs cells to take instead of making new ones. Without it, every window change of a
 * session on shared frames made 72,000 small arrays at 300x120 (its grids were dropped, so regrid had
 * none to reuse): a resize storm of 8 such sessions made ~600 MB of garbage a second and grew the
 * daemon by 200+ MB before a full collection. Bounded: at most two screens at the size cap (~6 MB).
 */
const spare: Cell[] = [];
const MAX_SPARE_CELLS = 2 * 2 * 300 * 120;

/** A cell holding (attr, ch): a spare one if any. */
function takeCell(attr: number, ch: string): Cell {
  const c = spare.pop();
  if (!c) return [attr, ch];
  c[0] = attr;
  c[1] = ch;
  return c;
}

/** Sets an array of cells (a line) to `n` cells, keeping the ones it cuts off as spares. */
function cutLine(line: Cell[], n: number): void {
  for (let i = n; i < line.length && spare.length < MAX_SPARE_CELLS; i++) spare.push(line[i]!);
  if (line.length > n) line.length = n;
}

/** Sets a grid to `rows` lines, keeping the cells of the lines it cuts off as spares. */
function cutGrid(grid: Cell[][], rows: number): void {
  for (let y = rows; y < grid.length; y++) cutLine(grid[y]!, 0);
  if (grid.length > rows) grid.length = rows;
}

/** How many spare cells there are (tests). */
export function spareCells(): number {
  return spare.length;
}

/** Copies both grids of a screen. */
export function snapshotGrids(screen: Widgets.Screen, cols: number, rows: number): GridSnapshot {
  const s = screen as unknown as ScreenGrids;
  const n = cols * rows;
  const snap: GridSnapshot = { cols, rows, attrs: new Int32Array(n), chars: new Array<string>(n), oattrs: new Int32Array(n), ochars: new Array<string>(n) };
  for (let y = 0; y < rows; y++) {
    const line = s.lines[y];
    const oline = s.olines[y];
    for (let x = 0; x < cols; x++) {
      const i = y * cols + x;
      const c = line?.[x];
      const o = oline?.[x];
      snap.attrs[i] = c ? c[0] : s.dattr;
      snap.chars[i] = c ? c[1] : ' ';
      snap.oattrs[i] = o ? o[0] : s.dattr;
      snap.ochars[i] = o ? o[1] : ' ';
    }
  }
  return snap;
}

/**
 * Lets go of a screen's cell grids (two small arrays per cell: ~10,000 objects at 120x40) while it
 * takes shared frames: restoreGrids makes them again when it next renders by itself. 100 sessions
 * on one view then hold one set of grids, not 100, which is most of what a full garbage collection
 * of the daemon has to walk.
 */
export function dropGrids(screen: Widgets.Screen): void {
  const s = screen as unknown as ScreenGrids;
  cutGrid(s.lines, 0);
  cutGrid(s.olines, 0);
  s.lines = [];
  s.olines = [];
}

/** Puts a snapshot back into a screen's grids (same size), every line clean, as right after a frame. */
export function restoreGrids(screen: Widgets.Screen, snap: GridSnapshot): void {
  fillGrids(screen, snap.cols, snap.rows, snap);
}

/**
 * Sets both grids of a screen to `cols` x `rows`, every line clean: each cell from `snap` (same
 * size), or blank without one. Cells already there are reused; the difference is taken from the
 * spare cells or given to them.
 */
export function fillGrids(screen: Widgets.Screen, cols: number, rows: number, snap: GridSnapshot | null): void {
  const s = screen as unknown as ScreenGrids;
  for (const [grid, attrs, chars] of [
    [s.lines, snap?.attrs, snap?.chars],
    [s.olines, snap?.oattrs, snap?.ochars],
  ] as const) {
    cutGrid(grid, rows);
    for (let y = 0; y < rows; y++) {
      const line = grid[y] ?? (grid[y] = []);
      cutLine(line, cols);
      for (let x = 0; x < cols; x++) {
        const i = y * cols + x;
        const a = attrs ? attrs[i]! : s.dattr;
        const ch = chars ? chars[i]! : ' ';
        const c = line[x];
        if (c) {
          c[0] = a;
          c[1] = ch;
        } else line[x] = takeCell(a, ch);
      }
      line.dirty = false;
    }
  }
}

interface StyleLike {
  [k: string]: unknown;
}

function styleKey(st: StyleLike | undefined, depth = 0): string {
  if (!st || typeof st !== 'object' || depth > 2) return '';
  let k = '';
  for (const name of Object.keys(st)) {
    const v = st[name];
    if (v === undefined || typeof v === 'function') continue;
    k += typeof v === 'object' && v !== null ? `${name}{${styleKey(v as StyleLike, depth + 1)}}` : `${name}=${String(v)};`; // eslint-disable-line @typescript-eslint/no-base-to-string -- objects took the branch above
  }
  return k;
}

/**
 * Everything of a screen that reaches its cells: per element (in drawing order) its kind, whether it
 * is shown, its place, style, border and content; plus the size, the colour mode and the cursor.
 */
export function frameKey(screen: Widgets.Screen, extra: string): string {
  const program = screen.program as unknown as { cols: number; rows: number; cursorHidden?: boolean };
  let k = `${extra}\x02${program.cols}x${program.rows}\x02${program.cursorHidden ? 1 : 0}`;
  const walk = (el: Widgets.Node) => {
    const e = el as unknown as {
      type?: string;
      hidden?: boolean;
      position?: Record<string, unknown>;
      style?: StyleLike;
      border?: { type?: string };
      content?: string;
      children: Widgets.Node[];
      align?: string;
      valign?: string;
      _label?: Widgets.Node;
      _kLabel?: string;
    };
    if (e.hidden) {
      k += `\x01${e.type}:h`;
      return;
    }
    const p = e.position ?? {};
    k += `\x01${e.type}:${String(p.left)},${String(p.top)},${String(p.right)},${String(p.bottom)},${String(p.width)},${String(p.height)}|${e.align ?? ''}${e.valign ?? ''}|${e.border?.type ?? ''}|${styleKey(e.style)}|${contentOf(el)}`;
    // A label set through setLabel counts by its text (blessed may not have been handed it yet).
    const label = e._kLabel !== undefined ? e._label : undefined;
    if (label) k += `\x01label:${e._kLabel}`;
    for (const c of e.children) if (c !== label) walk(c);
  };
  for (const c of screen.children) walk(c);
  return k;
}

/** The shared store of screens (by key) and the frames between them. */
export class FrameCache {
  private readonly states = new Map<string, FrameState>();
  private keyChars = 0;
  private snapCells = 0;
  private readonly snapOwners = new Map<number, string>();
  private readonly frames = new Map<string, string>();
  private frameChars = 0;
  private nextId = 1;
  readonly stats = { hits: 0, misses: 0, verified: 0 };
  /** Off: every frame is rendered (a benchmark timing the render itself turns it off). */
  enabled = true;

  /** Forgets every screen and frame (tests: a run that must not find another run's frames). */
  clear(): void {
    this.states.clear();
    this.snapOwners.clear();
    this.frames.clear();
    this.keyChars = this.snapCells = this.frameChars = 0;
  }

  /** The state for a screen key (made on first sight). */
  state(key: string): FrameState {
    let s = this.states.get(key);
    if (s) {
      this.states.delete(key);
      this.states.set(key, s);
      return s;
    }
    s = { id: this.nextId++, snap: null };
    this.states.set(key, s);
    this.keyChars += key.length;
    while (this.keyChars > MAX_KEY_CHARS && this.states.size > 1) {
      const [oldKey, old] = this.states.entries().next().value as [string, FrameState];
      this.states.delete(oldKey);
      this.keyChars -= oldKey.length;
      if (old.snap) this.snapCells -= 2 * old.snap.cols * old.snap.rows;
      this.snapOwners.delete(old.id);
    }
    return s;
  }

  /** Keeps the grids drawn for a state (bounded: the oldest states lose theirs first). */
  keep(key: string, s: FrameState, snap: GridSnapshot): void {
    if (s.snap) return;
    s.snap = snap;
    this.snapCells += 2 * snap.cols * snap.rows;
    this.snapOwners.set(s.id, key);
    for (const [id, k] of this.snapOwners) {
      if (this.snapCells <= MAX_SNAPSHOT_CELLS || id === s.id) break;
      const st = this.states.get(k);
      if (st?.snap) {
        this.snapCells -= 2 * st.snap.cols * st.snap.rows;
        st.snap = null;
      }
      this.snapOwners.delete(id);
    }
  }

  /** The bytes of the frame from state `from` to state `to`, if some session drew it. */
  frame(from: number, to: number): string | undefined {
    const k = `${from}>${to}`;
    const f = this.frames.get(k);
    if (f === undefined) return undefined;
    this.frames.delete(k);
    this.frames.set(k, f);
    return f;
  }

  /** Records the bytes of a frame from `from` to `to`. */
  put(from: number, to: number, bytes: string): void {
    const k = `${from}>${to}`;
    if (this.frames.has(k) || bytes.length > MAX_FRAME_CHARS / 4) return;
    this.frames.set(k, bytes);
    this.frameChars += bytes.length;
    while (this.frameChars > MAX_FRAME_CHARS) {
      const [oldK, old] = this.frames.entries().next().value as [string, string];
      this.frames.delete(oldK);
      this.frameChars -= old.length;
    }
  }
}

/** The one cache of this process (all sessions of the daemon). */
export const sharedFrames = new FrameCache();
