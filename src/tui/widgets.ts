/**
 * Shared blessed construction helpers. Every widget is created with an explicit parent (never the
 * global screen: another session's screen may be the "current" one), and only plain blessed
 * widgets are used (no contrib canvases to re-attach after a resize).
 */
import blessed from 'blessed';
import type { Widgets } from 'blessed';
import type { Band } from './layout.js';

/** Border colours for a focused and an unfocused panel. */
export const FOCUS_FG = 'cyan';
/** Border colour for a panel without focus. */
export const BLUR_FG = 'gray';

/** A bordered panel box (the frame of a table, the tasks or the log). */
export function panel(parent: Widgets.Node, label: string): Widgets.BoxElement {
  return blessed.box({
    parent,
    left: 0,
    top: 0,
    width: 10,
    height: 3,
    border: { type: 'line' },
    label,
    tags: false,
    style: { border: { fg: BLUR_FG }, label: { bold: true } },
  });
}

/** A one-line text box (tags on: callers escape untrusted text). */
export function line(parent: Widgets.Node, style: Widgets.Types.TStyle = {}): Widgets.BoxElement {
  return blessed.box({ parent, left: 0, top: 0, width: 10, height: 1, tags: true, wrap: false, style });
}

/** A selectable list (mouse clicks and the wheel select; keys are handled by the TUI itself). */
export function selectList(parent: Widgets.Node, top: number): Widgets.ListElement {
  return blessed.list({
    parent,
    left: 0,
    top,
    right: 0,
    bottom: 0,
    tags: false,
    mouse: true,
    keys: false,
    interactive: true,
    wrap: false,
    style: { selected: { inverse: true }, item: {} },
  } as Widgets.ListOptions<Widgets.ListElementStyle>);
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

/** Sets content only when it differs; returns whether it changed. */
export function setText(el: Widgets.BlessedElement, text: string): boolean {
  if ((el as unknown as { _kContent?: string })._kContent === text) return false;
  (el as unknown as { _kContent?: string })._kContent = text;
  el.setContent(text);
  return true;
}

/** Sets a panel label only when it differs; returns whether it changed. */
export function setLabel(el: Widgets.BoxElement, label: string): boolean {
  const k = el as unknown as { _kLabel?: string };
  if (k._kLabel === label) return false;
  k._kLabel = label;
  el.setLabel(label);
  return true;
}

/**
 * A selectable list whose rows are redrawn from a view: reports a pick only for a user's selection
 * (never for our own setItems/select), and says whether anything on screen changed.
 */
export class RowList {
  readonly list: Widgets.ListElement;
  private items: string[] = [];
  private selected = -1;
  private syncing = false;
  empty = true;

  constructor(frame: Widgets.BoxElement, top: number, onPick: (index: number) => void) {
    this.list = selectList(frame, top);
    this.list.on('select item', (_el: unknown, i: number) => {
      if (!this.syncing && !this.empty) onPick(i);
    });
  }

  /** Shows `rows` (or `emptyText` alone, not selectable) with `selected` highlighted. */
  sync(rows: string[], emptyText: string, selected: number): boolean {
    let changed = false;
    const empty = rows.length === 0;
    const items = empty ? [emptyText] : rows;
    if (empty !== this.empty) {
      this.empty = empty;
      (this.list as unknown as { interactive: boolean }).interactive = !empty;
      changed = true;
    }
    if (items.length !== this.items.length || items.some((s, i) => s !== this.items[i])) {
      this.items = items;
      this.quietly(() => this.list.setItems(items as unknown as Widgets.BlessedElement[]));
      changed = true;
    }
    const sel = empty ? 0 : Math.max(0, Math.min(selected, items.length - 1));
    if (sel !== this.selected || changed) {
      this.selected = sel;
      this.quietly(() => this.list.select(sel));
      changed = true;
    }
    return changed;
  }

  private quietly(fn: () => void): void {
    this.syncing = true;
    try {
      fn();
    } finally {
      this.syncing = false;
    }
  }
}
