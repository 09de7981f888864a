/**
 * Port rules and allocation from configured ranges. Pure: the caller supplies what is taken.
 */
import { usageError } from './errors.js';
import { shown } from './text.js';

export interface PortRange { from: number; to: number }
export type PortKind = 'httpPort' | 'httpsPort' | 'apiPort';
export const PORT_KINDS: readonly PortKind[] = ['httpPort', 'httpsPort', 'apiPort'];

/** Parses a user-given port, `min`-65535 (1 unless given); throws a usage error naming the field. */
export function parsePort(field: string, raw: string, min = 1): number {
  if (!/^[0-9]{1,5}$/.test(raw)) return badPort(field, raw, min);
  const n = Number(raw);
  if (n < min || n > 65535) return badPort(field, raw, min);
  return n;
}

function badPort(field: string, raw: string, min: number): never {
  throw usageError(`${field}: must be a port number ${min}-65535 (got ${shown(raw, 40)})`, field);
}

/** The lowest port in the range that is not in `taken`, or null when the range is full. */
export function allocatePort(range: PortRange, taken: ReadonlySet<number>): number | null {
  for (let p = range.from; p <= range.to; p++) if (!taken.has(p)) return p;
  return null;
}

export function validRange(r: PortRange): boolean {
  return Number.isInteger(r.from) && Number.isInteger(r.to) && r.from >= 1 && r.to <= 65535 && r.from <= r.to;
}
