/**
 * Small pure text helpers for the TUI: sanitizing, display width, fitting cells, bars, tag escaping.
 * Every untrusted string goes through `clean` before it is measured or drawn.
 */
import { formatDuration } from '../core/duration.js';
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
  const s = sanitizeLine(String(v ?? ''));
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

const COMBINING = /\p{Mn}|\p{Me}|\u200b|\u200d|\ufe0f/u;

function isWide(cp: number): boolean {
  return (
    (cp >= 0x1100 && cp <= 0x115f) ||
    (cp >= 0x2e80 && cp <= 0xa4cf && cp !== 0x303f) ||
    (cp >= 0xac00 && cp <= 0xd7a3) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0xfe30 && cp <= 0xfe4f) ||
    (cp >= 0xff00 && cp <= 0xff60) ||
    (cp >= 0xffe0 && cp <= 0xffe6) ||
    (cp >= 0x20000 && cp <= 0x3fffd)
  );
}

/** Terminal columns a (sanitized) string occupies (CJK wide = 2, combining marks = 0). */
export function displayWidth(s: string): number {
  let w = 0;
  for (const ch of s) {
    if (COMBINING.test(ch)) continue;
    w += isWide(ch.codePointAt(0)!) ? 2 : 1;
  }
  return w;
}

/** Cuts a string to at most `w` columns, ending with `…` when something was cut. */
export function truncate(s: string, w: number): string {
  if (w <= 0) return '';
  if (s.length <= w && displayWidth(s) <= w) return s;
  let out = '';
  let used = 0;
  for (const ch of s) {
    const cw = COMBINING.test(ch) ? 0 : isWide(ch.codePointAt(0)!) ? 2 : 1;
    if (used + cw > w - 1) break;
    out += ch;
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

/** Time until an ISO timestamp (`expired` once past, `-` when none). */
export function until(iso: string | undefined, nowMs: number): string {
  if (!iso) return '-';
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return '-';
  const left = t - nowMs;
  return left <= 0 ? 'expired' : formatDuration(left);
}
