/**
 * Durations like `90s`, `30m`, `2h`, `1d`, `1h30m`.
 */
import { usageError } from './errors.js';
import { shown } from './text.js';

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses a duration to milliseconds; throws a usage error naming the field. */
export function parseDuration(field: string, raw: string): number {
  const m = /^(?:[0-9]{1,6}[smhd])+$/.exec(raw);
  if (!m) throw usageError(`${field}: must be a duration like 30m, 2h, 1d or 1h30m (got ${shown(raw, 40)})`, field);
  let total = 0;
  for (const part of raw.matchAll(/([0-9]+)([smhd])/g)) total += Number(part[1]) * UNIT_MS[part[2]!]!;
  if (total <= 0) throw usageError(`${field}: must be longer than zero`, field);
  if (total > 365 * UNIT_MS.d!) throw usageError(`${field}: must be at most 365d`, field);
  return total;
}

/** A short human form: 45s, 12m, 3h20m, 2d4h. */
export function formatDuration(ms: number): string {
  const neg = ms < 0;
  let s = Math.floor(Math.abs(ms) / 1000);
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  const out = d ? `${d}d${h ? `${h}h` : ''}` : h ? `${h}h${m ? `${m}m` : ''}` : m ? `${m}m${s ? `${s}s` : ''}` : `${s}s`;
  return neg ? `-${out}` : out;
}
