/**
 * Cluster expiry (TTL) rules every face shows: when a cluster expires, which expire soon, the warning line.
 * Pure. The TTL job that deletes expired clusters is in cron/lifecycle.ts.
 */
import { formatDuration } from './duration.js';
import type { Cluster } from './types.js';

export const TTL_WARN_MS = 10 * 60_000;

/** Milliseconds since the epoch of a cluster's expiry; null when it has none or it does not parse. */
export function expiryOf(c: Cluster): number | null {
  if (!c.expiresAt) return null;
  const t = Date.parse(c.expiresAt);
  return Number.isFinite(t) ? t : null;
}

/** Clusters that expire within `warnMs` from now (not yet expired), soonest first: for session warnings. */
export function expiring(clusters: readonly Cluster[], nowMs: number, warnMs = TTL_WARN_MS): Cluster[] {
  return clusters
    .filter((c) => {
      const at = expiryOf(c);
      return c.desired !== 'absent' && at !== null && at > nowMs && at - nowMs <= warnMs;
    })
    .sort((a, b) => expiryOf(a)! - expiryOf(b)! || a.name.localeCompare(b.name));
}

/** One line for a session: `cluster dev expires in 9m (at 2026-01-01T10:00:00.000Z) and will be deleted`. */
export function expiryWarning(c: Cluster, nowMs: number): string {
  const at = expiryOf(c);
  if (at === null) return `cluster ${c.name} has no expiry`;
  return `cluster ${c.name} expires in ${formatDuration(Math.max(0, at - nowMs))} (at ${new Date(at).toISOString()}) and will be deleted`;
}
