/**
 * Stage: a shell request with a pty opens the TUI (src/tui, loaded on the first shell) on the channel:
 * the channel made to look like a TTY for blessed, keys fed through a TtyInput (mouse reports split
 * one per chunk), engine events delivered inside the session's guard, the view a key's last session
 * left restored on reconnect. Without a pty a shell gets noTerminalHint() instead (see requests.ts).
 */
import type { ServerChannel } from 'ssh2';
import type { TuiOptions, TuiViewState } from '../tui/index.js';
import { verbNames } from '../commands/index.js';
import { wrapWords } from '../commands/parse.js';
import type { SessionBackend } from '../commands/session.js';
import { EXIT } from '../core/errors.js';
import { errText, type Sess, type SshCore } from './core.js';
import { splitMouseReports } from './mouse.js';
import type { OpenTui } from './options.js';
import type { Sessions } from './session.js';
import { TtyInput } from './tty.js';
import { ViewKeeper } from './views.js';

/** What a shell request without a terminal gets on stderr: how to get the TUI, or which verbs to run. */
export function noTerminalHint(): string {
  return [
    'kindler: the terminal UI needs a terminal, and this session has none.',
    '  for the TUI:   ssh -t HOST',
    '  or run a verb: ssh HOST list   (ssh HOST help describes them, ssh HOST help VERB one of them)',
    ...wrapWords(`verbs: ${verbNames().join(', ')}`, 78).map((l, i) => (i ? `  ${l}` : l)),
    '',
  ].join('\n');
}

const TUI_MODULE = '../tui/index.js';
let tuiLoad: Promise<OpenTui> | undefined;
function loadTui(): Promise<OpenTui> {
  tuiLoad ??= (import(TUI_MODULE) as Promise<{ openTui?: OpenTui }>).then((m) => {
    if (typeof m.openTui !== 'function') throw new Error(`${TUI_MODULE} does not export openTui`);
    return m.openTui;
  });
  tuiLoad.catch(() => (tuiLoad = undefined));
  return tuiLoad;
}

export function createShell(core: SshCore, sessions: Sessions) {
  const { opts, service, users, log, limits, maxTui, who } = core;
  const { write, finish, onChannelGone, guarded, principalOf, refuseGone } = sessions;
  // The view each key's last TUI session left (at most 200 keys, for an hour; memory only).
  const views = new ViewKeeper<TuiViewState>(200, 60 * 60 * 1000);

  const startShell = async (s: Sess, ch: ServerChannel, noColor = false) => {
    let openTui: OpenTui;
    try {
      openTui = opts.openTui ?? (await loadTui());
    } catch (e) {
      log('error', `ssh: ${who(s.conn)}: the terminal UI cannot be loaded: ${errText(e)}`);
      write(s, 'kindler: the terminal UI is not available on this host; run verbs instead: ssh HOST help\n', true);
      return finish(s, EXIT.failed, 'no TUI');
    }
    if (s.finished) return;
    const principal = principalOf(s);
    if (!principal) return refuseGone(s);
    const { cols, rows } = s.pty!;
    Object.assign(ch, { isTTY: true, columns: cols, rows, isRaw: true, setRawMode: () => ch });
    const input = new TtyInput(cols, rows);
    s.input = input;
    ch.on('data', (d: Buffer) => {
      if (s.tuiDone) return;
      guarded(s, () => {
        for (const part of splitMouseReports(d)) input.emit('data', part);
      });
    });
    guarded(s, () => {
      const local = service.session(principal, opts.hostName, users);
      s.backend = local;
      // Engine events reach the TUI inside the session's guard: a throwing listener closes this
      // session (the engine's feed would otherwise swallow the error silently).
      const backend: SessionBackend = {
        principal: local.principal,
        host: local.host,
        subscribe: (listener) =>
          local.subscribe((e) => {
            if (!s.finished) guarded(s, () => listener(e));
          }),
        run: (argv) => local.run(argv),
        may: (action, owner, taskUser) => local.may(action, owner, taskUser),
        close: () => local.close(),
      };
      const viewKey = `${principal.user}\0${s.conn.fp ?? ''}`;
      const asked = s.pty!.asked ? `; the terminal is ${s.pty!.asked}, drawn at the cap` : '';
      log('info', `ssh: ${who(s.conn)} (${principal.role}): TUI session started (${cols}x${rows}${asked})`);
      const tui = openTui({
        input: input as unknown as TuiOptions['input'],
        output: ch,
        columns: cols,
        rows,
        maxSize: maxTui,
        ...(limits.tuiRenderBudget ? { renderBudget: limits.tuiRenderBudget } : {}),
        backend,
        ...(noColor ? { noColor } : {}),
        cliCommand: `ssh ${local.host}`,
        viewMemory: { get: () => views.get(viewKey), set: (v) => views.set(viewKey, v) },
        idle: { warnMs: limits.idleWarnMs, closeMs: limits.idleCloseMs },
        onExit: (code, reason) => finish(s, Number.isInteger(code) ? code : EXIT.failed, reason),
      });
      s.tui = tui;
      if (s.chClosed && !s.tuiDone) onChannelGone(s);
    });
  };

  return { startShell };
}
