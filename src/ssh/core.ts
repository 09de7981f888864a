/**
 * The state the SSH server's stages share: the connections and sessions (and their counts per user), the
 * failure limiter and pre-auth slots, and the few connection-level operations every stage uses (closing
 * a connection, the no-channel timer, releasing a pre-auth slot, log helpers). One per server.
 */
import type { Socket } from 'node:net';
import type { Connection, ServerChannel } from 'ssh2';
import type { Role } from '../access/authorize.js';
import type { TuiHandle } from '../tui/index.js';
import type { LocalSession } from '../commands/session.js';
import { sanitizeLine } from '../core/text.js';
import type { SessionScope } from './guard.js';
import { FailureLimiter, PreAuthSlots } from './ratelimit.js';
import type { Tunnel, TunnelConn } from './forward.js';
import { TUI_MAX_SIZE, type SshServerOptions } from './options.js';
import type { TtyInput } from './tty.js';

export interface Conn {
  id: number;
  ip: string;
  sock: Socket;
  client?: Connection;
  authed: boolean;
  released: boolean;
  grace?: NodeJS.Timeout;
  /** Refusals held back while the source is blocked (see rateLimit.delayMs). */
  delayed: Set<NodeJS.Timeout>;
  /** Closes a logged-in connection with no session channel open (see noChannelTimeoutMs). */
  idle?: NodeJS.Timeout;
  onData?: () => void;
  /** Counted in its user's logged-in connections. */
  userCounted: boolean;
  failures: number;
  loginName?: string;
  user?: string;
  role?: Role;
  fp?: string;
  sessions: Set<Sess>;
  channels: number;
  ending: boolean;
  tunnels: Set<Tunnel>;
  tunnelConn?: TunnelConn;
}

export interface Sess extends SessionScope {
  id: number;
  conn: Conn;
  kind?: 'shell' | 'exec';
  started: boolean;
  counted: boolean;
  /** The terminal size drawn (capped); `asked` is what the client said, when bigger. */
  pty?: { cols: number; rows: number; asked?: string };
  channel?: ServerChannel;
  chClosed: boolean;
  input?: TtyInput;
  tui?: TuiHandle;
  tuiDone: boolean;
  backend?: LocalSession;
  abort: AbortController;
  finished: boolean;
  released: boolean;
  failed: boolean;
  /** Set when we end the session (crash, shutdown, key removed): wins over the TUI's exit code. */
  exitCode?: number;
  endReason?: string;
}

/** A size from the client: a positive integer, at most `max` (anything else: `dflt`). */
export const clampSize = (n: number, dflt: number, max: number) => (Number.isInteger(n) && n > 0 ? Math.min(n, max) : Math.min(dflt, max));
export const normIp = (ip: string | undefined) => (ip ?? 'unknown').replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '');
export const errText = (e: unknown) => sanitizeLine(e instanceof Error ? e.message : String(e)).slice(0, 300);

export type SshCore = ReturnType<typeof createCore>;

export function createCore(opts: SshServerOptions) {
  const { log, limits } = opts;
  const maxTui = limits.tuiMaxSize ?? TUI_MAX_SIZE;
  const limiter = new FailureLimiter(limits.rateLimit);
  // A blocked address's pending connections are the first to go when the table is full.
  const slots = new PreAuthSlots<Conn>(limits.maxUnauthenticated, (source) => limiter.blockedFor(source) > 0);
  const conns = new Set<Conn>();
  const byPeer = new Map<string, Conn>();
  const userSessions = new Map<string, number>();
  /** Logged-in connections per user. */
  const userConns = new Map<string, number>();
  const lastLog = new Map<string, number>();
  /** Logs at most once per 10 s per key (floods of refused connections). */
  const logThrottled = (key: string, level: 'info' | 'warn', msg: string) => {
    const now = Date.now();
    if ((lastLog.get(key) ?? 0) > now - 10_000) return;
    lastLog.set(key, now);
    if (lastLog.size > 1000) lastLog.clear();
    log(level, msg);
  };
  const who = (c: Conn) => (c.user ? `${c.user} from ${c.ip}` : c.ip);
  /**
   * Accepts a channel the client asked for: undefined when accepting threw (the client went away;
   * logged as `cannot open WHAT`) or gave nothing (the client closed it meanwhile).
   */
  const acceptChannel = <T>(c: Conn, what: string, accept: () => T): T | undefined => {
    try {
      return accept() || undefined;
    } catch (e) {
      log('error', `ssh: ${who(c)}: cannot open ${what}: ${errText(e)}`);
      return undefined;
    }
  };

  const release = (c: Conn) => {
    if (c.released) return;
    c.released = true;
    slots.remove(c.ip, c);
    clearTimeout(c.grace);
    if (c.onData) c.sock.off('data', c.onData);
  };

  /** (Re)arms the close of a logged-in connection that has no session channel open. */
  const armIdle = (c: Conn) => {
    clearTimeout(c.idle);
    if (!c.authed || c.ending || c.channels > 0) return;
    c.idle = setTimeout(() => {
      if (c.channels > 0 || c.ending) return;
      log('info', `ssh: ${who(c)}: no session channel open for ${limits.noChannelTimeoutMs} ms; closing the connection`);
      endConn(c);
    }, limits.noChannelTimeoutMs);
    c.idle.unref();
  };

  const endConn = (c: Conn) => {
    if (c.ending) return;
    c.ending = true;
    // Let pending replies (the last auth failure) go out first.
    setImmediate(() => {
      if (c.client) c.client.end();
      else c.sock.destroy();
      setTimeout(() => c.sock.destroy(), 2000).unref();
    });
  };

  return {
    opts,
    service: opts.service,
    users: opts.users,
    log,
    limits,
    /** The largest TUI drawn (limits.tuiMaxSize, default TUI_MAX_SIZE). */
    maxTui,
    limiter,
    slots,
    conns,
    byPeer,
    userSessions,
    userConns,
    /** Live sessions (TUI or verb). */
    live: 0,
    connSeq: 0,
    sessSeq: 0,
    /** Set by stop(): nothing new is accepted. */
    stopping: false,
    /** The port listened on (opts.port until the listener is up). */
    port: opts.port,
    logThrottled,
    who,
    acceptChannel,
    release,
    armIdle,
    endConn,
  };
}
