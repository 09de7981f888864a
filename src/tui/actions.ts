/**
 * What the TUI does through verbs (always `backend.run`, exactly as the CLI): start/stop, cancel,
 * details, create and delete. Results land on the status line or inline in the open dialog.
 */
import type { VerbResult } from '../commands/session.js';
import { clusterDetails } from '../commands/format.js';
import type { Cluster, Task } from '../core/types.js';
import type { TuiApp } from './app.js';
import { verbError, type CreateForm, type DeletePrompt } from './forms.js';
import { escapeTags, plain } from './text.js';

/** The open dialog, if any. */
export type Dialog =
  | { kind: 'help' }
  | { kind: 'details'; name: string; lines: string[] }
  | { kind: 'create'; form: CreateForm }
  | { kind: 'delete'; prompt: DeletePrompt }
  | { kind: 'reconcile'; lines: string[] }
  | { kind: 'audit'; head: string[]; lines: string[] }
  /** A yes/no question naming what `run` would do (y or enter runs it; n or esc closes). */
  | { kind: 'confirm'; title: string; lines: string[]; run: () => void };

/** The task a successful mutating verb printed (`{task}` in its --json output). */
export function parseTask(out: string): Task | undefined {
  try {
    const j = JSON.parse(out) as { task?: Task };
    return j.task && typeof j.task.id === 'string' ? j.task : undefined;
  } catch {
    return undefined;
  }
}

/** Runs a verb and reports its task (or its one-line error) on the status line. */
export function act(app: TuiApp, what: string, argv: string[]): void {
  app.say(`${what}…`);
  app.backend.run(argv).then(
    app.guard((r: VerbResult) => {
      if (r.code === 0) {
        const t = parseTask(r.out);
        app.say(t ? `${what}: task ${t.id} ${t.state}` : `${what}: done`);
      } else app.say(`${what} failed: ${verbError(r.out, r.err).message}`, true);
    }),
    app.guard((e: unknown) => app.say(`${what} failed: ${(e as Error)?.message ?? e}`, true)),
  );
}

/** The start/stop toggle for a cluster by its state, when this user may do it. */
export function toggleFor(app: TuiApp, c: Cluster | undefined): 'start' | 'stop' | undefined {
  if (!c) return undefined;
  const a = c.actual === 'running' ? 'stop' : c.actual === 'stopped' ? 'start' : c.desired === 'stopped' ? 'start' : c.desired === 'present' ? 'stop' : undefined;
  return a && app.backend.may(a, c.owner) ? a : undefined;
}

/** The task `x` would cancel: the picked task (tasks panel) or the selected cluster's active task. */
export function cancelTarget(app: TuiApp): Task | undefined {
  const t = app.focus === 'tasks' ? app.selectedTask() : (() => {
    const c = app.selected();
    return c ? app.model.activeTaskFor(c.name) : undefined;
  })();
  if (!t) return undefined;
  const owner = app.model.clusters.get(t.cluster)?.owner;
  return app.backend.may('cancel', owner, t.user) ? t : undefined;
}

/** Opens the details overlay: `show NAME --json` rendered, including steps. */
export function openDetails(app: TuiApp): void {
  const c = app.focus === 'tasks' ? app.model.clusters.get(app.selectedTask()?.cluster ?? '') : app.selected();
  if (!c) return;
  const name = c.name;
  const d: Dialog = { kind: 'details', name, lines: ['{gray-fg}loading…{/gray-fg}'] };
  app.dialog = d;
  app.overlay.reset();
  app.backend.run(['show', name, '--json']).then(
    app.guard((r: VerbResult) => {
      if (r.code === 0) {
        try {
          const j = JSON.parse(r.out) as { cluster: Cluster; tasks?: Task[] };
          d.lines = clusterDetails(j.cluster, j.tasks ?? []).trimEnd().split('\n').map((l) => escapeTags(plain(l)));
        } catch {
          d.lines = ['{red-fg}unreadable reply from show{/red-fg}'];
        }
      } else d.lines = [`{red-fg}${escapeTags(verbError(r.out, r.err).message)}{/red-fg}`];
      app.scheduler.request();
    }),
    app.guard((e: unknown) => {
      d.lines = [`{red-fg}${escapeTags(plain((e as Error)?.message ?? e))}{/red-fg}`];
      app.scheduler.request();
    }),
  );
}

/** Runs the create form; a failure stays in the form as one inline line. */
export function submitCreate(app: TuiApp, form: CreateForm): void {
  form.busy = true;
  form.error = undefined;
  form.errorField = undefined;
  const argv = form.argv();
  const name = argv[argv.length - 1] === '--' ? '' : argv[argv.length - 1]!;
  app.backend.run(argv).then(
    app.guard((r: VerbResult) => {
      if (r.code === 0) {
        const t = parseTask(r.out);
        if (app.dialog?.kind === 'create' && app.dialog.form === form) app.dialog = null;
        app.selName = name || app.selName;
        app.pinnedTask = undefined;
        app.focus = 'table';
        app.say(`create ${name}: task ${t?.id ?? '?'} ${t?.state ?? 'queued'}`);
        app.syncLog();
      } else {
        const e = verbError(r.out, r.err);
        form.fail(e.message, e.field);
      }
      app.scheduler.request();
    }),
    app.guard((e: unknown) => {
      form.fail(plain((e as Error)?.message ?? e, 200));
      app.scheduler.request();
    }),
  );
}

/** Runs `delete NAME --json` once the name was typed; a failure stays in the prompt. */
export function submitDelete(app: TuiApp, p: DeletePrompt): void {
  p.busy = true;
  app.backend.run(['delete', p.name, '--json']).then(
    app.guard((r: VerbResult) => {
      if (r.code === 0) {
        const t = parseTask(r.out);
        if (app.dialog?.kind === 'delete' && app.dialog.prompt === p) app.dialog = null;
        app.say(`delete ${p.name}: task ${t?.id ?? '?'} ${t?.state ?? 'queued'}`);
      } else p.fail(verbError(r.out, r.err).message);
      app.scheduler.request();
    }),
    app.guard((e: unknown) => {
      p.fail(plain((e as Error)?.message ?? e, 200));
      app.scheduler.request();
    }),
  );
}

/** Asks before `run`: a yes/no dialog whose lines name the target. */
export function confirm(app: TuiApp, title: string, question: string[], run: () => void): void {
  app.dialog = { kind: 'confirm', title, lines: [...question, '', '{bold}y{/bold} yes  {bold}n{/bold}/{bold}esc{/bold} no'], run };
  app.overlay.reset();
}
