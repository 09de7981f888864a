/**
 * kindler's SSH face. `ssh kindler@host` opens the TUI; `ssh kindler@host VERB ... [--json]` runs one
 * verb through the same `runCommand` as every other face.
 *
 * Security model:
 * - Public keys only. The key decides who you are (the SSH login name is ignored); a user is bound
 *   only after a signature verifies against that very key, listed in the users file.
 * - Our own TCP listener feeds ssh2 through `injectSocket`, so we can bound connections before ssh2
 *   sees a byte: all connections together (below the fd limit), those not logged in yet (a full
 *   table closes a pending one to make room: never a newcomer, never a key listed in the users
 *   file, see PreAuthSlots), and logins that take longer than the grace time.
 * - Nobody is locked out by address alone: the SSH port is usually on 127.0.0.1, shared by every
 *   local user. Failures are counted per connection (closed after maxAuthTries), per offered key and
 *   per address; an address with too many failures only goes first when pending connections must be
 *   closed. A listed key whose signature verifies always logs in. A login that times out is not a
 *   failure.
 * - Logged-in connections are capped per user, and one with no session channel open for a while is
 *   closed (a connection costs an fd whether or not it does anything).
 * - RSA keys must sign with rsa-sha2-256/512; ssh-rsa (SHA-1) signatures are refused, as OpenSSH
 *   >= 8.8 does.
 * - Only 'session' channels with a pty + shell (the TUI) or an exec (a verb) are served, plus
 *   'direct-tcpip' to a cluster's API by name (`ssh -N -L P:NAME:6443`, see forward.ts); every other
 *   request (other forwarding, remote forwarding, agent, X11, env, subsystems, signals) is refused
 *   explicitly and logged.
 * - Each session runs in its own guard scope: an exception in one session closes that session
 *   with a message and a log line, never the daemon or other sessions.
 */
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import { EventEmitter } from 'node:events';
import ssh2 from 'ssh2';
import type { AuthContext, ClientInfo, Connection, ParsedKey, ServerChannel, Session } from 'ssh2';
import type { Role } from '../access/authorize.js';
import { fingerprint, type UsersStore } from '../access/users.js';
import type { TuiHandle, TuiOptions, TuiViewState } from '../tui/index.js';
import { verbNames, wantsFlag, type Context, type IO, type Principal } from '../commands/index.js';
import { wrapWords } from '../commands/parse.js';
import { whenDrained } from '../commands/io.js';
import type { Service } from '../commands/service.js';
import type { LocalSession, SessionBackend } from '../commands/session.js';
import { EXIT, KindlerError, usageError } from '../core/errors.js';
import { sanitizeLine, shown } from '../core/text.js';
import { splitCommand } from './argv.js';
import { inSession, installSessionGuard, type SessionScope } from './guard.js';
import type { HostKey } from './hostkey.js';
import { FailureLimiter, PreAuthSlots } from './ratelimit.js';
import { Tunnels, type Tunnel, type TunnelConn } from './forward.js';
import { ViewKeeper } from './views.js';
import { splitMouseReports } from './mouse.js';

const { Server } = ssh2;

export type SshLogFn = (level: 'info' | 'warn' | 'error', msg: string) => void;

export interface SshLimits {
  /** Connections that have not logged in yet, all addresses together (when full, a pending one is
   *  closed to make room for the newcomer, see PreAuthSlots). */
  maxUnauthenticated: number;
  /** All connections, logged in or not (keep it well below the process's fd limit). When full, a
   *  pending connection makes room; with none pending, the newcomer is dropped. */
  maxConnections: number;
  /** Logged-in connections per user, all addresses together; a login over it is refused (not a failure). */
  maxConnectionsPerUser: number;
  /** A logged-in connection with no session channel open for this long is closed. */
  noChannelTimeoutMs: number;
  /** A connection must have logged in this long after it was accepted, or it is closed. */
  loginGraceMs: number;
  /** Failed authentication attempts on one connection before it is closed. */
  maxAuthTries: number;
  /** Failed logins per source address (see ratelimit.ts). While an address is blocked, each refusal of
   *  a login attempt from it is answered only after `delayMs` (a brute force slows to a crawl; a key
   *  in the users file is never delayed). */
  rateLimit: { failures: number; windowMs: number; blockMs: number; delayMs: number };
  /** Live sessions (TUI or verb) per user, all connections together. */
  maxSessionsPerUser: number;
  /** Session channels open at once on one connection (multiplexing). */
  maxChannelsPerConnection: number;
  /** Passed to the TUI: warn after this long without input, then close. */
  idleWarnMs: number;
  idleCloseMs: number;
  /** Largest TUI drawn; a bigger terminal (pty request or window change) is drawn at this size.
   *  Default TUI_MAX_SIZE. The work of a frame grows with cols x rows. */
  tuiMaxSize?: { cols: number; rows: number };
  /** Render time one TUI session may use: `ms` per `perMs` (default: the TUI's, 100 ms per second). */
  tuiRenderBudget?: { ms: number; perMs: number };
  /** Tunnels to cluster APIs (ssh -L P:NAME:6443) open at once per user, all connections together. */
  maxTunnelsPerUser: number;
}

/** The default cap on the TUI's size (src/tui/layout.ts MAX_SIZE, which the TUI falls back to). */
export const TUI_MAX_SIZE = { cols: 300, rows: 120 };

export const DEFAULT_SSH_LIMITS: SshLimits = {
  maxUnauthenticated: 20,
  maxConnections: 256,
  maxConnectionsPerUser: 10,
  noChannelTimeoutMs: 60_000,
  loginGraceMs: 30_000,
  maxAuthTries: 6,
  rateLimit: { failures: 10, windowMs: 60_000, blockMs: 300_000, delayMs: 1000 },
  maxSessionsPerUser: 8,
  maxChannelsPerConnection: 4,
  idleWarnMs: 25 * 60_000,
  idleCloseMs: 30 * 60_000,
  tuiMaxSize: TUI_MAX_SIZE,
  maxTunnelsPerUser: 16,
};

/** Standard input a verb may read over SSH (a public key line). */
const MAX_STDIN = 64 * 1024;

/** What a shell request without a terminal gets on stderr: how to get the TUI, or which verbs to run. */
function noTerminalHint(): string {
  return [
    'kindler: the terminal UI needs a terminal, and this session has none.',
    '  for the TUI:   ssh -t HOST',
    '  or run a verb: ssh HOST list   (ssh HOST help describes them, ssh HOST help VERB one of them)',
    ...wrapWords(`verbs: ${verbNames().join(', ')}`, 78).map((l, i) => (i ? `  ${l}` : l)),
    '',
  ].join('\n');
}

/** What the TUI module (src/tui/index.ts) exports as `openTui`; loaded on the first shell. */
export type OpenTui = (o: TuiOptions) => TuiHandle;

export interface SshServerOptions {
  /** The running kindler (verbs, sessions, events), from the entry point that started the engine. */
  service: Service;
  users: UsersStore;
  /** From loadOrCreateHostKey(), or a private key (parsed or OpenSSH text). */
  hostKey: HostKey | ParsedKey | Buffer | string;
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  log: SshLogFn;
  limits: SshLimits;
  /** The host name shown in the TUI header. */
  hostName: string;
  /** The TUI entry point; default: `openTui` from src/tui/index.js, loaded on the first shell. */
  openTui?: OpenTui;
  /** Keepalive probes after login (ssh2 defaults: every 15 s, 3 missed → closed). */
  keepalive?: { intervalMs: number; countMax: number };
}

export interface SshServer {
  port: number;
  /** Ends every connection and closes the listener. */
  stop(): Promise<void>;
  /** Live sessions (TUI or verb). */
  sessions(): number;
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

/** blessed reads keys from `input` and needs a TTY-looking stream; the channel's data is fed in by us. */
class TtyInput extends EventEmitter {
  readonly isTTY = true;
  isRaw = true;
  readable = true;
  destroyed = false;
  constructor(public columns: number, public rows: number) {
    super();
  }
  setRawMode(mode: boolean): this {
    this.isRaw = mode;
    return this;
  }
  resume(): this {
    return this;
  }
  pause(): this {
    return this;
  }
  isPaused(): boolean {
    return false;
  }
  setEncoding(): this {
    return this;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }
}

interface Conn {
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

interface Sess extends SessionScope {
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
const clampSize = (n: number, dflt: number, max: number) => (Number.isInteger(n) && n > 0 ? Math.min(n, max) : Math.min(dflt, max));
const normIp = (ip: string | undefined) => (ip ?? 'unknown').replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '');
const errText = (e: unknown) => sanitizeLine(e instanceof Error ? e.message : String(e)).slice(0, 300);

/** ssh2 takes a parsed key only wrapped as `{ key }`. */
function hostKeyOf(k: SshServerOptions['hostKey']): { key: ParsedKey | Buffer | string } {
  if (typeof k === 'object' && k !== null && !Buffer.isBuffer(k) && 'fingerprint' in k && 'key' in k) return { key: (k as HostKey).key };
  return { key: k as ParsedKey | Buffer | string };
}

export async function startSshServer(opts: SshServerOptions): Promise<SshServer> {
  const { service, users, log, limits } = opts;
  const maxTui = limits.tuiMaxSize ?? TUI_MAX_SIZE;
  /** The size drawn for what the client asked (capped), remembering the ask when it was bigger. */
  const ptySize = (cols: number, rows: number, prev = { cols: 80, rows: 24 }): NonNullable<Sess['pty']> => {
    const size = { cols: clampSize(cols, prev.cols, maxTui.cols), rows: clampSize(rows, prev.rows, maxTui.rows) };
    return cols > maxTui.cols || rows > maxTui.rows ? { ...size, asked: `${Number(cols) >>> 0}x${Number(rows) >>> 0}` } : size;
  };
  const limiter = new FailureLimiter(limits.rateLimit);
  // A blocked address's pending connections are the first to go when the table is full.
  const slots = new PreAuthSlots<Conn>(limits.maxUnauthenticated, (source) => limiter.blockedFor(source) > 0);
  const conns = new Set<Conn>();
  const byPeer = new Map<string, Conn>();
  const userSessions = new Map<string, number>();
  /** Logged-in connections per user. */
  const userConns = new Map<string, number>();
  let live = 0;
  let connSeq = 0;
  let sessSeq = 0;
  let stopping = false;
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

  const sshd = new Server({
    hostKeys: [hostKeyOf(opts.hostKey)],
    ident: 'kindler',
    ...(opts.keepalive ? { keepaliveInterval: opts.keepalive.intervalMs, keepaliveCountMax: opts.keepalive.countMax } : {}),
  });
  const uninstallGuard = installSessionGuard();
  const tunnels = new Tunnels({ service, log, maxTunnelsPerUser: limits.maxTunnelsPerUser });

  // ---- connections -----------------------------------------------------------------------------

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

  /**
   * One failed authentication attempt: counted for the connection, the offered key and the address,
   * then refused (after rateLimit.delayMs while the address is blocked).
   */
  const failAuth = (c: Conn, ctx: AuthContext, why: string, fp?: string) => {
    c.failures++;
    log('warn', `ssh: ${c.ip}: login refused: ${why}`);
    const rl = limits.rateLimit;
    if (limiter.fail(c.ip, c.id, fp)) {
      // Not a lockout: everyone on the host may share this address. Listed keys still log in from it.
      log('warn', `ssh: ${c.ip}: ${rl.failures} failed logins within ${rl.windowMs} ms; for ${rl.blockMs} ms its pending connections are closed first when the pre-auth table is full and its failed attempts are answered after ${rl.delayMs} ms (keys in the users file still log in from it at once)`);
    }
    if (fp && limiter.keyFailures(fp) === rl.failures) log('warn', `ssh: key ${fp}: ${rl.failures} failed logins within ${rl.windowMs} ms (last from ${c.ip})`);
    const last = c.failures >= limits.maxAuthTries;
    if (last) log('warn', `ssh: ${c.ip}: ${c.failures} failed authentication attempts; closing the connection`);
    const answer = () => {
      try {
        ctx.reject(['publickey']);
      } catch { /* the connection is gone */ }
      if (last) endConn(c);
    };
    const delay = rl.delayMs > 0 && !c.ending && limiter.blockedFor(c.ip) > 0 ? rl.delayMs : 0;
    if (!delay) return answer();
    // Bounded: one timer per failed attempt, at most maxAuthTries per connection, cleared on close.
    const timer = setTimeout(() => {
      c.delayed.delete(timer);
      if (!c.sock.destroyed) answer();
    }, delay);
    c.delayed.add(timer);
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

  const onAuth = (c: Conn, ctx: AuthContext) => {
    c.loginName ??= ctx.username;
    if (stopping || c.ending) return ctx.reject(['publickey']);
    if (ctx.method === 'none') return ctx.reject(['publickey']);
    if (ctx.method !== 'publickey') return failAuth(c, ctx, `${ctx.method} authentication is not offered`);
    const fp = fingerprint(ctx.key.data);
    // ssh2 reports rsa-sha2-256/512 as algo 'ssh-rsa' with hashAlgo set; plain ssh-rsa means SHA-1.
    if (ctx.key.algo === 'ssh-rsa' && ctx.hashAlgo !== 'sha256' && ctx.hashAlgo !== 'sha512') {
      return failAuth(c, ctx, `key ${fp}: ssh-rsa (SHA-1) signatures are not accepted; use rsa-sha2-256 or rsa-sha2-512 (OpenSSH >= 7.2 does)`, fp);
    }
    const match = users.findByKey(ctx.key.algo, ctx.key.data);
    if (!match) {
      return failAuth(c, ctx, `unknown key ${fp} (${shown(ctx.key.algo, 30)})`, fp);
    }
    // A listed key: this connection is closed last when the pre-auth table is full.
    slots.shield(c.ip, c);
    if (!ctx.signature || !ctx.blob) {
      // "Would you accept this key?" Proves nothing; the client must now sign with it.
      return ctx.accept();
    }
    let ok = false;
    try {
      ok = match.key.verify(ctx.blob, ctx.signature, ctx.hashAlgo) === true;
    } catch {
      ok = false;
    }
    if (!ok) {
      return failAuth(c, ctx, `bad signature for key ${fp}`, fp);
    }
    const held = userConns.get(match.user) ?? 0;
    if (held >= limits.maxConnectionsPerUser) {
      // Not a failed login: the key is fine, the user holds too many connections.
      log('warn', `ssh: ${c.ip}: login of ${match.user} with key ${fp} refused: ${held} connections already logged in for ${match.user} (max ${limits.maxConnectionsPerUser}); close some and retry`);
      ctx.reject(['publickey']);
      return endConn(c);
    }
    userConns.set(match.user, held + 1);
    c.userCounted = true;
    c.user = match.user;
    c.role = match.role;
    c.fp = match.fingerprint;
    ctx.accept();
  };

  const onConnection = (client: Connection, info: ClientInfo) => {
    const c = byPeer.get(`${info.ip}:${info.port}`);
    if (!c || stopping) {
      client.end();
      return;
    }
    byPeer.delete(`${info.ip}:${info.port}`);
    c.client = client;
    client.on('error', (e: Error & { level?: string }) => {
      if (e.level === 'client-timeout') {
        log('warn', `ssh: ${who(c)}: keepalive timeout; closing`);
        c.sock.destroy();
      } else log('info', `ssh: ${who(c)}: connection error: ${errText(e)}`);
    });
    client.on('authentication', (ctx) => {
      try {
        onAuth(c, ctx);
      } catch (e) {
        log('error', `ssh: ${c.ip}: authentication handler failed: ${errText(e)}`);
        try {
          ctx.reject(['publickey']);
        } catch { /* already answered */ }
      }
    });
    client.on('ready', () => {
      c.authed = true;
      release(c);
      limiter.forgive(c.ip, c.id);
      log('info', `ssh: ${c.user} (${c.role}) logged in from ${c.ip} with key ${c.fp} (login name ${shown(c.loginName ?? '', 32)})`);
      armIdle(c);
    });
    client.on('session', (accept, reject) => {
      if (!c.authed || stopping) return reject();
      if (c.channels >= limits.maxChannelsPerConnection) {
        log('warn', `ssh: ${who(c)}: session channel refused: ${c.channels} already open on this connection (max ${limits.maxChannelsPerConnection})`);
        return reject();
      }
      const session = acceptChannel(c, 'a session channel', accept);
      if (!session) return;
      c.channels++;
      clearTimeout(c.idle);
      onSession(c, session);
    });
    client.on('tcpip', (accept, reject, i) => {
      if (!c.authed || stopping || c.ending) return reject();
      // Only to a cluster's API, by cluster name (see forward.ts); everything else is refused there.
      c.tunnelConn ??= {
        who: who(c),
        ip: c.ip,
        principal: () => {
          const cur = users.byFingerprint(c.fp!);
          if (!cur || cur.user !== c.user) return undefined;
          return { user: cur.user, role: cur.role, source: `ssh ${c.ip}`, fingerprint: c.fp! };
        },
        takeChannel: () => {
          if (c.channels >= limits.maxChannelsPerConnection) return false;
          c.channels++;
          clearTimeout(c.idle);
          return true;
        },
        releaseChannel: () => {
          c.channels--;
          armIdle(c);
        },
        tunnels: c.tunnels,
        audited: new Set(),
      };
      tunnels.open(c.tunnelConn, i, accept, reject);
    });
    client.on('openssh.streamlocal', (_accept, reject, i) => {
      log('warn', `ssh: ${who(c)}: unix socket forwarding to ${shown(String(i.socketPath), 64)} refused`);
      reject();
    });
    client.on('request', (_accept, reject, name) => {
      log('warn', `ssh: ${who(c)}: global request ${shown(String(name), 40)} (remote forwarding) refused`);
      reject?.();
    });
    client.on('close', () => {
      for (const s of [...c.sessions]) onChannelGone(s);
      for (const t of [...c.tunnels]) t.close('the connection closed');
    });
  };
  sshd.on('connection', onConnection);
  sshd.on('error', (e: Error) => log('error', `ssh: server error: ${errText(e)}`));

  const tcp: NetServer = createServer((sock) => {
    sock.on('error', () => undefined);
    const ip = normIp(sock.remoteAddress);
    if (stopping) return sock.destroy();
    // All connections together stay below the fd limit: a pending one makes room, or the newcomer is
    // dropped when every connection is logged in (each user holds at most maxConnectionsPerUser).
    const full = conns.size >= limits.maxConnections;
    if (full && slots.size() === 0) {
      logThrottled('conn cap', 'warn', `ssh: ${ip}: connection dropped: ${conns.size} connections open, all logged in (max ${limits.maxConnections})`);
      return sock.destroy();
    }
    const c: Conn = { id: ++connSeq, ip, sock, authed: false, released: false, delayed: new Set(), userCounted: false, failures: 0, sessions: new Set(), channels: 0, ending: false, tunnels: new Set() };
    // A newcomer is always admitted; a full table closes the least active pending connection of the
    // source holding the most (blocked sources first; never one that offered a listed key while others remain).
    const adm = slots.admit(ip, c, full);
    if (adm.evict) {
      const v = adm.evict;
      logThrottled(`evict ${v.ip}`, 'warn', `ssh: ${v.ip}: a connection not logged in yet was closed to make room for one from ${ip} (${full ? `${conns.size} connections open, max ${limits.maxConnections}` : `${limits.maxUnauthenticated} not logged in, max ${limits.maxUnauthenticated}`}; ${slots.held(v.ip)} still pending from ${v.ip})`);
      release(v);
      v.sock.destroy();
      conns.delete(v);
    }
    c.onData = () => slots.touch(ip, c);
    sock.on('data', c.onData);
    const peer = `${sock.remoteAddress}:${sock.remotePort}`;
    conns.add(c);
    byPeer.set(peer, c);
    sock.setNoDelay(true);
    c.grace = setTimeout(() => {
      if (c.authed) return;
      // Slow or idle, not wrong: not counted as a failed login.
      log('warn', `ssh: ${ip}: not logged in within ${limits.loginGraceMs} ms; closing`);
      sock.destroy();
    }, limits.loginGraceMs);
    sock.once('close', () => {
      release(c);
      clearTimeout(c.idle);
      for (const d of c.delayed) clearTimeout(d);
      c.delayed.clear();
      conns.delete(c);
      if (c.userCounted) {
        c.userCounted = false;
        const n = (userConns.get(c.user!) ?? 1) - 1;
        if (n > 0) userConns.set(c.user!, n);
        else userConns.delete(c.user!);
      }
      if (byPeer.get(peer) === c) byPeer.delete(peer);
      for (const s of [...c.sessions]) onChannelGone(s);
      for (const t of [...c.tunnels]) t.close('the connection closed');
      if (c.authed) log('info', `ssh: ${c.user} from ${ip} disconnected`);
      else if (c.failures) log('info', `ssh: ${ip}: disconnected without logging in (${c.failures} failed attempts)`);
    });
    try {
      sshd.injectSocket(sock);
    } catch (e) {
      log('error', `ssh: ${ip}: cannot start the SSH handshake: ${errText(e)}`);
      sock.destroy();
    }
  });

  // ---- sessions --------------------------------------------------------------------------------

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
      live--;
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
    live++;
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

  const onSession = (c: Conn, session: Session) => {
    const s: Sess = {
      id: ++sessSeq,
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
      if (s.started || stopping) return reject?.();
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
      if (s.started || stopping) return reject?.();
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

  const attachChannel = (s: Sess, ch: ServerChannel) => {
    s.channel = ch;
    ch.on('error', (e: Error) => log('info', `ssh: ${who(s.conn)}: channel error: ${errText(e)}`));
    ch.stderr.on('error', () => undefined);
    ch.on('close', () => onChannelGone(s));
  };

  const runExec = async (s: Sess, command: string) => {
    const ch = s.channel!;
    const principal = principalOf(s);
    if (!principal) return refuseGone(s);
    // Standard input, for a verb that reads it (`users add … --key - < key.pub`): kept until its end, bounded.
    let stdin = '';
    let stdinEnded = false;
    const stdinWaiters: (() => void)[] = [];
    const endStdin = () => {
      stdinEnded = true;
      for (const f of stdinWaiters.splice(0)) f();
    };
    ch.on('end', endStdin);
    ch.on('close', endStdin);
    // The task a --wait verb follows: Ctrl-C names it (it goes on), or cancels it (--cancel-on-interrupt).
    let taskId: string | null = null;
    let cancelling: Promise<unknown> | null = null;
    ch.on('data', (d: Buffer) => {
      if (!s.pty && stdin.length <= MAX_STDIN) stdin += d.toString('utf8');
      // With a pty, Ctrl-C arrives as a byte: stop the verb (e.g. logs --follow).
      if (s.pty && d.includes(3) && !s.finished && !cancelling) {
        s.abort.abort();
        if (taskId && wantsFlag(argv ?? [], 'cancel-on-interrupt')) {
          const id = taskId;
          write(s, `^C\ninterrupted — cancelling ${id} (its cleanup runs)\n`, true);
          const gone = new AbortController();
          ch.once('close', () => gone.abort());
          cancelling = service.run(['cancel', id, '--wait'], { ...ctx!, io: { ...ctx!.io, signal: gone.signal, onTask: () => undefined } })
            .catch(() => undefined)
            .then(() => finish(s, 130));
          return;
        }
        write(s, `^C\n${taskId ? `detached — ${taskId} continues; ssh HOST logs ${taskId} --follow\n` : ''}`, true);
        finish(s, 130);
      }
    });
    let ctx: Omit<Context, 'engine'> | undefined;
    let argv: string[] | undefined;
    try {
      argv = splitCommand(command);
    } catch (e) {
      const err = e instanceof KindlerError ? e : new KindlerError('usage', String(e));
      log('info', `ssh: ${who(s.conn)}: exec refused: ${err.message}`);
      write(s, `error: ${sanitizeLine(err.message)}\n`, true);
      return finish(s, err.exitCode);
    }
    log('info', `ssh: ${who(s.conn)} (${principal.role}): exec ${shown(argv[0] ?? '(help)', 40)}${argv.length > 1 ? ` +${argv.length - 1} args` : ''}`);
    // `users` rides along for the users/whoami verbs (Context may declare `users?: UsersStore`).
    ctx = {
      users,
      ssh: { host: opts.host, port },
      actor: principal,
      io: {
        out: (t: string) => write(s, t),
        err: (t: string) => write(s, t, true),
        // The channel holds what the client's window does not take yet: wait for it, not memory.
        writable: () => (s.channel && !s.chClosed && !s.finished ? whenDrained(s.channel) : Promise.resolve()),
        isTTY: Boolean(s.pty),
        columns: s.pty?.cols ?? 80,
        signal: s.abort.signal,
        readFile: async (): Promise<string> => {
          throw Object.assign(new Error('files cannot be read over SSH; run the verb on the host'), { code: 'EACCES' });
        },
        onTask: (id: string) => void (taskId = id),
        readStdin: async (): Promise<string> => {
          if (s.pty) throw usageError('--key: - reads standard input, which is the terminal here; run ssh without -t and redirect it: ssh HOST … --key - < key.pub', 'key');
          if (!stdinEnded) await new Promise<void>((r) => stdinWaiters.push(r));
          if (stdin.length > MAX_STDIN) throw usageError(`--key: standard input is longer than ${MAX_STDIN} bytes`, 'key');
          return stdin;
        },
      } satisfies IO,
    };
    const code = await service.run(argv, ctx);
    if (cancelling) return;
    finish(s, code);
  };

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
        output: ch as unknown as TuiOptions['output'],
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

  // ---- users file changes ----------------------------------------------------------------------

  const onUsersChange = () => {
    for (const c of conns) {
      if (!c.authed || c.ending) continue;
      const cur = users.byFingerprint(c.fp!);
      if (!cur || cur.user !== c.user) {
        log('warn', `ssh: ${who(c)}: key ${c.fp} was removed from the users file; closing the connection`);
        for (const s of [...c.sessions]) closeSessionWith(s, 'kindler: your key was removed; this connection is closed', EXIT.refused);
        endConn(c);
      } else if (cur.role !== c.role) {
        log('info', `ssh: ${who(c)}: role changed from ${c.role} to ${cur.role}; open TUI sessions are closed (verbs use the new role)`);
        c.role = cur.role;
        for (const s of [...c.sessions]) if (s.kind === 'shell') closeSessionWith(s, `kindler: your role changed to ${cur.role}; reconnect`, EXIT.ok);
      }
    }
  };
  users.on('change', onUsersChange);

  // ---- listen / stop ---------------------------------------------------------------------------

  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject);
    tcp.listen(opts.port, opts.host, () => {
      tcp.off('error', reject);
      resolve();
    });
  });
  tcp.on('error', (e) => log('error', `ssh: listener error: ${errText(e)}`));
  const addr = tcp.address();
  const port = typeof addr === 'object' && addr ? addr.port : opts.port;

  let stopped: Promise<void> | undefined;
  return {
    port,
    sessions: () => live,
    stop: () =>
      (stopped ??= new Promise<void>((resolve) => {
        stopping = true;
        users.off('change', onUsersChange);
        tunnels.stop();
        tcp.close(() => {
          clearTimeout(kill);
          uninstallGuard();
          resolve();
        });
        for (const c of conns) {
          for (const s of [...c.sessions]) closeSessionWith(s, 'kindler is shutting down', EXIT.failed);
          if (c.client) c.client.end();
          else c.sock.destroy();
        }
        const kill = setTimeout(() => {
          for (const c of conns) c.sock.destroy();
        }, 2000);
        kill.unref();
      })),
  };
}
