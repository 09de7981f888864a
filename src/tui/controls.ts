/**
 * Keyboard handling: Ctrl-C always quits; an open dialog or input line gets keys first; then the
 * focused panel's keys. Keys for actions this user may not do are ignored (and never shown).
 */
import type { TuiPort } from './port.js';
import { act, cancelTarget, confirm, openDetails, submitCreate, submitDelete, toggleFor } from './actions.js';
import { CreateForm, DeletePrompt, LineInput } from './forms.js';
import { helpLines, helpWidth, keyId, type Focus, type KeyEvent } from './keys.js';
import { SORT_KEYS, SORT_LETTERS } from './model.js';
import { canExtend, extendSelected, openReconcile, runCommandLine } from './ops.js';
import { openKubeconfig } from './kubeconfig.js';
import { clean, escapeTags } from './text.js';

/** Handles one keypress: Ctrl-C always quits; then the dialog, the input line or the main view gets it. */
export function onKey(app: TuiPort, ch: string | undefined, key: KeyEvent | undefined): void {
  const id = keyId(ch, key);
  if (id === null) return;
  app.activity();
  if (id === 'C-c') {
    askQuit(app);
    if (!app.closed) app.scheduler.now();
    return;
  }
  if (id === 'C-l') return app.repaint();
  if (app.layout.tooSmall) {
    if (id === 'q') app.quit();
    return;
  }
  if (app.dialog) dialogKey(app, id, ch, key);
  else if (app.input) inputKey(app, id, ch, key);
  else {
    if (app.message && !app.message.text.endsWith('…')) app.message = null;
    mainKey(app, id);
  }
  if (!app.closed) app.scheduler.now();
}

/** Quits, asking first when a form has input (Ctrl-C; `q` types into a form). */
function askQuit(app: TuiPort): void {
  const d = app.dialog;
  const typed = d?.kind === 'create' ? d.form.inputs.some((i) => i.value !== '') : d?.kind === 'delete' ? d.prompt.input.value !== '' : false;
  if (!typed || d?.kind === 'confirm') return app.quit();
  const back = d!;
  app.dialog = {
    kind: 'confirm',
    title: 'quit kindler?',
    lines: ['The form has input that will be lost.', 'Quit the session?', '', '{bold}y{/bold} quit  {bold}n{/bold}/{bold}esc{/bold} back to the form'],
    run: () => app.quit(),
  };
  (app.dialog as { back?: typeof back }).back = back;
}

function dialogKey(app: TuiPort, id: string, ch: string | undefined, key: KeyEvent | undefined): void {
  const d = app.dialog!;
  if (d.kind === 'confirm') {
    const back = (d as { back?: TuiPort['dialog'] }).back ?? null;
    if (id === 'y' || id === 'Y' || id === 'enter') {
      app.dialog = null;
      d.run();
    } else if (id === 'n' || id === 'N' || id === 'escape' || id === 'q') app.dialog = back;
    return;
  }
  if (d.kind === 'create') {
    const r = d.form.key(id, ch, key);
    if (r === 'cancel') app.dialog = null;
    else if (r === 'submit') submitCreate(app, d.form);
    return;
  }
  if (d.kind === 'delete') {
    const r = d.prompt.key(id, ch, key);
    if (r === 'cancel') app.dialog = null;
    else if (r === 'submit') submitDelete(app, d.prompt);
    return;
  }
  const total = d.kind === 'help' ? helpLines(app.helpFlags(), helpWidth(app.screen.width as number)).length : d.lines.length;
  switch (id) {
    case 'q':
    case 'escape':
    case 'enter':
    case '?':
      // q and esc close a view; only q on the main view quits.
      app.dialog = null;
      return;
    case 'up':
    case 'k':
      return app.overlay.scroll(-1, total);
    case 'down':
    case 'j':
      return app.overlay.scroll(1, total);
    case 'pageup':
      return app.overlay.scroll(-app.overlay.pageSize, total);
    case 'pagedown':
    case 'space':
      return app.overlay.scroll(app.overlay.pageSize, total);
    case 'home':
    case 'g':
      return app.overlay.scroll(-total, total);
    case 'end':
    case 'G':
      return app.overlay.scroll(total, total);
  }
}

function inputKey(app: TuiPort, id: string, ch: string | undefined, key: KeyEvent | undefined): void {
  const inp = app.input!;
  if (id === 'escape') {
    if (inp.kind === 'filter') app.filter = inp.before;
    else if (inp.kind === 'search') app.log.search(inp.before);
    app.input = null;
    return;
  }
  if (inp.kind === 'command') {
    if (id === 'enter') {
      app.input = null;
      const error = runCommandLine(app, inp.editor.value);
      // An unknown or refused command keeps the prompt open with the reason inline.
      if (error !== null && !app.closed) app.input = { ...inp, error };
    } else if (inp.editor.edit(id, ch, key)) inp.error = undefined;
    return;
  }
  if (id === 'enter') {
    app.input = null;
    if (inp.kind === 'search') {
      const n = app.log.search(inp.editor.value);
      if (inp.editor.value) app.say(n ? `${n} matching lines` : `no line matches "${inp.editor.value}"`, n === 0);
    }
    return;
  }
  if (inp.editor.edit(id, ch, key) && inp.kind === 'filter') {
    app.filter = inp.editor.value;
    app.pinnedTask = undefined;
    app.syncLog();
  }
}

function moveSelection(app: TuiPort, delta: number): void {
  if (app.focus === 'tasks') return app.pickTask(app.taskIdx + delta);
  const { rows, idx } = app.rows();
  if (rows.length) app.pickCluster(Math.max(0, Math.min(rows.length - 1, idx + delta)));
}

function mainKey(app: TuiPort, id: string): void {
  const logKeys = app.fullLog || app.focus === 'log';
  if (logKeys) {
    switch (id) {
      case 'up':
      case 'k':
        return app.log.scroll(-1);
      case 'down':
      case 'j':
        return app.log.scroll(1);
      case 'pageup':
        return app.log.page(-1);
      case 'pagedown':
      case 'space':
        return app.log.page(1);
      case 'home':
      case 'g':
        return app.log.home();
      case 'end':
      case 'G':
        return app.log.end();
      case 'n':
        return app.log.next(1);
      case 'N':
        return app.log.next(-1);
      case '/':
        app.input = { kind: 'search', editor: new LineInput(80), before: app.log.query };
        return;
    }
  } else {
    const page = app.focus === 'table' ? app.table.pageSize : 3;
    switch (id) {
      case 'up':
      case 'k':
        return moveSelection(app, -1);
      case 'down':
      case 'j':
        return moveSelection(app, 1);
      case 'pageup':
        return moveSelection(app, -page);
      case 'pagedown':
        return moveSelection(app, page);
      case 'home':
      case 'g':
        return moveSelection(app, -1e9);
      case 'end':
      case 'G':
        return moveSelection(app, 1e9);
      case 'enter':
        return openDetails(app);
      case '/':
        if (app.focus === 'table') {
          const editor = new LineInput(64);
          editor.value = app.filter;
          app.input = { kind: 'filter', editor, before: app.filter };
        }
        return;
      case 'S':
        if (app.focus === 'table') {
          app.sortIdx = (app.sortIdx + 1) % SORT_KEYS.length;
          app.sortDesc = false;
        }
        return;
      case 'm':
        if (app.focus === 'table') {
          app.mine = !app.mine;
          app.pinnedTask = undefined;
          app.syncLog();
        }
        return;
      case 'N':
      case 'A':
      case 'O':
      case 'E':
      case 'P':
      case 'C': {
        // Sort by a column (the table has focus; in the log, N is the previous match): again flips it.
        if (app.focus !== 'table') return;
        const i = SORT_KEYS.indexOf(SORT_LETTERS[id]!);
        if (i === app.sortIdx) app.sortDesc = !app.sortDesc;
        else {
          app.sortIdx = i;
          app.sortDesc = false;
        }
        return;
      }
    }
  }
  const c = app.selected();
  const panels = !app.fullLog && app.focus !== 'log';
  switch (id) {
    case 'q':
      if (app.fullLog) {
        app.fullLog = false;
        return;
      }
      return app.quit();
    case ':':
      app.input = { kind: 'command', editor: new LineInput(64), before: '' };
      return;
    case 'r':
      if (panels && app.backend.may('reconcile')) openReconcile(app);
      return;
    case 'e':
      if (panels && app.focus === 'table' && canExtend(app, c)) extendSelected(app, c);
      return;
    case 'K':
      if (panels && app.focus === 'table' && c && c.desired !== 'absent') openKubeconfig(app);
      return;
    case '?':
      app.dialog = { kind: 'help' };
      app.overlay.reset();
      return;
    case 'f':
      return app.log.toggleFollow();
    case 'w':
      return app.log.toggleWrap();
    case 't':
      return app.log.toggleTimes();
    case 'l':
      app.fullLog = !app.fullLog;
      if (!app.fullLog && app.focus === 'log') app.focus = 'table';
      return;
    case 'escape':
      if (app.fullLog) app.fullLog = false;
      else if (app.focus === 'log' && app.log.query) app.log.search('');
      else if (app.filter) app.filter = '';
      return;
    case 'tab':
    case 'S-tab': {
      if (app.fullLog) return;
      const order: Focus[] = ['table', 'tasks', 'log'];
      app.focus = order[(order.indexOf(app.focus) + (id === 'tab' ? 1 : 2)) % 3]!;
      if (app.focus === 'tasks') {
        const t = app.selectedTask();
        if (t) app.pinnedTask = t.id;
      } else if (app.focus === 'table') app.pinnedTask = undefined;
      app.syncLog();
      return;
    }
    case 'c':
      if (app.focus === 'table' && !app.fullLog && app.backend.may('create')) app.dialog = { kind: 'create', form: new CreateForm() };
      return;
    case 'd':
      if (app.focus === 'table' && !app.fullLog && c && app.backend.may('delete', c.owner)) {
        const busy = app.model.activeTaskFor(c.name);
        // Refused before any typing: the delete would only queue behind (or fight) the running task.
        if (busy)
          app.say(
            `cannot delete ${clean(c.name, 60)}: task ${clean(busy.id, 20)} (${busy.kind}, ${busy.state}) is still active; press x to cancel it first, or wait for it`,
            true,
          );
        else app.dialog = { kind: 'delete', prompt: new DeletePrompt(c.name) };
      }
      return;
    case 's': {
      const a = app.focus === 'table' && !app.fullLog ? toggleFor(app, c) : undefined;
      if (a && c) {
        const n = clean(c.name, 60);
        confirm(
          app,
          `${a} a cluster`,
          [
            `${a === 'stop' ? 'Stop' : 'Start'} cluster {bold}${escapeTags(n)}{/bold} (${escapeTags(clean(c.provider, 10))}, owner ${escapeTags(clean(c.owner, 40))})?`,
          ],
          () => act(app, `${a} ${n}`, (api) => api[a]({ name: c.name })),
        );
      }
      return;
    }
    case 'x': {
      const t = app.fullLog || app.focus === 'log' ? undefined : cancelTarget(app);
      if (t) {
        const what = `cancel ${clean(t.id, 20)} (${t.kind} ${clean(t.cluster, 60)})`;
        const other = t.user !== app.backend.principal.user ? `, started by {bold}${escapeTags(clean(t.user, 40))}{/bold}` : '';
        confirm(
          app,
          'cancel a task',
          [
            `Cancel task {bold}${escapeTags(clean(t.id, 20))}{/bold}: ${t.kind} of cluster {bold}${escapeTags(clean(t.cluster, 60))}{/bold} (${t.state}${other})?`,
          ],
          () => act(app, what, (api) => api.cancel({ id: t.id })),
        );
      }
      return;
    }
  }
}
