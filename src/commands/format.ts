/**
 * Text rendering for the verbs: aligned tables, a progress bar, human times. Every cell is sanitized.
 */
import { formatDuration } from '../core/duration.js';
import { sanitizeLine } from '../core/text.js';
import { registerOf, wantsRoute, type Cluster, type Task } from '../core/types.js';

/**
 * An aligned table. With `fit` (a terminal's width) a row never wraps: the widest columns are cut
 * to fit, their cells ending in `…` (no column below its header's width, or 6). Without it (output
 * to a pipe or file) nothing is cut.
 */
export function table(header: string[], rows: (string | number | undefined)[][], fit?: number): string {
  const cells = [header, ...rows.map((r) => r.map((c) => sanitizeLine(c === undefined || c === '' ? '-' : String(c))))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => [...(r[i] ?? '')].length)));
  if (fit !== undefined && fit > 0) {
    const total = () => widths.reduce((a, b) => a + b, 0) + 2 * (widths.length - 1);
    const floor = header.map((h) => Math.max(6, h.length));
    while (total() > fit) {
      let widest = -1;
      for (let i = 0; i < widths.length; i++) if (widths[i]! > floor[i]! && (widest < 0 || widths[i]! > widths[widest]!)) widest = i;
      if (widest < 0) break;
      widths[widest] = Math.max(floor[widest]!, widths[widest]! - (total() - fit));
    }
  }
  const cut = (c: string, w: number) => {
    const chars = [...c];
    return chars.length > w ? `${chars.slice(0, Math.max(0, w - 1)).join('')}…` : c;
  };
  const pad = (c: string, w: number) => c + ' '.repeat(Math.max(0, w - [...c].length));
  return `${cells.map((r) => r.map((c, i) => (i === r.length - 1 ? cut(c ?? '', widths[i]!) : pad(cut(c ?? '', widths[i]!), widths[i]!))).join('  ')).join('\n')}\n`;
}

export function expiresIn(c: Cluster, nowMs = Date.now()): string {
  if (!c.expiresAt) return '-';
  const left = Date.parse(c.expiresAt) - nowMs;
  return left <= 0 ? 'expired' : formatDuration(left);
}

export function clusterTable(clusters: Cluster[], fit?: number): string {
  if (clusters.length === 0) return 'no clusters\n';
  return table(
    ['NAME', 'PROVIDER', 'DESIRED', 'ACTUAL', 'NODES', 'HTTP', 'HTTPS', 'API', 'OWNER', 'EXPIRES', 'LAST TASK'],
    clusters.map((c) => [
      c.name,
      c.provider,
      c.desired,
      c.actual,
      `${c.servers}+${c.agents}`,
      c.httpPort,
      c.httpsPort,
      c.apiPort,
      c.owner,
      expiresIn(c),
      c.lastTaskId,
    ]),
    fit,
  );
}

export function taskTable(tasks: Task[], fit?: number): string {
  if (tasks.length === 0) return 'no tasks\n';
  return table(
    ['ID', 'KIND', 'CLUSTER', 'STATE', 'PROGRESS', 'STEP', 'USER', 'CREATED', 'ERROR'],
    tasks.map((t) => [t.id, t.kind, t.cluster, t.state, `${t.progress}%`, t.step, t.user, t.createdAt, t.error?.reason]),
    fit,
  );
}

export function clusterDetails(c: Cluster, tasks: Task[]): string {
  const kv: [string, string | number | undefined][] = [
    ['name', c.name],
    ['provider', c.provider],
    ['desired', c.desired],
    ['actual', c.actual],
    ['nodes', `${c.servers} server(s), ${c.agents} agent(s)`],
    ['image', c.image ?? 'provider default'],
    ['http port', c.httpPort],
    ['https port', c.httpsPort],
    ['api port', c.apiPort],
    ['subnet', c.subnet],
    ['node address', c.nodeAddress],
    ['domain', c.domain],
    ['route', wantsRoute(c) ? 'on' : 'off (--no-route)'],
    ['register', registerOf(c).join(',') || 'none'],
    ['kube context', c.kubeContext],
    ['kubeconfig', c.kubeconfig],
    ['owner', c.owner],
    ['created', c.createdAt],
    ['expires', c.expiresAt ? `${c.expiresAt} (in ${expiresIn(c)})` : undefined],
    ['last error', c.lastError],
  ];
  let out = kv.map(([k, v]) => `${k.padEnd(14)} ${sanitizeLine(v === undefined || v === '' ? '-' : String(v))}`).join('\n');
  if (c.steps?.length) {
    out += `\n\nsteps (task ${c.steps[0]!.taskId}):\n`;
    out += c.steps
      .map((s) => `  ${s.state.padEnd(10)} ${s.at.slice(11, 19)}  ${sanitizeLine(s.title)}${s.error ? ` — ${sanitizeLine(s.error)}` : ''}`)
      .join('\n');
  }
  if (tasks.length) out += `\n\nrecent tasks:\n${taskTable(tasks).replace(/^/gm, '  ').trimEnd()}`;
  return `${out}\n`;
}

export function bar(pct: number, width = 30): string {
  const n = Math.round((Math.max(0, Math.min(100, pct)) / 100) * width);
  return `[${'#'.repeat(n)}${'.'.repeat(width - n)}] ${String(pct).padStart(3)}%`;
}
