/**
 * Port rules and allocation from configured ranges. Pure: the caller supplies what is taken.
 */
import { usageError } from './errors.js';
import { shown } from './text.js';

export interface PortRange { from: number; to: number }
export type PortKind = 'httpPort' | 'httpsPort' | 'apiPort';
export const PORT_KINDS: readonly PortKind[] = ['httpPort', 'httpsPort', 'apiPort'];

/** The highest TCP port. */
export const PORT_MAX = 65535;

/** A port given as text is decimal digits only, at most this many of them (leading zeros included: "080" is 80). */
export const PORT_DIGITS = 5;

/**
 * Lowest host port a cluster may publish: ports below it are privileged and belong to the host's own services.
 * The engine holds given, recorded, allocated (config ranges) and adopted ports to it, and so does create_env.sh
 * (scripts/lib/rules.sh, generated from this file by `npm run gen:rules`).
 */
export const MIN_CLUSTER_PORT = 1024;

/** Parses a user-given port, `min`-65535 (1 unless given); throws a usage error naming the field. */
export function parsePort(field: string, raw: string, min = 1): number {
  if (!new RegExp(`^[0-9]{1,${PORT_DIGITS}}$`).test(raw)) return badPort(field, raw, min);
  const n = Number(raw);
  if (n < min || n > PORT_MAX) return badPort(field, raw, min);
  return n;
}

function badPort(field: string, raw: string, min: number): never {
  throw usageError(`${field}: must be a port number ${min}-${PORT_MAX} (got ${shown(raw, 40)})`, field);
}

/** The lowest port in the range that is not in `taken`, or null when the range is full. */
export function allocatePort(range: PortRange, taken: ReadonlySet<number>): number | null {
  for (let p = range.from; p <= range.to; p++) if (!taken.has(p)) return p;
  return null;
}

export function validRange(r: PortRange): boolean {
  return Number.isInteger(r.from) && Number.isInteger(r.to) && r.from >= 1 && r.to <= PORT_MAX && r.from <= r.to;
}
