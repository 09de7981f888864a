/**
 * Selection and the log target: the visible clusters and the selected row (kept by name), the task
 * picked in the tasks panel, which task's log the log pane shows, and fetching that log's history
 * (finished tasks' logs are kept for quick reselection).
 */
import { isTerminal, type Cluster, type Task } from '../core/types.js';
import { sessionApi } from '../commands/session.js';
import { errorOf } from './forms.js';
import { LogBuffer } from './logbuffer.js';
import { SORT_KEYS } from './model.js';
import type { AppState } from './state.js';

/** Finished tasks' logs kept in memory for quick reselection. */
const LOG_CACHE = 4;

/** The visible clusters (sorted, filtered) and the selected row, keeping the selection by name. */
export function rows(app: AppState): { rows: Cluster[]; idx: number } {
  const rows = app.model.view(SORT_KEYS[app.sortIdx]!, app.filter, { desc: app.sortDesc, ...(app.mine ? { owner: app.backend.principal.user } : {}) });
  let idx = app.selName === undefined ? -1 : rows.findIndex((c) => c.name === app.selName);
  if (idx < 0) {
    idx = Math.max(0, Math.min(app.selIdx, rows.length - 1));
    app.selName = rows[idx]?.name;
  }
  app.selIdx = idx;
  return { rows, idx };
}

/** The selected cluster. */
export function selected(app: AppState): Cluster | undefined {
  const { rows, idx } = app.rows();
  return rows[idx];
}

/** Queued and running tasks, in panel order. */
export function activeTasks(app: AppState): Task[] {
  return app.model.activeTasks();
}

/** The selected task in the tasks panel (the picked one when it is still active). */
export function selectedTask(app: AppState): Task | undefined {
  const list = app.activeTasks();
  if (!list.length) return undefined;
  const pinned = app.pinnedTask ? list.findIndex((t) => t.id === app.pinnedTask) : -1;
  if (pinned >= 0) app.taskIdx = pinned;
  app.taskIdx = Math.max(0, Math.min(app.taskIdx, list.length - 1));
  return list[app.taskIdx];
}

/** Selects a table row (keys or mouse). */
export function pickCluster(app: AppState, i: number, byMouse = false): void {
  const { rows } = app.rows();
  if (!rows.length) return;
  app.selIdx = Math.max(0, Math.min(i, rows.length - 1));
  app.selName = rows[app.selIdx]!.name;
  app.pinnedTask = undefined;
  if (byMouse) {
    app.focus = 'table';
    app.activity();
  }
  app.syncLog();
  app.scheduler.now();
}

/** Selects a task in the tasks panel (keys or mouse); its log is shown. */
export function pickTask(app: AppState, i: number, byMouse = false): void {
  const list = app.activeTasks();
  if (!list.length) return;
  app.taskIdx = Math.max(0, Math.min(i, list.length - 1));
  app.pinnedTask = list[app.taskIdx]!.id;
  if (byMouse) {
    app.focus = 'tasks';
    app.activity();
  }
  app.syncLog();
  app.scheduler.now();
}

/** Which task's log to show: the picked task, else the selected cluster's latest task. */
export function logTarget(app: AppState): string | undefined {
  if (app.pinnedTask) return app.pinnedTask;
  const c = app.selected();
  return c ? app.model.latestTaskIdFor(c.name) : undefined;
}

/** Points the log pane at the current target, fetching its history the first time. */
export function syncLog(app: AppState): void {
  const id = app.logTarget();
  const cur = app.log.buffer;
  if ((cur?.taskId ?? undefined) === id) return;
  if (cur && cur.loaded && !cur.error && isTerminal(app.model.tasks.get(cur.taskId)?.state ?? 'running')) {
    app.logCache.delete(cur.taskId);
    app.logCache.set(cur.taskId, cur);
    while (app.logCache.size > LOG_CACHE) app.logCache.delete(app.logCache.keys().next().value!);
  }
  if (!id) {
    app.log.show(null, '');
    return;
  }
  const buf = app.logCache.get(id) ?? new LogBuffer(id);
  // A task seen from before its first line has no history to fetch: its lines all come live
  // (a fresh create shows its log at once, without a round trip while it floods).
  if (!buf.loaded && app.model.loaded && app.model.logStillEmpty(id)) buf.history([], undefined, 0);
  app.log.show(buf, '');
  if (!buf.loaded) app.fetchLog();
}

/** Fetches the end of the shown buffer's history, the session's `logs` of its last CAP lines (one request in flight). */
export function fetchLog(app: AppState): void {
  const buf = app.log.buffer;
  if (app.fetching || !buf || buf.loaded) return;
  const id = buf.taskId;
  app.fetching = id;
  const done = app.guard((j: { lines?: unknown; from?: unknown } | null, err?: unknown) => {
    app.fetching = null;
    if (app.log.buffer === buf && !buf.loaded) {
      let lines: string[] | null = null;
      let from = 0;
      let why: string | undefined;
      if (j) {
        if (Array.isArray(j.lines) && Number.isSafeInteger(j.from) && (j.from as number) >= 0) {
          lines = j.lines.map((l) => String(l));
          from = j.from as number;
        } else why = 'log unavailable: unexpected reply';
      } else why = `log unavailable: ${errorOf(err).message}`;
      const res = buf.history(lines, why, from);
      if (!res.ok) {
        const fresh = new LogBuffer(id);
        app.log.show(fresh, app.log.title);
      }
      app.log.changed();
      app.scheduler.request();
    }
    app.fetchLog();
  });
  sessionApi(app.backend)
    .logs({ ref: id, tail: buf.cap })
    .then(
      (r) => done(r),
      (e) => done(null, e),
    );
}
