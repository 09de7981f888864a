/**
 * Shared blessed construction helpers. Every widget is created with an explicit parent (never the
 * global screen: another session's screen may be the "current" one), and only plain blessed
 * widgets are used (no contrib canvases to re-attach after a resize).
 */
import blessed from 'blessed';
import type { Widgets } from 'blessed';
import type { Band } from './layout.js';
import { displayWidth } from './text.js';

/** Border colours for a focused and an unfocused panel. */
export const FOCUS_FG = 'cyan';
/** Border colour for a panel without focus. */
export const BLUR_FG = 'gray';

/** A bordered panel box (the frame of a table, the tasks or the log); content is drawn as is (no tags, no wrap). */
export function panel(parent: Widgets.Node, label: string): Widgets.BoxElement {
  const box = blessed.box({
    parent,
    left: 0,
    top: 0,
    width: 10,
    height: 3,
    border: { type: 'line' },
    label,
    tags: false,
    wrap: false,
    style: { border: { fg: BLUR_FG }, label: { bold: true } },
  });
  unhookLabel(box);
  return box;
}

const noop = (): void => undefined;

/**
 * blessed's label keeps its place on a *scrolling* box by re-rendering the whole screen: on every
 * 'scroll' (at once) and on every 'resize' of the box (on setImmediate). None of our labelled boxes
 * scroll (content is sliced instead), so those renders only cost CPU: after each layout change a
 * session drew its screen once more per labelled panel. The label's place (top -1, left 1 inside
 * the border) is fixed when it is created, so the hooks are dropped. Idempotent.
 */
export function unhookLabel(el: Widgets.BlessedElement): void {
  const e = el as unknown as { _labelResize?: (...a: unknown[]) => void; _labelScroll?: (...a: unknown[]) => void };
  if (e._labelResize && e._labelResize !== noop) {
    el.removeListener('resize', e._labelResize);
    e._labelResize = noop;
  }
  if (e._labelScroll && e._labelScroll !== noop) {
    el.removeListener('scroll', e._labelScroll);
    e._labelScroll = noop;
  }
}

/** A one-line text box (tags on: callers escape untrusted text). */
export function line(parent: Widgets.Node, style: Widgets.Types.TStyle = {}): Widgets.BoxElement {
  return blessed.box({ parent, left: 0, top: 0, width: 10, height: 1, tags: true, wrap: false, style });
}

/** Places a widget on a full-width band (hidden when the band is empty). */
export function place(el: Widgets.BlessedElement, band: Band, cols: number, visible = true): void {
  if (!visible || band.height <= 0) {
    if (!el.hidden) el.hide();
    return;
  }
  el.top = band.top;
  el.left = 0;
  el.width = cols;
  el.height = band.height;
  if (el.hidden) el.show();
}

/** Sets a panel's border colour for focus; returns whether it changed. */
export function setFocusStyle(box: Widgets.BoxElement, focused: boolean): boolean {
  const fg = focused ? FOCUS_FG : BLUR_FG;
  const border = (box.style as { border?: { fg?: string } }).border;
  if (!border || border.fg === fg) return false;
  border.fg = fg;
  return true;
}

/**
 * What a widget is to show and blessed does not know yet. blessed parses content (tags, widths) as
 * soon as it is set; a frame another session has already drawn (frames.ts) never renders here, so
 * that work waits until this screen renders by itself (`applyPending`) or something reads it.
 */
interface Pending {
  _kContent?: string;
  _kLabel?: string;
  /** Content not handed to blessed yet. */
  _kPending?: string;
  /** A label not handed to blessed yet. */
  _kPendingLabel?: string;
  _kGetContent?: () => string;
}

/** Content as it will be drawn: the pending text, else what blessed holds. */
export function contentOf(el: Widgets.Node): string {
  const p = el as unknown as Pending & { content?: string };
  return p._kPending ?? p.content ?? '';
}

/** Hands pending content and labels of `el` and its children to blessed (before it renders). */
export function applyPending(el: Widgets.Node): void {
  const p = el as unknown as Pending & Widgets.BoxElement;
  if (p._kPending !== undefined) {
    const text = p._kPending;
    p._kPending = undefined;
    p.setContent(text);
  }
  if (p._kPendingLabel !== undefined) {
    const label = p._kPendingLabel;
    p._kPendingLabel = undefined;
    p.setLabel(label);
    unhookLabel(p);
  }
  for (const c of el.children) applyPending(c);
}

function defer(el: Widgets.BlessedElement): Pending {
  const p = el as unknown as Pending & Widgets.BlessedElement;
  if (!p._kGetContent) {
    // Whoever reads the content gets what is to be shown.
    const get = el.getContent.bind(el);
    p._kGetContent = get;
    el.getContent = () => {
      applyPending(el);
      return get();
    };
  }
  return p;
}

/** Sets content only when it differs; returns whether it changed. */
export function setText(el: Widgets.BlessedElement, text: string): boolean {
  const p = el as unknown as Pending;
  if (p._kContent === text) return false;
  p._kContent = text;
  defer(el)._kPending = text;
  return true;
}

/** Sets a panel label only when it differs; returns whether it changed. */
export function setLabel(el: Widgets.BoxElement, label: string): boolean {
  const k = el as unknown as Pending;
  if (k._kLabel === label) return false;
  k._kLabel = label;
  defer(el)._kPendingLabel = label;
  return true;
}

/** Mouse data blessed passes to 'click' handlers (screen coordinates, 0-based). */
interface MouseData {
  x: number;
  y: number;
}

/** Inverse video on and off (what a selected row is drawn with); bold on and off (a header). */
const INVERSE = '\x1b[7m';
const INVERSE_OFF = '\x1b[27m';
const BOLD = '\x1b[1m';
const BOLD_OFF = '\x1b[22m';

/** Widths of rows lately selected (the same rows are selected in many sessions, frame after frame). */
const rowWidths = new Map<string, number>();

/** displayWidth of a row, remembered. */
function rowWidth(r: string): number {
  let w = rowWidths.get(r);
  if (w === undefined) {
    if (rowWidths.size >= 512) rowWidths.clear();
    rowWidths.set(r, (w = displayWidth(r)));
  }
  return w;
}

/** A progress bar inside a selected (reverse video) row is drawn without reverse video: reversed, █ became a gap and ░ the fill. */
function keepBars(row: string): string {
  return row.replace(/[█░]+/g, (bar) => `${INVERSE_OFF}${bar}${INVERSE}`);
}

/**
 * A selectable list of rows drawn as the content of its panel (one box, an optional bold header
 * line above the rows): only the rows that fit are in the content, the selected one in inverse
 * video. (A blessed list made a child box per row, re-created on every change, each drawn over
 * the list's own fill, itself drawn over the panel's: a frame cost several times more.)
 * A click picks a row, a click on the picked row is an action, the wheel moves the pick by 2;
 * keys are handled by the TUI itself. `sync` says whether anything on screen changed.
 */
export class RowList {
  /** Rows (1 while empty: the empty text). */
  private count = 0;
  private selected = -1;
  /** Index of the first visible row. */
  private top = 0;
  private shown = '';
  empty = true;

  /** `box` should be created with tags off (rows are drawn as they are). */
  constructor(
    readonly box: Widgets.BoxElement,
    private readonly headed: boolean,
    onPick: (index: number) => void,
    onAction: () => void = () => undefined,
  ) {
    box.enableMouse();
    box.on('click', (data: MouseData) => {
      if (this.empty) return;
      const i = this.top + (data.y - (box.atop as number) - (box.itop as number) - (headed ? 1 : 0));
      if (i < this.top || i >= this.count || i >= this.top + this.height) return;
      if (i === this.selected) onAction();
      else onPick(i);
    });
    const wheel = (delta: number) => () => {
      if (!this.empty) onPick(Math.max(0, Math.min(this.count - 1, this.selected + delta)));
    };
    box.on('wheeldown', wheel(2));
    box.on('wheelup', wheel(-2));
  }

  /** The rows on screen: [first, end). */
  get visible(): [number, number] {
    return this.empty ? [0, 0] : [this.top, Math.min(this.count, this.top + this.height)];
  }

  /** Rows visible at once. */
  get height(): number {
    return Math.max(1, (this.box.height as number) - (this.box.iheight as number) - (this.headed ? 1 : 0));
  }

  /** Shows `head` (when headed), then `rows` (or `emptyText` alone, not selectable) with `selected` highlighted. */
  sync(rows: string[], emptyText: string, selected: number, head = ''): boolean {
    return this.syncRows(rows.length, (i) => rows[i]!, emptyText, selected, head);
  }

  /** sync for `count` rows made by `rowAt` only for the rows that fit on screen. */
  syncRows(count: number, rowAt: (i: number) => string, emptyText: string, selected: number, head = ''): boolean {
    const empty = count === 0;
    this.empty = empty;
    this.count = empty ? 1 : count;
    this.selected = empty ? -1 : Math.max(0, Math.min(selected, count - 1));
    // Scroll as little as possible to keep the selection in view.
    const h = this.height;
    this.top = Math.max(0, Math.min(this.top, this.count - h));
    if (this.selected >= 0) {
      if (this.selected < this.top) this.top = this.selected;
      else if (this.selected >= this.top + h) this.top = this.selected - h + 1;
    }
    const width = Math.max(1, (this.box.width as number) - (this.box.iwidth as number));
    const lines: string[] = [];
    for (let i = this.top; i < Math.min(this.count, this.top + h); i++) {
      const r = empty ? emptyText : rowAt(i);
      lines.push(i === this.selected ? `${INVERSE}${keepBars(r)}${' '.repeat(Math.max(0, width - rowWidth(r)))}${INVERSE_OFF}` : r);
    }
    if (this.headed) lines.unshift(`${BOLD}${head}${BOLD_OFF}`);
    const text = lines.join('\n');
    if (text === this.shown) return false;
    this.shown = text;
    defer(this.box)._kPending = text;
    return true;
  }
}
