/**
 * The log pane: draws the visible slice of one task's LogBuffer (never the whole scrollback), with
 * follow mode, scrolling, search highlighting and the "N earlier lines not in memory" notice.
 */
import blessed from 'blessed';
import type { Widgets } from 'blessed';
import type { LogBuffer } from './logbuffer.js';
import { escapeTags, plain, truncate } from './text.js';
import { panel, setFocusStyle, setLabel, setText } from './widgets.js';

/** The log pane widget and its scroll/search state. */
export class LogPane {
  readonly frame: Widgets.BoxElement;
  private readonly body: Widgets.BoxElement;
  /** The buffer shown (null: nothing to show, see `placeholder`). */
  buffer: LogBuffer | null = null;
  /** Describes the shown task in the label. */
  title = '';
  /** Shown when there is no buffer, or while its history loads. */
  placeholder = 'select a cluster to see its latest task log';
  /** Stick to the newest line. */
  follow = true;
  /** Absolute line index (in the task's log) of the first visible line when not following. */
  private topAbs = 0;
  query = '';
  private matches: number[] = [];
  private matchesFor = -1;
  /** Absolute index of the current match. */
  private current = -1;
  private version = 0;

  constructor(parent: Widgets.Node) {
    this.frame = panel(parent, ' log ');
    this.body = blessed.box({ parent: this.frame, left: 0, right: 0, top: 0, bottom: 0, tags: true, wrap: false });
  }

  /** Shows another task's buffer (scroll and search reset). */
  show(buffer: LogBuffer | null, title: string): void {
    this.buffer = buffer;
    this.title = title;
    this.follow = true;
    this.topAbs = 0;
    this.current = -1;
    this.changed();
  }

  /** Call after the buffer gained lines (or history). */
  changed(): void {
    this.version++;
  }

  private get height(): number {
    const h = Math.max(1, (this.frame.height as number) - 2);
    return this.buffer && this.buffer.dropped > 0 ? Math.max(1, h - 1) : h;
  }

  private maxTop(): number {
    const b = this.buffer;
    if (!b) return 0;
    return b.dropped + Math.max(0, b.lines.length - this.height);
  }

  private visibleTop(): number {
    const b = this.buffer;
    if (!b) return 0;
    if (this.follow) return this.maxTop();
    return Math.max(b.dropped, Math.min(this.topAbs, this.maxTop()));
  }

  /** Scrolls by `delta` lines (up is negative; scrolling up stops following). */
  scroll(delta: number): void {
    const top = this.visibleTop() + delta;
    this.topAbs = top;
    if (delta < 0) this.follow = false;
  }

  /** Scrolls by pages. */
  page(dir: 1 | -1): void {
    this.scroll(dir * Math.max(1, this.height - 1));
  }

  /** Jumps to the oldest line in memory. */
  home(): void {
    this.follow = false;
    this.topAbs = this.buffer?.dropped ?? 0;
  }

  /** Jumps to the newest line and follows. */
  end(): void {
    this.follow = true;
  }

  /** Toggles follow mode. */
  toggleFollow(): void {
    if (this.follow) {
      this.topAbs = this.visibleTop();
      this.follow = false;
    } else this.follow = true;
  }

  private refreshMatches(): void {
    if (this.matchesFor === this.version) return;
    this.matchesFor = this.version;
    const b = this.buffer;
    this.matches = b && this.query ? b.search(this.query).map((i) => i + b.dropped) : [];
  }

  /** Sets (or clears, with '') the search and jumps to the newest match. Returns the match count. */
  search(query: string): number {
    this.query = query;
    this.matchesFor = -1;
    this.refreshMatches();
    this.current = -1;
    if (this.matches.length) this.jump(this.matches[this.matches.length - 1]!);
    return this.matches.length;
  }

  /** Moves to the next (1) or previous (-1) match, wrapping. */
  next(dir: 1 | -1): void {
    this.refreshMatches();
    if (!this.matches.length) return;
    let i = this.matches.indexOf(this.current);
    if (i < 0) i = dir > 0 ? -1 : this.matches.length;
    i = (i + dir + this.matches.length) % this.matches.length;
    this.jump(this.matches[i]!);
  }

  private jump(abs: number): void {
    this.current = abs;
    this.follow = false;
    this.topAbs = Math.max(this.buffer?.dropped ?? 0, abs - Math.floor(this.height / 2));
  }

  private highlight(text: string, abs: number): string {
    if (!this.query) return escapeTags(text);
    const q = this.query.toLowerCase();
    const low = text.toLowerCase();
    let out = '';
    let at = 0;
    const [open, close] = abs === this.current ? ['{inverse}', '{/inverse}'] : ['{black-fg}{yellow-bg}', '{/yellow-bg}{/black-fg}'];
    for (let i = low.indexOf(q); i >= 0 && q; i = low.indexOf(q, at)) {
      out += escapeTags(text.slice(at, i)) + open + escapeTags(text.slice(i, i + q.length)) + close;
      at = i + q.length;
    }
    return out + escapeTags(text.slice(at));
  }

  /** Draws the visible slice; returns whether anything on screen changed. */
  update(o: { focused: boolean; width: number }): boolean {
    const w = Math.max(1, o.width - 2);
    const b = this.buffer;
    let text: string;
    let label = ` log ${this.title}`;
    if (!b || !b.loaded) {
      text = `{gray-fg}${escapeTags(truncate(this.placeholder, w))}{/gray-fg}`;
    } else {
      this.refreshMatches();
      const top = this.visibleTop();
      const rows: string[] = [];
      if (b.dropped > 0) rows.push(`{gray-fg}${escapeTags(truncate(`… ${b.dropped} earlier lines not in memory (kindler logs ${b.taskId} prints them all)`, w))}{/gray-fg}`);
      if (b.error) rows.push(`{red-fg}${escapeTags(truncate(b.error, w))}{/red-fg}`);
      const lines = b.lines;
      for (let abs = top, n = 0; n < this.height && abs - b.dropped < lines.length; abs++, n++) {
        rows.push(this.highlight(truncate(lines[abs - b.dropped]!, w), abs));
      }
      if (!lines.length && !b.error) rows.push('{gray-fg}(no log lines yet){/gray-fg}');
      text = rows.join('\n');
      label += this.follow ? ' · following' : ` · paused at ${top + 1}`;
      if (this.query) {
        const pos = this.matches.indexOf(this.current);
        label += ` · /${plain(this.query, 40)} ${pos >= 0 ? pos + 1 : 0}/${this.matches.length}`;
      }
    }
    let changed = setText(this.body, text);
    changed = setLabel(this.frame, `${truncate(label, Math.max(4, o.width - 4))} `) || changed;
    changed = setFocusStyle(this.frame, o.focused) || changed;
    return changed;
  }
}
