/**
 * The structured lines provisioning scripts print on stdout (documented in scripts/README.md):
 *   ::kindler:step N/TOTAL KEY Title      a step begins
 *   ::kindler:note TEXT                  a notable fact
 *   ::kindler:error TEXT                 the one-line reason for a failure
 *   ::kindler:cleanup begin|done|failed [TEXT]
 *   ::kindler:result {JSON}              the machine-readable result, printed last
 */

export type Marker =
  | { type: 'step'; n: number; of: number; key: string; title: string }
  | { type: 'note'; text: string }
  | { type: 'error'; text: string }
  | { type: 'cleanup'; phase: 'begin' | 'done' | 'failed'; text: string }
  | { type: 'result'; value: Record<string, unknown> }
  | { type: 'invalid'; text: string };

export const MARKER_PREFIX = '::kindler:';

/** Parses one output line; null when it is not a marker. A malformed marker is `invalid`. */
export function parseMarker(line: string): Marker | null {
  if (!line.startsWith(MARKER_PREFIX)) return null;
  const rest = line.slice(MARKER_PREFIX.length);
  const sp = rest.indexOf(' ');
  const word = sp < 0 ? rest : rest.slice(0, sp);
  const arg = sp < 0 ? '' : rest.slice(sp + 1).trim();
  switch (word) {
    case 'step': {
      const m = /^(\d+)\/(\d+)\s+([a-z0-9][a-z0-9-]*)\s*(.*)$/.exec(arg);
      if (!m) return { type: 'invalid', text: line };
      const n = Number(m[1]),
        of = Number(m[2]);
      if (n < 1 || of < 1 || n > of) return { type: 'invalid', text: line };
      return { type: 'step', n, of, key: m[3]!, title: m[4] || m[3]! };
    }
    case 'note':
      return { type: 'note', text: arg };
    case 'error':
      return { type: 'error', text: arg };
    case 'cleanup': {
      const [phase, ...text] = arg.split(' ');
      if (phase !== 'begin' && phase !== 'done' && phase !== 'failed') return { type: 'invalid', text: line };
      return { type: 'cleanup', phase, text: text.join(' ') };
    }
    case 'result': {
      try {
        const value = JSON.parse(arg) as unknown;
        if (!value || typeof value !== 'object' || Array.isArray(value)) return { type: 'invalid', text: line };
        return { type: 'result', value: value as Record<string, unknown> };
      } catch {
        return { type: 'invalid', text: line };
      }
    }
    default:
      return { type: 'invalid', text: line };
  }
}

/** Progress in percent when step n of `of` begins. */
export function progressAt(n: number, of: number): number {
  return Math.max(0, Math.min(99, Math.floor(((n - 1) / of) * 100)));
}
