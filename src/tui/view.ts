/**
 * The view a session leaves for the next session of the same key (sort, filters, focus, selection,
 * log toggles and position), and `:reset` back to the default one.
 */
import { SORT_KEYS } from './model.js';
import type { TuiViewState } from './options.js';
import type { AppState } from './state.js';

/** Takes over a previous session's view (sort, filters, focus, selection, log toggles); returns it if usable. */
export function restoreView(app: AppState, v: TuiViewState | undefined): TuiViewState | undefined {
  if (!v || typeof v !== 'object') return undefined;
  const sort = SORT_KEYS.indexOf(v.sort);
  if (sort >= 0) app.sortIdx = sort;
  app.sortDesc = v.desc === true;
  app.mine = v.mine === true;
  if (typeof v.filter === 'string') app.filter = v.filter.slice(0, 64);
  if (v.focus === 'table' || v.focus === 'tasks' || v.focus === 'log') app.focus = v.focus;
  app.fullLog = v.fullLog === true;
  if (typeof v.cluster === 'string') app.selName = v.cluster;
  if (typeof v.task === 'string') app.pinnedTask = v.task;
  app.log.wrap = v.wrap === true;
  app.log.times = v.times !== false;
  return v;
}

/** `:reset`: the view a first session opens on (the next session of app key opens on it too). */
export function resetView(app: AppState): void {
  app.restored = undefined;
  app.sortIdx = 0;
  app.sortDesc = false;
  app.mine = false;
  app.filter = '';
  app.focus = 'table';
  app.fullLog = false;
  app.pinnedTask = undefined;
  app.selIdx = 0;
  app.selName = undefined;
  app.log.wrap = false;
  app.log.times = true;
  app.log.search('');
  app.syncLog();
  app.log.end();
  app.remember();
}

/** Keeps app session's view for the next session of the same key (once the snapshot is in). */
export function remember(app: AppState): void {
  const mem = app.o.viewMemory;
  if (!mem || !app.model.loaded) return;
  const log = app.log.position();
  try {
    mem.set({
      ...(app.selName !== undefined ? { cluster: app.selName } : {}),
      ...(app.pinnedTask !== undefined ? { task: app.pinnedTask } : {}),
      focus: app.focus,
      fullLog: app.fullLog,
      filter: app.filter,
      sort: SORT_KEYS[app.sortIdx]!,
      desc: app.sortDesc,
      mine: app.mine,
      ...(log ? { log } : {}),
      wrap: app.log.wrap,
      times: app.log.times,
    });
  } catch {
    /* the keeper's problem */
  }
}
