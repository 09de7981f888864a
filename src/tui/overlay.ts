/**
 * The one overlay box used by every dialog (help, details, create form, delete prompt, reconcile, audit): it draws
 * tagged lines, centered, and scrolls long content itself.
 */
import blessed from 'blessed';
import type { Widgets } from 'blessed';
import { displayWidth, escapeTags } from './text.js';
import { setLabel, setText } from './widgets.js';

/** Display width of a tagged line (tags take no room; escaped braces take one column). */
function tagless(line: string): number {
  return displayWidth(line.replace(/\{(?:\/?[a-z-]+|open|close)\}/g, (m) => (m === '{open}' || m === '{close}' ? 'x' : '')));
}

/** How big the overlay is: a compact dialog or (nearly) the whole screen. */
export type OverlaySize = 'dialog' | 'large';

/** The dialog overlay widget. */
export class Overlay {
  private readonly box: Widgets.BoxElement;
  private top = 0;
  private geometry = '';
  /** Lines pinned above the scrolling ones (a table's column header). */
  private fixed = 0;

  constructor(parent: Widgets.Node) {
    this.box = blessed.box({
      parent,
      hidden: true,
      left: 0,
      top: 0,
      width: 10,
      height: 3,
      border: { type: 'line' },
      tags: true,
      wrap: false,
      style: { border: { fg: 'cyan' }, label: { bold: true } },
    });
  }

  /** Scrolls the content (large overlays). */
  scroll(delta: number, total: number): void {
    this.top = Math.max(0, Math.min(this.top + delta, Math.max(0, total - this.innerHeight())));
  }

  /** Back to the first line. */
  reset(): void {
    this.top = 0;
  }

  /** To the last page (applied on the next update, which knows the content's length). */
  end(): void {
    this.top = Number.MAX_SAFE_INTEGER;
  }

  private innerHeight(): number {
    return Math.max(1, (this.box.height as number) - 2 - this.fixed);
  }

  /** Lines visible at once. */
  get pageSize(): number {
    return this.innerHeight();
  }

  /** Hides the overlay; returns whether it was shown. */
  hide(): boolean {
    if (this.box.hidden) return false;
    this.box.hide();
    this.top = 0;
    return true;
  }

  /** Shows `lines` under `title` (and the pinned `head` lines); returns whether anything on screen changed. */
  update(o: { title: string; lines: string[]; head?: string[]; size: OverlaySize; cols: number; rows: number; width?: number }): boolean {
    let changed = false;
    const head = o.head ?? [];
    const widest = Math.max(40, ...o.lines.map(tagless), ...head.map(tagless)) + 2;
    const width = o.size === 'large' ? o.cols - 4 : Math.min(o.cols - 4, o.width ?? widest);
    const height = o.size === 'large' ? o.rows - 4 : Math.min(o.rows - 4, o.lines.length + head.length + 2);
    this.fixed = Math.min(head.length, Math.max(0, height - 3));
    const geometry = `${width}x${height}`;
    if (geometry !== this.geometry) {
      this.geometry = geometry;
      this.box.width = width;
      this.box.height = height;
      this.box.left = Math.floor((o.cols - width) / 2);
      this.box.top = Math.floor((o.rows - height) / 2);
      changed = true;
    }
    if (this.box.hidden) {
      this.box.show();
      this.box.setFront();
      changed = true;
    }
    this.top = Math.max(0, Math.min(this.top, Math.max(0, o.lines.length - this.innerHeight())));
    const visible = o.lines.slice(this.top, this.top + this.innerHeight());
    const more = o.lines.length > this.innerHeight() ? ` (${this.top + 1}-${this.top + visible.length} of ${o.lines.length}) ` : ' ';
    changed = setLabel(this.box, ` ${escapeTags(o.title)}${more}`) || changed;
    changed = setText(this.box, [...head.slice(0, this.fixed), ...visible].join('\n')) || changed;
    return changed;
  }
}
