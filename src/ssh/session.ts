/**
 * A session channel's life, shared by the exec and shell stages: writing to it, admitting it under
 * its user's cap, running its handlers in its guard scope (guard.ts: an exception closes this session
 * only), and ending it once (finish) with an exit status, whether it ends by itself, fails, loses its
 * client, or is closed by the server (shutdown, a changed users file).
 */
import type { ServerChannel } from 'ssh2';
import type { Principal } from '../commands/index.js';
import { EXIT } from '../core/errors.js';
import { sanitizeLine } from '../core/text.js';
import { inSession } from './guard.js';
import { errText, type SshCore, type Sess } from './core.js';

export type Sessions = ReturnType<typeof createSessions>;

export function createSessions(core: SshCore) {
  const { log, limits, users, userSessions, who, endConn } = core;
  /** Writes to the channel (CR LF when a pty was accepted); never throws, never after close. */
  const write = (s: Sess, text: string, stderr = false) => {
    const ch = s.channel;
    if (!ch || s.chClosed || s.finished) return;
    const data = s.pty ? text.replace(/\r?\n/g, '\r\n') : text;
    try {
      const stream = stderr ? ch.stderr : ch;
      if (stream.writable) stream.write(data);
    } catch { /* the client went away */ }
  };

  /** Releases what a session holds. Idempotent. */
  const releaseSess = (s: Sess) => {
    if (s.released) return;
    s.released = true;
    s.abort.abort();
    try {
      s.backend?.close();
    } catch (e) {
      log('error', `ssh: ${who(s.conn)}: closing the session backend failed: ${errText(e)}`);
    }
    if (s.counted) {
      core.live--;
      const u = s.conn.user!;
      const n = (userSessions.get(u) ?? 1) - 1;
      if (n > 0) userSessions.set(u, n);
      else userSessions.delete(u);
    }
    s.conn.sessions.delete(s);
  };

  /** Ends a session with an exit status. Idempotent. */
  const finish = (s: Sess, exitCode: number, reason?: string) => {
    if (s.finished) return;
    s.finished = true;
    const code = s.exitCode ?? exitCode;
    reason = s.endReason ?? reason;
    s.tuiDone = true;
    if (s.kind === 'shell') log('info', `ssh: ${who(s.conn)}: TUI session ended (${reason ? sanitizeLine(reason).slice(0, 200) : `exit ${code}`})`);
    releaseSess(s);
    const ch = s.channel;
    if (ch && !s.chClosed) {
      try {
        ch.resume(); // blessed's teardown pauses its input; a paused channel never closes
        ch.exit(code);
        ch.end();
      } catch { /* the client went away */ }
    }
  };

  /** The channel or the whole connection is gone (client quit or vanished). */
  const onChannelGone = (s: Sess) => {
    s.chClosed = true;
    if (s.finished) return releaseSess(s);
    s.endReason ??= 'the client went away';
    if (s.tui && !s.tuiDone) {
      s.tuiDone = true;
      try {
        inSession(s, () => s.tui!.close()); // calls onExit → finish
      } catch (e) {
        log('error', `ssh: ${who(s.conn)}: closing the TUI failed: ${errText(e)}`);
      }
    }
    finish(s, 0);
  };

  /** An exception inside one session: close it with a message; nothing else is affected. */
  const failSession = (s: Sess, err: unknown) => {
    if (s.failed) return;
    s.failed = true;
    const stack = err instanceof Error && err.stack ? ` @ ${sanitizeLine(err.stack.split('\n')[1]?.trim() ?? '')}` : '';
    log('error', `ssh: ${who(s.conn)}: ${s.kind ?? 'session'} session failed and was closed: ${errText(err)}${stack}`);
    const message = 'kindler: this session hit an internal error and was closed (details are in the daemon log)';
    s.exitCode = EXIT.failed;
    s.endReason = 'internal error';
    if (s.kind === 'shell' && s.tui && !s.tuiDone) {
      s.tuiDone = true;
      let closed = false;
      try {
        s.tui.close(message);
        closed = true;
      } catch { /* the TUI is broken: write the message ourselves */ }
      if (!closed) write(s, `\r\n${message}\r\n`, true);
    } else write(s, `${s.kind === 'exec' ? 'error: ' : ''}${message}\n`, true);
    finish(s, EXIT.failed, 'internal error');
  };

  /** Runs a handler for a session: synchronous throws and anything it schedules are caught. */
  const guarded = (s: Sess, fn: () => void) => {
    try {
      inSession(s, fn);
    } catch (e) {
      failSession(s, e);
    }
  };

  /** Counts a session against its user's cap; refuses it with one line when over. */
  const admit = (s: Sess): boolean => {
    const u = s.conn.user!;
    const n = userSessions.get(u) ?? 0;
    if (n >= limits.maxSessionsPerUser) {
      log('warn', `ssh: ${who(s.conn)}: ${s.kind} session refused: ${n} sessions already open for ${u} (max ${limits.maxSessionsPerUser})`);
      write(s, `kindler: too many sessions for ${u} (${n} open, max ${limits.maxSessionsPerUser}); close one and retry\n`, true);
      finish(s, EXIT.failed, 'session limit');
      return false;
    }
    userSessions.set(u, n + 1);
    core.live++;
    s.counted = true;
    return true;
  };

  /** The current role for the connection's key (the users file may have changed since login). */
  const principalOf = (s: Sess): Principal | undefined => {
    const cur = users.byFingerprint(s.conn.fp!);
    if (!cur || cur.user !== s.conn.user) return undefined;
    return { user: cur.user, role: cur.role, source: `ssh ${s.conn.ip}`, fingerprint: s.conn.fp! };
  };

  const refuseGone = (s: Sess) => {
    log('warn', `ssh: ${who(s.conn)}: key ${s.conn.fp} is no longer in the users file; session refused`);
    write(s, 'kindler: your key is no longer authorized\n', true);
    finish(s, EXIT.refused, 'key removed');
    endConn(s.conn);
  };

  const attachChannel = (s: Sess, ch: ServerChannel) => {
    s.channel = ch;
    ch.on('error', (e: Error) => log('info', `ssh: ${who(s.conn)}: channel error: ${errText(e)}`));
    ch.stderr.on('error', () => undefined);
    ch.on('close', () => onChannelGone(s));
  };

  const closeSessionWith = (s: Sess, message: string, code: number) => {
    if (s.finished) return;
    s.exitCode = code;
    s.endReason = message.replace(/^kindler: /, '');
    if (s.kind === 'shell' && s.tui && !s.tuiDone) {
      s.tuiDone = true;
      try {
        inSession(s, () => s.tui!.close(message));
      } catch (e) {
        log('error', `ssh: ${who(s.conn)}: closing the TUI failed: ${errText(e)}`);
        write(s, `\r\n${message}\r\n`, true);
      }
    } else write(s, `${message}\n`, true);
    finish(s, code, message.replace(/^kindler: /, ''));
  };

  return { write, releaseSess, finish, onChannelGone, failSession, guarded, admit, principalOf, refuseGone, attachChannel, closeSessionWith };
}
