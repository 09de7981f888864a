/**
 * Small pure text helpers for the TUI: sanitizing, display width, fitting cells, bars, tag escaping.
 * Every untrusted string goes through `clean` before it is measured or drawn.
 */
import { formatDuration } from '../core/duration.js';
import { TTL_WARN_MS } from '../core/expiry.js';
import { createRequire } from 'node:module';
import stringWidth from 'string-width';
import { sanitizeLine } from '../core/text.js';

/** Longest untrusted string kept for display (longer ones are cut with a marker). */
export const MAX_TEXT = 1000;

/** Sanitizes any value for display (escapes and controls removed, length capped); undefined/empty become `-`. */
export function clean(v: unknown, max = MAX_TEXT): string {
  if (v === undefined || v === null || v === '') return '-';
  return plain(v, max);
}

/** Sanitizes any value for display, keeping empty strings empty. */
export function plain(v: unknown, max = MAX_TEXT): string {
  const s = terminalSafe(sanitizeLine(typeof v === 'string' ? v : String(v ?? ''))); // eslint-disable-line @typescript-eslint/no-base-to-string -- any value is shown as text on purpose
  // No surrogate pairs are left, so cutting by UTF-16 units cannot split a character.
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

const require = createRequire(import.meta.url);
/** blessed's own width of one character (what it places: its tables predate most emoji). */
const blessedWidth = (require('blessed/lib/unicode.js') as { charWidth: (s: string, i?: number) => number }).charWidth;

/** Printable ASCII only: one column per character, nothing to normalise. */
const SIMPLE = /^[\x20-\x7e]*$/;
const graphemes = new Intl.Segmenter('en', { granularity: 'grapheme' });

/** Drawn instead of a 2-column grapheme blessed cannot place (emoji, ZWJ/flag/keycap sequences, VS16 sequences). */
export const WIDE_MARK = '[]';
/** Drawn instead of a 1-column grapheme blessed cannot place (an astral-plane character, a mark without a precomposed form). */
export const NARROW_MARK = '?';

/**
 * Rewrites text so that every grapheme occupies exactly the cells the terminal draws and blessed
 * counts. Widths come from `string-width` (Unicode's East Asian Width and emoji data, ambiguous =
 * narrow, as terminals in a UTF-8 non-CJK locale draw them). A grapheme is kept as it is only when
 * it is one BMP code point and blessed's own width for it agrees (ASCII, Latin, ✓, box drawing,
 * CJK ideographs); zero-width ones (ZWJ, variation selectors, stray marks) are dropped; anything
 * else (emoji such as 📦 😊 ⏳, ZWJ and flag sequences, 🕹️ with its VS16, astral characters) is
 * replaced by a placeholder of its width: WIDE_MARK (2 columns) or NARROW_MARK (1). blessed
 * 0.1.81 measures those as 1 column (terminals draw 2) or splits their surrogate pairs, which
 * shifted every later cell of the row and left stray cells behind. Combining marks are composed
 * (NFC) first, so é and friends survive.
 */
export function terminalSafe(s: string): string {
  if (SIMPLE.test(s)) return s;
  let out = '';
  for (const { segment } of graphemes.segment(s.normalize('NFC'))) {
    if (segment.length === 1 && segment <= '\x7e') {
      out += segment;
      continue;
    }
    const w = stringWidth(segment);
    if (w <= 0) continue;
    const base = String.fromCodePoint(segment.codePointAt(0)!);
    if (base.length === 1 && blessedWidth(base, 0) === w && stringWidth(base) === w && (segment === base || w === 1)) {
      // One BMP code point blessed places as wide as the terminal draws it (trailing marks of a narrow
      // base that NFC could not compose are dropped).
      out += base;
      continue;
    }
    out += w >= 2 ? WIDE_MARK + ' '.repeat(w - 2) : NARROW_MARK;
  }
  return out;
}

/**
 * Widths and cuts of text that is not plain ASCII, remembered: every session measures the same labels,
 * task rows (their bars) and header on every frame, and string-width walks graphemes each time (it was
 * ~9 % of the daemon's CPU while ten sessions followed a log flood). Bounded: cleared when full, and
 * only strings up to MEMO_MAX_LEN are kept.
 */
const memo = new Map<string, number | string>();
const MEMO_MAX = 4096;
const MEMO_MAX_LEN = 512;

function remember<T extends number | string>(key: string, value: T): T {
  if (key.length > MEMO_MAX_LEN) return value;
  if (memo.size >= MEMO_MAX) memo.clear();
  memo.set(key, value);
  return value;
}

/** Entries remembered (tests: the bound holds). */
export function memoSize(): number {
  return memo.size;
}

/** Terminal columns a string occupies (after `terminalSafe`, as the terminal and blessed both count it). */
export function displayWidth(s: string): number {
  if (SIMPLE.test(s)) return s.length;
  const known = memo.get(s);
  return typeof known === 'number' ? known : remember(s, stringWidth(s));
}

/** Cuts a string to at most `w` columns, ending with `…` when something was cut. */
export function truncate(s: string, w: number): string {
  if (w <= 0) return '';
  if (s.length <= w && displayWidth(s) <= w) return s;
  if (SIMPLE.test(s)) return `${s.slice(0, w - 1)}…`;
  const key = `\u0000${w}\u0000${s}`;
  const known = memo.get(key);
  return typeof known === 'string' ? known : remember(key, cut(s, w));
}

/** truncate() for text that is not plain ASCII: grapheme by grapheme. */
function cut(s: string, w: number): string {
  let out = '';
  let used = 0;
  for (const { segment } of graphemes.segment(s)) {
    const cw = stringWidth(segment);
    if (used + cw > w - 1) break;
    out += segment;
    used += cw;
  }
  return `${out}…`;
}

/** Fits a string into exactly `w` columns: cut with `…` or padded (right-aligned when `right`). */
export function fit(s: string, w: number, right = false): string {
  const t = truncate(s, w);
  const pad = ' '.repeat(Math.max(0, w - displayWidth(t)));
  return right ? pad + t : t + pad;
}

/** Escapes blessed tag braces so untrusted text is drawn literally in a `tags: true` widget. */
export function escapeTags(s: string): string {
  return s.replace(/[{}]/g, (c) => (c === '{' ? '{open}' : '{close}'));
}

/** A text progress bar of exactly `w` columns (no brackets). */
export function textBar(pct: number, w: number): string {
  const p = Math.max(0, Math.min(100, Number.isFinite(pct) ? pct : 0));
  const n = Math.round((p / 100) * w);
  return '█'.repeat(n) + '░'.repeat(Math.max(0, w - n));
}

/** Time since an ISO timestamp, as `formatDuration` prints it (`-` when unknown). */
export function since(iso: string | undefined, nowMs: number): string {
  if (!iso) return '-';
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return '-';
  return formatDuration(Math.max(0, nowMs - t));
}

/**
 * Time until an ISO timestamp (`expired` once past, `-` when none): the table's EXPIRES cell. Seconds
 * show only in the last TTL_WARN_MS (10 minutes), where the warning banner counts down too; before
 * that whole minutes ("42m", not "42m13s"), so a cluster with under an hour left does not make every
 * session redraw every second.
 */
export function until(iso: string | undefined, nowMs: number): string {
  if (!iso) return '-';
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return '-';
  const left = t - nowMs;
  if (left <= 0) return 'expired';
  return formatDuration(left >= TTL_WARN_MS ? Math.floor(left / 60_000) * 60_000 : left);
}

/** The step (s) in which formatDuration shows `s` seconds: hours past a day, minutes past an hour, else seconds. */
function shownStep(s: number): number {
  return s >= 86_400 ? 3600 : s >= 3600 ? 60 : 1;
}

/** When `until(iso, …)` next reads differently after `nowMs` (Infinity: never; it stays `expired` or `-`). */
export function untilChangesAt(iso: string | undefined, nowMs: number): number {
  if (!iso) return Infinity;
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return Infinity;
  // Whole minutes down to the warning window (see until), then as the countdown.
  return t - nowMs >= TTL_WARN_MS ? changesAt(t, nowMs, (s) => Math.max(60, shownStep(s))) : countdownChangesAt(t, nowMs);
}

/** When formatDuration(t - nowMs) (`expired` once past) next reads differently after `nowMs`. */
export function countdownChangesAt(t: number, nowMs: number): number {
  return changesAt(t, nowMs, shownStep);
}

/** When a countdown to `t` shown in steps of `stepOf(seconds left)` seconds next reads differently. */
function changesAt(t: number, nowMs: number, stepOf: (s: number) => number): number {
  const left = t - nowMs;
  if (left <= 0) return Infinity;
  const s = Math.floor(left / 1000);
  const step = stepOf(s);
  // The text holds while left >= the last step boundary at or below it; it changes just after.
  return t - Math.floor(s / step) * step * 1000 + 1;
}

/** When `since(iso, …)` next reads differently after `nowMs` (Infinity: never). */
export function sinceChangesAt(iso: string | undefined, nowMs: number): number {
  if (!iso) return Infinity;
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return Infinity;
  const s = Math.floor(Math.max(0, nowMs - t) / 1000);
  const step = shownStep(s);
  return t + (Math.floor(s / step) + 1) * step * 1000;
}

/** Splits a string into rows of at most `w` columns (by grapheme, as `truncate` measures); at least one row. */
export function wrapText(s: string, w: number): string[] {
  if (w <= 0) return [''];
  if (s.length <= w && displayWidth(s) <= w) return [s];
  const out: string[] = [];
  if (SIMPLE.test(s)) {
    for (let i = 0; i < s.length; i += w) out.push(s.slice(i, i + w));
    return out;
  }
  let cur = '';
  let used = 0;
  for (const { segment } of graphemes.segment(s)) {
    const cw = stringWidth(segment);
    if (used + cw > w && cur) {
      out.push(cur);
      cur = '';
      used = 0;
    }
    cur += segment;
    used += cw;
  }
  if (cur || !out.length) out.push(cur);
  return out;
}
