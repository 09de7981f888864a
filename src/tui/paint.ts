/**
 * Drawing a frame: the layout, every panel's text (each updated only if it changed), the dialog,
 * then the frame itself, sent at once or taken from another session that drew the same step
 * (frames.ts); and when a time on screen next changes by itself.
 */
import type { Cluster, Task } from '../core/types.js';
import { TTL_WARN_MS } from '../core/expiry.js';
import { cancelTarget, toggleFor } from './actions.js';
import { dropGrids, frameKey, restoreGrids, sharedFrames, snapshotGrids, VERIFY_FRAMES } from './frames.js';
import { commandNames, fitHints, helpLines, helpWidth, mainHints } from './keys.js';
import { computeLayout, tooSmallText, type Layout } from './layout.js';
import { presence, SORT_KEYS, storageNotice } from './model.js';
import { bannerLines, canExtend, expiringSoon } from './ops.js';
import type { TuiOptions } from './options.js';
import type { AppState } from './state.js';
import { clean, countdownChangesAt, escapeTags, plain, sinceChangesAt, truncate, untilChangesAt } from './text.js';
import { applyPending, place, setText } from './widgets.js';

/** The create form's width (it never changes while typing). */
const CREATE_WIDTH = 78;

/** Bytes of frames the terminal may have outstanding before the next frame waits for 'drain'. */
export const OUTPUT_BACKLOG = 64 * 1024;

/**
 * Draws one frame: each panel is updated only if its text changed; renders only on change.
 * While the terminal has not taken the last frames (a slow or frozen client), no frame is drawn:
 * the next one comes when the output drains, so a client never makes the daemon buffer more than
 * OUTPUT_BACKLOG bytes of frames for it (and frames in between are skipped, not queued).
 */
export function flush(app: AppState): void {
  if (app.closed) return;
  const out = app.o.output as TuiOptions['output'] & { writableLength?: number };
  if ((out.writableLength ?? 0) > OUTPUT_BACKLOG) {
    if (!app.awaitingDrain) {
      app.awaitingDrain = true;
      out.once(
        'drain',
        app.guard(() => {
          app.awaitingDrain = false;
          app.scheduler.request();
        }),
      );
    }
    return;
  }
  if (app.pendingSize) app.reflow();
  const cols = app.screen.width as number;
  const rows = app.screen.height as number;
  const active = app.activeTasks();
  const now = Date.now();
  // Every session warns about clusters about to expire, whatever the filter or view.
  const soon = app.model.loaded ? expiringSoon(app.model.clusters.values(), now) : [];
  const warnings = bannerLines(soon, now, cols - 2, (c) => canExtend(app, c));
  const layout = computeLayout(cols, rows, { fullLog: app.fullLog, activeTasks: active.length, banner: warnings.length });
  const key = JSON.stringify(layout);
  let changed = false;
  if (key !== app.layoutKey) {
    app.layoutKey = key;
    app.layout = layout;
    changed = true;
    const main = !layout.tooSmall;
    place(app.header, layout.header, cols, main);
    place(app.table.frame, layout.table, cols, main);
    place(app.tasks.frame, layout.tasks, cols, main);
    place(app.log.frame, layout.log, cols, main);
    place(app.banner, layout.banner, cols, main);
    place(app.status, layout.status, cols, main);
    place(app.footer, layout.footer, cols, main);
    if (layout.tooSmall) {
      app.overlay.hide();
      app.small.show();
      app.small.setFront();
    } else app.small.hide();
  }
  if (layout.tooSmall) {
    changed = setText(app.small, tooSmallText(cols, rows)) || changed;
    app.wake.stop();
    if (changed) app.draw();
    return;
  }
  const { rows: clusters, idx } = app.rows();
  const me = app.backend.principal;
  const notSaved = app.model.loaded ? storageNotice(app.model.storage) : '';
  const hdr = [
    '{bold}kindler{/bold}',
    // Second, so that a narrow terminal still shows it.
    ...(notSaved ? [`{red-bg}{bold}${escapeTags(notSaved)}{/bold}{/red-bg}`] : []),
    escapeTags(clean(app.backend.host, 60)),
    `${escapeTags(clean(me.user, 40))} (${escapeTags(clean(me.role, 20))})`,
    app.model.loaded ? escapeTags(presence(app.model.sessions, me.user)) : 'connecting…',
  ].join(' │ ');
  changed = setText(app.header, ` ${hdr}`) || changed;

  const sortKey = SORT_KEYS[app.sortIdx]!;
  const total = app.model.clusters.size;
  const narrowed = Boolean(app.filter) || app.mine;
  const label = ` clusters ${narrowed ? `${clusters.length}/${total}` : `(${total})`}${app.mine ? ' · mine' : ''} · sort: ${sortKey}${app.sortDesc ? '↓' : '↑'}${app.filter ? ` · filter: ${truncate(plain(app.filter), 20)}` : ''} `;
  const emptyText = !app.model.loaded
    ? 'loading…'
    : total === 0
      ? `no clusters${app.backend.may('create') ? ' (press c to create one)' : ''}`
      : app.mine && !app.filter
        ? 'you own no cluster (m shows all)'
        : `no cluster matches the filter (${app.mine ? 'm shows all, ' : ''}esc clears it)`;
  if (layout.table.height > 0) {
    changed =
      app.table.update({
        clusters,
        selected: idx,
        label,
        emptyText,
        focused: app.focus === 'table',
        width: cols,
        nowMs: now,
        sort: { key: sortKey, desc: app.sortDesc },
      }) || changed;
    app.selectedTask();
    changed = app.tasks.update({ tasks: active, selected: app.taskIdx, focused: app.focus === 'tasks', width: cols, nowMs: now }) || changed;
  }

  const shown = app.log.buffer ? app.model.tasks.get(app.log.buffer.taskId) : undefined;
  if (!app.log.buffer) {
    app.log.placeholder = !app.model.loaded ? 'connecting…' : app.selected() ? 'no tasks for app cluster yet' : 'no cluster selected';
  } else if (!app.log.buffer.loaded) app.log.placeholder = `loading the log of ${clean(app.log.buffer.taskId, 20)}…`;
  app.log.title = app.log.buffer
    ? shown
      ? `${clean(shown.id, 20)} ${shown.kind} ${clean(shown.cluster, 40)} · ${shown.state}${shown.state === 'running' ? ` ${Math.round(Number(shown.progress) || 0)}%` : ''}`
      : clean(app.log.buffer.taskId, 20)
    : '';
  changed = app.log.update({ focused: app.focus === 'log' || app.fullLog, width: cols }) || changed;

  if (layout.banner.height > 0) changed = setText(app.banner, warnings.map((l) => ` ${l}`).join('\n')) || changed;
  changed = setText(app.status, app.statusText(cols)) || changed;
  changed = setText(app.footer, ` ${app.footerText(cols - 2)}`) || changed;

  const d = app.dialog;
  if (d) {
    const view =
      d.kind === 'help'
        ? { title: 'keys', lines: helpLines(app.helpFlags(), helpWidth(cols)), size: 'dialog' as const }
        : d.kind === 'details'
          ? { title: `cluster ${clean(d.name, 60)}`, lines: d.lines, size: 'large' as const }
          : d.kind === 'reconcile'
            ? { title: 'reconcile', lines: d.lines, size: 'dialog' as const }
            : d.kind === 'audit'
              ? { title: 'audit (newest last)', head: d.head, lines: d.lines, size: 'large' as const }
              : d.kind === 'create'
                ? { title: 'create a cluster', lines: d.form.lines(Math.min(cols - 4, CREATE_WIDTH) - 2), size: 'dialog' as const, width: CREATE_WIDTH }
                : d.kind === 'confirm'
                  ? { title: d.title, lines: d.lines, size: 'dialog' as const }
                  : { title: 'delete a cluster', lines: d.prompt.lines(), size: 'dialog' as const };
    changed = app.overlay.update({ ...view, cols, rows }) || changed;
  } else changed = app.overlay.hide() || changed;

  if (changed) app.draw();
  app.wake.at(app.nextTimeChange(now, clusters, active, layout));
}

/**
 * When a time on screen next reads differently by itself: an EXPIRES cell of a row on screen, a
 * running task's elapsed time in the tasks panel, a warning's countdown, or any cluster entering
 * or leaving the warning window (seen in every view). Infinity: nothing on screen changes with the
 * clock. The frame comes then, and only then (not every second).
 */
export function nextTimeChange(app: AppState, now: number, clusters: Cluster[], active: Task[], layout: Layout): number {
  let next = Infinity;
  if (layout.table.height > 0) {
    const [first, end] = app.table.visible;
    for (let i = first; i < end && i < clusters.length; i++) next = Math.min(next, untilChangesAt(clusters[i]!.expiresAt, now));
  }
  if (layout.tasks.height > 0) for (const t of active) if (t.state === 'running') next = Math.min(next, sinceChangesAt(t.startedAt ?? t.createdAt, now));
  for (const at of app.model.expiries()) {
    if (at <= now) continue;
    if (at - now > TTL_WARN_MS) {
      // Sorted: every later one enters the window later still.
      next = Math.min(next, at - TTL_WARN_MS);
      break;
    }
    next = Math.min(next, countdownChangesAt(at, now));
  }
  return next;
}

/**
 * Renders and sends the frame at once. blessed queues a frame's bytes until setImmediate: with
 * many sessions redrawn for one event (timers that fire together), no session got a byte until
 * every session had rendered. Flushing here sends each frame as soon as it is drawn.
 */
export function draw(app: AppState): void {
  const program = app.screen.program as unknown as { cols: number; rows: number; flush(): void; _buf?: string };
  if (!app.drawnState) app.cleared();
  const key = frameKey(app.screen, app.o.noColor ? 'mono' : 'colour');
  if (key === app.drawnKey) return;
  const to = sharedFrames.state(key);
  const from = app.drawnState!;
  const shared = to.snap && sharedFrames.enabled ? sharedFrames.frame(from.id, to.id) : undefined;
  if (shared !== undefined && !VERIFY_FRAMES) {
    // Another session drew app very step: its bytes, without rendering here.
    sharedFrames.stats.hits++;
    program.flush();
    if ((app.o.output as { writable?: boolean }).writable !== false) app.o.output.write(shared);
    if (!app.staleGrids) dropGrids(app.screen);
    app.staleGrids = to.snap;
    app.drawnState = to;
    app.drawnKey = key;
    return;
  }
  sharedFrames.stats.misses++;
  // Checking: render from what a session that took the last frame shared would hold.
  if (VERIFY_FRAMES && shared !== undefined && from.snap && !app.staleGrids) {
    dropGrids(app.screen);
    app.staleGrids = from.snap;
  }
  if (app.staleGrids) restoreGrids(app.screen, app.staleGrids);
  app.staleGrids = null;
  applyPending(app.screen);
  // Whatever blessed had queued goes first, so that the frame's bytes are the frame alone.
  program.flush();
  app.screen.render();
  const bytes = program._buf ?? '';
  program.flush();
  if (shared !== undefined) {
    sharedFrames.stats.verified++;
    if (shared !== bytes) throw new Error('a shared frame differs from the rendered one');
  }
  sharedFrames.put(from.id, to.id, bytes);
  if (!to.snap) sharedFrames.keep(key, to, snapshotGrids(app.screen, program.cols, program.rows));
  app.drawnState = to;
  app.drawnKey = key;
}

/** The terminal was cleared with blessed's grids (a new session, a reflow, Ctrl-L): blank cells at app size. */
export function cleared(app: AppState): void {
  const program = app.screen.program as unknown as { cols: number; rows: number };
  const key = `\x00blank ${program.cols}x${program.rows}`;
  const st = sharedFrames.state(key);
  // (Grids that were let go of read as blank cells.)
  const snap = st.snap ?? snapshotGrids(app.screen, program.cols, program.rows);
  sharedFrames.keep(key, st, snap);
  // Grids let go of stay so until a frame renders here (reflow() did not make them again).
  app.staleGrids = app.staleGrids ? snap : null;
  app.drawnState = st;
  app.drawnKey = key;
}

/** The status line: idle warning, input line, or the last message. */
export function statusText(app: AppState, cols: number): string {
  let s: string;
  if (app.idleText) s = `{yellow-fg}{bold}${escapeTags(truncate(app.idleText, cols - 2))}{/bold}{/yellow-fg}`;
  else if (app.input) {
    const p = app.input.kind === 'filter' ? 'filter clusters: ' : app.input.kind === 'search' ? 'search the log: ' : ':';
    s = `{bold}${p}{/bold}${app.input.editor.show(true)}`;
    if (app.input.error) s += `  {red-fg}✗ ${escapeTags(truncate(app.input.error, Math.max(10, cols - 8 - app.input.editor.value.length)))}{/red-fg}`;
  } else if (app.message) {
    const t = escapeTags(truncate(app.message.text, cols - 2));
    s = app.message.error ? `{red-fg}${t}{/red-fg}` : t;
  } else {
    // A failed cluster's last error, while it is selected and nothing else is said.
    const c = app.layout.table.height > 0 && !app.dialog ? app.selected() : undefined;
    s =
      c?.actual === 'failed'
        ? `{red-fg}✗ ${escapeTags(truncate(`${clean(c.name, 60)} last error: ${clean(c.lastError ?? 'see its last task log')}`, cols - 4))}{/red-fg}`
        : '';
  }
  return ` ${s}`;
}

/** The key hints valid right now, for app user. */
export function footerText(app: AppState, width: number): string {
  const d = app.dialog;
  if (d?.kind === 'create' || d?.kind === 'delete') return '{bold}enter{/bold} confirm  {bold}esc{/bold} cancel  {bold}Ctrl-C{/bold} quit';
  if (d?.kind === 'confirm') return '{bold}y{/bold} yes  {bold}n/esc{/bold} no';
  if (d) return '{bold}↑↓{/bold} scroll  {bold}q/esc{/bold} close';
  if (app.input?.kind === 'command') return `{bold}enter{/bold} run  {bold}esc{/bold} cancel  ${escapeTags(commandNames(app.helpFlags()).join(' '))}`;
  if (app.input) return '{bold}enter{/bold} apply  {bold}esc{/bold} cancel';
  const c = app.selected();
  const canCancel = !app.fullLog && app.focus !== 'log' && Boolean(cancelTarget(app));
  return fitHints(
    mainHints({
      focus: app.focus,
      fullLog: app.fullLog,
      hasCluster: Boolean(c) || (app.focus === 'tasks' && Boolean(app.selectedTask())),
      canCreate: app.backend.may('create'),
      canDelete: Boolean(c && app.backend.may('delete', c.owner)),
      ...(toggleFor(app, c) ? { toggle: toggleFor(app, c)! } : {}),
      canCancel,
      canExtend: canExtend(app, c),
      canReconcile: app.backend.may('reconcile'),
      following: app.log.follow,
      searching: Boolean(app.log.query),
    }),
    width,
  );
}
