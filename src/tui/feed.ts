/**
 * A session's side of the feed: the snapshot, then the events (held until the snapshot is in),
 * applied to the model and the shown log; a task that ends here is said on the status line.
 */
import type { EngineEvent, Snapshot } from '../core/feed.js';
import { isTerminal, type Task } from '../core/types.js';
import { LogBuffer } from './logbuffer.js';
import type { AppState } from './state.js';
import { clean, plain } from './text.js';

/** The snapshot arrived: load it, then the events that came before it. */
export function loaded(app: AppState, snapshot: Snapshot): void {
  app.model.load(snapshot);
  for (const e of app.early.splice(0)) app.apply(e);
  app.syncLog();
  if (app.restored) {
    app.log.restore(app.restored.log);
    app.say('your last view is back (cluster, filter, sort, focus, log position); :reset for the default one');
  }
  app.scheduler.now();
}

/** A feed event: held until the snapshot is in, then applied. */
export function onEvent(app: AppState, e: EngineEvent): void {
  if (!app.model.loaded) {
    app.early.push(e);
    return;
  }
  app.apply(e);
}

/** Applies an event to the model (and the shown log), then asks for a frame. */
export function apply(app: AppState, e: EngineEvent): void {
  const before = e.type === 'task' ? app.model.tasks.get(e.task.id)?.state : undefined;
  const change = app.model.apply(e);
  if (!change) return;
  if (e.type === 'task' && change === 'tasks' && isTerminal(e.task.state) && before !== e.task.state) app.taskEnded(e.task);
  if (change === 'log') {
    if (e.type !== 'log') return;
    const buf = app.log.buffer;
    if (!buf || buf.taskId !== e.taskId || !Array.isArray(e.lines) || typeof e.from !== 'number') return;
    const skipped = typeof e.skipped === 'number' && e.skipped > 0 ? e.skipped : 0;
    const r = buf.live(e.from, e.lines, skipped);
    if (!r.ok) {
      // A gap in the live feed: start over from the verb's full copy.
      const fresh = new LogBuffer(buf.taskId);
      fresh.live(e.from, e.lines, skipped);
      app.log.show(fresh, app.log.title);
      app.fetchLog();
    }
    app.log.changed();
  } else {
    app.syncLog();
  }
  app.scheduler.request();
}

/**
 * A task ended: its outcome replaces the status line when it is app user's task, or one on the
 * cluster selected (or task picked) here; it stays until the next message or key supersedes it.
 */
export function taskEnded(app: AppState, t: Task): void {
  const mine = t.user === app.backend.principal.user;
  const looking = app.selected()?.name === t.cluster || app.pinnedTask === t.id || app.log.buffer?.taskId === t.id;
  if (!mine && !looking) return;
  const what = `${t.kind} ${clean(t.cluster, 60)}: task ${clean(t.id, 20)}`;
  const by = mine ? '' : ` (started by ${clean(t.user, 40)})`;
  if (t.state === 'succeeded') app.say(`✓ ${what} succeeded${by}`);
  else if (t.state === 'failed') app.say(`✗ ${what} failed${by}: ${plain(t.error?.reason ?? 'see its log', 200)}`, true);
  else app.say(`${what} ${t.state}${by}`, t.state !== 'cancelled');
}
