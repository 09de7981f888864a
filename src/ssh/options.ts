/**
 * What startSshServer takes and returns: the options, the limits (and their defaults), the TUI entry point.
 */
import type { ParsedKey } from 'ssh2';
import type { UsersStore } from '../access/users.js';
import type { TuiHandle, TuiOptions } from '../tui/index.js';
import type { Service } from '../commands/service.js';
import type { HostKey } from './hostkey.js';

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
  /** Keepalive probes after login (the daemon passes ssh.keepaliveSeconds/CountMax; unset: ssh2's 15 s, 3 missed → closed). */
  keepalive?: { intervalMs: number; countMax: number };
}

export interface SshServer {
  port: number;
  /** Ends every connection and closes the listener. */
  stop(): Promise<void>;
  /** Live sessions (TUI or verb). */
  sessions(): number;
}
