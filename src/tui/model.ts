/**
 * The TUI's view model: clusters, tasks and sessions kept from the snapshot plus the ordered events,
 * and the pure functions that turn them into table rows, task lines and the presence summary.
 * No blessed here: every widget renders what this computes.
 */
import type { Cluster, StoreHealth, Task } from '../core/types.js';
import { isTerminal } from '../core/types.js';
import type { EngineEvent, SessionInfo, Snapshot } from '../core/feed.js';
import { clean, fit, since, textBar, truncate, until } from './text.js';

/** Columns the cluster table can be sorted by, in the order `S` cycles through them. */
export const SORT_KEYS = ['name', 'state', 'owner', 'expires', 'provider', 'created'] as const;
export type SortKey = (typeof SORT_KEYS)[number];

/** How the table is narrowed and ordered besides the text filter. */
export interface ViewOptions {
  /** Descending: the sort column's order reversed (ties by name reversed too). */
  desc?: boolean;
  /** Only clusters this user owns (the `m` "mine" filter). */
  owner?: string;
}

/**
 * The sort keys (shift + a column letter while the table has focus), the column title each one
 * marks with ↑/↓ in the header, and its letter. `S` still cycles SORT_KEYS.
 */
export const SORT_LETTERS: Record<string, SortKey> = { N: 'name', A: 'state', O: 'owner', E: 'expires', P: 'provider', C: 'created' };
const SORT_TITLES: Partial<Record<SortKey, string>> = { name: 'NAME', state: 'ACTUAL', owner: 'OWNER', expires: 'EXPIRES', provider: 'PROV' };

/** What an applied event changed (so only the affected panels are redrawn). */
export type Change = 'clusters' | 'tasks' | 'sessions' | 'log' | 'storage';

/** Most finished tasks kept in memory (active tasks are always kept). */
export const MAX_FINISHED_TASKS = 300;

/** The numeric part of a task id (`t-12` → 12), for newest-first ordering. */
export function taskNumber(id: string): number {
  const n = Number(/^t-(\d+)$/.exec(id)?.[1]);
  return Number.isFinite(n) ? n : 0;
}

function byTaskId(a: Task, b: Task): number {
  return taskNumber(a.id) - taskNumber(b.id) || a.id.localeCompare(b.id);
}

/**
 * Snapshot records by content, shared by every session of this process. Each session's snapshot
 * holds its own copies of the clusters; the rows drawn for a record are cached per record object
 * (cachedClusterRow), so with copies every session made every row itself (again whenever a
 * countdown in it changed). Events already bring every session the same record.
 */
const interned = new Map<string, WeakRef<Cluster>>();

function internCluster(c: Cluster): Cluster {
  const key = JSON.stringify(c);
  const hit = interned.get(key)?.deref();
  if (hit) return hit;
  if (interned.size >= 20_000) interned.clear();
  interned.set(key, new WeakRef(c));
  return c;
}

/** Clusters, tasks and sessions as the engine last reported them. */
export class TuiModel {
  readonly clusters = new Map<string, Cluster>();
  readonly tasks = new Map<string, Task>();
  sessions: SessionInfo[] = [];
  /** Whether the engine's state reaches the disk. */
  storage: StoreHealth = { saving: true };
  /** Active tasks a `log` event has brought lines for since the snapshot. */
  private readonly logged = new Set<string>();
  /** Sequence number of the last applied snapshot or event; -1 until the snapshot arrives. */
  seq = -1;
  /** Bumped on every change to `clusters` (keys the sorted view). */
  private clustersVersion = 0;
  private lastView: { version: number; key: string; list: Cluster[] } | null = null;

  private lastExpiries: { version: number; list: number[] } | null = null;

  /** The expiry times (ms) of the clusters that warn (not being deleted), soonest first; kept per change. */
  expiries(): number[] {
    const v = this.lastExpiries;
    if (v && v.version === this.clustersVersion) return v.list;
    const list: number[] = [];
    for (const c of this.clusters.values()) {
      const at = c.expiresAt && c.desired !== 'absent' ? Date.parse(c.expiresAt) : NaN;
      if (Number.isFinite(at)) list.push(at);
    }
    list.sort((a, b) => a - b);
    this.lastExpiries = { version: this.clustersVersion, list };
    return list;
  }

  /** Whether the snapshot has been loaded. */
  get loaded(): boolean {
    return this.seq >= 0;
  }

  /** Replaces everything with a snapshot. */
  load(s: Snapshot): void {
    this.clusters.clear();
    this.logged.clear();
    this.clustersVersion++;
    this.tasks.clear();
    for (const c of s.clusters) this.clusters.set(c.name, internCluster(c));
    for (const t of s.tasks) this.tasks.set(t.id, t);
    this.sessions = [...s.sessions];
    this.storage = s.storage ?? { saving: true };
    this.seq = s.seq;
  }

  /** Applies one event; returns what changed, or null for a stale or unknown event. */
  apply(e: EngineEvent): Change | null {
    if (typeof e.seq === 'number' && e.seq <= this.seq) return null;
    this.seq = e.seq;
    switch (e.type) {
      case 'cluster':
        this.clusters.set(e.cluster.name, e.cluster);
        this.clustersVersion++;
        return 'clusters';
      case 'cluster-removed':
        this.clusters.delete(e.name);
        this.clustersVersion++;
        return 'clusters';
      case 'task':
        this.tasks.set(e.task.id, e.task);
        // A task's log is closed before its final event: nothing more to track.
        if (isTerminal(e.task.state)) this.logged.delete(e.task.id);
        this.prune();
        return 'tasks';
      case 'log': {
        const t = this.tasks.get(e.taskId);
        if (t && !isTerminal(t.state)) this.logged.add(e.taskId);
        return 'log';
      }
      case 'presence':
        this.sessions = [...e.sessions];
        return 'sessions';
      case 'storage':
        this.storage = e.storage && typeof e.storage === 'object' ? e.storage : { saving: true };
        return 'storage';
      default:
        return null;
    }
  }

  private prune(): void {
    if (this.tasks.size <= MAX_FINISHED_TASKS + 50) return;
    const finished = [...this.tasks.values()].filter((t) => isTerminal(t.state)).sort(byTaskId);
    for (const t of finished.slice(0, Math.max(0, finished.length - MAX_FINISHED_TASKS))) this.tasks.delete(t.id);
  }

  /**
   * Whether an active task has logged nothing yet, as far as the snapshot and the events since say:
   * then every line of its log is still to come on the feed, and a view needs no history for it.
   */
  logStillEmpty(id: string): boolean {
    const t = this.tasks.get(id);
    return Boolean(t) && !isTerminal(t!.state) && !(Number(t!.logLines) > 0) && !this.logged.has(id);
  }

  /** Queued and running tasks: running first, then queued, oldest first within each. */
  activeTasks(): Task[] {
    const out = [...this.tasks.values()].filter((t) => !isTerminal(t.state));
    return out.sort((a, b) => (a.state === b.state ? byTaskId(a, b) : a.state === 'running' ? -1 : 1));
  }

  /** The newest queued or running task of a cluster. */
  activeTaskFor(name: string): Task | undefined {
    let best: Task | undefined;
    for (const t of this.tasks.values()) if (t.cluster === name && !isTerminal(t.state) && (!best || byTaskId(t, best) > 0)) best = t;
    return best;
  }

  /** The id of the newest task that acted on a cluster (known tasks, else the cluster's lastTaskId). */
  latestTaskIdFor(name: string): string | undefined {
    let best: Task | undefined;
    for (const t of this.tasks.values()) if (t.cluster === name && (!best || byTaskId(t, best) > 0)) best = t;
    const last = this.clusters.get(name)?.lastTaskId;
    if (best && (!last || taskNumber(best.id) >= taskNumber(last))) return best.id;
    return last ?? best?.id;
  }

  /**
   * The clusters to show: filtered (case-insensitive substring) and sorted. Kept until the clusters,
   * the sort or the filter change (a frame asks several times); callers must not modify the list.
   */
  view(sort: SortKey, filter: string, o: ViewOptions = {}): Cluster[] {
    const v = this.lastView;
    const key = `${sort}\0${o.desc ? 1 : 0}\0${o.owner ?? ''}\0${filter}`;
    if (v && v.version === this.clustersVersion && v.key === key) return v.list;
    const list = this.computeView(sort, filter, o);
    this.lastView = { version: this.clustersVersion, key, list };
    return list;
  }

  private computeView(sort: SortKey, filter: string, o: ViewOptions): Cluster[] {
    const f = filter.trim().toLowerCase();
    const list = [...this.clusters.values()].filter(
      (c) =>
        (o.owner === undefined || c.owner === o.owner) &&
        (!f || [c.name, c.owner, c.provider, c.desired, c.actual].some((v) => String(v).toLowerCase().includes(f))),
    );
    const dir = o.desc ? -1 : 1;
    return list.sort((a, b) => dir * (compareClusters(a, b, sort) || a.name.localeCompare(b.name)));
  }
}

function compareClusters(a: Cluster, b: Cluster, k: SortKey): number {
  switch (k) {
    case 'name':
      return a.name.localeCompare(b.name);
    case 'state':
      return `${a.actual}/${a.desired}`.localeCompare(`${b.actual}/${b.desired}`);
    case 'owner':
      return a.owner.localeCompare(b.owner);
    case 'provider':
      return a.provider.localeCompare(b.provider);
    case 'created':
      return String(b.createdAt).localeCompare(String(a.createdAt));
    case 'expires': {
      const ea = a.expiresAt ? Date.parse(a.expiresAt) : Infinity;
      const eb = b.expiresAt ? Date.parse(b.expiresAt) : Infinity;
      return ea === eb ? 0 : ea < eb ? -1 : 1;
    }
  }
}

/** One column of the cluster table. */
export interface Column {
  title: string;
  width: number;
  right?: boolean;
  /** The cell changes with the clock (not only with the record). */
  timed?: boolean;
  cell: (c: Cluster, nowMs: number) => string;
  /** The SGR colour (e.g. '32') the cell is drawn in, if any (NO_COLOR drops it; the symbol column stays). */
  paint?: (c: Cluster) => string | undefined;
}

/** A cluster state's symbol: its shape tells the state apart without colour. */
export function stateSymbol(actual: string): string {
  return actual === 'running' ? '●' : actual === 'failed' ? '✗' : actual === 'stopped' ? '○' : actual === 'creating' || actual === 'deleting' ? '◐' : '·';
}

/** A cluster state's colour: running green, creating/deleting yellow, failed red, stopped grey. */
export function stateColour(c: Cluster): string | undefined {
  const a = c.actual as string;
  return a === 'running' ? '32' : a === 'failed' ? '31' : a === 'stopped' ? '90' : a === 'creating' || a === 'deleting' ? '33' : undefined;
}

interface ColumnSpec extends Column {
  /** Dropped (in order) when the name column would get narrower than this. */
  dropBelow?: number;
  flex?: boolean;
}

const SPECS: ColumnSpec[] = [
  { title: ' ', width: 1, cell: (c) => stateSymbol(c.actual), paint: stateColour },
  { title: 'NAME', width: 12, flex: true, cell: (c) => clean(c.name) },
  { title: 'PROV', width: 4, cell: (c) => clean(c.provider) },
  { title: 'DESIRED', width: 7, cell: (c) => clean(c.desired) },
  { title: 'ACTUAL', width: 8, cell: (c) => clean(c.actual), paint: stateColour },
  { title: 'NODES', width: 5, cell: (c) => `${Number(c.servers) || 0}+${Number(c.agents) || 0}` },
  { title: 'HTTP', width: 5, right: true, cell: (c) => clean(c.httpPort) },
  { title: 'HTTPS', width: 5, right: true, cell: (c) => clean(c.httpsPort) },
  { title: 'API', width: 5, right: true, cell: (c) => clean(c.apiPort) },
  { title: 'DOMAIN', width: 20, dropBelow: 10, cell: (c) => (c.domain ? clean(c.domain) : '-') },
  { title: 'OWNER', width: 10, cell: (c) => clean(c.owner) },
  { title: 'EXPIRES', width: 7, timed: true, cell: (c, now) => until(c.expiresAt, now) },
];

/** The columns that fit `width` terminal columns (the name column takes the slack, up to 40). */
export function clusterColumns(width: number): Column[] {
  let cols = [...SPECS];
  const fixed = (cs: ColumnSpec[]) => cs.reduce((n, c) => n + (c.flex ? 0 : c.width), 0) + cs.length - 1;
  for (const drop of SPECS.filter((c) => c.dropBelow !== undefined)) {
    if (width - fixed(cols) < drop.dropBelow!) cols = cols.filter((c) => c !== drop);
  }
  const nameW = Math.max(4, Math.min(40, width - fixed(cols)));
  return cols.map((c) => ({
    title: c.title,
    width: c.flex ? nameW : c.width,
    ...(c.right ? { right: true } : {}),
    ...(c.timed ? { timed: true } : {}),
    cell: c.cell,
    ...(c.paint ? { paint: c.paint } : {}),
  }));
}

/** The header line of the cluster table; the sorted column's title ends with ↑ (ascending) or ↓. */
export function headerRow(cols: Column[], sort?: { key: SortKey; desc: boolean }): string {
  const marked = sort ? SORT_TITLES[sort.key] : undefined;
  return cols
    .map((c) => {
      if (c.title !== marked) return fit(c.title, c.width, c.right);
      const arrow = sort!.desc ? '↓' : '↑';
      return fit(`${c.title.slice(0, Math.max(0, c.width - 1))}${arrow}`, c.width, c.right);
    })
    .join(' ')
    .trimEnd();
}

/** One cluster as a table row. */
export function clusterRow(c: Cluster, cols: Column[], nowMs: number): string {
  return cols
    .map((col) => {
      const text = fit(col.cell(c, nowMs), col.width, col.right);
      const sgr = col.paint?.(c);
      return sgr ? `\x1b[${sgr}m${text}\x1b[39m` : text;
    })
    .join(' ')
    .trimEnd();
}

/**
 * Rows already drawn, by cluster record, then by column set and clock-dependent cells. Records are
 * never changed in place (an event brings a new one), and the engine hands every session the same
 * record for an event, so sessions share the work; a flush redraws only rows it has not seen.
 */
const rowCache = new WeakMap<Cluster, Map<string, string>>();
/** Column sets (terminal widths) remembered per record. */
const ROW_CACHE_KEYS = 4;

/** What identifies a column set in the row cache (compute once per frame). */
export function columnsKey(cols: Column[]): string {
  return cols.map((c) => `${c.title}:${c.width}`).join('|');
}

/** clusterRow, computed once per record, column set (`colsKey`, from columnsKey) and clock-dependent text. */
export function cachedClusterRow(c: Cluster, cols: Column[], nowMs: number, colsKey = columnsKey(cols)): string {
  let key = colsKey;
  for (const col of cols) if (col.timed) key += `|${col.cell(c, nowMs)}`;
  let rows = rowCache.get(c);
  const hit = rows?.get(key);
  if (hit !== undefined) return hit;
  const row = clusterRow(c, cols, nowMs);
  if (!rows) rowCache.set(c, (rows = new Map<string, string>()));
  else if (rows.size >= ROW_CACHE_KEYS) rows.clear();
  rows.set(key, row);
  return row;
}

const KIND_SHORT: Record<string, string> = { 'import-image': 'import' };

/** One active task as a line: id, kind, cluster, bar, percent, elapsed, who, step. */
export function taskRow(t: Task, width: number, nowMs: number): string {
  const pct = Math.max(0, Math.min(100, Math.round(Number(t.progress) || 0)));
  const time = t.state === 'queued' ? 'queued' : since(t.startedAt ?? t.createdAt, nowMs);
  const head = [
    fit(clean(t.id), 7),
    fit(clean(KIND_SHORT[t.kind] ?? t.kind), 6),
    fit(clean(t.cluster), 12),
    textBar(pct, 10),
    fit(`${pct}%`, 4, true),
    fit(time, 7, true),
    fit(clean(t.user), 8),
  ].join(' ');
  const step = t.step ? clean(t.step) : t.state === 'queued' ? '' : t.state;
  return truncate(`${head} ${step}`, width);
}

/** The header's warning while state is not being saved ("" while it is). */
export function storageNotice(h: StoreHealth): string {
  if (h.saving) return '';
  const from = typeof h.since === 'string' ? ` since ${clean(h.since.slice(11, 19), 8)}Z` : '';
  return `STATE NOT BEING SAVED${from}: ${clean(String(h.problem ?? 'writes fail'), 160)}`;
}

/** Who else is online: distinct other users, with a count of this user's other sessions. */
export function presence(sessions: SessionInfo[], me: string): string {
  const counts = new Map<string, number>();
  for (const s of sessions) counts.set(s.user, (counts.get(s.user) ?? 0) + 1);
  const mine = (counts.get(me) ?? 0) - 1;
  counts.delete(me);
  const others = [...counts.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([u, n]) => (n > 1 ? `${clean(u, 40)}×${n}` : clean(u, 40)));
  if (mine > 0) others.push(`you×${mine + 1}`);
  return others.length ? `online: ${others.join(', ')}` : 'no one else online';
}
