/**
 * The log pane: draws the visible slice of one task's LogBuffer (never the whole scrollback), with
 * follow mode, scrolling, search highlighting and the "N earlier lines not in memory" notice.
 *
 * New lines alone redraw the pane at most once per LOG_FRAME_MS while they keep coming: a task
 * printing thousands of lines a second would otherwise have every session redraw (and send) a full
 * frame 20 times a second for text nobody can read at that speed. Once they pause for
 * LOG_QUIET_MS (the end of a burst, or of the task), the newest lines are drawn without waiting out
 * the rest of that window, though not before the grid slot LOG_MIN_FRAME_MS after the last one (logRedrawDue).
 * Anything the user does redraws at once; a deferred redraw is asked for with `onLater` when its
 * time comes.
 */
import blessed from 'blessed';
import type { Widgets } from 'blessed';
import type { LogBuffer } from './logbuffer.js';
import { escapeTags, plain, truncate, wrapText } from './text.js';
import { panel, setFocusStyle, setLabel, setText } from './widgets.js';

/** Longest a redraw for new lines waits while lines keep coming (ms). */
export const LOG_FRAME_MS = 50;
/** Lines that stop coming for this long are drawn without waiting out LOG_FRAME_MS (ms). */
export const LOG_QUIET_MS = 25;
/** Least time between two redraws caused only by new lines (ms). */
export const LOG_MIN_FRAME_MS = 40;
/** Held-back redraws fall on multiples of this (ms of the clock). */
export const LOG_ALIGN_MS = 25;

/**
 * When new lines held back since a redraw at `drawnAt` are drawn, given the newest came at `changedAt`
 * (clock ms). On a LOG_ALIGN_MS grid of the clock: sessions following the same log redraw in the same
 * turn, with the same lines, so they share one frame (frames.ts) instead of rendering one each.
 * Counted from the grid point the last redraw was due at (it runs a little after it), so that a
 * steady stream is drawn every LOG_FRAME_MS, not a grid step later each time.
 */
export function logRedrawDue(drawnAt: number, changedAt: number): number {
  const slot = Math.floor(drawnAt / LOG_ALIGN_MS) * LOG_ALIGN_MS;
  const due = Math.min(slot + LOG_FRAME_MS, Math.max(changedAt + LOG_QUIET_MS, slot + LOG_MIN_FRAME_MS));
  return Math.ceil(due / LOG_ALIGN_MS) * LOG_ALIGN_MS;
}

/** A line's level mark: red (error, fatal, ✗), yellow (warning), bold (a `==>` step line), or none. */
export function lineLevel(line: string): 'error' | 'warn' | 'step' | undefined {
  if (/\b(?:ERRO|ERROR|FATA|FATAL)\b|level=(?:error|fatal)\b|✗/.test(line)) return 'error';
  if (/\bWARN(?:ING)?\b|level=warn/.test(line)) return 'warn';
  if (line.startsWith('==>') || line.includes(': ==> ')) return 'step';
  return undefined;
}

/**
 * A line without the tool's own time stamp (the `t` toggle): logrus' `time="…" ` field, k3d's
 * `INFO[0003]` elapsed seconds (the level stays), or a leading ISO-8601 time.
 */
export function stripStamp(line: string): string {
  return line
    .replace(/^time="[^"]*"\s+/, '')
    .replace(/^([A-Z]{4})\[[\d:TZ.+-]+\]/, '$1')
    .replace(/^\[?\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?\]?\s+/, '');
}

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
  /** The buffer version last drawn, when, and whether something other than new lines changed since. */
  private drawnVersion = -1;
  private drawnAt = -Infinity;
  /** When lines last arrived (`changed`). */
  private changedAt = -Infinity;
  private drawnWidth = -1;
  private dirty = true;
  private later: NodeJS.Timeout | null = null;
  /** No colour on screen: matches are marked by underline, not by colour. */
  noColor = false;
  /** The label after the title, as last drawn (follow state, position, search). */
  private labelTail = '';
  /** `w`: long lines wrap onto the next rows instead of being cut with `…`. */
  wrap = false;
  /** `t`: lines show the tool's own time stamps (off: stripStamp). */
  times = true;
  /** The command that prints a task's whole log, with ID for the task (the label ends with it). */
  wholeLog = 'kindler logs ID > file';
  /** Called when a redraw held back by LOG_FRAME_MS is due (the app asks for a frame). */
  onLater: (() => void) | null = null;

  constructor(parent: Widgets.Node) {
    this.frame = panel(parent, ' log ');
    this.body = blessed.box({ parent: this.frame, left: 0, right: 0, top: 0, bottom: 0, tags: true, wrap: false });
  }

  /** Shows another task's buffer (scroll and search reset). */
  show(buffer: LogBuffer | null, title: string): void {
    this.dirty = true;
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
    this.changedAt = Date.now();
  }

  private get height(): number {
    const h = Math.max(1, (this.frame.height as number) - 2);
    return this.buffer && this.buffer.dropped > 0 ? Math.max(1, h - 1) : h;
  }

  private maxTop(): number {
    const b = this.buffer;
    if (!b) return 0;
    return b.dropped + Math.max(0, b.size - this.height);
  }

  private visibleTop(): number {
    const b = this.buffer;
    if (!b) return 0;
    if (this.follow) return this.maxTop();
    return Math.max(b.dropped, Math.min(this.topAbs, this.maxTop()));
  }

  /** Scrolls by `delta` lines (up is negative; scrolling up stops following). */
  scroll(delta: number): void {
    this.dirty = true;
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
    this.dirty = true;
    this.follow = false;
    this.topAbs = this.buffer?.dropped ?? 0;
  }

  /** Jumps to the newest line and follows. */
  end(): void {
    this.dirty = true;
    this.follow = true;
  }

  /** Toggles wrapping of long lines. */
  toggleWrap(): void {
    this.dirty = true;
    this.wrap = !this.wrap;
  }

  /** Toggles the tools' time stamps. */
  toggleTimes(): void {
    this.dirty = true;
    this.times = !this.times;
  }

  /** Where the view stands (for restoring it in a later session). */
  position(): { taskId: string; follow: boolean; top: number } | undefined {
    return this.buffer ? { taskId: this.buffer.taskId, follow: this.follow, top: this.visibleTop() } : undefined;
  }

  /** Puts the view back where `position()` said, if the same task is shown. */
  restore(p: { taskId: string; follow: boolean; top: number } | undefined): void {
    if (!p || this.buffer?.taskId !== p.taskId) return;
    this.dirty = true;
    this.follow = p.follow;
    this.topAbs = Math.max(0, Math.floor(Number(p.top) || 0));
  }

  /** One line as drawn: stamps dropped (t), search marks, level colour; cut or wrapped to `w`. */
  private rowsOf(abs: number, raw: string, w: number): string[] {
    const text = this.times ? raw : stripStamp(raw);
    const parts = this.wrap ? wrapText(text, w) : [truncate(text, w)];
    const level = lineLevel(text);
    const [open, close] =
      level === 'step'
        ? ['{bold}', '{/bold}']
        : this.noColor || !level
          ? ['', '']
          : level === 'error'
            ? ['{red-fg}', '{/red-fg}']
            : ['{yellow-fg}', '{/yellow-fg}'];
    return parts.map((p) => open + this.highlight(p, abs) + close);
  }

  /** Toggles follow mode. */
  toggleFollow(): void {
    this.dirty = true;
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
    this.dirty = true;
    this.query = query;
    this.matchesFor = -1;
    this.refreshMatches();
    this.current = -1;
    if (this.matches.length) this.jump(this.matches[this.matches.length - 1]!);
    return this.matches.length;
  }

  /** Moves to the next (1) or previous (-1) match, wrapping. */
  next(dir: 1 | -1): void {
    this.dirty = true;
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
    // Without colour (NO_COLOR) the other matches are underlined instead of yellow.
    const [open, close] =
      abs === this.current
        ? ['{inverse}', '{/inverse}']
        : this.noColor
          ? ['{underline}', '{/underline}']
          : ['{black-fg}{yellow-bg}', '{/yellow-bg}{/black-fg}'];
    for (let i = low.indexOf(q); i >= 0 && q; i = low.indexOf(q, at)) {
      out += escapeTags(text.slice(at, i)) + open + escapeTags(text.slice(i, i + q.length)) + close;
      at = i + q.length;
    }
    return out + escapeTags(text.slice(at));
  }

  /** Whether to hold back a redraw that only new lines asked for (and arrange one for later). */
  private holdBack(width: number): boolean {
    if (this.dirty || this.version === this.drawnVersion || width !== this.drawnWidth) return false;
    const wait = this.redrawDue() - Date.now();
    if (wait <= 0) return false;
    if (!this.later) this.armLater(wait);
    return true;
  }

  /** When held-back new lines are to be drawn: the end of the window, or sooner once they pause. */
  private redrawDue(): number {
    return logRedrawDue(this.drawnAt, this.changedAt);
  }

  /** A timer for the held-back redraw; while lines keep coming it moves on without asking for a frame. */
  private armLater(ms: number): void {
    this.later = setTimeout(() => {
      this.later = null;
      const wait = this.redrawDue() - Date.now();
      if (wait > 0) this.armLater(wait);
      else this.onLater?.();
    }, ms);
    this.later.unref?.();
  }

  /** Cancels a pending deferred redraw (the session is closing). */
  stop(): void {
    if (this.later) clearTimeout(this.later);
    this.later = null;
    this.onLater = null;
  }

  /** Draws the visible slice; returns whether anything on screen changed. */
  update(o: { focused: boolean; width: number }): boolean {
    if (this.holdBack(o.width)) {
      // Only the frame's focus style and the label's title (the task's state and percent) may change
      // now; the text, and where it stands, wait for their turn.
      const label = setLabel(this.frame, `${truncate(` log ${this.title}${this.labelTail}`, Math.max(4, o.width - 4))} `);
      return setFocusStyle(this.frame, o.focused) || label;
    }
    if (this.version !== this.drawnVersion) this.drawnAt = Date.now();
    this.drawnVersion = this.version;
    this.drawnWidth = o.width;
    this.dirty = false;
    const w = Math.max(1, o.width - 2);
    const b = this.buffer;
    let text: string;
    let label = ` log ${this.title}`;
    if (!b || !b.loaded) {
      // While the history loads, the live lines that came meanwhile are already worth showing.
      const held = b ? b.heldTail(Math.max(1, this.height - 1)) : [];
      text = [`{gray-fg}${escapeTags(truncate(this.placeholder, w))}{/gray-fg}`, ...held.map((l) => escapeTags(truncate(l, w)))].join('\n');
    } else {
      this.refreshMatches();
      const top = this.visibleTop();
      const rows: string[] = [];
      if (b.dropped > 0)
        rows.push(`{gray-fg}${escapeTags(truncate(`… ${b.dropped} earlier lines not in memory (kindler logs ${b.taskId} prints them all)`, w))}{/gray-fg}`);
      if (b.error) rows.push(`{red-fg}${escapeTags(truncate(b.error, w))}{/red-fg}`);
      const end = b.dropped + b.size;
      if (this.wrap && this.follow) {
        // The newest lines, wrapped: walk back from the last line until the pane is full.
        const tail: string[] = [];
        for (let abs = end - 1; abs >= b.dropped && tail.length < this.height; abs--) tail.unshift(...this.rowsOf(abs, b.line(abs - b.dropped), w));
        rows.push(...tail.slice(Math.max(0, tail.length - this.height)));
      } else {
        const start = rows.length;
        for (let abs = top; rows.length - start < this.height && abs < end; abs++) rows.push(...this.rowsOf(abs, b.line(abs - b.dropped), w));
        rows.length = Math.min(rows.length, start + this.height);
      }
      if (!b.size && !b.error) rows.push('{gray-fg}(no log lines yet){/gray-fg}');
      text = rows.join('\n');
      label += this.follow ? ' · following' : ` · paused at ${top + 1}`;
      if (this.wrap) label += ' · wrap';
      if (!this.times) label += ' · no stamps';
      if (this.query) {
        const pos = this.matches.indexOf(this.current);
        label += ` · /${plain(this.query, 40)} ${pos >= 0 ? pos + 1 : 0}/${this.matches.length}`;
      }
      label += ` · whole log: ${plain(this.wholeLog.replace('ID', b.taskId), 120)}`;
    }
    this.labelTail = label.slice(` log ${this.title}`.length);
    let changed = setText(this.body, text);
    changed = setLabel(this.frame, `${truncate(label, Math.max(4, o.width - 4))} `) || changed;
    changed = setFocusStyle(this.frame, o.focused) || changed;
    return changed;
  }
}
