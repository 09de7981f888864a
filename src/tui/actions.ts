/**
 * What the TUI does through the session's typed verbs (the same checks, authorization and errors as
 * the CLI): start/stop, cancel, details, create and delete. Results land on the status line or
 * inline in the open dialog.
 */
import type { ShowResult } from '../commands/api.js';
import { sessionApi, type SessionApi } from '../commands/session.js';
import { clusterDetails } from '../commands/format.js';
import type { Cluster, Task } from '../core/types.js';
import type { Dialog, TuiPort } from './port.js';
import { errorOf, type CreateForm, type DeletePrompt } from './forms.js';
import { escapeTags, plain } from './text.js';
import { stateSymbol } from './model.js';

/** The open dialog, if any. */
export type { Dialog } from './port.js';

/** The task a mutating verb answered with, when it is one. */
function taskOf(t: Task | undefined): Task | undefined {
  return t && typeof t.id === 'string' ? t : undefined;
}

/** Runs a typed verb and reports its task (or its one-line error) on the status line. */
export function act(app: TuiPort, what: string, call: (api: SessionApi) => Promise<Task>): void {
  app.say(`${what}…`);
  call(sessionApi(app.backend)).then(
    app.guard((r: Task | undefined) => {
      const t = taskOf(r);
      app.say(t ? `${what}: task ${t.id} ${t.state}` : `${what}: done`);
    }),
    app.guard((e: unknown) => app.say(`${what} failed: ${errorOf(e).message}`, true)),
  );
}

/** The start/stop toggle for a cluster by its state, when this user may do it. */
export function toggleFor(app: TuiPort, c: Cluster | undefined): 'start' | 'stop' | undefined {
  if (!c) return undefined;
  const a =
    c.actual === 'running' ? 'stop' : c.actual === 'stopped' ? 'start' : c.desired === 'stopped' ? 'start' : c.desired === 'present' ? 'stop' : undefined;
  return a && app.backend.may(a, c.owner) ? a : undefined;
}

/** The task `x` would cancel: the picked task (tasks panel) or the selected cluster's active task. */
export function cancelTarget(app: TuiPort): Task | undefined {
  const t =
    app.focus === 'tasks'
      ? app.selectedTask()
      : (() => {
          const c = app.selected();
          return c ? app.model.activeTaskFor(c.name) : undefined;
        })();
  if (!t) return undefined;
  const owner = app.model.clusters.get(t.cluster)?.owner;
  return app.backend.may('cancel', owner, t.user) ? t : undefined;
}

/** The node containers a cluster's record implies (names by the provider's scheme), with their role. */
export function clusterNodes(c: Cluster): { name: string; role: string }[] {
  const servers = Math.max(0, Math.min(50, Number(c.servers) || 0));
  const agents = Math.max(0, Math.min(50, Number(c.agents) || 0));
  const out: { name: string; role: string }[] = [];
  const kind = c.provider === 'kind';
  for (let i = 0; i < servers; i++)
    out.push({ name: kind ? `${c.name}-control-plane${i ? i + 1 : ''}` : `k3d-${c.name}-server-${i}`, role: kind ? 'control-plane' : 'server' });
  for (let i = 0; i < agents; i++) out.push({ name: kind ? `${c.name}-worker${i ? i + 1 : ''}` : `k3d-${c.name}-agent-${i}`, role: kind ? 'worker' : 'agent' });
  if (!kind && servers > 0) out.push({ name: `k3d-${c.name}-serverlb`, role: 'loadbalancer' });
  return out;
}

/** What `show NAME --live` adds: the provider's answer now, or why it could not be had. */
export type LiveContainers = { state: string; containers: { name: string; role: string; state: string }[] } | { error: string };

/** The cluster view (enter): nodes and their state, ports, the kubeconfig command, then the record, steps and recent tasks. */
export function clusterViewLines(c: Cluster, tasks: Task[], cli: string, noColor = false, live?: LiveContainers): string[] {
  const t = (v: unknown) => escapeTags(plain(v, 400));
  const state = String(c.actual);
  const paint = (s: string) => {
    const sgr = noColor
      ? undefined
      : state === 'running'
        ? 'green'
        : state === 'failed'
          ? 'red'
          : state === 'stopped'
            ? 'gray'
            : state === 'creating' || state === 'deleting'
              ? 'yellow'
              : undefined;
    return sgr ? `{${sgr}-fg}${s}{/${sgr}-fg}` : s;
  };
  const nodes = clusterNodes(c);
  const w = Math.max(10, ...nodes.map((n) => n.name.length));
  const port = (v: unknown) => (v === undefined || v === null || v === '' ? '-' : t(v));
  const ssh = cli.startsWith('ssh ');
  const [record = '', ...more] = clusterDetails(c, tasks).trimEnd().split('\n\n');
  const lines = (text: string) => text.split('\n').map((l) => escapeTags(plain(l)));
  // Each container's own docker state when the provider answered (docker's words: running, exited,
  // paused, …); the recorded cluster state otherwise, labelled as such.
  const dockerPaint = (s: string, text: string) => {
    const sgr = noColor
      ? undefined
      : s === 'running'
        ? 'green'
        : s === 'exited' || s === 'dead'
          ? 'red'
          : s === 'created' || s === 'paused' || s === 'restarting'
            ? 'yellow'
            : undefined;
    return sgr ? `{${sgr}-fg}${text}{/${sgr}-fg}` : text;
  };
  const nodeLines = (): string[] => {
    if (live && !('error' in live)) {
      const lw = Math.max(10, ...live.containers.map((x) => plain(x.name, 80).length));
      return [
        `{bold}nodes{/bold} (${live.containers.length} containers, as docker reports them now; the provider says ${t(live.state)})`,
        ...(live.containers.length
          ? live.containers.map(
              (x) =>
                `  ${dockerPaint(x.state, x.state === 'running' ? '●' : '○')} ${t(plain(x.name, 80).padEnd(lw))}  ${t(plain(x.role, 20).padEnd(13))} ${dockerPaint(x.state, t(x.state))}`,
            )
          : ['  (no containers)']),
      ];
    }
    return [
      `{bold}nodes{/bold} (${nodes.length}; their state as recorded${live ? ` — the provider could not be asked: ${t(live.error)}` : ''})`,
      ...(nodes.length
        ? nodes.map((n) => `  ${paint(stateSymbol(state))} ${t(n.name.padEnd(w))}  ${n.role.padEnd(13)} ${paint(t(state))}`)
        : ['  (none recorded)']),
    ];
  };
  return [
    `{bold}${t(c.name)}{/bold}  ${t(c.provider)}  ${paint(`${stateSymbol(state)} ${t(state)}`)} (desired ${t(c.desired)})  owner ${t(c.owner)}`,
    ...(c.lastError ? [`{red-fg}last error  ${t(c.lastError)}{/red-fg}`] : []),
    `{bold}ports{/bold}       http ${port(c.httpPort)}   https ${port(c.httpsPort)}   api ${port(c.apiPort)}   domain ${port(c.domain)}`,
    `{bold}kubeconfig{/bold}  ${t(`${cli} kubeconfig ${c.name}${ssh ? ` > kindler-${c.name}.yaml` : ''}`)}   (K: with the tunnel command)`,
    ...nodeLines(),
    ...more.flatMap((m) => ['', ...lines(m)]),
    '',
    '{bold}record{/bold}',
    ...lines(record),
    '',
    `{gray-fg}esc back · ${t(`${cli} show ${c.name}`)} prints this record{/gray-fg}`,
  ];
}

/** Opens the cluster view: `show NAME --live` rendered (nodes, ports, kubeconfig command, record, steps, recent tasks). */
export function openDetails(app: TuiPort): void {
  const c = app.focus === 'tasks' ? app.model.clusters.get(app.selectedTask()?.cluster ?? '') : app.selected();
  if (!c) return;
  const name = c.name;
  const d: Dialog = { kind: 'details', name, lines: ['{gray-fg}loading…{/gray-fg}'] };
  app.dialog = d;
  app.overlay.reset();
  sessionApi(app.backend)
    .show({ name, live: true })
    .then(
      app.guard((j: ShowResult) => {
        try {
          d.lines = clusterViewLines(j.cluster, j.tasks ?? [], app.cli, app.log.noColor, j.live);
        } catch {
          d.lines = ['{red-fg}unreadable reply from show{/red-fg}'];
        }
        app.scheduler.request();
      }),
      app.guard((e: unknown) => {
        d.lines = [`{red-fg}${escapeTags(errorOf(e).message)}{/red-fg}`];
        app.scheduler.request();
      }),
    );
}

/** Runs the create form; a failure stays in the form as one inline line. */
export function submitCreate(app: TuiPort, form: CreateForm): void {
  form.busy = true;
  form.error = undefined;
  form.errorField = undefined;
  const args = form.args();
  const name = args.name;
  sessionApi(app.backend)
    .create(args)
    .then(
      app.guard((r: Task | undefined) => {
        const t = taskOf(r);
        if (app.dialog?.kind === 'create' && app.dialog.form === form) app.dialog = null;
        app.selName = name || app.selName;
        app.pinnedTask = undefined;
        app.focus = 'table';
        app.say(`create ${name}: task ${t?.id ?? '?'} ${t?.state ?? 'queued'}`);
        app.syncLog();
        app.scheduler.request();
      }),
      app.guard((e: unknown) => {
        const x = errorOf(e);
        form.fail(x.message, x.field);
        app.scheduler.request();
      }),
    );
}

/** Runs `delete NAME` once the name was typed; a failure stays in the prompt. */
export function submitDelete(app: TuiPort, p: DeletePrompt): void {
  p.busy = true;
  sessionApi(app.backend)
    .delete({ name: p.name })
    .then(
      app.guard((r: Task | undefined) => {
        const t = taskOf(r);
        if (app.dialog?.kind === 'delete' && app.dialog.prompt === p) app.dialog = null;
        app.say(`delete ${p.name}: task ${t?.id ?? '?'} ${t?.state ?? 'queued'}`);
        app.scheduler.request();
      }),
      app.guard((e: unknown) => {
        p.fail(errorOf(e).message);
        app.scheduler.request();
      }),
    );
}

/** Asks before `run`: a yes/no dialog whose lines name the target. */
export function confirm(app: TuiPort, title: string, question: string[], run: () => void): void {
  app.dialog = { kind: 'confirm', title, lines: [...question, '', '{bold}y{/bold} yes  {bold}n{/bold}/{bold}esc{/bold} no'], run };
  app.overlay.reset();
}
