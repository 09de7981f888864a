/**
 * Stage: the requests on one session channel. A pty (its size capped at the TUI's maximum), window
 * changes (passed to a live TUI), then exactly one of: a shell (the TUI, or with no pty the hint and
 * exit 2), or an exec (a verb; `--no-color` with a pty is the TUI without colour). Each is admitted
 * under its user's session cap and handed to shell.ts or exec.ts. Environment, X11, agent forwarding,
 * signals and subsystems (sftp) are refused and logged.
 */
import type { ServerChannel, Session } from 'ssh2';
import { EXIT } from '../core/errors.js';
import { shown } from '../core/text.js';
import { clampSize, type Conn, type Sess, type SshCore } from './core.js';
import type { Sessions } from './session.js';
import { noTerminalHint } from './shell.js';

export interface RequestStages {
  runExec: (s: Sess, command: string) => Promise<void>;
  startShell: (s: Sess, ch: ServerChannel, noColor?: boolean) => Promise<void>;
}

export function createRequests(core: SshCore, sessions: Sessions, next: RequestStages) {
  const { log, maxTui, who, armIdle, acceptChannel } = core;
  const { write, finish, onChannelGone, failSession, guarded, admit, attachChannel } = sessions;
  const { runExec, startShell } = next;
  /** The size drawn for what the client asked (capped), remembering the ask when it was bigger. */
  const ptySize = (cols: number, rows: number, prev = { cols: 80, rows: 24 }): NonNullable<Sess['pty']> => {
    const size = { cols: clampSize(cols, prev.cols, maxTui.cols), rows: clampSize(rows, prev.rows, maxTui.rows) };
    return cols > maxTui.cols || rows > maxTui.rows ? { ...size, asked: `${Number(cols) >>> 0}x${Number(rows) >>> 0}` } : size;
  };

  const onSession = (c: Conn, session: Session) => {
    const s: Sess = {
      id: ++core.sessSeq,
      conn: c,
      started: false,
      counted: false,
      chClosed: false,
      tuiDone: false,
      abort: new AbortController(),
      finished: false,
      released: false,
      failed: false,
      fail: (err) => failSession(s, err),
    };
    c.sessions.add(s);
    let closed = false;
    session.on('close', () => {
      if (closed) return;
      closed = true;
      c.channels--;
      armIdle(c);
      onChannelGone(s);
    });
    const refuse = (what: string, level: 'info' | 'warn' = 'warn') => {
      log(level, `ssh: ${who(c)}: ${what} refused`);
    };
    session.on('pty', (accept, reject, info) => {
      if (s.started) return reject?.();
      s.pty = ptySize(info.cols, info.rows);
      accept?.();
    });
    // Window changes cost nothing here: the size is capped, an unchanged one is dropped, and the TUI
    // applies only the last one of a burst, in its next frame (within its render budget).
    session.on('window-change', (accept, _reject, info) => {
      accept?.();
      if (!s.pty) return;
      const prev = s.pty;
      s.pty = ptySize(info.cols, info.rows, prev);
      if (s.pty.cols === prev.cols && s.pty.rows === prev.rows) return;
      if (s.kind !== 'shell' || !s.channel || !s.tui || s.tuiDone) return;
      const { cols, rows } = s.pty;
      guarded(s, () => {
        Object.assign(s.channel!, { columns: cols, rows });
        if (s.input) Object.assign(s.input, { columns: cols, rows });
        s.tui!.resize(cols, rows);
      });
    });
    session.on('env', (_a, reject, info) => {
      refuse(`environment variable ${shown(String(info.key), 40)}`, 'info');
      reject?.();
    });
    session.on('x11', (_a, reject) => {
      refuse('X11 forwarding');
      reject?.();
    });
    session.on('auth-agent', (_a, reject) => {
      refuse('agent forwarding');
      reject?.();
    });
    session.on('signal', (_a, reject, info) => {
      refuse(`signal ${shown(String(info.name), 20)}`);
      reject?.();
    });
    session.on('sftp', (_a, reject) => {
      refuse('subsystem "sftp"');
      reject?.();
    });
    session.on('subsystem', (_a, reject, info) => {
      refuse(`subsystem ${shown(String(info.name), 40)}`);
      reject?.();
    });
    session.on('shell', (accept, reject) => {
      if (s.started || core.stopping) return reject?.();
      if (!s.pty) {
        // No terminal for the TUI (ssh -T, or stdin not a terminal): tell the client, not only the log.
        log('info', `ssh: ${who(c)}: shell without a terminal: answered with the hint (exit ${EXIT.usage})`);
        s.started = true;
        const ch = acceptChannel(c, 'the shell channel', accept);
        if (!ch) return;
        attachChannel(s, ch);
        write(s, noTerminalHint(), true);
        return finish(s, EXIT.usage);
      }
      s.started = true;
      s.kind = 'shell';
      const ch = acceptChannel(c, 'the shell channel', accept);
      if (!ch) return; // the client closed the session meanwhile
      attachChannel(s, ch);
      if (!admit(s)) return;
      guarded(s, () => void startShell(s, ch));
    });
    session.on('exec', (accept, reject, info) => {
      if (s.started || core.stopping) return reject?.();
      s.started = true;
      // `ssh -t HOST -- --no-color`: the TUI without colour (the client's NO_COLOR env request is refused).
      const noColorTui = Boolean(s.pty) && String(info.command).trim() === '--no-color';
      s.kind = noColorTui ? 'shell' : 'exec';
      const ch = acceptChannel(c, 'the exec channel', accept);
      if (!ch) return; // the client closed the session meanwhile
      attachChannel(s, ch);
      if (!admit(s)) return;
      if (noColorTui) return guarded(s, () => void startShell(s, ch, true));
      guarded(s, () => void runExec(s, String(info.command)));
    });
  };

  return { onSession };
}
